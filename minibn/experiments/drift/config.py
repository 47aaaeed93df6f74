"""The settings of `minibn drift` (Fig. 1) and the names of its two nets."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..fig1_net import NORMS

NETS = ("baseline", "bn")
LABELS = {"baseline": "Without BN", "bn": "With BN"}


def label(name, norm="batchnorm"):
    """The legend of a net: "Without BN", or "With <the normalization>"."""
    return LABELS["baseline"] if name == "baseline" else f"With {NORMS[norm][1]}"


def default_eval_every(steps):
    """Evaluate every 1,000 steps on the full run, and about 50 times on a shorter one."""
    return max(1, min(1000, steps // 50))


@dataclass
class DriftConfig:
    """The settings of a run (the defaults are those of the package docstring:
    :mod:`minibn.experiments.drift`); :meth:`validate` names the first bad one."""

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
