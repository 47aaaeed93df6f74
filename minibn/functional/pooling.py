"""2-d max and average pooling over (kh, kw) windows, via the same im2col as conv.

PyTorch semantics: stride defaults to the kernel size; max pooling pads with -inf;
average pooling pads with zeros and divides by kh * kw (count_include_pad=True).
"""

from __future__ import annotations

from ..backend import get_array_module
from .conv import col2im, im2col

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]


def max_pool2d_forward(x, kh, kw, stride, padding=0):
    """x: (N, C, H, W) -> (y (N, C, OH, OW), cache). Ties go to the first maximum."""
    N, C = x.shape[:2]
    cols = im2col(x, kh, kw, stride, padding, pad_value=-float("inf"))
    OH, OW = cols.shape[4:]
    win = cols.reshape(N, C, kh * kw, OH, OW)
    arg = win.argmax(axis=2)
    xp = get_array_module(x)
    y = xp.take_along_axis(win, arg[:, :, None], axis=2)[:, :, 0]
    return y, (x.shape, arg, kh, kw, stride, padding)


def max_pool2d_backward(dy, cache):
    """The gradient goes to the position of each window's maximum."""
    x_shape, arg, kh, kw, stride, padding = cache
    xp = get_array_module(dy)
    N, C, OH, OW = dy.shape
    onehot = xp.arange(kh * kw).reshape(1, 1, -1, 1, 1) == arg[:, :, None]
    dcols = (onehot * dy[:, :, None]).reshape(N, C, kh, kw, OH, OW)
    return col2im(dcols, x_shape, stride, padding)


def avg_pool2d_forward(x, kh, kw, stride, padding=0):
    """x: (N, C, H, W) -> (y (N, C, OH, OW), cache)."""
    cols = im2col(x, kh, kw, stride, padding)
    y = cols.mean(axis=(2, 3))
    return y, (x.shape, kh, kw, stride, padding)


def avg_pool2d_backward(dy, cache):
    """Each input in a window receives dy / (kh * kw)."""
    x_shape, kh, kw, stride, padding = cache
    xp = get_array_module(dy)
    N, C, OH, OW = dy.shape
    dcols = xp.broadcast_to((dy / (kh * kw))[:, :, None, None], (N, C, kh, kw, OH, OW))
    return col2im(dcols, x_shape, stride, padding)
