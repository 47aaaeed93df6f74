"""What the compiled CPU loops need: numba, the input checks, and a thread pool for row blocks.

The loops themselves are in :mod:`_bn_loops` (BatchNorm, BatchRenorm, Memorized BN) and
:mod:`_row_loops` (LayerNorm, GroupNorm). numba is imported only when a loop first runs
(importing it takes a third of a second, so ``import minibn`` does not pay for it); the
first call of each dtype and rank compiles the loops (a few seconds, then cached on disk).

Threads: the loops release the GIL (``nogil=True``). An input of at least
:data:`PARALLEL_MIN_SIZE` values is split into blocks of rows, one per core, run on a
thread pool with the calling thread taking the first; a smaller one is one call on the
calling thread (numba's own parallel loops were the wrong tool on two cores: the OpenMP
pool kept spinning next to OpenBLAS, and its workqueue cost 30-60 us per launch).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os

import numpy as np

from ..backend import get_array_module

#: inputs of at least this many values are split into blocks of rows, one per thread. Below
#: it, starting the threads costs more than they save (measured on 2 cores: one thread is
#: faster at (256, 1024), two at (512, 1024))
PARALLEL_MIN_SIZE = 2 ** 19


@functools.cache  # looking for a module that is not imported yet costs 50 us: once is enough
def available():
    """True when numba is installed (the compiled loops' only requirement beyond NumPy)."""
    return importlib.util.find_spec("numba") is not None


def applies(x):
    """Whether the compiled loops can take x: a float32/float64 NumPy array, with numba installed."""
    return type(x) is np.ndarray and x.dtype in (np.float32, np.float64) and available()


def check(x):
    """Raise the reason the compiled loops cannot take x (nothing when they can)."""
    if get_array_module(x) is not np:
        raise NotImplementedError("the fused path runs on NumPy arrays only: GPU fused kernels are not "
                                  "written yet; use impl='auto' (or 'fast' for BN) on the GPU")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"the fused path takes float32 or float64 arrays, got dtype {x.dtype} "
                        f"(use impl='reference', which accumulates statistics in float64)")
    if not available():
        raise ImportError('the fused path needs numba: pip install "minibn[fast]" (or use impl="reference")')


def loops(module):
    """The compiled loops of ``module`` ("_bn_loops" or "_row_loops" of this package)."""
    return importlib.import_module(f".{module}", __package__)


_pool, _pool_size = None, 0


def _forget_pool():
    global _pool, _pool_size
    _pool, _pool_size = None, 0


# A forked child inherits the pool object but none of its threads: work sent to it would
# wait forever. The child starts its own pool instead.
os.register_at_fork(after_in_child=_forget_pool)


def threads():
    import numba
    return numba.config.NUMBA_NUM_THREADS  # the CPU count, or the NUMBA_NUM_THREADS variable


def parallel(a):
    """Whether a (rows first) is large enough to be split into row blocks on threads."""
    return a.size >= PARALLEL_MIN_SIZE and min(a.shape[0], threads()) > 1


def run_blocks(kernel, a, *args):
    """[kernel(*args, lo, hi) for each block of rows [lo, hi) of a]: one block for a small
    a; for a large one, a block per thread, on the pool, the calling thread taking the first."""
    global _pool, _pool_size
    N = a.shape[0]
    n = min(N, threads()) if a.size >= PARALLEL_MIN_SIZE else 1
    if n == 1:
        return [kernel(*args, 0, N)]
    if _pool is None or _pool_size < n - 1:
        from concurrent.futures import ThreadPoolExecutor
        _pool, _pool_size = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="minibn-loops"), n - 1
    bounds = [(i * N // n, (i + 1) * N // n) for i in range(n)]
    futures = [_pool.submit(kernel, *args, lo, hi) for lo, hi in bounds[1:]]
    return [kernel(*args, *bounds[0])] + [f.result() for f in futures]
