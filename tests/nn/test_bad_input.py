"""Bad arguments raise at the boundary, naming the argument, expected and actual.

(Every registered layer's wrong-shape and wrong-dtype inputs are tested from its
registration: tests/test_registry.py.)"""

import numpy as np
import pytest

from minibn import nn
from tests.helpers import on_active


def f32(*shape):
    return on_active(np.zeros(shape, np.float32) + 1.0)


def test_momentum_and_eps_are_validated_on_assignment_too():
    bn = nn.BatchNorm1d(3)
    for bad in (5.0, "0.1", -0.1, True):
        with pytest.raises(ValueError, match="BatchNorm1d: momentum must be None or a number in"):
            bn.momentum = bad
    with pytest.raises(ValueError, match="BatchNorm1d: eps must be a number >= 0"):
        bn.eps = -1e-5
    assert bn.momentum == 0.1 and bn.eps == 1e-5


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
        (lambda: nn.BatchNorm1d(4, momentum=1.5), r"momentum must be None or a number in \[0, 1\]"),
        (lambda: nn.BatchNorm1d(4, backward="magic"), "backward must be one of"),
        (lambda: nn.GroupNorm(3, 4), r"num_channels \(4\) must be divisible by num_groups \(3\)"),
        (lambda: nn.Dropout(1.0), r"p must be in \[0.0, 1.0\)"),
        (lambda: nn.Conv2d(1, 1, 3, stride=0), "stride must be a positive integer"),
        # an integer dtype rounded the initial weights to zeros, and every update away, silently
        (lambda: nn.Linear(3, 3, dtype="int32"), "Linear: dtype must be a floating-point dtype .* got 'int32'"),
        (lambda: nn.Conv2d(1, 2, 3, dtype="int64"), "Conv2d: dtype must be a floating-point dtype"),
        (lambda: nn.BatchNorm1d(3, dtype="int64"), "BatchNorm1d: dtype must be a floating-point dtype"),
        (lambda: nn.GroupNorm(1, 4, dtype="no such dtype"), "GroupNorm: dtype must be a floating-point dtype"),
        # a bad kernel_size surfaced as ZeroDivisionError or an unpacking error; a pool's as its stride's
        (lambda: nn.Conv2d(1, 1, 0), "Conv2d: kernel_size must be a positive integer or a pair of them, got 0"),
        (lambda: nn.Conv2d(1, 1, (3, 0)), r"Conv2d: kernel_size .* got \(3, 0\)"),
        (lambda: nn.Conv2d(1, 1, "3"), "Conv2d: kernel_size .* got '3'"),
        (lambda: nn.Conv2d(1, 1, 2.5), "Conv2d: kernel_size .* got 2.5"),
        (lambda: nn.MaxPool2d(0), "MaxPool2d: kernel_size must be a positive integer or a pair of them, got 0"),
        (lambda: nn.AvgPool2d((2, 2, 2)), "AvgPool2d: kernel_size"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_kernel_sizes_given_as_numpy_integers_or_lists_are_taken():
    assert nn.Conv2d(1, 1, np.int64(3)).kernel_size == (3, 3)
    assert nn.MaxPool2d([2, 3]).kernel_size == (2, 3)
    assert nn.AvgPool2d(np.array([2, 2])).kernel_size == (2, 2)


def test_a_model_cannot_be_cast_to_an_integer_dtype():
    """astype("int32") rounded every weight to 0, silently."""
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match="Sequential.astype: dtype must be a floating-point dtype .* got 'int32'"):
        model.astype("int32")
    assert model.astype("float64")[0].weight.dtype == np.float64
