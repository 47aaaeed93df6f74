"""TransNorm1d / TransNorm2d (Wang et al. 2019) and GradientReversal (Ganin & Lempitsky 2015)."""

from __future__ import annotations

import numbers

from .. import backend
from .. import functional as F
from .._checks import check_positive_int
from .module import Module
from .norm import Input1d, Input2d, Normalization, RunningStatistics, _largest, parameters_of

__all__ = ["TransNorm", "TransNorm1d", "TransNorm2d", "GradientReversal"]


class TransNorm(RunningStatistics, Normalization):
    """Transferable Normalization (Wang et al. 2019, Eq. 3-7): per-domain statistics, shared gamma and beta.

    The per-channel weight alpha favours channels whose statistics transfer well. In
    training the input must be [source; target] (first N // 2 rows source; an odd batch
    gives the target half the extra row), each half with at least 2 values per channel.
    Each half updates its own running statistics (``running_mean_source``,
    ``running_var_source``, ``running_mean_target``, ``running_var_target``; unbiased
    variances, PyTorch momentum). In eval the input is target data: it is normalized with
    the target running statistics and alpha comes from both domains' running statistics.
    See :mod:`minibn.functional.transnorm` for the formulas and where the paper and the
    official code differ. ``last_alpha`` keeps the last alpha (C,).

    ``fixed_alpha`` (an attribute, None at construction): None (alpha from the
    statistics), or a (C,) array or a number used as alpha in training and eval
    (``fixed_alpha=1.0``: the poster's "alpha = 1" ablation, y = 2 z). One implementation:
    the reference. The layers to build are :class:`TransNorm1d` and :class:`TransNorm2d`.

    Parameters
    ----------
    num_features : int
        C, the channels (a positive integer).
    eps : float, optional
        Added to the variances inside the square roots (>= 0).
    momentum : float or None, optional
        The weight of the new batch statistic in the running averages, in [0, 1]; None for
        a cumulative average.
    affine : bool, optional
        Whether the layer has gamma and beta.
    dtype : str or dtype, optional
        The dtype of the parameters and the running statistics.

    Raises
    ------
    ValueError
        If num_features is not a positive integer, eps is not a number >= 0, or momentum is
        neither None nor in [0, 1].
    """

    base_class = True
    op = "transnorm"
    _buffers = ("running_mean_source", "running_var_source", "running_mean_target", "running_var_target",
                "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype="float32"):
        check_positive_int("num_features", num_features, type(self).__name__)
        super().__init__(num_features, eps, "reference", dtype, gamma=affine, beta=affine)
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

    def _operation_args(self, x):
        """Those of :func:`minibn.functional.transnorm_forward`: eps, axis (None: BN's reduced axes)
        and ``fixed_alpha`` on x's device (None: alpha from the statistics)."""
        return (*self._gamma_beta(), self.eps, None, self._fixed(backend.get_array_module(x)))

    def _cache_statistics(self, x):
        """alpha (C,), kept as ``last_alpha`` (each domain's statistics are in its own BN cache)."""
        return {"alpha": (self.num_features,)}

    def forward(self, x):
        """Training: TransNorm on x = [source; target], updating each domain's running statistics. Eval: target data.

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
            If x's shape is not one the layer takes, or, in training, a half has fewer than 2
            values per channel.
        """
        x = self._check(x)
        if x.size == 0:
            self.last_alpha = None
            return self._empty_batch(x, count=self.training)
        if self.training:
            y, cache = self._train_forward(x)
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
            alpha = self._fixed(backend.get_array_module(x))
            if alpha is None:
                alpha = F.transnorm_alpha(self.running_mean_source, self.running_var_source,
                                          self.running_mean_target, self.running_var_target, self.eps)
            y, cache = F.transnorm_inference_forward(x, *self._gamma_beta(), self.running_mean_target,
                                                     self.running_var_target, alpha, self.eps)
            self._remember(F.transnorm_inference_backward, cache, y, x)
        self.last_alpha = cache["alpha"]
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


@parameters_of(TransNorm)
class TransNorm1d(Input1d, TransNorm):
    """TransNorm over (N, C) or (N, C, L).

    The arguments are :class:`TransNorm`'s:
    """


@parameters_of(TransNorm)
class TransNorm2d(Input2d, TransNorm):
    """TransNorm over (N, C, H, W), per channel.

    The arguments are :class:`TransNorm`'s:
    """


class GradientReversal(Module):
    """Identity forward; the backward multiplies the gradient by -scale (Ganin & Lempitsky 2015).

    Placed before a domain classifier, it makes the features below *maximize* the
    domain loss while the classifier minimizes it (DANN). Any shape.

    Parameters
    ----------
    scale : float, optional
        The factor, >= 0.

    Raises
    ------
    ValueError
        If scale is not >= 0.
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
        """x itself (any shape).

        Parameters
        ----------
        x : ndarray
            Any array.

        Returns
        -------
        ndarray
            x.
        """
        return x

    def backward(self, dy):
        """``-scale * dy``.

        Parameters
        ----------
        dy : ndarray
            The gradient of the last output, its shape.

        Returns
        -------
        ndarray
            dx.

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        return dy * -self.scale

    def extra_repr(self):
        return f"scale={self.scale}"
