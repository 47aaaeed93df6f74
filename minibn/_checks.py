"""Argument checks raised at a layer's boundary, with the expected and actual value.

A mistake should surface as "BatchNorm1d: expected x of shape (N, 100) or
(N, 100, L), got (32, 50)", not as a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations


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


def check_range(name: str, value, lo, hi, where: str, lo_open=False, hi_open=False) -> None:
    """ValueError unless lo <= value <= hi (with open ends as asked)."""
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"{where}: {name} must be in {lb}{lo}, {hi}{rb}, got {value!r}")
