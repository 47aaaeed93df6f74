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
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
