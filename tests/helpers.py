"""What the tests share: moving arrays, the implementations to run, and their skips."""

from __future__ import annotations

import numpy as np
import pytest

from minibn import backend, dispatch
from minibn.kernels import numba_cpu

#: skip unless numba is installed (the fused CPU loops)
needs_numba = pytest.mark.skipif(not numba_cpu.available(), reason="numba is not installed (the fused loops)")


def to_np(a):
    """A host (NumPy) copy of an array that may live on the GPU."""
    return backend.asnumpy(a)


def on_active(a):
    """A host array moved to the active backend."""
    return backend.to_active(np.asarray(a))


def impls(op, reference=True):
    """pytest parameters: every implementation registered for ``op`` (the fused ones marked
    ``needs_numba``), with or without the reference."""
    out = []
    for name in dispatch.implementations(op):
        if name == "reference" and not reference:
            continue
        out.append(pytest.param(name, marks=needs_numba) if name == "fused" else name)
    return out


def skip_unless_runs_here(op, impl):
    """Skip when ``impl`` of ``op`` cannot run on the active backend (the fused CPU loops on CuPy)."""
    if op is None:
        return  # a layer with one implementation: it runs everywhere
    if impl not in dispatch.available(op, backend.xp().zeros(1)):
        pytest.skip(f"{op}: the {impl!r} implementation does not run on the {backend.active()} backend")
