"""What every normalization layer shares: :class:`Normalization` and :class:`RunningStatistics`.

A normalization layer (BatchNorm, Ghost BN, BatchRenorm, Memorized BN, TransNorm,
LayerNorm, RMSNorm, GroupNorm, InstanceNorm) is a :class:`Normalization`: it checks its
input at the boundary, holds gamma and beta (each optional), picks how its training
forward is computed (``impl=``, through :func:`minibn.dispatch.select`), remembers which
backward goes with the forward it ran, and accumulates dgamma and dbeta. Each layer owns
its buffers and writes its own ``forward``; its ``backward`` is the one here.

Layers with moving averages (BatchNorm, BatchRenorm, TransNorm) also mix in
:class:`RunningStatistics`: the momentum (validated on every assignment) and the factor
of each update.

The contract every normalization layer keeps, whatever implementation runs (tested for
each registered layer and implementation in tests/test_contract.py):

* x is a plain array (``numpy.ndarray``, a CuPy array; a ``numpy.memmap`` is read as the
  ndarray it holds); a ``numpy.ma.MaskedArray``, a ``numpy.matrix`` or another subclass is
  refused with a TypeError that names its type and the fix;
* y and dx have x's dtype, dgamma and dbeta the parameters' dtype; a dy of another
  floating dtype is converted to y's, an integer dy is refused (naming the fix);
* an empty batch (x.size == 0) gives an empty y, an empty dx and zero gradients, as
  PyTorch's BatchNorm, LayerNorm and GroupNorm do; running statistics and memories are
  left as they are (SyncBatchNorm, whose ranks must exchange, raises ValueError instead);
* a statistic that does not fit its running buffer's dtype (the variance 1e60 of a float32
  input of scale 1e30, in a float32 ``running_var``) leaves that channel's running
  statistics as they were, with a :class:`NumericalWarning` naming the channels and the
  buffer, as NaN and inf in a batch do: a buffer never becomes inf;
* x changed in place between the forward and the backward makes the backward raise
  RuntimeError (it would use the new values with the old statistics); the check keeps a
  few of x's values (:func:`minibn._checks.fingerprint`), on the CPU.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from numbers import Real

import numpy

from .. import backend, dispatch
from .._checks import (
    PLAIN_ARRAYS,
    check_dim,
    check_float,
    check_ndim,
    check_unchanged,
    fingerprint,
    float_dtype,
    plain_array,
)
from ..workspace import Workspace
from .module import Module, Parameter

__all__ = ["Normalization", "RunningStatistics", "NumericalWarning"]


class NumericalWarning(UserWarning):
    """A normalization layer met values it cannot normalize (NaN or inf in a batch, a
    constant channel with eps = 0); the message names the layer and the channels."""


class Normalization(Module):
    """Base of the normalization layers (see the module docstring).

    A subclass sets:

    * ``op``: the operation registered in :mod:`minibn.registry` that its training forward
      computes;
    * ``_ndims`` and ``_layout``: the accepted input ranks, and the expected shape as the
      error messages print it, with ``{C}`` for the channels (the input check ``_check``
      reads them; a layer whose input is not (N, C, ...), LayerNorm's, writes its own
      ``_check``);
    * ``_operation_args``: the arguments after x of the operation's functions (default
      ``(gamma, beta, eps)``);
    * ``_cache_statistics``: the statistics it reads from the cache, with their shapes;

    passes to ``__init__`` which affine parameters it has (``gamma=``, ``beta=``, each
    optional) and their shape, and calls ``_train_forward`` in its ``forward`` (or
    ``_remember``, for a fixed transform). Messages name the layer by its class.

    Parameters
    ----------
    num_features : int
        C, the channels (for LayerNorm, the first normalized size).
    eps : float
        Added to the variance inside the square root; a number >= 0.
    impl : str
        ``"auto"`` or the name of one of ``op``'s registered implementations.
    dtype : str or dtype
        The parameters' dtype, a floating-point one (ValueError otherwise).
    gamma, beta : bool, optional
        Whether the layer has that parameter (gamma starts at ones, beta at zeros).
    param_shape : tuple of int, optional
        Their shape (default (num_features,)).

    Raises
    ------
    ValueError
        If impl is not "auto" or a registered implementation of ``op``, or eps is not a
        number >= 0.
    """

    base_class = True
    op: str = ""
    _ndims: tuple = ()
    _layout: str = ""
    #: set by batchnorm freezing (``minibn.adapt.freeze``); only BatchNorm uses it
    frozen = False

    def __init__(self, num_features, eps, impl, dtype, gamma=True, beta=True, param_shape=None):
        """``gamma``, ``beta``: whether the layer has that parameter (gamma starts at ones,
        beta at zeros), of shape ``param_shape`` (default (num_features,))."""
        super().__init__()
        self.name = type(self).__name__
        dtype = float_dtype(dtype, self.name)
        self.num_features = num_features
        self.eps = eps
        self.impl = dispatch.check_impl(self.op, impl, self.name)
        xp = backend.xp()
        shape = (num_features,) if param_shape is None else param_shape
        self.gamma = Parameter(xp.ones(shape, dtype=dtype)) if gamma else None
        self.beta = Parameter(xp.zeros(shape, dtype=dtype)) if beta else None
        #: the implementation the last training forward ran (a :class:`minibn.dispatch.Implementation`)
        self.last_implementation = None
        self._work = Workspace()
        self._cache = None

    @property
    def eps(self):
        """Added to the variance inside the square root; setting anything but a number >= 0 raises ValueError."""
        return self._eps

    @eps.setter
    def eps(self, value):
        if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
            raise ValueError(f"{type(self).__name__}: eps must be a number >= 0, got {value!r}")
        self._eps = float(value)

    @property
    def affine(self):
        """Whether the layer has an affine parameter (gamma, beta, or both)."""
        return self.gamma is not None or self.beta is not None

    def _gamma_beta(self):
        """(gamma's array, beta's array), each None where the layer has no such parameter."""
        return (None if self.gamma is None else self.gamma.data,
                None if self.beta is None else self.beta.data)

    def _operation_args(self, x):
        """The arguments after x of the operation's forward (its reference function's, in
        :mod:`minibn.functional`) for the input x: ``(gamma, beta, eps)`` unless the layer
        says otherwise (LayerNorm adds its number of normalized axes, GhostBatchNorm its
        virtual batch size, ...)."""
        return (*self._gamma_beta(), self.eps)

    def _cache_statistics(self, x):
        """{cache key: shape}: the statistics this layer reads from its training forward's
        cache for the input x, which every implementation of its operation must leave there
        in that shape (tests/test_registry.py checks each). Empty for a layer that reads none."""
        raise NotImplementedError(f"{self.name} does not declare the statistics it reads from its cache")

    # -- the input ---------------------------------------------------------------------
    def _check(self, x):
        """x, checked: TypeError / ValueError naming the layer, the expected and the actual shape
        (and for an array subclass, its type and the fix: :func:`minibn._checks.plain_array`)."""
        if (type(x) in PLAIN_ARRAYS and x.ndim in self._ndims and x.shape[1] == self.num_features
                and x.dtype.kind == "f"):
            return x  # the usual case, in one line: the messages below are built only for an error
        x = plain_array("x", x, self.name)
        check_float("x", x, self.name)
        layout = self._layout.format(C=self.num_features)
        check_ndim("x", x, self._ndims, self.name, layout)
        check_dim("x", x, 1, self.num_features, self.name, layout)
        return x

    # -- forward and backward ------------------------------------------------------------
    def _operation_and_impl(self):
        """(operation, implementation name) handed to the selection rule: ``(op, impl)``
        (BatchNorm's ``backward="paper"`` overrides it)."""
        return self.op, self.impl

    def _train_forward(self, x):
        """Run the implementation of the layer's operation chosen for x, with the arguments
        of :meth:`_operation_args`; returns (y, cache)."""
        op, impl = self._operation_and_impl()
        y, cache = self._run(op, impl, x, *self._operation_args(x), work=self._work)
        self._remember(self.last_implementation.backward, cache, y, x)
        return y, cache

    def _empty_batch(self, x, count=False):
        """The output for an empty batch (x.size == 0): an empty y, as PyTorch's BatchNorm,
        LayerNorm and GroupNorm give, in every mode and whatever ``impl`` says; its backward
        gives an empty dx and zero gradients for gamma and beta. No statistic is computed
        from no values: running statistics and memories stay as they were. ``count``: the
        batch is counted in ``num_batches_tracked`` (PyTorch counts it in training)."""
        if count:
            self.num_batches_tracked += 1
        y = backend.get_array_module(x).zeros(x.shape, x.dtype)
        gamma, beta = self._gamma_beta()
        self._remember(_empty_backward, {"x": x, "gamma": gamma, "beta": beta}, y, x)
        return y

    def _unusable_channels(self, spread, positive, what="running statistics were not updated", fits=None):
        """Channels whose batch statistics cannot be used, each kind with a warning naming the
        layer and the channels: ``spread`` (C,) values (the batch variance, or std) that are
        NaN or inf (the batch had NaN or inf there: a non-finite mean makes the variance NaN
        too), ``positive`` (C,) values (variance + eps) that are not > 0 (a constant channel
        with eps = 0; None when they cannot be: a variance >= 0 plus an eps > 0), and, with
        ``fits`` = (limit, statistic, buffer), ``spread`` values above ``limit``: the ones
        whose moving average would overflow the dtype of the running buffer ``buffer`` (a
        float32 ``running_var`` cannot hold the variance 1e60 of a float32 input of scale
        1e30: it would become inf for good, and eval mode would output beta). Returns their
        indices, or None when all are fine.

        Host arrays only: on the GPU, reading the answer would wait for the device at every
        step (there, a NaN shows in the loss).
        """
        if type(spread) is not numpy.ndarray:
            return None
        total, limit = float(spread.sum()), math.inf if fits is None else fits[0]
        if math.isfinite(total) and total <= limit and (positive is None or positive.min() > 0):
            return None  # the usual case: one or two reductions, no arrays
        nonfinite = ~numpy.isfinite(spread)
        flat = ~nonfinite & ~(positive > 0) if positive is not None else numpy.zeros_like(nonfinite)
        over = ~nonfinite & (spread.astype("float64") > limit)  # in float64: a limit may exceed spread's dtype
        if nonfinite.any():
            warnings.warn(f"{self.name}: the batch has NaN or inf values in channel(s) "
                          f"{numpy.flatnonzero(nonfinite).tolist()}: their outputs are NaN, and their {what}",
                          NumericalWarning, stacklevel=4)
        if flat.any():
            warnings.warn(f"{self.name}: channel(s) {numpy.flatnonzero(flat).tolist()} are constant in this batch "
                          f"and eps = {self.eps}: 0 / 0 makes their outputs NaN, and their {what} (use eps > 0)",
                          NumericalWarning, stacklevel=4)
        if over.any():
            _, statistic, buffer = fits
            dtype = getattr(self, buffer).dtype
            warnings.warn(f"{self.name}: the batch {statistic} of channel(s) {numpy.flatnonzero(over).tolist()} "
                          f"(up to {spread[over].max():.3g}) overflows {buffer}'s dtype {dtype} (largest "
                          f"{numpy.finfo(dtype).max:.3g}): their {what} (keep the layer in float64, "
                          f"layer.astype('float64'), or scale the input down)", NumericalWarning, stacklevel=4)
        return numpy.flatnonzero(nonfinite | flat | over)

    @staticmethod
    def _keep_channels(buffers, bad, update):
        """Run ``update()`` on the running buffers, except on the channels ``bad`` (None: all)."""
        if bad is None:
            return update()
        old = [b[bad].copy() for b in buffers]
        with numpy.errstate(all="ignore"):  # the bad channels' new values (inf, NaN) are put back just below
            update()
        for b, o in zip(buffers, old):
            b[bad] = o

    def _remember(self, backward, cache, y, x):
        """Keep what :meth:`backward` needs: the function, its cache, the output's shape and
        dtype, and a fingerprint of x (:func:`minibn._checks.fingerprint`: a few of its
        values, no pass over it) to refuse a backward after x was changed in place."""
        self._backward_fn, self._cache, self._y_shape, self._y_dtype = backward, cache, tuple(y.shape), y.dtype
        self._x_print = fingerprint(x)

    def backward(self, dy):
        """Backpropagate dy through the last forward (the backward of the implementation it ran).

        Accumulates dgamma and dbeta, in the parameters' dtype, into ``gamma.grad`` and
        ``beta.grad`` for each parameter the layer has (not when frozen).

        Parameters
        ----------
        dy : ndarray
            The gradient of the last forward's output, its shape; another floating dtype is
            converted to the output's.

        Returns
        -------
        ndarray
            dx, x's shape and dtype.

        Raises
        ------
        RuntimeError
            If no forward ran yet, or x was changed in place since the forward (the backward
            would use the new values with the old statistics: a wrong dx, which PyTorch refuses
            too).
        TypeError
            If dy is not a plain floating-point array (an integer dy: naming the fix).
        ValueError
            If dy's shape is not the output's.
        """
        dy = self._check_dy(dy)
        check_unchanged(self._x_print, self.name)
        dx, dgamma, dbeta = self._backward_fn(dy, self._cache)
        if not self.frozen:
            if self.gamma is not None:
                self.gamma.accumulate(dgamma)
            if self.beta is not None:
                self.beta.accumulate(dbeta)
        return dx


@functools.lru_cache(maxsize=None)
def _largest(dtype):
    """The largest finite value of a floating dtype (``numpy.finfo(dtype).max``, cached: asked every step)."""
    return float(numpy.finfo(dtype).max)


def _empty_backward(dy, cache):
    """The backward of an empty batch: an empty dx, zero dgamma and dbeta (each None where the
    layer has no such parameter)."""
    x, gamma, beta = cache["x"], cache["gamma"], cache["beta"]
    xp = backend.get_array_module(dy)
    dx = xp.zeros(x.shape, x.dtype)
    return dx, None if gamma is None else xp.zeros_like(gamma), None if beta is None else xp.zeros_like(beta)


def parameters_of(base):
    """A class decorator: the docstring of a layer whose arguments are all ``base``'s, followed by
    ``base``'s sections from "Parameters" on, so that ``help(BatchNorm1d)`` (and the API pages)
    list the arguments where a student looks for them."""
    def decorate(cls):
        if cls.__doc__ is None or base.__doc__ is None:  # python -OO strips the docstrings
            return cls
        sections = inspect.cleandoc(base.__doc__)
        cls.__doc__ = inspect.cleandoc(cls.__doc__) + "\n\n" + sections[sections.index("Parameters\n---"):]
        return cls
    return decorate


class Input1d:
    """Mixin of the "1d" layers: x (N, C) (statistics over N) or (N, C, L) (over N and L)."""

    _ndims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class Input2d:
    """Mixin of the "2d" layers, for conv nets: x (N, C, H, W), statistics per channel (Sec. 3.2)."""

    _ndims = (4,)
    _layout = "(N, {C}, H, W)"


class RunningStatistics:
    """Mixin: ``momentum`` (validated on assignment) and the factor of each moving-average update.

    PyTorch's convention: ``momentum`` is the weight of the *new* batch statistic,
    ``running = (1 - momentum) * running + momentum * batch``; ``momentum=None`` keeps a
    cumulative average over all batches seen (factor 1 / t for the t-th).
    """

    @property
    def momentum(self):
        """The weight of the new batch statistic, in [0, 1], or None (a cumulative average).

        Setting anything else raises ValueError.
        """
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
