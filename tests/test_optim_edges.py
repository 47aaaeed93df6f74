"""Optimizer and schedule arguments checked at the boundary ("nothing lost, nothing silently
wrong"): every hyperparameter a finite number in the range torch.optim allows, each parameter
listed once, and an lr written later (by a Scheduler) checked like the first one."""

import math

import numpy as np
import pytest

from minibn import nn, optim

NAN, INF = float("nan"), float("inf")


def _p():
    return nn.Parameter(np.ones(3))


@pytest.mark.parametrize("kind, kw, match", [
    ("SGD", dict(lr=INF), "SGD: lr must be > 0 and finite, got inf"),
    ("SGD", dict(lr=NAN), "SGD: lr must be > 0 and finite, got nan"),
    ("SGD", dict(lr=0.0), "SGD: lr must be > 0 and finite, got 0.0"),
    ("SGD", dict(lr=-INF), "SGD: lr must be > 0 and finite, got -inf"),
    ("SGD", dict(lr=0.1, momentum=NAN), "SGD: momentum must be >= 0 and finite, got nan"),
    ("SGD", dict(lr=0.1, momentum=INF), "SGD: momentum must be >= 0 and finite, got inf"),
    ("SGD", dict(lr=0.1, momentum=-0.1), "SGD: momentum must be >= 0 and finite, got -0.1"),
    ("SGD", dict(lr=0.1, weight_decay=NAN), "SGD: weight_decay must be >= 0 and finite, got nan"),
    ("SGD", dict(lr=0.1, weight_decay=INF), "SGD: weight_decay must be >= 0 and finite, got inf"),
    ("SGD", dict(lr=0.1, weight_decay=-1e-4), "SGD: weight_decay must be >= 0 and finite, got -0.0001"),
    ("Adam", dict(lr=INF), "Adam: lr must be > 0 and finite, got inf"),
    ("Adam", dict(eps=-1), "Adam: eps must be > 0 and finite, got -1"),
    ("Adam", dict(eps=NAN), "Adam: eps must be > 0 and finite, got nan"),
    ("Adam", dict(eps=INF), "Adam: eps must be > 0 and finite, got inf"),
    ("Adam", dict(betas=(1.0, 0.999)), r"Adam: betas\[0\] must be in \[0, 1\), got 1.0"),
    ("Adam", dict(betas=(NAN, 0.999)), r"Adam: betas\[0\] must be in \[0, 1\), got nan"),
    ("Adam", dict(betas=(0.9, -0.5)), r"Adam: betas\[1\] must be in \[0, 1\), got -0.5"),
    ("Adam", dict(betas=(0.9, NAN)), r"Adam: betas\[1\] must be in \[0, 1\), got nan"),
    ("Adam", dict(weight_decay=NAN), "Adam: weight_decay must be >= 0 and finite, got nan"),
    ("Adam", dict(weight_decay=-1.0), "Adam: weight_decay must be >= 0 and finite, got -1.0"),
    # a number given as a string: "must be > 0" alone read as if 0.1 were not > 0
    ("SGD", dict(lr="0.1"), r"SGD: lr must be > 0 and finite, got '0.1' \(a str, not a number\)"),
    ("SGD", dict(lr=0.1, momentum="0.9"), r"SGD: momentum must be >= 0 and finite, got '0.9' \(a str, not a number\)"),
    # betas not a pair: Python's unpacking errors, naming no argument
    ("Adam", dict(betas=0.9), r"Adam: betas must be a pair \(beta1, beta2\) of numbers in \[0, 1\), got 0.9"),
    ("Adam", dict(betas=(0.9,)), r"Adam: betas must be a pair \(beta1, beta2\) of numbers in \[0, 1\), got \(0.9,\)"),
])
def test_bad_hyperparameters_are_refused_naming_argument_range_and_value(kind, kw, match):
    with pytest.raises(ValueError, match=f"^{match}$"):
        getattr(optim, kind)([_p()], **kw)


@pytest.mark.parametrize("kind, kw", [
    ("SGD", dict(lr=1e-12)), ("SGD", dict(lr=0.1, momentum=0.0, weight_decay=0.0)),
    ("SGD", dict(lr=0.1, momentum=1.5)),  # torch.optim.SGD allows momentum >= 1 too
    ("Adam", dict(betas=(0.0, 0.0), eps=1e-300, weight_decay=0.0)),
])
def test_edge_values_torch_accepts_are_accepted(torch, kind, kw):
    getattr(torch.optim, kind)([torch.zeros(3, requires_grad=True)], **kw)
    getattr(optim, kind)([_p()], **kw)


def test_numpy_numbers_are_numbers():
    optim.Adam([_p()], lr=np.float32(1e-3), betas=(np.float64(0.9), 0.999), eps=np.float64(1e-8))
    optim.SGD([_p()], lr=np.float64(0.1), momentum=np.float32(0.9), weight_decay=np.int64(0))
    optim.Adam([_p()], betas=np.array([0.9, 0.999]))


def test_adam_eps_zero_is_refused_because_a_zero_gradient_gives_nan(torch):
    """torch.optim.Adam allows eps=0, and then a weight whose gradient has been exactly 0 so far
    (one fed by an always-0 input, e.g. an MNIST border pixel) becomes 0 / 0 = NaN."""
    w = torch.ones(3, requires_grad=True)
    opt = torch.optim.Adam([w], eps=0.0)
    w.grad = torch.tensor([0.0, 1.0, 1.0])
    opt.step()
    assert math.isnan(w[0].item())
    with pytest.raises(ValueError, match="Adam: eps must be > 0 and finite, got 0.0"):
        optim.Adam([_p()], eps=0.0)


@pytest.mark.parametrize("bad", [NAN, INF, 0.0, -0.1])
def test_lr_written_later_is_checked_too(bad):
    p = _p()
    opt = optim.SGD([p], lr=0.5)
    with pytest.raises(ValueError, match="SGD: lr must be > 0 and finite"):
        opt.lr = bad
    assert opt.lr == 0.5  # unchanged
    sch = optim.Scheduler(opt, "lr", lambda step, total: 0.1 if step == 0 else bad, total_steps=4)
    assert sch.step() == 0.1 and opt.lr == 0.1
    with pytest.raises(ValueError, match=f"SGD: lr must be > 0 and finite, got {bad}"):
        sch.step()
    p.grad = np.ones(3)
    opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.1)  # stepped with the last good rate, not with NaN


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_a_parameter_listed_twice_is_refused_naming_both_places(kind):
    """Listed twice, a parameter took two steps per step (SGD(lr=0.5) moved it by 1.0)."""
    a, b = _p(), _p()
    with pytest.raises(ValueError, match=rf"^{kind}: parameter 2 is parameter 0 again \(Parameter\(shape=\(3,\)"):
        getattr(optim, kind)([a, b, a], lr=0.5)


def test_a_layer_used_twice_in_a_model_is_refused():
    """Its parameters would take two steps, and its backward would read the wrong cache."""
    shared = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="layer 2 is layer 0 again"):
        nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(ValueError, match="parameter 2 is parameter 0 again"):
        optim.SGD([shared.weight, shared.bias, shared.weight], lr=0.1)


def test_equal_but_distinct_parameters_are_fine():
    a, b = _p(), _p()  # same values, two parameters
    optim.SGD([a, b], lr=0.1)


@pytest.mark.parametrize("make, match", [
    (lambda: optim.Constant(NAN), "Constant: value must be a finite number, got nan"),
    (lambda: optim.StepDecay(INF, 10), "StepDecay: initial must be a finite number, got inf"),
    (lambda: optim.StepDecay(0.1, NAN), "StepDecay: step_size must be >= 1 and finite, got nan"),
    (lambda: optim.StepDecay(0.1, 0), "StepDecay: step_size must be >= 1 and finite, got 0"),
    (lambda: optim.StepDecay(0.1, 10, gamma=NAN), "StepDecay: gamma must be > 0 and finite, got nan"),
    (lambda: optim.StepDecay(0.1, 10, gamma=-0.5), "StepDecay: gamma must be > 0 and finite, got -0.5"),
    (lambda: optim.Piecewise([0.1, NAN], at=[0.5]), r"Piecewise: values\[1\] must be a finite number, got nan"),
    (lambda: optim.Piecewise([0.1, 0.2], at=[NAN]), "'at' must be increasing fractions"),
    (lambda: optim.Cosine(NAN), "Cosine: initial must be a finite number, got nan"),
    (lambda: optim.Cosine(0.1, final=-INF), "Cosine: final must be a finite number, got -inf"),
    (lambda: optim.Scheduler(nn.Dropout(0.1), "p", optim.Constant(0.2), 0),
     "Scheduler: total_steps must be >= 1 and finite, got 0"),
    (lambda: optim.Scheduler(nn.Dropout(0.1), "p", optim.Constant(0.2), NAN),
     "Scheduler: total_steps must be >= 1 and finite, got nan"),
])
def test_bad_schedule_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_cosine_stays_at_final_after_the_run():
    """cos climbs back up past total_steps: the value stays at ``final``, as Piecewise keeps its last."""
    s = optim.Cosine(1.0, final=0.1)
    assert s(0, 10) == 1.0 and s(10, 10) == pytest.approx(0.1)
    assert [s(t, 10) for t in (11, 15, 20)] == [s(10, 10)] * 3
