"""Checkpoints: a model's state_dict as a .npz file (no pickle: loading a pickle runs code)."""

from __future__ import annotations

import os
import tempfile

import numpy

from .backend import asnumpy


def save(model, path) -> None:
    """Write ``model.state_dict()`` to ``path`` (.npz), atomically.

    The arrays go to a temporary file in the same directory, which is renamed onto
    ``path`` only once completely written: a failed write leaves no partial file and
    an earlier checkpoint at ``path`` intact.
    """
    path = os.fspath(path)
    state = {k: asnumpy(v) for k, v in model.state_dict().items()}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **state)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(model, path):
    """Load a checkpoint written by :func:`save` into ``model`` (shapes checked); returns model."""
    with numpy.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    return model.load_state_dict(state)
