"""LayerNorm, RMSNorm, GroupNorm and InstanceNorm2d: BN's relatives, which normalize each sample on its own.

No running statistics: training and inference compute the same function, so ``train()``
and ``eval()`` change nothing here, and the batch size does not matter. ``impl``:
``"reference"`` (the readable functions of :mod:`minibn.functional`), ``"fused"``
(compiled loops, :mod:`minibn.kernels.fused_rows`; NumPy only, needs numba; not for
RMSNorm) or ``"auto"`` (fused when it can run, else the reference).
"""

from __future__ import annotations

from .._checks import check_float, check_positive_int, plain_array
from .norm import Input2d, Normalization

__all__ = ["LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm2d"]


class PerSampleNormalization(Normalization):
    """Base of the layers that normalize each sample on its own: no running statistics, so
    training and eval compute the same function, and the layer reads nothing back from its
    cache."""

    base_class = True

    def _cache_statistics(self, x):
        return {}

    def forward(self, x):
        """x -> y of the same shape; the same in training and eval."""
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x)
        return self._train_forward(x)[0]


class TrailingShapeNormalization(PerSampleNormalization):
    """Base of the layers that normalize each sample over its trailing ``normalized_shape``
    axes (LayerNorm, RMSNorm): the shape's checks, the input check, the operation's
    ``normalized_ndim`` argument. x: (*, *normalized_shape); the parameters have
    ``normalized_shape``."""

    base_class = True

    def __init__(self, normalized_shape, eps, elementwise_affine, impl, dtype, beta=True):
        name = type(self).__name__
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
            raise ValueError(f"{name}: normalized_shape must be a positive integer or a non-empty tuple of them, "
                             f"got {normalized_shape!r}")
        self.normalized_shape = tuple(normalized_shape)
        for s in self.normalized_shape:
            check_positive_int("normalized_shape", s, name)
        super().__init__(self.normalized_shape[0], eps, impl, dtype, gamma=elementwise_affine,
                         beta=elementwise_affine and beta, param_shape=self.normalized_shape)

    def _check(self, x):
        x = plain_array("x", x, self.name)
        check_float("x", x, self.name)
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{self.name}: expected x of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                             f"got shape {tuple(x.shape)}")
        return x

    def _operation_args(self, x):
        """(gamma, beta, normalized_ndim, eps): those of :func:`minibn.functional.layer_norm_forward`."""
        return (*self._gamma_beta(), len(self.normalized_shape), self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.affine}, impl={self.impl!r}"


class LayerNorm(TrailingShapeNormalization):
    """Layer normalization (Ba et al. 2016): each sample normalized over its trailing ``normalized_shape`` axes.

    PyTorch semantics: x (..., D_1, ..., D_k) with (D_1, ..., D_k) = ``normalized_shape``
    -> y of the same shape; gamma and beta have ``normalized_shape``
    (:func:`minibn.functional.layer_norm_forward`). Training and eval compute the same
    thing; an empty batch gives an empty output.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing sizes each sample is normalized over (positive integers).
    eps : float, optional
        Added to the variance inside the square root (>= 0).
    elementwise_affine : bool, optional
        Whether the layer has gamma and beta.
    impl : {"auto", "reference", "fused"}, optional
        The implementation of "layer_norm".
    dtype : str or dtype, optional
        The parameters' dtype.

    Raises
    ------
    ValueError
        If normalized_shape is not a positive integer or a non-empty tuple of them, eps is
        not a number >= 0, or impl is not one of its values. The forward raises TypeError
        for an x that is not a plain floating-point array, and ValueError for one whose
        trailing shape is not ``normalized_shape``.
    """

    op = "layer_norm"

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, impl="auto", dtype="float32"):
        super().__init__(normalized_shape, eps, elementwise_affine, impl, dtype)


class RMSNorm(TrailingShapeNormalization):
    """Root mean square normalization (Zhang & Sennrich 2019, Eq. 4): LayerNorm without the mean.

    Each sample is divided by the root mean square of its trailing ``normalized_shape``
    values, then scaled by gamma: nothing is subtracted and there is no beta
    (:func:`minibn.functional.rms_norm_forward`). PyTorch's ``torch.nn.RMSNorm``. x
    (..., D_1, ..., D_k) -> y of the same shape; gamma has ``normalized_shape``. Training
    and eval compute the same thing.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing sizes each sample is normalized over (positive integers).
    eps : float or None, optional
        Added to the mean square (>= 0). None (the default, as in PyTorch): the machine
        epsilon of the computation, ``numpy.finfo(float64).eps`` for float64 inputs and
        ``numpy.finfo(float32).eps`` for the others.
    elementwise_affine : bool, optional
        Whether the layer has gamma.
    impl : {"auto", "reference"}, optional
        The reference is the only implementation.
    dtype : str or dtype, optional
        The parameters' dtype.

    Raises
    ------
    ValueError
        If normalized_shape is not a positive integer or a non-empty tuple of them, eps is
        neither None nor a number >= 0, or impl is not one of its values. The forward
        raises as :class:`LayerNorm`'s.
    """

    op = "rms_norm"

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, impl="auto", dtype="float32"):
        super().__init__(normalized_shape, eps, elementwise_affine, impl, dtype, beta=False)

    @property
    def eps(self):
        """Added to the mean square: a number >= 0, or None for the machine epsilon of the input's computation dtype."""
        return self._eps

    @eps.setter
    def eps(self, value):
        if value is None:
            self._eps = None  # the machine epsilon of the input's computation dtype
        else:
            Normalization.eps.fset(self, value)

    def _operation_args(self, x):
        """(gamma, normalized_ndim, eps): those of :func:`minibn.functional.rms_norm_forward`."""
        return self._gamma_beta()[0], len(self.normalized_shape), self.eps


class GroupNorm(PerSampleNormalization):
    """Group normalization (Wu & He 2018): each sample normalized per group of C / G consecutive channels.

    Each group is normalized over its channels and all positions. x (N, C, ...) -> y of the
    same shape, with per-channel gamma, beta (C,)
    (:func:`minibn.functional.group_norm_forward`). Training and eval compute the same
    thing; an empty batch gives an empty output.

    Parameters
    ----------
    num_groups : int
        G, a positive integer dividing num_channels.
    num_channels : int
        C, a positive integer.
    eps : float, optional
        Added to the variance inside the square root (>= 0).
    affine : bool, optional
        Whether the layer has gamma and beta.
    impl : {"auto", "reference", "fused"}, optional
        The implementation of "group_norm".
    dtype : str or dtype, optional
        The parameters' dtype.

    Raises
    ------
    ValueError
        If num_groups or num_channels is not a positive integer, num_groups does not divide
        num_channels, eps is not a number >= 0, or impl is not one of its values. The
        forward raises TypeError for an x that is not a plain floating-point array, and
        ValueError for one that is not (N, C, ...).
    """

    op = "group_norm"
    _layout = "(N, {C}, *)"

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, impl="auto", dtype="float32"):
        name = type(self).__name__
        check_positive_int("num_groups", num_groups, name)
        check_positive_int("num_channels", num_channels, name)
        if num_channels % num_groups:
            raise ValueError(f"{name}: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        super().__init__(num_channels, eps, impl, dtype, gamma=affine, beta=affine)

    @property
    def num_channels(self):
        """C, the number of channels (``num_features``)."""
        return self.num_features

    def _check(self, x):
        x = plain_array("x", x, self.name)
        check_float("x", x, self.name)
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: expected x of shape {self._layout.format(C=self.num_features)}, "
                             f"got shape {tuple(x.shape)}")
        return x

    def _operation_args(self, x):
        """(gamma, beta, num_groups, eps): those of :func:`minibn.functional.group_norm_forward`."""
        return (*self._gamma_beta(), self.num_groups, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_features}, eps={self.eps}, affine={self.affine}, impl={self.impl!r}"


class InstanceNorm2d(Input2d, PerSampleNormalization):
    """Instance normalization (Ulyanov et al. 2016): each channel of each sample normalized over its H * W positions.

    GroupNorm with one channel per group. x (N, C, H, W) -> y of the same shape; gamma,
    beta (C,) when ``affine``. PyTorch's defaults: ``affine=False``, and no running
    statistics (its ``track_running_stats=False``).

    Parameters
    ----------
    num_features : int
        C, a positive integer.
    eps : float, optional
        Added to the variance inside the square root (>= 0).
    affine : bool, optional
        Whether the layer has gamma and beta.
    impl : {"auto", "reference", "fused"}, optional
        The implementation of "instance_norm".
    dtype : str or dtype, optional
        The parameters' dtype.

    Raises
    ------
    ValueError
        If num_features is not a positive integer, eps is not a number >= 0, or impl is not
        one of its values. The forward raises TypeError for an x that is not a plain
        floating-point array, and ValueError for one that is not (N, C, H, W).
    """

    op = "instance_norm"

    def __init__(self, num_features, eps=1e-5, affine=False, impl="auto", dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        super().__init__(num_features, eps, impl, dtype, gamma=affine, beta=affine)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}, impl={self.impl!r}"
