"""2-d convolution (cross-correlation, as in PyTorch) by im2col / col2im.

im2col gathers every (kh, kw) window of the zero-padded input into a column, so the
convolution becomes one matrix product; col2im scatters column gradients back, adding
where windows overlap. The gather loops over the kh * kw kernel offsets (not over
output pixels), each iteration a strided slice: short, vectorized, and the same code
on NumPy and CuPy.
"""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward"]


def out_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def im2col(x, kh, kw, stride=1, padding=0, pad_value=0.0):
    """x: (N, C, H, W) -> cols: (N, C, kh, kw, OH, OW)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                   constant_values=pad_value)
    cols = xp.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    return cols


def col2im(cols, x_shape, stride=1, padding=0):
    """cols: (N, C, kh, kw, OH, OW) -> (N, C, H, W), summing overlapping windows."""
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    _, _, kh, kw, OH, OW = cols.shape
    dx = xp.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += cols[:, :, i, j]
    return dx[:, :, padding:padding + H, padding:padding + W]


def conv2d_forward(x, W, b=None, stride=1, padding=0):
    """x: (N, C, H, W); W: (F, C, kh, kw); b: (F,) or None. Returns (y (N, F, OH, OW), cache)."""
    N = x.shape[0]
    F, C, kh, kw = W.shape
    cols = im2col(x, kh, kw, stride, padding)
    OH, OW = cols.shape[4], cols.shape[5]
    # rows: one per output pixel (N * OH * OW), columns: one per weight (C * kh * kw)
    cols2 = cols.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * kh * kw)
    y = cols2 @ W.reshape(F, -1).T
    if b is not None:
        y += b
    y = y.reshape(N, OH, OW, F).transpose(0, 3, 1, 2)
    return y, (x.shape, cols2, W, b is not None, stride, padding, OH, OW)


def conv2d_backward(dy, cache, need_dx=True):
    """dy: (N, F, OH, OW). Returns (dx (N, C, H, W) or None, dW (F, C, kh, kw), db (F,) or None)."""
    x_shape, cols2, W, has_b, stride, padding, OH, OW = cache
    F, C, kh, kw = W.shape
    N = x_shape[0]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(N * OH * OW, F)
    dW = (dy2.T @ cols2).reshape(W.shape)
    db = dy2.sum(axis=0) if has_b else None
    dx = None
    if need_dx:
        dcols = (dy2 @ W.reshape(F, -1)).reshape(N, OH, OW, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
        dx = col2im(dcols, x_shape, stride, padding)
    return dx, dW, db
