"""Small batches: BN vs Batch Renormalization vs Memorized BN (+ Double-Forward) on MNIST.

In the spirit of Table 4 and Fig. 1 of Guo et al. (2018), at MNIST scale on the CPU. The
network is a 784-100-100-10 MLP with a normalization layer before each ReLU (and no
bias in the Linear before it). Each variant is trained with each batch size for the same
number of SGD steps (as the paper does), for several seeds, and evaluated on the 10,000
test images in inference mode (BN and BRN with their moving statistics, MBN with its
memory).

Training follows the paper's recipe scaled down: SGD with momentum 0.9, lr 0.05 divided
by 10 at 40% and 60% of the steps; MBN: memory k = 10, eta = 0.9, lambda 0.1 -> 0.5 -> 0.9
at 40% and 60%; BRN: plain BN for the first 4% of steps, then r_max -> 3 and d_max -> 5
(Ioffe's schedule as fractions of the run), moving-average rate 0.01.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import backend, cli_args, nn, optim
from ..data import BatchIterator, load_mnist
from ..train import evaluate, fit
from . import _parallel, outputs, provenance, stats

VARIANTS = ("BN", "BRN", "MBN", "MBN+DF")
#: every file a run writes into its folder
OUTPUTS = ("runs.csv", "small_batch.png", "table.md", "summary.json", "provenance.json")


@dataclass
class SmallBatchConfig:
    batch_sizes: list = field(default_factory=lambda: [2, 4, 8, 16, 32])
    variants: list = field(default_factory=lambda: list(VARIANTS))
    seeds: list = field(default_factory=lambda: [0, 1, 2, 3, 4])
    steps: int = 5000
    lr: float = 0.05
    momentum: float = 0.9
    hidden: int = 100
    memory_size: int = 10

    def validate(self):
        stats.check_runs(self.seeds, self.steps, self.variants, VARIANTS)
        if any(b < 2 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be >= 2 (BN needs two values per channel), got {self.batch_sizes}")


FAST = dict(batch_sizes=[4, 32], seeds=[0], steps=300)


def norm_layer(variant, C, cfg):
    if variant == "BN":
        return nn.BatchNorm1d(C)
    if variant == "BRN":
        return nn.BatchRenorm1d(C, momentum=0.01)
    return nn.MemorizedBatchNorm1d(C, memory_size=cfg.memory_size, eta=0.9, lam=0.1,
                                   double_forward=variant == "MBN+DF")


def build_net(variant, cfg):
    layers, width = [], 784
    for _ in range(2):
        layers += [nn.Linear(width, cfg.hidden, bias=False), norm_layer(variant, cfg.hidden, cfg), nn.ReLU()]
        width = cfg.hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def _warm_up(variant, batch_size, cfg, x, y):
    """Two training steps of a throwaway net of the variant, before the timed run: the first
    use of each compiled loop in a worker process (numba loading it from its disk cache, or
    compiling it: up to seconds) would otherwise be timed as training, and a run of a few
    thousand steps lasts about a second (it made BN, run first in each worker, look five times
    slower than MBN, run after it). Made before ``backend.seed``: the timed run's weights and
    batches are those of a run without it."""
    model = build_net(variant, cfg)
    batch = (backend.to_active(x[:batch_size]), backend.to_active(y[:batch_size]))
    fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum),
        iter([batch] * 2), 2, progress=False, double_forward=variant == "MBN+DF")


def train_one(variant, batch_size, seed, cfg, data_root=None):
    """One run; returns a dict with the test error (%), wall time and steps/s."""
    (x, y), (xt, yt) = load_mnist(root=data_root, progress=False)
    _warm_up(variant, batch_size, cfg, x, y)
    backend.seed(seed)
    model = build_net(variant, cfg)
    norms = [m for m in model.modules() if not isinstance(m, (nn.Linear, nn.ReLU, nn.Sequential))]
    opt = optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    schedulers = [optim.Scheduler(opt, "lr", optim.Piecewise([cfg.lr, cfg.lr / 10, cfg.lr / 100], [0.4, 0.6]),
                                  cfg.steps)]
    if variant == "BRN":
        schedulers += nn.renorm_schedulers(norms, cfg.steps)
    if variant.startswith("MBN"):
        schedulers.append(nn.lambda_scheduler(norms, cfg.steps))
    batches = BatchIterator(x, y, batch_size, seed=seed)
    t0 = time.perf_counter()
    hist = fit(model, nn.SoftmaxCrossEntropy(), opt, batches, cfg.steps, schedulers=schedulers, progress=False,
               double_forward=variant == "MBN+DF")
    wall = time.perf_counter() - t0
    acc = evaluate(model, backend.to_active(xt), backend.to_active(yt))["accuracy"]
    return {"variant": variant, "batch_size": batch_size, "seed": seed, "test_error": 100 * (1 - acc),
            "wall_seconds": wall, "steps_per_second": hist.steps_done / wall, "interrupted": hist.interrupted}


def summarize(rows, cfg):
    """{variant: {batch_size: summary}} of the test error (:func:`stats.summarize`: mean, std,
    n, 95% interval), and the median steps/s per variant."""
    table, speed = {}, {}
    for v in cfg.variants:
        table[v] = {}
        for b in cfg.batch_sizes:
            errs = [r["test_error"] for r in rows if r["variant"] == v and r["batch_size"] == b]
            if errs:
                table[v][b] = stats.summarize(errs)
        sps = [r["steps_per_second"] for r in rows if r["variant"] == v]
        speed[v] = float(np.median(sps)) if sps else float("nan")
    return table, speed


def markdown(table, speed, cfg, wall):
    several = stats.several(cfg.seeds)
    lines = [f"Test error (%) on MNIST, {stats.what_the_cells_are(cfg.seeds)}, {cfg.steps} SGD steps per run "
             f"(784-100-100-10 ReLU MLP).", "",
             "| variant | " + " | ".join(f"batch {b}" for b in cfg.batch_sizes) + " | median steps/s |",
             "| --- | " + " | ".join("---:" for _ in cfg.batch_sizes) + " | ---: |"]
    for v in cfg.variants:
        cells = [stats.cell(table[v][b], mark_single=several) if b in table[v] else "-" for b in cfg.batch_sizes]
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {speed[v]:.0f} |")
    if several:
        lines += ["", "Which method is best at each batch size, and whether that is beyond the noise (separated 95% "
                  "intervals):", ""]
        for b, (best, beaten) in best_per_batch(table, cfg).items():
            within = [v for v in cfg.variants if v != best and b in table[v] and v not in beaten]
            lines.append(f"- batch {b}: {best} has the lowest mean error; it beats {', '.join(beaten) or 'none'} "
                         f"beyond the noise; {', '.join(within) or 'none'} within it.")
    else:
        lines += ["", "One seed: no interval, so no verdict on which method is better at a batch size (a "
                  "difference between two runs may be seed noise). Run several seeds for that."]
    if "MBN" in speed and "MBN+DF" in speed:
        extra = 100 * (speed["MBN"] / speed["MBN+DF"] - 1)
        # In short runs the two can be within timing noise, so say which way it went.
        more_or_less = f"{extra:.0f}% more" if extra >= 0 else f"{-extra:.0f}% less"
        noise = "" if extra >= 0 else ": timing noise, since it does more work"
        lines += ["", f"A Double-Forward step took {more_or_less} wall time than an MBN step (median "
                  f"steps/s over all runs){noise}."]
    lines += ["", f"Total wall time {wall:.0f} s."]
    return "\n".join(lines)


def best_per_batch(table, cfg):
    """{batch: (the variant with the lowest mean error, the variants whose 95% interval is
    separated from it: those it beats beyond the noise)}."""
    out = {}
    for b in cfg.batch_sizes:
        have = [v for v in cfg.variants if b in table[v]]
        if have:
            best = min(have, key=lambda v: table[v][b]["mean"])
            out[b] = (best, [v for v in have if v != best and stats.separated(table[best][b], table[v][b])])
    return out


def plain_log_ticks(axis, values):
    """Tick a log axis at 1, 2, 3, 5 x 10^k within the range of ``values``, labelled as plain
    numbers ("20", not matplotlib's "2x10^1"), with no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter

    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], dtype=float)
    if not v.size:
        return
    lo, hi = v.min(), v.max()
    ticks = [m * 10.0 ** k for k in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
             for m in (1, 2, 3, 5)]
    inside = [t for t in ticks if lo / 1.25 <= t <= hi * 1.25]
    if len(inside) < 2:  # a narrow range: the neighbours too
        inside = [t for t in ticks if lo / 3 <= t <= hi * 3]
    axis.set_major_locator(FixedLocator(inside))
    axis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def plot(table, cfg):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = stats.several(cfg.seeds)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    styles = {"BN": ("tab:blue", "o"), "BRN": ("tab:green", "s"), "MBN": ("tab:orange", "^"),
              "MBN+DF": ("tab:red", "v")}
    shown = []
    for v in cfg.variants:
        bs = [b for b in cfg.batch_sizes if b in table[v]]
        m = np.array([table[v][b]["mean"] for b in bs])
        lo = np.array([table[v][b]["ci95"][0] for b in bs])
        hi = np.array([table[v][b]["ci95"][1] for b in bs])
        shown += list(m) + (list(lo) + list(hi) if several else [])
        err = np.nan_to_num(np.array([m - np.maximum(lo, 1e-3), hi - m])) if several else None  # one seed: no bar
        color, marker = styles[v]
        ax.errorbar(bs, m, yerr=err, color=color, marker=marker, capsize=3, label=v)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")  # errors span 2% to 90%: a log axis shows the large-batch differences too
    plain_log_ticks(ax.yaxis, shown)
    ax.set_xticks(cfg.batch_sizes, [str(b) for b in cfg.batch_sizes])
    ax.minorticks_off()
    what = f"mean and 95% interval over {len(set(cfg.seeds))} seeds" if several else "one seed, no interval"
    ax.set(xlabel="batch size", ylabel="test error (%)",
           title=f"MNIST, {cfg.steps} steps at every batch size ({what})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the axes
    fig.tight_layout()
    return fig


def run(cfg: SmallBatchConfig = None, out="results/small_batch", data_root=None, jobs=None, progress=True):
    cfg = cfg or SmallBatchConfig()
    cfg.validate()
    cli_args.check_out_dir(out)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    load_mnist(root=data_root)  # fail early (and download once) before starting workers
    tasks = [(v, b, s, cfg, data_root) for b in cfg.batch_sizes for v in cfg.variants for s in cfg.seeds]
    jobs = _parallel.default_jobs(len(tasks)) if jobs is None else jobs
    t0 = time.perf_counter()
    results, interrupted = _parallel.run_with_progress(train_one, tasks, jobs, "small-batch runs", progress)
    wall = time.perf_counter() - t0
    table, speed = summarize(results, cfg)
    files = {"runs.csv": outputs.csv_bytes(
        ["variant", "batch_size", "seed", "test_error", "wall_seconds", "steps_per_second"],
        [[r["variant"], r["batch_size"], r["seed"], f"{r['test_error']:.4f}", f"{r['wall_seconds']:.3f}",
          f"{r['steps_per_second']:.1f}"] for r in results])}
    summary = {"config": asdict(cfg), "backend": backend.active(), "jobs": jobs, "versions": provenance.versions(),
               "interrupted": interrupted, "wall_seconds": round(wall, 1),
               "test_error": {v: {str(b): s for b, s in t.items()} for v, t in table.items()},
               "best_per_batch": {str(b): {"best": best, "beats_beyond_noise": beaten}
                                  for b, (best, beaten) in best_per_batch(table, cfg).items()},
               "median_steps_per_second": speed}
    text = markdown(table, speed, cfg, wall)
    if results:
        files["small_batch.png"] = outputs.figure_bytes(plot(table, cfg))
    files["table.md"] = (text + "\n").encode()
    files["summary.json"] = outputs.json_bytes(summary)
    files["provenance.json"] = outputs.json_bytes(provenance.record("small-batch", wall, asdict(cfg)))
    outputs.write_all(out, files, OUTPUTS)
    if interrupted:
        raise KeyboardInterrupt
    return summary, text


def add_cli(reproduce_sub):
    d = SmallBatchConfig()
    p = reproduce_sub.add_parser("small-batch", help="BN vs BatchRenorm vs Memorized BN at small batch sizes",
                                 description=cli_args.summary(__doc__) + "Writes table.md, small_batch.png, "
                                 "runs.csv, summary.json and provenance.json to --out; takes about 3 minutes on "
                                 "2 cores (--fast: under a minute).", formatter_class=cli_args.HelpFormatter)
    p.add_argument("--fast", action="store_true", help=f"a quick check: {FAST}")
    p.add_argument("--steps", type=cli_args.positive_int, default=None,
                   help=f"SGD steps per run (default: {d.steps})%(default).0s")
    p.add_argument("--seeds", type=cli_args.nonnegative_int, nargs="+", default=None,
                   help=f"seeds of the runs (default: {d.seeds})%(default).0s")
    p.add_argument("--batch-sizes", type=cli_args.positive_int, nargs="+", default=None,
                   help=f"batch sizes (default: {d.batch_sizes})%(default).0s")
    p.add_argument("--variants", nargs="+", default=None, choices=VARIANTS,
                   help="normalizations (default: all)%(default).0s")
    cli_args.add_common_options(p, "results/small_batch")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    cfg = SmallBatchConfig(**FAST) if args.fast else SmallBatchConfig()
    for name in ('steps', 'seeds', 'batch_sizes', 'variants'):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    return cli_args.run_cli("small-batch", cfg, args, run, ", ".join(OUTPUTS))
