"""The gradient checker itself: it passes correct layers and, just as important, fails wrong ones."""

import numpy as np
import pytest

from minibn import backend, nn
from minibn import functional as F
from minibn.gradcheck import GradcheckError, check_function, check_module, numerical_gradient, rel_error
from tests.helpers import on_active


def test_directional_check_on_a_large_shape(backend_name):
    x = on_active(5 * np.random.default_rng(0).standard_normal((64, 300)) + 12)
    rows = check_module(nn.BatchNorm1d(300), x, mode="auto")  # 64*300 + 600 elements: directional
    assert all("directional" in r["tensor"] for r in rows) and all(r["passed"] for r in rows)


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda v: float((v ** 3).sum()), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])  # restored


def test_rel_error():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([1.1])) == pytest.approx(0.1 / 2.1)


class _WrongBN(nn.BatchNorm1d):
    """dx without the x_hat * mean(dy * x_hat) term (the path through the variance):
    a classic wrong BN backward."""

    def __init__(self, C):
        super().__init__(C, impl="reference")  # its cache holds x_hat

    def backward(self, dy):
        c = self._cache
        dx = self.gamma.data / np.sqrt(c["var_B"] + c["eps"]) * (dy - dy.mean(0))
        self.gamma.accumulate((dy * c["x_hat"]).sum(0))
        self.beta.accumulate(dy.sum(0))
        return dx


def test_checker_catches_a_wrong_backward_and_names_tensor_index_and_values():
    x = 5 * np.random.default_rng(0).standard_normal((6, 4)) + 12
    with pytest.raises(GradcheckError, match=r"train/x: max rel error .* at index \(\d+, \d+\) \(analytic .*, numeric"):
        check_module(_WrongBN(4), x, modes=("train",))


def test_all_ones_dy_hides_the_wrong_backward():
    """Why dy must be random: with dy = 1 the true dx and dgamma of BN are exactly zero,
    and the wrong backward above also returns zero, so the check passes wrongly."""
    x = 5 * np.random.default_rng(0).standard_normal((6, 4)) + 12
    rows = check_module(_WrongBN(4), x, modes=("train",), dy=np.ones((6, 4)))
    assert all(r["passed"] for r in rows)
    with pytest.raises(GradcheckError):
        check_module(_WrongBN(4), x, modes=("train",))


def test_check_function_requires_float64():
    x = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match="must be float64"):
        check_function(F.relu_forward, lambda dy, c: (F.relu_backward(dy, c),), {"x": x})


def test_check_function_on_the_loss():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    rows = check_function(lambda z: F.softmax_cross_entropy_forward(z, labels),
                          lambda d, c: (F.softmax_cross_entropy_backward(c, d),), {"logits": logits},
                          dy=np.array(1.7))
    assert rows[0]["passed"]


def test_gradcheck_leaves_the_module_untouched():
    layer = nn.BatchNorm1d(3)
    check_module(layer, 5 * np.random.default_rng(0).standard_normal((4, 3)) + 2)
    assert layer.num_batches_tracked == 0 and layer.gamma.dtype == np.float32
    assert backend.asnumpy(layer.running_mean).tolist() == [0.0, 0.0, 0.0]
