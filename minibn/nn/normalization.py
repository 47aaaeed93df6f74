"""LayerNorm and GroupNorm: BN's relatives, which normalize each sample on its own."""

from __future__ import annotations

from .. import backend
from .. import functional as F
from .._checks import check_float, check_positive_int
from .module import Module, Parameter

_IMPLS = ("auto", "fused", "reference")


def _check_impl(impl, where):
    if impl not in _IMPLS:
        raise ValueError(f"{where}: impl must be one of {_IMPLS}, got {impl!r}")
    return impl


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` axes of each sample (PyTorch semantics).

    x: (*, *normalized_shape) -> y of the same shape; gamma, beta have ``normalized_shape``.
    ``impl``: ``"reference"`` (the readable :mod:`minibn.functional.layernorm`), ``"fused"``
    (compiled loops, :mod:`minibn.functional.standardize_fused`; NumPy only, needs numba) or
    ``"auto"`` (fused when it can run, else the reference).
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, impl="auto", dtype="float32"):
        super().__init__()
        self.impl = _check_impl(impl, "LayerNorm")
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        for s in self.normalized_shape:
            check_positive_int("normalized_shape", s, "LayerNorm")
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be >= 0, got {eps!r}")
        self.eps = eps
        xp = backend.xp()
        self.gamma = Parameter(xp.ones(self.normalized_shape, dtype=dtype)) if elementwise_affine else None
        self.beta = Parameter(xp.zeros(self.normalized_shape, dtype=dtype)) if elementwise_affine else None

    def forward(self, x):
        check_float("x", x, "LayerNorm")
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm: expected x of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                             f"got shape {tuple(x.shape)}")
        g = None if self.gamma is None else self.gamma.data
        b = None if self.beta is None else self.beta.data
        fused = F.use_fused(self.impl, x)
        y, cache = (F.layer_norm_forward_fused if fused else F.layer_norm_forward)(x, g, b, k, self.eps)
        self._cache = (fused, cache)
        return y

    def backward(self, dy):
        fused, cache = self._cache
        dx, dgamma, dbeta = (F.layer_norm_backward_fused if fused else F.layer_norm_backward)(dy, cache)
        if self.gamma is not None:
            self.gamma.accumulate(dgamma)
            self.beta.accumulate(dbeta)
        return dx

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, impl={self.impl!r}"


class GroupNorm(Module):
    """Normalize each sample over groups of C / G channels (and all positions).

    x: (N, C, *) -> y of the same shape; per-channel gamma, beta (C,).
    ``impl``: ``"reference"`` (the readable :mod:`minibn.functional.groupnorm`), ``"fused"``
    (compiled loops, :mod:`minibn.functional.standardize_fused`; NumPy only, needs numba) or
    ``"auto"`` (fused when it can run, else the reference).
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, impl="auto", dtype="float32"):
        super().__init__()
        self.impl = _check_impl(impl, "GroupNorm")
        check_positive_int("num_groups", num_groups, "GroupNorm")
        check_positive_int("num_channels", num_channels, "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        if not eps >= 0:
            raise ValueError(f"GroupNorm: eps must be >= 0, got {eps!r}")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        xp = backend.xp()
        self.gamma = Parameter(xp.ones(num_channels, dtype=dtype)) if affine else None
        self.beta = Parameter(xp.zeros(num_channels, dtype=dtype)) if affine else None

    def forward(self, x):
        check_float("x", x, "GroupNorm")
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected x of shape (N, {self.num_channels}, *), got shape {tuple(x.shape)}")
        g = None if self.gamma is None else self.gamma.data
        b = None if self.beta is None else self.beta.data
        fused = F.use_fused(self.impl, x)
        y, cache = (F.group_norm_forward_fused if fused else F.group_norm_forward)(x, g, b, self.num_groups,
                                                                                   self.eps)
        self._cache = (fused, cache)
        return y

    def backward(self, dy):
        fused, cache = self._cache
        dx, dgamma, dbeta = (F.group_norm_backward_fused if fused else F.group_norm_backward)(dy, cache)
        if self.gamma is not None:
            self.gamma.accumulate(dgamma)
            self.beta.accumulate(dbeta)
        return dx

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, impl={self.impl!r}"
