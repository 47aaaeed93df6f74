"""What every normalization layer shares: :class:`Normalization` and :class:`RunningStatistics`.

A normalization layer (BatchNorm, BatchRenorm, Memorized BN, TransNorm, LayerNorm,
GroupNorm, InstanceNorm) is a :class:`Normalization`: it checks its input at the
boundary, holds gamma and beta, picks how its training forward is computed (``impl=``,
through :func:`minibn.dispatch.select`), remembers which backward goes with the forward
it ran, and accumulates dgamma and dbeta. Each layer owns its buffers and writes its
own ``forward``; its ``backward`` is the one here.

Layers with moving averages (BatchNorm, BatchRenorm, TransNorm) also mix in
:class:`RunningStatistics`: the momentum (validated on every assignment) and the factor
of each update.
"""

from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy

from .. import backend, dispatch
from .._checks import check_dim, check_float, check_ndim
from ..kernels.numpy_fast import Workspace
from .module import Module, Parameter


class NumericalWarning(UserWarning):
    """A normalization layer met values it cannot normalize (NaN or inf in a batch, a
    constant channel with eps = 0); the message names the layer and the channels."""


class Normalization(Module):
    """Base of the normalization layers (see the module docstring).

    A subclass sets ``op`` (the operation registered in :mod:`minibn.registry` that its
    training forward computes), ``_ndims`` and ``_layout`` (the accepted input ranks, and
    the expected shape as the error messages print it, with ``{C}`` for the channels),
    and calls :meth:`_train_forward` (or :meth:`_remember`, for a fixed transform).
    """

    op: str = ""
    _ndims: tuple = ()
    _layout: str = ""
    #: set by batchnorm freezing (``minibn.adapt.freeze``); only BatchNorm uses it
    frozen = False

    def __init__(self, num_features, eps, affine, impl, dtype, affine_shape=None):
        super().__init__()
        self.name = type(self).__name__
        self.num_features = num_features
        self.eps = eps
        allowed = ("auto",) + dispatch.implementations(self.op)
        if impl not in allowed:
            raise ValueError(f"{self.name}: impl must be one of {allowed}, got {impl!r}")
        self.impl = impl
        xp = backend.xp()
        shape = (num_features,) if affine_shape is None else affine_shape
        self.gamma = Parameter(xp.ones(shape, dtype=dtype)) if affine else None
        self.beta = Parameter(xp.zeros(shape, dtype=dtype)) if affine else None
        #: the implementation the last training forward ran (a :class:`minibn.dispatch.Implementation`)
        self.last_implementation = None
        self._work = Workspace()
        self._cache = None

    @property
    def eps(self):
        return self._eps

    @eps.setter
    def eps(self, value):
        if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
            raise ValueError(f"{type(self).__name__}: eps must be a number >= 0, got {value!r}")
        self._eps = float(value)

    @property
    def affine(self):
        return self.gamma is not None

    def _affine(self):
        return (self.gamma.data, self.beta.data) if self.gamma is not None else (None, None)

    # -- the input ---------------------------------------------------------------------
    def _check(self, x):
        """TypeError / ValueError naming the layer, the expected and the actual shape."""
        if getattr(x, "ndim", None) in self._ndims and x.shape[1] == self.num_features and x.dtype.kind == "f":
            return  # the usual case, in one line: the messages below are built only for an error
        check_float("x", x, self.name)
        layout = self._layout.format(C=self.num_features)
        check_ndim("x", x, self._ndims, self.name, layout)
        check_dim("x", x, 1, self.num_features, self.name, layout)

    # -- forward and backward ------------------------------------------------------------
    def _choice(self):
        """The ``impl`` passed to the selection rule (BatchNorm's paper backward overrides it)."""
        return self.impl

    def _train_forward(self, x, *args):
        """Run the op's implementation chosen for x; returns (y, cache)."""
        y, cache = self._run(self.op, self._choice(), x, *args, work=self._work)
        self._remember(self.last_implementation.backward, cache, y)
        return y, cache

    def _unusable_channels(self, spread, positive, what="running statistics were not updated"):
        """Channels whose batch statistics cannot be used, each kind with a warning naming the
        layer and the channels: ``spread`` (C,) values (the batch variance, or std) that are
        NaN or inf (the batch had NaN or inf there: a non-finite mean makes the variance NaN
        too), ``positive`` (C,) values (variance + eps) that are not > 0 (a constant channel
        with eps = 0; None when they cannot be: a variance >= 0 plus an eps > 0). Returns
        their indices, or None when all are fine.

        Host arrays only: on the GPU, reading the answer would wait for the device at every
        step (there, a NaN shows in the loss).
        """
        if type(spread) is not numpy.ndarray:
            return None
        if math.isfinite(spread.sum()) and (positive is None or positive.min() > 0):
            return None  # the usual case: one or two reductions, no arrays
        nonfinite = ~numpy.isfinite(spread)
        flat = ~nonfinite & ~(positive > 0) if positive is not None else numpy.zeros_like(nonfinite)
        if nonfinite.any():
            warnings.warn(f"{self.name}: the batch has NaN or inf values in channel(s) "
                          f"{numpy.flatnonzero(nonfinite).tolist()}: their outputs are NaN, and their {what}",
                          NumericalWarning, stacklevel=4)
        if flat.any():
            warnings.warn(f"{self.name}: channel(s) {numpy.flatnonzero(flat).tolist()} are constant in this batch "
                          f"and eps = {self.eps}: 0 / 0 makes their outputs NaN, and their {what} (use eps > 0)",
                          NumericalWarning, stacklevel=4)
        return numpy.flatnonzero(nonfinite | flat)

    @staticmethod
    def _keep_channels(buffers, bad, update):
        """Run ``update()`` on the running buffers, except on the channels ``bad`` (None: all)."""
        if bad is None:
            return update()
        old = [b[bad].copy() for b in buffers]
        update()
        for b, o in zip(buffers, old):
            b[bad] = o

    def _remember(self, backward, cache, y):
        """Keep what :meth:`backward` needs: the function, its cache and the output shape."""
        self._backward_fn, self._cache, self._y_shape = backward, cache, tuple(y.shape)

    def backward(self, dy):
        """dy: like the last forward's output. Returns dx; accumulates dgamma, dbeta into
        gamma.grad, beta.grad (not when frozen)."""
        self._check_dy(dy)
        dx, dgamma, dbeta = self._backward_fn(dy, self._cache)
        if self.gamma is not None and not self.frozen:
            self.gamma.accumulate(dgamma)
            self.beta.accumulate(dbeta)
        return dx


class RunningStatistics:
    """Mixin: ``momentum`` (validated on assignment) and the factor of each moving-average update.

    PyTorch's convention: ``momentum`` is the weight of the *new* batch statistic,
    running = (1 - momentum) * running + momentum * batch; ``momentum=None`` keeps a
    cumulative average over all batches seen (factor 1 / t for the t-th).
    """

    @property
    def momentum(self):
        return self._momentum

    @momentum.setter
    def momentum(self, value):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1):
            raise ValueError(f"{type(self).__name__}: momentum must be None or a number in [0, 1], got {value!r}")
        self._momentum = None if value is None else float(value)

    def _momentum_factor(self):
        """Count this batch (``num_batches_tracked``) and return the weight of its statistics."""
        self.num_batches_tracked += 1
        return 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
