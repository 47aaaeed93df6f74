"""Checkpoints: a model's state_dict as a .npz file (no pickle: loading a pickle runs code)."""

from __future__ import annotations

import os
import zipfile

import numpy

from ._files import atomic_write
from .backend import asnumpy


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the model; names the path."""


#: buffers that hold variances or counts (>= 0), and standard deviations (> 0: Batch Renorm
#: divides by them), by the last part of their name ("running_var" also covers TransNorm's
#: running_var_source and running_var_target)
_AT_LEAST_ZERO = ("running_var", "memory_var", "memory_count", "memory_len", "num_batches_tracked")
_ABOVE_ZERO = ("running_std",)


def save(model, path) -> None:
    """Write ``model.state_dict()`` to ``path`` (.npz, no pickle), atomically.

    The arrays go to a temporary file in the same directory, which is renamed onto
    ``path`` only once completely written: a failed write leaves no partial file and
    an earlier checkpoint at ``path`` intact. The file gets the permissions the umask
    allows (as any file the user creates). Device arrays are copied to the host.

    The model only: an optimizer's state (SGD's momentum, Adam's moments and step count) is
    not saved, so training resumed from a checkpoint with momentum or Adam starts those
    afresh and does not continue exactly where it stopped.

    Parameters
    ----------
    model : minibn.nn.Module
        The model whose parameters and buffers are saved.
    path : str or os.PathLike
        The file to write (replaced if it exists).

    Raises
    ------
    IsADirectoryError
        If path is a folder.
    FileNotFoundError
        If path's folder does not exist.
    OSError
        If the file cannot be written.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"mb.save: cannot write {path}: it is a folder; give the path of a file "
                                f"in it, e.g. {os.path.join(path, 'model.npz')}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"mb.save: cannot write {path}: the folder {directory} does not exist")
    state = {k: asnumpy(v) for k, v in model.state_dict().items()}
    atomic_write(path, lambda f: numpy.savez(f, **state))


def load(model, path):
    """Load a checkpoint written by :func:`save` into ``model``.

    Every entry is read and checked (names, shapes, dtypes that convert, values: finite, that
    fit the model's dtype, no negative variance) before anything in the model changes: a
    truncated, foreign, mismatched or damaged file raises :class:`CheckpointError` naming
    the path and what is wrong, and leaves the model as it was.

    Parameters
    ----------
    model : minibn.nn.Module
        The model to load into (its device, dtypes and memory layouts are kept).
    path : str or os.PathLike
        The .npz file.

    Returns
    -------
    minibn.nn.Module
        The model.

    Raises
    ------
    IsADirectoryError
        If path is a folder.
    FileNotFoundError
        If there is no such file.
    CheckpointError
        A ValueError: if the file cannot be read, is not a checkpoint, or does not fit the
        model (names, shapes, values).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"mb.load: {path} is a folder: expected a checkpoint file (an .npz file "
                                f"written by mb.save)")
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
    _check_values(path, state, model.state_dict())
    try:
        return model.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"mb.load: {path} does not fit the model: {e}") from e


def _check_values(path, state, targets):
    """CheckpointError unless every value in ``state`` is finite, keeps its value in the dtype
    of the model's array it goes into (``targets``, the model's state dict: 1e300 would become
    inf in float32, 2.5 would become 2 in an integer), and is >= 0 in a variance or a count,
    > 0 in a standard deviation."""
    for name, value in state.items():
        if value.dtype.kind == "f":
            _refuse(path, name, value, ~numpy.isfinite(value), "NaN and inf are not valid parameters or "
                    "statistics (was the model saved after training diverged?)")
        if name in targets:  # (load_state_dict reports an entry the model does not have)
            dtype = targets[name].dtype
            with numpy.errstate(all="ignore"):
                converted = value.astype(dtype)
                kept = numpy.isfinite(converted) if dtype.kind == "f" else converted == value
            _refuse(path, name, value, ~kept, f"the model keeps this entry as {dtype}, where it would "
                    f"become {{}}", converted)
        last = name.rsplit(".", 1)[-1]
        if last.startswith(_AT_LEAST_ZERO):
            _refuse(path, name, value, value < 0, "a variance or a count cannot be negative")
        if last.startswith(_ABOVE_ZERO):
            _refuse(path, name, value, value <= 0, "a standard deviation must be > 0 (the layer divides by it)")


def _refuse(path, name, value, bad, why, became=None):
    """CheckpointError naming the entry, the first value where ``bad`` is True (its index and
    how many more) and ``why``; ``{}`` in ``why`` is filled with what ``became`` holds there."""
    if not bad.any():
        return
    index = tuple(int(i) for i in numpy.argwhere(bad)[0])
    at = f" at index {index}" if index else ""
    more = int(bad.sum()) - 1
    others = f" (and {more} more bad value{'s' if more > 1 else ''})" if more else ""
    why = why.format(became[index].item()) if became is not None else why
    raise CheckpointError(f"mb.load: {path}: entry {name!r} holds {value[index].item()!r}{at}{others}: {why}")
