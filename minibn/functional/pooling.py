"""2-d max and average pooling over (kh, kw) windows, via the same im2col as conv.

PyTorch semantics: stride defaults to the kernel size; max pooling pads with -inf;
average pooling pads with zeros and divides by kh * kw (count_include_pad=True).
"""

from __future__ import annotations

from ..backend import get_array_module
from .conv import col2im, im2col

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]


def max_pool2d_forward(x, kh, kw, stride, padding=0):
    """2-d max pooling over (kh, kw) windows (padding with -inf); ties go to the first maximum.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The input.
    kh, kw : int
        The window's height and width.
    stride : int
        The step between windows (the layer's default is the kernel size).
    padding : int, optional
        Rows and columns of -inf added on each side.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
        x's dtype; ``OH = (H + 2 padding - kh) // stride + 1``, OW likewise.
    cache : tuple
        x's shape, the argmax of each window, and the pooling's sizes.
    """
    N, C = x.shape[:2]
    cols = im2col(x, kh, kw, stride, padding, pad_value=-float("inf"))
    OH, OW = cols.shape[4:]
    win = cols.reshape(N, C, kh * kw, OH, OW)
    arg = win.argmax(axis=2)
    xp = get_array_module(x)
    y = xp.take_along_axis(win, arg[:, :, None], axis=2)[:, :, 0]
    return y, (x.shape, arg, kh, kw, stride, padding)


def max_pool2d_backward(dy, cache):
    """The gradient of :func:`max_pool2d_forward`: each dy goes to the position of its window's maximum.

    Parameters
    ----------
    dy : ndarray, shape (N, C, OH, OW)
        dl/dy.
    cache : tuple
        The cache of :func:`max_pool2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Summed where windows overlap.
    """
    x_shape, arg, kh, kw, stride, padding = cache
    xp = get_array_module(dy)
    N, C, OH, OW = dy.shape
    onehot = xp.arange(kh * kw).reshape(1, 1, -1, 1, 1) == arg[:, :, None]
    dcols = (onehot * dy[:, :, None]).reshape(N, C, kh, kw, OH, OW)
    return col2im(dcols, x_shape, stride, padding)


def avg_pool2d_forward(x, kh, kw, stride, padding=0):
    """2-d average pooling over (kh, kw) windows, zero padding counted (``count_include_pad=True``).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The input.
    kh, kw : int
        The window's height and width.
    stride : int
        The step between windows.
    padding : int, optional
        Rows and columns of zeros added on each side.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
        ``OH = (H + 2 padding - kh) // stride + 1``, OW likewise.
    cache : tuple
        x's shape and the pooling's sizes.
    """
    cols = im2col(x, kh, kw, stride, padding)
    y = cols.mean(axis=(2, 3))
    return y, (x.shape, kh, kw, stride, padding)


def avg_pool2d_backward(dy, cache):
    """The gradient of :func:`avg_pool2d_forward`: each input in a window receives dy / (kh kw).

    Parameters
    ----------
    dy : ndarray, shape (N, C, OH, OW)
        dl/dy.
    cache : tuple
        The cache of :func:`avg_pool2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Summed where windows overlap.
    """
    x_shape, kh, kw, stride, padding = cache
    xp = get_array_module(dy)
    N, C, OH, OW = dy.shape
    dcols = xp.broadcast_to((dy / (kh * kw))[:, :, None, None], (N, C, kh, kw, OH, OW))
    return col2im(dcols, x_shape, stride, padding)
