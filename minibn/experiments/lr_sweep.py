"""Fig. 1 and the learning rate: the drift experiment at several learning rates.

The BN paper gives neither the learning rate nor the initialization of its Fig. 1 network.
This sweep runs `minibn drift` (default init std 0.1, seed 0) at lr 0.5, 0.1 and 0.02 and
draws, for each, the {15, 50, 85}th percentiles of the recorded sigmoid input of the plain
and the BN network: how much the plain network's input drifts, and how stable the BN
network's stays, depending on the rate. Each run keeps its own outputs (``lr_<rate>/``);
the sweep adds ``lr_sweep.png``, ``table.md`` and ``provenance.json``.
"""

from __future__ import annotations

import csv
import time

from .. import cli_args
from .._files import new_folder, write_files
from . import drift, outputs, provenance

LRS = (0.5, 0.1, 0.02)
#: what a sweep writes: its figure, table and record, and each run's folder
OUTPUTS = ("lr_sweep.png", "table.md", "provenance.json", "lr_*")


def run(lrs=LRS, steps=50_000, out="results/lr_sweep", data_root=None, jobs=None, progress=True, seed=0):
    """Train both nets at each learning rate; returns (summaries by lr, the table's text).

    The sweep is built in a new folder that replaces ``out`` whole when it is done (on Ctrl-C,
    with the runs done so far): ``out`` never holds this sweep's runs beside the previous
    sweep's table (:func:`minibn._files.new_folder`)."""
    cli_args.check_out_dir(out)
    t0 = time.perf_counter()
    summaries, curves = {}, {}
    with new_folder(out, OUTPUTS) as folder:
        for lr in lrs:
            cfg = drift.DriftConfig(steps=steps, lr=lr, seed=seed)
            run_dir = folder / f"lr_{lr:g}"
            summaries[lr] = drift.run(cfg, run_dir, data_root=data_root, progress=progress, jobs=jobs)
            with open(run_dir / "curves.csv") as f:
                curves[lr] = list(csv.DictReader(f))
        wall = time.perf_counter() - t0
        text = table(summaries, steps, wall)
        write_files(folder, {
            "lr_sweep.png": outputs.figure_bytes(plot(curves, summaries, steps)), "table.md": (text + "\n").encode(),
            "provenance.json": outputs.json_bytes(provenance.record("lr-sweep", wall, {"lrs": list(lrs), "steps": steps,
                                                                                    "seed": seed}))})
    return summaries, text


def table(summaries, steps, wall):
    lines = [f"Fig. 1 network, {steps} SGD steps, init std 0.1, seed 0, at each learning rate. The median's trend "
             "and range are those of the recorded sigmoid input after the first 10% of training; the range is "
             "also given in units of the distribution's 15-85 spread.", "",
             "| lr | net | final test accuracy | median trend | median range (in spreads) "
             "| 15-85 spread at 10% -> end |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for lr, s in summaries.items():
        for name, n in s["nets"].items():
            lines.append(f"| {lr:g} | {drift.label(name)} | {100 * n['final_test_accuracy']:.2f}% | "
                         f"{n['p50_trend_after_10pct']:+.2f} | {n['p50_range_after_10pct']:.2f} "
                         f"({n['p50_range_in_spreads']:.2f}) | {n['spread_at_10pct']:.2f} -> {n['spread_final']:.2f} |")
    lines += ["", f"Total wall time {wall:.0f} s."]
    return "\n".join(lines)


def plot(curves, summaries, steps):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = list(curves)
    fig, axes = plt.subplots(2, len(lrs), figsize=(4.2 * len(lrs), 6.2), sharex=True, squeeze=False)
    colors = {"baseline": "tab:blue", "bn": "tab:red"}
    for row, name in enumerate(drift.NETS):
        values = [float(r[f"p{p}_{name}"]) for lr in lrs for r in curves[lr] for p in (15, 85)]
        lo, hi = min(values), max(values)
        pad = 0.05 * (hi - lo) or 0.5
        for col, lr in enumerate(lrs):
            ax = axes[row][col]
            rows = curves[lr]
            step = [int(r["step"]) for r in rows]
            p = {q: [float(r[f"p{q}_{name}"]) for r in rows] for q in (15, 50, 85)}
            ax.plot(step, p[50], color=colors[name], label="median")
            ax.plot(step, p[15], ":", color=colors[name], label="15th, 85th percentile")
            ax.plot(step, p[85], ":", color=colors[name])
            ax.fill_between(step, p[15], p[85], color=colors[name], alpha=0.12)
            acc = summaries[lr]["nets"][name]["final_test_accuracy"]
            ax.set(title=f"{drift.label(name)}, lr {lr:g}: test acc. {100 * acc:.2f}%", ylim=(lo - pad, hi + pad))
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("input to the sigmoid")
                ax.legend(loc="upper left", fontsize=8)
            if row == 1:
                ax.set_xlabel("training step")
    fig.suptitle(f"Fig. 1 at three learning rates ({steps} steps, init N(0, 0.1\u00b2)): drift without BN, "
                 f"stability with it", fontsize=10)
    fig.tight_layout()
    return fig


def add_cli(reproduce_sub):
    p = reproduce_sub.add_parser("lr-sweep", help="Fig. 1 at learning rates 0.5, 0.1 and 0.02",
                                 description="Run `minibn drift` (both nets) at learning rates 0.5, 0.1 and "
                                 "0.02: how much the plain network's sigmoid input drifts, and how stable the BN "
                                 "network's stays, depending on the rate. Writes lr_sweep.png, table.md, "
                                 "provenance.json and each run's outputs (lr_<rate>/) to --out; takes about "
                                 "2.5 minutes on 2 cores (--fast: 300 steps per run, 1-2 minutes).",
                                 formatter_class=cli_args.HelpFormatter)
    p.add_argument("--fast", action="store_true", help="300 steps per run (a quick check)")
    p.add_argument("--steps", type=cli_args.positive_int, default=None,
                   help="SGD steps per run (default: 50000)%(default).0s")
    cli_args.add_common_options(p, "results/lr_sweep")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    steps = args.steps or (300 if args.fast else 50_000)
    try:
        _, text = run(steps=steps, out=args.out, data_root=args.data, jobs=args.jobs, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the runs finished so far are in {args.out}", flush=True)
        return 130
    print(text)
    print(f"outputs in {args.out}/ (lr_sweep.png, table.md, provenance.json, and lr_<rate>/ for each run)")
    return 0

