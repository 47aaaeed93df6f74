"""The GPU kernels of the fused paths, in numba-cuda: the CPU loops' algorithm, one CUDA kernel each.

The BN family (:class:`minibn.kernels.fused_bn.FusedBN` runs BN, BatchRenorm and Memorized
BN on them, as on the CPU loops) needs two kernels over x viewed as (N, C, S):

* :func:`moments_kernel`: per channel c, s1 = sum (a - shift_a[c]) and
  s2 = sum (a - shift_a[c]) (b - shift_b[c]) in float64, in one read of a and b. The grid
  is (C, chunks): block (c, j) sums the j-th slice of channel c's N * S values (a
  grid-stride loop), reduces in shared memory, and adds its two partial sums to the
  channel's with an atomic add. With one block per channel
  a small C would leave most of the GPU idle (C = 64 blocks on 132 multiprocessors): the
  chunks spread a channel over several blocks.
* :func:`combine_kernel`: out = scale_a[c] (a - shift_a[c]) + scale_b[c] b + offset[c], one thread
  per value.

LayerNorm and GroupNorm standardize rows of a 2-d view (R, L) (:mod:`minibn.kernels.fused_rows`):

* :func:`row_stats_kernel`: one block per row, the shifted sums of the row in shared memory,
  then its mean and 1 / sqrt(var + eps);
* :func:`row_affine_kernel`, :func:`row_backward_kernel`: y, and dx with the row's two sums
  (one block per row), and the (P, Lc) table sums of dgamma and dbeta (atomic adds).

Per-channel arithmetic between the kernels (the coefficients) is a handful of (C,) array
operations on the device (CuPy). Arrays in, arrays out: CuPy arrays on a GPU; under
numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) NumPy arrays, which is how the test
suite verifies every kernel on a machine without a GPU.

Two quirks of the simulator: it keys ``cuda.shared.array`` by source line, so two shared
arrays declared on one line would alias (each is declared on its own line); and its lookup of
that key is not thread-safe, so two threads of a block that reach the declaration together can
each get an array of their own, and the block's reduction silently misses one thread's values
(a wrong row, now and then, in CI). :func:`_one_shared_array_per_line` gives the simulator a
locked lookup before the kernels are compiled.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading


def _simulated():
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


#: threads per block (a power of two: the shared-memory reductions halve it). The simulator
#: runs every thread of a block as a Python thread, so it gets fewer.
TPB = 8 if _simulated() else 256
#: the most blocks a channel's sums are spread over
MAX_CHUNKS = 64


def available():
    """Whether numba-cuda can run kernels here: a CUDA device, or its simulator."""
    return _cuda() is not None


@functools.cache
def _cuda():
    try:
        from numba import cuda
        return cuda if cuda.is_available() else None
    except Exception:  # numba-cuda missing, or no driver
        return None


cuda = None  # numba.cuda, imported with the kernels: a module global, which the simulator swaps for its own


def _one_shared_array_per_line():
    """Make the simulator's ``cuda.shared.array`` thread-safe (called only under the simulator).

    The simulator runs each CUDA thread of a block as a Python thread and finds a block's
    shared array by the (file, line) of the declaration: look the key up, and if it is missing
    allocate and store. Two threads between the lookup and the store each allocate, and from
    then on write to different arrays. This replacement does the same lookup under a lock.
    """
    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "one_per_line", False):
        return
    original, lock = shared.array, threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory (one buffer), or an error
            return original(self, shape, dtype, alignment)
        frame = sys._getframe(1)  # the kernel line that declares the array
        key = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            arrays = self.__dict__.setdefault("_arrays_by_line", {})
            if key not in arrays:
                arrays[key] = np.empty(shape, numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype)
            return arrays[key]

    array.one_per_line = True
    shared.array = array


@functools.cache
def kernels():
    """The compiled kernels (compiled on first use)."""
    global cuda
    cuda = _cuda()
    if _simulated():
        _one_shared_array_per_line()
    from numba import float64

    @cuda.jit(device=True)
    def block_sums(acc1, acc2, tid):
        """The sums of acc1 and of acc2 over the block's threads, by a tree in shared memory;
        every thread gets them (the last step ends with a barrier)."""
        sh1 = cuda.shared.array(TPB, float64)
        sh2 = cuda.shared.array(TPB, float64)
        sh1[tid] = acc1
        sh2[tid] = acc2
        cuda.syncthreads()
        step = TPB // 2
        while step > 0:
            if tid < step:
                sh1[tid] += sh1[tid + step]
                sh2[tid] += sh2[tid + step]
            cuda.syncthreads()
            step //= 2
        return sh1[0], sh2[0]

    @cuda.jit
    def moments_kernel(a, shift_a, b, shift_b, s1, s2):
        N, C, S = a.shape
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        total = N * S
        acc1 = float64(0.0)
        acc2 = float64(0.0)
        i = cuda.blockIdx.y * TPB + tid
        while i < total:
            n = i // S
            s = i - n * S
            u = float64(a[n, c, s]) - shift_a[c]
            acc1 += u
            acc2 += u * (float64(b[n, c, s]) - shift_b[c])
            i += cuda.gridDim.y * TPB
        t1, t2 = block_sums(acc1, acc2, tid)
        if tid == 0:
            cuda.atomic.add(s1, c, t1)
            cuda.atomic.add(s2, c, t2)

    @cuda.jit
    def combine_kernel(a, shift_a, scale_a, b, scale_b, offset, out):
        N, C, S = a.shape
        i = cuda.grid(1)
        total = N * C * S
        while i < total:
            n = i // (C * S)
            r = i - n * (C * S)
            c = r // S
            s = r - c * S
            out[n, c, s] = (scale_a[c] * (float64(a[n, c, s]) - shift_a[c])
                            + scale_b[c] * float64(b[n, c, s]) + offset[c])
            i += cuda.gridsize(1)

    @cuda.jit
    def row_stats_kernel(x, eps, mu, inv_std):
        R, L = x.shape
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        k = float64(x[r, 0])
        acc1 = float64(0.0)
        acc2 = float64(0.0)
        j = tid
        while j < L:
            u = float64(x[r, j]) - k
            acc1 += u
            acc2 += u * u
            j += TPB
        t1, t2 = block_sums(acc1, acc2, tid)
        if tid == 0:
            c = t1 / L
            mu[r] = k + c
            inv_std[r] = 1.0 / math.sqrt(max(t2 / L - c * c, 0.0) + eps)

    @cuda.jit
    def row_affine_kernel(x, mu, inv_std, gtab, btab, y):
        R, L = x.shape
        P, Lc = gtab.shape
        S = L // Lc
        i = cuda.grid(1)
        while i < R * L:
            r = i // L
            j = i - r * L
            p = r % P
            q = j // S
            y[r, j] = (float64(x[r, j]) - mu[r]) * inv_std[r] * gtab[p, q] + btab[p, q]
            i += cuda.gridsize(1)

    @cuda.jit
    def row_backward_kernel(dy, x, mu, inv_std, gtab, dx, dg, db):
        R, L = x.shape
        P, Lc = gtab.shape
        S = L // Lc
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        p = r % P
        acc1 = float64(0.0)  # sum g, g = dy * gamma
        acc2 = float64(0.0)  # sum g * x_hat
        j = tid
        while j < L:
            q = j // S
            d = float64(dy[r, j])
            xh = (float64(x[r, j]) - mu[r]) * inv_std[r]
            acc1 += d * gtab[p, q]
            acc2 += d * gtab[p, q] * xh
            cuda.atomic.add(dg, (p, q), d * xh)
            cuda.atomic.add(db, (p, q), d)
            j += TPB
        t1, t2 = block_sums(acc1, acc2, tid)
        a = t1 / L
        b = t2 / L
        j = tid
        while j < L:
            q = j // S
            xh = (float64(x[r, j]) - mu[r]) * inv_std[r]
            dx[r, j] = inv_std[r] * (float64(dy[r, j]) * gtab[p, q] - a - xh * b)
            j += TPB

    return {"moments": moments_kernel, "combine": combine_kernel, "row_stats": row_stats_kernel,
            "row_affine": row_affine_kernel, "row_backward": row_backward_kernel}


def _blocks_for(n):
    return max(1, min(1024, (n + TPB - 1) // TPB))


class CudaLoops:
    """The kernels behind the interface of the CPU loops (:class:`minibn.kernels.fused_bn.FusedBN`
    calls both the same way). ``xp`` is the array module of the arrays (CuPy on a GPU, NumPy
    under the simulator)."""

    def __init__(self, xp):
        self.xp, self.k = xp, kernels()

    @staticmethod
    def parallel(a3):
        return False  # one launch covers the whole array: no row blocks

    def moments(self, a, shift_a, b, shift_b, lo=0, hi=None):
        N, C, S = a.shape
        s1, s2 = self.xp.zeros(C), self.xp.zeros(C)
        chunks = max(1, min(MAX_CHUNKS, (N * S + 4 * TPB - 1) // (4 * TPB)))
        self.k["moments"][(C, chunks), TPB](a, shift_a, b, shift_b, s1, s2)
        return s1, s2

    def combine(self, a, shift_a, scale_a, b, scale_b, offset, out, lo=0, hi=None):
        self.k["combine"][_blocks_for(a.size), TPB](a, shift_a, scale_a, b, scale_b, offset, out)

    def affine(self, a, shift, scale, offset, out, lo=0, hi=None):
        """out = scale (a - shift) + offset: the combine kernel with scale_b = 0 (on a GPU the
        second read of a comes from cache, so one kernel serves both directions)."""
        self.combine(a, shift, scale, a, self.xp.zeros(a.shape[1]), offset, out)

    def forward_coefficients(self, s1, s2, shift, m, gamma, eps):
        xp = self.xp
        c = s1 / m
        var = xp.maximum(s2 / m - c * c, 0.0)
        inv_std = 1.0 / xp.sqrt(var + eps)
        return shift + c, var, inv_std, gamma * inv_std

    def backward_coefficients(self, dbeta, dy_xc, inv_std, gamma, m):
        dgamma = inv_std * dy_xc
        A = gamma * inv_std
        B = -A * inv_std * dgamma / m
        return dgamma, A, B, -A * dbeta / m

    def forward(self, x3, gamma, beta, eps, y):
        shift = x3[0, :, 0].astype("float64")
        s1, s2 = self.moments(x3, shift, x3, shift)
        mu, var, inv_std, scale = self.forward_coefficients(s1, s2, shift, x3.shape[0] * x3.shape[2], gamma, eps)
        self.affine(x3, mu, scale, beta.astype("float64"), y)
        return mu, var, inv_std

    def backward(self, dy3, x3, mu, inv_std, gamma, m, dx):
        dbeta, dy_xc = self.moments(dy3, self.xp.zeros(dy3.shape[1]), x3, mu)
        dgamma, A, B, K = self.backward_coefficients(dbeta, dy_xc, inv_std, gamma, m)
        self.combine(x3, mu, B, dy3, A, K, dx)
        return dgamma, dbeta

    # -- rows (LayerNorm, GroupNorm) -----------------------------------------------------------

    def row_stats(self, x, eps, mu, inv_std, lo=0, hi=None):
        self.k["row_stats"][x.shape[0], TPB](x, eps, mu, inv_std)

    def row_affine(self, x, mu, inv_std, gtab, btab, y, lo=0, hi=None):
        self.k["row_affine"][_blocks_for(x.size), TPB](x, mu, inv_std, gtab, btab, y)

    def row_backward(self, dy, x, mu, inv_std, gtab, dx, lo=0, hi=None):
        dg, db = self.xp.zeros(gtab.shape), self.xp.zeros(gtab.shape)
        self.k["row_backward"][x.shape[0], TPB](dy, x, mu, inv_std, gtab, dx, dg, db)
        return dg, db
