import numpy as np
import pytest

from minibn import backend, nn, optim
from tests.helpers import on_active


def _pair(torch, kind, **kw):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    p = nn.Parameter(on_active(w0.copy()))
    tp = torch.tensor(w0.copy(), requires_grad=True)
    ours = getattr(optim, kind)([p], **kw)
    theirs = getattr(torch.optim, kind)([tp], **kw)
    for _step in range(5):
        g = rng.standard_normal((3, 4))
        p.grad = on_active(g.copy())
        tp.grad = torch.tensor(g)
        ours.step()
        theirs.step()
    np.testing.assert_allclose(backend.asnumpy(p.data), tp.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
                                dict(lr=0.1, momentum=0.5, weight_decay=0.01)])
def test_sgd_matches_torch(torch, backend_name, kw):
    _pair(torch, "SGD", **kw)


@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99))])
def test_adam_matches_torch(torch, backend_name, kw):
    _pair(torch, "Adam", **kw)


def test_piecewise_schedule_changes_at_40_and_60_percent():
    s = optim.Piecewise([0.1, 0.5, 0.9], at=[0.4, 0.6])
    values = [s(t, 100) for t in range(100)]
    assert values[:40] == [0.1] * 40 and values[40:60] == [0.5] * 20 and values[60:] == [0.9] * 40


def test_scheduler_sets_attributes():
    layers = [nn.Dropout(0.1), nn.Dropout(0.1)]
    sch = optim.Scheduler(layers, "p", optim.Piecewise([0.1, 0.2], at=[0.5]), total_steps=4)
    seen = [sch.step() for _ in range(4)]
    assert seen == [0.1, 0.1, 0.2, 0.2] and all(layer.p == 0.2 for layer in layers)
    assert optim.StepDecay(1.0, 10, 0.5)(25, 100) == 0.25
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        optim.Scheduler(layers, "nope", optim.Constant(1), 10)


def test_bad_optimizer_arguments():
    p = nn.Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="lr must be > 0"):
        optim.SGD([p], lr=0)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="increasing fractions"):
        optim.Piecewise([1, 2, 3], at=[0.6, 0.4])
