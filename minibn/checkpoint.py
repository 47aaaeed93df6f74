"""Checkpoints: a model's state_dict as a .npz file (no pickle: loading a pickle runs code)."""

from __future__ import annotations

import os
import zipfile

import numpy

from ._files import atomic_write
from .backend import asnumpy


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the model; names the path."""


def save(model, path) -> None:
    """Write ``model.state_dict()`` to ``path`` (.npz), atomically.

    The arrays go to a temporary file in the same directory, which is renamed onto
    ``path`` only once completely written: a failed write leaves no partial file and
    an earlier checkpoint at ``path`` intact. The file gets the permissions the umask
    allows (as any file the user creates).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"mb.save: cannot write {path}: the folder {directory} does not exist")
    state = {k: asnumpy(v) for k, v in model.state_dict().items()}
    atomic_write(path, lambda f: numpy.savez(f, **state))


def load(model, path):
    """Load a checkpoint written by :func:`save` into ``model``; returns the model.

    Every entry is read and checked (names, shapes, dtypes that convert) before anything in
    the model changes: a truncated, foreign or mismatched file raises
    :class:`CheckpointError` naming the path and what is wrong, and leaves the model as it was.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mb.load: no such file: {path}")
    try:
        loaded = numpy.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"mb.load: cannot read {path}: the file is truncated or damaged "
                              f"({type(e).__name__}: {e})") from e
    except (OSError, ValueError) as e:  # numpy's words here are about pickles: not helpful
        raise CheckpointError(f"mb.load: cannot read {path}: it is not a checkpoint (an .npz file written by "
                              f"mb.save)") from e
    if not isinstance(loaded, numpy.lib.npyio.NpzFile):
        raise CheckpointError(f"mb.load: {path} holds a single array, not a checkpoint (an .npz of a state "
                              f"dict, as mb.save writes)")
    try:
        with loaded as z:
            state = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"mb.load: cannot read {path}: the file is truncated or damaged "
                              f"({type(e).__name__}: {e})") from e
    for name, value in state.items():
        if value.dtype.kind not in "fiub":
            raise CheckpointError(f"mb.load: {path}: entry {name!r} holds {value.dtype} values, not numbers")
    try:
        return model.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"mb.load: {path} does not fit the model: {e}") from e
