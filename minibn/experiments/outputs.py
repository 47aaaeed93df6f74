"""Writing results. Every experiment makes its files' bytes in memory (:func:`json_bytes`,
:func:`csv_bytes`, :func:`figure_bytes`) and hands them to one writer, :func:`write_all`,
which builds the output folder beside the old one and renames it into place whole
(:mod:`minibn._files`): a folder holds one run's files, or the previous run's if writing
failed, never some of each. (The composite runs, lr-sweep and all, build their folders
with :func:`minibn._files.new_folder`, the same mechanism.)"""

from __future__ import annotations

import csv
import io

from .._files import json_text, replace_folder


def json_bytes(obj):
    """``obj`` as standard JSON (NaN and infinities as null: :func:`minibn._files.json_text`)."""
    return (json_text(obj) + "\n").encode()


def csv_bytes(header, rows):
    """A CSV file's bytes: the ``header`` row (its column names), then ``rows`` (lists of values)."""
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
