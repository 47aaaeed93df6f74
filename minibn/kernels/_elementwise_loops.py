"""The CPU loops behind :mod:`minibn.kernels.fused_elementwise`, compiled by numba: ReLU,
the sigmoid, the softmax cross-entropy and the SGD update, each in one pass where NumPy
makes several.

Imported only when one of them first runs (see :mod:`numba_cpu`). The arrays are 1-d
views of C-contiguous arrays (the sigmoid's, the update's) or (N, K) rows (the loss's).

``error_model="numpy"``: a division by zero gives inf or NaN, as in NumPy, instead of
raising ZeroDivisionError. The check that Python's rule needs keeps LLVM from running
a loop's divisions 16 lanes at a time; with it off, the sigmoid's last pass is about 5
times faster. No division here can be by zero (1 + e with e >= 0).

No ``fastmath``: each value is rounded exactly as NumPy rounds it, so ReLU, the sigmoid
and the update give the reference's values bit for bit (the constants are passed in the
arrays' dtype, ``one``: a float64 literal would promote float32 arithmetic to float64).
"""

import numba
import numpy as np

_FLAGS = dict(nogil=True, cache=True, error_model="numpy")


@numba.njit(**_FLAGS)
def relu(x, y, one, zero):
    """y = x * (x > 0): x where x > 0, else x * 0 (-0 for a negative x, NaN for NaN), the
    values of :func:`minibn.functional.relu_forward` (x, y: 1-d, same length)."""
    for i in range(x.size):
        v = x[i]
        y[i] = v * (one if v > 0 else zero)


@numba.njit(**_FLAGS)
def relu_backward(dy, y, dx, one, zero):
    """dx = dy * (y > 0), which is dy * (x > 0): y > 0 exactly where x > 0 (all 1-d)."""
    for i in range(dy.size):
        dx[i] = dy[i] * (one if y[i] > 0 else zero)


@numba.njit(**_FLAGS)
def negative_abs(x, out):
    """out = -|x|, the exponent of the stable sigmoid (x, out: 1-d, same length)."""
    for i in range(x.size):
        out[i] = -abs(x[i])


@numba.njit(**_FLAGS)
def sigmoid_from_exp(x, e, y, one):
    """y = sigmoid(x) given e = exp(-|x|): 1 / (1 + e) where x >= 0, e / (1 + e) where x < 0,
    and x itself where x is NaN (-|NaN| flips a NaN's sign bit; the reference passes x's NaN
    through): the values of :func:`minibn.functional.sigmoid_forward`, bit for bit. e and y
    may be one array, but LLVM then runs the loop a value at a time."""
    for i in range(x.size):
        v, u = e[i], x[i]
        y[i] = u if u != u else (one if u >= 0 else v) / (one + v)


@numba.njit(**_FLAGS)
def sigmoid_backward(dy, y, dx, one):
    """dx = dy * (y * (1 - y)) (all 1-d, same length)."""
    for i in range(dy.size):
        v = y[i]
        dx[i] = dy[i] * (v * (one - v))


@numba.njit(**_FLAGS)
def softmax_cross_entropy(logits, labels, log_p):
    """log_p = log softmax(logits) row by row (max subtracted, float64 sums), and the sum over
    the rows of -log_p[n, labels[n]]: NaN when a label is outside [0, K).

    logits, log_p: (N, K); labels: (N,) integers. Returns the sum (float64)."""
    N, K = logits.shape
    total = 0.0
    for n in range(N):
        top = np.float64(logits[n, 0])
        for k in range(1, K):
            top = max(top, np.float64(logits[n, k]))
        s = 0.0
        for k in range(K):
            s += np.exp(np.float64(logits[n, k]) - top)
        log_sum = top + np.log(s)
        for k in range(K):
            log_p[n, k] = np.float64(logits[n, k]) - log_sum
        label = labels[n]
        if 0 <= label < K:
            total -= np.float64(logits[n, label]) - log_sum
        else:
            total = np.nan
    return total


@numba.njit(**_FLAGS)
def softmax_cross_entropy_backward(log_p, labels, scale, dlogits):
    """dlogits = (softmax - onehot(labels)) * scale, softmax = exp(log_p); a row whose label is
    outside [0, K) is NaN. log_p, dlogits: (N, K); scale: dloss / N."""
    N, K = log_p.shape
    for n in range(N):
        label = labels[n]
        bad = not (0 <= label < K)
        for k in range(K):
            g = np.exp(np.float64(log_p[n, k]))
            if k == label:
                g -= 1.0
            dlogits[n, k] = np.nan if bad else g * scale


@numba.njit(**_FLAGS)
def sgd_step(w, g, lr):
    """w -= lr * g, in one pass (w, g: 1-d, same length; lr in their dtype): the values of
    NumPy's ``w -= lr * g``."""
    for i in range(w.size):
        w[i] -= lr * g[i]
