"""LayerNorm, GroupNorm and InstanceNorm2d: BN's relatives, which normalize each sample on its own.

No running statistics: training and inference compute the same function, so ``train()``
and ``eval()`` change nothing here, and the batch size does not matter. ``impl``:
``"reference"`` (the readable functions of :mod:`minibn.functional`), ``"fused"``
(compiled loops, :mod:`minibn.kernels.fused_rows`; NumPy only, needs numba) or
``"auto"`` (fused when it can run, else the reference).
"""

from __future__ import annotations

from .._checks import check_float, check_positive_int, plain_array
from .norm import Normalization

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm2d"]


class LayerNorm(Normalization):
    """Normalize over the trailing ``normalized_shape`` axes of each sample (PyTorch semantics).

    x: (*, *normalized_shape) -> y of the same shape; gamma, beta have ``normalized_shape``.
    """

    op = "layer_norm"

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, impl="auto", dtype="float32"):
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        for s in self.normalized_shape:
            check_positive_int("normalized_shape", s, "LayerNorm")
        super().__init__(self.normalized_shape[0], eps, elementwise_affine, impl, dtype,
                         affine_shape=self.normalized_shape)

    def _check(self, x):
        x = plain_array("x", x, self.name)
        check_float("x", x, self.name)
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{self.name}: expected x of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                             f"got shape {tuple(x.shape)}")
        return x

    def forward(self, x):
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x)
        return self._train_forward(x, *self._affine(), len(self.normalized_shape), self.eps)[0]

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.affine}, impl={self.impl!r}"


class GroupNorm(Normalization):
    """Normalize each sample over groups of C / G consecutive channels (and all positions).

    x: (N, C, *) -> y of the same shape; per-channel gamma, beta (C,).
    """

    op = "group_norm"
    _layout = "(N, {C}, *)"

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, impl="auto", dtype="float32"):
        check_positive_int("num_groups", num_groups, "GroupNorm")
        check_positive_int("num_channels", num_channels, "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        super().__init__(num_channels, eps, affine, impl, dtype)

    @property
    def num_channels(self):
        return self.num_features

    def _check(self, x):
        x = plain_array("x", x, self.name)
        check_float("x", x, self.name)
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: expected x of shape {self._layout.format(C=self.num_features)}, "
                             f"got shape {tuple(x.shape)}")
        return x

    def forward(self, x):
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x)
        return self._train_forward(x, *self._affine(), self.num_groups, self.eps)[0]

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_features}, eps={self.eps}, affine={self.affine}, impl={self.impl!r}"


class InstanceNorm2d(Normalization):
    """Normalize each channel of each sample over its H * W positions (Ulyanov et al. 2016):
    GroupNorm with one channel per group. x: (N, C, H, W); gamma, beta (C,) when ``affine``.

    PyTorch's defaults: ``affine=False``, and no running statistics (its
    ``track_running_stats=False``).
    """

    op = "instance_norm"
    _ndims = (4,)
    _layout = "(N, {C}, H, W)"

    def __init__(self, num_features, eps=1e-5, affine=False, impl="auto", dtype="float32"):
        check_positive_int("num_features", num_features, "InstanceNorm2d")
        super().__init__(num_features, eps, affine, impl, dtype)

    def forward(self, x):
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x)
        return self._train_forward(x, *self._affine(), self.eps)[0]

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}, impl={self.impl!r}"
