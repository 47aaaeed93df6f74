"""Run independent training jobs in parallel processes, one BLAS (and numba) thread each.

The steps of minibn's small networks are mostly Python and small matrix products, so
two single-threaded processes on two cores do about twice the work of one process
with a two-threaded BLAS. Workers are spawned (not forked: a forked BLAS thread pool
can deadlock) with the BLAS thread variables set to 1 in their environment.

Stopping: Ctrl-C in a terminal reaches every process of the job, and each worker returns its
partial result. A SIGTERM (``kill``, ``timeout``, a batch scheduler), or a Ctrl-C sent with
``kill -INT`` to the parent, reaches the parent alone: the parent then interrupts the workers
itself, so both ways keep the same partial results. Workers never outlive the run: those
still running once the results are collected are terminated, and a worker whose parent has
died (``kill -9``) exits by itself instead of waiting for work that will never come.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

# numba (the fused BN loops) reads its own variable
_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_jobs(n_tasks):
    """min(tasks, cores) on the numpy backend; 1 on the GPU (one device, one process)."""
    from .. import backend
    return max(1, min(n_tasks, os.cpu_count() or 1)) if backend.active() == "numpy" else 1


def _stop_once(signum, frame):
    """A worker's SIGINT and SIGTERM handler: the first one raises KeyboardInterrupt, which the
    training loop turns into a partial result; later ones are ignored (a Ctrl-C reaches the
    worker from the terminal and again from the parent, and the second must not cut the
    final evaluation of the first short). SIGTERM gets its default back, so that the parent
    can still end a worker that does not finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt


def _exit_with(parent):
    """Exit as soon as the parent process is gone (its orphans are adopted by another)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _worker_started(parent):
    """Run in each worker before its first task."""
    signal.signal(signal.SIGINT, _stop_once)
    signal.signal(signal.SIGTERM, _stop_once)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _end(workers, grace=10.0):
    """Wait up to ``grace`` seconds for the workers to exit (an idle one exits when the pool
    shuts down, cleaning up after itself), then terminate those left, and kill any that
    still do not go."""
    deadline = time.monotonic() + grace
    for p in workers:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in workers:
        if p.is_alive():
            p.terminate()
            p.join(grace)
        if p.is_alive():
            p.kill()
            p.join()


def run_tasks(fn, tasks, jobs):
    """[fn(*t) for t in tasks], in ``jobs`` processes when jobs > 1.

    Returns (results, interrupted). On Ctrl-C or SIGTERM (KeyboardInterrupt in the parent)
    the results of tasks already finished, and of those whose worker returned a partial
    result, are kept; the rest are None. No worker is left running after this returns.
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
    results, interrupted, finished = [None] * len(tasks), False, False
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_started, initargs=(os.getpid(),))
    workers = []
    try:
        futures = [pool.submit(fn, *t) for t in tasks]
        workers = [p for p in multiprocessing.active_children() if p not in others]
        for i, fut in enumerate(futures):
            try:
                results[i] = fut.result()
            except KeyboardInterrupt:
                # Stop every running worker the way Ctrl-C does (a SIGTERM reached this process
                # alone), then collect the partial result each returns.
                interrupted = True
                for f in futures:
                    f.cancel()  # those not started yet
                for p in workers:
                    if p.is_alive():
                        os.kill(p.pid, signal.SIGINT)
                for j, f in enumerate(futures):
                    if results[j] is None and not f.cancelled():
                        try:
                            results[j] = f.result(timeout=60)
                        except BaseException:
                            pass
                break
        finished = not interrupted
    finally:
        # after a normal end the workers exit on their own; otherwise (an interrupt, a task's
        # error) those still busy are ended rather than waited for
        pool.shutdown(wait=finished, cancel_futures=True)
        if not finished:
            _end(workers)
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
