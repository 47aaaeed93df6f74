"""The fused normalization paths on the GPU: :class:`~minibn.kernels.fused_bn.FusedBN` and
:class:`~minibn.kernels.fused_rows.FusedRows` running on the numba-cuda kernels of
:mod:`cuda_loops` (the same algorithm as the CPU loops, the same contracts as the reference
functions). Registered as the "fused" implementation of each normalization operation for
CuPy arrays; without numba-cuda, minibn runs on the GPU through plain CuPy ("fast" for BN,
the reference otherwise).

Verified without a GPU: under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) the same
functions take NumPy arrays (tests/test_cuda_kernels.py); timings on a GPU are not made yet.
"""

from __future__ import annotations

import functools
import os

from ..backend import cupy, get_array_module
from . import cuda_loops
from .fused_bn import FusedBN
from .fused_rows import FusedRows


def _simulated():
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def applies(x):
    """A float32/float64 CuPy array, with numba-cuda usable. (Under the simulator the kernels
    also take NumPy arrays, called directly, but the layers never send them there.)"""
    return (cupy is not None and isinstance(x, cupy.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize >= 4
            and cuda_loops.available())


def check(x):
    if not (cupy is not None and isinstance(x, cupy.ndarray)) and not _simulated():
        raise NotImplementedError("the GPU fused kernels take CuPy arrays (the CPU loops take NumPy ones)")
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        raise TypeError(f"the fused kernels take float32 or float64 arrays, got dtype {x.dtype} "
                        f"(use impl='reference', which takes any floating-point dtype)")
    if not cuda_loops.available():
        raise ImportError("the GPU fused kernels need numba-cuda: pip install numba-cuda (or use impl='reference')")


def installed():
    return cuda_loops.available()


@functools.cache
def _loops(xp):
    return cuda_loops.CudaLoops(xp)


def _kernels(x):
    check(x)
    return _loops(get_array_module(x))


def _once(kernel, a, *args):
    """One launch covers the whole array (the CPU runs row blocks on threads instead)."""
    return [kernel(*args)]


bn = FusedBN(_kernels, _once)
rows = FusedRows(_kernels, _once)
batch_norm_forward_cuda, batch_norm_backward_cuda = bn.batch_norm_forward, bn.batch_norm_backward
batch_renorm_forward_cuda, batch_renorm_backward_cuda = bn.batch_renorm_forward, bn.batch_renorm_backward
memorized_batch_norm_forward_cuda = bn.memorized_batch_norm_forward
memorized_batch_norm_backward_cuda = bn.memorized_batch_norm_backward
layer_norm_forward_cuda, layer_norm_backward_cuda = rows.layer_norm_forward, rows.layer_norm_backward
group_norm_forward_cuda, group_norm_backward_cuda = rows.group_norm_forward, rows.group_norm_backward
instance_norm_forward_cuda, instance_norm_backward_cuda = rows.instance_norm_forward, rows.instance_norm_backward
