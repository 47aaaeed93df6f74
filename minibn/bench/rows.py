"""The CPU rows of `minibn bench`: BatchNorm at several shapes and modes, the other
normalization layers at one large shape, and whole training steps; minibn's implementations
against PyTorch CPU, each row timed by :func:`minibn.bench.timing.time_row` (alternating
blocks, round by round). A row is a dict: layer, shape, mode, bytes (0: no byte count),
t {implementation: median seconds}, rounds {implementation: [each round's median]}, and,
with the copy reference, bw and bw_rounds."""

from __future__ import annotations

import numpy as np

from .. import backend, nn
from .peers import peer_row
from .steps import layer_bytes, minibn_layer_step, torch_layer_step
from .timing import gpu_time, time_row, with_copy_reference

#: the BN shapes of the full run: (N, C) and (N, C, H, W)
BN_SHAPES = [(60, 100), (256, 1024), (4096, 1024), (64, 64, 32, 32), (256, 256, 14, 14)]
FAST_BN_SHAPES = [(60, 100), (256, 1024)]  # --fast: the Fig. 1 layer's shape and a small one
#: the BN shapes whose forward+backward carries the targets
TARGET_BN_SHAPES = ((4096, 1024), (64, 64, 32, 32))
TARGET_ROUNDS = 9  # rounds for the targets' BN rows (3 for the others): their spread is quoted


def is_target_bn(row):
    """Whether a row is one of the targets' BN rows (forward+backward at a target shape)."""
    return row["layer"] == "BatchNorm" and row["mode"] == "both" and tuple(row["shape"]) in TARGET_BN_SHAPES


def bn_rows(torch, shapes, modes=("forward", "backward", "both"), cuda=False, copy=None):
    """BatchNorm rows: every implementation at each shape and mode. ``copy``: a
    :func:`copy_step` timed in the same rounds (its bandwidth in row["bw"])."""
    rows = []
    for shape in shapes:
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        C = shape[1]
        cls = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        for mode in modes:
            fns = {"minibn": minibn_layer_step(cls(C), x, dy, mode),
                   "minibn fast (NumPy)": minibn_layer_step(cls(C, impl="fast"), x, dy, mode),
                   "minibn reference": minibn_layer_step(cls(C, impl="reference"), x, dy, mode)}
            if torch is not None:
                tl = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(C)
                fns["PyTorch CPU"] = torch_layer_step(torch, tl, x, dy, mode)
            row = {"layer": "BatchNorm", "shape": shape, "mode": mode, "bytes": layer_bytes(x, mode)}
            if copy is None:
                time_row(row, fns, rounds=3)
            else:  # the targets' rows get more rounds: the spread of their fraction is quoted
                with_copy_reference(fns, row, copy, rounds=TARGET_ROUNDS if is_target_bn(row) else 3)
            if cuda:  # pragma: no cover - GPU only
                _gpu_bn(row, torch, cls, C, x, dy, mode)
            rows.append(row)
    return rows


def _gpu_bn(row, torch, cls, C, x, dy, mode):  # pragma: no cover - GPU only
    prev = backend.active()
    backend.use("cupy")
    try:
        layer = cls(C).to("gpu")
        xg, dyg = backend.to_device(x, "gpu"), backend.to_device(dy, "gpu")
        row["t"]["minibn CuPy"] = gpu_time(minibn_layer_step(layer, xg, dyg, mode))
    finally:
        backend.use(prev)
    if torch is not None and torch.cuda.is_available():
        tl = (torch.nn.BatchNorm1d if x.ndim == 2 else torch.nn.BatchNorm2d)(C)
        step = torch_layer_step(torch, tl, x, dy, mode, "cuda")
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(5):
            step()
        ts = []
        for _ in range(50):
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(end) / 1e3)
        row["t"]["PyTorch CUDA"] = float(np.median(ts))


def other_norm_rows(torch, copy=None):
    """LayerNorm, GroupNorm, BatchRenorm and MBN, forward+backward at one large shape: the
    default implementation (fused with numba) and the reference. ``copy`` as in :func:`bn_rows`."""
    rows = []
    rng = np.random.default_rng(0)
    def brn(**kw):
        return lambda: nn.BatchRenorm1d(1024, r_max=3.0, d_max=5.0, **kw)

    def mbn(**kw):
        return lambda: nn.MemorizedBatchNorm1d(1024, lam=0.5, **kw)

    def ln(**kw):
        return lambda: nn.LayerNorm(1024, **kw)

    def gn(**kw):
        return lambda: nn.GroupNorm(32, 64, **kw)

    cases = [("LayerNorm", (4096, 1024), {"minibn": ln(), "minibn reference": ln(impl="reference")},
              lambda: torch.nn.LayerNorm(1024)),
             ("GroupNorm (32 groups)", (64, 64, 32, 32), {"minibn": gn(), "minibn reference": gn(impl="reference")},
              lambda: torch.nn.GroupNorm(32, 64)),
             ("BatchRenorm", (4096, 1024), {"minibn": brn(), "minibn reference": brn(impl="reference")}, None),
             ("MemorizedBN", (4096, 1024), {"minibn": mbn(), "minibn reference": mbn(impl="reference")}, None)]
    for name, shape, makes, make_torch in cases:
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        fns = {impl: minibn_layer_step(make(), x, dy, "both") for impl, make in makes.items()}
        if torch is not None and make_torch is not None:
            fns["PyTorch CPU"] = torch_layer_step(torch, make_torch(), x, dy, "both")
        row = {"layer": name, "shape": shape, "mode": "both", "bytes": layer_bytes(x, "both")}
        if copy is None:
            time_row(row, fns)
        else:
            with_copy_reference(fns, row, copy)
        rows.append(row)
    return rows


def step_rows(torch, batches=(60, 1024), fast=False, progress=None):
    """Training-step rows, each framework in a process of its own (:mod:`minibn.bench.peers`):
    the Fig. 1 MLP with BN at each batch size of ``batches`` (minibn, PyTorch CPU and JAX's
    jit of the whole step, those installed), then the small conv net at batch 64 (minibn and
    PyTorch CPU). ``torch`` is not used (each process imports its own); it is kept so that the
    callers of the in-process rows need not change. ``fast``: one round of three short blocks;
    otherwise 5 rounds of 9 blocks."""
    rounds, blocks = (1, 3) if fast else (5, 9)
    rows = []
    for batch in batches:
        steps = (30 if fast else 200) if batch < 100 else (5 if fast else 20)
        rows.append(peer_row("Fig. 1 MLP step (BN)", "fig1", batch, rounds=rounds, blocks=blocks, steps=steps,
                             warmup=10 if fast else 50, progress=progress))
    rows.append(peer_row("small conv net step", "conv", 64, rounds=rounds, blocks=blocks, steps=5 if fast else 20,
                         warmup=3 if fast else 10, progress=progress))
    return rows
