"""BatchRenorm1d / BatchRenorm2d (Ioffe 2017) and the paper's r_max / d_max schedule."""

from __future__ import annotations

from .. import backend, optim
from .. import functional as F
from .._checks import check_positive_int
from .norm import Input1d, Input2d, Normalization, RunningStatistics, _largest, parameters_of

__all__ = ["BatchRenorm", "BatchRenorm1d", "BatchRenorm2d", "renorm_schedulers"]


class BatchRenorm(RunningStatistics, Normalization):
    """Batch Renormalization (Ioffe 2017): BN corrected by r and d towards the moving statistics.

    Keeps moving averages of the mean and of the standard deviation ``sqrt(var_B + eps)``
    (``running_mean``, ``running_std``), as Ioffe's Algorithm 1 does, updated with
    ``momentum`` (the weight of the new value, as in BatchNorm). r and d are computed from
    them *before* the step's update and are constants in the backward
    (:func:`minibn.functional.batch_renorm_forward`). ``r_max``, ``d_max`` and ``momentum``
    are plain attributes a schedule may change (:func:`renorm_schedulers`). The last step's
    r and d are kept in ``last_r``, ``last_d`` (C,) for inspection. Eval mode:
    ``y = gamma (x - running_mean) / running_std + beta``. The layers to build are
    :class:`BatchRenorm1d` and :class:`BatchRenorm2d`.

    Parameters
    ----------
    num_features : int
        C, the channels (a positive integer).
    eps : float, optional
        Added to the batch variance inside the square root (>= 0).
    momentum : float or None, optional
        The weight of the new value in the moving averages, in [0, 1]; None for a
        cumulative average.
    r_max : float, optional
        r is clipped to [1/r_max, r_max]; >= 1 (1: r = 1).
    d_max : float, optional
        d is clipped to [-d_max, d_max]; >= 0 (0: d = 0). With r_max = 1 and d_max = 0 the
        layer is BatchNorm.
    affine : bool, optional
        Whether the layer has gamma and beta.
    impl : {"auto", "reference", "fused"}, optional
        The implementation of "batch_renorm": ``"reference"``
        (:mod:`minibn.functional.renorm`, the formulas as written), ``"fused"`` (BN's two
        compiled loops per direction, :mod:`minibn.kernels.fused_bn`; NumPy only, needs
        numba) or ``"auto"`` (fused when it can run, else the reference).
    dtype : str or dtype, optional
        The dtype of the parameters and the moving averages.

    Raises
    ------
    ValueError
        If num_features is not a positive integer, eps is not a number >= 0, momentum is
        neither None nor in [0, 1], r_max < 1 or d_max < 0 (also when set later), or impl
        is not one of its values.
    """

    base_class = True
    op = "batch_renorm"
    _buffers = ("running_mean", "running_std", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.01, r_max=1.0, d_max=0.0, affine=True, impl="auto",
                 dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        super().__init__(num_features, eps, impl, dtype, gamma=affine, beta=affine)
        self.momentum = momentum
        xp = backend.xp()
        self.running_mean = xp.zeros(num_features, dtype=dtype)
        self.running_std = xp.ones(num_features, dtype=dtype)
        self.num_batches_tracked = 0
        self.r_max, self.d_max = r_max, d_max
        self.last_r = self.last_d = None

    @property
    def r_max(self):
        """r is clipped to [1/r_max, r_max]; setting a value < 1 raises ValueError."""
        return self._r_max

    @r_max.setter
    def r_max(self, value):
        if not value >= 1:
            raise ValueError(f"{type(self).__name__}: r_max must be >= 1, got {value!r}")
        self._r_max = float(value)

    @property
    def d_max(self):
        """d is clipped to [-d_max, d_max]; setting a value < 0 raises ValueError."""
        return self._d_max

    @d_max.setter
    def d_max(self, value):
        if not value >= 0:
            raise ValueError(f"{type(self).__name__}: d_max must be >= 0, got {value!r}")
        self._d_max = float(value)

    def _operation_args(self, x):
        """Those of :func:`minibn.functional.batch_renorm_forward`: the moving statistics r and
        d are computed from, their clipping bounds, eps."""
        return (*self._gamma_beta(), self.running_mean, self.running_std, self.r_max, self.d_max, self.eps)

    def _cache_statistics(self, x):
        """mu_B and sigma_B (C,), for the moving averages; r and d (C,), kept as ``last_r``, ``last_d``."""
        return {key: (self.num_features,) for key in ("mu_B", "sigma_B", "r", "d")}

    def forward(self, x):
        """Normalize x: Batch Renormalization in training (and update the moving averages), the moving averages in eval.

        Parameters
        ----------
        x : ndarray, shape (N, C, ...)
            A plain floating-point array: (N, C) or (N, C, L) for the 1d layer, (N, C, H, W)
            for the 2d one. An empty batch gives an empty output.

        Returns
        -------
        ndarray
            x's shape and dtype.

        Raises
        ------
        TypeError
            If x is not a plain floating-point array (naming the fix).
        ValueError
            If x's shape is not one the layer takes, or, in training, a channel has one value.
        ImportError, NotImplementedError
            If the implementation ``impl`` names cannot run on x: its reason, with the layer's
            name in front.
        """
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x, count=self.training)
        if self.training:
            y, cache = self._train_forward(x)
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
            y, cache = F.batch_renorm_inference_forward(x, *self._gamma_beta(), self.running_mean, self.running_std)
            self._remember(F.batch_renorm_inference_backward, cache, y, x)
        return y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, r_max={self.r_max}, "
                f"d_max={self.d_max}, affine={self.affine}, impl={self.impl!r}")


@parameters_of(BatchRenorm)
class BatchRenorm1d(Input1d, BatchRenorm):
    """Batch Renormalization over (N, C) or (N, C, L).

    The arguments are :class:`BatchRenorm`'s:
    """


@parameters_of(BatchRenorm)
class BatchRenorm2d(Input2d, BatchRenorm):
    """Batch Renormalization over (N, C, H, W), per channel.

    The arguments are :class:`BatchRenorm`'s:
    """


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
    """Ioffe's r_max / d_max schedule, as fractions of the run.

    Plain BN (r_max = 1, d_max = 0) for the first ``bn_fraction``, then r_max relaxed
    linearly to ``r_max`` by ``r_full_at`` and d_max to ``d_max`` by ``d_full_at``. (Ioffe
    2017: 5k steps of BN, r_max = 3 at 40k, d_max = 5 at 25k of ~130k.)

    Parameters
    ----------
    layers : list of BatchRenorm
        The layers whose r_max and d_max it sets.
    total_steps : int
        The length of training, in steps.
    bn_fraction : float, optional
        The fraction of the run with plain BN.
    r_full_at, d_full_at : float, optional
        The fractions of the run where r_max and d_max reach their final values.
    r_max, d_max : float, optional
        The final values.

    Returns
    -------
    list of minibn.optim.Scheduler
        Two schedulers (r_max, d_max): call each one's ``step()`` once per training step.

    Raises
    ------
    ValueError
        If layers is empty, total_steps is not a number >= 1, or a ramp does not satisfy
        0 <= bn_fraction < r_full_at (or d_full_at) <= 1.
    """
    return [optim.Scheduler(layers, "r_max", Ramp(1.0, r_max, bn_fraction, r_full_at), total_steps),
            optim.Scheduler(layers, "d_max", Ramp(0.0, d_max, bn_fraction, d_full_at), total_steps)]
