"""Buffers kept between calls, so that a large temporary is allocated once rather than at
every step: a fresh array's pages are faulted in on first touch, which costs more than
the arithmetic of a pass over a few megabytes. A layer (minibn.nn) and an optimizer
(minibn.optim) each own one :class:`Workspace`; the speed path's kernels write into it."""

from __future__ import annotations

from .backend import get_array_module, same_layout


class Workspace:
    """Arrays kept between calls, keyed by name; an array is made anew when the shape, dtype
    or array module (NumPy, CuPy) asked for differs from the one kept."""

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype, xp):
        """An uninitialised array of ``shape`` and ``dtype`` in module ``xp``, kept under ``name``."""
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype or get_array_module(a) is not xp:
            a = self._arrays[name] = xp.empty(shape, dtype=dtype)
        return a

    def like(self, name, a):
        """An array kept under ``name`` like ``a`` (type, shape, dtype and memory layout)."""
        b = self._arrays.get(name)
        if b is None or not same_layout(b, a):
            b = self._arrays[name] = get_array_module(a).empty_like(a)
        return b

    def __deepcopy__(self, memo):  # a copied layer gets its own (empty) workspace
        return Workspace()
