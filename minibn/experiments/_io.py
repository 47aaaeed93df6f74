"""Writing results. Every experiment makes its files' bytes in memory (:func:`json_bytes`,
:func:`csv_bytes`, :func:`figure_bytes`) and hands them to one writer, :func:`write_all`,
which builds the output folder beside the old one and renames it into place whole
(:mod:`minibn._files`): a folder holds one run's files, or the previous run's if writing
failed, never some of each. (The composite runs, lr-sweep and all, build their folders
with :func:`minibn._files.new_folder`, the same mechanism.)"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from .._files import json_text, replace_folder


def json_bytes(obj):
    """``obj`` as standard JSON (NaN and infinities as null: :func:`minibn._files.json_text`)."""
    return (json_text(obj) + "\n").encode()


def csv_bytes(header, rows):
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


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


def write_all(folder, files, outputs=()):
    """Write {name: bytes} as the output folder ``folder``, replacing a previous run's folder
    whole (:func:`minibn._files.replace_folder`): the folder holds this run's files or, if
    writing fails (a full disk), the previous run's, untouched. ``outputs``: every name a run
    of the experiment may write (an interrupted run writes fewer: the previous run's figure
    must not stay beside them). Make every file's bytes before calling this (a figure too,
    with :func:`figure_bytes`): an error while making them then leaves the folder as it was."""
    replace_folder(folder, files, outputs)


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
    # a seed given twice is one run counted twice: its mean is that run's, and its "interval"
    # has zero width, a certainty no experiment gave
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise ValueError(f"seeds must differ: {', '.join(map(str, twice))} given more than once in {list(seeds)}")
    if steps is not None and steps < 10:
        raise ValueError(f"steps must be >= 10, got {steps}")
    bad = [v for v in (variants or ()) if v not in known]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {tuple(known)}")


def check_out_dir(out):
    """ValueError, before any work, if the outputs cannot be written to the folder ``out``.

    A run builds its folder beside ``out`` and renames it to ``out`` (:func:`write_all`), so
    the folder that holds ``out`` (or, where that does not exist yet, the nearest folder
    above it, where it will be created) must take a new entry: a probe file is written there
    and removed at once. A real write, not the permission bits: those say nothing of a
    read-only file system, and root writes whatever they say. Nothing is created, so a run
    that fails later (bad data, Ctrl-C) leaves no empty output folder behind. ``out`` must
    not be the current folder or one above it: replacing it would pull the folder away from
    under the command (and under the shell it was typed in).
    """
    out = Path(out)
    for p in (out, *out.parents):
        if os.path.lexists(p) and not p.is_dir():
            raise ValueError(f"cannot write to {out}: {p} exists and is not a folder")
    here, target = Path.cwd().resolve(), out.resolve()
    if target == here or target in here.parents:
        raise ValueError(f"cannot write to {out}: it is the current folder or holds it, and a run replaces its "
                         f"output folder whole; name a folder of its own (results/...)")
    folder = next((p for p in out.parents if os.path.lexists(p)), Path("."))
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
    and report: exit 2 on a bad option (before any training), 130 on Ctrl-C (which
    :func:`minibn.cli.main` turns into 143 after a SIGTERM). (``--out`` has been checked by
    :func:`minibn.cli.main` already.)"""
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
