"""Target domains: deterministic, seeded shifts of MNIST images.

Each shift changes the input statistics the way a new recording condition would (a
different sensor, lighting or placement), while the labels stay the same. A shift is a
named function ``shift(x, seed) -> x_shifted`` on images x of shape (N, 784) with
values in [0, 1] (host arrays); the same seed gives the same result.

* ``invert``: 1 - x (negative film: the background becomes bright).
* ``low_contrast``: 0.3 x + 0.5 (a washed-out image on a grey offset).
* ``noise``: x + N(0, 0.3^2), clipped to [0, 1] (a noisy sensor).
* ``rotate``: every digit rotated by 30 degrees about the image centre (bilinear).
"""

from __future__ import annotations

import math

import numpy as np


def invert(x, seed=0):
    return (1.0 - x).astype(np.float32)


def low_contrast(x, seed=0, scale=0.3, offset=0.5):
    return (scale * x + offset).astype(np.float32)


def noise(x, seed=0, std=0.3):
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0.0, std, x.shape), 0.0, 1.0).astype(np.float32)


def rotate(x, seed=0, degrees=30.0, side=28):
    """Rotate each side x side image by ``degrees`` (counter-clockwise), bilinear, zero outside."""
    imgs = x.reshape(-1, side, side)
    c = (side - 1) / 2.0
    t = math.radians(degrees)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    # for each output pixel, the source position (inverse rotation)
    sx = math.cos(t) * (xx - c) - math.sin(t) * (yy - c) + c
    sy = math.sin(t) * (xx - c) + math.cos(t) * (yy - c) + c
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    out = np.zeros_like(imgs, dtype=np.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        px, py = x0 + dx, y0 + dy
        ok = (px >= 0) & (px < side) & (py >= 0) & (py < side)
        out[:, ok] += w[ok] * imgs[:, py[ok], px[ok]]
    return out.reshape(x.shape).astype(np.float32)


SHIFTS = {"invert": invert, "low_contrast": low_contrast, "noise": noise, "rotate": rotate}


def apply_shift(name, x, seed=0):
    """Apply the shift called ``name`` (one of :data:`SHIFTS`) to images x (N, 784)."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; choose from {sorted(SHIFTS)}")
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValueError(f"apply_shift: expected x of shape (N, 784), got {tuple(x.shape)}")
    return SHIFTS[name](x, seed)
