"""What the compiled CPU loops need: numba, the input checks, and a thread pool for row blocks.

The loops themselves are in :mod:`_bn_loops` (BatchNorm, BatchRenorm, Memorized BN) and
:mod:`_row_loops` (LayerNorm, GroupNorm). numba is imported only when a loop first runs
(importing it takes a third of a second, so ``import minibn`` does not pay for it); the
first call of each dtype and rank compiles the loops (a few seconds, then cached on disk).

Threads: the loops release the GIL (``nogil=True``). An input of at least
:data:`PARALLEL_MIN_SIZE` values is split into blocks of rows, one per core, run on a
thread pool with the calling thread taking the first; a smaller one is one call on the
calling thread (numba's own parallel loops are the wrong tool on a few cores: the OpenMP
pool keeps spinning next to OpenBLAS's, and each launch costs more than a small loop).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import threading
import time

import numpy as np

from ..backend import get_array_module

#: inputs of at least this many values are split into blocks of rows, one per thread. Below
#: it, handing blocks to the threads costs more than the threads save (where the line lies:
#: docs/benchmarks/history.md)
PARALLEL_MIN_SIZE = 2 ** 19


@functools.cache  # asked at every auto selection: once is enough
def available():
    """True when numba can be imported (the compiled loops' only requirement beyond NumPy).

    numba is a dependency of minibn, but a platform without its wheels, or a NumPy newer
    than the installed numba supports, can leave it unimportable: then minibn runs on
    NumPy (the reference and fast paths) and says so once, with the reason.
    """
    try:
        if importlib.util.find_spec("numba") is None:
            _say_once("numba is not installed: the fused CPU loops are off, and minibn runs on NumPy "
                      "(pip install numba to get them)")
            return False
        import numba  # noqa: F401
    except Exception as e:  # an ImportError, or numba refusing this NumPy
        _say_once(f"numba cannot be imported ({type(e).__name__}: {e}): the fused CPU loops are off, "
                  f"and minibn runs on NumPy")
        return False
    return True


class FusedLoopsWarning(UserWarning):
    """The compiled CPU loops are not available here (the message says why)."""


def _say_once(message):
    import warnings
    warnings.warn(f"minibn: {message}", FusedLoopsWarning, stacklevel=3)


def applies(x):
    """Whether the compiled loops can take x: a float32/float64 NumPy array, with numba installed."""
    return type(x) is np.ndarray and x.dtype in (np.float32, np.float64) and available()


def check(x):
    """Raise the reason the compiled loops cannot take x (nothing when they can)."""
    if get_array_module(x) is not np:
        raise NotImplementedError("the fused CPU loops take NumPy arrays (for CuPy arrays, the fused GPU "
                                  "kernels need numba-cuda)")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"the fused path takes float32 or float64 arrays, got dtype {x.dtype} "
                        f"(use impl='reference', which takes any floating-point dtype)")
    if not available():
        raise ImportError('the fused path needs numba, a dependency of minibn that is missing or cannot be '
                          'imported here: pip install numba (or use impl="reference")')


@functools.cache  # called at every forward and backward: skip import_module's lookup
def loops(module):
    """The compiled loops of ``module`` ("_bn_loops" or "_row_loops" of this package)."""
    _announce_compilation()
    return importlib.import_module(f".{module}", __package__)


@functools.cache
def _announce_compilation():
    """Say when numba compiles our loops (the first use on a machine, or of a new input type:
    a few seconds), rather than pause without a word (:class:`_Announce`). Loading them from
    numba's disk cache compiles nothing and says nothing."""
    from numba.core import event

    class Listener(_Announce, event.Listener):  # numba takes instances of its Listener only
        pass

    event.register("numba:compile", Listener(_say))


def _say(message):
    """A line on stderr through ``tqdm.write``, which lifts a progress bar of this process out of
    the way and redraws it below, so that a message never breaks into a bar's line."""
    import sys

    with _say_lock:  # a timer's line and the main thread's must not interleave
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is a dependency, but the message must not depend on it
            print(message, file=sys.stderr, flush=True)
        else:
            tqdm.write(message, file=sys.stderr)
            sys.stderr.flush()


_say_lock = threading.Lock()


class _Announce:
    """numba's compile events (a ``numba.core.event.Listener``) turned into lines for ``say``.

    The first compilation of the process is announced before and after. A later one (each loop
    and input type compiles apart: a dozen in a first session) is announced only if it is still
    running ``delay`` seconds after it began, from a timer (LLVM runs without the GIL), and then
    when it ends; the short ones stay silent."""

    def __init__(self, say, delay=1.0):
        self.say, self.delay = say, delay
        self.depth, self.start, self.announced, self.timer = 0, 0.0, False, None

    def on_start(self, ev):
        if self.depth == 0 and _ours(ev):
            self.start = time.perf_counter()
            if not self.announced:
                self.say("minibn: compiling the fused CPU loops for this input type (once: they are cached on "
                         "disk for next time)...")
            else:
                self.timer = threading.Timer(self.delay, self.say,
                                             ("minibn: compiling more of the fused loops (once)...",))
                self.timer.daemon = True
                self.timer.start()
            self.depth = 1
        elif self.depth:
            self.depth += 1

    def on_end(self, ev):
        if self.depth:
            self.depth -= 1
            if self.depth == 0:
                took = time.perf_counter() - self.start
                timer, self.timer = self.timer, None
                if timer is not None:
                    timer.cancel()
                    timer.join()  # (if it was saying its line, let it finish first)
                if not self.announced or took >= self.delay:
                    self.say(f"minibn: compiled in {took:.1f} s")
                self.announced = True


def _ours(ev):
    dispatcher = (ev.data or {}).get("dispatcher")
    return getattr(getattr(dispatcher, "py_func", None), "__module__", "").startswith(__package__)


_pool, _pool_size = None, 0


def _forget_pool():
    global _pool, _pool_size
    _pool, _pool_size = None, 0


# A forked child inherits the pool object but none of its threads: work sent to it would
# wait forever. The child starts its own pool instead.
os.register_at_fork(after_in_child=_forget_pool)


#: set by :func:`set_threads` (None: numba's count)
_threads_limit = None


def threads():
    """How many threads the row blocks use: :func:`set_threads`'s limit, else numba's count
    (the CPU count, or the NUMBA_NUM_THREADS variable)."""
    return _threads_limit or _numba_threads()


@functools.cache
def _numba_threads():
    import numba
    return numba.config.NUMBA_NUM_THREADS


def set_threads(n):
    """Use at most n threads for the row blocks (None: numba's count again). Several
    processes on one machine (MPI ranks) share its cores this way."""
    global _threads_limit
    _threads_limit = None if n is None else max(1, int(n))


def parallel(a):
    """Whether a (rows first) is large enough to be split into row blocks on threads."""
    return a.size >= PARALLEL_MIN_SIZE and min(a.shape[0], threads()) > 1


def run_blocks(kernel, a, *args):
    """``[kernel(*args, lo, hi) for each block of rows [lo, hi) of a]``: one block for a small
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
