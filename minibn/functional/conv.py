"""2-d convolution (cross-correlation, as in PyTorch) by im2col / col2im.

im2col gathers every (kh, kw) window of the zero-padded input into a column, so the
convolution becomes one matrix product; col2im scatters column gradients back, adding
where windows overlap. Pooling uses :func:`im2col` / :func:`col2im` ((N, C, kh, kw, OH, OW):
windows per channel); the convolution gathers the same windows straight into its matrix
(:func:`conv_columns`). The gather loops over the kh * kw kernel offsets (not over
output pixels), each iteration a strided slice: short, vectorized, and the same code
on NumPy and CuPy.
"""

from __future__ import annotations

import operator

from ..backend import get_array_module

__all__ = ["im2col", "col2im", "conv_columns", "conv_columns_backward", "conv2d_forward", "conv2d_backward"]


def out_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def im2col(x, kh, kw, stride=1, padding=0, pad_value=0.0):
    """Gather every (kh, kw) window of the zero-padded input, per channel (pooling's layout).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The input.
    kh, kw : int
        The window's height and width.
    stride : int, optional
        The step between windows, along both axes.
    padding : int, optional
        Rows and columns of ``pad_value`` added on each side.
    pad_value : float, optional
        The value of the padding (max pooling pads with -inf).

    Returns
    -------
    cols : ndarray, shape (N, C, kh, kw, OH, OW)
        x's dtype; ``cols[n, c, i, j, oh, ow] = x_padded[n, c, oh * stride + i, ow * stride + j]``,
        with ``OH = (H + 2 padding - kh) // stride + 1`` and OW likewise.
    """
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
    """The adjoint of :func:`im2col`: scatter the windows back, summing where they overlap.

    Parameters
    ----------
    cols : ndarray, shape (N, C, kh, kw, OH, OW)
        A gradient in :func:`im2col`'s layout.
    x_shape : tuple of int
        (N, C, H, W), the shape of im2col's input.
    stride, padding : int, optional
        As given to :func:`im2col`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        cols' dtype; the padding's share is dropped.
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    _, _, kh, kw, OH, OW = cols.shape
    dx = xp.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += cols[:, :, i, j]
    return dx[:, :, padding:padding + H, padding:padding + W]


def conv_columns(x, kh, kw, stride=1, padding=0):
    """The im2col matrix of a convolution, one row per weight and one column per output pixel.

    The same gather as :func:`im2col`, into the layout the matrix product wants: the
    input's channel axis first (one small transposed copy of x), so each kernel offset
    writes whole rows of OW values and the result needs no reordering. (The
    (N, C, kh, kw, OH, OW) layout needs a 6-axis transpose with a stride-kw innermost axis
    to become a matrix: that copy cost more than the product itself.)

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The input.
    kh, kw : int
        The kernel's height and width.
    stride, padding : int, optional
        The convolution's stride and zero padding.

    Returns
    -------
    cols : ndarray, shape (C * kh * kw, N * OH * OW)
        x's dtype.
    OH, OW : int
        The output's height and width.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    xc = x.transpose(1, 0, 2, 3)  # (C, N, H, W)
    if padding:
        xc = xp.pad(xc, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.empty((C, kh, kw, N, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xc[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    return cols.reshape(C * kh * kw, N * OH * OW), OH, OW


def conv_columns_backward(dcols, x_shape, kh, kw, stride, padding, OH, OW):
    """The adjoint of :func:`conv_columns`, adding where windows overlap (as :func:`col2im`).

    Parameters
    ----------
    dcols : ndarray, shape (C * kh * kw, N * OH * OW)
        A gradient in :func:`conv_columns`'s layout.
    x_shape : tuple of int
        (N, C, H, W), the shape of the convolution's input.
    kh, kw, stride, padding, OH, OW : int
        As in the forward.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        C-contiguous, in dcols' dtype.
    """
    xp = get_array_module(dcols)
    N, C, H, W = x_shape
    d = dcols.reshape(C, kh, kw, N, OH, OW)
    dxc = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxc[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += d[:, i, j]
    return xp.ascontiguousarray(dxc[:, :, padding:padding + H, padding:padding + W].transpose(1, 0, 2, 3))


def conv2d_forward(x, W, b=None, stride=1, padding=0, columns=conv_columns):
    """2-d convolution (cross-correlation, as in PyTorch) as one matrix product.

    ``y = W (F, C * kh * kw) @ cols (C * kh * kw, N * OH * OW) (+ b)``, reshaped to
    (N, F, OH, OW), with ``OH = (H + 2 padding - kh) // stride + 1`` and OW likewise.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The input.
    W : ndarray, shape (F, C, kh, kw)
        The filters.
    b : ndarray, shape (F,), or None, optional
        The bias.
    stride, padding : int, optional
        The step between windows and the zero padding on each side.
    columns : callable, optional
        The gather of the windows, with :func:`conv_columns`'s contract (the fused path
        passes its compiled one; the products are the same).

    Returns
    -------
    y : ndarray, shape (N, F, OH, OW)
        C-contiguous.
    cache : tuple
        What :func:`conv2d_backward` needs.
    """
    xp = get_array_module(x)
    N = x.shape[0]
    F, C, kh, kw = W.shape
    cols, OH, OW = columns(x, kh, kw, stride, padding)
    y = W.reshape(F, -1) @ cols                       # (F, N * OH * OW)
    if b is not None:
        y += b[:, None]
    y = xp.ascontiguousarray(y.reshape(F, N, OH, OW).transpose(1, 0, 2, 3))
    return y, (x.shape, cols, W, b is not None, stride, padding, OH, OW)


def conv2d_backward(dy, cache, need_dx=True, columns_backward=conv_columns_backward, product=operator.matmul):
    """The gradients of :func:`conv2d_forward`.

    With dy as a matrix dY (F, N * OH * OW): ``dW = dY @ cols^T``, db = the row sums of dY,
    and dx is the adjoint gather of ``W^T @ dY`` (``columns_backward``).

    Parameters
    ----------
    dy : ndarray, shape (N, F, OH, OW)
        dl/dy.
    cache : tuple
        The cache of :func:`conv2d_forward`.
    need_dx : bool, optional
        False skips dx (the network's first layer: its input is data).
    columns_backward : callable, optional
        The adjoint gather, with :func:`conv_columns_backward`'s contract.
    product : callable, optional
        ``product(a, b)``, the matrix product ``a @ b`` that gives dW (the fused path passes
        one that splits a long inner dimension; the result is the same up to rounding).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), or None
        None when ``need_dx`` is False.
    dW : ndarray, shape (F, C, kh, kw)
    db : ndarray, shape (F,), or None
        None when the forward had no bias.
    """
    x_shape, cols, W, has_b, stride, padding, OH, OW = cache
    F, C, kh, kw = W.shape
    dY = dy.transpose(1, 0, 2, 3).reshape(F, -1)      # (F, N * OH * OW)
    # dW = dY cols^T, computed as (cols dY^T)^T: the same product, which BLAS runs up to twice
    # as fast this way round when F and C * kh * kw are small and N * OH * OW is long
    dW = product(cols, dY.T).T.reshape(W.shape)
    db = dY.sum(axis=1) if has_b else None
    dx = None
    if need_dx:
        dx = columns_backward(W.reshape(F, -1).T @ dY, x_shape, kh, kw, stride, padding, OH, OW)
    return dx, dW, db
