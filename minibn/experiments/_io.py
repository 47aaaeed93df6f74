"""Writing results atomically: a file appears under its name complete, or not at all."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path


def _atomic(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    _atomic(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_csv(path, header, rows):
    def write(f):
        import io
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        f.write(buf.getvalue().encode())
    _atomic(path, write)


def save_figure(fig, path, dpi=120):
    _atomic(path, lambda f: fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi))


def versions():
    import platform

    import numpy

    from .. import __version__, backend
    v = {"python": platform.python_version(), "numpy": numpy.__version__, "minibn": __version__}
    if backend.cupy is not None:  # pragma: no cover - GPU only
        v["cupy"] = backend.cupy.__version__
    return v


def add_common_options(p, out):
    """The options every `minibn reproduce` experiment shares."""
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core on the CPU)")
    p.add_argument("--out", default=out)
    p.add_argument("--data", default=None, help="data directory holding mnist/ (default: $MINIBN_DATA or the cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_cli(name, cfg, args, run, files):
    """Apply the overrides in ``args`` to ``cfg``, run ``run(cfg, out, data, jobs, progress)``
    and report: exit 2 on a bad option (before any training), 130 on Ctrl-C."""
    import sys

    try:
        cfg.validate()
        _, text = run(cfg, args.out, args.data, args.jobs, progress=not args.quiet)
    except ValueError as e:
        print(f"minibn reproduce {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: the runs finished so far are in {args.out}", file=sys.stderr)
        return 130
    print(text)
    print(f"outputs in {args.out}/ ({files})")
    return 0
