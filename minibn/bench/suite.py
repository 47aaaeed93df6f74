"""The two suites: :func:`run` (`minibn bench`: the CPU rows, their report and figure, written
to a folder) and :func:`gpu_bench` (the GPU rows, run by `benchmarks/gpu_checks.py bench`)."""

from __future__ import annotations

import os
import time
import traceback

from .. import backend
from ..experiments.outputs import figure_bytes, write_all
from .device import GpuDevice, gpu_copy_bandwidth, gpu_copy_step
from .gpu_rows import GPU_FULL, GPU_TINY, gpu_bn_rows, gpu_other_norm_rows, gpu_step_rows, host_data
from .machine import gpu_machine, machine
from .report import gpu_targets, plot, report, targets
from .rows import BN_SHAPES, FAST_BN_SHAPES, bn_rows, other_norm_rows, step_rows
from .timing import copy_bandwidth_cpu, copy_step


def run(out="results/bench", fast=False, progress=True):
    """Run the suite on the CPU (and the GPU rows where CuPy and a device are present); write
    ``cpu.md`` and ``cpu.png`` to ``out`` and return the report's text."""
    from tqdm.auto import tqdm

    try:
        import torch
    except ImportError:
        torch = None
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **machine()}
    shapes = FAST_BN_SHAPES if fast else BN_SHAPES
    cuda = backend.cupy is not None
    batches = (60,) if fast else (60, 1024)
    # the copy reference timed beside each row costs a 256 MiB copy per call: only in the full run
    copy = None if fast else copy_step(threads=os.cpu_count() or 1)
    parts = [lambda s=s: bn_rows(torch, [s], cuda=cuda, copy=copy) for s in shapes]
    if not fast:
        parts.append(lambda: other_norm_rows(torch, copy=copy))
    parts.append(lambda: step_rows(torch, batches=batches, fast=fast, progress=say))
    rows = []
    with tqdm(total=len(parts) + 1, desc="minibn bench", disable=not progress, leave=False) as bar:
        def say(text):
            bar.set_postfix_str(text, refresh=True)
        bw_one = copy_bandwidth_cpu()
        bw = copy_bandwidth_cpu(threads=os.cpu_count() or 1)
        bar.update(1)
        for part in parts:
            rows += part()
            bar.update(1)
    text = report(rows, bw, info, bw_one=bw_one)
    tg = targets(rows, bw)
    if tg:
        text += "\n\nTargets (measured in this run):\n\n"
        for d, v, goal, met, sp in tg:
            spread = "" if sp is None else f" (middle half of the rounds: {sp[0]:.2f}-{sp[1]:.2f})"
            text += f"- {d}: {v:.2f}{spread} (goal >= {goal}): {'met' if met else 'NOT met'}\n"
        text = text.rstrip("\n")
    if not cuda:
        text += ("\n\nNo CUDA device was present: the minibn CuPy and PyTorch CUDA columns, and the GPU targets "
                 "(>= 70% of copy bandwidth, at least as fast as PyTorch CUDA), were not measured.")
    files = {"cpu.md": None}
    if torch is None:
        # the figure is the speed relative to PyTorch: without it there is nothing to draw
        text += ("\n\nPyTorch is not installed: no speed ratios and no cpu.png, only the times and the "
                 "fractions of the copy bandwidth (pip install torch for the comparison).")
    else:
        files["cpu.png"] = figure_bytes(plot(rows))
    files["cpu.md"] = (text + "\n").encode()
    # both files replace the previous run's together (a folder such as docs/benchmarks keeps
    # its other notes: only these two are bench's)
    write_all(out, files, ("cpu.md", "cpu.png"))
    return text


def gpu_bench(torch=None, stand_in=False, tiny=False, progress=None):
    """Every GPU row, each part on its own (an error is recorded and the next part runs):
    {"info", "stand_in", "copy_bandwidth", "rows", "targets", "errors"}. ``tiny``: the small
    sizes of :data:`GPU_TINY` (the stand-in's; a quick check on a GPU); ``progress(text)`` is
    called before each part."""
    sizes = GPU_TINY if tiny else GPU_FULL
    dev = GpuDevice(torch, stand_in=stand_in, allow_stand_in=stand_in)
    result = {"info": gpu_machine(dev), "stand_in": dev.stand_in, "tiny": tiny, "copy_bandwidth": None, "rows": [],
              "targets": [], "errors": []}
    say = progress or (lambda text: None)
    rounds, block = sizes["rounds"], sizes["block"]
    data = host_data()
    with dev.active():
        copy = None
        try:
            say("copy bandwidth")
            copy = gpu_copy_step(dev, sizes["copy_bytes"])
            result["copy_bandwidth"] = gpu_copy_bandwidth(dev, sizes["copy_bytes"])
        except Exception:
            result["errors"].append(("copy bandwidth", traceback.format_exc()))
        parts = [(f"BatchNorm {s}", lambda s=s: gpu_bn_rows(dev, [s], sizes["large"], copy, rounds, block, data))
                 for s in sizes["bn_shapes"]]
        parts.append(("LayerNorm, GroupNorm, BatchRenorm, Memorized BN",
                      lambda: gpu_other_norm_rows(dev, sizes["rows_2d"], sizes["rows_4d"], copy, rounds, block, data)))
        parts.append(("Fig. 1 MLP steps", lambda: gpu_step_rows(dev, sizes["batches"], rounds, block)))
        for name, part in parts:
            say(name)
            try:
                result["rows"] += part()
            except Exception:
                result["errors"].append((name, traceback.format_exc()))
    result["targets"] = gpu_targets(result["rows"])
    return result
