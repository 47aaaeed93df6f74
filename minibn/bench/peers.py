"""Training steps timed with each framework in a process of its own: minibn, PyTorch and JAX.

Two frameworks in one process share its cores: PyTorch's and XLA's thread pools stay alive
between calls and slow the other's BLAS. So each framework's step runs in a fresh Python
process (:func:`run_process`, which calls :func:`main`), one after the other, round by
round in alternating order; each process times ``blocks`` blocks of ``steps`` steps after a
warm-up (JAX's compilation, numba's loops) and prints the seconds per step of each block as
JSON. A row's time for a framework is the median over all its blocks; its per-round values
(the median block of each process) pair the frameworks round by round, as the in-process
rows do (:func:`minibn.bench.timing.speed`).

The networks and steps are those of :mod:`minibn.bench.steps`: the Fig. 1 MLP
(784-100-100-100-10, BN before each sigmoid) and the small conv net, one SGD step each
(forward, softmax cross-entropy, backward, update), float32, batches drawn once from a fixed
seed. JAX's Fig. 1 step is the same network written with ``jax.numpy`` (BN in training mode,
its running statistics updated, PyTorch's initialisation) and ``jax.jit`` over the whole
step; each call waits for its result (``block_until_ready``), since JAX returns before the
work is done. JAX has no conv row here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time

import numpy as np

from .. import cli_args

#: the frameworks a row can time, by the name the report gives them, and the module each needs
FRAMEWORKS = {"minibn": "minibn", "PyTorch CPU": "torch", "JAX (jit)": "jax"}
#: the networks: name -> (input shape without the batch, frameworks that have it)
NETS = {"fig1": ((784,), ("minibn", "PyTorch CPU", "JAX (jit)")),
        "conv": ((1, 28, 28), ("minibn", "PyTorch CPU"))}


def data(net, batch):
    """The batch every framework trains on: x ``(batch, *shape)`` float32 in [0, 1), labels ``(batch,)``."""
    rng = np.random.default_rng(0)
    return rng.random((batch, *NETS[net][0]), dtype=np.float32), rng.integers(0, 10, batch)


def _minibn_step(net, x, y):
    from .. import nn
    from ..experiments.fig1_net import build_net
    from .steps import minibn_train_step, small_conv_net
    model = build_net(True)[0] if net == "fig1" else small_conv_net(nn)
    return minibn_train_step(model, x, y)


def _torch_step(net, x, y):
    import torch

    from .steps import small_conv_net, torch_fig1_mlp, torch_train_step
    torch.manual_seed(0)
    model = torch_fig1_mlp(torch) if net == "fig1" else small_conv_net(torch.nn)
    return torch_train_step(torch, model, x, y)


def jax_fig1_params(model):
    """The parameters of a minibn Fig. 1 MLP (:func:`minibn.experiments.fig1_net.build_net`) in
    the layout of :func:`jax_fig1_step` (NumPy arrays: the same numbers)."""
    p = dict(model.named_parameters())
    return {"W": [p[f"{i}.weight"].data for i in (0, 3, 6)], "gamma": [p[f"{i}.gamma"].data for i in (1, 4, 7)],
            "beta": [p[f"{i}.beta"].data for i in (1, 4, 7)], "W_out": p["9.weight"].data, "b_out": p["9.bias"].data}


def jax_fig1_step(x, y, lr=0.1, momentum=0.1, eps=1e-5, params=None):
    """The Fig. 1 MLP's SGD step in JAX, jit-compiled as a whole, as a function of no
    arguments that returns the step's loss (a JAX scalar, computed when it returns).
    ``params``: initial values (:func:`jax_fig1_params`); default PyTorch's initialisation.
    The state, [params, running statistics], is the function's ``state``."""
    import jax
    import jax.numpy as jnp

    keys = iter(jax.random.split(jax.random.PRNGKey(0), 8))

    def uniform(shape, fan_in):  # PyTorch's default init of a Linear layer
        bound = 1.0 / np.sqrt(fan_in)
        return jax.random.uniform(next(keys), shape, jnp.float32, -bound, bound)

    if params is None:
        params = {"W": [uniform((100, 784), 784), uniform((100, 100), 100), uniform((100, 100), 100)],
                  "gamma": [jnp.ones(100, jnp.float32)] * 3, "beta": [jnp.zeros(100, jnp.float32)] * 3,
                  "W_out": uniform((10, 100), 100), "b_out": uniform((10,), 100)}
    params = jax.tree_util.tree_map(jnp.asarray, params)
    running = [(jnp.zeros(100, jnp.float32), jnp.ones(100, jnp.float32))] * 3

    def loss_and_stats(p, x, y):
        h, stats = x, []
        for W, gamma, beta in zip(p["W"], p["gamma"], p["beta"]):
            z = h @ W.T
            mu, var = z.mean(axis=0), z.var(axis=0)  # Algorithm 1, lines 1-2 (biased variance)
            stats.append((mu, var))
            h = jax.nn.sigmoid(gamma * (z - mu) / jnp.sqrt(var + eps) + beta)
        logits = h @ p["W_out"].T + p["b_out"]
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
        return loss, stats

    @jax.jit
    def step(p, running, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_and_stats, has_aux=True)(p, x, y)
        p = jax.tree_util.tree_map(lambda w, g: w - lr * g, p, grads)
        m = x.shape[0]
        running = [((1 - momentum) * rm + momentum * mu, (1 - momentum) * rv + momentum * var * m / (m - 1))
                   for (rm, rv), (mu, var) in zip(running, stats)]
        return p, running, loss

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    state = [params, running]

    def call():
        state[0], state[1], loss = step(state[0], state[1], xj, yj)
        return loss.block_until_ready()
    call.state = state
    return call


def make_step(net, framework, batch):
    """One training step of ``net`` ("fig1" or "conv") in ``framework`` (a key of
    :data:`FRAMEWORKS`), as a function of no arguments."""
    if framework not in NETS[net][1]:
        has = [n for n in NETS if framework in NETS[n][1]]
        raise ValueError(f"peers: {framework!r} has no {net!r} step (it has: {has})")
    x, y = data(net, batch)
    if framework == "minibn":
        return _minibn_step(net, x, y)
    if framework == "PyTorch CPU":
        return _torch_step(net, x, y)
    return jax_fig1_step(x, y)


def time_blocks(step, blocks, steps, warmup):
    """Seconds per step of each of ``blocks`` blocks of ``steps`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        out.append((time.perf_counter() - t) / steps)
    return out


def installed(framework):
    """Whether the module ``framework`` needs can be imported here (without importing it)."""
    return importlib.util.find_spec(FRAMEWORKS[framework]) is not None


def run_process(net, framework, batch, blocks, steps, warmup, timeout=300):
    """Time the step in a fresh process; returns its seconds per step, one value per block."""
    # -c rather than -m: the package minibn.bench imports this module, and runpy would warn
    cmd = [sys.executable, "-c", "import sys; from minibn.bench.peers import main; main(sys.argv[1:])", net,
           framework, "--batch", str(batch), "--blocks", str(blocks), "--steps", str(steps), "--warmup", str(warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"peers: the {framework} {net} step failed in its process:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_step"]


def peer_row(layer, net, batch, rounds=3, blocks=9, steps=200, warmup=50, frameworks=None, progress=None):
    """A row timed with each framework in its own process: ``rounds`` rounds, the frameworks'
    order rotating from one round to the next. ``frameworks``: default, those of the net that
    are installed. Returns the row ({"layer", "shape", "mode", "bytes", "t", "rounds",
    "processes"}) that the report and :func:`minibn.bench.timing.speed` read."""
    names = [f for f in (frameworks or NETS[net][1]) if installed(f)]
    blocks_of = {f: [] for f in names}
    per_round = {f: [] for f in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for f in order:
            if progress:
                progress(f"{layer}: {f}, round {r + 1} of {rounds}")
            times = run_process(net, f, batch, blocks, steps, warmup)
            blocks_of[f] += times
            per_round[f].append(float(np.median(times)))
    return {"layer": layer, "shape": (batch, *NETS[net][0]), "mode": "train step", "bytes": 0,
            "t": {f: float(np.median(v)) for f, v in blocks_of.items()}, "rounds": per_round,
            "processes": {"rounds": rounds, "blocks": blocks, "steps": steps}}


def main(argv=None):
    p = argparse.ArgumentParser(prog="minibn.bench.peers", description=cli_args.summary(__doc__).strip())
    p.add_argument("net", choices=sorted(NETS))
    p.add_argument("framework", choices=list(FRAMEWORKS))
    p.add_argument("--batch", type=int, default=60)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=50)
    a = p.parse_args(argv)
    step = make_step(a.net, a.framework, a.batch)
    print(json.dumps({"net": a.net, "framework": a.framework, "batch": a.batch,
                      "seconds_per_step": time_blocks(step, a.blocks, a.steps, a.warmup)}))


if __name__ == "__main__":
    main()
