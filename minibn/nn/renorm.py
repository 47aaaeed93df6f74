"""BatchRenorm1d / BatchRenorm2d (Ioffe 2017) and the paper's r_max / d_max schedule."""

from __future__ import annotations

from .. import backend, optim
from .. import functional as F
from .._checks import check_positive_int
from .norm import Normalization, RunningStatistics, _largest


class BatchRenorm(RunningStatistics, Normalization):
    """Batch Renormalization: BN corrected by r and d towards the moving statistics.

    Keeps moving averages of the mean and of the standard deviation sqrt(var_B + eps)
    (``running_mean``, ``running_std``), as Ioffe's Algorithm 1 does, updated with
    ``momentum`` (weight of the new value, as in BatchNorm). r and d are computed from
    them *before* the step's update and are constants in the backward. ``r_max``,
    ``d_max`` and ``momentum`` are plain attributes a schedule may change; setting
    r_max < 1 or d_max < 0 raises ValueError. The last step's r and d are kept in
    ``last_r``, ``last_d`` (C,) for inspection.

    ``impl`` (the implementations of "batch_renorm"): ``"reference"``
    (:mod:`minibn.functional.renorm`, the formulas as written), ``"fused"`` (BN's two
    compiled loops per direction, :mod:`minibn.kernels.fused_bn`; NumPy only, needs
    numba) or ``"auto"`` (fused when it can run, else the reference).
    """

    op = "batch_renorm"
    _buffers = ("running_mean", "running_std", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.01, r_max=1.0, d_max=0.0, affine=True, impl="auto",
                 dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        super().__init__(num_features, eps, affine, impl, dtype)
        self.momentum = momentum
        xp = backend.xp()
        self.running_mean = xp.zeros(num_features, dtype=dtype)
        self.running_std = xp.ones(num_features, dtype=dtype)
        self.num_batches_tracked = 0
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
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x, count=self.training)
        gamma, beta = self._affine()
        if self.training:
            y, cache = self._train_forward(x, gamma, beta, self.running_mean, self.running_std, self.r_max,
                                           self.d_max, self.eps)
            f = self._momentum_factor()
            bad = self._unusable_channels(cache["sigma_B"], cache["sigma_B"],
                                          fits=(_largest(self.running_std.dtype), "standard deviation", "running_std"))

            def update():
                self.running_mean *= 1 - f
                self.running_mean += (f * cache["mu_B"]).astype(self.running_mean.dtype)
                self.running_std *= 1 - f
                self.running_std += (f * cache["sigma_B"]).astype(self.running_std.dtype)
            self._keep_channels((self.running_mean, self.running_std), bad, update)
            self.last_r, self.last_d = cache["r"], cache["d"]
        else:
            y, cache = F.batch_renorm_inference_forward(x, gamma, beta, self.running_mean, self.running_std)
            self._remember(F.batch_renorm_inference_backward, cache, y, x)
        return y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, r_max={self.r_max}, "
                f"d_max={self.d_max}, affine={self.affine}, impl={self.impl!r}")


class BatchRenorm1d(BatchRenorm):
    """Batch Renormalization over (N, C) or (N, C, L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class BatchRenorm2d(BatchRenorm):
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
