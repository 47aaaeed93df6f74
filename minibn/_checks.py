"""Argument checks raised at a layer's boundary, with the expected and actual value.

A mistake should surface as "BatchNorm1d: expected x of shape (N, 100) or
(N, 100, L), got (32, 50)", not as a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations

import functools

import numpy

from .backend import cupy as _cupy


def check_float(name: str, x, where: str) -> None:
    """TypeError unless ``x`` is an array of a floating dtype."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        raise TypeError(f"{where}: {name} must be an array, got {type(x).__name__}")
    if dtype.kind != "f":
        raise TypeError(f"{where}: {name} must be a floating-point array, got dtype {dtype}")


def check_ndim(name: str, x, ndims, where: str, layout: str) -> None:
    if x.ndim not in ndims:
        raise ValueError(
            f"{where}: expected {name} of shape {layout} ({' or '.join(map(str, ndims))}-d), "
            f"got shape {tuple(x.shape)}"
        )


def check_dim(name: str, x, axis: int, size: int, where: str, layout: str) -> None:
    if x.shape[axis] != size:
        raise ValueError(
            f"{where}: expected {name} of shape {layout} with size {size} on axis {axis}, "
            f"got shape {tuple(x.shape)}"
        )


def check_positive_int(name: str, value, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")


def float_dtype(dtype, where: str) -> numpy.dtype:
    """``numpy.dtype(dtype)`` for a layer's parameters, which must be floating-point: ValueError
    naming the layer and the value otherwise (an integer dtype would round the initial weights
    to zeros and every update away)."""
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ValueError(f"{where}: dtype must be a floating-point dtype such as 'float32' or 'float64' "
                         f"(the parameters take gradients), got {dtype!r}")
    return dt


def check_range(name: str, value, lo, hi, where: str, lo_open=False, hi_open=False) -> None:
    """ValueError unless lo <= value <= hi (with open ends as asked)."""
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"{where}: {name} must be in {lb}{lo}, {hi}{rb}, got {value!r}")


#: the array types a layer takes as they are: NumPy's, and CuPy's where it is usable
PLAIN_ARRAYS = (numpy.ndarray,) if _cupy is None else (numpy.ndarray, _cupy.ndarray)

_HINTS = {
    numpy.ma.MaskedArray: "its mask would be honoured by some steps and not by others: pass {name}.filled(value) "
                          "to fill the masked entries, or numpy.asarray({name}) to drop the mask",
    numpy.matrix: "a matrix redefines * and keeps two dimensions: pass numpy.asarray({name})",
}


def plain_array(name: str, x, where: str):
    """``x`` itself when it is a plain array (a ``numpy.ndarray`` or a CuPy array); its
    ``numpy.ndarray`` view (the same memory, no copy) for a ``numpy.memmap``, whose only
    difference is where the memory comes from; TypeError for any other array subclass
    (``numpy.ma.MaskedArray``, ``numpy.matrix``, ...), whose own semantics the layer would
    honour in some steps and not in others, naming the type and the fix."""
    if type(x) in PLAIN_ARRAYS:
        return x
    if isinstance(x, numpy.memmap):
        return x.view(numpy.ndarray)
    if isinstance(x, numpy.ndarray):
        kind = type(x)
        hint = next((h for k, h in _HINTS.items() if isinstance(x, k)), "pass numpy.asarray({name})")
        raise TypeError(f"{where}: {name} must be a plain numpy.ndarray, got {kind.__module__}.{kind.__qualname__} "
                        f"({hint.format(name=name)})")
    check_float(name, x, where)  # not an array at all: "must be an array, got list"
    return x


def check_inputs(where: str, x, gamma, beta, normalized_ndim=None):
    """The boundary check of a normalization function: x a plain floating-point array
    (:func:`plain_array`), gamma and beta both None or both arrays of the affine shape: (C,),
    one value per channel of x (N, C, *), or, with ``normalized_ndim`` = k, x's last k sizes
    (LayerNorm). Returns x (a memmap's ndarray view). TypeError / ValueError naming the
    function, the argument, the expected and the actual value."""
    ndim = 2 if normalized_ndim is None else normalized_ndim
    if type(x) in PLAIN_ARRAYS and x.dtype.kind == "f" and x.ndim >= ndim:
        shape = x.shape[1:2] if normalized_ndim is None else x.shape[x.ndim - ndim:]
        if gamma is beta is None or getattr(gamma, "shape", 0) == getattr(beta, "shape", 1) == shape:
            return x  # the usual case, in two tests: what follows builds the messages
    if type(x) not in PLAIN_ARRAYS:
        x = plain_array("x", x, where)
    check_float("x", x, where)
    if x.ndim < ndim:
        raise ValueError(f"{where}: expected x with at least {ndim} dimensions, got shape {tuple(x.shape)}")
    shape = x.shape[1:2] if normalized_ndim is None else x.shape[x.ndim - ndim:]
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v is None:
            raise ValueError(f"{where}: gamma and beta must both be None (no affine transform) or both arrays, "
                             f"got {name}=None")
        if tuple(getattr(v, "shape", ("?",))) != shape:
            check_float(name, v, where)
            of = "one value per channel" if normalized_ndim is None else f"the last {ndim} sizes"
            raise ValueError(f"{where}: expected {name} of shape {shape} ({of} of x, shape {tuple(x.shape)}), "
                             f"got shape {tuple(v.shape)}")
    return x


#: how many of x's values :func:`fingerprint` keeps
FINGERPRINT_VALUES = 16


@functools.lru_cache(maxsize=256)
def _positions(size):
    """FINGERPRINT_VALUES flat positions spread evenly over ``size`` values, the first and last included."""
    return numpy.unique(numpy.linspace(0, size - 1, min(size, FINGERPRINT_VALUES)).astype(numpy.intp))


def fingerprint(x):
    """What the backward needs to tell whether x was changed in place after the forward:
    x itself, its shape, and the bytes of 16 of its values spread evenly over it, the first
    and the last included (bytes: a NaN matches itself). A few microseconds, no pass over x:
    it catches a buffer refilled with the next batch, ``x *= 2`` or ``x[:] = 0``, not every
    change of a single value. None for an empty x and for GPU arrays (reading the values
    back would wait for the device at every step)."""
    if type(x) is not numpy.ndarray or x.size == 0:
        return None
    return x, x.shape, _sample(x)


def _sample(x):
    # ravel() is a view of a C-contiguous x (and faster than .flat); it would copy any other
    return (x.ravel() if x.flags.c_contiguous else x.flat)[_positions(x.size)].tobytes()


def check_unchanged(print_, where: str) -> None:
    """RuntimeError when the array of a :func:`fingerprint` no longer has the values it had."""
    if print_ is None:
        return
    x, shape, values = print_
    if x.shape != shape or _sample(x) != values:
        raise RuntimeError(f"{where}: x was changed in place after the forward (its values are not the ones the "
                           f"forward normalized), so the backward would compute a wrong dx; run the forward "
                           f"again on the new values, or give the layer a copy (x.copy()) if x must change")
