"""BatchRenorm1d / BatchRenorm2d (Ioffe 2017) and the paper's r_max / d_max schedule."""

from __future__ import annotations

from .. import backend, optim
from .. import functional as F
from .batchnorm import _BatchNorm


class _BatchRenorm(_BatchNorm):
    """Batch Renormalization: BN corrected by r and d towards the moving statistics.

    Keeps moving averages of the mean and of the standard deviation sqrt(var_B + eps)
    (``running_mean``, ``running_std``), as Ioffe's Algorithm 1 does, updated with
    ``momentum`` (weight of the new value, as in BatchNorm). r and d are computed from
    them *before* the step's update and are constants in the backward. ``r_max``,
    ``d_max`` and ``momentum`` are plain attributes a schedule may change; setting
    r_max < 1 or d_max < 0 raises ValueError. The last step's r and d are kept in
    ``last_r``, ``last_d`` (C,) for inspection.

    ``impl``: ``"reference"`` (:mod:`minibn.functional.renorm`, the formulas as written),
    ``"fused"`` (BN's two compiled loops per direction, :mod:`minibn.functional.batchnorm_fused`;
    NumPy only, needs numba) or ``"auto"`` (fused when it can run, else the reference).
    """

    _IMPLS = ("auto", "fused", "reference")

    _buffers = ("running_mean", "running_std", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.01, r_max=1.0, d_max=0.0, affine=True, impl="auto",
                 dtype="float32"):
        if impl not in self._IMPLS:
            raise ValueError(f"{type(self).__name__}: impl must be one of {self._IMPLS}, got {impl!r}")
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine, impl=impl, dtype=dtype)
        del self.running_var
        self.running_std = backend.xp().ones(num_features, dtype=dtype)
        self.r_max, self.d_max = r_max, d_max
        self.last_r = self.last_d = None

    @property
    def r_max(self):
        return self._r_max

    @r_max.setter
    def r_max(self, value):
        if not value >= 1:
            raise ValueError(f"{type(self).__name__}: r_max must be >= 1, got {value!r}")
        self._r_max = float(value)

    @property
    def d_max(self):
        return self._d_max

    @d_max.setter
    def d_max(self, value):
        if not value >= 0:
            raise ValueError(f"{type(self).__name__}: d_max must be >= 0, got {value!r}")
        self._d_max = float(value)

    def forward(self, x):
        self._check(x)
        gamma, beta = self._affine()
        axis = self._axis(x)
        if self.training:
            fused = F.use_fused(self.impl, x)
            forward = F.batch_renorm_forward_fused if fused else F.batch_renorm_forward
            y, cache = forward(x, gamma, beta, self.running_mean, self.running_std, self.r_max, self.d_max,
                               self.eps, axis)
            cache["fused"] = fused
            self.num_batches_tracked += 1
            f = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
            self.running_mean *= 1 - f
            self.running_mean += f * cache["mu_B"].reshape(-1).astype(self.running_mean.dtype)
            self.running_std *= 1 - f
            self.running_std += f * cache["sigma_B"].reshape(-1).astype(self.running_std.dtype)
            self.last_r, self.last_d = cache["r"].reshape(-1), cache["d"].reshape(-1)
            self._cache = ("batch", cache)
        else:
            y, cache = F.batch_renorm_inference_forward(x, gamma, beta, self.running_mean, self.running_std, axis)
            self._cache = ("running", cache)
        return y

    def backward(self, dy):
        kind, cache = self._cache
        if kind == "running":
            fn = F.batch_renorm_inference_backward
        else:
            fn = F.batch_renorm_backward_fused if cache["fused"] else F.batch_renorm_backward
        dx, dgamma, dbeta = fn(dy, cache)
        return self._accumulate(dx, dgamma, dbeta)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, r_max={self.r_max}, "
                f"d_max={self.d_max}, impl={self.impl!r}")


class BatchRenorm1d(_BatchRenorm):
    """Batch Renormalization over (N, C) or (N, C, L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class BatchRenorm2d(_BatchRenorm):
    """Batch Renormalization over (N, C, H, W), per channel."""

    _ndims = (4,)
    _layout = "(N, {C}, H, W)"


class Ramp:
    """0 -> 1 schedule helper: ``start`` until fraction ``begin``, linear to ``end`` at fraction ``full``."""

    def __init__(self, start, end, begin, full):
        if not 0 <= begin < full <= 1:
            raise ValueError(f"Ramp: need 0 <= begin < full <= 1, got {begin}, {full}")
        self.start, self.end, self.begin, self.full = start, end, begin, full

    def __call__(self, step, total_steps):
        t = step / total_steps
        a = min(max((t - self.begin) / (self.full - self.begin), 0.0), 1.0)
        return self.start + a * (self.end - self.start)


def renorm_schedulers(layers, total_steps, bn_fraction=0.04, r_full_at=0.35, d_full_at=0.23, r_max=3.0, d_max=5.0):
    """Ioffe's schedule as fractions of the run: plain BN (r_max = 1, d_max = 0) for the
    first ``bn_fraction``, then r_max relaxed linearly to 3 by ``r_full_at`` and d_max to 5
    by ``d_full_at``. (Ioffe 2017: 5k steps of BN, r_max = 3 at 40k, d_max = 5 at 25k of
    ~130k.) Returns two :class:`minibn.optim.Scheduler` to ``.step()`` once per step."""
    return [optim.Scheduler(layers, "r_max", Ramp(1.0, r_max, bn_fraction, r_full_at), total_steps),
            optim.Scheduler(layers, "d_max", Ramp(0.0, d_max, bn_fraction, d_full_at), total_steps)]
