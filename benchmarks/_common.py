"""Timing helpers shared by the benchmarks: medians, copy bandwidth, machine description."""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def median_time(fn, repeats=30, warmup=3, min_time=0.0):
    """Median wall time of fn() in seconds over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def copy_bandwidth(nbytes=256 * 2 ** 20, repeats=20):
    """The machine's single-threaded copy bandwidth (bytes read + written per second)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    t = median_time(lambda: np.copyto(dst, src), repeats=repeats)
    return 2 * nbytes / t


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}
