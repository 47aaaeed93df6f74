"""The array-backend switch: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports cupy. Everything else asks it for the array
module that fits the arrays at hand (the Chainer ``xp`` idiom)::

    xp = get_array_module(x)      # numpy or cupy, chosen by where x lives
    y = xp.exp(x)

and creates new arrays on the *active* backend (``use("cupy")``, or the environment
variable ``MINIBN_BACKEND``) with :func:`xp`. Transfers are explicit: :func:`asnumpy`
and :func:`to_device`. Nothing here converts implicitly; CuPy refuses
``numpy.asarray(gpu_array)`` on purpose, and so do we.

When CuPy is missing, or installed without a usable CUDA device, importing minibn
still works; only *asking* for the cupy backend raises, with the install hint.
"""

from __future__ import annotations

import os

import numpy

try:  # pragma: no cover - depends on the machine
    import cupy as _cupy

    try:
        _CUPY_ERROR = None if _cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device found"
    except Exception as e:  # CUDA driver missing or broken
        _CUPY_ERROR = f"CuPy is installed but CUDA is not usable: {e}"
except ImportError:
    _cupy = None
    _CUPY_ERROR = "CuPy is not installed"

# A safe stub: ``cupy`` is None when unusable, so ``xp is cupy`` is simply False.
cupy = _cupy if _CUPY_ERROR is None else None

_INSTALL_HINT = (
    'install the GPU extra: pip install "minibn[gpu-cuda12]" (CUDA 12.x driver) or '
    '"minibn[gpu-cuda13]" (CUDA 13.x driver); `nvidia-smi` shows which CUDA your driver supports'
)

BACKENDS = ("numpy", "cupy")
_active = "numpy"

_rng = numpy.random.default_rng()


def available() -> tuple[str, ...]:
    """The backends usable on this machine: ``("numpy",)`` or ``("numpy", "cupy")``."""
    return ("numpy", "cupy") if cupy is not None else ("numpy",)


def use(name: str) -> None:
    """Make ``name`` ("numpy" or "cupy") the active backend for new arrays.

    Raises ValueError for an unknown name and RuntimeError (with the install hint)
    when cupy is asked for but cannot be used here.
    """
    global _active, _ENV_ERROR
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "cupy" and cupy is None:
        raise RuntimeError(f"the cupy backend is not available ({_CUPY_ERROR}); {_INSTALL_HINT}")
    _active, _ENV_ERROR = name, None


def active() -> str:
    """The name of the active backend."""
    _check_env()
    return _active


def xp():
    """The array module of the active backend (numpy or cupy)."""
    _check_env()
    return cupy if _active == "cupy" else numpy


def get_array_module(*arrays):
    """numpy or cupy, chosen by the arrays: cupy when one of them is a CuPy array, else numpy.

    Parameters
    ----------
    *arrays : ndarray or scalar
        The arrays at hand.

    Returns
    -------
    module
        ``numpy``, or ``cupy`` (only where CuPy is usable).
    """
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return numpy


def same_layout(a, b) -> bool:
    """Whether ``a`` can stand in for ``b`` as an output buffer: the same array type
    (NumPy or CuPy), shape, dtype and strides (so the same memory order)."""
    return type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides


def memory_order(a) -> str:
    """"F" for a column-major array (that is not also row-major), else "C": the order in which
    ``a.reshape(-1, order=...)`` of a contiguous array is a view rather than a copy."""
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def is_gpu_array(x) -> bool:
    return cupy is not None and isinstance(x, cupy.ndarray)


def asnumpy(x):
    """An explicit device -> host copy (a no-op for NumPy arrays and scalars).

    Parameters
    ----------
    x : ndarray, scalar or array-like
        A CuPy array, a NumPy array, or anything ``numpy.asarray`` takes.

    Returns
    -------
    numpy.ndarray
        x itself for a NumPy array.
    """
    if is_gpu_array(x):
        return cupy.asnumpy(x)
    return numpy.asarray(x)


def to_device(x, device: str):
    """Move an array to ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy)."""
    if device == "cpu":
        return asnumpy(x)
    if device == "gpu":
        if cupy is None:
            raise RuntimeError(f"cannot move arrays to the GPU ({_CUPY_ERROR}); {_INSTALL_HINT}")
        return cupy.asarray(x)
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def to_active(x):
    """Move a host array to the active backend's device (no copy if already there)."""
    return to_device(x, "gpu" if _active == "cupy" else "cpu")


def device_of(x) -> str:
    return "gpu" if is_gpu_array(x) else "cpu"


def seed(s: int) -> None:
    """Seed every random generator the engine uses (host and, if present, device).

    Parameters
    ----------
    s : int
        The seed.
    """
    global _rng
    _rng = numpy.random.default_rng(s)
    if cupy is not None:  # pragma: no cover - GPU only
        cupy.random.seed(s)


def rng() -> numpy.random.Generator:
    """The engine's host random generator (seeded by :func:`seed`)."""
    return _rng


def random_uniform(shape, xp_module, dtype=numpy.float32):
    """Uniform [0, 1) samples created directly on the device of ``xp_module``."""
    if xp_module is numpy:
        return _rng.random(shape, dtype=dtype)
    return xp_module.random.random(shape, dtype=dtype)  # pragma: no cover - GPU only


def synchronize() -> None:
    """Wait for the GPU to finish queued work (for timing); a no-op on the CPU."""
    if cupy is not None and _active == "cupy":  # pragma: no cover - GPU only
        cupy.cuda.Device().synchronize()


# MINIBN_BACKEND picks the backend at import. A value that cannot be used here (cupy on a
# machine without a GPU) must not break `import minibn` (nor `minibn --help`): the error is
# kept and raised, with its hint, when the backend is first asked for.
_ENV_ERROR = None


def _check_env():
    if _ENV_ERROR is not None:
        raise RuntimeError(f"MINIBN_BACKEND={os.environ.get('MINIBN_BACKEND')!r}: {_ENV_ERROR} "
                           f"(unset it, or set it to 'numpy')")


_env = os.environ.get("MINIBN_BACKEND")
if _env:
    try:
        use(_env)
    except (ValueError, RuntimeError) as e:
        _ENV_ERROR = str(e)
