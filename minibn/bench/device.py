"""Where and how the GPU rows are timed: a :class:`GpuDevice` (CuPy and PyTorch CUDA, or a
CPU stand-in), the device's copy bandwidth, and the GPU counterpart of
:func:`minibn.bench.timing.time_row`.

Each call of an implementation is timed by CUDA events recorded before and after it, the
host waiting for the second (cupyx.profiler.benchmark for minibn and the copy,
torch.cuda.Event for PyTorch: the same method): a call's time runs from its first kernel to
its last, with any wait of the device for the host's launches in between. The
implementations of a row and the copy reference are timed in alternating blocks, round by
round, so that :func:`~minibn.bench.timing.speed` and :func:`~minibn.bench.timing.fraction`
pair them as they do on the CPU. Without CuPy the same code runs on a stand-in (NumPy
arrays, wall-clock times, PyTorch CPU in the PyTorch CUDA column), so that the rows, the
report and the targets can be tested on any machine.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from .. import backend
from .timing import COPY, medians


def host_call_times(fn, n):
    """[wall-clock seconds of each of n calls] of ``fn``."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


class GpuDevice:
    """Where the GPU rows run: CuPy and PyTorch CUDA, or (``stand_in=True``, or no CuPy with
    a device and ``allow_stand_in``) NumPy and PyTorch CPU with wall-clock times."""

    def __init__(self, torch=None, stand_in=False, allow_stand_in=False):
        if not stand_in and backend.cupy is None:
            if not allow_stand_in:
                try:
                    backend.use("cupy")  # raises here (no usable CuPy), naming why and how to install it
                except RuntimeError as e:
                    raise RuntimeError(f"the GPU rows need CuPy with a CUDA device: {e}") from None
            stand_in = True
        self.stand_in, self.torch = stand_in, torch
        self.xp = np if stand_in else backend.cupy
        if torch is None:
            self.torch_device = None
        elif stand_in:
            self.torch_device = "cpu"
        else:
            self.torch_device = "cuda" if torch.cuda.is_available() else None

    @property
    def name(self):
        return "cpu" if self.stand_in else "gpu"

    def to(self, a):
        return backend.to_device(a, self.name)

    def synchronize(self):
        if not self.stand_in:  # pragma: no cover - GPU only
            self.xp.cuda.Device().synchronize()
            if self.torch_device == "cuda":
                self.torch.cuda.synchronize()

    def call_times(self, fn, n):
        """[seconds of each of n calls] of a CuPy (minibn) function."""
        if self.stand_in:
            return host_call_times(fn, n)
        from cupyx.profiler import benchmark  # pragma: no cover - GPU only
        return [float(t) for t in benchmark(fn, n_repeat=n, n_warmup=0).gpu_times[0]]  # pragma: no cover

    def torch_call_times(self, fn, n):
        """[seconds of each of n calls] of a PyTorch function (CUDA events on the GPU)."""
        if self.torch_device != "cuda":
            return host_call_times(fn, n)
        torch, times = self.torch, []  # pragma: no cover - GPU only
        for _ in range(n):  # pragma: no cover - GPU only
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return times  # pragma: no cover - GPU only

    def active(self):
        """A context in which minibn creates its arrays on this device (backend.use)."""
        @contextlib.contextmanager
        def ctx():
            previous = backend.active()
            backend.use("numpy" if self.stand_in else "cupy")
            try:
                yield self
            finally:
                backend.use(previous)
        return ctx()


#: 1 GiB: far beyond the caches of a data-centre GPU (an H200 has 60 MB of L2)
GPU_COPY_BYTES = 2 ** 30


def gpu_copy_step(dev, nbytes=GPU_COPY_BYTES):
    """(step, bytes): a copy of ``nbytes`` on the device (cupy.copyto), and the bytes it moves
    (read + written)."""
    src = dev.xp.ones(nbytes // 4, dev.xp.float32)
    dst = dev.xp.empty_like(src)
    return (lambda: dev.xp.copyto(dst, src)), 2 * src.nbytes


def gpu_copy_bandwidth(dev, nbytes=GPU_COPY_BYTES, repeats=20):
    """Bytes read + written per second by a copy of ``nbytes`` on the device (median call)."""
    step, moved = gpu_copy_step(dev, nbytes)
    for _ in range(3):
        step()
    dev.synchronize()
    return moved / float(np.median(dev.call_times(step, repeats)))


def gpu_time_row(dev, row, fns, torch_names=(), copy=None, rounds=5, block=10, warmup=3):
    """Time ``fns`` {name: call} on ``dev`` in alternating blocks of ``block`` calls, ``rounds``
    rounds, with the copy reference ``copy`` = (step, bytes) in the same rounds: row["t"] (median
    of all calls), row["rounds"] (each round's median), row["bw"] and row["bw_rounds"] (the copy's),
    as :func:`time_row` and :func:`with_copy_reference` give on the CPU. An implementation that
    raises is left out of the row, its error in row["errors"]."""
    calls = dict(fns)
    if copy is not None:
        calls[COPY] = copy[0]
    errors = row.setdefault("errors", {})
    for name in list(calls):
        try:
            for _ in range(warmup):
                calls[name]()
            dev.synchronize()
        except Exception as e:  # one implementation failing must not lose the others
            errors[name] = f"{type(e).__name__}: {e}"
            del calls[name]
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in list(calls.items()):
            if name not in times:
                continue
            try:
                timer = dev.torch_call_times if name in torch_names else dev.call_times
                times[name].append(timer(fn, block))
            except Exception as e:
                errors[name] = f"{type(e).__name__}: {e}"
                del times[name]
    times = {name: t for name, t in times.items() if t}
    row["t"] = medians(times)
    row["rounds"] = {name: [float(np.median(b)) for b in t] for name, t in times.items()}
    if COPY in row["t"]:
        moved = copy[1]
        row["bw"] = moved / row["t"].pop(COPY)
        row["bw_rounds"] = [moved / t for t in row["rounds"].pop(COPY)]
    if not errors:
        del row["errors"]
    return row
