"""How `minibn bench` times on the CPU, and the two numbers it derives from the times.

Every implementation of a row is timed in the same rounds, in alternating blocks
(:func:`interleaved_rounds`), so that a slow spell of a shared machine hits them alike; the
copy reference (:func:`copy_step`, the machine's memory bandwidth) is timed in those rounds
too. :func:`speed` (t_ref / t) and :func:`fraction` (of the copy bandwidth) pair the times
round by round and quote the median round with the middle half of the rounds.
"""

from __future__ import annotations

import time

import numpy as np


def median_time(fn, repeats=20, warmup=2, max_seconds=4.0):
    """Median of up to ``repeats`` timed calls (fewer if they take over ``max_seconds``)."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_rounds(fns, rounds=5, block=5, warmup=2, max_seconds=8.0, pause=0.15, settle=0.05):
    """{name: [[the call times of round 0's block], [round 1's], ...]}: each function in
    ``fns`` timed in alternating blocks.

    Each round runs ``block`` calls of every function in turn, so a slow spell of a
    shared machine (they last seconds) hits all of them alike instead of whichever was
    being timed; within a block the function runs warm. Before each block the machine
    rests ``pause`` seconds: BLAS threads keep spinning for a while after a matrix product
    and would slow whichever function came next. After the rest the function runs untimed
    for ``settle`` seconds: on a shared VM the first work after an idle spell runs slower,
    which a block of short calls would otherwise time. (What these cost when left out:
    docs/benchmarks/history.md.)
    Stops after 3 rounds once ``max_seconds`` have passed.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            t_settle = time.perf_counter()
            while time.perf_counter() - t_settle < settle:
                fn()
            block_times = []
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                block_times.append(time.perf_counter() - t0)
            times[name].append(block_times)
        if r >= 2 and time.perf_counter() - start > max_seconds:
            break
    return times


def interleaved_medians(fns, **kw):
    """{name: median time of all its timed calls} (:func:`interleaved_rounds`, same arguments)."""
    return medians(interleaved_rounds(fns, **kw))


def medians(times):
    """{name: median of all its calls} of :func:`interleaved_rounds`'s times."""
    return {name: float(np.median(np.concatenate(t))) for name, t in times.items()}


def middle_half(values):
    """(median, 25th percentile, 75th percentile) of the rounds' values."""
    return float(np.median(values)), float(np.percentile(values, 25)), float(np.percentile(values, 75))


def time_row(row, fns, **kw):
    """Time ``fns`` (:func:`interleaved_rounds`) into the row: row["t"] {name: median of all
    calls} and row["rounds"] {name: [median of each round's block]}, which :func:`speed`
    pairs round by round."""
    times = interleaved_rounds(fns, **kw)
    row["t"] = medians(times)
    row["rounds"] = {name: [float(np.median(b)) for b in t] for name, t in times.items()}
    return row


#: the key of the copy reference timed beside a row's implementations
COPY = "copy"


def with_copy_reference(fns, row, copy, rounds=3):
    """Time ``fns`` and the copy reference ``copy = (step, bytes)`` in the same interleaved
    rounds; set row["t"], row["bw"], the copy bandwidth of those rounds, and row["bw_rounds"],
    each round's (a slow spell of the machine then lowers the reference too, not only the
    row: :func:`fraction` pairs them round by round)."""
    step, moved = copy
    time_row(row, {**fns, COPY: step}, rounds=rounds)
    row["bw"] = moved / row["t"].pop(COPY)
    row["bw_rounds"] = [moved / t for t in row["rounds"].pop(COPY)]
    return row


def speed(row, name, ref):
    """minibn's speed relative to ``ref`` in a row: (ratio, low, high), the ratio being the
    median over the rounds of t_ref / t_name within each round (the two blocks ran seconds
    apart, so a slow spell of the machine changes both), low and high the 25th and 75th
    percentiles of the rounds' ratios (the middle half of the rounds). Without per-round
    times (a GPU row), or for ``ref`` itself: the ratio of the medians, low = high = None."""
    rounds = row.get("rounds", {})
    if name in rounds and ref in rounds and name != ref:
        return middle_half(np.array(rounds[ref]) / np.array(rounds[name]))
    return row["t"][ref] / row["t"][name], None, None


def fraction(row, name, bw=None):
    """The fraction of the copy bandwidth that ``name`` reaches in a row with a byte count:
    (value, low, high). With the copy timed in the row's own rounds (row["bw_rounds"]) the
    value is the median over the rounds of (bytes / t_name) / copy bandwidth within the
    round, low and high the 25th and 75th percentiles, as in :func:`speed`; otherwise
    bytes / median time / (row["bw"], else ``bw``), low = high = None."""
    if "bw_rounds" in row and name in row.get("rounds", {}):
        return middle_half(row["bytes"] / np.array(row["rounds"][name]) / np.array(row["bw_rounds"]))
    return row["bytes"] / row["t"][name] / row.get("bw", bw), None, None


def copy_step(nbytes=256 * 2 ** 20, threads=1):
    """(step, bytes): a call of ``step`` copies ``nbytes`` with np.copyto on ``threads``
    threads (each its own slice: np.copyto releases the GIL) and moves ``bytes`` (read +
    written). 256 MiB is far beyond the caches: this is the memory's bandwidth."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    if threads == 1:
        return (lambda: np.copyto(dst, src)), 2 * nbytes
    from concurrent.futures import ThreadPoolExecutor
    bounds = np.linspace(0, src.size, threads + 1).astype(int)
    pairs = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="minibn-bench-copy")
    return (lambda: list(pool.map(lambda p: np.copyto(*p), pairs))), 2 * nbytes


def copy_bandwidth_cpu(nbytes=256 * 2 ** 20, threads=1):
    """Bytes read + written per second by np.copyto of ``nbytes``, on ``threads`` threads."""
    step, moved = copy_step(nbytes, threads)
    return moved / median_time(step, repeats=10)


def gpu_time(fn, repeats=50):  # pragma: no cover - GPU only
    """Median device time of ``repeats`` calls of a CuPy function (cupyx.profiler.benchmark:
    CUDA events around each call, the host waiting for the device)."""
    from cupyx.profiler import benchmark
    r = benchmark(fn, n_repeat=repeats, n_warmup=5)
    return float(np.median(r.gpu_times[0]))
