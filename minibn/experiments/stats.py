"""Means over seeds with their 95% intervals, and the rule for saying one method beats another.

A reproduction runs each setting for several seeds. Its tables give the mean, the sample
standard deviation (n - 1) and a 95% confidence interval of the mean, mean +- t s / sqrt(n)
with Student's t for n - 1 degrees of freedom (the runs of a setting are independent
draws; with 5 seeds t = 2.78, so the interval is wide, as it should be). A sentence that
says one method beats another is written only where their intervals do not overlap
(:func:`separated`); elsewhere the difference is within the noise.

One seed has no spread: a one-seed run prints its means with no interval and no verdict
(:func:`several`, :func:`what_the_cells_are`), rather than an interval of NaNs or "beats
none beyond the noise", which would read as a finding.
"""

from __future__ import annotations

import math

import numpy as np

#: Student's t, 97.5% quantile, by degrees of freedom (1-30); the normal 1.96 beyond
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df):
    return T975[df - 1] if 1 <= df <= len(T975) else 1.96


def summarize(values):
    """{"mean", "std" (sample, n - 1), "n", "ci95": [low, high]} of a list of numbers (a single
    value has no spread: std and interval are NaN)."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": n, "ci95": [math.nan, math.nan]}
    std = float(v.std(ddof=1))
    half = t975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95": [mean - half, mean + half]}


def several(seeds):
    """Whether a run with these seeds can have intervals and verdicts (two seeds or more)."""
    return len(set(seeds)) >= 2


def what_the_cells_are(seeds):
    """How a table's header describes its cells: "mean [95% interval] over seeds [0, 1, 2]", or,
    for one seed, "one seed (0): no interval"."""
    seeds = list(seeds)
    if several(seeds):
        return f"mean [95% interval] over seeds {seeds}"
    return f"one seed ({', '.join(map(str, seeds))}): no interval"


def cell(s, digits=2, mark_single=True):
    """A table cell: "2.33 [2.18, 2.48]" (mean [95% interval]), or "2.33 (1 seed)" for a single
    value (just "2.33" with ``mark_single=False``: a one-seed table says so in its header)."""
    if s["n"] < 2:
        return f"{s['mean']:.{digits}f}" + (" (1 seed)" if mark_single else "")
    lo, hi = s["ci95"]
    return f"{s['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def separated(a, b):
    """Whether two summaries' 95% intervals do not overlap (then the difference of the means
    is not within the noise of these seeds)."""
    if a["n"] < 2 or b["n"] < 2:
        return False
    return a["ci95"][1] < b["ci95"][0] or b["ci95"][1] < a["ci95"][0]


def check_runs(seeds, steps=None, variants=None, known=()):
    """ValueError naming the first bad setting of an experiment's runs: seeds (one or more
    integers >= 0), steps (>= 10, when given) and variants (each one of ``known``)."""
    if not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds):
        raise ValueError(f"seeds must be one or more integers >= 0, got {seeds}")
    # a seed given twice is one run counted twice: its mean is that run's, and its "interval"
    # has zero width, a certainty no experiment gave
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise ValueError(f"seeds must differ: {', '.join(map(str, twice))} given more than once in {list(seeds)}")
    if steps is not None and steps < 10:
        raise ValueError(f"steps must be >= 10, got {steps}")
    bad = [v for v in (variants or ()) if v not in known]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {tuple(known)}")
