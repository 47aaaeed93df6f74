"""Run independent training jobs in parallel processes, one BLAS (and numba) thread each.

The steps of minibn's small networks are mostly Python and small matrix products, so
two single-threaded processes on two cores do about twice the work of one process
with a two-threaded BLAS. Workers are spawned (not forked: a forked BLAS thread pool
can deadlock) with the BLAS thread variables set to 1 in their environment.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

# numba (the fused BN loops) reads its own variable
_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_jobs(n_tasks):
    """min(tasks, cores) on the numpy backend; 1 on the GPU (one device, one process)."""
    from .. import backend
    return max(1, min(n_tasks, os.cpu_count() or 1)) if backend.active() == "numpy" else 1


def run_tasks(fn, tasks, jobs):
    """[fn(*t) for t in tasks], in ``jobs`` processes when jobs > 1.

    Returns (results, interrupted). On Ctrl-C (KeyboardInterrupt in the parent) the
    results of tasks already finished, and of those whose worker returned a partial
    result, are kept; the rest are None.
    """
    tasks = list(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        results = []
        try:
            for t in tasks:
                results.append(fn(*t))
        except KeyboardInterrupt:
            return results + [None] * (len(tasks) - len(results)), True
        return results, False
    saved = {k: os.environ.get(k) for k in _BLAS_THREAD_VARS}
    os.environ.update({k: "1" for k in _BLAS_THREAD_VARS})  # inherited by the spawned workers
    results, interrupted = [None] * len(tasks), False
    try:
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(fn, *t) for t in tasks]
            for i, fut in enumerate(futures):
                try:
                    results[i] = fut.result()
                except KeyboardInterrupt:
                    # Ctrl-C reached the workers too: each running one stops its training and
                    # returns its partial history. Collect every one of them, not just this one.
                    interrupted = True
                    for f in futures:
                        f.cancel()  # those not started yet
                    for j, f in enumerate(futures):
                        if results[j] is None and not f.cancelled():
                            try:
                                results[j] = f.result(timeout=60)
                            except BaseException:
                                pass
                    break
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results, interrupted


def run_with_progress(fn, tasks, jobs, desc, progress=True):
    """run_tasks over ``tasks`` in chunks of 2 * jobs, with a progress bar
    (:func:`minibn.train.progress_bar`); stops at Ctrl-C.

    Returns (results of the tasks that finished, interrupted).
    """
    from ..train import progress_bar

    tasks, results, interrupted = list(tasks), [], False
    step = max(jobs, 1) * 2
    with progress_bar(len(tasks), desc=desc, disable=not progress) as bar:
        for i in range(0, len(tasks), step):
            res, interrupted = run_tasks(fn, tasks[i:i + step], jobs)
            results += [r for r in res if r is not None]
            bar.update(len(tasks[i:i + step]))
            if interrupted:
                break
    return results, interrupted
