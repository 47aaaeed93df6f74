"""Inverted dropout: in training, zero each value with probability p and scale the rest
by 1/(1-p), so that inference is the identity."""

from __future__ import annotations

from ..backend import get_array_module, random_uniform

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, p):
    """x: any shape. Returns (y, mask) with mask already scaled by 1/(1-p)."""
    xp = get_array_module(x)
    if p == 0.0:
        return x, None
    mask = (random_uniform(x.shape, xp) >= p).astype(x.dtype) * (1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask):
    return dy if mask is None else dy * mask
