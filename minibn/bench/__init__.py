"""The benchmark suite behind `minibn bench`: minibn vs PyTorch, CPU (and CuPy vs CUDA when present).

Every row is timed in one run against the same references: PyTorch CPU (when installed),
minibn on CuPy and PyTorch CUDA (when a GPU is present), and the machine's copy bandwidth,
timed in the same interleaved rounds as each row that counts bytes. Times are medians,
the implementations of a row timed in alternating blocks, round by round
(:func:`~minibn.bench.timing.interleaved_rounds`), so that the machine's slow spells hit
them alike. Effective bandwidth counts the bytes of x and y in the forward and of x, dy and
dx in the backward. GPU timings synchronise the device (cupyx.profiler.benchmark; CUDA
events for PyTorch).

The modules, in the order a run uses them:

* :mod:`~minibn.bench.timing`: the CPU timing, the copy reference, speed and fraction;
* :mod:`~minibn.bench.device`: the same on a GPU (or its CPU stand-in);
* :mod:`~minibn.bench.machine`: the machine and the versions the numbers depend on;
* :mod:`~minibn.bench.steps`: what a row times (minibn's and PyTorch's layers and training
  steps, the hand-built PyTorch nets);
* :mod:`~minibn.bench.rows` and :mod:`~minibn.bench.gpu_rows`: the rows;
* :mod:`~minibn.bench.report`: the table, the targets, the figure;
* :mod:`~minibn.bench.suite`: :func:`run` (writes the files) and :func:`gpu_bench`.

Outputs (``--out``, default results/bench/; the committed tables in docs/benchmarks/ are
written with ``--out docs/benchmarks``): ``cpu.md`` (tables, machine, targets) and ``cpu.png``.
"""

from __future__ import annotations

from .device import GPU_COPY_BYTES, GpuDevice, gpu_copy_bandwidth, gpu_copy_step, gpu_time_row
from .gpu_rows import (
    GPU,
    GPU_BATCHES,
    GPU_BN_SHAPES,
    GPU_FAST,
    GPU_FULL,
    GPU_REFERENCE,
    GPU_TARGET_BN_SHAPES,
    GPU_TARGET_FRACTION,
    GPU_TARGET_ROUNDS,
    GPU_TINY,
    TORCH_CUDA,
    gpu_bn_rows,
    gpu_other_norm_rows,
    gpu_step_rows,
)
from .machine import gpu_machine, machine
from .report import gpu_json, gpu_report, gpu_targets, plot, report, targets
from .rows import BN_SHAPES, FAST_BN_SHAPES, TARGET_BN_SHAPES, TARGET_ROUNDS, bn_rows, other_norm_rows, step_rows
from .steps import (
    minibn_layer_step,
    minibn_train_step,
    small_conv_net,
    torch_device_layer_step,
    torch_fig1_mlp,
    torch_layer_step,
    torch_train_step,
)
from .suite import gpu_bench, run
from .timing import (
    COPY,
    copy_bandwidth_cpu,
    copy_step,
    fraction,
    interleaved_medians,
    interleaved_rounds,
    median_time,
    speed,
    time_row,
)

__all__ = [
    "BN_SHAPES", "COPY", "FAST_BN_SHAPES", "GPU", "GPU_BATCHES", "GPU_BN_SHAPES", "GPU_COPY_BYTES", "GPU_FAST",
    "GPU_FULL", "GPU_REFERENCE", "GPU_TARGET_BN_SHAPES", "GPU_TARGET_FRACTION", "GPU_TARGET_ROUNDS", "GPU_TINY",
    "GpuDevice", "TARGET_BN_SHAPES", "TARGET_ROUNDS", "TORCH_CUDA", "bn_rows", "copy_bandwidth_cpu", "copy_step",
    "fraction", "gpu_bench", "gpu_bn_rows", "gpu_copy_bandwidth", "gpu_copy_step", "gpu_json", "gpu_machine",
    "gpu_other_norm_rows", "gpu_report", "gpu_step_rows", "gpu_targets", "gpu_time_row", "interleaved_medians",
    "interleaved_rounds", "machine", "median_time", "minibn_layer_step", "minibn_train_step", "other_norm_rows",
    "plot", "report", "run", "small_conv_net", "speed", "step_rows", "targets", "time_row", "torch_device_layer_step",
    "torch_fig1_mlp", "torch_layer_step", "torch_train_step",
]
