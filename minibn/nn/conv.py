"""Conv2d, MaxPool2d, AvgPool2d and Flatten."""

from __future__ import annotations

from .. import dispatch
from .. import functional as F
from .._checks import check_dim, check_float, check_ndim, check_positive_int
from . import init
from .linear import _new
from .module import Module, Parameter


def _pair(k):
    return (k, k) if isinstance(k, int) else tuple(k)


class Conv2d(Module):
    """2-d convolution by im2col. x: (N, C_in, H, W) -> y: (N, C_out, OH, OW),
    OH = (H + 2 padding - kh) // stride + 1.

    ``.weight`` is (out, in, kh, kw) and ``.bias`` (out,), PyTorch layout and default init.

    ``impl`` (the implementations of "conv2d"): ``"reference"`` (the windows gathered with
    NumPy slices, :mod:`minibn.functional.conv`), ``"fused"`` (gathered and scattered by
    compiled loops, :mod:`minibn.kernels.fused_conv`; NumPy only) or ``"auto"`` (fused when
    it can run). Both do the same matrix products.
    """

    can_skip_dx = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype="float32", impl="auto"):
        super().__init__()
        allowed = ("auto",) + dispatch.implementations("conv2d")
        if impl not in allowed:
            raise ValueError(f"Conv2d: impl must be one of {allowed}, got {impl!r}")
        self.impl = impl
        check_positive_int("in_channels", in_channels, "Conv2d")
        check_positive_int("out_channels", out_channels, "Conv2d")
        check_positive_int("stride", stride, "Conv2d")
        if padding < 0:
            raise ValueError(f"Conv2d: padding must be >= 0, got {padding}")
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        fan_in = in_channels * kh * kw
        self.weight = init.uniform_fan_in_(Parameter(_new((out_channels, in_channels, kh, kw), dtype)), fan_in)
        self.bias = init.uniform_fan_in_(Parameter(_new((out_channels,), dtype)), fan_in) if bias else None

    def forward(self, x):
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
    name = "Pool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
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
    """Max over (kh, kw) windows. (N, C, H, W) -> (N, C, OH, OW).

    ``impl`` (the implementations of "max_pool2d"): ``"reference"`` (im2col and argmax,
    :mod:`minibn.functional.pooling`), ``"fused"`` (one compiled loop each way,
    :mod:`minibn.kernels.fused_pool`; NumPy only) or ``"auto"`` (fused when it can run).
    """

    name = "MaxPool2d"

    def __init__(self, kernel_size, stride=None, padding=0, impl="auto"):
        super().__init__(kernel_size, stride, padding)
        allowed = ("auto",) + dispatch.implementations("max_pool2d")
        if impl not in allowed:
            raise ValueError(f"MaxPool2d: impl must be one of {allowed}, got {impl!r}")
        self.impl = impl

    def forward(self, x):
        self._check(x)
        y, self._cache = self._run("max_pool2d", self.impl, x, *self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, dy):
        dy = self._check_dy(dy)
        return self.last_implementation.backward(dy, self._cache)

    def extra_repr(self):
        return super().extra_repr() + f", impl={self.impl!r}"


class AvgPool2d(_Pool2d):
    """Mean over (kh, kw) windows (zero padding counted). (N, C, H, W) -> (N, C, OH, OW)."""

    name = "AvgPool2d"

    def forward(self, x):
        self._check(x)
        y, self._cache = F.avg_pool2d_forward(x, *self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, dy):
        dy = self._check_dy(dy)
        return F.avg_pool2d_backward(dy, self._cache)


class Flatten(Module):
    """(N, *) -> (N, prod(*))."""

    def forward(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Flatten: expected x of shape (N, *), got {getattr(x, 'shape', type(x).__name__)}")
        self._shape = x.shape
        features = 1
        for s in x.shape[1:]:
            features *= s
        return x.reshape(x.shape[0], features)  # not -1: an empty batch has no size to infer it from

    def backward(self, dy):
        dy = self._check_dy(dy)
        return dy.reshape(self._shape)
