"""Where the Fig. 1 MLP's training step spends its time, layer by layer.

    python benchmarks/step_profile.py [--batch 60] [--steps 3000]

Runs minibn's SGD step of the Fig. 1 network (784-100-100-100-10, BN before each sigmoid,
float32, the batch of `minibn bench`) and prints: the step's time split into forward,
backward and the SGD update (no per-layer timers, so the total is the real one); then each
layer's forward and backward with a timer around every call (the timers add their own
cost, so these sum to more than the step); then the floor the first Linear's two matrix
products set on their own (x W^T and dy^T x, timed alone). Timings vary from run to run
on a shared machine: read them as proportions, and compare versions in one sitting.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from minibn import nn, optim
from minibn.bench.peers import data
from minibn.experiments.fig1_net import build_net


def _network(batch):
    model = build_net(True)[0]
    x, y = data("fig1", batch)
    return model, x, y, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1)


def split(batch, steps, warmup=300):
    """Microseconds per step spent in the forward (with the loss), the backward and the update."""
    model, x, y, loss_fn, opt = _network(batch)
    parts = dict.fromkeys(("forward", "backward", "SGD update"), 0.0)
    for i in range(warmup + steps):
        if i == warmup:
            parts = dict.fromkeys(parts, 0.0)
        t0 = time.perf_counter()
        loss_fn(model(x), y)
        t1 = time.perf_counter()
        opt.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        parts["forward"] += t1 - t0
        parts["backward"] += t2 - t1
        parts["SGD update"] += t3 - t2
    return {k: v / steps * 1e6 for k, v in parts.items()}


def per_layer(batch, steps, warmup=300):
    """Microseconds per step in each layer's forward and backward, each call timed."""
    model, x, y, loss_fn, opt = _network(batch)
    spent = collections.defaultdict(float)

    def timed(name, obj, method):
        inner = getattr(obj, method)

        def call(*args, **kwargs):
            t = time.perf_counter()
            out = inner(*args, **kwargs)
            spent[(name, method)] += time.perf_counter() - t
            return out
        setattr(obj, method, call)

    for i, layer in enumerate(model):
        for method in ("forward", "backward"):
            timed(f"{i} {type(layer).__name__}", layer, method)
    for method in ("forward", "backward"):
        timed("loss", loss_fn, method)
    timed("SGD", opt, "step")
    for i in range(warmup + steps):
        if i == warmup:
            spent.clear()
        loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
    return {k: v / steps * 1e6 for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}


def first_layer_floor(batch, repeats=3000):
    """Microseconds of the first Linear's forward product x W^T and weight gradient dy^T x alone."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    W = rng.random((100, 784), dtype=np.float32)
    dy = rng.random((batch, 100), dtype=np.float32)
    out = np.empty((100, 784), np.float32)
    result = {}
    for name, fn in (("x W^T", lambda: x @ W.T), ("dy^T x", lambda: np.matmul(dy.T, x, out=out))):
        for _ in range(200):
            fn()
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        result[name] = (time.perf_counter() - t) / repeats * 1e6
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=60)
    p.add_argument("--steps", type=int, default=3000)
    a = p.parse_args(argv)
    parts = split(a.batch, a.steps)
    print(f"Fig. 1 MLP step, batch {a.batch}: {sum(parts.values()):.0f} us")
    for k, v in parts.items():
        print(f"  {k:12s} {v:7.1f} us")
    print("\nper layer, each call timed (the timers add to it):")
    for (name, method), v in per_layer(a.batch, a.steps).items():
        print(f"  {name:16s} {method:9s} {v:7.1f} us")
    print("\nthe first Linear's two products alone:")
    for k, v in first_layer_floor(a.batch).items():
        print(f"  {k:8s} {v:7.1f} us")


if __name__ == "__main__":
    main()
