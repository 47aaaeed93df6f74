"""Conv2d, MaxPool2d, AvgPool2d and Flatten."""

from __future__ import annotations

import numbers

from .. import dispatch
from .. import functional as F
from .._checks import check_dim, check_float, check_ndim, check_positive_int, float_dtype
from . import init
from .module import Module, Parameter

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "Flatten"]


def _pair(k, where):
    """(kh, kw) of a kernel_size given as one positive integer or a pair of them."""
    pair = tuple(k) if hasattr(k, "__len__") and not isinstance(k, str) else (k, k)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in pair):
        raise ValueError(f"{where}: kernel_size must be a positive integer or a pair of them, got {k!r}")
    return int(pair[0]), int(pair[1])


class Conv2d(Module):
    """2-d convolution by im2col: (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    ``OH = (H + 2 padding - kh) // stride + 1``, OW likewise. ``.weight`` is
    (out, in, kh, kw) and ``.bias`` (out,), PyTorch's layout and default init
    (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in * kh * kw).

    Parameters
    ----------
    in_channels, out_channels : int
        Positive integers.
    kernel_size : int or tuple of (int, int)
        (kh, kw); an int k means (k, k).
    stride : int, optional
        A positive integer, along both axes.
    padding : int, optional
        Zeros added on each side, >= 0.
    bias : bool, optional
        Whether the layer has a bias.
    dtype : str or dtype, optional
        The parameters' dtype, a floating-point one.
    impl : str, optional
        The implementation of "conv2d": ``"reference"`` (the windows gathered with NumPy
        slices, :mod:`minibn.functional.conv`), ``"fused"`` (gathered and scattered by
        compiled loops, :mod:`minibn.kernels.fused_conv`; NumPy only) or ``"auto"`` (fused
        when it can run). Both do the same matrix products, but for a small weight gradient,
        which the fused path adds up over pieces of its long inner dimension (the same sum up
        to rounding).

    Raises
    ------
    ValueError
        If impl is not one of the registered implementations or "auto", in_channels,
        out_channels or stride is not a positive integer, kernel_size is not one or a pair of
        them, padding is negative, or dtype is not a floating-point dtype.
    """

    can_skip_dx = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype="float32", impl="auto"):
        super().__init__()
        self.impl = dispatch.check_impl("conv2d", impl, "Conv2d")
        check_positive_int("in_channels", in_channels, "Conv2d")
        check_positive_int("out_channels", out_channels, "Conv2d")
        check_positive_int("stride", stride, "Conv2d")
        if padding < 0:
            raise ValueError(f"Conv2d: padding must be >= 0, got {padding}")
        dtype = float_dtype(dtype, "Conv2d")
        kh, kw = _pair(kernel_size, "Conv2d")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        fan_in = in_channels * kh * kw
        self.weight = init.uniform_fan_in_(Parameter.zeros((out_channels, in_channels, kh, kw), dtype), fan_in)
        self.bias = init.uniform_fan_in_(Parameter.zeros((out_channels,), dtype), fan_in) if bias else None

    def forward(self, x):
        """The convolution of x with the layer's filters (the implementation ``impl`` selects).

        Parameters
        ----------
        x : ndarray, shape (N, in_channels, H, W)
            A floating-point array.

        Returns
        -------
        ndarray, shape (N, out_channels, OH, OW)

        Raises
        ------
        TypeError
            If x is not a floating-point array.
        ValueError
            If x is not of shape (N, in_channels, H, W), or the padded input is smaller than the
            kernel.
        ImportError, NotImplementedError
            If the implementation ``impl`` names cannot run on x (``"fused"`` without numba, or
            on a CuPy array): its reason, with the layer's name in front (a reason may also be a
            TypeError or ValueError).
        """
        layout = f"(N, {self.in_channels}, H, W)"
        check_float("x", x, "Conv2d")
        check_ndim("x", x, (4,), "Conv2d", layout)
        check_dim("x", x, 1, self.in_channels, "Conv2d", layout)
        kh, kw = self.kernel_size
        if x.shape[2] + 2 * self.padding < kh or x.shape[3] + 2 * self.padding < kw:
            raise ValueError(f"Conv2d: input of shape {tuple(x.shape)} with padding {self.padding} "
                             f"is smaller than the kernel {self.kernel_size}")
        y, self._cache = self._run("conv2d", self.impl, x, self.weight.data,
                                   None if self.bias is None else self.bias.data, self.stride, self.padding)
        return y

    def backward(self, dy, need_dx=True):
        """Accumulate dW (and db) into the parameters' ``grad``; return dx.

        Parameters
        ----------
        dy : ndarray, shape (N, out_channels, OH, OW)
            The gradient of the last output.
        need_dx : bool, optional
            False skips dx (the first layer: its input is data).

        Returns
        -------
        ndarray, shape (N, in_channels, H, W), or None
            dx; None when ``need_dx`` is False.

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        dx, dW, db = self.last_implementation.backward(dy, self._cache, need_dx)
        self.weight.accumulate(dW)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, impl={self.impl!r}")


class _Pool2d(Module):
    base_class = True
    name = "Pool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, self.name)
        self.stride = self.kernel_size[0] if stride is None else stride
        self.padding = padding
        check_positive_int("stride", self.stride, self.name)
        if not 0 <= padding <= min(self.kernel_size) // 2:
            raise ValueError(f"{self.name}: padding must be in [0, kernel_size // 2], got {padding}")

    def _check(self, x):
        check_float("x", x, self.name)
        check_ndim("x", x, (4,), self.name, "(N, C, H, W)")
        kh, kw = self.kernel_size
        if x.shape[2] + 2 * self.padding < kh or x.shape[3] + 2 * self.padding < kw:
            raise ValueError(f"{self.name}: input of shape {tuple(x.shape)} with padding {self.padding} "
                             f"is smaller than the kernel {self.kernel_size}")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over (kh, kw) windows: (N, C, H, W) -> (N, C, OH, OW); padding counts as -inf.

    Parameters
    ----------
    kernel_size : int or tuple of (int, int)
        (kh, kw); an int k means (k, k).
    stride : int or None, optional
        A positive integer; None for kh.
    padding : int, optional
        In [0, min(kh, kw) // 2].
    impl : str, optional
        The implementation of "max_pool2d": ``"reference"`` (im2col and argmax,
        :mod:`minibn.functional.pooling`), ``"fused"`` (one compiled loop each way,
        :mod:`minibn.kernels.fused_pool`; NumPy only) or ``"auto"`` (fused when it can run).

    Raises
    ------
    ValueError
        If stride is not a positive integer, padding is out of range, or impl is not one of
        the registered implementations or "auto".
    """

    name = "MaxPool2d"

    def __init__(self, kernel_size, stride=None, padding=0, impl="auto"):
        super().__init__(kernel_size, stride, padding)
        self.impl = dispatch.check_impl("max_pool2d", impl, "MaxPool2d")

    def forward(self, x):
        """The maximum of each window (ties: the first).

        Parameters
        ----------
        x : ndarray, shape (N, C, H, W)
            A floating-point array.

        Returns
        -------
        ndarray, shape (N, C, OH, OW)

        Raises
        ------
        TypeError
            If x is not a floating-point array.
        ValueError
            If x is not 4-d, or the padded input is smaller than the kernel.
        ImportError, NotImplementedError
            If the implementation ``impl`` names cannot run on x: its reason, with the layer's
            name in front (a reason may also be a TypeError or ValueError).
        """
        self._check(x)
        y, self._cache = self._run("max_pool2d", self.impl, x, *self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, dy):
        """dx: each dy goes to the position of its window's maximum.

        Parameters
        ----------
        dy : ndarray, shape (N, C, OH, OW)
            The gradient of the last output.

        Returns
        -------
        ndarray, shape (N, C, H, W)

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        return self.last_implementation.backward(dy, self._cache)

    def extra_repr(self):
        return super().extra_repr() + f", impl={self.impl!r}"


class AvgPool2d(_Pool2d):
    """Mean over (kh, kw) windows, zero padding counted: (N, C, H, W) -> (N, C, OH, OW).

    Parameters
    ----------
    kernel_size : int or tuple of (int, int)
        (kh, kw); an int k means (k, k).
    stride : int or None, optional
        A positive integer; None for kh.
    padding : int, optional
        In [0, min(kh, kw) // 2].

    Raises
    ------
    ValueError
        If stride is not a positive integer or padding is out of range.
    """

    name = "AvgPool2d"

    def forward(self, x):
        """The mean of each window (:func:`minibn.functional.avg_pool2d_forward`).

        Parameters
        ----------
        x : ndarray, shape (N, C, H, W)
            A floating-point array.

        Returns
        -------
        ndarray, shape (N, C, OH, OW)

        Raises
        ------
        TypeError
            If x is not a floating-point array.
        ValueError
            If x is not 4-d, or the padded input is smaller than the kernel.
        """
        self._check(x)
        y, self._cache = F.avg_pool2d_forward(x, *self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, dy):
        """dx: each input of a window receives dy / (kh kw).

        Parameters
        ----------
        dy : ndarray, shape (N, C, OH, OW)
            The gradient of the last output.

        Returns
        -------
        ndarray, shape (N, C, H, W)

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        return F.avg_pool2d_backward(dy, self._cache)


class Flatten(Module):
    """Flatten all axes but the first: (N, d_1, ..., d_k) -> (N, d_1 * ... * d_k)."""

    def forward(self, x):
        """x reshaped to (N, features) (a view where NumPy can make one).

        Parameters
        ----------
        x : ndarray, shape (N, ...)
            At least 1-d.

        Returns
        -------
        ndarray, shape (N, prod of the other sizes)

        Raises
        ------
        ValueError
            If x is not an array of at least one axis.
        """
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Flatten: expected x of shape (N, *), got {getattr(x, 'shape', type(x).__name__)}")
        self._shape = x.shape
        features = 1
        for s in x.shape[1:]:
            features *= s
        return x.reshape(x.shape[0], features)  # not -1: an empty batch has no size to infer it from

    def backward(self, dy):
        """dy reshaped to the last input's shape.

        Parameters
        ----------
        dy : ndarray, shape (N, features)
            The gradient of the last output.

        Returns
        -------
        ndarray
            The last input's shape.

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        return dy.reshape(self._shape)
