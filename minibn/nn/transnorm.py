"""TransNorm1d / TransNorm2d (Wang et al. 2019) and GradientReversal (Ganin & Lempitsky 2015)."""

from __future__ import annotations

import numbers

from .. import backend
from .. import functional as F
from .._checks import check_positive_int
from .module import Module
from .norm import Normalization, RunningStatistics, _largest


class TransNorm(RunningStatistics, Normalization):
    """Transferable Normalization: domain-specific statistics, shared gamma and beta, and a
    per-channel weight alpha that favours channels whose statistics transfer well.

    In training the input must be [source; target] (first N // 2 rows source; an odd
    batch gives the target half the extra row), each half with at least 2 values per
    channel. Each half updates its own running statistics (``running_mean_source``,
    ``running_var_source``, ``running_mean_target``, ``running_var_target``; unbiased
    variances, PyTorch momentum). In eval the input is target data: it is normalized
    with the target running statistics and alpha comes from both domains' running
    statistics. See :mod:`minibn.functional.transnorm` for the formulas and where the
    paper and the official code differ. ``last_alpha`` keeps the last alpha (C,).

    ``fixed_alpha``: None (default: alpha from the statistics), or a (C,) array or a
    number used as alpha in training and eval (``fixed_alpha=1.0``: the poster's
    "alpha = 1" ablation, y = 2 z). One implementation: the reference.
    """

    op = "transnorm"
    _buffers = ("running_mean_source", "running_var_source", "running_mean_target", "running_var_target",
                "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        super().__init__(num_features, eps, affine, "reference", dtype)
        self.momentum = momentum
        xp = backend.xp()
        self.running_mean_source = xp.zeros(num_features, dtype=dtype)
        self.running_var_source = xp.ones(num_features, dtype=dtype)
        self.running_mean_target = xp.zeros(num_features, dtype=dtype)
        self.running_var_target = xp.ones(num_features, dtype=dtype)
        self.num_batches_tracked = 0
        self.last_alpha = None
        self.fixed_alpha = None

    def _fixed(self, xp):
        """``fixed_alpha`` as a float64 (C,) array on the device of ``xp``, or None. A number is
        made there directly; an array on another device is moved once, and kept where it now
        is, so that a training step on the GPU copies nothing from the host."""
        fixed = self.fixed_alpha
        if fixed is None:
            return None
        if isinstance(fixed, numbers.Real):
            return xp.full(self.num_features, float(fixed), dtype="float64")
        if backend.get_array_module(fixed) is not xp:
            self.fixed_alpha = fixed = xp.asarray(backend.asnumpy(fixed), dtype="float64")
        return xp.zeros(self.num_features, dtype="float64") + fixed

    def forward(self, x):
        x = self._check(x)
        if x.size == 0:
            self.last_alpha = None
            return self._empty_batch(x, count=self.training)
        gamma, beta = self._affine()
        alpha = self._fixed(backend.get_array_module(x))
        if self.training:
            y, cache = self._train_forward(x, gamma, beta, self.eps, None, alpha)
            f = self._momentum_factor()
            for dom in ("source", "target"):
                c = cache[dom]
                buffers = (getattr(self, f"running_mean_{dom}"), getattr(self, f"running_var_{dom}"))
                fits = (_largest(buffers[1].dtype) * ((c["m"] - 1) / c["m"]), "variance", f"running_var_{dom}")
                bad = self._unusable_channels(c["var_B"], c["var_B"] + self.eps,
                                              f"{dom} running statistics were not updated", fits)
                self._keep_channels(buffers, bad, lambda c=c, b=buffers: F.update_running_stats(
                    *b, c["mu_B"], c["var_B"], c["m"], f))
        else:
            if alpha is None:
                alpha = F.transnorm_alpha(self.running_mean_source, self.running_var_source,
                                          self.running_mean_target, self.running_var_target, self.eps)
            y, cache = F.transnorm_inference_forward(x, gamma, beta, self.running_mean_target,
                                                     self.running_var_target, alpha, self.eps)
            self._remember(F.transnorm_inference_backward, cache, y, x)
        self.last_alpha = cache["alpha"]
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class TransNorm1d(TransNorm):
    """TransNorm over (N, C) or (N, C, L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class TransNorm2d(TransNorm):
    """TransNorm over (N, C, H, W), per channel."""

    _ndims = (4,)
    _layout = "(N, {C}, H, W)"


class GradientReversal(Module):
    """Identity forward; backward multiplies the gradient by -scale (Ganin & Lempitsky 2015).

    Placed before a domain classifier, it makes the features below *maximize* the
    domain loss while the classifier minimizes it (DANN). Any shape.
    """

    def __init__(self, scale=1.0):
        super().__init__()
        if not scale >= 0:
            raise ValueError(f"GradientReversal: scale must be >= 0, got {scale!r}")
        self.scale = scale

    @property
    def gradcheck_factor(self):
        """The backward returns -scale times the true gradient of the (identity) forward:
        the gradient checker compares against that, not against the gradient itself."""
        return -self.scale

    def forward(self, x):
        return x

    def backward(self, dy):
        dy = self._check_dy(dy)
        return dy * -self.scale

    def extra_repr(self):
        return f"scale={self.scale}"
