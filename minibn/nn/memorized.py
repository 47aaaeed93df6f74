"""MemorizedBatchNorm1d / MemorizedBatchNorm2d (Guo et al. 2018) and the lambda schedule."""

from __future__ import annotations

from .. import backend, optim
from .. import functional as F
from .._checks import check_positive_int, check_range
from .module import Module
from .norm import Normalization, _largest


class MemorizedBatchNorm(Normalization):
    """Memorized BN: normalize with statistics pooled over the current batch and the k
    most recent batches (Eq. 5-8; see :mod:`minibn.functional.memorized`).

    Args:
        memory_size: k, the number of past batches remembered (0: plain BN); 10, the
            smallest of the paper's Table 6 (10, 20, 40 performed alike).
        eta: the decay of older entries, alpha_i = lam * eta^(k_t - i) (Eq. 8), in (0, 1].
        lam: lambda in [0, 1], the weight of the newest entry (0: plain BN). A schedule
            may change it (:func:`lambda_scheduler`); bad values raise ValueError.
        double_forward: if False, each training forward pushes the current batch's
            statistics into the memory after normalizing. If True it does not; the
            statistics are recorded by a second, gradient-free forward after the
            optimizer step (Algorithm 1, lines 10-12), which ``minibn.train.fit(...,
            double_forward=True)`` or :func:`minibn.train.second_forward` runs.

    The memory is kept as fixed-size buffers, oldest first: ``memory_mean`` and
    ``memory_var`` (k, C), ``memory_count`` (k,) and ``memory_len`` (entries filled, at
    the end). Inference: Eq. 6 over the memory alone with weights eta^(k_t - i).

    ``impl`` (the implementations of "memorized_batch_norm"): ``"reference"``
    (:mod:`minibn.functional.memorized`, the equations as written), ``"fused"`` (BN's two
    compiled loops per direction, :mod:`minibn.kernels.fused_bn`; NumPy only, needs
    numba) or ``"auto"`` (fused when it can run, else the reference).
    """

    op = "memorized_batch_norm"
    _buffers = ("memory_mean", "memory_var", "memory_count", "memory_len")

    def __init__(self, num_features, memory_size=10, eta=0.9, lam=0.1, double_forward=False, eps=1e-5,
                 affine=True, impl="auto", dtype="float32"):
        name = type(self).__name__
        check_positive_int("num_features", num_features, name)
        if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < 0:
            raise ValueError(f"{name}: memory_size must be an integer >= 0, got {memory_size!r}")
        super().__init__(num_features, eps, affine, impl, dtype)
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
        return self._eta

    @eta.setter
    def eta(self, value):
        check_range("eta", value, 0.0, 1.0, type(self).__name__, lo_open=True)
        self._eta = float(value)

    @property
    def lam(self):
        return self._lam

    @lam.setter
    def lam(self, value):
        check_range("lam", value, 0.0, 1.0, type(self).__name__)
        self._lam = float(value)

    def memory(self):
        """(means (k, C), vars (k, C), counts (k,)) of the k filled entries, oldest first."""
        k = self.memory_len
        s = slice(self.memory_size - k, self.memory_size)
        return self.memory_mean[s], self.memory_var[s], self.memory_count[s]

    def push(self, mu_B, var_B, n):
        """Append one batch's statistics (C,), dropping the oldest beyond memory_size."""
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
        self.memory_len = 0

    def forward(self, x):
        x = self._check(x)
        if x.size == 0:
            return self._empty_batch(x)  # nothing to memorize
        gamma, beta = self._affine()
        xp = backend.get_array_module(x)
        means, variances, counts = self.memory()
        if self.training:
            alphas = F.memory_weights(self.memory_len, self.lam, self.eta, xp)
            y, cache = self._train_forward(x, gamma, beta, means, variances, counts, alphas, self.eps)
            bad = self._unusable_channels(cache["var_B"], cache["var_hat"] + self.eps,
                                          "statistics were not memorized (the memory is left as it was)",
                                          fits=(_largest(self.memory_var.dtype), "variance", "memory_var"))
            if bad is None and (self._recording or not self.double_forward):
                self.push(cache["mu_B"], cache["var_B"], cache["m"])
            return y
        if self.memory_len == 0:
            raise RuntimeError(f"{self.name}: the memory is empty; train (or run a training-mode "
                               f"forward) before using eval mode")
        mu, var = F.pooled_statistics(means, variances, counts, F.memory_weights(self.memory_len, 1.0, self.eta, xp))
        y, cache = F.batch_norm_inference_forward(x, gamma, beta, mu, var, self.eps)
        self._remember(F.batch_norm_inference_backward, cache, y, x)
        return y

    def extra_repr(self):
        return (f"{self.num_features}, memory_size={self.memory_size}, eta={self.eta}, lam={self.lam}, "
                f"double_forward={self.double_forward}, eps={self.eps}, affine={self.affine}, impl={self.impl!r}")


class MemorizedBatchNorm1d(MemorizedBatchNorm):
    """Memorized BN over (N, C) or (N, C, L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class MemorizedBatchNorm2d(MemorizedBatchNorm):
    """Memorized BN over (N, C, H, W), per channel."""

    _ndims = (4,)
    _layout = "(N, {C}, H, W)"


def mbn_layers(model: Module):
    return [m for m in model.modules() if isinstance(m, MemorizedBatchNorm)]


def lambda_scheduler(layers, total_steps, values=(0.1, 0.5, 0.9), at=(0.4, 0.6)):
    """The paper's lambda schedule: 0.1, then 0.5 at 40% and 0.9 at 60% of training."""
    return optim.Scheduler(layers, "lam", optim.Piecewise(values, at), total_steps)
