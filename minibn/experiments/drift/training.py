"""Training one net of Fig. 1, with its sigmoid input recorded, and the statistics a run's
summary gives of that record."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ... import backend, distributed, nn, optim
from ...data import BatchIterator
from ...train import ActivationRecorder, evaluate, fit
from .. import provenance
from ..fig1_net import build_net
from .config import DriftConfig, label


def train_net(bn, cfg: DriftConfig, data, progress=True, position=0, comm=None):
    """Train one net; returns a dict with its History, percentile trace and timing.

    ``comm``: train data-parallel over its ranks (:mod:`minibn.distributed`): each rank takes
    its rows of every batch of ``cfg.batch_size``, BN is synchronized, gradients are summed
    over the ranks; rank 0 alone evaluates and records (the others return its shape with
    empty records). The training loss recorded is the whole batch's, as one process would
    record it: :func:`minibn.train.fit` adds up the ranks' parts at each evaluation.
    """
    (x_train, y_train), (x_test, y_test) = data
    _warm_up(bn, cfg, x_train, y_train)
    backend.seed(cfg.seed)
    model, sig = build_net(bn, cfg.init_std, cfg.hidden, cfg.depth, norm=cfg.norm, comm=comm)
    if comm is None:
        batches = BatchIterator(x_train, y_train, cfg.batch_size, seed=cfg.seed)
    else:
        model = distributed.DataParallel(model, comm)
        batches = distributed.ShardedBatches(x_train, y_train, cfg.batch_size, comm, seed=cfg.seed)
    lead = comm is None or comm.rank == 0
    xt, yt = backend.to_active(x_test), backend.to_active(y_test)
    probe = xt[:cfg.probe_size]
    recorder = ActivationRecorder(model, sig, [cfg.unit], probe)
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    hist = fit(model, loss_fn, opt, batches, cfg.steps, eval_fn=(lambda: evaluate(model, xt, yt)) if lead else None,
               eval_every=cfg.eval_every, callbacks=[recorder] if lead else [], progress=progress and lead,
               desc=label("bn" if bn else "baseline", cfg.norm), position=position)
    wall = time.perf_counter() - t0
    trace = Trace(list(recorder.steps), recorder.values, recorder.percentiles)
    return {"history": hist, "recorder": trace, "wall_seconds": wall}


def _warm_up(bn, cfg, x_train, y_train):
    """One training step of a throwaway copy of the net, so that the first call of each
    kernel (numba compiling it, or loading it from its disk cache; CuPy likewise) happens
    here and not in the timed steps: compiling takes seconds, as long as hundreds of steps,
    and would make steps/s of a short run a measure of the compiler. Made before
    ``backend.seed``, so the real net's initial weights and batches are those of a run
    without it."""
    model, _ = build_net(bn, cfg.init_std, cfg.hidden, cfg.depth, norm=cfg.norm)
    batch = (backend.to_active(x_train[:cfg.batch_size]), backend.to_active(y_train[:cfg.batch_size]))
    fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=cfg.lr), iter([batch]), 1,
        progress=False)


@dataclass
class Trace:
    """The recorded percentiles: steps (T,), values (T, units, percentiles)."""

    steps: list
    values: np.ndarray
    percentiles: tuple


def summarize(cfg, results, nets, wall_total, interrupted, jobs=1, ranks=1):
    """The summary of a run (summary.json): its configuration, versions and, for each trained
    net, its accuracy, speed and how the recorded sigmoid input moved. ``results``:
    {net: :func:`train_net`'s dict}."""
    out = {"config": asdict(cfg), "backend": backend.active(), "jobs": jobs, "mpi_ranks": ranks,
           "versions": provenance.versions(),
           "interrupted": interrupted, "wall_seconds_total": round(wall_total, 2), "nets": {}}
    for name in nets:
        if name not in results:
            continue
        r = results[name]
        h, v = r["history"], r["recorder"].values[:, 0, :]
        p15, p50, p85 = v[:, 0], v[:, 1], v[:, 2]
        k10 = len(p50) // 10  # the first 10% of training is the initial transient
        spread = p85 - p15
        late = slice(k10, None)
        out["nets"][name] = {
            "final_test_accuracy": h.metrics["accuracy"][-1],
            "best_test_accuracy": max(h.metrics["accuracy"]),
            "steps": h.steps_done,
            "steps_per_second": round(h.steps_done / h.train_seconds, 1) if h.train_seconds else None,
            "wall_seconds": round(r["wall_seconds"], 2),
            # How the recorded sigmoid input moves after the first 10% of training:
            # the median's net trend and range, also in units of the distribution's own
            # 15-85 spread, and the spread itself at 10% and at the end.
            "p50_trend_after_10pct": float(p50[-1] - p50[k10]),
            "p50_range_after_10pct": float(p50[late].max() - p50[late].min()),
            "p50_range_in_spreads": float((p50[late].max() - p50[late].min()) / spread[late].mean()),
            "spread_at_10pct": float(spread[k10]),
            "spread_final": float(spread[-1]),
            "p50_final": float(p50[-1]),
        }
    return out
