"""Implementations of an operation, and the one rule that picks among them.

An *operation* ("batch_norm", "layer_norm", ...) is one mathematical function with a
training-mode forward and backward. Each way of computing it is an
:class:`Implementation` with one contract:

* ``forward(x, *args)`` -> (y, cache), the arguments of the operation's reference
  function in :mod:`minibn.functional` (a fast path may also take ``work=``, see below);
* ``backward(dy, cache)`` -> (dx, dgamma, dbeta), given the cache of *its own* forward;
* ``applies(x)``: whether ``impl="auto"`` may pick it for x (cheap: called every step);
* ``check(x)``: raises the reason it cannot run on x (for an explicit ``impl=`` choice).

The "reference" implementation of every operation is the teaching path
(:mod:`minibn.functional`: the papers as written); the others live in
:mod:`minibn.kernels`. All are registered in :mod:`minibn.registry`, by module path, so
that nothing is imported (numba, CuPy kernels) before it first runs.

:func:`select` is the rule every normalization layer uses: ``impl="auto"`` takes the
first registered implementation whose ``applies(x)`` holds and whose ``min_size`` x
reaches, in order of registration (fastest first, the reference last); any other name
takes that implementation, or says why it cannot run here. A layer keeps the
implementation its training forward used and calls that one's backward.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable


def _always(*_):
    return True


def _never_raises(x):
    return None


@dataclass
class Implementation:
    """One way of computing an operation (see the module docstring for the contract).

    ``forward`` and ``backward`` are "module:function" paths, imported on first use.
    ``installed()``: whether what it needs is installed on this machine (numba, say).
    ``min_size``: ``impl="auto"`` picks this one only for inputs of at least that many
    values. ``workspace``: its forward takes ``work=``, a per-layer
    :class:`minibn.kernels.numpy_fast.Workspace` of buffers reused between steps.
    """

    op: str
    name: str
    forward_path: str
    backward_path: str
    applies: Callable = _always
    check: Callable = _never_raises
    min_size: int = 0
    workspace: bool = False
    installed: Callable = _always
    _fns: tuple = field(default=None, repr=False)

    def _resolve(self):
        if self._fns is None:
            fns = []
            for path in (self.forward_path, self.backward_path):
                module, name = path.split(":")
                fns.append(getattr(importlib.import_module(module), name))
            self._fns = tuple(fns)
        return self._fns

    def forward(self, x, *args, work=None, **kwargs):
        f = self._fns[0] if self._fns is not None else self._resolve()[0]
        return f(x, *args, work=work, **kwargs) if self.workspace else f(x, *args, **kwargs)

    def backward(self, dy, cache, *args):
        b = self._fns[1] if self._fns is not None else self._resolve()[1]
        return b(dy, cache, *args)


_REGISTRY: dict[str, dict[str, Implementation]] = {}


def register(op, name, forward, backward, applies=_always, check=_never_raises, min_size=0, workspace=False,
             installed=_always):
    """Register an implementation ``name`` of operation ``op`` (see :class:`Implementation`).

    Register the fastest first: ``impl="auto"`` tries them in the order of registration.
    """
    impls = _REGISTRY.setdefault(op, {})
    if name in impls:
        raise ValueError(f"{op}: an implementation named {name!r} is already registered")
    impls[name] = Implementation(op, name, forward, backward, applies, check, min_size, workspace,
                                 installed)
    return impls[name]


def implementations(op):
    """The names registered for ``op``, in the order ``impl="auto"`` tries them."""
    if op not in _REGISTRY:
        raise KeyError(f"no operation {op!r} is registered (known: {sorted(_REGISTRY)})")
    return tuple(_REGISTRY[op])


def get(op, name):
    """The implementation ``name`` of ``op`` (KeyError naming the registered ones)."""
    impls = _REGISTRY.get(op, {})
    if name not in impls:
        raise KeyError(f"{op}: no implementation {name!r} (registered: {tuple(impls)})")
    return impls[name]


def select(op, impl, x):
    """The implementation of ``op`` that computes x for the choice ``impl``.

    "auto": the first registered one that applies to x (the reference always does);
    a name: that one, after its ``check(x)`` (which raises why it cannot run here).
    """
    impls = _REGISTRY[op]
    if impl == "auto":
        for candidate in impls.values():
            if x.size >= candidate.min_size and candidate.applies(x):
                return candidate
        return impls["reference"]
    chosen = impls[impl]
    chosen.check(x)
    return chosen


def available(op, x=None):
    """The names of ``op``'s implementations installed here (and able to run on x, when given)."""
    out = []
    for name, candidate in _REGISTRY[op].items():
        if not candidate.installed():
            continue
        if x is not None:
            try:
                candidate.check(x)
            except (TypeError, ValueError, ImportError, NotImplementedError):
                continue
        out.append(name)
    return tuple(out)
