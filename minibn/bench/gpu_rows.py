"""The GPU rows of `minibn bench` (run by `benchmarks/gpu_checks.py bench`): minibn on CuPy
against PyTorch CUDA and the device's copy bandwidth, timed by
:func:`minibn.bench.device.gpu_time_row`; on a CPU stand-in, the same rows at small sizes.
A row is the dict of :mod:`minibn.bench.rows`, plus "errors" {implementation: message} for
an implementation that failed and "target" for the bandwidth target's BN rows."""

from __future__ import annotations

from math import gcd

import numpy as np

from .. import nn
from ..experiments.fig1_net import build_net
from .device import GPU_COPY_BYTES, gpu_time_row
from .steps import (
    layer_bytes,
    minibn_layer_step,
    minibn_train_step,
    torch_device_layer_step,
    torch_fig1_mlp,
    torch_train_step,
)

#: the columns of the GPU rows; minibn's default (impl="auto") is the numba-cuda kernels where
#: numba-cuda is installed
GPU = "minibn CuPy"
GPU_FAST = "minibn CuPy fast"
GPU_REFERENCE = "minibn CuPy reference"
TORCH_CUDA = "PyTorch CUDA"
GPU_BN_SHAPES = [(4096, 1024), (65536, 1024), (64, 64, 32, 32), (256, 64, 56, 56)]
#: the "two large shapes" of the bandwidth target
GPU_TARGET_BN_SHAPES = ((65536, 1024), (256, 64, 56, 56))
GPU_TARGET_FRACTION = 0.7
GPU_BATCHES = (60, 1024)
#: the stand-in's sizes (and a quick check on a GPU): the same rows, small
GPU_TINY = {"bn_shapes": [(64, 32), (256, 32), (8, 4, 6, 6), (16, 4, 6, 6)],
            "large": ((256, 32), (16, 4, 6, 6)), "rows_2d": (256, 32), "rows_4d": (16, 8, 6, 6),
            "batches": (8, 32), "copy_bytes": 2 ** 22, "rounds": 2, "block": 2}
GPU_FULL = {"bn_shapes": GPU_BN_SHAPES, "large": GPU_TARGET_BN_SHAPES, "rows_2d": (65536, 1024),
            "rows_4d": (256, 64, 56, 56), "batches": GPU_BATCHES, "copy_bytes": GPU_COPY_BYTES, "rounds": 5,
            "block": 10}
GPU_TARGET_ROUNDS = 9  # the BN rows of the targets, as on the CPU


def implementation_name(layer):
    """"name (forward path)" of the implementation the layer's last forward ran, or None."""
    impl = getattr(layer, "last_implementation", None)
    return None if impl is None else f"{impl.name} ({impl.forward_path})"


def _gpu_norm_row(dev, name, shape, makes, make_torch, data, copy, rounds, block, target=False):
    """A forward+backward row: minibn's layers ``makes`` {column: make()} and PyTorch's
    ``make_torch()`` (or None) at ``shape``, float32, with the copy reference."""
    x, dy = data(shape)
    xd, dyd = dev.to(x), dev.to(dy)
    row = {"layer": name, "shape": tuple(shape), "mode": "both", "bytes": layer_bytes(x, "both"), "target": target}
    fns, layers, errors = {}, {}, {}
    for column, make in makes.items():
        try:
            layers[column] = make().to(dev.name)
            fns[column] = minibn_layer_step(layers[column], xd, dyd, "both")
        except Exception as e:
            errors[column] = f"{type(e).__name__}: {e}"
    if make_torch is not None and dev.torch_device is not None:
        try:
            fns[TORCH_CUDA] = torch_device_layer_step(dev.torch, make_torch(), x, dy, dev.torch_device)
        except Exception as e:
            errors[TORCH_CUDA] = f"{type(e).__name__}: {e}"
    row["errors"] = errors
    gpu_time_row(dev, row, fns, torch_names=(TORCH_CUDA,), copy=copy, rounds=rounds, block=block)
    if GPU in layers:
        row["implementation"] = implementation_name(layers[GPU])
    return row


def host_data():
    """data(shape) -> (x, dy), float32 host arrays, made once per shape."""
    cache = {}

    def data(shape):
        shape = tuple(shape)
        if shape not in cache:
            rng = np.random.default_rng(0)
            x = rng.standard_normal(shape, dtype=np.float32)
            x *= 3
            x += 1
            cache.clear()  # one shape at a time: the large ones are 256 MiB each
            cache[shape] = x, rng.standard_normal(shape, dtype=np.float32)
        return cache[shape]
    return data


def gpu_bn_rows(dev, shapes=GPU_BN_SHAPES, large=GPU_TARGET_BN_SHAPES, copy=None, rounds=5, block=10, data=None):
    """BatchNorm forward+backward on the device at each shape: minibn (auto, fast, reference)
    and PyTorch CUDA, with the copy reference; the ``large`` shapes (the bandwidth target's)
    get :data:`GPU_TARGET_ROUNDS` rounds (at least ``rounds``)."""
    data = data or host_data()
    rows = []
    for shape in shapes:
        C = shape[1]
        cls = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        T = dev.torch
        tcls = None if T is None else (T.nn.BatchNorm1d if len(shape) == 2 else T.nn.BatchNorm2d)
        target = tuple(shape) in {tuple(s) for s in large}
        makes = {GPU: lambda: cls(C), GPU_FAST: lambda: cls(C, impl="fast"),
                 GPU_REFERENCE: lambda: cls(C, impl="reference")}
        rows.append(_gpu_norm_row(dev, "BatchNorm", shape, makes, None if tcls is None else (lambda: tcls(C)), data,
                                  copy, max(rounds, GPU_TARGET_ROUNDS) if target else rounds, block, target))
    return rows


def gpu_other_norm_rows(dev, rows_2d=(65536, 1024), rows_4d=(256, 64, 56, 56), copy=None, rounds=5, block=10,
                        data=None):
    """LayerNorm, GroupNorm (32 groups), BatchRenorm and Memorized BN forward+backward on the
    device at the large shapes: minibn (auto and reference) and PyTorch CUDA where it has the layer."""
    data = data or host_data()
    T = dev.torch
    L, C = rows_2d[1], rows_4d[1]
    groups = gcd(32, C)  # 32 groups at the benchmark's 64 channels

    def pair(make):
        return {GPU: lambda: make(), GPU_REFERENCE: lambda: make(impl="reference")}
    cases = [("LayerNorm", rows_2d, pair(lambda **kw: nn.LayerNorm(L, **kw)),
              None if T is None else (lambda: T.nn.LayerNorm(L))),
             (f"GroupNorm ({groups} groups)", rows_4d, pair(lambda **kw: nn.GroupNorm(groups, C, **kw)),
              None if T is None else (lambda: T.nn.GroupNorm(groups, C))),
             ("BatchRenorm", rows_2d, pair(lambda **kw: nn.BatchRenorm1d(L, r_max=3.0, d_max=5.0, **kw)), None),
             ("MemorizedBN", rows_2d, pair(lambda **kw: nn.MemorizedBatchNorm1d(L, lam=0.5, **kw)), None)]
    return [_gpu_norm_row(dev, name, shape, makes, make_torch, data, copy, rounds, block)
            for name, shape, makes, make_torch in cases]


def gpu_step_rows(dev, batches=GPU_BATCHES, rounds=5, block=10):
    """The Fig. 1 MLP's training step (forward, backward, SGD) on the device at each batch size."""
    rows = []
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.random((batch, 784), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        row = {"layer": "Fig. 1 MLP step (BN)", "shape": (batch, 784), "mode": "train step", "bytes": 0}
        fns, errors = {}, {}
        try:
            model, _ = build_net(True)
            model.to(dev.name)
            fns[GPU] = minibn_train_step(model, dev.to(x), dev.to(y))
        except Exception as e:
            errors[GPU] = f"{type(e).__name__}: {e}"
        if dev.torch_device is not None:
            try:
                model_t = torch_fig1_mlp(dev.torch)
                fns[TORCH_CUDA] = torch_train_step(dev.torch, model_t, x, y, dev.torch_device)
            except Exception as e:
                errors[TORCH_CUDA] = f"{type(e).__name__}: {e}"
        row["errors"] = errors
        rows.append(gpu_time_row(dev, row, fns, torch_names=(TORCH_CUDA,), rounds=rounds, block=block))
    return rows
