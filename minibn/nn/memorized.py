"""MemorizedBatchNorm1d / MemorizedBatchNorm2d (Guo et al. 2018) and the lambda schedule."""

from __future__ import annotations

from .. import backend, optim
from .. import functional as F
from .._checks import check_positive_int, check_range
from .module import Module
from .norm import Input1d, Input2d, Normalization, _largest, parameters_of

__all__ = ["MemorizedBatchNorm", "MemorizedBatchNorm1d", "MemorizedBatchNorm2d", "lambda_scheduler"]


class MemorizedBatchNorm(Normalization):
    """Memorized BN (Guo et al. 2018, Eq. 5-8): statistics pooled over this batch and the k most recent ones.

    See :mod:`minibn.functional.memorized` for the equations. The memory is kept as
    fixed-size buffers, oldest first: ``memory_mean`` and ``memory_var`` (k, C),
    ``memory_count`` (k,) and ``memory_len`` (entries filled, at the end). Inference: Eq. 6
    over the memory alone with weights eta^(k_t - i). The layers to build are
    :class:`MemorizedBatchNorm1d` and :class:`MemorizedBatchNorm2d`.

    Parameters
    ----------
    num_features : int
        C, the channels (a positive integer).
    memory_size : int, optional
        k, the number of past batches remembered (0: plain BN); 10, the smallest of the
        paper's Table 6 (10, 20, 40 performed alike).
    eta : float, optional
        The decay of older entries, ``alpha_i = lam * eta^(k_t - i)`` (Eq. 8), in (0, 1].
    lam : float, optional
        lambda in [0, 1], the weight of the newest entry (0: plain BN). A schedule may
        change it (:func:`lambda_scheduler`).
    double_forward : bool, optional
        If False, each training forward pushes the current batch's statistics into the
        memory after normalizing. If True it does not; the statistics are recorded by a
        second, gradient-free forward after the optimizer step (Algorithm 1, lines 10-12),
        which ``minibn.train.fit(..., double_forward=True)`` or
        :func:`minibn.train.second_forward` runs.
    eps : float, optional
        Added to the pooled variance inside the square root (>= 0).
    affine : bool, optional
        Whether the layer has gamma and beta.
    impl : {"auto", "reference", "fused"}, optional
        The implementation of "memorized_batch_norm": ``"reference"``
        (:mod:`minibn.functional.memorized`, the equations as written), ``"fused"`` (BN's two
        compiled loops per direction, :mod:`minibn.kernels.fused_bn`; NumPy only, needs
        numba) or ``"auto"`` (fused when it can run, else the reference).
    dtype : str or dtype, optional
        The parameters' dtype (the memory is float64).

    Raises
    ------
    ValueError
        If num_features is not a positive integer, memory_size not an integer >= 0, eta not
        in (0, 1], lam not in [0, 1] (also when set later), eps not a number >= 0, or impl
        not one of its values.
    """

    base_class = True
    op = "memorized_batch_norm"
    _buffers = ("memory_mean", "memory_var", "memory_count", "memory_len")

    def __init__(self, num_features, memory_size=10, eta=0.9, lam=0.1, double_forward=False, eps=1e-5,
                 affine=True, impl="auto", dtype="float32"):
        name = type(self).__name__
        check_positive_int("num_features", num_features, name)
        if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < 0:
            raise ValueError(f"{name}: memory_size must be an integer >= 0, got {memory_size!r}")
        super().__init__(num_features, eps, impl, dtype, gamma=affine, beta=affine)
        xp = backend.xp()
        self.memory_size = memory_size
        self.eta, self.lam, self.double_forward = eta, lam, double_forward
        self.memory_mean = xp.zeros((memory_size, num_features), dtype="float64")
        self.memory_var = xp.zeros((memory_size, num_features), dtype="float64")
        self.memory_count = xp.zeros(memory_size, dtype="float64")
        self.memory_len = 0
        self._recording = False

    @property
    def eta(self):
        """The decay of older memory entries, in (0, 1]; setting another value raises ValueError."""
        return self._eta

    @eta.setter
    def eta(self, value):
        check_range("eta", value, 0.0, 1.0, type(self).__name__, lo_open=True)
        self._eta = float(value)

    @property
    def lam(self):
        """The weight of the newest memory entry, in [0, 1]; setting another value raises ValueError."""
        return self._lam

    @lam.setter
    def lam(self, value):
        check_range("lam", value, 0.0, 1.0, type(self).__name__)
        self._lam = float(value)

    def memory(self):
        """The filled memory entries, oldest first.

        Returns
        -------
        means, vars : ndarray, shape (k, C), float64
            Views of the buffers, k = ``memory_len``.
        counts : ndarray, shape (k,), float64
        """
        k = self.memory_len
        s = slice(self.memory_size - k, self.memory_size)
        return self.memory_mean[s], self.memory_var[s], self.memory_count[s]

    def push(self, mu_B, var_B, n):
        """Append one batch's statistics, dropping the oldest beyond ``memory_size`` (nothing when it is 0).

        Parameters
        ----------
        mu_B, var_B : ndarray, shape (C,)
            The batch's mean and biased variance.
        n : int
            Its values per channel.
        """
        if self.memory_size == 0:
            return
        xp = backend.get_array_module(self.memory_mean)
        for buf, value in ((self.memory_mean, mu_B), (self.memory_var, var_B)):
            buf[:-1] = buf[1:].copy()
            buf[-1] = xp.asarray(value, dtype=buf.dtype).reshape(-1)
        self.memory_count[:-1] = self.memory_count[1:].copy()
        self.memory_count[-1] = n
        self.memory_len = min(self.memory_len + 1, self.memory_size)

    def clear_memory(self):
        """Forget every memorized batch (``memory_len = 0``)."""
        self.memory_len = 0

    def _operation_args(self, x):
        """Those of :func:`minibn.functional.memorized_batch_norm_forward`: the memory and its
        weights alpha_i (Eq. 8), eps."""
        alphas = F.memory_weights(self.memory_len, self.lam, self.eta, backend.get_array_module(x))
        return (*self._gamma_beta(), *self.memory(), alphas, self.eps)

    def _cache_statistics(self, x):
        """The batch's own mu_B, var_B (C,), for the memory; the pooled mu_hat, var_hat (C,)."""
        return {key: (self.num_features,) for key in ("mu_B", "var_B", "mu_hat", "var_hat")}

    def forward(self, x):
        """Normalize x: in training with the pooled statistics (Eq. 6-7), in eval with Eq. 6 over the memory.

        In training, the batch's statistics are pushed into the memory unless
        ``double_forward`` (then only the second, recording forward pushes them) or a channel's
        statistics are unusable (NaN or inf: a :class:`NumericalWarning`, the memory left as
        it was). An empty batch gives an empty output and memorizes nothing.

        Parameters
        ----------
        x : ndarray, shape (N, C, ...)
            A plain floating-point array: (N, C) or (N, C, L) for the 1d layer, (N, C, H, W)
            for the 2d one.

        Returns
        -------
        ndarray
            x's shape and dtype.

        Raises
        ------
        TypeError
            If x is not a plain floating-point array (naming the fix).
        ValueError
            If x's shape is not one the layer takes, or, in training, the batch has one value
            per channel and the memory is empty.
        RuntimeError
            In eval mode, if the memory is empty (train first).
        ImportError, NotImplementedError
            If the implementation ``impl`` names cannot run on x: its reason, with the layer's
            name in front.
        """
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x)  # nothing to memorize
        if self.training:
            y, cache = self._train_forward(x)
            bad = self._unusable_channels(cache["var_B"], cache["var_hat"] + self.eps,
                                          "statistics were not memorized (the memory is left as it was)",
                                          fits=(_largest(self.memory_var.dtype), "variance", "memory_var"))
            if bad is None and (self._recording or not self.double_forward):
                self.push(cache["mu_B"], cache["var_B"], cache["m"])
            return y
        if self.memory_len == 0:
            if self.double_forward:  # its training forward records nothing: trained without the second pass
                raise RuntimeError(f"{self.name}: the memory is empty: built with double_forward=True, the layer "
                                   f"records only in the second forward after each update; train with "
                                   f"minibn.train.fit(..., double_forward=True), or call "
                                   f"minibn.train.second_forward(model, x) after each optimizer step")
            raise RuntimeError(f"{self.name}: the memory is empty; train (or run a training-mode "
                               f"forward) before using eval mode")
        xp = backend.get_array_module(x)
        mu, var = F.pooled_statistics(*self.memory(), F.memory_weights(self.memory_len, 1.0, self.eta, xp))
        y, cache = F.batch_norm_inference_forward(x, *self._gamma_beta(), mu, var, self.eps)
        self._remember(F.batch_norm_inference_backward, cache, y, x)
        return y

    def extra_repr(self):
        return (f"{self.num_features}, memory_size={self.memory_size}, eta={self.eta}, lam={self.lam}, "
                f"double_forward={self.double_forward}, eps={self.eps}, affine={self.affine}, impl={self.impl!r}")


@parameters_of(MemorizedBatchNorm)
class MemorizedBatchNorm1d(Input1d, MemorizedBatchNorm):
    """Memorized BN over (N, C) or (N, C, L).

    The arguments are :class:`MemorizedBatchNorm`'s:
    """


@parameters_of(MemorizedBatchNorm)
class MemorizedBatchNorm2d(Input2d, MemorizedBatchNorm):
    """Memorized BN over (N, C, H, W), per channel.

    The arguments are :class:`MemorizedBatchNorm`'s:
    """


def mbn_layers(model: Module):
    return [m for m in model.modules() if isinstance(m, MemorizedBatchNorm)]


def lambda_scheduler(layers, total_steps, values=(0.1, 0.5, 0.9), at=(0.4, 0.6)):
    """The paper's lambda schedule: 0.1, then 0.5 at 40% and 0.9 at 60% of training.

    Parameters
    ----------
    layers : list of MemorizedBatchNorm
        The layers whose ``lam`` it sets.
    total_steps : int
        The length of training, in steps.
    values : tuple of float, optional
        lambda in each phase.
    at : tuple of float, optional
        The fractions of training where a phase ends.

    Returns
    -------
    minibn.optim.Scheduler
        Call its ``step()`` once per training step.

    Raises
    ------
    ValueError
        If layers is empty, total_steps is not a number >= 1, or values and at do not make
        a schedule (len(values) == len(at) + 1, at increasing in (0, 1)); and, at a step,
        if a value is not in [0, 1].
    """
    return optim.Scheduler(layers, "lam", optim.Piecewise(values, at), total_steps)
