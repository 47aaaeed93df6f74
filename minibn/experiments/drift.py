"""Fig. 1 of Ioffe & Szegedy (2015), Sec. 4.1: activation drift in an MNIST MLP, with and without BN.

The network: 784-100-100-100-10, sigmoid hidden units, weights from a small Gaussian,
softmax cross-entropy, mini-batches of 60, 50,000 SGD steps. It is trained twice: as
is (``Linear -> Sigmoid``), and with BN before each sigmoid (``Linear(bias=False) ->
BatchNorm1d -> Sigmoid``: the bias is dropped because BN's mean subtraction cancels it
and beta takes its role, Sec. 3.2). Both nets see the same initial weights (same seed)
and the same sequence of mini-batches.

Recorded: test accuracy over training (Fig. 1a) and the {15, 50, 85}th percentiles of
the input of one sigmoid of the last hidden layer on a fixed probe set of test images
(Fig. 1b, c).

Choices the paper leaves open (defaults, and why):

* ``init_std = 0.1``: "small random Gaussian values". With 784 inputs in [0, 1] this
  gives first-layer pre-activations of std ~ 1, inside the sigmoid's sensitive range, so
  the plain network starts training at once and the comparison is about training
  dynamics, not about escaping a dead start.
* ``lr = 0.5``, plain SGD (no momentum, no decay): the paper used plain SGD; 0.5 is about
  the largest rate at which the network *without* BN still trains stably here (a fair
  baseline), and it lets the BN net show its faster convergence.
* Test accuracy (all 10,000 test images) and the percentiles are taken every
  ``eval_every`` = 1,000 steps (51 points per curve; a full test pass costs about as
  much as 40 training steps, so evaluating every 500 would add ~4 s to the run). The
  percentiles are taken in inference mode (BN with its running statistics) on 2,000
  test images. Unit 0 is plotted (any unit is "typical": the
  units are exchangeable at initialization); ``--unit`` picks another.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import backend, nn, optim
from ..data import BatchIterator, load_mnist
from ..data.mnist import ensure_files
from ..train import ActivationRecorder, evaluate, fit
from . import _io, _parallel, provenance

NETS = ("baseline", "bn")
#: every file a run writes into its folder (an interrupted run writes some of them)
OUTPUTS = ("summary.json", "curves.csv", "fig1.png", "provenance.json")
LABELS = {"baseline": "Without BN", "bn": "With BN"}

#: the normalization layers the "bn" net can use (``--norm``): name -> (factory of a layer
#: for ``hidden`` features, its label, whether it makes the Linear's bias redundant). BN and
#: its batch-statistics variants subtract each feature's mean over the batch, so a bias
#: before them cancels (Sec. 3.2); LayerNorm and GroupNorm subtract a per-sample mean over
#: the features, which leaves a bias's differences between features in place.
NORMS = {
    "batchnorm": (lambda C: nn.BatchNorm1d(C), "BN", True),
    "renorm": (lambda C: nn.BatchRenorm1d(C, r_max=3.0, d_max=5.0), "Batch Renorm", True),
    "memorized": (lambda C: nn.MemorizedBatchNorm1d(C), "Memorized BN", True),
    "layernorm": (lambda C: nn.LayerNorm(C), "LayerNorm", False),
    "groupnorm": (lambda C: nn.GroupNorm(10, C), "GroupNorm (10 groups)", False),
}


def label(name, norm="batchnorm"):
    """The legend of a net: "Without BN", or "With <the normalization>"."""
    return LABELS["baseline"] if name == "baseline" else f"With {NORMS[norm][1]}"


def default_eval_every(steps):
    """Evaluate every 1,000 steps on the full run, and about 50 times on a shorter one."""
    return max(1, min(1000, steps // 50))


@dataclass
class DriftConfig:
    steps: int = 50_000
    batch_size: int = 60
    eval_every: int = None  # None: default_eval_every(steps)
    seed: int = 0
    lr: float = 0.5
    init_std: float = 0.1
    hidden: int = 100
    depth: int = 3
    unit: int = 0
    probe_size: int = 2000
    norm: str = "batchnorm"  # the normalization of the "bn" net (a key of NORMS)

    def __post_init__(self):
        if self.eval_every is None and isinstance(self.steps, int):
            self.eval_every = default_eval_every(self.steps)

    def validate(self, nets):
        import math
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        batch_statistics = NORMS.get(self.norm, (None, None, True))[2]  # one sample has no batch variance
        min_batch = 2 if "bn" in nets and batch_statistics else 1
        if self.batch_size < min_batch:
            raise ValueError(f"batch_size must be >= {min_batch}"
                             f"{' with BN (one value per channel has no variance)' if min_batch == 2 else ''}, "
                             f"got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0 and math.isfinite(self.init_std) and self.init_std > 0):
            raise ValueError(f"lr and init_std must be finite numbers > 0, got {self.lr}, {self.init_std}")
        if not 0 <= self.unit < self.hidden:
            raise ValueError(f"unit must be in [0, {self.hidden}), got {self.unit}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {self.norm!r}")


def build_net(bn: bool, init_std=0.1, hidden=100, depth=3, in_features=784, classes=10, norm="batchnorm",
              comm=None):
    """The Sec. 4.1 MLP. Returns (model, index of the last hidden sigmoid).

    ``bn``: a normalization layer before each sigmoid. ``norm``: which one, a key of
    :data:`NORMS` (BN by default), or a callable ``norm(num_features) -> layer`` (the Linear
    before it then keeps its bias). ``comm``: with a :class:`minibn.distributed.Communicator`,
    BN is :class:`minibn.nn.SyncBatchNorm` over its ranks (the other norms stay as they are:
    Batch Renorm and Memorized BN then use each rank's own rows).
    """
    make, drop_bias = (norm, False) if callable(norm) else (NORMS[norm][0], NORMS[norm][2])
    if comm is not None and norm == "batchnorm":
        make = lambda C: nn.SyncBatchNorm(C, comm=comm)  # noqa: E731
    layers, width = [], in_features
    for _ in range(depth):
        lin = nn.Linear(width, hidden, bias=not (bn and drop_bias))
        nn.init.normal_(lin.weight, std=init_std)
        if lin.bias is not None:
            nn.init.zeros_(lin.bias)
        layers += [lin, make(hidden), nn.Sigmoid()] if bn else [lin, nn.Sigmoid()]
        width = hidden
    head = nn.Linear(width, classes)
    nn.init.normal_(head.weight, std=init_std)
    nn.init.zeros_(head.bias)
    layers.append(head)
    return nn.Sequential(*layers), len(layers) - 2


def train_net(bn, cfg: DriftConfig, data, progress=True, position=0, comm=None):
    """Train one net; returns a dict with its History, percentile trace and timing.

    ``comm``: train data-parallel over its ranks (:mod:`minibn.distributed`): each rank takes
    its rows of every batch of ``cfg.batch_size``, BN is synchronized, gradients are summed
    over the ranks; rank 0 alone evaluates and records (the others return its shape with
    empty records). The training loss recorded is the whole batch's, as one process would
    record it: :func:`minibn.train.fit` adds up the ranks' parts at each evaluation.
    """
    from .. import distributed
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


def _worker(name, cfg, data_root, progress, position):
    """One net in a child process (spawned with single-threaded BLAS)."""
    data = load_mnist(root=data_root, progress=False)
    return train_net(name == "bn", cfg, data, progress, position)


def _summary(cfg, results, nets, wall_total, interrupted, jobs=1, ranks=1):
    out = {"config": asdict(cfg), "backend": backend.active(), "jobs": jobs, "mpi_ranks": ranks,
           "versions": _io.versions(),
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


def write_outputs(out_dir, cfg, results, nets, wall_total, interrupted=False, jobs=1, ranks=1):
    """Write summary.json, curves.csv and fig1.png for whatever has been trained.

    Everything is made in memory first (the figure too), so an error (a plot of a diverged
    run, say) leaves no folder that looks complete; then the files go into a new folder that
    replaces ``out_dir`` whole (:func:`minibn.experiments._io.write_all`): a full disk leaves
    the previous run's folder as it was, not this run's curves beside its figure.
    """
    out_dir = Path(out_dir)
    summary = _summary(cfg, results, nets, wall_total, interrupted, jobs, ranks)
    trained = [n for n in nets if n in results]
    files = {}
    if trained:
        steps = results[trained[0]]["history"].eval_steps
        header, cols = ["step"], [steps]
        for n in trained:
            h, v = results[n]["history"], results[n]["recorder"].values[:, 0, :]
            k = len(h.eval_steps)
            header += [f"test_accuracy_{n}", f"train_loss_{n}", f"p15_{n}", f"p50_{n}", f"p85_{n}"]
            cols += [h.metrics["accuracy"], h.metrics["train_loss"], v[:k, 0], v[:k, 1], v[:k, 2]]
        length = min(len(c) for c in cols)
        rows = [[(int(c[i]) if j == 0 else f"{float(c[i]):.6g}") for j, c in enumerate(cols)] for i in range(length)]
        files["curves.csv"] = _io.csv_bytes(header, rows)
        files["fig1.png"] = _io.figure_bytes(plot(results, trained, cfg))
    files["summary.json"] = _io.json_bytes(summary)
    files["provenance.json"] = _io.json_bytes(provenance.record("drift", wall_total, asdict(cfg)))
    _io.write_all(out_dir, files, OUTPUTS)
    return summary


#: the line style of each percentile in (b) and (c): the 15th and the 85th must differ, since
#: the two can cross when the distribution changes shape
PERCENTILE_STYLES = {15: ":", 50: "-", 85: "--"}


def _accuracy_axis(ax, accs):
    """A logit axis for the test accuracy (a), from below the lowest point recorded (chance, at
    step 0) to above the highest: every point shows, and the last percent, where the two nets
    differ, gets as much room as the climb from chance to 90% does."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter

    accs = np.asarray([a for a in accs if np.isfinite(a)], dtype=float)
    if not accs.size:
        return
    odds = np.log(np.clip(accs, 1e-4, 1 - 1e-4) / (1 - np.clip(accs, 1e-4, 1 - 1e-4)))
    pad = 0.06 * max(odds.max() - odds.min(), 1.0)
    lo, hi = 1 / (1 + np.exp(-(odds.min() - pad))), 1 / (1 + np.exp(-(odds.max() + pad)))
    ax.set_yscale("logit")
    ax.set_ylim(lo, hi)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
             if lo <= t <= hi]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot(results, nets, cfg):
    """A figure laid out like the paper's Fig. 1: (a) test accuracy, (b, c) percentiles."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    colors = {"baseline": "tab:blue", "bn": "tab:red"}
    ax = axes[0]
    for n in nets:
        h = results[n]["history"]
        ax.plot(h.eval_steps, h.metrics["accuracy"], ".-", ms=3, color=colors[n], label=label(n, cfg.norm))
    ax.set(title="(a) Test accuracy (logit scale)", xlabel="training step", ylabel="test accuracy")
    _accuracy_axis(ax, [a for n in nets for a in results[n]["history"].metrics["accuracy"]])
    ax.grid(alpha=0.3)
    # the legends go below the panels, where they cover no curve (a short run's curves can be anywhere)
    fig.legend(handles=ax.get_lines(), loc="lower center", bbox_to_anchor=(0.18, 0.0), ncol=len(nets),
               fontsize=8, frameon=False)
    finite = [v[np.isfinite(v)] for v in (results[n]["recorder"].values for n in nets)]
    lo = min((float(v.min()) for v in finite if v.size), default=-1.0)
    hi = max((float(v.max()) for v in finite if v.size), default=1.0)
    percentiles = ()
    for ax, n, tag in zip(axes[1:], NETS, "bc"):
        ax.set(title=f"({tag}) {label(n, cfg.norm)}: sigmoid input, unit {cfg.unit}", xlabel="training step",
               ylabel="input to the sigmoid")
        ax.grid(alpha=0.3)
        if n not in nets:
            ax.text(0.5, 0.5, "not trained", ha="center", va="center", transform=ax.transAxes)
            continue
        r = results[n]["recorder"]
        v = r.values[:, 0, :]
        percentiles = r.percentiles
        for j, p in enumerate(r.percentiles):
            ax.plot(r.steps, v[:, j], PERCENTILE_STYLES.get(p, "-."), color=colors[n], lw=1.8 if p == 50 else 1.2)
        ax.fill_between(r.steps, v[:, 0], v[:, -1], color=colors[n], alpha=0.12)
        pad = 0.05 * (hi - lo) or 0.5
        ax.set_ylim(lo - pad, hi + pad)  # the same scale in (b) and (c), so the drift is comparable
    if percentiles:
        # one legend for the line styles of (b) and (c), below them
        handles = [Line2D([], [], color="0.3", ls=PERCENTILE_STYLES.get(p, "-."), lw=1.8 if p == 50 else 1.2,
                          label=f"{p}th percentile" + (" (median)" if p == 50 else "")) for p in percentiles]
        handles.append(plt.Rectangle((0, 0), 1, 1, color="0.3", alpha=0.15,
                                     label=f"between the {percentiles[0]}th and {percentiles[-1]}th"))
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.675, 0.0), ncol=len(handles),
                   fontsize=8, frameon=False)
    fig.suptitle(f"MNIST, 784-100-100-100-10 sigmoid MLP, batch {cfg.batch_size}, SGD lr {cfg.lr}, "
                 f"init N(0, {cfg.init_std}\u00b2)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def run(cfg: DriftConfig = None, out="results/drift", nets=NETS, data_root=None, progress=True, jobs=None,
        comm=None):
    """Train the nets, write the outputs, return the summary dict.

    ``jobs``: how many nets to train at once, in processes (default: 2 on the numpy
    backend with >= 2 cores, else 1; see :mod:`minibn.experiments._parallel`).
    ``comm``: train each net data-parallel over the communicator's ranks (run under
    mpiexec; see :func:`train_net`); rank 0 writes the outputs and returns the summary,
    the other ranks return None.
    On Ctrl-C the outputs are written for the steps done (the summary says
    ``"interrupted": true``) and KeyboardInterrupt is raised again.
    """
    cfg = cfg or DriftConfig()
    nets = tuple(nets)
    if comm is not None:
        return _run_distributed(cfg, out, nets, data_root, progress, comm)
    cfg.validate(nets)
    _io.check_out_dir(out)  # before training, not after
    jobs = _parallel.default_jobs(len(nets)) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1 and backend.active() != "numpy":
        raise ValueError("jobs > 1 trains in separate CPU processes: use it with the numpy backend")
    t0 = time.perf_counter()
    if jobs > 1:
        ensure_files(data_root, progress=progress)  # missing data: fail (or download) once, here, not in each worker
        out_list, interrupted = _parallel.run_tasks(
            _worker, [(name, cfg, data_root, progress, i) for i, name in enumerate(nets)], jobs)
    else:
        data = load_mnist(root=data_root, progress=progress)
        out_list, interrupted = [], False
        for name in nets:
            out_list.append(train_net(name == "bn", cfg, data, progress))
            if out_list[-1]["history"].interrupted:
                break
    results = {name: r for name, r in zip(nets, out_list) if r is not None}
    interrupted = interrupted or len(results) < len(nets) or any(r["history"].interrupted for r in results.values())
    summary = write_outputs(out, cfg, results, nets, time.perf_counter() - t0, interrupted, jobs)
    if interrupted:
        raise KeyboardInterrupt
    return summary


def run_config(cfg, nets):
    """What must be the same on every rank of a distributed run: the whole configuration,
    the nets, the backend and minibn's version (not --out or --data: only rank 0 writes, and
    each node may keep the data in its own place)."""
    from .. import __version__
    return {"experiment": "drift", "nets": list(nets), **asdict(cfg), "backend": backend.active(),
            "minibn": __version__}


def _run_distributed(cfg, out, nets, data_root, progress, comm):
    from .. import distributed
    # First, before anything a rank could do alone: the ranks agree on what they run. Then a
    # bad setting is the same error on every rank (one line, exit 2), not one rank leaving
    # while the others wait for it.
    distributed.check_same_config(comm, run_config(cfg, nets))
    cfg.validate(nets)
    if cfg.batch_size < comm.size:
        raise ValueError(f"--batch-size {cfg.batch_size} is smaller than the number of ranks ({comm.size}): "
                         f"every rank needs rows of each batch")
    _io.check_out_dir(out)
    distributed.share_cores(comm)
    lead = comm.rank == 0
    with distributed.abort_on_error(comm):  # from here an error on one rank ends the job
        t0 = time.perf_counter()
        data = load_mnist(root=data_root, progress=progress and lead)
        results = {}
        for name in nets:
            results[name] = train_net(name == "bn", cfg, data, progress, comm=comm)
            if results[name]["history"].interrupted:
                raise KeyboardInterrupt
        if not lead:
            return None
        return write_outputs(out, cfg, results, nets, time.perf_counter() - t0, False, jobs=1, ranks=comm.size)


def _cmd(args) -> int:
    if args.backend:
        backend.use(args.backend)
    nets = {"both": NETS, "bn": ("bn",), "no-bn": ("baseline",)}[args.nets]
    cfg = DriftConfig(steps=args.steps, batch_size=args.batch_size, eval_every=args.eval_every, seed=args.seed,
                      lr=args.lr, init_std=args.init_std, unit=args.unit, norm=args.norm)
    if args.distributed:  # validated once the ranks agree on cfg (_run_distributed)
        return _cmd_distributed(args, cfg, nets)
    cfg.validate(nets)  # a ValueError is one line and exit 2 (minibn.cli)
    try:
        summary = run(cfg, args.out, nets, data_root=args.data, progress=not args.quiet, jobs=args.jobs)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the outputs so far (both nets, up to the interrupt) are in {args.out}/",
              file=sys.stderr)
        return 130
    _report(summary, cfg, args.out)
    return 0


def _cmd_distributed(args, cfg, nets):
    from .. import distributed
    comm = distributed.world(timeout=distributed.RUN_TIMEOUT)  # no collective waits for ever
    summary = run(cfg, args.out, nets, data_root=args.data, progress=not args.quiet, comm=comm)
    if summary is not None:
        print(f"data-parallel over {comm.size} rank(s), {cfg.batch_size // comm.size}-"
              f"{-(-cfg.batch_size // comm.size)} rows each, BN synchronized")
        _report(summary, cfg, args.out)
    return 0


def _report(summary, cfg, out):
    for name, s in summary["nets"].items():
        print(f"{label(name, cfg.norm):>10}: final test accuracy {s['final_test_accuracy']:.4f}, "
              f"{s['steps_per_second']:.0f} steps/s; median of the sigmoid input after the first 10% of "
              f"training: net trend {s['p50_trend_after_10pct']:+.2f}, range {s['p50_range_in_spreads']:.2f} "
              f"of the 15-85 spread")
    print("steps/s: training steps only, timed after a warm-up step that compiles the kernels, "
          "evaluations not counted")
    print(f"total wall time {summary['wall_seconds_total']:.1f} s; outputs in {out}/ "
          f"(fig1.png, curves.csv, and summary.json: these figures, machine-readable)")


def add_cli(sub):
    from ..cli import HelpFormatter
    from ._io import nonnegative_int, positive_float, positive_int
    d = DriftConfig()
    p = sub.add_parser("drift", help="reproduce Fig. 1 of the BN paper (MNIST activation drift)",
                       description=__doc__.split("\n\n")[0] + " Trains the 784-100-100-100-10 sigmoid MLP "
                       "without and with BN and writes fig1.png, curves.csv, summary.json and provenance.json "
                       "to --out; the default 50,000 steps per net take about a minute on 2 cores.",
                       formatter_class=HelpFormatter)
    p.add_argument("--steps", type=positive_int, default=d.steps, help="SGD steps per net")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="mini-batch size")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="evaluate every this many steps (default: 1,000, or steps / 50 on a shorter run)%(default).0s")
    p.add_argument("--seed", type=nonnegative_int, default=d.seed, help="seed of the weights and of the batch order")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="SGD learning rate (plain SGD)")
    p.add_argument("--init-std", type=positive_float, default=d.init_std, help="std of the Gaussian initial weights")
    p.add_argument("--unit", type=nonnegative_int, default=d.unit,
                   help="which sigmoid of the last hidden layer to record")
    p.add_argument("--norm", choices=sorted(NORMS), default=d.norm,
                   help="the normalization layer of the normalized net (the paper's is batchnorm)")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend (default: the active one)%(default).0s")
    p.add_argument("--out", default="results/drift", help="the folder for fig1.png, curves.csv and summary.json")
    p.add_argument("--data", default=None,
                   help="data directory holding mnist/ (default: $MINIBN_DATA or the cache)%(default).0s")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bn", dest="nets", action="store_const", const="bn", help="train only the BN net")
    g.add_argument("--no-bn", dest="nets", action="store_const", const="no-bn", help="train only the plain net")
    p.set_defaults(nets="both")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="train the nets in this many processes "
                        "(default: 2 on the CPU with >= 2 cores, else 1)%(default).0s")
    p.add_argument("--distributed", action="store_true",
                   help="under mpiexec: train each net data-parallel over the ranks, each taking its rows "
                        "of every batch, with synchronized BN (needs mpi4py: pip install \"minibn[mpi]\")")
    p.set_defaults(func=_cmd)
