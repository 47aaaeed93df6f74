"""Out-of-range labels: a clear ValueError for host labels (nn.SoftmaxCrossEntropy); on the GPU,
where reading the labels back would make every step wait for the device and CuPy wraps
out-of-range indices around (label 5 of 4 classes would be class 1), a NaN loss and a NaN in the
gradient, with no sync (tests/strict_device.py). The functional form gives NaN on every device."""

import numpy as np
import pytest

from minibn import functional as F
from minibn import nn
from tests import strict_device as sd

LOGITS = np.random.default_rng(0).standard_normal((3, 4))


def test_host_labels_out_of_range_raise_a_clear_error():
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 4\), got \[-1, 5\] at rows \[1, 2\]"):
        nn.SoftmaxCrossEntropy()(LOGITS, np.array([0, 5, -1]))


@pytest.mark.parametrize("bad", [4, 5, -1, -4, 2**40])
def test_the_function_gives_nan_for_an_out_of_range_label(bad):
    labels = np.array([0, bad, 1])
    loss, cache = F.softmax_cross_entropy_forward(LOGITS, labels)  # not an IndexError on the host either
    assert np.isnan(loss)
    d = F.softmax_cross_entropy_backward(cache)
    assert np.isnan(d[1]).sum() == 1 and np.isfinite(d[[0, 2]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_good_labels_are_unchanged(dtype):
    logits, labels = LOGITS.astype(dtype), np.array([3, 0, 2], np.uint8)
    loss, cache = F.softmax_cross_entropy_forward(logits, labels)
    p = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, -np.log(p[[0, 1, 2], labels]).mean(), rtol=1e-6)
    d = F.softmax_cross_entropy_backward(cache, 2.0)
    assert d.dtype == dtype
    np.testing.assert_allclose(d, 2 * (p - np.eye(4)[labels]) / 3, rtol=1e-5, atol=1e-7)


@pytest.fixture
def device():
    with sd.installed() as counter:
        yield counter


def test_device_labels_out_of_range_give_nan_without_a_sync(device):
    loss_fn = nn.SoftmaxCrossEntropy()
    logits, labels = sd.on_device(LOGITS.astype(np.float32)), sd.on_device(np.array([0, 5, 1]))
    with device.watch() as seen:
        loss = loss_fn(logits, labels)
        d = loss_fn.backward()
    assert seen.total() == 0, seen.places()
    assert np.isnan(sd.host(loss)) and np.isnan(sd.host(d)[1]).any() and np.isfinite(sd.host(d)[[0, 2]]).all()
    good = loss_fn(logits, sd.on_device(np.array([0, 1, 1])))
    np.testing.assert_allclose(sd.host(good), nn.SoftmaxCrossEntropy()(LOGITS.astype(np.float32), np.array([0, 1, 1])))
