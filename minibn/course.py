"""Checkers for the course's graded exercises.

Each checker takes the student's function, runs it on inputs it draws itself (offsets,
edge cases, float64) against minibn's reference implementation, and either prints "all
checks passed" and returns None (nbgrader scores a graded cell by its output) or raises
:class:`ExerciseError` saying what differs (which output, the worst index, the expected
and the actual value) and, where the wrong answer matches a typical mistake, which one.
A checker never trusts the student's own test: backward passes are also gradient-checked
in float64 with a *random* upstream gradient.

The exercises and the signatures the checkers expect (x is (N, C) unless said otherwise):

================================  ==================================================================
``check_batchnorm_forward``       ``f(x, gamma, beta, eps) -> y``                  (Algorithm 1)
``check_batchnorm_backward``      ``f(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``  (chain rule or closed form)
``check_inference_transform``     ``f(x, gamma, beta, running_mean, running_var, eps) -> y``  (Alg. 2)
``check_fold``                    ``f(W, b, gamma, beta, running_mean, running_var, eps) -> (W', b')``
``check_running_stats``           ``f(running_mean, running_var, mu_B, var_B, m, momentum) -> (mean, var)``
``check_layernorm_forward``       ``f(x, gamma, beta, eps) -> y``, x (N, D), statistics per sample
``check_groupnorm_forward``       ``f(x, gamma, beta, num_groups, eps) -> y``, x (N, C, H, W)
``check_renorm_r_d``              ``f(mu_B, sigma_B, running_mean, running_std, r_max, d_max) -> (r, d)``
``check_pooled_statistics``       ``f(means, variances, counts, weights) -> (mu, var)``  (MBN, Eq. 5-6)
``check_merge_moments``           ``f(n_a, mean_a, m2_a, n_b, mean_b, m2_b) -> (n, mean, m2)``  (SyncBN)
``check_iit``                     ``f(gamma, beta, mean_base, var_base, mean_adapt, var_adapt, eps)``
                                  ``-> (gamma_hat, beta_hat)``
``check_numerical_gradient``      ``f(fun, x, h) -> gradient`` (central differences)
``check_gradient_checker``        ``f(forward, backward, x) -> max relative error``
``check_activation_percentiles``  ``f(h, percentiles) -> (P, C)``: each unit's percentiles (Fig. 1)
``check_init_std``                ``f(shape, rule) -> std``: Xavier / He for a weight (out, in[, kh, kw])
``check_softmax``                 ``f(x) -> softmax of each row``, stable, on NumPy and CuPy (``xp``)
================================  ==================================================================
"""

from __future__ import annotations

import functools

import numpy as np

from . import functional as F

__all__ = ["ExerciseError", "check_batchnorm_forward", "check_batchnorm_backward", "check_inference_transform",
           "check_fold", "check_running_stats", "check_layernorm_forward", "check_groupnorm_forward",
           "check_renorm_r_d", "check_pooled_statistics", "check_merge_moments", "check_iit",
           "check_numerical_gradient", "check_gradient_checker", "check_activation_percentiles", "check_init_std",
           "check_softmax"]


class ExerciseError(AssertionError):
    """The student's function gives a wrong answer; the message says where (which output, the
    worst index, the expected and the actual value) and, when it can, why (a likely mistake).
    A subclass of AssertionError, so that nbgrader and pytest count it as a failed check."""


def _student(check):
    """A checker as a student meets it.

    * The student's function is called through a wrapper that turns a result of None into an
      :class:`ExerciseError` naming the likely mistake, a missing ``return`` (without it, None
      became "has shape ()" or a bare TypeError, depending on the checker).
    * A stub not yet replaced (NotImplementedError) is said in one line.
    * A verdict (ExerciseError) is raised again from here, without the checker's own frames: in
      Jupyter the traceback is then the student's cell and the message, not a page of the
      checker's code.
    """
    default = check.__name__.removeprefix("check_")

    @functools.wraps(check)
    def checker(f, *args, **kwargs):
        exercise = kwargs.get("exercise", default)

        @functools.wraps(f)  # (keeps f's source readable: check_softmax reads it)
        def called(*a, **k):
            out = f(*a, **k)
            if out is None:
                raise ExerciseError(f"{exercise}: the function returned None.\n  Likely mistake: a missing "
                                    f"return statement.")
            return out

        try:
            return check(called, *args, **kwargs)
        except ExerciseError as e:
            raise ExerciseError(str(e)) from None
        except NotImplementedError:
            raise ExerciseError(f"{exercise}: not written yet (the function still raises NotImplementedError: "
                                f"replace the stub's `raise NotImplementedError()` with your code)") from None

    return checker


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _as64(a):
    return np.asarray(a, dtype=np.float64)


def _compare(exercise, what, got, expected, mistakes=(), rtol=1e-7, atol=1e-9):
    """ExerciseError unless got == expected (to the tolerance); ``mistakes`` are (label, the
    value that mistake gives): a match names the mistake."""
    if got is None:
        raise ExerciseError(f"{exercise}: {what}: got None, expected an array of shape {np.shape(expected)}"
                            f".\n  Likely mistake: a missing return statement.")
    try:
        got = _as64(got)
    except (TypeError, ValueError) as e:
        raise ExerciseError(f"{exercise}: {what} is not an array of numbers ({e})") from None
    expected = _as64(expected)
    hint = ""
    for label, value in mistakes:
        value = _as64(value)
        if value.shape == got.shape and np.allclose(got, value, rtol=1e-6, atol=1e-8, equal_nan=True):
            hint = f"\n  Likely mistake: {label}."
            break
    if got.shape != expected.shape:
        if got.shape == expected.shape[::-1]:
            hint = hint or "\n  Likely mistake: a transposed axis (the statistics are per column, over the rows)."
        raise ExerciseError(f"{exercise}: {what} has shape {got.shape}, expected {expected.shape}.{hint}")
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol * max(1.0, float(np.abs(expected).max(initial=0))))
    if bad.any():
        err = np.where(bad, np.abs(got - expected), -1.0)
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        raise ExerciseError(f"{exercise}: {what} differs from the reference at {int(bad.sum())} of {bad.size} "
                            f"entries; worst at index {tuple(int(i) for i in worst)}: expected "
                            f"{expected[worst]:.10g}, got {got[worst]:.10g}.{hint}")


def _cases(seed=0):
    """(label, x, gamma, beta, eps): offsets, a large mean with a small std, two rows, one channel."""
    r = np.random.default_rng(seed)
    return [("x = 5 * randn + 12, (8, 5)", 5 * r.standard_normal((8, 5)) + 12, r.uniform(0.5, 2, 5),
             r.standard_normal(5), 1e-5),
            ("large mean, small std, (16, 3)", 1000 + 0.01 * r.standard_normal((16, 3)), r.uniform(0.5, 2, 3),
             r.standard_normal(3), 1e-5),
            ("two rows, (2, 4), eps = 0.1", 3 * r.standard_normal((2, 4)) - 1, r.uniform(0.5, 2, 4),
             r.standard_normal(4), 0.1),
            ("one channel, (7, 1)", 2 * r.standard_normal((7, 1)) + 4, np.array([1.5]), np.array([-0.5]), 1e-5)]


def _passed(name):
    # Print the verdict and return nothing: nbgrader reads a graded cell's output as its score,
    # so a returned True would show as `Out: True` and make nbgrader warn.
    print(f"{name}: all checks passed")


# -- BN forward and backward ------------------------------------------------------------------

@_student
def check_batchnorm_forward(f):
    """Algorithm 1 of Ioffe & Szegedy (2015) in training mode: ``f(x, gamma, beta, eps) -> y``.

    Computes the reference :func:`minibn.functional.batch_norm_forward` on four cases
    (an offset input, a large mean with a small std, two rows, one channel) and compares.

    Parameters
    ----------
    f : callable
        The student's function; x (N, C) float64, gamma and beta (C,), eps a float. It returns y
        (N, C) (or a tuple whose first element is y).

    Returns
    -------
    None
        After printing "batchnorm_forward: all checks passed".

    Raises
    ------
    ExerciseError
        If y differs (worst index, expected and actual value), with the likely mistake: the
        unbiased variance, eps outside the root, no root, gamma and beta swapped, the wrong
        axis, no affine transform. What ``f`` raises (the stub's NotImplementedError)
        propagates.
    """
    name = "batchnorm_forward"
    for label, x, g, b, eps in _cases():
        expected = F.batch_norm_forward(x, g, b, eps)[0]
        mu, var = x.mean(0), x.var(0)
        mistakes = [("the unbiased variance (divide by m - 1): normalization uses the biased one, 1/m",
                     g * (x - mu) / np.sqrt(x.var(0, ddof=1) + eps) + b),
                    ("eps outside the square root (the normalization is x_hat = (x - mu) / sqrt(var + eps))",
                     g * (x - mu) / (np.sqrt(var) + eps) + b),
                    ("no square root: divide by the standard deviation sqrt(var + eps), not the variance",
                     g * (x - mu) / (var + eps) + b),
                    ("gamma and beta swapped", b * (x - mu) / np.sqrt(var + eps) + g),
                    ("statistics over the wrong axis: BN averages each channel (column) over the batch (rows)",
                     g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps) + b),
                    ("gamma and beta not applied (y = x_hat)", (x - mu) / np.sqrt(var + eps))]
        _compare(name, f"y for {label}", _first(f(x.copy(), g.copy(), b.copy(), eps)), expected, mistakes)
    return _passed(name)


def _random_dy(shape, seed=11):
    return np.random.default_rng([seed, 0x6AD]).standard_normal(shape)


@_student
def check_batchnorm_backward(f, exercise="batchnorm_backward"):
    """BN's backward (Sec. 3, the chain rule or the closed form): ``f(dy, x, gamma, eps) ->
    (dx, dgamma, dbeta)``.

    Compares with :func:`minibn.functional.batch_norm_backward` on the four cases of
    :func:`check_batchnorm_forward`, each with a random dy, then gradient-checks ``f`` by
    central differences in float64 with a random upstream gradient.

    Parameters
    ----------
    f : callable
        The student's function; dy and x (N, C) float64, gamma (C,), eps a float. It returns dx
        (N, C), dgamma (C,) and dbeta (C,).
    exercise : str, optional
        The name the messages use (one checker serves both exercises of notebook 2).

    Returns
    -------
    None
        After printing "<exercise>: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 3-tuple; a gradient differs (with the likely mistake: the path through the mean or
        the variance missing, gamma missing, dgamma from x, dbeta as a mean); or the
        finite-difference check fails.
    """
    from .gradcheck import check_function
    for label, x, g, b, eps in _cases():
        dy = _random_dy(x.shape)
        y, cache = F.batch_norm_forward(x, g, b, eps)
        dx_ref, dg_ref, db_ref = F.batch_norm_backward(dy, cache)
        out = f(dy.copy(), x.copy(), g.copy(), eps)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise ExerciseError(f"{exercise}: return (dx, dgamma, dbeta), got {type(out).__name__}")
        dx, dg, db = out
        x_hat, inv = cache["x_hat"], 1 / np.sqrt(cache["var_B"] + eps)
        m, dxh = len(x), dy * g
        dvar = (dxh * (x - cache["mu_B"])).sum(0) * -0.5 * inv ** 3
        mistakes = [("the dl/dmu_B term is missing from dl/dx (the path through the mean)",
                     dxh * inv + dvar * 2 * (x - cache["mu_B"]) / m),
                    ("the path through the variance is missing (dx = gamma / std * (dy - mean(dy)))",
                     g * inv * (dy - dy.mean(0))),
                    ("gamma is missing from dl/dx_hat = dl/dy * gamma",
                     inv * (dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0)))]
        _compare(exercise, f"dx for {label}", dx, dx_ref, mistakes, rtol=1e-6)
        _compare(exercise, f"dgamma for {label}", dg, dg_ref,
                 [("dgamma uses x instead of x_hat: dl/dgamma = sum dl/dy * x_hat", (dy * x).sum(0))], rtol=1e-6)
        _compare(exercise, f"dbeta for {label}", db, db_ref, [("dbeta is the mean of dy, not its sum", dy.mean(0))],
                 rtol=1e-6)
    # the gradient check itself: finite differences of sum(y * dy), float64, random dy
    x, g, b, eps = _cases(1)[0][1:]
    rows = check_function(lambda x, g, b: F.batch_norm_forward(x, g, b, eps),
                          lambda dy, c: tuple(f(dy, c["x"], c["gamma"], eps)), {"x": x, "gamma": g, "beta": b},
                          raise_on_fail=False)
    bad = [r for r in rows if not r["passed"]]
    if bad:
        r = bad[0]
        raise ExerciseError(f"{exercise}: the finite-difference check fails for {r['tensor']}: max relative error "
                            f"{r['max_rel_error']:.2e} at {r['worst_index']} (analytic {r['analytic']:.8g}, "
                            f"numeric {r['numeric']:.8g})")
    return _passed(exercise)


# -- inference, folding, running statistics ---------------------------------------------------

@_student
def check_inference_transform(f):
    """Algorithm 2, line 11: ``f(x, gamma, beta, running_mean, running_var, eps) -> y``,
    the fixed affine transform of BN at inference.

    Parameters
    ----------
    f : callable
        The student's function; x (N, C) float64, the other arrays (C,), eps a float. It returns
        y (N, C) (or a tuple whose first element is y).

    Returns
    -------
    None
        After printing "inference_transform: all checks passed".

    Raises
    ------
    ExerciseError
        If y differs, with the likely mistake (eps outside the root, the batch statistics instead
        of the running ones, no root), or a batch of one fails.
    """
    name = "inference_transform"
    r = np.random.default_rng(3)
    for label, x, g, b, eps in _cases():
        mean, var = r.standard_normal(x.shape[1]) + 5, r.uniform(0.1, 3, x.shape[1])
        expected = F.batch_norm_inference_forward(x, g, b, mean, var, eps)[0]
        mistakes = [("eps outside the square root", g * (x - mean) / (np.sqrt(var) + eps) + b),
                    ("the batch statistics used instead of the running ones", F.batch_norm_forward(x, g, b, eps)[0]),
                    ("no square root: divide by sqrt(Var[x] + eps)", g * (x - mean) / (var + eps) + b)]
        _compare(name, f"y for {label}", _first(f(x.copy(), g.copy(), b.copy(), mean, var, eps)), expected, mistakes)
    x = np.random.default_rng(4).standard_normal((1, 3))
    _compare(name, "y for a batch of one", _first(f(x, np.ones(3), np.zeros(3), np.zeros(3), np.full(3, 4.0), 0.0)),
             x / 2)
    return _passed(name)


@_student
def check_fold(f):
    """BN folded into the Linear before it: ``f(W, b, gamma, beta, running_mean, running_var,
    eps) -> (W', b')`` such that x @ W'.T + b' equals BN(x @ W.T + b) in eval mode.

    Parameters
    ----------
    f : callable
        The student's function; W (out, in) = (4, 6) (PyTorch's layout), b and the BN arrays
        (out,), eps a float. It returns W' (out, in) and b' (out,).

    Returns
    -------
    None
        After printing "fold: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 2-tuple; W' or b' differs (the scale on the input axis, the old bias unscaled or
        dropped); or the folded layer disagrees with BN in eval.
    """
    name = "fold"
    r = np.random.default_rng(5)
    W, b = r.standard_normal((4, 6)), r.standard_normal(4)
    g, beta, mean, var = r.uniform(0.5, 2, 4), r.standard_normal(4), r.standard_normal(4), r.uniform(.5, 2, 4)
    eps = 1e-3
    out = f(W.copy(), b.copy(), g, beta, mean, var, eps)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseError(f"{name}: return (W_new, b_new), got {type(out).__name__}")
    scale = g / np.sqrt(var + eps)
    _compare(name, "W_new", out[0], W * scale[:, None],  # W is (4, 6): a wrong axis cannot match by chance
             [("the scale multiplies the input axis of W (columns) instead of the output axis (rows)",
               W * np.resize(scale, W.shape[1])[None, :])])
    _compare(name, "b_new", out[1], (b - mean) * scale + beta,
             [("the old bias is not scaled: b_new = scale * (b - mean) + beta", b - mean * scale + beta),
              ("the old bias is dropped", beta - mean * scale)])
    x = r.standard_normal((5, 6))
    bn_eval = F.batch_norm_inference_forward(x @ W.T + b, g, beta, mean, var, eps)[0]
    _compare(name, "x @ W_new.T + b_new against BN(x @ W.T + b)", x @ _as64(out[0]).T + _as64(out[1]), bn_eval)
    return _passed(name)


@_student
def check_running_stats(f):
    """PyTorch's moving averages of the batch statistics: ``f(running_mean, running_var,
    mu_B, var_B, m, momentum) -> (new_mean, new_var)``; momentum weighs the *new*
    statistic, and the running variance takes the unbiased batch variance var_B m / (m - 1).

    Parameters
    ----------
    f : callable
        The student's function; the four arrays (C,) float64, m the number of values per channel
        (an int > 1), momentum a float in (0, 1).

    Returns
    -------
    None
        After printing "running_stats: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 2-tuple, or a value differs (momentum reversed, the biased batch variance).
    """
    name = "running_stats"
    r = np.random.default_rng(6)
    rm, rv, mu, var = r.standard_normal(4), r.uniform(.5, 2, 4), r.standard_normal(4) + 3, r.uniform(.5, 2, 4)
    for m, mom in ((8, 0.1), (2, 0.3)):
        out = f(rm.copy(), rv.copy(), mu.copy(), var.copy(), m, mom)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ExerciseError(f"{name}: return (new_mean, new_var), got {type(out).__name__}")
        _compare(name, f"new_mean (m = {m}, momentum = {mom})", out[0], (1 - mom) * rm + mom * mu,
                 [("momentum reversed: it is the weight of the NEW statistic, running = (1 - momentum) running "
                   "+ momentum batch",
                   mom * rm + (1 - mom) * mu)])
        unbiased = var * m / (m - 1)
        _compare(name, f"new_var (m = {m}, momentum = {mom})", out[1], (1 - mom) * rv + mom * unbiased,
                 [("the biased batch variance: the running variance uses the unbiased one, var_B * m / (m - 1)",
                   (1 - mom) * rv + mom * var),
                  ("momentum reversed: it is the weight of the NEW statistic", mom * rv + (1 - mom) * unbiased)])
    return _passed(name)


# -- the relatives ------------------------------------------------------------------------------

@_student
def check_layernorm_forward(f):
    """LayerNorm (Ba et al. 2016): ``f(x, gamma, beta, eps) -> y`` for x (N, D), each
    sample normalized over its D features.

    Parameters
    ----------
    f : callable
        The student's function; x (N, D) float64, gamma and beta (D,), eps a float.

    Returns
    -------
    None
        After printing "layernorm_forward: all checks passed".

    Raises
    ------
    ExerciseError
        If y differs (statistics over the batch, the unbiased variance).
    """
    name = "layernorm_forward"
    for label, x, _, _, eps in _cases()[:3]:
        D = x.shape[1]
        r = np.random.default_rng(7)
        g, b = r.uniform(0.5, 2, D), r.standard_normal(D)
        expected = F.layer_norm_forward(x, g, b, 1, eps)[0]
        mistakes = [("statistics over the batch (that is BatchNorm): LayerNorm averages each row",
                     F.batch_norm_forward(x, g, b, eps)[0]),
                    ("the unbiased variance: normalization uses the biased one",
                     g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + eps) + b)]
        _compare(name, f"y for {label}", _first(f(x.copy(), g, b, eps)), expected, mistakes)
    return _passed(name)


@_student
def check_groupnorm_forward(f):
    """GroupNorm (Wu & He 2018): ``f(x, gamma, beta, num_groups, eps) -> y`` for x
    (N, C, H, W): each sample's groups of C / G consecutive channels, normalized over the
    channels and positions of the group.

    Parameters
    ----------
    f : callable
        The student's function; x (3, 6, 2, 3) float64, gamma and beta (C,), num_groups 2 and
        then 3, eps a float.

    Returns
    -------
    None
        After printing "groupnorm_forward: all checks passed".

    Raises
    ------
    ExerciseError
        If y differs (strided groups, one channel per group, statistics over the batch as well).
    """
    name = "groupnorm_forward"
    r = np.random.default_rng(8)
    x = r.standard_normal((3, 6, 2, 3)) * np.arange(1, 7).reshape(1, 6, 1, 1) + 4
    g, b = r.uniform(0.5, 2, 6), r.standard_normal(6)
    for G in (2, 3):
        expected = F.group_norm_forward(x, g, b, G, 1e-5)[0]
        perm = np.argsort(np.arange(6) % G, kind="stable")  # channel c in group c % G: strided groups
        strided = np.empty_like(x)
        strided[:, perm] = F.group_norm_forward(x[:, perm], g[perm], b[perm], G, 1e-5)[0]
        mistakes = [("groups of strided channels (c % G): a group is C / G *consecutive* channels", strided),
                    ("one channel per group (that is InstanceNorm)", F.instance_norm_forward(x, g, b, 1e-5)[0]),
                    ("statistics over the batch as well (BatchNorm-like)", F.batch_norm_forward(x, g, b, 1e-5)[0])]
        _compare(name, f"y with {G} groups", _first(f(x.copy(), g, b, G, 1e-5)), expected, mistakes)
    return _passed(name)


# -- Batch Renormalization, Memorized BN, IIT ---------------------------------------------------

@_student
def check_renorm_r_d(f):
    """Batch Renormalization's corrections (Ioffe 2017): ``f(mu_B, sigma_B, running_mean,
    running_std, r_max, d_max) -> (r, d)`` with r = clip(sigma_B / sigma, 1/r_max, r_max)
    and d = clip((mu_B - mu) / sigma, -d_max, d_max).

    Parameters
    ----------
    f : callable
        The student's function; the four arrays (C,) float64, r_max >= 1 and d_max >= 0 floats.

    Returns
    -------
    None
        After printing "renorm_r_d: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 2-tuple, or r or d differs (unclipped, inverted, clipped to [0, r_max], d not
        divided by sigma).
    """
    name = "renorm_r_d"
    r = np.random.default_rng(9)
    mu_B, sigma_B = r.standard_normal(6) * 3, r.uniform(0.2, 5, 6)
    mu, sigma = r.standard_normal(6), r.uniform(0.5, 2, 6)
    for r_max, d_max in ((3.0, 5.0), (1.5, 0.5), (1.0, 0.0)):
        out = f(mu_B.copy(), sigma_B.copy(), mu.copy(), sigma.copy(), r_max, d_max)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ExerciseError(f"{name}: return (r, d), got {type(out).__name__}")
        _compare(name, f"r (r_max = {r_max})", out[0], np.clip(sigma_B / sigma, 1 / r_max, r_max),
                 [("r is not clipped to [1/r_max, r_max]", sigma_B / sigma),
                  ("r inverted: r = sigma_B / sigma", np.clip(sigma / sigma_B, 1 / r_max, r_max)),
                  ("r clipped to [0, r_max] instead of [1/r_max, r_max]", np.clip(sigma_B / sigma, 0, r_max))])
        _compare(name, f"d (d_max = {d_max})", out[1], np.clip((mu_B - mu) / sigma, -d_max, d_max),
                 [("d is not clipped to [-d_max, d_max]", (mu_B - mu) / sigma),
                  ("d is not divided by the moving sigma", np.clip(mu_B - mu, -d_max, d_max))])
    return _passed(name)


@_student
def check_pooled_statistics(f):
    """Memorized BN's pooled statistics (Guo et al. 2018, Eq. 5-6): the mean and variance of
    all the values of B batches, batch i's values weighted weights[i].

    Parameters
    ----------
    f : callable
        The student's function ``f(means (B, C), variances (B, C), counts (B,), weights (B,)) ->
        (mu, var)``, each (C,).

    Returns
    -------
    None
        After printing "pooled_statistics: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 2-tuple, or mu or var differs (means not weighted by their counts, the spread of
        the batch means missing from var).
    """
    name = "pooled_statistics"
    r = np.random.default_rng(10)
    sizes, weights = np.array([5, 9, 4, 6]), np.array([0.3, 0.6, 0.8, 1.0])
    batches = [r.standard_normal((n, 3)) * (i + 1) + 2 * i for i, n in enumerate(sizes)]
    means = np.array([x.mean(0) for x in batches])
    variances = np.array([x.var(0) for x in batches])
    out = f(means.copy(), variances.copy(), sizes.astype(float), weights.copy())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseError(f"{name}: return (mu, var), got {type(out).__name__}")
    mu, var = F.pooled_statistics(means, variances, sizes.astype(float), weights)
    w = (weights * sizes)[:, None]
    _compare(name, "mu", out[0], mu, [("the batch means are not weighted by their counts",
                                        (weights[:, None] * means).sum(0) / weights.sum())])
    _compare(name, "var", out[1], var,
             [("the spread of the batch means is missing: var = sum w (var_i + (mu_i - mu)^2) / sum w",
               (w * variances).sum(0) / w.sum())])
    return _passed(name)


@_student
def check_merge_moments(f):
    """Synchronized BN's merge of two groups' moments (Chan et al.'s pairwise update):
    ``f(n_a, mean_a, m2_a, n_b, mean_b, m2_b) -> (n, mean, m2)``.

    Counts are scalars; means and m2 (sums of squared deviations) are (C,). Checked on data
    with a large mean (1e6) and a small spread, where E[x^2] - E[x]^2 loses the variance.

    Parameters
    ----------
    f : callable
        The student's function.

    Returns
    -------
    None
        After printing "merge_moments: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 3-tuple, or n, mean or m2 differs (unweighted means, the between-means term
        missing, cancellation).
    """
    name = "merge_moments"
    r = np.random.default_rng(11)
    for label, offset, (na, nb) in (("mean 3, 5 + 9 values", 3.0, (5, 9)), ("mean 1e6, 7 + 2 values", 1e6, (7, 2)),
                                    ("one value + 6", -2.0, (1, 6))):
        a, b = r.standard_normal((na, 4)) * 2 + offset, r.standard_normal((nb, 4)) + offset + 1
        both = np.concatenate([a, b])
        moments = [(len(v), v.mean(0), ((v - v.mean(0)) ** 2).sum(0)) for v in (a, b)]
        out = f(*moments[0], *moments[1])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise ExerciseError(f"{name} ({label}): return (n, mean, m2), got {type(out).__name__}")
        _compare(f"{name} ({label})", "n", out[0], float(len(both)))
        _compare(f"{name} ({label})", "mean", out[1], both.mean(0),
                 [("the means are averaged without weighting by the counts", (a.mean(0) + b.mean(0)) / 2)])
        wrong_m2 = moments[0][2] + moments[1][2]
        _compare(f"{name} ({label})", "m2", out[2], ((both - both.mean(0)) ** 2).sum(0),
                 [("the term for the distance between the two means is missing: "
                   "m2 = m2_a + m2_b + delta^2 n_a n_b / n", wrong_m2)], rtol=1e-6)
    return _passed(name)


@_student
def check_iit(f):
    """The inference-invariant transformation (Suzuki et al. 2020, Eq. 4-5): ``f(gamma, beta,
    mean_base, var_base, mean_adapt, var_adapt, eps) -> (gamma_hat, beta_hat)`` such that
    BN's inference output is unchanged when its statistics move to the adaptation data.

    Parameters
    ----------
    f : callable
        The student's function; the six arrays (C,) float64, eps a float.

    Returns
    -------
    None
        After printing "iit: all checks passed".

    Raises
    ------
    ExerciseError
        If f does not return a 2-tuple; gamma_hat or beta_hat differs (the ratio inverted, the factor gamma /
        sigma_base missing, the means subtracted the other way); or the inference output
        changes.
    """
    name = "iit"
    r = np.random.default_rng(12)
    g, b = r.uniform(0.5, 2, 5), r.standard_normal(5)
    mb_, vb, ma, va = r.standard_normal(5), r.uniform(.5, 2, 5), r.standard_normal(5) + 1, r.uniform(.2, 4, 5)
    eps = 1e-3
    out = f(g.copy(), b.copy(), mb_, vb, ma, va, eps)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseError(f"{name}: return (gamma_hat, beta_hat), got {type(out).__name__}")
    sb, sa = np.sqrt(vb + eps), np.sqrt(va + eps)
    _compare(name, "gamma_hat", out[0], g * sa / sb,
             [("the ratio inverted: gamma_hat = gamma * sigma_adapt / sigma_base", g * sb / sa)])
    _compare(name, "beta_hat", out[1], g * (ma - mb_) / sb + b,
             [("beta_hat without the factor gamma / sigma_base", (ma - mb_) + b),
              ("the means subtracted the other way", g * (mb_ - ma) / sb + b)])
    x = r.standard_normal((6, 5)) * 2 + 1
    before = F.batch_norm_inference_forward(x, g, b, mb_, vb, eps)[0]
    after = F.batch_norm_inference_forward(x, _as64(out[0]), _as64(out[1]), ma, va, eps)[0]
    _compare(name, "the inference output after the transformation (it must not change)", after, before)
    return _passed(name)


# -- finite differences --------------------------------------------------------------------------

@_student
def check_numerical_gradient(f):
    """Central differences: ``f(fun, x, h) -> gradient`` of a scalar ``fun(x)``,
    (fun(x + h e_i) - fun(x - h e_i)) / 2h for each entry i, leaving x as it was.

    Parameters
    ----------
    f : callable
        The student's function; fun maps an array to a float, x (3, 4) float64, h 1e-5.

    Returns
    -------
    None
        After printing "numerical_gradient: all checks passed".

    Raises
    ------
    ExerciseError
        If x was changed by the call, or the gradient differs (a one-sided difference is named).
    """
    name = "numerical_gradient"
    from .gradcheck import numerical_gradient
    r = np.random.default_rng(13)
    x = r.standard_normal((3, 4))
    fun = lambda v: float((np.sin(v) * v ** 2).sum())  # noqa: E731
    keep = x.copy()
    got = f(fun, x, 1e-5)
    if not np.array_equal(x, keep):
        raise ExerciseError(f"{name}: x was changed by the call: restore each entry after perturbing it")
    forward = np.zeros_like(x)
    for i in range(x.size):
        xp = x.copy().reshape(-1)
        xp[i] += 1e-5
        forward.reshape(-1)[i] = (fun(xp.reshape(x.shape)) - fun(x)) / 1e-5
    _compare(name, "the gradient of sum(sin(x) x^2)", got, numerical_gradient(fun, x.copy(), 1e-5),
             [("a one-sided difference (f(x + h) - f(x)) / h: use (f(x + h) - f(x - h)) / 2h", forward)], rtol=1e-8)
    return _passed(name)


@_student
def check_gradient_checker(f):
    """The student's gradient checker: ``f(forward, backward, x) -> max relative error`` for
    ``forward(x) -> (y, cache)`` and ``backward(dy, cache) -> dx``. It must pass a correct
    backward (error < 1e-5) and fail a wrong one (error > 1e-3): BN's backward without the
    path through the variance, which an all-ones upstream gradient cannot tell from the
    right one.

    Parameters
    ----------
    f : callable
        The student's function; x (6, 4) float64 with an offset.

    Returns
    -------
    None
        After printing "gradient_checker: all checks passed".

    Raises
    ------
    ExerciseError
        If the right backward fails, or the wrong one passes (the message names the all-ones
        upstream gradient, a one-sided difference, float32, a bad h).
    """
    name = "gradient_checker"
    x = 5 * np.random.default_rng(14).standard_normal((6, 4)) + 12
    g, b = np.linspace(0.5, 2, 4), np.linspace(-1, 1, 4)
    forward = lambda v: F.batch_norm_forward(v, g, b, 1e-5)  # noqa: E731

    def right(dy, cache):
        return F.batch_norm_backward(dy, cache)[0]

    def wrong(dy, cache):
        return g / np.sqrt(cache["var_B"] + 1e-5) * (dy - dy.mean(0))

    e_right = float(f(forward, right, x.copy()))
    if not e_right < 1e-5:
        raise ExerciseError(f"{name}: a correct backward gets a relative error of {e_right:.2e} (expected < 1e-5).\n"
                            f"  Likely mistakes: a one-sided difference, float32, an h far from 1e-6, or an all-ones "
                            f"upstream gradient dy (BN's true input gradient is then exactly zero, and the relative "
                            f"error of two numbers near zero is noise): use a random dy.")
    e_wrong = float(f(forward, wrong, x.copy()))
    if not e_wrong > 1e-3:
        raise ExerciseError(f"{name}: a WRONG backward (the path through the variance left out) gets a relative "
                            f"error of {e_wrong:.2e}, so your check passes it.\n  Likely mistake: an all-ones "
                            f"upstream gradient dy: with dy = 1, BN's input gradient is exactly zero, right or "
                            f"wrong. Use a random dy.")
    return _passed(name)


# -- notebook 03: the recorder of Fig. 1 -------------------------------------------------------------

@_student
def check_activation_percentiles(f):
    """The recorder behind Fig. 1(b, c) of Ioffe & Szegedy (2015): ``f(h, percentiles) ->
    (P, C)`` array whose row p holds the ``percentiles[p]``-th percentile (0-100) of each
    unit (column) of h (N, C) over the N probe images, interpolated linearly between the two
    nearest order statistics (NumPy's default, what :class:`minibn.train.ActivationRecorder`
    records).

    Parameters
    ----------
    f : callable
        The student's function, called with h (N, C) float64 and a tuple of P percentiles.

    Returns
    -------
    None
        After printing "activation_percentiles: all checks passed".

    Raises
    ------
    ExerciseError
        For a wrong shape or value, naming the likely mistake (fractions for percents, the wrong
        axis, one percentile over all units, no interpolation).
    """
    name = "activation_percentiles"
    r = np.random.default_rng(15)
    # 60 probe values per unit: q/100 * (60 - 1) falls between two order statistics for 15, 50, 85
    h = r.standard_normal((60, 4)) * np.array([0.5, 1.0, 2.0, 4.0]) + np.array([-1.0, 0.0, 0.5, 3.0])
    for qs in ((15, 50, 85), (0, 100), (5, 25, 50, 75, 95)):
        got = f(h.copy(), qs)
        try:
            got = _as64(got)
        except (TypeError, ValueError) as e:
            raise ExerciseError(f"{name}: the result for percentiles {qs} is not an array of numbers ({e})") from None
        expected = np.percentile(h, qs, axis=0)
        shapes = {(len(qs),): "one percentile over all the units together: each unit (column) has its own",
                  (h.shape[1], len(qs)): "the result transposed: return one row per percentile, (P, C)",
                  (len(qs), h.shape[0]): "percentiles over the wrong axis: each unit is a column, "
                                         "its values are the N rows (axis=0)"}
        if got.shape != expected.shape:
            hint = f"\n  Likely mistake: {shapes[got.shape]}." if got.shape in shapes else ""
            raise ExerciseError(f"{name}: the result for percentiles {qs} has shape {got.shape}, expected "
                                f"{expected.shape} (P percentiles, C units).{hint}")
        nearest = np.sort(h, axis=0)[np.floor(np.asarray(qs) / 100 * (len(h) - 1)).astype(int)]
        mistakes = [("the percentiles given as fractions (0.15): np.percentile takes percents (15), np.quantile "
                     "takes fractions", np.percentile(h, np.asarray(qs) / 100, axis=0)),
                    ("the order statistic at floor(q / 100 * (N - 1)), not interpolated between the two nearest "
                     "values (np.percentile's linear rule)", nearest)]
        mistakes += [(f"np.percentile's method={method!r}: not interpolated linearly between the two nearest "
                      f"values (the default, method='linear')", np.percentile(h, qs, axis=0, method=method))
                     for method in ("nearest", "higher", "midpoint")]
        _compare(name, f"the result for percentiles {qs}", got, expected, mistakes)
    return _passed(name)


# -- notebook 04: an initialisation rule -------------------------------------------------------------

def _fans(shape):
    """(fan_in, fan_out) of a weight (out, in) or (out, in, kh, kw): a conv's fans count its window."""
    window = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * window, shape[0] * window


@_student
def check_init_std(f):
    """``f(shape, rule) -> std``: the standard deviation of a normal initialisation of a
    weight of ``shape`` (out, in) for Linear or (out, in, kh, kw) for Conv2d (PyTorch's
    layouts), for ``rule`` "xavier" (Glorot & Bengio 2010: Var = 2 / (fan_in + fan_out)) or
    "he" (He et al. 2015: Var = 2 / fan_in, for ReLU); fan_in = in * kh * kw and fan_out =
    out * kh * kw.

    Parameters
    ----------
    f : callable
        The student's function, called with a tuple shape and a rule name.

    Returns
    -------
    None
        After printing "init_std: all checks passed".

    Raises
    ------
    ExerciseError
        For a wrong std, naming the likely mistake (the variance, fans swapped, the window left out,
        Xavier's uniform bound, LeCun's 1 / fan_in).
    """
    name = "init_std"
    for shape in ((100, 784), (32, 17), (16, 3, 5, 5), (8, 32, 3, 3)):
        fan_in, fan_out = _fans(shape)
        flat_in, flat_out = shape[1], shape[0]  # the window forgotten
        expected = {"xavier": np.sqrt(2.0 / (fan_in + fan_out)), "he": np.sqrt(2.0 / fan_in)}
        mistakes = {"xavier": [("the variance 2 / (fan_in + fan_out), not its square root", 2.0 / (fan_in + fan_out)),
                               ("Xavier's *uniform* bound sqrt(6 / (fan_in + fan_out)); the normal rule's std is "
                                "sqrt(2 / (fan_in + fan_out))", np.sqrt(6.0 / (fan_in + fan_out))),
                               ("the window left out of the fans: a conv's fan_in is in * kh * kw",
                                np.sqrt(2.0 / (flat_in + flat_out)))],
                    "he": [("the variance 2 / fan_in, not its square root", 2.0 / fan_in),
                           ("fan_in read from shape[0]: a weight is (out, in), so fan_in = shape[1] (* kh * kw)",
                            np.sqrt(2.0 / fan_out)),
                           ("LeCun's sqrt(1 / fan_in): He's factor 2 makes up for the half of its inputs ReLU "
                            "zeroes", np.sqrt(1.0 / fan_in)),
                           ("the window left out of fan_in: a conv's fan_in is in * kh * kw", np.sqrt(2.0 / flat_in))]}
        for rule in ("xavier", "he"):
            got = f(tuple(shape), rule)
            # the window-less mistakes equal the right answer for a Linear weight: skip them there
            hints = [(label, v) for label, v in mistakes[rule] if len(shape) > 2 or "window" not in label]
            _compare(name, f"the std for rule {rule!r}, shape {shape}", got, expected[rule], hints, rtol=1e-9)
    return _passed(name)


# -- notebook 08: a function for both backends ---------------------------------------------------------

@_student
def check_softmax(f):
    """``f(x) -> softmax of each row`` of x (N, K): exp(x - max) / sum exp(x - max) per row,
    stable for logits of 1000, in x's dtype, and on x's array module (``xp =
    minibn.backend.get_array_module(x)``, never ``np.`` on x): checked on NumPy arrays here,
    and on CuPy arrays too where CuPy and a CUDA device are available.

    Parameters
    ----------
    f : callable
        The student's function, called with one (N, K) array.

    Returns
    -------
    None
        After printing "softmax: all checks passed".

    Raises
    ------
    ExerciseError
        For a wrong value, dtype or array type, naming the likely mistake (no shift: overflow; the
        max over the whole array; the wrong axis; numpy on a CuPy array).
    """
    from . import backend
    name = "softmax"
    r = np.random.default_rng(16)

    def ref(x, axis=1, shift="row"):
        m = {"row": x.max(axis=1, keepdims=True), "none": 0.0, "all": x.max()}[shift]
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            e = np.exp(x - m)
            return e / e.sum(axis=axis, keepdims=True)

    cases = [("logits of N(0, 1), (5, 4)", r.standard_normal((5, 4))),
             ("large logits (about 1000), (3, 6)", 1000 + 20 * r.standard_normal((3, 6))),
             ("rows of very different size, (2, 3)", np.array([[-1000.0, -1001.0, -999.0], [1.0, 3.0, 2.0]]))]
    for label, x in cases:
        with np.errstate(all="ignore"):  # an overflow is reported below, with its likely mistake, not as a warning
            got = f(x.copy())
        # "all" before "none": on the third case both give nan in row 0, and a missing shift
        # has already failed on the second (exp(1000) = inf)
        mistakes = [("the max over the whole array, not per row: a row far below it underflows to 0 / 0",
                     ref(x, shift="all")),
                    ("no shift by the row's max: exp overflows to inf for large logits (inf / inf = nan)",
                     ref(x, shift="none")),
                    ("the sum over the wrong axis: each ROW (axis=1) sums to one", ref(x, axis=0, shift="none")),
                    ("the sum over the wrong axis: each ROW (axis=1) sums to one", ref(x, axis=0, shift="row"))]
        _compare(name, f"softmax for {label}", got, ref(x), mistakes)
    x32 = r.standard_normal((4, 3)).astype(np.float32)
    got = f(x32)
    if getattr(got, "dtype", None) != np.float32:
        raise ExerciseError(f"{name}: a float32 input gives dtype {getattr(got, 'dtype', type(got).__name__)}, "
                            f"expected float32 (compute in x's dtype: no float64 constants arrays)")
    if "cupy" in backend.available():
        import cupy
        x = r.standard_normal((4, 5))
        try:
            got = f(cupy.asarray(x))
        except TypeError as e:
            raise ExerciseError(f"{name}: a CuPy input raises TypeError ({e}).\n  Likely mistake: a NumPy function "
                                f"on a GPU array: write xp = get_array_module(x) and use xp.exp, xp.max") from None
        if not isinstance(got, cupy.ndarray):
            raise ExerciseError(f"{name}: a CuPy input gives a {type(got).__name__}, expected a cupy.ndarray "
                                f"(the result stays on the GPU: use xp = get_array_module(x))")
        _compare(name, "softmax of a CuPy array", cupy.asnumpy(got), ref(x))
    else:
        _uses_xp(f, name)
    return _passed(name)


def _uses_xp(f, name):
    """Without a GPU: read the function's source for NumPy called directly on the array."""
    import inspect
    import re
    try:
        source = inspect.getsource(f)
    except (OSError, TypeError):  # a lambda typed in a console, a builtin: nothing to read
        return
    body = "\n".join(line.split("#")[0] for line in source.splitlines())
    calls = re.findall(r"\b(?:np|numpy)\.(\w+)\(", body)
    if calls:
        raise ExerciseError(f"{name}: the function calls np.{calls[0]}(...) directly, expected xp.{calls[0]} with "
                            f"xp = get_array_module(x).\n  Likely mistake: NumPy on what may be a CuPy array "
                            f"(CuPy refuses np.asarray of a GPU array; this machine has no GPU to show it)")
