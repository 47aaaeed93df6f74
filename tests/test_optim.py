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
    # a module, a lone array or a number where the parameters go: the message says what to pass
    with pytest.raises(TypeError, match=r"SGD: params must be the parameters to optimize, such as "
                                        r"model.parameters\(\); got the Linear itself"):
        optim.SGD(nn.Linear(2, 2), lr=0.1)
    with pytest.raises(TypeError, match="Adam: parameter 0 is a ndarray, not a minibn.nn.Parameter"):
        optim.Adam([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="SGD: params must be an iterable of Parameters, .* got float"):
        optim.SGD(0.1, lr=0.1)
    with pytest.raises(TypeError, match=r"SGD: params must be .* got an array of shape \(3,\)"):
        optim.SGD(np.zeros(3), lr=0.1)
    with pytest.raises(ValueError, match="increasing fractions"):
        optim.Piecewise([1, 2, 3], at=[0.6, 0.4])


def _params(rng):
    """Parameters of a small net's shapes, one of them column-major (a Linear's weight)."""
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    values = [rng.standard_normal(s) for s in shapes]
    params = [nn.Parameter(on_active(np.asfortranarray(v) if i == 0 else v)) for i, v in enumerate(values)]
    return values, params


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.05, momentum=0.9, nesterov=True),
                                dict(lr=0.1, momentum=0.5, weight_decay=0.01)])
def test_sgd_on_flat_arrays_matches_torch_with_missing_and_replaced_parameters(torch, backend_name, kw):
    """The flat step (every parameter has a gradient), the per-parameter one (one has none:
    it must be left alone, momentum included) and the switch between them on the same
    momentum buffers, against torch.optim.SGD; then a parameter whose data is replaced."""
    rng = np.random.default_rng(0)
    values, params = _params(rng)
    ours = optim.SGD(params, **kw)
    assert params[0].data.flags.f_contiguous  # its layout kept in the flat array
    for p, v in zip(params, values):
        np.testing.assert_array_equal(backend.asnumpy(p.data), v)
    theirs_p = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    theirs = torch.optim.SGD(theirs_p, **kw)
    for step in range(8):
        if step == 5:  # replaced data: no longer a view of the flat array
            params[1].data = params[1].data.copy()
        for i, (p, tp) in enumerate(zip(params, theirs_p)):
            if step in (2, 3) and i == 2:  # no gradient: skipped by both
                p.grad, tp.grad = None, None
                continue
            g = rng.standard_normal(values[i].shape)
            p.grad, tp.grad = on_active(g), torch.tensor(g)
        ours.step()
        theirs.step()
        for p, tp in zip(params, theirs_p):
            np.testing.assert_allclose(backend.asnumpy(p.data), tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_sgd_keeps_parameters_and_gradients_in_one_array_each(backend_name):
    lin, bn = nn.Linear(5, 4).astype(np.float64), nn.BatchNorm1d(4).astype(np.float64)
    model = nn.Sequential(lin, bn)
    opt = optim.SGD(model.parameters(), lr=0.1)
    flat = opt._values.array
    assert all(np.shares_memory(backend.asnumpy(p.data), backend.asnumpy(flat)) for p in model.parameters()
               if backend.active() == "numpy")
    x = on_active(np.random.default_rng(0).standard_normal((6, 5)))
    model(x)
    opt.zero_grad()
    model.backward(on_active(np.ones((6, 4))))
    assert lin.weight.grad is opt._grads.views[0]  # dW written in place, not copied
    assert lin.weight.grad.flags.f_contiguous == lin.weight.data.flags.f_contiguous
    before = backend.asnumpy(lin.weight.data).copy()
    opt.step()
    np.testing.assert_allclose(backend.asnumpy(lin.weight.data), before - 0.1 * backend.asnumpy(lin.weight.grad))


def test_optimizer_over_mixed_dtypes_steps_per_parameter():
    a, b = nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.5)
    assert opt._values is None
    a.grad, b.grad = np.ones(3, np.float32), np.ones(2)
    opt.step()
    assert a.data.dtype == np.float32 and (a.data == 0.5).all() and (b.data == 0.5).all()


def test_sgd_with_momentum_follows_parameters_replaced_before_its_first_step():
    """Moving a model (new arrays for its parameters) after making its optimizer, before the
    first step, works as in PyTorch: the momentum buffers are made at the first step."""
    p = nn.Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    p.data = np.full(3, 2.0, dtype=np.float32)  # what a move to another device or dtype does
    for _ in range(2):
        p.grad = np.ones(3, np.float32)
        opt.step()
    np.testing.assert_allclose(p.data, 2.0 - 0.5 * (1 + 1.9))
    assert opt._buf[0].dtype == np.float32  # made like the moved parameter, not like the original


def test_a_float64_input_gives_gradients_in_the_parameters_dtype():
    """Linear and Conv2d compute in NumPy's promoted dtype (float64 for a float64 input to float32
    weights), but a parameter's grad has the parameter's dtype, as the normalization layers' have:
    bias.grad was float64 beside a float32 weight.grad, and the step mixed the two."""
    rng = np.random.default_rng(0)
    for layer, x in ((nn.Linear(4, 3), rng.standard_normal((5, 4))),
                     (nn.Conv2d(2, 3, 3), rng.standard_normal((2, 2, 5, 5)))):
        y = layer(x)
        assert y.dtype == np.float64
        layer.backward(rng.standard_normal(y.shape))
        assert [p.grad.dtype for p in layer.parameters()] == [np.float32, np.float32], type(layer).__name__
        optim.SGD(layer.parameters(), lr=0.1).step()
        assert [p.data.dtype for p in layer.parameters()] == [np.float32, np.float32]
