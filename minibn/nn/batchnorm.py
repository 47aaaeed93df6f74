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

from .. import backend
from .. import functional as F
from .._checks import check_positive_int
from .norm import Normalization, RunningStatistics, _largest

_BACKWARDS = ("closed", "paper")


class BatchNorm(RunningStatistics, Normalization):
    """Batch normalization over (N, C, *), statistics per channel (see the module docstring)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 backward="closed", impl="auto", dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        if backward not in _BACKWARDS:
            raise ValueError(f"{type(self).__name__}: backward must be one of {_BACKWARDS}, got {backward!r}")
        super().__init__(num_features, eps, affine, impl, dtype)
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

    def _choice(self):
        return "reference" if self.backward_formula == "paper" else self.impl

    @property
    def op(self):
        """The registered operation: "batch_norm", or "batch_norm_paper" (its one implementation,
        the reference with the paper's chain rule) with ``backward="paper"``."""
        return "batch_norm_paper" if getattr(self, "backward_formula", "closed") == "paper" else "batch_norm"

    def forward(self, x):
        """x: (N, C, *) -> y of the same shape (see the module docstring for the modes)."""
        x = self._check(x)
        batch_statistics = (self.training and not self.frozen) or not self.track_running_stats
        if x.size == 0:
            return self._empty_batch(x, count=batch_statistics and self.track_running_stats)
        gamma, beta = self._affine()
        if batch_statistics:
            y, cache = self._train_forward(x, gamma, beta, self.eps)
            self._after_batch_statistics(cache)
        else:
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
        bad = self._unusable_channels(var, var if self.eps == 0 else None,
                                      "running statistics were not updated" if update else "outputs are NaN", fits)
        if update:
            factor = self._momentum_factor()
            self._keep_channels((self.running_mean, self.running_var), bad, lambda: F.update_running_stats(
                self.running_mean, self.running_var, cache["mu_B"], cache["var_B"], cache["m"], factor))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}, backward={self.backward_formula!r}, "
                f"impl={self.impl!r}")


class BatchNorm1d(BatchNorm):
    """BN over (N, C) (statistics over N) or (N, C, L) (statistics over N and L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(BatchNorm):
    """BN for conv nets (Sec. 3.2): x (N, C, H, W), statistics per channel over N * H * W."""

    _ndims = (4,)
    _layout = "(N, {C}, H, W)"
