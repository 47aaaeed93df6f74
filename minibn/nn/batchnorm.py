"""BatchNorm1d and BatchNorm2d: Algorithm 1 in training, Algorithm 2's fixed transform in eval.

Arguments follow PyTorch: ``eps=1e-5``; ``momentum=0.1`` is the weight of the *new*
batch statistic in the running average (running = (1 - momentum) * running +
momentum * batch), and ``momentum=None`` keeps a cumulative average over all batches
seen; ``affine=False`` drops gamma and beta; ``track_running_stats=False`` keeps no
running statistics and normalizes with batch statistics in eval mode too. The running
variance is unbiased (m / (m - 1)); normalization uses the biased batch variance.

``backward="closed"`` (default) uses the simplified closed form, ``"paper"`` the
paper's step-by-step chain rule; both give the same gradient.

``impl`` picks how training mode is computed, always the same function:

- ``"reference"``: Algorithm 1 line by line (:mod:`minibn.functional.batchnorm`);
- ``"fast"``: NumPy/CuPy in fewer passes over memory, with reused buffers
  (:mod:`minibn.functional.batchnorm_fast`);
- ``"fused"``: two hand-written loops per direction, compiled by numba, a large input split
  across the CPU cores
  (:mod:`minibn.functional.batchnorm_fused`; NumPy arrays only, needs ``minibn[fast]``);
- ``"auto"`` (default): for float32/float64 NumPy inputs, fused when numba is installed;
  otherwise fast from 65,536 values (where passes over memory dominate) and reference
  below (and for float16, and for CuPy arrays under 65,536 values).

``backward="paper"`` always uses the reference.
"""

from __future__ import annotations

from .. import backend
from .. import functional as F
from .._checks import check_dim, check_float, check_ndim, check_positive_int, check_range
from .module import Module, Parameter

_BACKWARDS = ("closed", "paper")
_IMPLS = ("auto", "fused", "fast", "reference")
FAST_MIN_SIZE = 65536


class _BatchNorm(Module):
    _buffers = ("running_mean", "running_var", "num_batches_tracked")
    _ndims: tuple = ()
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 backward="closed", impl="auto", dtype="float32"):
        super().__init__()
        name = type(self).__name__
        check_positive_int("num_features", num_features, name)
        if not eps >= 0:
            raise ValueError(f"{name}: eps must be >= 0, got {eps!r}")
        if momentum is not None:
            check_range("momentum", momentum, 0.0, 1.0, name)
        if backward not in _BACKWARDS:
            raise ValueError(f"{name}: backward must be one of {_BACKWARDS}, got {backward!r}")
        if impl not in _IMPLS:
            raise ValueError(f"{name}: impl must be one of {_IMPLS}, got {impl!r}")
        self.impl = impl
        self._work = F.Workspace()
        xp = backend.xp()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats, self.backward_formula = affine, track_running_stats, backward
        self.gamma = Parameter(xp.ones(num_features, dtype=dtype)) if affine else None
        self.beta = Parameter(xp.zeros(num_features, dtype=dtype)) if affine else None
        self.running_mean = xp.zeros(num_features, dtype=dtype)
        self.running_var = xp.ones(num_features, dtype=dtype)
        self.num_batches_tracked = 0
        #: batchnorm freezing (``minibn.adapt.freeze``): the inference transform in training
        #: too, with gamma and beta left without gradient
        self.frozen = False

    def _axis(self, x):
        return (0,) + tuple(range(2, x.ndim))

    def _check(self, x):
        name = type(self).__name__
        layout = self._layout.format(C=self.num_features)
        check_float("x", x, name)
        check_ndim("x", x, self._ndims, name, layout)
        check_dim("x", x, 1, self.num_features, name, layout)

    def _path(self, x):
        """Which implementation computes training mode for this x: "reference", "fast" or "fused"."""
        if self.impl == "fused":
            return "fused"  # batch_norm_forward_fused says why, if it cannot run here
        if self.impl == "reference" or self.backward_formula == "paper" or not F.fast_applicable(x):
            return "reference"
        if self.impl == "fast":
            return "fast"
        if F.fused_applicable(x):  # at any size: at (60, 100) too it is twice the reference's speed
            return "fused"
        return "fast" if x.size >= FAST_MIN_SIZE else "reference"

    def _affine(self):
        return (self.gamma.data, self.beta.data) if self.affine else (None, None)

    def forward(self, x):
        """x: (N, C, *) -> y of the same shape (see the class docstring for the modes)."""
        self._check(x)
        gamma, beta = self._affine()
        axis = self._axis(x)
        if (self.training and not self.frozen) or not self.track_running_stats:
            path = self._path(x)
            if path == "fused":
                y, cache = F.batch_norm_forward_fused(x, gamma, beta, self.eps, axis)
            elif path == "fast":
                y, cache = F.batch_norm_forward_fast(x, gamma, beta, self.eps, axis, self._work)
            else:
                y, cache = F.batch_norm_forward(x, gamma, beta, self.eps, axis)
            cache["path"] = path
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                factor = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
                F.update_running_stats(self.running_mean, self.running_var, cache["mu_B"], cache["var_B"],
                                       cache["m"], factor)
            self._cache = ("batch", cache)
        else:
            y, cache = F.batch_norm_inference_forward(x, gamma, beta, self.running_mean, self.running_var,
                                                      self.eps, axis)
            self._cache = ("running", cache)
        return y

    def backward(self, dy):
        """dy: like y. Returns dx; accumulates dgamma, dbeta into gamma.grad, beta.grad."""
        kind, cache = self._cache
        if kind == "running":
            dx, dgamma, dbeta = F.batch_norm_inference_backward(dy, cache)
        elif cache["path"] == "fused":
            dx, dgamma, dbeta = F.batch_norm_backward_fused(dy, cache)
        elif cache["path"] == "fast":
            dx, dgamma, dbeta = F.batch_norm_backward_fast(dy, cache)
        elif self.backward_formula == "paper":
            dx, dgamma, dbeta = F.batch_norm_backward_paper(dy, cache)
        else:
            dx, dgamma, dbeta = F.batch_norm_backward(dy, cache)
        return self._accumulate(dx, dgamma, dbeta)

    def _accumulate(self, dx, dgamma, dbeta):
        """Add dgamma, dbeta to the parameters' gradients (not when frozen); return dx."""
        if self.affine and not self.frozen:
            self.gamma.accumulate(dgamma)
            self.beta.accumulate(dbeta)
        return dx

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}, backward={self.backward_formula!r}, "
                f"impl={self.impl!r}")


class BatchNorm1d(_BatchNorm):
    """BN over (N, C) (statistics over N) or (N, C, L) (statistics over N and L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """BN for conv nets (Sec. 3.2): x (N, C, H, W), statistics per channel over N * H * W."""

    _ndims = (4,)
    _layout = "(N, {C}, H, W)"
