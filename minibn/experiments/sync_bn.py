"""Synchronized BN against the small-batch remedies, over MPI ranks (``minibn reproduce sync-bn``).

Run it under MPI: ``mpiexec -n 4 minibn reproduce sync-bn``. k ranks train one model
data-parallel, each on b rows of every batch of k * b (the per-worker batch b: 2, 4, 8,
16). The question: with b small, is it better to synchronize BN's statistics across the
workers (SyncBN: the statistics of all k * b rows, one more exchange per BN layer and
direction), or to keep them local and use a method made for small batches?

Variants (the net, recipe and remedies are those of ``reproduce small-batch``: a
784-100-100-10 ReLU MLP with a normalization before each ReLU, SGD with momentum 0.9, lr 0.05
divided by 10 at 40% and 60% of the steps; BRN with r_max -> 3, d_max -> 5; MBN with a
memory of 10 batches):

* ``local BN``: plain BN on each rank's b rows (what data-parallel training does unless told
  otherwise); evaluated with rank 0's moving statistics.
* ``SyncBN``: BN with the statistics of the k * b rows (:class:`minibn.nn.SyncBatchNorm`).
* ``BN, 1 process``: one process with batch k * b, the reference SyncBN must equal (these
  runs are spread over the ranks, each on its own).
* ``BRN``, ``MBN``: Batch Renorm and Memorized BN on each rank's b rows.

Reported: test error (%) over seeds with 95% intervals, steps/s and the bytes each rank sends
per step (counted by the communicator: the gradient all-reduce, the batch-size sum, and for
SyncBN its 2C + 1 and 2C numbers per layer). On one machine the ranks share its cores, so steps/s
says what communication and synchronization cost here, not what a cluster would do.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import backend, cli_args, distributed, nn, optim
from ..data import BatchIterator, load_mnist
from ..train import evaluate, fit
from . import outputs, provenance, stats
from .small_batch import norm_layer, plain_log_ticks

VARIANTS = ("local BN", "SyncBN", "BN, 1 process", "BRN", "MBN")
#: the variants trained data-parallel over the ranks (the others run one per rank)
DATA_PARALLEL = ("local BN", "SyncBN", "BRN", "MBN")
#: every file a run writes into its folder
OUTPUTS = ("runs.csv", "sync_bn.png", "table.md", "summary.json", "provenance.json")


@dataclass
class SyncBNConfig:
    per_worker: list = field(default_factory=lambda: [2, 4, 8, 16])
    variants: list = field(default_factory=lambda: list(VARIANTS))
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    steps: int = 2000
    lr: float = 0.05
    momentum: float = 0.9
    hidden: int = 100
    memory_size: int = 10

    def validate(self):
        stats.check_runs(self.seeds, self.steps, self.variants, VARIANTS)
        if any(b < 2 for b in self.per_worker):
            raise ValueError(f"per-worker batch sizes must be >= 2 (local BN needs two values per channel), "
                             f"got {self.per_worker}")


FAST = dict(per_worker=[2, 8], seeds=[0], steps=100)


def build_net(variant, cfg, comm):
    """The small-batch experiment's MLP with this variant's normalization."""
    def norm(C):
        if variant == "SyncBN":
            return nn.SyncBatchNorm(C, comm=comm)
        return norm_layer({"local BN": "BN", "BN, 1 process": "BN"}.get(variant, variant), C, cfg)
    layers, width = [], 784
    for _ in range(2):
        layers += [nn.Linear(width, cfg.hidden, bias=False), norm(cfg.hidden), nn.ReLU()]
        width = cfg.hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train_one(variant, per_worker, seed, cfg, data, comm, ranks):
    """One run: data-parallel over ``comm`` for the DATA_PARALLEL variants, else in this
    process alone with batch ranks * per_worker. Returns the row of runs.csv (rank 0's view)."""
    (x, y), (xt, yt) = data
    backend.seed(seed)
    one = variant not in DATA_PARALLEL
    group = distributed.single() if one else comm
    model = build_net(variant, cfg, group)
    norms = [m for m in model.modules() if isinstance(m, nn.Normalization)]
    opt = optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    schedulers = [optim.Scheduler(opt, "lr", optim.Piecewise([cfg.lr, cfg.lr / 10, cfg.lr / 100], [0.4, 0.6]),
                                  cfg.steps)]
    if variant == "BRN":
        schedulers += nn.renorm_schedulers(norms, cfg.steps)
    if variant == "MBN":
        schedulers.append(nn.lambda_scheduler(norms, cfg.steps))
    if one:
        net, batches = model, BatchIterator(x, y, ranks * per_worker, seed=seed)
    else:
        net = distributed.DataParallel(model, comm)
        batches = distributed.ShardedBatches(x, y, ranks * per_worker, comm, seed=seed)
    sent0, calls0 = group.bytes_sent, group.calls
    t0 = time.perf_counter()
    hist = fit(net, nn.SoftmaxCrossEntropy(), opt, batches, cfg.steps, schedulers=schedulers, progress=False)
    wall = time.perf_counter() - t0
    lead = one or comm.rank == 0
    acc = evaluate(model, backend.to_active(xt), backend.to_active(yt))["accuracy"] if lead else float("nan")
    return {"variant": variant, "per_worker": per_worker, "global_batch": ranks * per_worker, "seed": seed,
            "test_error": 100 * (1 - acc), "wall_seconds": wall, "steps_per_second": hist.steps_done / wall,
            "bytes_per_step": 0.0 if one else (group.bytes_sent - sent0) / hist.steps_done,
            "collectives_per_step": 0.0 if one else (group.calls - calls0) / hist.steps_done}


def summarize(rows, cfg):
    """{variant: {per_worker: summary of the test error}}, and per variant and per-worker
    batch the median steps/s and bytes sent per step."""
    table, cost = {}, {}
    for v in cfg.variants:
        table[v], cost[v] = {}, {}
        for b in cfg.per_worker:
            mine = [r for r in rows if r["variant"] == v and r["per_worker"] == b]
            if mine:
                table[v][b] = stats.summarize([r["test_error"] for r in mine])
                cost[v][b] = {"steps_per_second": float(np.median([r["steps_per_second"] for r in mine])),
                              "bytes_per_step": float(np.median([r["bytes_per_step"] for r in mine])),
                              "collectives_per_step": float(np.median([r["collectives_per_step"] for r in mine]))}
    return table, cost


def markdown(table, cost, cfg, ranks, wall):
    several = stats.several(cfg.seeds)
    lines = [f"Test error (%) on MNIST, {stats.what_the_cells_are(cfg.seeds)}, {cfg.steps} SGD steps per run, "
             f"{ranks} MPI ranks (784-100-100-10 ReLU MLP); the global batch is {ranks} x the per-worker batch.", "",
             "| variant | " + " | ".join(f"{b} per worker ({ranks * b} in all)" for b in cfg.per_worker) + " |",
             "| --- | " + " | ".join("---:" for _ in cfg.per_worker) + " |"]
    for v in cfg.variants:
        lines.append(f"| {v} | " + " | ".join(stats.cell(table[v][b], mark_single=several) if b in table[v] else "-"
                                             for b in cfg.per_worker) + " |")
    if several:
        lines += ["", "Where synchronizing beats the local remedies beyond the noise (separated 95% intervals):", ""]
    else:
        lines += ["", "One seed: no interval, so no verdict on whether synchronizing beats the local remedies (a "
                  "difference between two runs may be seed noise). Run several seeds for that."]
    for b in cfg.per_worker if several else ():
        if "SyncBN" not in table or b not in table["SyncBN"]:
            continue
        s = table["SyncBN"][b]
        beats = [v for v in ("local BN", "BRN", "MBN") if b in table.get(v, {}) and stats.separated(s, table[v][b])
                 and s["mean"] < table[v][b]["mean"]]
        loses = [v for v in ("local BN", "BRN", "MBN") if b in table.get(v, {}) and stats.separated(s, table[v][b])
                 and s["mean"] > table[v][b]["mean"]]
        lines.append(f"- {b} per worker: SyncBN beats {', '.join(beats) or 'none'}; is beaten by "
                     f"{', '.join(loses) or 'none'}; the rest within the noise.")
    lines += ["", "Cost per step (medians over seeds; bytes a rank sends, all collectives counted):", "",
              "| variant | " + " | ".join(f"{b} per worker" for b in cfg.per_worker) + " |",
              "| --- | " + " | ".join("---:" for _ in cfg.per_worker) + " |"]
    for v in cfg.variants:
        if v not in DATA_PARALLEL:
            cells = [f"{cost[v][b]['steps_per_second']:.0f} steps/s, no communication" if b in cost[v] else "-"
                     for b in cfg.per_worker]
        else:
            cells = [f"{cost[v][b]['steps_per_second']:.0f} steps/s, {cost[v][b]['bytes_per_step'] / 1024:.1f} KiB "
                     f"in {cost[v][b]['collectives_per_step']:.0f} collectives" if b in cost[v] else "-"
                     for b in cfg.per_worker]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", f"Total wall time {wall:.0f} s on {ranks} ranks."]
    return "\n".join(lines)


def plot(table, cfg, ranks):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = stats.several(cfg.seeds)
    fig, ax = plt.subplots(figsize=(7.8, 4.2))
    styles = {"local BN": ("tab:blue", "o", "-"), "SyncBN": ("tab:red", "D", "-"),
              "BN, 1 process": ("black", "x", ":"), "BRN": ("tab:green", "s", "-"), "MBN": ("tab:orange", "^", "-")}
    shown = []
    for v in cfg.variants:
        bs = [b for b in cfg.per_worker if b in table[v]]
        if not bs:
            continue
        m = np.array([table[v][b]["mean"] for b in bs])
        lo = np.array([table[v][b]["ci95"][0] for b in bs])
        hi = np.array([table[v][b]["ci95"][1] for b in bs])
        shown += list(m) + (list(lo) + list(hi) if several else [])
        err = np.nan_to_num(np.array([m - np.maximum(lo, 1e-3), hi - m])) if several else None  # one seed: no bar
        color, marker, line = styles[v]
        ax.errorbar(bs, m, yerr=err, color=color, marker=marker, linestyle=line, capsize=3, label=v)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis, shown)
    ax.set_xticks(cfg.per_worker, [str(b) for b in cfg.per_worker])
    ax.minorticks_off()
    what = f"mean and 95% interval over {len(set(cfg.seeds))} seeds" if several else "one seed, no interval"
    ax.set(xlabel=f"rows per worker ({ranks} workers)", ylabel="test error (%)",
           title=f"MNIST, {cfg.steps} steps ({what})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the axes
    fig.tight_layout()
    return fig


def run_config(cfg):
    """What must be the same on every rank: the whole configuration, the backend and minibn's
    version (not --out or --data: only rank 0 writes, and each node may keep the data in its
    own place)."""
    from .. import __version__
    return {"experiment": "sync-bn", **asdict(cfg), "backend": backend.active(), "minibn": __version__}


def run(cfg: SyncBNConfig = None, out="results/sync_bn", data_root=None, comm=None, progress=True):
    """Train every run (call on every rank); rank 0 writes the outputs and returns
    (summary, table text), the others (None, None).

    ``comm``: default, every rank of the job, each collective with the timeout
    :data:`minibn.distributed.RUN_TIMEOUT`. The ranks first check that they were started
    with the same ``cfg`` (:func:`minibn.distributed.check_same_config`); a bad setting is
    then the same ValueError on every rank. From there an error on one rank ends the job."""
    import pickle

    from ..train import progress_bar

    cfg = cfg or SyncBNConfig()
    comm = comm or distributed.world(timeout=distributed.RUN_TIMEOUT)
    distributed.check_same_config(comm, run_config(cfg))
    cfg.validate()
    cli_args.check_out_dir(out)
    distributed.share_cores(comm)
    ranks, lead = comm.size, comm.rank == 0
    with distributed.abort_on_error(comm):
        data = load_mnist(root=data_root, progress=False)
        t0 = time.perf_counter()
        parallel = [(v, b, s) for b in cfg.per_worker for v in cfg.variants if v in DATA_PARALLEL
                    for s in cfg.seeds]
        alone = [(v, b, s) for b in cfg.per_worker for v in cfg.variants if v not in DATA_PARALLEL
                 for s in cfg.seeds]
        rows = []
        bar = progress_bar(len(parallel) + len(alone), desc="sync-bn runs", disable=not (progress and lead))
        for v, b, s in parallel:  # every rank, together
            rows.append(train_one(v, b, s, cfg, data, comm, ranks))
            bar.update(1)
        mine = [train_one(v, b, s, cfg, data, comm, ranks) for i, (v, b, s) in enumerate(alone)
                if i % ranks == comm.rank]
        # The ranks meet here after their shares of the one-process runs, and a rank may have
        # one run more than another: the wait may be as long as a run, on top of the timeout.
        longest = max((r["wall_seconds"] for r in rows + mine), default=0.0)
        timeout = None if comm.timeout is None else comm.timeout + 4 * longest
        gathered = [pickle.loads(b) for b in comm.allgather_bytes(pickle.dumps(mine), timeout=timeout)]
        bar.update(len(alone))
        bar.close()
        if not lead:
            return None, None
        return _write(rows + [r for part in gathered for r in part], cfg, ranks, time.perf_counter() - t0, out)


def _write(rows, cfg, ranks, wall, out):
    """Rank 0: the table, figure, summary and records of the runs, into ``out``."""
    table, cost = summarize(rows, cfg)
    text = markdown(table, cost, cfg, ranks, wall)
    summary = {"config": asdict(cfg), "mpi_ranks": ranks, "backend": backend.active(),
               "versions": provenance.versions(),
               "wall_seconds": round(wall, 1),
               "test_error": {v: {str(b): s for b, s in t.items()} for v, t in table.items()},
               "cost": {v: {str(b): c for b, c in t.items()} for v, t in cost.items()}}
    files = {"runs.csv": outputs.csv_bytes(
        ["variant", "per_worker", "global_batch", "seed", "test_error", "wall_seconds", "steps_per_second",
         "bytes_per_step"],
        [[r["variant"], r["per_worker"], r["global_batch"], r["seed"], f"{r['test_error']:.4f}",
          f"{r['wall_seconds']:.3f}", f"{r['steps_per_second']:.1f}", f"{r['bytes_per_step']:.0f}"] for r in rows]),
        "sync_bn.png": outputs.figure_bytes(plot(table, cfg, ranks)), "table.md": (text + "\n").encode(),
        "summary.json": outputs.json_bytes(summary),
        "provenance.json": outputs.json_bytes(provenance.record("sync-bn", wall, {**asdict(cfg), "mpi_ranks": ranks}))}
    outputs.write_all(out, files, OUTPUTS)
    return summary, text


def add_cli(reproduce_sub):
    d = SyncBNConfig()
    p = reproduce_sub.add_parser("sync-bn", help="synchronized BN vs local BN, BRN and MBN over MPI ranks "
                                 "(run under mpiexec)",
                                 description="Synchronized BN against local BN, Batch Renorm and Memorized BN "
                                 "when k MPI ranks train one MLP data-parallel on a few rows each. Run it as "
                                 "`mpiexec -n 4 minibn reproduce sync-bn` (needs mpi4py). Writes table.md, "
                                 "sync_bn.png, runs.csv, summary.json and provenance.json to --out; takes about "
                                 "5 minutes with 4 ranks on 2 cores.",
                                 formatter_class=cli_args.HelpFormatter)
    p.add_argument("--fast", action="store_true", help=f"a quick check: {FAST}")
    p.add_argument("--steps", type=cli_args.positive_int, default=None, help=f"SGD steps per run (default: {d.steps})"
                   "%(default).0s")
    p.add_argument("--seeds", type=cli_args.nonnegative_int, nargs="+", default=None,
                   help=f"seeds of the runs (default: {d.seeds})%(default).0s")
    p.add_argument("--per-worker", type=cli_args.positive_int, nargs="+", default=None,
                   help=f"rows per worker (default: {d.per_worker})%(default).0s")
    # the names hold spaces and a comma: listed quoted, as a shell needs them
    p.add_argument("--variants", nargs="+", default=None, choices=VARIANTS, metavar="VARIANT",
                   help=f"the variants to train, of {', '.join(repr(v) for v in VARIANTS)} (default: "
                        "all)%(default).0s")
    p.add_argument("--out", default="results/sync_bn", help="the folder for the outputs")
    p.add_argument("--data", default=None,
                   help="data directory holding mnist/ (default: $MINIBN_DATA or the cache)%(default).0s")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    import sys
    cfg = SyncBNConfig(**FAST) if args.fast else SyncBNConfig()
    for name in ("steps", "seeds", "per_worker", "variants"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    comm = distributed.world(timeout=distributed.RUN_TIMEOUT)  # no collective waits for ever
    if comm.size == 1:
        print("minibn reproduce sync-bn: one rank (run it under mpiexec -n 4 for the experiment; "
              "with one rank local BN and SyncBN are the same)", file=sys.stderr)
    # cfg is validated in run, once the ranks agree on it: a ValueError is then one line and
    # exit 2 (minibn.cli) on every rank alike
    _, text = run(cfg, args.out, args.data, comm, progress=not args.quiet)
    if text is not None:
        print(text)
        print(f"outputs in {args.out}/ ({', '.join(OUTPUTS)})")
    return 0
