"""Inverted dropout: in training, zero each value with probability p and scale the rest
by 1/(1-p), so that inference is the identity."""

from __future__ import annotations

from ..backend import get_array_module, random_uniform

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, p):
    """Inverted dropout in training: zero each value with probability p, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : ndarray, any shape
        A floating-point array.
    p : float
        The drop probability, in [0, 1) (not checked here: :class:`minibn.nn.Dropout` does).

    Returns
    -------
    y : ndarray
        ``x * mask``, x's shape and dtype; x itself when p == 0.
    mask : ndarray or None
        x's shape and dtype, 0 or 1/(1-p) (already scaled); None when p == 0.
    """
    xp = get_array_module(x)
    if p == 0.0:
        return x, None
    mask = (random_uniform(x.shape, xp) >= p).astype(x.dtype) * (1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask):
    """The gradient of :func:`dropout_forward`: dy times the same scaled mask.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    mask : ndarray or None
        The forward's mask (None: p == 0, the identity).

    Returns
    -------
    dx : ndarray
        dy's shape.
    """
    return dy if mask is None else dy * mask
