"""Small synthetic problems for the course."""

from __future__ import annotations

import math

import numpy as np


def disc(n, seed=0):
    """EE-559's 2-d "disc" problem: x uniform in [-1, 1]^2, label 1 inside the disc of
    radius sqrt(2 / pi) (which holds half of the square's area, so the classes are
    balanced), 0 outside. Returns x (n, 2) float32 and labels (n,) int64."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2)).astype(np.float32)
    return x, ((x ** 2).sum(axis=1) < 2.0 / math.pi).astype(np.int64)
