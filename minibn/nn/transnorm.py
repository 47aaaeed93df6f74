"""TransNorm1d / TransNorm2d (Wang et al. 2019) and GradientReversal (Ganin & Lempitsky 2015)."""

from __future__ import annotations

from .. import backend
from .. import functional as F
from .batchnorm import _BatchNorm
from .module import Module


class _TransNorm(_BatchNorm):
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
    "alpha = 1" ablation, y = 2 z).
    """

    _buffers = ("running_mean_source", "running_var_source", "running_mean_target", "running_var_target",
                "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype="float32"):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine, dtype=dtype)
        xp = backend.xp()
        del self.running_mean, self.running_var
        self.running_mean_source = xp.zeros(num_features, dtype=dtype)
        self.running_var_source = xp.ones(num_features, dtype=dtype)
        self.running_mean_target = xp.zeros(num_features, dtype=dtype)
        self.running_var_target = xp.ones(num_features, dtype=dtype)
        self.last_alpha = None
        self.fixed_alpha = None

    def _fixed(self, xp):
        if self.fixed_alpha is None:
            return None
        return xp.zeros(self.num_features, dtype="float64") + xp.asarray(self.fixed_alpha, dtype="float64")

    def forward(self, x):
        self._check(x)
        gamma, beta = self._affine()
        axis = self._axis(x)
        if self.training:
            n_s = F.transnorm_split_point(x.shape[0])
            per_row = 1
            for a in axis[1:]:
                per_row *= x.shape[a]
            if n_s * per_row < 2 or (x.shape[0] - n_s) * per_row < 2:
                raise ValueError(f"{type(self).__name__}: training needs a batch [source; target] with at least 2 "
                                 f"values per channel in each half, got input of shape {tuple(x.shape)} "
                                 f"({n_s} source and {x.shape[0] - n_s} target rows)")
            fixed = self._fixed(backend.get_array_module(x))
            y, cache = F.transnorm_forward(x, gamma, beta, self.eps, axis, alpha=fixed)
            self.num_batches_tracked += 1
            f = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
            for dom in ("source", "target"):
                c = cache[dom]
                F.update_running_stats(getattr(self, f"running_mean_{dom}"), getattr(self, f"running_var_{dom}"),
                                       c["mu_B"], c["var_B"], c["m"], f)
            self._cache = ("batch", cache)
        else:
            alpha = self._fixed(backend.get_array_module(x))
            if alpha is None:
                alpha = F.transnorm_alpha(self.running_mean_source, self.running_var_source,
                                          self.running_mean_target, self.running_var_target, self.eps)
            z, cache = F.batch_norm_inference_forward(x, gamma, beta, self.running_mean_target,
                                                      self.running_var_target, self.eps, axis)
            cache["alpha_scale"] = (1.0 + alpha).reshape(cache["inv_std"].shape)
            y = z * cache["alpha_scale"]
            self._cache = ("running", cache)
            cache["alpha"] = alpha
        self.last_alpha = cache["alpha"]
        return y

    def backward(self, dy):
        kind, cache = self._cache
        if kind == "batch":
            dx, dgamma, dbeta = F.transnorm_backward(dy, cache)
        else:
            dx, dgamma, dbeta = F.batch_norm_inference_backward(dy * cache["alpha_scale"], cache)
        return self._accumulate(dx, dgamma, dbeta)


class TransNorm1d(_TransNorm):
    """TransNorm over (N, C) or (N, C, L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class TransNorm2d(_TransNorm):
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
        return dy * -self.scale

    def extra_repr(self):
        return f"scale={self.scale}"
