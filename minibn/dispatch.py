"""Implementations of an operation, and the one rule that picks among them.

An *operation* ("batch_norm", "layer_norm", ...) is one mathematical function with a
training-mode forward and backward. Each way of computing it is an
:class:`Implementation` with one contract:

* ``forward(x, *args)`` -> (y, cache), the arguments of the operation's reference
  function in :mod:`minibn.functional` (a fast path may also take ``work=``, see below);
* ``backward(dy, cache)`` -> the gradients, given the cache of *its own* forward: (dx,
  dgamma, dbeta) for a normalization, (dx, dW, db) for conv2d, dx for max_pool2d and the
  elementwise operations (ReLU, the sigmoid); the loss's backward takes ``(cache, dloss)``
  and returns dlogits, as its reference function does;
* ``applies(x)``: whether ``impl="auto"`` may pick it for x (cheap: called every step);
* ``check(x)``: raises the reason it cannot run on x (for an explicit ``impl=`` choice).

The "reference" implementation of every operation is the teaching path
(:mod:`minibn.functional`: the papers as written); the others live in
:mod:`minibn.kernels`. All are registered in :mod:`minibn.registry`, with the functions
themselves (a reader, an editor and a dead-code tool can follow a registration to its
code); importing a kernel module is cheap, since what it needs (numba, CuPy) is imported
when a kernel first runs.

:func:`select` is the rule every layer with ``impl=`` uses: ``impl="auto"`` takes the
first registered implementation whose ``applies(x)`` holds and whose ``min_size`` x
reaches, in order of registration (fastest first, the reference last); any other name
takes that implementation, or says why it cannot run here. A layer keeps the
implementation its training forward used and calls that one's backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def _always(*_):
    return True


def _never_raises(x):
    return None


@dataclass
class Implementation:
    """One way of computing an operation (see the module docstring for the contract).

    ``forward_function`` and ``backward_function``: the functions that compute it.
    ``installed()``: whether what it needs is installed on this machine (numba, say).
    ``min_size``: ``impl="auto"`` picks this one only for inputs of at least that many
    values. ``workspace``: its forward takes ``work=``, a per-layer
    :class:`minibn.workspace.Workspace` of buffers reused between steps.
    ``running_update``: for an operation whose layer keeps running statistics, an optional
    faster update of them from this forward's cache (see
    :func:`minibn.kernels.fused_bn.update_running_stats_fused`); None: the layer's own.
    """

    op: str
    name: str
    forward_function: Callable
    backward_function: Callable
    applies: Callable = _always
    check: Callable = _never_raises
    min_size: int = 0
    workspace: bool = False
    installed: Callable = _always
    running_update: Callable = None

    @property
    def forward_path(self):
        """Where the forward is defined, "module:function" (for messages and reports)."""
        return _where(self.forward_function)

    @property
    def backward_path(self):
        """Where the backward is defined, "module:function"."""
        return _where(self.backward_function)

    def forward(self, x, *args, work=None, **kwargs):
        if self.workspace:
            return self.forward_function(x, *args, work=work, **kwargs)
        return self.forward_function(x, *args, **kwargs)

    def backward(self, dy, cache, *args):
        return self.backward_function(dy, cache, *args)


def _where(function):
    return f"{function.__module__}:{function.__qualname__}"


_REGISTRY: dict[str, list[Implementation]] = {}


def register(op, name, forward, backward, applies=_always, check=_never_raises, min_size=0, workspace=False,
             installed=_always, running_update=None):
    """Register an implementation ``name`` of operation ``op``: ``forward`` and ``backward``
    are the functions (see :class:`Implementation`).

    Register the fastest first: ``impl="auto"`` tries them in the order of registration. One
    name may be registered for arrays of different devices (the "fused" CPU loops for NumPy
    arrays, the "fused" CUDA kernels for CuPy arrays): ``applies`` tells them apart.

    Raises ValueError if ``name`` is already registered for ``op`` with the same ``applies``
    (the second registration could never be picked).
    """
    for other in _REGISTRY.get(op, []):
        if other.name == name and other.applies is applies:
            raise ValueError(f"register: {op!r} already has an implementation {name!r} for the same arrays "
                             f"(applies={getattr(applies, '__qualname__', applies)}); give it another name "
                             "or another applies")
    impl = Implementation(op, name, forward, backward, applies, check, min_size, workspace, installed,
                          running_update)
    _REGISTRY.setdefault(op, []).append(impl)
    return impl


def implementations(op):
    """The names registered for ``op``, in the order ``impl="auto"`` tries them."""
    if op not in _REGISTRY:
        raise KeyError(f"no operation {op!r} is registered (known: {sorted(_REGISTRY)})")
    return tuple(dict.fromkeys(i.name for i in _REGISTRY[op]))


def check_impl(op, impl, where):
    """``impl``, a layer's choice for ``op``, unless it is neither "auto" nor a registered
    implementation: then a ValueError naming ``where`` (the layer), the choices and the value."""
    allowed = ("auto",) + implementations(op)
    if impl not in allowed:
        raise ValueError(f"{where}: impl must be one of {allowed}, got {impl!r}")
    return impl


def get(op, name, x=None):
    """The implementation ``name`` of ``op`` (for x's device, when given); KeyError naming the
    registered ones."""
    candidates = [i for i in _REGISTRY.get(op, []) if i.name == name]
    if not candidates:
        raise KeyError(f"{op}: no implementation {name!r} (registered: {implementations(op)})")
    if x is not None:
        return next((i for i in candidates if i.applies(x)), candidates[0])
    return candidates[0]


def select(op, impl, x):
    """The implementation of ``op`` that computes x for the choice ``impl``.

    "auto": the first registered one that applies to x (the reference always does);
    a name: the first of that name that applies to x; when none does, the reason (the
    ``check(x)`` of the first whose objection is not merely the device).
    """
    impls = _REGISTRY[op]
    if impl == "auto":
        for candidate in impls:
            if x.size >= candidate.min_size and candidate.applies(x):
                return candidate
        return get(op, "reference")
    candidates = [i for i in impls if i.name == impl]
    for candidate in candidates:
        if candidate.applies(x):
            return candidate
    errors = []
    for candidate in candidates:
        try:
            candidate.check(x)
        except (TypeError, ValueError, ImportError, NotImplementedError) as e:
            errors.append(e)
    if not errors:
        raise ValueError(f"{op}: the {impl!r} implementation does not apply to a {type(x).__name__} of dtype "
                         f"{getattr(x, 'dtype', '?')}")
    raise next((e for e in errors if not isinstance(e, NotImplementedError)), errors[0])


def available(op, x=None):
    """The names of ``op``'s implementations installed here (and able to run on x, when given)."""
    out = []
    for candidate in _REGISTRY[op]:
        if candidate.name in out or not candidate.installed():
            continue
        if x is not None:
            try:
                select(op, candidate.name, x)  # exactly what a layer asking for this name would get
            except (TypeError, ValueError, ImportError, NotImplementedError):
                continue
        out.append(candidate.name)
    return tuple(out)
