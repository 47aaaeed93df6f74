"""Gradient checking: compare a hand-written backward with central finite differences.

The rules: float64, central differences, a *random* upstream gradient dy
(with dy all ones the BN input gradient and dgamma are exactly zero, so a wrong backward
would pass), elementwise on small shapes and along random directions on large ones.

The scalar being differentiated is ``L = sum(y * dy)``, whose gradient is exactly what a
backward receiving dy must return.

Error measure, per element: ``|a - n| / max(|a| + |n|, floor)`` with a the analytic and
n the numerical value. ``floor`` is the larger of 1e-3 of the tensor's largest
``|gradient|`` and noise / tol, where ``noise = 1e-15 * sum|y * dy| / h`` estimates the
rounding error of a central difference. So elements that are tiny compared with the
rest of their tensor, or with the resolution of the finite difference (a gradient that
is exactly zero), are judged at that scale rather than by the relative noise of a
difference of two nearly equal numbers. The check passes when the largest error is
below ``tol`` (1e-6 by default; BN in float64 is typically near 1e-9).
"""

from __future__ import annotations

import copy

import numpy

from . import backend, dispatch, testing
from .backend import asnumpy, get_array_module, memory_order


class GradcheckError(AssertionError):
    """A gradient check failed; the message names the tensor, index and both values.

    A subclass of AssertionError, so that pytest reports it as a failed check.
    """


def rel_error(a, b, floor=1e-8):
    """The largest relative difference of two arrays, ``max |a - b| / max(|a| + |b|, floor)`` (CS231n's measure).

    Parameters
    ----------
    a, b : ndarray
        Arrays of one shape (or that broadcast), on any device; compared in float64.
    floor : float, optional
        The smallest denominator, so that two zeros compare as equal.

    Returns
    -------
    float
    """
    a = asnumpy(a).astype(numpy.float64)
    b = asnumpy(b).astype(numpy.float64)
    return float(numpy.max(numpy.abs(a - b) / numpy.maximum(numpy.abs(a) + numpy.abs(b), floor)))


def numerical_gradient(f, x, h=1e-6):
    """``d f(x) / dx`` by central differences, ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for each element i.

    ``x`` is perturbed in place, one element at a time, and restored afterwards.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar (anything ``float()`` takes).
    x : ndarray
        A contiguous (row- or column-major) array, of a floating dtype (float64 for a
        meaningful check).
    h : float, optional
        The step.

    Returns
    -------
    ndarray
        Like x (shape, dtype, memory layout, device).

    Raises
    ------
    ValueError
        If x is not contiguous.
    """
    xp = get_array_module(x)
    if not (x.flags.c_contiguous or x.flags.f_contiguous):
        raise ValueError("numerical_gradient: x must be contiguous (row- or column-major)")
    grad = xp.zeros_like(x)  # x's memory layout, so that both flatten in the same order
    order = memory_order(x)  # flattening in it gives views, not copies
    flat, gflat = x.reshape(-1, order=order), grad.reshape(-1, order=order)
    for i in range(x.size):
        old = float(flat[i])
        flat[i] = old + h
        fp = float(f(x))
        flat[i] = old - h
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def _noise(y, dy, h):
    """Rounding noise of a central difference of L = sum(y * dy) with step h."""
    return 1e-15 * float(abs(y * dy).sum()) / h


def _row(name, analytic, numeric, tol, noise=0.0):
    a = asnumpy(analytic).astype(numpy.float64)
    n = asnumpy(numeric).astype(numpy.float64)
    if a.shape != n.shape:
        raise GradcheckError(f"{name}: analytic gradient has shape {a.shape}, expected {n.shape}")
    scale = max(float(numpy.abs(n).max(initial=0.0)), float(numpy.abs(a).max(initial=0.0)))
    floor = max(1e-3 * scale, noise / tol, 1e-300)
    err = numpy.abs(a - n) / numpy.maximum(numpy.abs(a) + numpy.abs(n), floor)
    worst = numpy.unravel_index(int(numpy.argmax(err)), err.shape) if err.size else ()
    e = float(err[worst]) if err.size else 0.0
    return {"tensor": name, "max_rel_error": e, "worst_index": tuple(int(i) for i in worst),
            "analytic": float(a[worst]) if a.size else 0.0, "numeric": float(n[worst]) if n.size else 0.0,
            "passed": e < tol}


def _fail_message(rows):
    bad = [r for r in rows if not r["passed"]]
    return "; ".join(
        f"{r['tensor']}: max rel error {r['max_rel_error']:.3e} at index {r['worst_index']} "
        f"(analytic {r['analytic']:.10g}, numeric {r['numeric']:.10g})" for r in bad)


def _dy_rng(seed):
    """The generator for dy and directions: a stream of its own, never the one that made x.

    (Seeding it with the same seed as the input would make dy an affine function of x,
    which lies in the null space of BN's input Jacobian: dx = 0, and a check that cannot fail.)
    """
    return numpy.random.default_rng([seed, 0x6AD])


def _random_like(y, rng):
    return backend.to_device(rng.standard_normal(y.shape), backend.device_of(y))


def _directional(loss_at, tensors, grads, rng, h, tol, noise, n_dirs=3, name="directional"):
    """Compare <grad, v> with (L(t + h v) - L(t - h v)) / 2h along random unit directions v."""
    rows = []
    for k in range(n_dirs):
        vs = [rng.standard_normal(t.shape) for t in tensors]
        norm = numpy.sqrt(sum(float((v * v).sum()) for v in vs))
        vs = [backend.to_device(v / norm, backend.device_of(t)) for v, t in zip(vs, tensors)]
        analytic = sum(float((g * v).sum()) for g, v in zip(grads, vs))
        for t, v in zip(tensors, vs):
            t += h * v
        fp = loss_at()
        for t, v in zip(tensors, vs):
            t -= 2 * h * v
        fm = loss_at()
        for t, v in zip(tensors, vs):
            t += h * v
        numeric = (fp - fm) / (2 * h)
        rows.append(_row(f"{name}[{k}]", numpy.array(analytic), numpy.array(numeric), tol, noise))
    return rows


def _want_elementwise(mode, tensors, max_elements):
    if mode == "auto":
        on_gpu = any(backend.is_gpu_array(t) for t in tensors)
        return not on_gpu and sum(int(t.size) for t in tensors) <= max_elements
    if mode not in ("elementwise", "directional"):
        raise ValueError(f"mode must be 'auto', 'elementwise' or 'directional', got {mode!r}")
    return mode == "elementwise"


def check_function(forward, backward, inputs, dy=None, seed=0, h=1e-6, tol=1e-6, mode="auto",
                   max_elements=4096, raise_on_fail=True):
    """Gradient-check a pure function pair ``forward(*inputs) -> (y, cache)``, ``backward(dy, cache) -> gradients``.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> (y, cache)``.
    backward : callable
        ``backward(dy, cache) -> tuple of gradients``, one per input in order (None for an
        input that gets no gradient; extra ones are ignored).
    inputs : dict of str to ndarray
        name -> float64 array, in the order forward takes them. Perturbed in place during
        the check and restored.
    dy : ndarray, optional
        The upstream gradient, y's shape; random normal (seeded) when None.
    seed : int, optional
        Seeds dy and the random directions (a stream of its own, never x's).
    h : float, optional
        The finite-difference step.
    tol : float, optional
        The largest error that passes (see the module docstring for the measure).
    mode : {"auto", "elementwise", "directional"}, optional
        "auto": elementwise up to ``max_elements`` input elements on the CPU, directional
        (3 random directions) otherwise.
    max_elements : int, optional
        The threshold of "auto".
    raise_on_fail : bool, optional
        Raise :class:`GradcheckError` when a row fails (else return the rows).

    Returns
    -------
    list of dict
        One row per checked tensor (or per random direction), with "tensor" (its name),
        "max_rel_error", "worst_index", "analytic" and "numeric" (the values there) and
        "passed" (max_rel_error < tol).

    Raises
    ------
    TypeError
        If an input is not float64.
    ValueError
        If backward returns fewer gradients than there are inputs, or mode is not one of
        its values.
    GradcheckError
        If ``raise_on_fail`` and a check fails, or an analytic gradient has the wrong shape.
    """
    names, arrays = list(inputs), list(inputs.values())
    for n, a in zip(names, arrays):
        if a.dtype != numpy.float64:
            raise TypeError(f"check_function: input {n} must be float64 for a meaningful check, got {a.dtype}")
    rng = _dy_rng(seed)
    y, cache = forward(*arrays)
    if dy is None:
        dy = _random_like(y, rng)
    grads = backward(dy, cache)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) < len(arrays):
        raise ValueError(f"check_function: backward returned {len(grads)} gradients for {len(arrays)} inputs")

    def loss_at(_=None):
        out, _c = forward(*arrays)
        return float((out * dy).sum())

    checked = [(n, a, g) for n, a, g in zip(names, arrays, grads) if g is not None]
    noise = _noise(y, dy, h)
    if _want_elementwise(mode, [a for _, a, _ in checked], max_elements):
        rows = [_row(n, g, numerical_gradient(loss_at, a, h), tol, noise) for n, a, g in checked]
    else:
        rows = _directional(loss_at, [a for _, a, _ in checked], [g for _, _, g in checked], rng, h, tol, noise)
    if raise_on_fail and not all(r["passed"] for r in rows):
        raise GradcheckError(_fail_message(rows))
    return rows


def check_module(module, x, modes=("train", "eval"), dy=None, seed=0, h=1e-6, tol=1e-6, mode="auto",
                 max_elements=4096, raise_on_fail=True):
    """Gradient-check a Module: dx and the gradient of every parameter, in each mode.

    The module is deep-copied and cast to float64 (the original is not touched); each
    evaluation of the loss starts from the same copied state and the same random seed,
    so running statistics, memories and dropout masks do not drift between evaluations.
    A module whose backward is by design a multiple of the true gradient declares it as
    ``gradcheck_factor`` (GradientReversal: -scale); the numerical gradient is scaled by it.

    Two layers need a setting first, by design:

    - BatchRenorm treats r and d as constants in its backward (Ioffe 2017, Algorithm 1: a
      stop-gradient), which is the true gradient only where they are clipped. Check it with
      moving statistics far from the batch's, so that every r and d is clipped (as the
      BatchRenorm cases of :mod:`minibn.testing` do: running_mean -1000 and running_std 100
      against inputs of mean about 12 and std about 5).
    - A Memorized BN has no statistics to use in eval mode until its memory holds some: train
      it a step first, or check ``modes=("train",)``.

    Parameters
    ----------
    module : minibn.nn.Module
        The layer or network.
    x : ndarray
        Its input, of a floating dtype (checked as a float64 copy).
    modes : tuple of {"train", "eval"}, optional
        The modes to check, in order.
    dy, seed, h, tol, mode, max_elements, raise_on_fail
        As :func:`check_function`.

    Returns
    -------
    list of dict
        One row per checked tensor (or per random direction), with "tensor" (its name),
        "max_rel_error", "worst_index", "analytic" and "numeric" (the values there) and
        "passed" (max_rel_error < tol).
        Tensor names like "train/x", "eval/gamma".

    Raises
    ------
    TypeError
        If x is not a floating-point array.
    ValueError
        If a mode is not "train" or "eval", or ``mode`` is not one of its values.
    GradcheckError
        If the backward leaves a parameter without gradient, or (``raise_on_fail``) a
        check fails.
    """
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f":
        raise TypeError(f"check_module: x must be a floating-point array, got {getattr(x, 'dtype', type(x))}")
    xp = get_array_module(x)
    x = xp.array(x, dtype=numpy.float64, copy=True)
    base = copy.deepcopy(module).astype(numpy.float64)
    rows = []
    for m_mode in modes:
        if m_mode not in ("train", "eval"):
            raise ValueError(f"check_module: modes must be 'train' or 'eval', got {m_mode!r}")
        base.train(m_mode == "train")
        snapshot = copy.deepcopy(base)
        params = list(snapshot.named_parameters())
        names = ["x"] + [n for n, _ in params]
        tensors = [x] + [p.data for _, p in params]
        rng = _dy_rng(seed)

        def run(backprop_dy=None):
            live = copy.deepcopy(snapshot)
            backend.seed(seed)
            y = live(x)
            if backprop_dy is None:
                return y, None, None
            dx = live.backward(backprop_dy)
            return y, dx, dict(live.named_parameters())

        y, _, _ = run()
        this_dy = _random_like(y, rng) if dy is None else dy
        _, dx, live_params = run(this_dy)
        grads = [dx] + [live_params[n].grad for n in names[1:]]
        for n, g in zip(names, grads):
            if g is None:
                raise GradcheckError(f"{m_mode}/{n}: backward left no gradient")

        def loss_at(_=None):
            y, _, _ = run()
            return float((y * this_dy).sum())

        noise = _noise(y, this_dy, h)
        factor = getattr(snapshot, "gradcheck_factor", 1.0)
        if factor != 1.0:
            grads = [g / factor for g in grads]
        if _want_elementwise(mode, tensors, max_elements):
            rows += [_row(f"{m_mode}/{n}", g, numerical_gradient(loss_at, t, h), tol, noise)
                     for n, t, g in zip(names, tensors, grads)]
        else:
            rows += _directional(loss_at, tensors, grads, rng, h, tol, noise, name=f"{m_mode}/directional")
    if raise_on_fail and not all(r["passed"] for r in rows):
        raise GradcheckError(f"{type(module).__name__}: " + _fail_message(rows))
    return rows


# -- the library-wide table (`minibn gradcheck`) ------------------------------------------

def layer_cases():
    """Every row of the library-wide table (``minibn gradcheck``), from the layer specs of :mod:`minibn.testing`.

    Returns
    -------
    list of minibn.testing.LayerCase
        Each layer, each implementation installed here, each variant and input shape.
    """
    return testing.layer_cases()


def check_case(case, seed=0, raise_on_fail=False):
    """Gradient-check one :class:`minibn.testing.LayerCase` on the active backend.

    Where the layer treats something as a constant in its backward (the spec's
    ``frozen_for``: TransNorm's alpha), training mode is checked on the function with that
    constant held fixed, and eval mode on the layer as it is.

    Parameters
    ----------
    case : minibn.testing.LayerCase
        The layer, implementation, variant and shape.
    seed : int, optional
        Seeds the layer, the input and dy.
    raise_on_fail : bool, optional
        As :func:`check_function`.

    Returns
    -------
    list of dict
        One row per checked tensor (or per random direction), with "tensor" (its name),
        "max_rel_error", "worst_index", "analytic" and "numeric" (the values there) and
        "passed" (max_rel_error < tol).

    Raises
    ------
    GradcheckError
        If the backward leaves a parameter without gradient, or (``raise_on_fail``) a check
        fails.
    """
    backend.seed(seed)
    layer = case.make_layer()
    x = backend.to_active(case.make_input(numpy.random.default_rng(seed)))
    rows = []
    for m in case.modes:
        target = layer
        if m == "train" and case.spec.frozen_for is not None:
            target = case.spec.frozen_for(copy.deepcopy(layer), x)
        rows += check_module(target, x, modes=(m,), raise_on_fail=raise_on_fail, seed=seed)
    return rows


def gradcheck_all(seed=0):
    """Run :func:`check_case` on every case that runs on the active backend; a failed check is a row, not an error.

    Parameters
    ----------
    seed : int, optional
        As :func:`check_case`.

    Returns
    -------
    list of tuple
        (case, row) pairs, each row as :func:`check_function` describes.

    Raises
    ------
    GradcheckError
        If a layer's backward leaves a parameter without gradient.
    """
    results = []
    probe = backend.xp().zeros(1)
    for case in layer_cases():
        if case.impl is not None:
            if case.impl not in dispatch.available(case.spec.op, probe):
                continue  # e.g. the fused CPU loops on the CuPy backend
        for row in check_case(case, seed):
            results.append((case, row))
    return results
