"""Where a figure or a table came from: the record written beside it (``provenance.json``).

The commit of the code (and its source files with uncommitted changes, if any), the versions
of Python, NumPy, numba, numba-cuda and minibn, the implementation each normalization
operation runs on this machine (reference, fast, fused: what ``impl="auto"`` picks for the
experiments' float32 inputs), the backend, the machine, the date, the wall time and the
command, with the experiment's configuration.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

#: the operations whose implementation the record names
OPS = ("batch_norm", "batch_renorm", "memorized_batch_norm", "layer_norm", "group_norm", "transnorm")
FIELDS = ("experiment", "commit", "dirty", "changed_source_files", "versions", "implementations", "backend", "machine",
          "date", "wall_seconds", "command", "config")


#: what the results depend on: the package and its build files (not the outputs, nor the docs)
SOURCE = ("minibn", "setup.cfg", "pyproject.toml")


def _git(*args):
    here = Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def commit():
    """(the commit of minibn's source, its tracked source files with uncommitted changes (empty:
    the results come from that commit exactly)); ("unknown", None) outside a git checkout."""
    sha = _git("rev-parse", "HEAD").strip()
    # a git repository around an installed copy (a project whose ignored .venv holds minibn)
    # is not minibn's source: its commit only counts if it tracks this very file
    if not sha or not _git("ls-files", "--error-unmatch", Path(__file__).name).strip():
        return "unknown", None
    top = _git("rev-parse", "--show-toplevel").strip()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCE], cwd=top,
                            capture_output=True, text=True, timeout=10).stdout if top else ""
    return sha, [line[3:] for line in status.splitlines() if line.strip()]


def versions():
    import numpy

    from .. import __version__
    out = {"python": platform.python_version(), "numpy": numpy.__version__, "minibn": __version__}
    for name, module in (("numba", "numba"), ("numba-cuda", "numba_cuda"), ("cupy", "cupy")):
        try:
            out[name] = __import__(module).__version__
        except Exception:
            out[name] = None
    return out


def implementations(shape=(60, 100)):
    """{operation: the implementation impl="auto" runs for a float32 input of ``shape`` on the
    active backend}."""
    from .. import backend, dispatch
    x = backend.xp().zeros(shape, dtype="float32")
    return {op: dispatch.select(op, "auto", x).name for op in OPS}


def machine():
    from ..bench.machine import cpu
    return cpu() | {"platform": platform.platform()}


def record(experiment, wall_seconds, config=None):
    """The provenance record of an experiment that took ``wall_seconds``."""
    from .. import backend
    sha, changed = commit()
    # outside a git checkout (an installed wheel) whether the source was changed is not known: None
    return {"experiment": experiment, "commit": sha, "dirty": None if changed is None else bool(changed),
            "changed_source_files": changed,
            "versions": versions(),
            "implementations": implementations(), "backend": backend.active(), "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(float(wall_seconds), 1), "command": " ".join([os.path.basename(sys.argv[0])]
                                                                               + sys.argv[1:]),
            "config": config}


def missing(rec):
    """The fields a record lacks (empty when complete; ``changed_source_files`` may be empty)."""
    return [f for f in FIELDS if f not in rec or (f != "changed_source_files" and rec[f] in ("", [], {}))]
