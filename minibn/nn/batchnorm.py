"""BatchNorm1d and BatchNorm2d: Algorithm 1 in training, Algorithm 2's fixed transform in eval.

Arguments follow PyTorch: ``eps=1e-5``; ``momentum=0.1`` is the weight of the *new*
batch statistic in the running average (running = (1 - momentum) * running +
momentum * batch), and ``momentum=None`` keeps a cumulative average over all batches
seen; ``affine=False`` drops gamma and beta; ``track_running_stats=False`` keeps no
running statistics (``running_mean`` and ``running_var`` are None) and normalizes with
batch statistics in eval mode too. The running variance is unbiased (m / (m - 1));
normalization uses the biased batch variance.

When a channel's unbiased batch variance does not fit ``running_var``'s dtype (a float32
layer fed values of magnitude 1e20 and above: the variance 1e40 exceeds float32's 3.4e38),
that channel's running statistics are not updated, and a :class:`NumericalWarning` names
the channels and the remedy (a float64 layer, or a smaller input). The output is still
normalized by the batch's own statistics (every implementation sums in float64 where x's
dtype would overflow); updating would have made ``running_var`` inf for good, and every
later eval-mode output beta. An empty batch
(N = 0) gives an empty output, as in PyTorch: in training it is counted in
``num_batches_tracked`` and changes no running statistic.

``backward="closed"`` (default) uses the simplified closed form, ``"paper"`` the paper's
step-by-step chain rule; both give the same gradient. ``backward="paper"`` always runs
the reference implementation (the chain rule needs its cache), whatever ``impl`` says.

``impl`` picks how training mode is computed, always the same function (the
implementations of the operation "batch_norm", see :mod:`minibn.registry`):

- ``"reference"``: Algorithm 1 line by line (:mod:`minibn.functional.batchnorm`);
- ``"fast"``: NumPy/CuPy in fewer passes over memory, with reused buffers
  (:mod:`minibn.kernels.numpy_fast`);
- ``"fused"``: two hand-written loops per direction, compiled by numba, a large input
  split across the CPU cores (:mod:`minibn.kernels.fused_bn`; NumPy arrays only);
- ``"auto"`` (default): fused for float32/float64 NumPy inputs when numba is installed;
  otherwise fast from 65,536 values (where passes over memory dominate) and the
  reference below (and for float16).
"""

from __future__ import annotations

import math

from .. import backend
from .. import functional as F
from .._checks import check_positive_int
from .norm import Input1d, Input2d, Normalization, RunningStatistics, _largest, parameters_of

__all__ = ["BatchNorm", "BatchNorm1d", "BatchNorm2d", "GhostBatchNorm", "GhostBatchNorm1d", "GhostBatchNorm2d"]

_BACKWARDS = ("closed", "paper")


class BatchNorm(RunningStatistics, Normalization):
    """Batch normalization over (N, C, ...), statistics per channel (Ioffe & Szegedy 2015).

    Training mode: Algorithm 1 with the batch's statistics, and the running statistics
    updated (the stand-in for Algorithm 2's population statistics). Eval mode: Algorithm 2's
    fixed transform (step 11) with the running statistics. See the module docstring for
    the details. The layers to build are :class:`BatchNorm1d` and :class:`BatchNorm2d`.

    Parameters
    ----------
    num_features : int
        C, the channels (a positive integer).
    eps : float, optional
        Added to the variance inside the square root (>= 0).
    momentum : float or None, optional
        The weight of the new batch statistic in the running average, in [0, 1]; None for a
        cumulative average.
    affine : bool, optional
        Whether the layer has gamma and beta.
    track_running_stats : bool, optional
        Keep running statistics; without them eval mode normalizes with the batch's too.
    backward : {"closed", "paper"}, optional
        The closed-form backward, or the paper's chain rule (which always runs the reference
        implementation).
    impl : {"auto", "reference", "fast", "fused"}, optional
        How training mode is computed (the implementations of "batch_norm").
    dtype : str or dtype, optional
        The dtype of the parameters and the running statistics.

    Raises
    ------
    ValueError
        If num_features is not a positive integer, backward or impl is not one of its
        values, eps is not a number >= 0, or momentum is neither None nor in [0, 1].
    """

    base_class = True
    op = "batch_norm"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 backward="closed", impl="auto", dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        if backward not in _BACKWARDS:
            raise ValueError(f"{type(self).__name__}: backward must be one of {_BACKWARDS}, got {backward!r}")
        super().__init__(num_features, eps, impl, dtype, gamma=affine, beta=affine)
        self.momentum = momentum
        self.backward_formula = backward
        self.track_running_stats = track_running_stats
        self.num_batches_tracked = 0
        if track_running_stats:
            xp = backend.xp()
            self.running_mean = xp.zeros(num_features, dtype=dtype)
            self.running_var = xp.ones(num_features, dtype=dtype)
            self._buffers = ("running_mean", "running_var", "num_batches_tracked")
        else:
            self.running_mean = self.running_var = None
            self._buffers = ()
        #: batchnorm freezing (``minibn.adapt.freeze``): the inference transform in training
        #: too, with gamma and beta left without gradient
        self.frozen = False

    def _operation_and_impl(self):
        """("batch_norm", impl); with ``backward="paper"``, ("batch_norm_paper", "reference"):
        the paper's chain rule needs the reference's cache, whatever ``impl`` says."""
        if self.backward_formula == "paper":
            return "batch_norm_paper", "reference"
        return self.op, self.impl

    def _cache_statistics(self, x):
        """The batch statistics the running statistics are updated from: mu_B, var_B (C,)."""
        return {"mu_B": (self.num_features,), "var_B": (self.num_features,)}

    def forward(self, x):
        """Normalize x: with the batch's statistics in training (or without running statistics), else the running ones.

        Parameters
        ----------
        x : ndarray, shape (N, C, ...)
            A plain floating-point array; (N, C) or (N, C, L) for the 1d layers, (N, C, H, W)
            for the 2d ones. An empty batch (N = 0) gives an empty output.

        Returns
        -------
        ndarray
            x's shape and dtype.

        Raises
        ------
        TypeError
            If x is not a plain floating-point array (an ndarray subclass: naming its type and
            the fix).
        ValueError
            If x's shape is not one the layer takes (naming the expected one), or, in training,
            a channel has one value (m = 1).
        ImportError, NotImplementedError
            If the implementation ``impl`` names cannot run on x: its reason, with the layer's
            name in front.
        """
        x = self._check(x)
        batch_statistics = (self.training and not self.frozen) or not self.track_running_stats
        if x.size == 0:
            return self._empty_batch(x, count=batch_statistics and self.track_running_stats)
        if batch_statistics:
            y, cache = self._train_forward(x)
            self._after_batch_statistics(cache)
        else:
            gamma, beta = self._gamma_beta()
            y, cache = F.batch_norm_inference_forward(x, gamma, beta, self.running_mean, self.running_var, self.eps)
            self._remember(F.batch_norm_inference_backward, cache, y, x)
        return y

    def _after_batch_statistics(self, cache):
        """After a forward with batch statistics: warn about unusable channels and, in
        training, update the running statistics (Algorithm 2, step 10) from the cache's
        mu_B, var_B and m, leaving the unusable channels as they were."""
        update = self.training and self.track_running_stats
        var, m = cache["var_B"], cache["m"]  # var >= 0 (rounding clipped): var + eps > 0 if eps > 0
        # the unbiased variance var * m / (m - 1) must fit running_var's dtype
        fits = (_largest(self.running_var.dtype) * ((m - 1) / m), "variance", "running_var") if update else None
        if update:
            factor = self._momentum_factor()
            fast = self.last_implementation.running_update if self.last_implementation is not None else None
            if fast is not None and fast(self.running_mean, self.running_var, cache, factor, fits[0], self.eps == 0):
                return  # the usual case: every channel fine, updated in one compiled call
        bad = self._unusable_channels(var, var if self.eps == 0 else None,
                                      "running statistics were not updated" if update else "outputs are NaN", fits)
        if update:
            self._keep_channels((self.running_mean, self.running_var), bad, lambda: F.update_running_stats(
                self.running_mean, self.running_var, cache["mu_B"], cache["var_B"], cache["m"], factor))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}, backward={self.backward_formula!r}, "
                f"impl={self.impl!r}")


@parameters_of(BatchNorm)
class BatchNorm1d(Input1d, BatchNorm):
    """BN over (N, C) (statistics over N) or (N, C, L) (statistics over N and L).

    The arguments are :class:`BatchNorm`'s:
    """


@parameters_of(BatchNorm)
class BatchNorm2d(Input2d, BatchNorm):
    """BN for conv nets (Sec. 3.2): x (N, C, H, W), statistics per channel over N * H * W.

    The arguments are :class:`BatchNorm`'s:
    """


class GhostBatchNorm(BatchNorm):
    """Ghost batch normalization (Hoffer et al. 2017, Algorithm 1): BN over each virtual batch in turn.

    A large batch is normalized as if it were several small ones: each virtual batch of
    ``virtual_batch_size`` consecutive samples by its own statistics
    (:func:`minibn.functional.ghost_batch_norm_forward`), which keeps the regularizing noise
    of small-batch BN in large-batch training. The running statistics are updated once per
    virtual batch, in order (``num_batches_tracked`` counts virtual batches), so that the
    layer equals PyTorch's BatchNorm applied to each virtual batch in turn. When N is not a
    multiple of ``virtual_batch_size`` the last virtual batch is smaller (N = 10, v = 4: 4,
    4, 2), as ``torch.split`` cuts; a last virtual batch with one value per channel raises
    ValueError, as BN on it would. With v >= N it is BatchNorm. Eval mode is BatchNorm's
    fixed transform with the running statistics.

    Parameters
    ----------
    num_features : int
        C, the channels (a positive integer).
    virtual_batch_size : int
        v, a positive integer.
    eps, momentum, affine, track_running_stats, dtype
        As :class:`BatchNorm` (whose closed-form backward it uses).
    impl : {"auto", "reference"}, optional
        The reference is the only implementation.

    Raises
    ------
    ValueError
        If virtual_batch_size is not a positive integer, or as :class:`BatchNorm`.
    """

    base_class = True
    op = "ghost_batch_norm"

    def __init__(self, num_features, virtual_batch_size, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, impl="auto", dtype="float32"):
        check_positive_int("virtual_batch_size", virtual_batch_size, type(self).__name__)
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, impl=impl, dtype=dtype)
        self.virtual_batch_size = virtual_batch_size

    def _operation_args(self, x):
        """(gamma, beta, virtual_batch_size, eps): those of :func:`minibn.functional.ghost_batch_norm_forward`."""
        return (*self._gamma_beta(), self.virtual_batch_size, self.eps)

    def _cache_statistics(self, x):
        """mu_B, var_B of each virtual batch: (G, C), G = ceil(N / virtual_batch_size)."""
        shape = (math.ceil(x.shape[0] / self.virtual_batch_size), self.num_features)
        return {"mu_B": shape, "var_B": shape}

    def _after_batch_statistics(self, cache):
        """BatchNorm's warnings and running-statistics update for each virtual batch, in order."""
        for virtual_batch in cache["virtual_batches"]:
            super()._after_batch_statistics(virtual_batch)

    def extra_repr(self):
        return (f"{self.num_features}, virtual_batch_size={self.virtual_batch_size}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}, track_running_stats={self.track_running_stats}, "
                f"impl={self.impl!r}")


@parameters_of(GhostBatchNorm)
class GhostBatchNorm1d(Input1d, GhostBatchNorm):
    """Ghost BN over (N, C) or (N, C, L): virtual batches of rows.

    The arguments are :class:`GhostBatchNorm`'s:
    """


@parameters_of(GhostBatchNorm)
class GhostBatchNorm2d(Input2d, GhostBatchNorm):
    """Ghost BN over (N, C, H, W): virtual batches of images, statistics per channel.

    The arguments are :class:`GhostBatchNorm`'s:
    """
