"""The compiled loops of convolution and max pooling against the reference functions.

Max pooling (the 2 x 2 / stride 2 loop written out, and the general ones): outputs, where the
gradient goes, ties (the first maximum wins) and NaN (the first NaN wins). Convolution (the
windows gathered and scattered by loops): the same matrix as the reference's NumPy slices,
bit for bit, and the same dx (the scatter adds in the reference's order), for kernels,
strides and paddings of every kind; dW is the reference's bit for bit too, except where it
is small and its inner dimension long (a first conv's): then it is added up over pieces,
and agrees to rounding. (Both are also gradient-checked and compared with PyTorch through
their registrations.)"""

import numpy as np
import pytest

from minibn import functional as F
from tests.helpers import needs_numba

pytestmark = needs_numba


# one NaN at each place of a 2 x 2 window (alone: the 2 x 2 loop redoes the whole pooling if it
# sees any NaN, so each place's check must be tested without a NaN elsewhere), or none
@pytest.mark.parametrize("nan", [(0, 0, 0, 0), (1, 1, 2, 3), (1, 0, 1, 0), (0, 1, 3, 5), None],
                         ids=["NaN top left", "NaN top right", "NaN bottom left", "NaN bottom right", "no NaN"])
@pytest.mark.parametrize("shape, k, stride, padding", [
    ((3, 2, 8, 6), 2, 2, 0),   # the written-out 2 x 2 loop (without NaN; with one, the general loop)
    ((3, 2, 9, 7), 2, 2, 0),   # odd sizes: the last row and column are dropped
    ((2, 3, 7, 7), 3, 2, 0),   # the general unpadded loop
    ((2, 3, 6, 6), 2, 1, 1),   # padding
])
def test_the_loops_match_the_reference(shape, k, stride, padding, nan):
    from minibn.kernels.fused_pool import max_pool2d_backward_fused, max_pool2d_forward_fused
    r = np.random.default_rng(0)
    x = r.integers(-3, 4, shape).astype(np.float32)  # few values: many ties
    x[0, 1, 2, 2], x[1, 0, 3, 3] = -np.inf, np.inf
    if nan is not None:
        x[nan] = np.nan
    y_ref, cache_ref = F.max_pool2d_forward(x, k, k, stride, padding)
    y, cache = max_pool2d_forward_fused(x, k, k, stride, padding)
    np.testing.assert_array_equal(y, y_ref)  # NaN where the reference has NaN
    dy = r.standard_normal(y.shape).astype(np.float32)
    # where windows overlap, the two add a cell's gradients in different orders (float32)
    np.testing.assert_allclose(max_pool2d_backward_fused(dy, cache), F.max_pool2d_backward(dy, cache_ref),
                               rtol=1e-6, atol=1e-6)


CONV_CASES = [
    ((4, 3, 9, 8), 5, (3, 3), 1, 1),
    ((2, 2, 11, 10), 3, (3, 2), 2, 2),   # a non-square kernel, stride 2, padding larger than 1
    ((3, 1, 7, 7), 4, (5, 5), 1, 0),
    ((2, 4, 6, 6), 2, (1, 1), 3, 0),     # 1 x 1 kernel, stride larger than it
    ((1, 1, 2, 2), 2, (1, 1), 3, 2),     # padding larger than the kernel: some offsets reach no input
    ((3, 2, 14, 14), 4, (5, 5), 1, 2),   # LeNet's 5 x 5 at stride 1: rows cut by the padding on both sides
    ((2, 1, 3, 3), 2, (2, 2), 1, 3),     # stride 1, padding larger than the kernel: whole rows of padding
    ((2, 2, 5, 2), 3, (1, 4), 1, 2),     # a kernel wider than the input
]


@pytest.mark.parametrize("shape, F_, k, stride, padding", CONV_CASES)
def test_the_conv_loops_match_the_reference(shape, F_, k, stride, padding):
    from minibn.kernels.fused_conv import conv2d_backward_fused, conv2d_forward_fused
    r = np.random.default_rng(1)
    x = r.standard_normal(shape).astype(np.float32)
    W, b = r.standard_normal((F_, shape[1], *k)).astype(np.float32), r.standard_normal(F_).astype(np.float32)
    y_ref, cache_ref = F.conv2d_forward(x, W, b, stride, padding)
    y, cache = conv2d_forward_fused(x, W, b, stride, padding)
    np.testing.assert_array_equal(cache[1], cache_ref[1])  # the same matrix of windows
    np.testing.assert_array_equal(y, y_ref)
    dy = r.standard_normal(y.shape).astype(np.float32)
    # the same products, the same order of additions (every case's dW is below the size that
    # the fused path splits: see test_a_first_convs_weight_gradient_in_pieces)
    for got, want in zip(conv2d_backward_fused(dy, cache), F.conv2d_backward(dy, cache_ref)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_first_convs_weight_gradient_in_pieces(dtype, monkeypatch):
    """A first conv's dW (a small output, a long inner dimension N * OH * OW) is added up over
    pieces of that dimension: the reference's dW up to rounding, and dx and db the
    reference's bit for bit."""
    from minibn.kernels import fused_conv
    r = np.random.default_rng(3)
    x = r.standard_normal((32, 1, 28, 28)).astype(dtype)   # MNIST's first conv, batch 32
    W, b = r.standard_normal((6, 1, 5, 5)).astype(dtype), r.standard_normal(6).astype(dtype)
    y_ref, cache_ref = F.conv2d_forward(x, W, b, 1, 2)
    y, cache = fused_conv.conv2d_forward_fused(x, W, b, 1, 2)
    (m, k), n = cache[1].shape, W.shape[0]
    assert m * n <= fused_conv.SMALL_OUTPUT and m * n * k > fused_conv.SMALL_PRODUCT  # so it is split
    products = []
    split = fused_conv._weight_product
    monkeypatch.setattr(fused_conv, "_weight_product", lambda a, b_: products.append(a.shape) or split(a, b_))
    dy = r.standard_normal(y.shape).astype(dtype)
    dx, dW, db = fused_conv.conv2d_backward_fused(dy, cache)
    dx_ref, dW_ref, db_ref = F.conv2d_backward(dy, cache_ref)
    assert products == [(m, k)]  # dW came from the product in pieces
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(db, db_ref)
    exact = (dy.astype(np.float64).transpose(1, 0, 2, 3).reshape(n, -1)
             @ cache_ref[1].astype(np.float64).T).reshape(W.shape)
    # rounding grows like sqrt(k) eps |sum|; a dropped or repeated piece costs |sum| / sqrt(pieces)
    tol = np.finfo(dtype).eps * np.sqrt(k) * np.abs(exact).max()
    assert dW.dtype == dW_ref.dtype and dW.shape == dW_ref.shape
    assert np.abs(dW - exact).max() < tol and np.abs(dW_ref - exact).max() < tol


@pytest.mark.parametrize("m, k, n", [
    (25, 25088, 6),    # LeNet's first conv at batch 32: split
    (9, 50176, 8),     # the bench's first conv at batch 64: split
    (25, 6667, 6),     # one piece of 6,666 and a last piece of one value
    (25, 13332, 6),    # two whole pieces
    (16, 5000, 16),    # an output of 256 values, the most that is split
    (257, 5000, 1),    # 257 values: one product
    (25, 6666, 6),     # 999,900 multiply-adds: one product
    (150, 6272, 16),   # a second conv's: one product
])
def test_the_weight_product_in_pieces(m, k, n):
    """Split exactly where it should be, into pieces of at most SMALL_PRODUCT multiply-adds,
    each product added in turn (bitwise the sum written out here); otherwise a @ b itself."""
    from minibn.kernels.fused_conv import SMALL_OUTPUT, SMALL_PRODUCT, _weight_product
    r = np.random.default_rng(4)
    a, b = r.standard_normal((m, k)).astype(np.float32), r.standard_normal((n, k)).astype(np.float32).T
    got = _weight_product(a, b)
    if m * n > SMALL_OUTPUT or m * n * k <= SMALL_PRODUCT:
        np.testing.assert_array_equal(got, a @ b)
        return
    step = SMALL_PRODUCT // (m * n)
    want = a[:, :step] @ b[:step]
    for lo in range(step, k, step):
        want += a[:, lo:lo + step] @ b[lo:lo + step]
    np.testing.assert_array_equal(got, want)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    tol = np.finfo(np.float32).eps * np.sqrt(k) * np.abs(exact).max()
    assert got.dtype == np.float32 and np.abs(got - exact).max() < tol
    with pytest.raises(ValueError, match="inner sizes differ"):
        _weight_product(a, b[:-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, F_, k, stride, padding", CONV_CASES + [
    ((2, 2, 2, 3), 1, (5, 5), 1, 2),     # "same", the plane narrower than the kernel: whole offsets masked
    ((2, 3, 7, 5), 1, (3, 3), 1, 1),     # "same", 3 x 3 on a non-square plane
])
def test_the_gather_is_bitwise_the_reference(shape, F_, k, stride, padding, dtype):
    """The compiled gather copies each value of x as it is (NaN payloads, infinities, -0) and
    writes +0 in the padding, as the reference's NumPy slices do: equal as bytes."""
    from minibn.kernels.fused_conv import _columns
    r = np.random.default_rng(5)
    x = r.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::7], flat[1::11], flat[2::13], flat[3::17] = -0.0, np.inf, -np.inf, np.nan
    want = F.conv_columns(x, *k, stride, padding)
    got = _columns(x, *k, stride, padding)
    assert got[1:] == want[1:] and got[0].dtype == want[0].dtype and got[0].shape == want[0].shape
    np.testing.assert_array_equal(np.ascontiguousarray(got[0]).view(np.uint8),
                                  np.ascontiguousarray(want[0]).view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, F_, k, stride, padding", CONV_CASES)
def test_the_scatter_is_bitwise_the_reference(shape, F_, k, stride, padding, dtype):
    """Each value of dx receives its additions in the reference's order (the kernel offsets in
    turn, from +0), so the two agree bit for bit, NaN, infinities and -0 included; the values
    at positions in the padding (here NaN) must not reach dx."""
    from minibn.functional.conv import out_size
    from minibn.kernels.fused_conv import _columns_backward
    (N, C, H, W), (kh, kw) = shape, k
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    r = np.random.default_rng(2)
    dcols = r.standard_normal((C * kh * kw, N * OH * OW)).astype(dtype)
    flat = dcols.reshape(-1)
    flat[::7], flat[::11], flat[::13], flat[::17] = -0.0, np.inf, -np.inf, np.nan
    cols, _, _ = F.conv_columns(np.ones(shape, dtype), kh, kw, stride, padding)
    dcols[cols == 0] = np.nan  # where a window reads the padding
    with np.errstate(invalid="ignore"):  # inf + -inf
        want = F.conv_columns_backward(dcols, shape, kh, kw, stride, padding, OH, OW)
    got = _columns_backward(dcols.copy(), shape, kh, kw, stride, padding, OH, OW)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
