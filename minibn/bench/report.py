"""What `minibn bench` reports: the table (markdown), the targets met or not, the figure of
the speed ratios; and the same for the GPU rows (markdown and JSON)."""

from __future__ import annotations

import os

import numpy as np

from .gpu_rows import GPU, GPU_TARGET_FRACTION, TORCH_CUDA
from .rows import is_target_bn
from .timing import fraction, speed

#: the name of JAX's column in the training-step rows (:mod:`minibn.bench.peers`)
JAX = "JAX (jit)"


def fmt_spread(value, low, high, unit=""):
    """A :func:`speed` or :func:`fraction`: "1.61x (1.45-1.89)", the spread when there is one."""
    return f"{value:.2f}{unit}" if low is None else f"{value:.2f}{unit} ({low:.2f}-{high:.2f})"


def fmt_time(t):
    """Seconds as "0.123 ms", or "1.23 s" from a second on."""
    return f"{t * 1e3:.3f} ms" if t < 1 else f"{t:.2f} s"


def report(rows, bw, info, device="cpu", bw_one=None):
    """The table. ``bw``: the copy bandwidth of all cores, measured on its own (the fractions
    are of it, except in rows that carry their own, row["bw"], timed in the same rounds);
    ``bw_one``: one thread's."""
    ref = "PyTorch CPU" if device == "cpu" else "PyTorch CUDA"
    one = f"; one thread: {bw_one / 1e9:.1f} GB/s" if bw_one else ""
    own = [r["bw"] for r in rows if "bw" in r]
    if own:
        own_text = (f" Rows with a byte count carry their own: the same copy timed in the rounds that time "
                    f"the row ({min(own) / 1e9:.1f}-{max(own) / 1e9:.1f} GB/s, median "
                    f"{float(np.median(own)) / 1e9:.1f}), and their fraction is of that: the median over the "
                    f"rounds of the fraction within a round, and in brackets the middle half of the rounds'.")
    else:
        own_text = " The fractions below are of it."
    when = f"Run on {info['date']}. " if "date" in info else ""
    lines = [when + "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "date") + ".",
             f"Copy bandwidth (bytes read + written, np.copyto of 256 MiB on {os.cpu_count()} threads): "
             f"{bw / 1e9:.1f} GB/s measured at the start of the run{one}." + own_text,
             "Times are medians; GB/s counts x and y (forward), x, dy and dx (backward); the last column is "
             f"minibn's speed relative to {ref} (> 1: minibn faster; '-': {ref} has no such layer, "
             "or is not installed): the median over the timing rounds of the ratio within a round, and in "
             "brackets the middle half of the rounds' ratios (25th-75th percentile)." + _process_note(rows), "",
             "| layer | shape | mode | implementation | median time | GB/s | fraction of copy bandwidth | "
             f"speed vs {ref} |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for name, t in r["t"].items():
            gbs = r["bytes"] / t / 1e9 if r["bytes"] else float("nan")
            ratio = fmt_spread(*speed(r, name, ref), unit="x") if ref in r["t"] else "-"
            g = f"{gbs:.1f}" if r["bytes"] else "-"
            fr = fmt_spread(*fraction(r, name, bw)) if r["bytes"] else "-"
            lines.append(f"| {r['layer']} | {r['shape']} | {r['mode']} | {name} | {fmt_time(t)} | {g} | {fr} | "
                         f"{ratio} |")
    return "\n".join(lines)


def _process_note(rows):
    """What the report says of the rows timed with each framework in its own process."""
    done = [r["processes"] for r in rows if "processes" in r]
    if not done:
        return ""
    p = done[0]
    return (f" The training steps ran with each framework in a process of its own, {p['rounds']} round(s) "
            f"in rotating order, each process timing {p['blocks']} blocks of steps after a warm-up (JAX: its "
            "compilation); their time is the median block, their ratio the median round's.")


def targets(rows, bw=None):
    """The CPU targets, measured: (description, value, goal, met, spread). ``bw``: the all-core
    copy bandwidth, for the BN rows' fraction of it (a row's own row["bw"] first, when it has
    one). Values and spreads are :func:`speed`'s and :func:`fraction`'s (the median round's;
    the 25th and 75th percentiles of the rounds'; no spread without per-round times)."""
    out = []
    for r in rows:
        if "minibn" not in r["t"]:
            continue
        big_bn = is_target_bn(r)
        if big_bn and r.get("bw", bw):
            v, lo, hi = fraction(r, "minibn", bw)
            out.append((f"BN forward+backward {r['shape']}, fraction of the copy bandwidth of all cores",
                        v, 0.6, None if lo is None else (lo, hi)))
        fig1_60 = r["layer"].startswith("Fig. 1") and r["shape"][0] == 60
        if fig1_60 and JAX in r["t"]:
            ratio, lo, hi = speed(r, "minibn", JAX)
            out.append(("Fig. 1 MLP step, batch 60, speed vs JAX (jit of the whole step)", ratio, 1.0,
                        None if lo is None else (lo, hi)))
        if "PyTorch CPU" not in r["t"]:
            continue
        ratio, lo, hi = speed(r, "minibn", "PyTorch CPU")
        spread = None if lo is None else (lo, hi)
        if big_bn:
            out.append((f"BN forward+backward {r['shape']}, speed vs PyTorch CPU", ratio, 0.8, spread))
        if fig1_60:
            out.append(("Fig. 1 MLP step, batch 60, speed vs PyTorch CPU", ratio, 1.5, spread))
        if r["layer"] == "small conv net step":
            out.append(("small conv net step, speed vs PyTorch CPU", ratio, 1.0, spread))
    return [(d, v, goal, v >= goal, spread) for d, v, goal, spread in out]


def plot(rows, device="cpu"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    ref = "PyTorch CPU" if device == "cpu" else "PyTorch CUDA"
    sel = [r for r in rows if ref in r["t"] and "minibn" in r["t"] and r["mode"] in ("both", "train step")]
    labels = [f"{r['layer']}\n{r['shape']}" for r in sel]
    speeds = [speed(r, "minibn", ref) for r in sel]
    ratios = [v for v, _, _ in speeds]
    err = [[v - (v if lo is None else lo) for v, lo, _ in speeds],
           [(v if hi is None else hi) - v for v, _, hi in speeds]]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sel)), 4.2))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in ratios]
    ax.bar(range(len(sel)), ratios, color=colors, yerr=err, capsize=3, ecolor="0.3")
    ax.axhline(1.0, color="k", lw=0.8)
    jax_at = [(i, speed(r, JAX, ref)[0]) for i, r in enumerate(sel) if JAX in r["t"]]
    if jax_at:  # JAX's speed on the same scale: minibn's bar above the marker is minibn faster than JAX
        ax.plot([i for i, _ in jax_at], [v for _, v in jax_at], "D", color="tab:purple", ms=8,
                label=f"{JAX}, relative to {ref}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(range(len(sel)), labels, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel=f"speed relative to {ref} (> 1: minibn faster)", yscale="log",
           title=f"minibn vs {ref}: forward+backward and training steps\n"
                 "(median round's ratio; whiskers: the middle half of the rounds)")
    lows = [v - e for v, e in zip(ratios, err[0])] + [v for _, v in jax_at]
    highs = [v + e for v, e in zip(ratios, err[1])] + [v for _, v in jax_at]
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8) if min(lows) / 2 <= t <= max(highs) * 2]
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])  # 0.5x, 1x, 2x rather than 5 x 10^-1
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def gpu_targets(rows):
    """The GPU targets, measured: [{"target", "value", "goal", "met", "spread"}]: BN
    forward+backward at >= 0.7 of the device's copy bandwidth at the large shapes (rows with
    row["target"]) and at least as fast as PyTorch CUDA at every BN shape. A target whose
    column is missing (an error, no PyTorch) has value None and met None."""
    out = []

    def add(text, measured, goal):
        value, lo, hi = measured if measured is not None else (None, None, None)
        out.append({"target": text, "value": value, "goal": goal, "met": None if value is None else value >= goal,
                    "spread": None if lo is None else [lo, hi]})
    for r in rows:
        if r["layer"] != "BatchNorm" or r["mode"] != "both":
            continue
        has = GPU in r["t"]
        if r.get("target"):
            add(f"BN forward+backward {tuple(r['shape'])}, fraction of the device's copy bandwidth",
                fraction(r, GPU) if has and "bw" in r else None, GPU_TARGET_FRACTION)
        add(f"BN forward+backward {tuple(r['shape'])}, speed vs PyTorch CUDA",
            speed(r, GPU, TORCH_CUDA) if has and TORCH_CUDA in r["t"] else None, 1.0)
    return out


def spread_ms(row, name):
    """" (lo-hi)": the middle half of the rounds' medians of ``name`` in ms ("" under 2 rounds)."""
    rounds = row.get("rounds", {}).get(name)
    if not rounds or len(rounds) < 2:
        return ""
    lo, hi = np.percentile(rounds, 25) * 1e3, np.percentile(rounds, 75) * 1e3
    return f" ({lo:.3f}-{hi:.3f})"


def gpu_report(result):
    """The markdown of :func:`gpu_bench`'s result: the device, the copy bandwidth, one line per
    implementation of each row, the targets and any errors."""
    info, rows = result["info"], result["rows"]
    lines = []
    if result.get("stand_in"):
        lines += ["**CPU stand-in: no CuPy with a CUDA device here. These are NOT GPU numbers** (NumPy arrays, "
                  "wall-clock times, PyTorch CPU in the PyTorch CUDA column, small sizes): this report only "
                  "shows that the GPU rows' code and report run.", ""]
    lines.append(f"Run on {info.get('date', '?')}. " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "date")
                 + ".")
    bw = result.get("copy_bandwidth")
    own = [r["bw"] for r in rows if "bw" in r]
    copy_text = ("not measured" if bw is None else f"{bw / 1e9:.0f} GB/s at the start of the run")
    if own:
        copy_text += (f"; the rows with a byte count carry their own, the copy timed in their rounds "
                      f"({min(own) / 1e9:.0f}-{max(own) / 1e9:.0f} GB/s), and their fraction is of that, paired "
                      f"round by round (median over the rounds; brackets: their middle half)")
    lines += [f"Copy bandwidth of the device (bytes read + written by a copy on the device): {copy_text}.",
              "Float32, forward+backward (training mode) or a whole training step (forward, backward, SGD). "
              "Each call timed by CUDA events (cupyx.profiler.benchmark for minibn and the copy, torch.cuda.Event "
              "for PyTorch), the host waiting for the device after each call; the implementations of a row in "
              "alternating blocks, round by round. Time: the median of all calls, and in brackets the middle half "
              "(25th-75th percentile) of the rounds' medians. GB/s counts x and y forward, x, dy and dx backward. "
              f"Speed: relative to {TORCH_CUDA} (> 1: minibn faster), the median over the rounds of the ratio "
              "within a round.", "",
              "| layer | shape | mode | implementation | median time, ms | GB/s | fraction of copy bandwidth | "
              f"speed vs {TORCH_CUDA} |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for name, t in r["t"].items():
            nbytes = r.get("bytes") or 0
            gbs = f"{nbytes / t / 1e9:.0f}" if nbytes else "-"
            fr = fmt_spread(*fraction(r, name, bw)) if nbytes and ("bw" in r or bw) else "-"
            ratio = fmt_spread(*speed(r, name, TORCH_CUDA), unit="x") if TORCH_CUDA in r["t"] else "-"
            label = name + (f" [{r['implementation']}]" if name == GPU and r.get("implementation") else "")
            lines.append(f"| {r['layer']} | {tuple(r['shape'])} | {r['mode']} | {label} | {t * 1e3:.3f}"
                         f"{spread_ms(r, name)} | {gbs} | {fr} | {ratio} |")
        for name, err in r.get("errors", {}).items():
            lines.append(f"| {r['layer']} | {tuple(r['shape'])} | {r['mode']} | {name} | error: "
                         f"{err.splitlines()[0][:200] if err else ''} | | | |")
    lines += ["", "Targets (measured in this run):", ""]
    for t in result.get("targets", []):
        if t["value"] is None:
            lines.append(f"- {t['target']}: not measured (goal >= {t['goal']})")
            continue
        spread = "" if not t["spread"] else f" (middle half of the rounds: {t['spread'][0]:.2f}-{t['spread'][1]:.2f})"
        lines.append(f"- {t['target']}: {t['value']:.2f}{spread} (goal >= {t['goal']}): "
                     f"{'met' if t['met'] else 'NOT met'}")
    if not result.get("targets"):
        lines.append("- none measured")
    for part, tb in result.get("errors", []):
        lines += ["", f"Error in {part}:", "", "```", tb.rstrip(), "```"]
    return "\n".join(lines)


def gpu_json(result):
    """:func:`gpu_bench`'s result as JSON-ready data (shapes as lists; each row's fractions and
    speeds computed, as in the report)."""
    rows = []
    bw = result.get("copy_bandwidth")
    for r in result["rows"]:
        row = {k: v for k, v in r.items()}
        row["shape"] = list(r["shape"])
        derived = {}
        for name in r["t"]:
            d = {}
            if r.get("bytes"):
                d["gb_per_s"] = r["bytes"] / r["t"][name] / 1e9
                if "bw" in r or bw:
                    d["fraction"] = list(fraction(r, name, bw))
            if TORCH_CUDA in r["t"]:
                d["speed_vs_torch"] = list(speed(r, name, TORCH_CUDA))
            derived[name] = d
        row["derived"] = derived
        rows.append(row)
    return {**{k: v for k, v in result.items() if k != "rows"}, "rows": rows}
