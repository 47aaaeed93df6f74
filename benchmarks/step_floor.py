"""What minibn's layer framework costs in the Fig. 1 step: the step against the same kernels
called from one flat function.

    python benchmarks/step_floor.py [--rounds 6] [--threads 1] [--cpu 0] [--jax]

:func:`flat_step` runs the SGD step of ``minibn bench``'s Fig. 1 row (784-100-100-100-10, BN
before each sigmoid, batch 60, float32, lr 0.1) with the kernels minibn's layers select on the
CPU, called in order from one function: NumPy's matrix products (W column-major, as
``nn.Linear`` keeps it) and numba's fused BN, running statistics, sigmoid, loss and update.
There are no layer objects, no checks of the inputs, no implementation selected per call and
no caches kept for a later backward. It gives minibn's values bit for bit
(tests/test_bench.py checks it), so the ratio of the two times bounds what taking out the
framework's per-layer work could gain with today's kernels.

Each version times 9 blocks of 200 steps in a fresh process, the versions alternating from
one round to the next (as ``minibn bench`` times its peers); ``--jax`` adds JAX's jit of the
whole step (:mod:`minibn.bench.peers`). ``--threads 1`` gives every process one BLAS, numba
and XLA thread (as ``minibn drift``'s workers have); ``--cpu N`` keeps them all on core N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from minibn.bench.peers import data, installed, run_process, time_blocks
from minibn.experiments.fig1_net import build_net
from minibn.kernels import fused_bn
from minibn.kernels import fused_elementwise as fe


def flat_step(model, x, labels, lr=0.1):
    """One SGD step of a Fig. 1 network (:func:`minibn.experiments.fig1_net.build_net` with BN)
    on x (N, 784) float32 and labels (N,), as a function of no arguments that returns the loss.
    It updates the model's own arrays (parameters and running statistics) in place, as
    minibn's step does."""
    linears = [model.layers[i] for i in (0, 3, 6, 9)]
    bns = [model.layers[i] for i in (1, 4, 7)]
    W = [layer.weight.data for layer in linears]
    b_out = linears[3].bias.data  # the Linear layers before a BN have no bias
    gamma = [bn.gamma.data for bn in bns]
    beta = [bn.beta.data for bn in bns]
    dW = [np.empty_like(w) for w in W]  # kept between steps, as Parameter.grad_buffer is
    m = x.shape[0]
    # the largest variance of the batch that running_var takes unbiased (BatchNorm's own check)
    limit = float(np.finfo(bns[0].running_var.dtype).max) * (m - 1) / m
    params = W + [b_out] + gamma + beta

    def step():
        h, inputs, caches, outputs = x, [], [], []
        for i in range(3):  # Linear -> BatchNorm1d -> Sigmoid
            inputs.append(h)
            z, cache = fused_bn.batch_norm_forward_fused(h @ W[i].T, gamma[i], beta[i], bns[i].eps)
            fused_bn.update_running_stats_fused(bns[i].running_mean, bns[i].running_var, cache,
                                                bns[i].momentum, limit, bns[i].eps == 0)
            h, _ = fe.sigmoid_forward_fused(z)
            caches.append(cache)
            outputs.append(h)
        inputs.append(h)
        logits = h @ W[3].T
        logits += b_out
        loss, loss_cache = fe.softmax_cross_entropy_forward_fused(logits, labels)
        dy = fe.softmax_cross_entropy_backward_fused(loss_cache)
        db_out = dy.sum(axis=0)
        dgamma, dbeta = [None] * 3, [None] * 3
        for i in (3, 2, 1, 0):
            np.matmul(dy.T, inputs[i], out=dW[i])
            if i == 0:
                break  # the first layer's input is data: no dx
            dh = fe.sigmoid_backward_fused(dy @ W[i], outputs[i - 1])
            dy, dgamma[i - 1], dbeta[i - 1] = fused_bn.batch_norm_backward_fused(dh, caches[i - 1])
        for w, g in zip(params, dW + [db_out] + dgamma + dbeta):
            if not w.flags.c_contiguous:
                w, g = w.T, g.T  # the column-major W: its transpose is C-contiguous
            fe.sgd_step(w, g, lr)
        return loss
    return step


def _child(blocks, steps):
    x, labels = data("fig1", 60)
    step = flat_step(build_net(True)[0], x, labels)
    print(json.dumps({"seconds_per_step": time_blocks(step, blocks, steps, 50)}))


def _flat_process(blocks, steps, timeout=300):
    done = subprocess.run([sys.executable, __file__, "--child", "--blocks", str(blocks), "--steps", str(steps)],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"step_floor: the flat step failed in its process:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_step"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="On a busy or shared machine the default threads swing widely from one "
                                       "process to the next: read the medians of several rounds, or use "
                                       "--threads 1 --cpu 0, which is steadier.")
    p.add_argument("--rounds", type=int, default=6, help="rounds; each times every version once, in its own process")
    p.add_argument("--blocks", type=int, default=9, help="timed blocks per process (its time is their median)")
    p.add_argument("--steps", type=int, default=200, help="steps per block")
    p.add_argument("--threads", type=int,
                   help="BLAS, numba and XLA threads of every process (default: each library's own)%(default).0s")
    p.add_argument("--cpu", type=int, help="run every process on this core alone (default: any core)%(default).0s")
    p.add_argument("--jax", action="store_true", help="time JAX's jit of the step too%(default).0s")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return _child(a.blocks, a.steps)
    for name in ("rounds", "blocks", "steps", "threads"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(a, name)}")
    if a.cpu is not None:
        if not hasattr(os, "sched_setaffinity"):
            p.error("--cpu needs os.sched_setaffinity, which this system's Python lacks (Linux has it)")
        if a.cpu not in os.sched_getaffinity(0):
            p.error(f"--cpu must be one of the cores this process may use, {sorted(os.sched_getaffinity(0))}, "
                    f"got {a.cpu}")
    if a.jax and not installed("JAX (jit)"):
        p.error('--jax needs JAX: pip install "jax[cpu]"')
    if a.threads:
        n = str(a.threads)
        os.environ.update(OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, NUMBA_NUM_THREADS=n,
                          XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if a.threads > 1 else 'false'} "
                                    f"intra_op_parallelism_threads={n}")
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})  # the children inherit it
    names = ["minibn", "flat"] + (["JAX (jit)"] if a.jax else [])
    per_round = {n: [] for n in names}
    for r in range(a.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if name == "flat":
                t = _flat_process(a.blocks, a.steps)
            else:
                t = run_process("fig1", name, 60, a.blocks, a.steps, 50)
            per_round[name].append(float(np.median(t)) * 1e6)
            print(f"round {r + 1}: {name} {per_round[name][-1]:.0f} us", file=sys.stderr)
    print(f"Fig. 1 step, batch 60, {a.rounds} round{'s' if a.rounds != 1 else ''} (the median block of each process), "
          f"threads {a.threads or 'default'}, cpu {'any' if a.cpu is None else a.cpu}:")
    base = np.array(per_round["minibn"])
    for name in names:
        v = np.array(per_round[name])
        q = v / base
        lo, hi = np.percentile(q, [25, 75])
        print(f"  {name:10s} {np.median(v):6.0f} us ({v.min():.0f}-{v.max():.0f})"
              + ("" if name == "minibn" else f"   / minibn's, per round: median {np.median(q):.2f}, middle half "
                                             f"{lo:.2f}-{hi:.2f}, all {q.min():.2f}-{q.max():.2f}"))


if __name__ == "__main__":
    main()
