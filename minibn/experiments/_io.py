"""Writing results atomically: a file appears under its name complete, or not at all."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from .._files import atomic_write


def _atomic(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def json_bytes(obj):
    return (json.dumps(obj, indent=2) + "\n").encode()


def csv_bytes(header, rows):
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def write_bytes(path, data):
    _atomic(path, lambda f: f.write(data))


def _close(fig):
    """Close a figure once written: pyplot keeps every figure it made until it is closed, and a
    process that runs many experiments (the test suite) would pile them up."""
    import matplotlib.pyplot as plt
    plt.close(fig)


def figure_bytes(fig, fmt="png", dpi=120):
    """The figure's file contents (and the figure closed)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    _close(fig)
    return buf.getvalue()


def write_all(folder, files):
    """Write {name: bytes} into ``folder``. Make every file's bytes before calling this (a
    figure too, with :func:`figure_bytes`): an error while making them then leaves no folder
    that looks complete."""
    for name, data in files.items():
        write_bytes(Path(folder) / name, data)


def write_json(path, obj):
    write_bytes(path, json_bytes(obj))


def write_csv(path, header, rows):
    write_bytes(path, csv_bytes(header, rows))


def save_figure(fig, path, dpi=120):
    """Write the figure to ``path`` atomically, and close it."""
    _atomic(path, lambda f: fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi))
    _close(fig)


def versions():
    """The versions a summary records: those of the provenance record."""
    from .provenance import versions as provenance_versions
    return provenance_versions()


# -- the command line: option types that say what is wrong, and one way to report errors ------

def _number(kind, s, lo, lo_open):
    import argparse
    import math
    try:
        v = kind(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {s!r}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
    if v < lo or (lo_open and v == lo):
        raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo}, got {s!r}")
    return v


def positive_int(s):
    """argparse type: an integer >= 1 (the error names the value)."""
    return _number(int, s, 1, False)


def nonnegative_int(s):
    """argparse type: an integer >= 0."""
    return _number(int, s, 0, False)


def positive_float(s):
    """argparse type: a finite number > 0 (inf and nan are refused)."""
    return _number(float, s, 0.0, True)


def check_runs(seeds, steps=None, variants=None, known=()):
    """ValueError naming the first bad setting of an experiment's runs: seeds (one or more
    integers >= 0), steps (>= 10, when given) and variants (each one of ``known``)."""
    if not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds):
        raise ValueError(f"seeds must be one or more integers >= 0, got {seeds}")
    if steps is not None and steps < 10:
        raise ValueError(f"steps must be >= 10, got {steps}")
    bad = [v for v in (variants or ()) if v not in known]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {tuple(known)}")


def check_out_dir(out):
    """ValueError, before any work, if the outputs cannot be written to the folder ``out``.

    The folder itself, or where it does not exist yet the nearest folder above it (where it
    will be created), must take a new file: a probe file is written there and removed at
    once. A real write, not the permission bits: those say nothing of a read-only file
    system, and root writes whatever they say. Nothing is created, so a run that fails
    later (bad data, Ctrl-C) leaves no empty output folder behind.
    """
    out = Path(out)
    folder = next((p for p in (out, *out.parents) if os.path.lexists(p)), Path("."))
    if not folder.is_dir():
        raise ValueError(f"cannot write to {out}: {folder} exists and is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".minibn-write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to {out}: creating a file in {folder} failed ({e.strerror or e})") from None


def add_common_options(p, out):
    """The options every `minibn reproduce` experiment shares."""
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="worker processes (default: one per core on the CPU, 1 on the GPU)%(default).0s")
    p.add_argument("--out", default=out, help="the folder for the outputs")
    p.add_argument("--data", default=None,
                   help="data directory holding mnist/ (default: $MINIBN_DATA or the cache)%(default).0s")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_cli(name, cfg, args, run, files):
    """Apply the overrides in ``args`` to ``cfg``, run ``run(cfg, out, data, jobs, progress)``
    and report: exit 2 on a bad option (before any training), 130 on Ctrl-C. (``--out`` has
    been checked by :func:`minibn.cli.main` already.)"""
    import sys

    try:
        cfg.validate()
    except ValueError as e:
        print(f"minibn reproduce {name}: error: {e}", file=sys.stderr)
        return 2
    try:
        _, text = run(cfg, args.out, args.data, args.jobs, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the runs finished so far are in {args.out}", file=sys.stderr)
        return 130
    print(text)
    print(f"outputs in {args.out}/ ({files})")
    return 0
