"""Optimizers (SGD with momentum / Nesterov / weight decay, Adam) and schedules.

Update rules follow PyTorch, so results can be compared with it:

* SGD: g = grad + wd * p; buf = momentum * buf + g; p -= lr * (g + momentum * buf if
  nesterov else buf) (plain g without momentum).
* Adam (Kingma & Ba 2015): bias-corrected first and second moments.

Schedules are functions of (step, total_steps); a :class:`Scheduler` writes the value
into an attribute of one or more objects (an optimizer's ``lr``, a layer's ``r_max``...)
before each step, e.g. ``Piecewise([0.1, 0.5, 0.9], at=[0.4, 0.6])`` changes a value at
40% and 60% of training.

Every hyperparameter is checked where it comes in (:func:`check_number`), as torch.optim
checks it, and NaN and inf are refused as well: NaN slips through a plain range test
(``nan < 0`` is False), and one step with a NaN or infinite rate makes the parameters NaN.
"""

from __future__ import annotations

import bisect
import math
import numbers

from .backend import get_array_module, memory_order
from .kernels import fused_elementwise
from .workspace import Workspace


def check_number(where, name, value, low=None, high=None, low_open=False):
    """``value``, unless it is not a finite real number in [low, high) ((low, high) with
    ``low_open``; None: no bound): then a ValueError naming ``where``, the argument, the
    values allowed and the value given, e.g. "SGD: lr must be > 0 and finite, got inf"."""
    ok = isinstance(value, numbers.Real) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        if high is not None:
            rule = f"in {'(' if low_open else '['}{low}, {high})"
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {low} and finite"
        else:
            rule = "a finite number"
        what = "" if isinstance(value, numbers.Real) else f" (a {type(value).__name__}, not a number)"
        raise ValueError(f"{where}: {name} must be {rule}, got {value!r}{what}")
    return value


class Optimizer:
    def __init__(self, params, lr):
        from .nn.module import Parameter  # (here: minibn.nn imports this module)

        where = type(self).__name__
        if callable(getattr(params, "parameters", None)):  # SGD(model, ...) for SGD(model.parameters(), ...)
            raise TypeError(f"{where}: params must be the parameters to optimize, such as model.parameters(); "
                            f"got the {type(params).__name__} itself")
        if hasattr(params, "shape") and hasattr(params, "dtype"):  # an array: its items would be numbers
            raise TypeError(f"{where}: params must be an iterable of Parameters, such as model.parameters(); "
                            f"got an array of shape {tuple(params.shape)} (wrap a value to optimize in "
                            f"minibn.nn.Parameter, whose grad the layers fill)")
        try:
            self.params = list(params)
        except TypeError:
            raise TypeError(f"{where}: params must be an iterable of Parameters, such as model.parameters(); "
                            f"got {type(params).__name__}") from None
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{where}: parameter {i} is a {type(p).__name__}, not a minibn.nn.Parameter "
                                f"(pass model.parameters(), whose gradients the layers fill)")
        if not self.params:
            raise ValueError(f"{where}: got an empty parameter list")
        first = {}  # id of a parameter -> where it is first listed
        for i, p in enumerate(self.params):
            j = first.setdefault(id(p), i)
            if j != i:  # it would take two steps per step (torch.optim warns; across groups it refuses)
                raise ValueError(f"{where}: parameter {i} is parameter {j} again ({p!r}): list each parameter "
                                 f"once")
        self.lr = lr

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        """Checked on every assignment: also a value a :class:`Scheduler` writes."""
        self._lr = check_number(type(self).__name__, "lr", value, low=0, low_open=True)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    When the parameters share a dtype and a device, their values live in one flat array
    (each ``p.data`` becomes a view of it, with the same shape, values and memory layout),
    and so do their gradient buffers (:meth:`minibn.nn.Parameter.grad_buffer`, where a
    Linear writes dW). A step in which every parameter has a gradient then applies the
    rule once, to the flat arrays: a few array operations in all instead of a few per
    parameter (the Fig. 1 MLP has 10 parameters). Otherwise (a parameter without a
    gradient, such as a frozen BN's gamma, or one whose ``data`` was replaced since) it
    runs parameter by parameter, on the same momentum buffers.
    """

    def __init__(self, params, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        check_number("SGD", "momentum", momentum, low=0)  # >= 1 is allowed, as in torch.optim.SGD
        check_number("SGD", "weight_decay", weight_decay, low=0)
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self._values = self._grads = self._flat_buf = self._buf = None
        values = [p.data for p in self.params]
        if _one_kind(values):
            self._values, self._grads = Flat(values), Flat(values)
            for p, v, g in zip(self.params, self._values.views, self._grads.views):
                v[...] = p.data
                p.data = v
                p.set_grad_buffer(g)
        self._scratch = Workspace()

    def step(self):
        if self.momentum and self._buf is None:
            # zero momentum buffers (buf = 0 * m + g = g at a parameter's first step), made at the
            # first step, after any move of the model: one flat array while the values are flat
            if self._linked():
                self._flat_buf = Flat(self._values.views)
                self._buf = list(self._flat_buf.views)
            else:
                self._buf = [None] * len(self.params)
        if self._linked() and all(p.grad is not None for p in self.params):
            for p, g in zip(self.params, self._grads.views):
                if p.grad is not g:  # e.g. BN's dgamma, a new (C,) array: copied into the flat gradient
                    g[...] = p.grad
            buf = self._flat_buf.array if self.momentum else None
            self._update("all", self._values.array, self._grads.array, buf)
            return
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if self.momentum and self._buf[i] is None:
                self._buf[i] = get_array_module(p.data).zeros_like(p.data)
            self._update(i, p.data, p.grad, self._buf[i] if self.momentum else None)

    def _linked(self):
        """Whether every parameter's values are still its view of the flat array."""
        return self._values is not None and all(p.data is v for p, v in zip(self.params, self._values.views))

    def _update(self, key, w, g, buf):
        """The rule, in place on the values w, given the gradient g and the momentum buffer
        buf (None without momentum): one parameter's, or all of them as flat arrays."""
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            buf *= self.momentum
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        elif not self.weight_decay and fused_elementwise.sgd_step_applies(w, g):
            fused_elementwise.sgd_step(w, g, self.lr)  # plain SGD on the CPU: the same values, in one pass
            return
        # lr * g into a buffer kept between steps: a fresh temporary the size of a
        # weight matrix would cost page faults every step
        upd = self._scratch.like(key, g)
        get_array_module(g).multiply(g, self.lr, out=upd)
        w -= upd


def _one_kind(arrays):
    """Whether the arrays share a dtype and an array type (NumPy, or CuPy on one device)."""
    first = arrays[0]
    return all(type(a) is type(first) and a.dtype == first.dtype
               and getattr(a, "device", None) == getattr(first, "device", None) for a in arrays)


class Flat:
    """One zero-filled 1-d array and a view of it shaped like each of ``like`` (same shape,
    dtype, memory layout: column-major where that array is), one after the other."""

    def __init__(self, like):
        xp = get_array_module(like[0])
        self.array = xp.zeros(sum(a.size for a in like), dtype=like[0].dtype)
        self.views, start = [], 0
        for a in like:
            self.views.append(self.array[start:start + a.size].reshape(a.shape, order=memory_order(a)))
            start += a.size


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds wd * p to the gradient (L2, as torch.optim.Adam)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not (hasattr(betas, "__len__") and not isinstance(betas, str) and len(betas) == 2):
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2) of numbers in [0, 1), got {betas!r}")
        self.beta1, self.beta2 = betas
        check_number("Adam", "betas[0]", self.beta1, low=0, high=1)
        check_number("Adam", "betas[1]", self.beta2, low=0, high=1)
        # eps > 0, where torch.optim.Adam allows 0: with eps = 0, a weight whose gradient has
        # been exactly 0 so far (one from an always-0 input, e.g. an MNIST border pixel) gets 0 / 0 = NaN
        check_number("Adam", "eps", eps, low=0, low_open=True)
        check_number("Adam", "weight_decay", weight_decay, low=0)
        self.eps, self.weight_decay = eps, weight_decay
        self.t = 0
        self._m = [None] * len(self.params)
        self._v = [None] * len(self.params)

    def step(self):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self._m[i] is None:
                self._m[i] = g * 0
                self._v[i] = g * 0
            m, v = self._m[i], self._v[i]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p.data -= (self.lr / c1) * m / ((v / c2) ** 0.5 + self.eps)


# -- schedules ---------------------------------------------------------------------------

class Constant:
    def __init__(self, value):
        self.value = check_number("Constant", "value", value)

    def __call__(self, step, total_steps):
        return self.value


class StepDecay:
    """initial * gamma ** (step // step_size)."""

    def __init__(self, initial, step_size, gamma=0.1):
        check_number("StepDecay", "initial", initial)
        check_number("StepDecay", "step_size", step_size, low=1)
        check_number("StepDecay", "gamma", gamma, low=0, low_open=True)
        self.initial, self.step_size, self.gamma = initial, step_size, gamma

    def __call__(self, step, total_steps):
        return self.initial * self.gamma ** (step // self.step_size)


class Piecewise:
    """values[k] from the k-th boundary on; ``at`` are fractions of the run in (0, 1).

    Piecewise([0.1, 0.5, 0.9], at=[0.4, 0.6]) is 0.1 for the first 40% of the steps,
    0.5 up to 60%, then 0.9 (the MBN paper's lambda schedule).
    """

    def __init__(self, values, at):
        values, at = list(values), list(at)
        if len(values) != len(at) + 1:
            raise ValueError(f"Piecewise: need len(values) == len(at) + 1, got {len(values)} and {len(at)}")
        if any(not 0 < a < 1 for a in at) or at != sorted(at):
            raise ValueError(f"Piecewise: 'at' must be increasing fractions in (0, 1), got {at}")
        for i, v in enumerate(values):
            check_number("Piecewise", f"values[{i}]", v)
        self.values, self.at = values, at

    def __call__(self, step, total_steps):
        return self.values[bisect.bisect_right(self.at, step / total_steps)]


class Cosine:
    """Cosine decay from ``initial`` to ``final`` over the run; ``final`` after it (a cosine
    would climb back up), as :class:`Piecewise` keeps its last value."""

    def __init__(self, initial, final=0.0):
        self.initial = check_number("Cosine", "initial", initial)
        self.final = check_number("Cosine", "final", final)

    def __call__(self, step, total_steps):
        t = min(step / total_steps, 1.0)
        return self.final + 0.5 * (self.initial - self.final) * (1 + math.cos(math.pi * t))


class Scheduler:
    """Sets ``attr`` of every target to ``schedule(step, total_steps)``; call ``step()`` once per step.

    Setting goes through normal attribute assignment, so a layer that validates its
    attributes (e.g. a property that rejects r_max < 1) rejects a bad scheduled value, as
    an optimizer rejects an ``lr`` that is not > 0 and finite.
    """

    def __init__(self, targets, attr, schedule, total_steps):
        self.targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
        if not self.targets:
            raise ValueError(f"Scheduler: no targets for attribute {attr!r}")
        for t in self.targets:
            if not hasattr(t, attr):
                raise AttributeError(f"Scheduler: {type(t).__name__} has no attribute {attr!r}")
        check_number("Scheduler", "total_steps", total_steps, low=1)
        self.attr, self.schedule, self.total_steps = attr, schedule, total_steps
        self.t = 0

    def step(self):
        value = self.schedule(self.t, self.total_steps)
        for target in self.targets:
            setattr(target, self.attr, value)
        self.t += 1
        return value
