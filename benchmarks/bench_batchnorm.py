"""BatchNorm forward+backward, float32: the paper's chain rule, the closed form, the NumPy fast
path and the fused loops vs PyTorch CPU.

    python benchmarks/bench_batchnorm.py [--rounds 5] [--out docs/benchmarks/batchnorm_cpu.md]

For each shape: the median time of one training-mode forward plus backward (the
implementations timed in alternating blocks, minibn.bench.interleaved_medians), the
effective bandwidth (bytes of x and y in the forward, x, dy and dx in the backward,
divided by the time), and that bandwidth as a fraction of the machine's copy
bandwidth on all cores, timed in the same alternating rounds as the shape's
implementations (the machine's bandwidth moves by a third within minutes).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from minibn import dispatch
from minibn import functional as F
from minibn.bench import COPY, copy_step, interleaved_medians, machine
from minibn.workspace import Workspace

SHAPES = [(60, 100), (256, 1024), (4096, 1024), (64, 64, 32, 32)]


def axes(shape):
    return (0,) if len(shape) == 2 else (0, 2, 3)


def minibn_step(x, g, b, dy, backward, forward=F.batch_norm_forward, **kw):
    def step():
        _, cache = forward(x, g, b, 1e-5, axes(x.shape), **kw)
        backward(dy, cache)
    return step


def torch_step(torch, x, g, b, dy):
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(g, requires_grad=True), torch.tensor(b, requires_grad=True)
    dyt = torch.tensor(dy)

    def step():
        y = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
        y.backward(dyt)
        xt.grad = gt.grad = bt.grad = None
    return step


def main(argv=None, shapes=SHAPES):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating blocks of 5 calls per implementation")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    copy, moved = copy_step(threads=os.cpu_count() or 1)
    rows, bws = [], []
    for shape in shapes:
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        C = shape[1]
        g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        nbytes = 5 * x.nbytes  # forward: x, y; backward: x, dy, dx
        impls = [("minibn paper", minibn_step(x, g, b, dy, F.batch_norm_backward_paper)),
                 ("minibn closed", minibn_step(x, g, b, dy, F.batch_norm_backward))]
        fast = dispatch.get("batch_norm", "fast")
        impls.append(("minibn fast (NumPy)", minibn_step(x, g, b, dy, fast.backward, fast.forward,
                                                         work=Workspace())))
        fused = dispatch.get("batch_norm", "fused", x)
        if fused.installed() and fused.applies(x):
            impls.append(("minibn fused (numba)", minibn_step(x, g, b, dy, fused.backward, fused.forward)))
        if torch is not None:
            impls.append(("PyTorch CPU", torch_step(torch, x, g, b, dy)))
        times = interleaved_medians({**dict(impls), COPY: copy}, rounds=args.rounds)
        bw = moved / times.pop(COPY)  # the copy bandwidth in the rounds that timed this shape
        bws.append(bw)
        for name, t in times.items():
            ref = times.get("PyTorch CPU")
            rows.append((shape, name, t, nbytes / t, nbytes / t / bw, ref / t if ref else float("nan")))
    m = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **machine()}
    lines = [f"BatchNorm forward+backward, float32, training mode. Run on {m.pop('date')}. Machine: "
             + ", ".join(f"{k} {v}" for k, v in m.items()) + ".",
             f"Copy bandwidth (read + write, np.copyto of 256 MiB on {os.cpu_count()} threads), timed in the same "
             f"rounds as each shape's implementations: {min(bws) / 1e9:.1f}-{max(bws) / 1e9:.1f} GB/s; each "
             "fraction is of its shape's.", "",
             "| shape | implementation | median time | effective GB/s | fraction of copy bandwidth "
             "| speed vs PyTorch |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for shape, name, t, gbs, frac, ratio in rows:
        lines.append(f"| {shape} | {name} | {t * 1e3:.3f} ms | {gbs / 1e9:.1f} | {frac:.2f} | {ratio:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
