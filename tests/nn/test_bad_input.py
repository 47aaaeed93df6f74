"""Bad input raises at the layer's boundary, naming the argument, expected and actual."""

import numpy as np
import pytest

from minibn import nn
from tests.conftest import on_active


def f32(*shape):
    return on_active(np.zeros(shape, np.float32) + 1.0)


@pytest.mark.parametrize(
    "layer, x, match",
    [
        (lambda: nn.Linear(4, 3), lambda: f32(2, 5), r"Linear: expected x of shape \(N, 4\).*got shape \(2, 5\)"),
        (lambda: nn.Linear(4, 3), lambda: f32(2, 4, 1), r"Linear: expected x of shape \(N, 4\).*got shape \(2, 4, 1\)"),
        (lambda: nn.Conv2d(3, 2, 3), lambda: f32(1, 2, 5, 5), r"Conv2d: expected x of shape \(N, 3, H, W\).*got"),
        (lambda: nn.Conv2d(3, 2, 3), lambda: f32(3, 5, 5), r"Conv2d: expected x of shape"),
        (lambda: nn.Conv2d(1, 1, 5), lambda: f32(1, 1, 3, 3), r"smaller than the kernel"),
        (lambda: nn.MaxPool2d(2), lambda: f32(2, 4), r"MaxPool2d: expected x of shape \(N, C, H, W\)"),
        (lambda: nn.BatchNorm1d(4), lambda: f32(5, 3), r"BatchNorm1d: expected x of shape \(N, 4\) or \(N, 4, L\)"),
        (lambda: nn.BatchNorm1d(4), lambda: f32(5, 4, 2, 2), r"BatchNorm1d: expected x .*got shape \(5, 4, 2, 2\)"),
        (lambda: nn.BatchNorm2d(4), lambda: f32(5, 4), r"BatchNorm2d: expected x of shape \(N, 4, H, W\)"),
        (lambda: nn.LayerNorm(4), lambda: f32(5, 3), r"LayerNorm: expected x of shape \(\*, 4\), got shape \(5, 3\)"),
        (lambda: nn.GroupNorm(2, 4), lambda: f32(5, 6, 2), r"GroupNorm: expected x of shape \(N, 4, \*\)"),
    ],
)
def test_wrong_shape(layer, x, match):
    with pytest.raises(ValueError, match=match):
        layer()(x())


@pytest.mark.parametrize("layer", [lambda: nn.Linear(4, 3), lambda: nn.BatchNorm1d(4), lambda: nn.Sigmoid(),
                                   lambda: nn.LayerNorm(4), lambda: nn.ReLU()])
def test_integer_input_is_a_type_error(layer):
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int64"):
        layer()(on_active(np.ones((3, 4), np.int64)))


def test_loss_checks_labels():
    loss = nn.SoftmaxCrossEntropy()
    logits = f32(4, 3)
    with pytest.raises(TypeError, match="labels must be an integer array"):
        loss(logits, on_active(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match=r"expected labels of shape \(4,\), got \(5,\)"):
        loss(logits, on_active(np.zeros(5, np.int64)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nn.Linear(0, 3), "in_features must be a positive integer"),
        (lambda: nn.BatchNorm1d(4, momentum=1.5), r"momentum must be in \[0.0, 1.0\]"),
        (lambda: nn.BatchNorm1d(4, backward="magic"), "backward must be one of"),
        (lambda: nn.GroupNorm(3, 4), r"num_channels \(4\) must be divisible by num_groups \(3\)"),
        (lambda: nn.Dropout(1.0), r"p must be in \[0.0, 1.0\)"),
        (lambda: nn.Conv2d(1, 1, 3, stride=0), "stride must be a positive integer"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
