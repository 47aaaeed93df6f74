"""The files of a `minibn drift` run: summary.json, curves.csv, fig1.png (laid out like the
paper's Fig. 1) and provenance.json, written together."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import outputs, provenance
from .config import NETS, label
from .training import summarize

#: every file a run writes into its folder (an interrupted run writes some of them)
OUTPUTS = ("summary.json", "curves.csv", "fig1.png", "provenance.json")


def write_outputs(out_dir, cfg, results, nets, wall_total, interrupted=False, jobs=1, ranks=1):
    """Write summary.json, curves.csv and fig1.png for whatever has been trained.

    Everything is made in memory first (the figure too), so an error (a plot of a diverged
    run, say) leaves no folder that looks complete; then the files go into a new folder that
    replaces ``out_dir`` whole (:func:`minibn.experiments.outputs.write_all`): a full disk leaves
    the previous run's folder as it was, not this run's curves beside its figure.
    """
    out_dir = Path(out_dir)
    summary = summarize(cfg, results, nets, wall_total, interrupted, jobs, ranks)
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
        files["curves.csv"] = outputs.csv_bytes(header, rows)
        files["fig1.png"] = outputs.figure_bytes(plot(results, trained, cfg))
    files["summary.json"] = outputs.json_bytes(summary)
    files["provenance.json"] = outputs.json_bytes(provenance.record("drift", wall_total, asdict(cfg)))
    outputs.write_all(out_dir, files, OUTPUTS)
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
