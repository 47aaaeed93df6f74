"""The course's checkers: they accept a right answer, and reject each typical mistake (a
mutant) with the hint that names it. A checker that cannot fail is a defect."""

import numpy as np
import pytest

from minibn import course

# -- right answers, written the way a student would -----------------------------------------------


def bn_forward(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def bn_backward_chain(dy, x, gamma, eps):
    m = x.shape[0]
    mu, var = x.mean(0), x.var(0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    dx_hat = dy * gamma
    dvar = (dx_hat * (x - mu) * -0.5 * (var + eps) ** -1.5).sum(0)
    dmu = (-dx_hat / np.sqrt(var + eps)).sum(0) + dvar * (-2 * (x - mu)).sum(0) / m
    dx = dx_hat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / m + dmu / m
    return dx, (dy * x_hat).sum(0), dy.sum(0)


def bn_backward_closed(dy, x, gamma, eps):
    m = x.shape[0]
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
    dbeta, dgamma = dy.sum(0), (dy * x_hat).sum(0)
    return gamma / np.sqrt(x.var(0) + eps) * (dy - dbeta / m - x_hat * dgamma / m), dgamma, dbeta


def my_gradcheck(forward, backward, x, h=1e-6, dy_ones=False):
    y, cache = forward(x)
    dy = np.ones_like(y) if dy_ones else np.random.default_rng(0).standard_normal(y.shape)
    dx = backward(dy, cache)
    num = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + h
        fp = (forward(x)[0] * dy).sum()
        x.flat[i] = old - h
        fm = (forward(x)[0] * dy).sum()
        x.flat[i] = old
        num.flat[i] = (fp - fm) / (2 * h)
    return float(np.max(np.abs(dx - num) / np.maximum(np.abs(dx) + np.abs(num), 1e-8)))


def central(fun, x, h):
    g = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + h
        fp = fun(x)
        x.flat[i] = old - h
        fm = fun(x)
        x.flat[i] = old
        g.flat[i] = (fp - fm) / (2 * h)
    return g


def groupnorm(x, gamma, beta, G, eps):
    N, C = x.shape[:2]
    xg = x.reshape(N, G, -1)
    y = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)).reshape(x.shape)
    return gamma.reshape(1, C, 1, 1) * y + beta.reshape(1, C, 1, 1)


def percentiles(h, qs):
    return np.percentile(h, qs, axis=0)


def init_std(shape, rule):
    window = int(np.prod(shape[2:]))
    fan_in, fan_out = shape[1] * window, shape[0] * window
    return np.sqrt(2.0 / (fan_in + fan_out)) if rule == "xavier" else np.sqrt(2.0 / fan_in)


def softmax(x):
    from minibn.backend import get_array_module
    xp = get_array_module(x)
    e = xp.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_with_numpy(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_global_max(x):
    from minibn.backend import get_array_module
    xp = get_array_module(x)
    e = xp.exp(x - x.max())
    return e / e.sum(axis=1, keepdims=True)


def softmax_unshifted(x):
    from minibn.backend import get_array_module
    xp = get_array_module(x)
    with np.errstate(over="ignore", invalid="ignore"):
        e = xp.exp(x)
        return e / e.sum(axis=1, keepdims=True)


def softmax_float64(x):
    from minibn.backend import get_array_module
    xp = get_array_module(x)
    e = xp.exp(x.astype("float64") - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


RIGHT = [
    (course.check_batchnorm_forward, bn_forward),
    (course.check_batchnorm_backward, bn_backward_chain),
    (course.check_batchnorm_backward, bn_backward_closed),
    (course.check_inference_transform, lambda x, g, b, m, v, eps: g * (x - m) / np.sqrt(v + eps) + b),
    (course.check_fold, lambda W, b, g, be, m, v, eps: (W * (g / np.sqrt(v + eps))[:, None],
                                                         (b - m) * g / np.sqrt(v + eps) + be)),
    (course.check_running_stats, lambda rm, rv, mu, var, m, mom: ((1 - mom) * rm + mom * mu,
                                                                  (1 - mom) * rv + mom * var * m / (m - 1))),
    (course.check_layernorm_forward, lambda x, g, b, eps: g * (x - x.mean(1, keepdims=True))
     / np.sqrt(x.var(1, keepdims=True) + eps) + b),
    (course.check_groupnorm_forward, groupnorm),
    (course.check_renorm_r_d, lambda mu_B, s_B, mu, s, r_max, d_max: (np.clip(s_B / s, 1 / r_max, r_max),
                                                                       np.clip((mu_B - mu) / s, -d_max, d_max))),
    (course.check_pooled_statistics, lambda M, V, n, w: (
        ((w * n)[:, None] * M).sum(0) / (w * n).sum(),
        ((w * n)[:, None] * (V + (M - ((w * n)[:, None] * M).sum(0) / (w * n).sum()) ** 2)).sum(0) / (w * n).sum())),
    (course.check_merge_moments, lambda na, ma, sa, nb, mb, sb: (
        na + nb, ma + (mb - ma) * nb / (na + nb), sa + sb + (mb - ma) ** 2 * na * nb / (na + nb))),
    (course.check_iit, lambda g, b, mb, vb, ma, va, eps: (g * np.sqrt(va + eps) / np.sqrt(vb + eps),
                                                          g * (ma - mb) / np.sqrt(vb + eps) + b)),
    (course.check_numerical_gradient, central),
    (course.check_gradient_checker, my_gradcheck),
    (course.check_activation_percentiles, percentiles),
    (course.check_init_std, init_std),
    (course.check_softmax, softmax),
]


@pytest.mark.parametrize("checker, answer", RIGHT, ids=[f"{c.__name__}-{a.__name__}" for c, a in RIGHT])
def test_a_right_answer_passes(checker, answer, capsys):
    assert checker(answer) is None  # a graded cell's output would be read as its score
    assert "all checks passed" in capsys.readouterr().out


# -- mutants: the typical mistakes, each with the hint it must get --------------------------------

def _naive_merge(na, ma, sa, nb, mb, sb):
    """The merge through sums of squares: E[x^2] - E[x]^2, which cancels at mean 1e6."""
    n = na + nb
    mean = (na * ma + nb * mb) / n
    sq = (sa + na * ma ** 2) + (sb + nb * mb ** 2)
    return n, mean, sq - n * mean ** 2


MUTANTS = [
    ("biased vs unbiased", course.check_batchnorm_forward,
     lambda x, g, b, eps: g * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + eps) + b, "unbiased variance"),
    ("eps outside the root", course.check_batchnorm_forward,
     lambda x, g, b, eps: g * (x - x.mean(0)) / (np.sqrt(x.var(0)) + eps) + b,
     "eps outside the square root (the normalization is x_hat = (x - mu) / sqrt(var + eps))"),
    ("transposed axis", course.check_batchnorm_forward,
     lambda x, g, b, eps: g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps) + b,
     "wrong axis"),
    ("missing dl/dmu_B", course.check_batchnorm_backward,
     lambda dy, x, g, eps: (lambda dxh, inv, m: (
         dxh * inv + (dxh * (x - x.mean(0))).sum(0) * -0.5 * inv ** 3 * 2 * (x - x.mean(0)) / m,
         (dy * (x - x.mean(0)) * inv).sum(0), dy.sum(0)))(dy * g, 1 / np.sqrt(x.var(0) + eps), len(x)),
     "dl/dmu_B term is missing"),
    ("missing variance path", course.check_batchnorm_backward,
     lambda dy, x, g, eps: (g / np.sqrt(x.var(0) + eps) * (dy - dy.mean(0)),
                            (dy * (x - x.mean(0)) / np.sqrt(x.var(0) + eps)).sum(0), dy.sum(0)),
     "path through the variance is missing"),
    ("dgamma with x", course.check_batchnorm_backward,
     lambda dy, x, g, eps: (bn_backward_closed(dy, x, g, eps)[0], (dy * x).sum(0), dy.sum(0)), "x instead of x_hat"),
    ("eps outside at inference", course.check_inference_transform,
     lambda x, g, b, m, v, eps: g * (x - m) / (np.sqrt(v) + eps) + b, "eps outside the square root"),
    ("fold on the wrong axis", course.check_fold,
     lambda W, b, g, be, m, v, eps: (W * np.resize(g / np.sqrt(v + eps), W.shape[1])[None, :],
                                     (b - m) * g / np.sqrt(v + eps) + be), "input axis of W"),
    ("momentum reversed", course.check_running_stats,
     lambda rm, rv, mu, var, m, mom: (mom * rm + (1 - mom) * mu, mom * rv + (1 - mom) * var * m / (m - 1)),
     "running = (1 - momentum) running + momentum batch"),
    ("biased running variance", course.check_running_stats,
     lambda rm, rv, mu, var, m, mom: ((1 - mom) * rm + mom * mu, (1 - mom) * rv + mom * var), "biased batch variance"),
    ("LayerNorm over the batch", course.check_layernorm_forward,
     lambda x, g, b, eps: g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b, "that is BatchNorm"),
    ("strided groups", course.check_groupnorm_forward,
     lambda x, g, b, G, eps: _strided(x, g, b, G, eps), "strided channels"),
    ("unclipped r", course.check_renorm_r_d,
     lambda mu_B, s_B, mu, s, r_max, d_max: (s_B / s, np.clip((mu_B - mu) / s, -d_max, d_max)), "r is not clipped"),
    ("d not divided by sigma", course.check_renorm_r_d,
     lambda mu_B, s_B, mu, s, r_max, d_max: (np.clip(s_B / s, 1 / r_max, r_max), np.clip(mu_B - mu, -d_max, d_max)),
     "not divided by the moving sigma"),
    ("pooled variance without the spread of the means", course.check_pooled_statistics,
     lambda M, V, n, w: (((w * n)[:, None] * M).sum(0) / (w * n).sum(), ((w * n)[:, None] * V).sum(0) / (w * n).sum()),
     "spread of the batch means is missing"),
    ("merged sums of squares without the between-means term", course.check_merge_moments,
     lambda na, ma, sa, nb, mb, sb: (na + nb, ma + (mb - ma) * nb / (na + nb), sa + sb), "distance between the two"),
    ("unweighted mean of the means", course.check_merge_moments,
     lambda na, ma, sa, nb, mb, sb: (na + nb, (ma + mb) / 2, sa + sb + (mb - ma) ** 2 * na * nb / (na + nb)),
     "without weighting by the counts"),
    ("E[x^2] - E[x]^2", course.check_merge_moments, _naive_merge, "differs"),
    ("IIT ratio inverted", course.check_iit,
     lambda g, b, mb, vb, ma, va, eps: (g * np.sqrt(vb + eps) / np.sqrt(va + eps),
                                        g * (ma - mb) / np.sqrt(vb + eps) + b),
     "ratio inverted"),
    ("one-sided difference", course.check_numerical_gradient,
     lambda fun, x, h: np.array([(fun(x + h * e.reshape(x.shape)) - fun(x)) / h for e in np.eye(x.size)])
     .reshape(x.shape), "one-sided difference"),
    ("all-ones dy in the student's own check", course.check_gradient_checker,
     lambda fw, bw, x: my_gradcheck(fw, bw, x, dy_ones=True), "all-ones upstream gradient"),
    ("percentiles as fractions", course.check_activation_percentiles,
     lambda h, qs: np.percentile(h, np.asarray(qs) / 100, axis=0), "given as fractions"),
    ("percentiles without interpolation", course.check_activation_percentiles,
     lambda h, qs: np.sort(h, 0)[(np.asarray(qs) * (len(h) - 1)) // 100], "not interpolated"),
    ("percentiles by the nearest value", course.check_activation_percentiles,
     lambda h, qs: np.percentile(h, qs, axis=0, method="nearest"), "method='nearest': not interpolated"),
    ("percentiles by the higher value", course.check_activation_percentiles,
     lambda h, qs: np.percentile(h, qs, axis=0, method="higher"), "method='higher': not interpolated"),
    ("None inside the returned pair", course.check_running_stats,
     lambda rm, rv, mu, var, m, mom: (None, (1 - mom) * rv + mom * var * m / (m - 1)),
     "got None, expected an array of shape (4,).\n  Likely mistake: a missing return statement"),
    ("percentiles over the rows", course.check_activation_percentiles,
     lambda h, qs: np.percentile(h, qs, axis=1), "wrong axis"),
    ("one percentile for all units", course.check_activation_percentiles,
     lambda h, qs: np.percentile(h, qs), "over all the units together"),
    ("percentiles transposed", course.check_activation_percentiles,
     lambda h, qs: np.percentile(h, qs, axis=0).T, "transposed"),
    ("He with fan_out", course.check_init_std,
     lambda shape, rule: init_std(shape, rule) if rule == "xavier" else np.sqrt(2.0 / shape[0]), "shape[0]"),
    ("the variance", course.check_init_std, lambda shape, rule: init_std(shape, rule) ** 2, "not its square root"),
    ("Xavier uniform bound", course.check_init_std,
     lambda shape, rule: init_std(shape, rule) * (np.sqrt(3) if rule == "xavier" else 1), "uniform* bound"),
    ("LeCun for He", course.check_init_std,
     lambda shape, rule: init_std(shape, rule) / (1 if rule == "xavier" else np.sqrt(2)), "LeCun"),
    ("conv window left out", course.check_init_std, lambda shape, rule: init_std(shape[:2], rule), "window left out"),
    ("softmax without the shift", course.check_softmax, softmax_unshifted, "no shift by the row's max"),
    ("softmax with the global max", course.check_softmax, softmax_global_max, "whole array"),
    ("softmax over the columns", course.check_softmax,
     lambda x: softmax(x.T).T, "wrong axis"),
    ("softmax in float64", course.check_softmax, softmax_float64, "dtype float64"),
]


def _strided(x, g, b, G, eps):
    """GroupNorm with channel c in group c % G (the mistake)."""
    perm = np.argsort(np.arange(x.shape[1]) % G, kind="stable")
    y = np.empty_like(x)
    y[:, perm] = groupnorm(x[:, perm], g[perm], b[perm], G, eps)
    return y


@pytest.mark.parametrize("label, checker, mutant, hint", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_typical_mistake_is_rejected_with_its_hint(label, checker, mutant, hint):
    with pytest.raises(course.ExerciseError) as e:
        checker(mutant)
    assert hint in str(e.value), str(e.value)
    assert "expected" in str(e.value) or "relative error" in str(e.value)


def test_a_message_names_the_output_the_index_and_both_values():
    with pytest.raises(course.ExerciseError, match=r"y for x = 5 \* randn \+ 12, \(8, 5\) differs .* worst at index "
                                                   r"\(\d+, \d+\): expected .*, got "):
        course.check_batchnorm_forward(lambda x, g, b, eps: bn_forward(x, g, b, eps) + 1e-3)


def test_numpy_called_directly_is_named_without_a_gpu(monkeypatch):
    from minibn import backend
    monkeypatch.setattr(backend, "available", lambda: ["numpy"])  # the GPU check replaced by reading the source
    with pytest.raises(course.ExerciseError, match=r"calls np.exp\(...\) directly, expected xp.exp"):
        course.check_softmax(softmax_with_numpy)


def test_a_missing_return_is_named_by_every_checker():
    """A function that returns None: one message for all checkers (it was "has shape ()" in
    some, a bare TypeError or "got NoneType" in others)."""
    for checker, _ in RIGHT:
        with pytest.raises(course.ExerciseError, match=r": the function returned None.\n  Likely mistake: a missing "
                                                       r"return statement"):
            checker(lambda *args: None)


def test_a_stub_fails_in_one_line():
    def stub(*args):
        raise NotImplementedError

    for checker, _ in RIGHT:
        with pytest.raises(course.ExerciseError, match=r": not written yet \(the function still raises "
                                                       r"NotImplementedError") as e:
            checker(stub)
        assert e.value.__suppress_context__


def test_a_verdict_comes_without_the_checkers_frames():
    """In Jupyter every frame of a traceback is shown with its code: the checker's internals (its
    list of likely mistakes) filled a screen above the one line that matters."""
    import traceback
    with pytest.raises(course.ExerciseError, match="eps outside the square root") as e:
        course.check_batchnorm_forward(lambda x, g, b, eps: g * (x - x.mean(0)) / (np.sqrt(x.var(0)) + eps) + b)
    frames = [f.name for f in traceback.extract_tb(e.value.__traceback__)]
    assert frames == ["test_a_verdict_comes_without_the_checkers_frames", "checker"], frames
    assert e.value.__suppress_context__
