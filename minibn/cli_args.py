"""What the `minibn` command's subcommands share: option types whose errors name the value,
the help format, the output-folder check made before any work, and how an experiment's
subcommand runs and reports.

It imports nothing of the experiments or of the engine, so that :mod:`minibn.cli` and every
experiment module can import it without importing each other.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default. (An option whose default is computed says it in
    its own help, which ends with ``%(default).0s``: an empty field that keeps argparse from
    adding "(default: None)".)"""


def summary(doc):
    """The first paragraph of a module's docstring and a space, to begin a command's description;
    "" when Python runs with -OO, which strips the docstrings."""
    return doc.split("\n\n")[0] + " " if doc else ""


def _number(kind, s, lo, lo_open):
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


def check_out_dir(out):
    """ValueError, before any work, if the outputs cannot be written to the folder ``out``.

    A run builds its folder beside ``out`` and renames it to ``out``
    (:func:`minibn.experiments.outputs.write_all`), so
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
