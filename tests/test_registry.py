"""What every registered layer gets from its registration (minibn/registry.py): the gradient
check of every implementation installed here, the bad-input checks, the PyTorch comparison;
and the selection rule (minibn/dispatch.py) that every normalization layer uses."""

import inspect

import numpy as np
import pytest

from minibn import backend, dispatch, nn
from minibn import functional as F
from minibn.gradcheck import check_case
from minibn.registry import SPECS, layer_cases, spec
from tests.helpers import impls, on_active, skip_unless_runs_here, to_np

CASES = layer_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradient_check(backend_name, case):
    if case.impl is not None:
        skip_unless_runs_here(case.spec.op, case.impl)
    rows = check_case(case, raise_on_fail=True)  # GradcheckError names tensor, index and values
    assert {r["tensor"].split("/")[0] for r in rows} == set(case.modes)
    assert all(r["passed"] for r in rows)


def test_every_layer_class_is_registered_and_checked_in_both_modes():
    not_layers = (nn.Module, nn.Sequential, nn.SoftmaxCrossEntropy,  # bases and containers, and the loss
                  nn.Normalization, nn.BatchNorm, nn.BatchRenorm, nn.MemorizedBatchNorm, nn.TransNorm)
    exported = [getattr(nn, n) for n in nn.__all__]
    layers = [c for c in exported if inspect.isclass(c) and issubclass(c, nn.Module) and c not in not_layers]
    for cls in layers:
        s = spec(cls)  # KeyError when a layer has no registration
        assert set(s.modes) == {"train", "eval"}, cls
    assert {c.spec.cls for c in CASES} == set(layers)


def test_every_installed_implementation_is_in_the_table():
    for s in SPECS:
        if s.op is not None:
            assert {c.impl for c in CASES if c.spec is s} == set(dispatch.available(s.op)), s.name


@pytest.mark.parametrize("s", SPECS, ids=[s.name for s in SPECS])
def test_integer_input_is_refused_naming_the_layer(s):
    if not s.bad_shapes:
        pytest.skip(f"{s.name} takes any array")
    layer = s.make(s.shapes[0])
    with pytest.raises(TypeError, match=rf"{s.name}: x must be a floating-point array, got dtype int64"):
        layer(np.ones(s.shapes[0], np.int64))


@pytest.mark.parametrize("s, shape", [(s, b) for s in SPECS for b in s.bad_shapes],
                         ids=[f"{s.name}-{b}" for s in SPECS for b in s.bad_shapes])
def test_wrong_shape_is_refused_naming_the_layer_and_both_shapes(s, shape):
    layer = s.make(s.shapes[0])
    with pytest.raises(ValueError, match=rf"{s.name}: .*{tuple(shape)}".replace("(", r"\(").replace(")", r"\)")):
        layer(np.ones(shape, np.float32))


@pytest.mark.parametrize("s", SPECS, ids=[s.name for s in SPECS])
def test_backward_before_forward_or_with_a_wrong_dy_is_a_clear_error(s):
    layer = s.make(s.shapes[0])
    with pytest.raises(RuntimeError, match=f"{s.name}: backward called before any forward"):
        layer.backward(np.ones(s.shapes[0], np.float32))
    y = layer(np.random.default_rng(0).standard_normal(s.shapes[0]).astype(np.float32))
    with pytest.raises(ValueError, match=rf"{s.name}: expected dy of shape {y.shape}".replace("(", r"\(")
                       .replace(")", r"\)")):
        layer.backward(np.ones(y.shape[:-1] + (y.shape[-1] + 1,), np.float32))


TORCH = [(s, impl, label, kw) for s in SPECS if s.torch is not None for impl in s.impls()
         for label, kw in s.configurations(impl)]


@pytest.mark.parametrize("s, impl, label, kwargs", TORCH, ids=[f"{s.name}-{i}-{lab}" for s, i, lab, _ in TORCH])
def test_matches_pytorch_in_float64(torch, backend_name, rng, s, impl, label, kwargs):
    """Outputs, dx, the parameters' gradients and the running statistics over three
    training steps, then eval mode; every implementation, variant and registered shape."""
    skip_unless_runs_here(s.op, impl)
    for shape in s.shapes:
        ours = s.make(shape, impl=impl, **kwargs).astype(np.float64)
        theirs = s.torch.make(torch, ours).double()
        with torch.no_grad():
            for mine, name in {**s.torch.params, **s.torch.buffers}.items():
                value = getattr(ours, mine)
                value = getattr(value, "data", value)
                if value is not None:
                    getattr(theirs, name).copy_(torch.tensor(to_np(value)))
        for mode in s.modes:
            ours.train(mode == "train")
            theirs.train(mode == "train")
            for _step in range(3 if mode == "train" else 1):
                x = 5 * rng.standard_normal(shape) + 12
                xt = torch.tensor(x, requires_grad=True)
                yt = theirs(xt)
                dy = rng.standard_normal(tuple(yt.shape))  # the output's shape (a convolution's differs)
                yt.backward(torch.tensor(dy))
                ours.zero_grad()
                y = ours(on_active(x))
                dx = ours.backward(on_active(dy))
                np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
                np.testing.assert_allclose(to_np(dx), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
                for mine, name in s.torch.params.items():
                    p = getattr(ours, mine)
                    if p is not None:
                        grad = getattr(theirs, name).grad
                        np.testing.assert_allclose(to_np(p.grad), grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=mine)
                        grad.zero_()
                for mine, name in s.torch.buffers.items():
                    if getattr(ours, mine) is not None:
                        np.testing.assert_allclose(to_np(getattr(ours, mine)), getattr(theirs, name).numpy(),
                                                   rtol=1e-12, err_msg=mine)
            if "num_batches_tracked" in ours._buffers:
                assert ours.num_batches_tracked == int(theirs.num_batches_tracked)


# -- the selection rule ---------------------------------------------------------------------

@pytest.mark.parametrize("impl", impls("batch_norm"))
def test_paper_backward_always_runs_the_reference(rng, impl):
    """backward="paper" means the paper's six formulas, whatever impl says."""
    layer = nn.BatchNorm1d(4, impl=impl, backward="paper").astype(np.float64)
    x, dy = rng.standard_normal((6, 4)) * 3 + 2, rng.standard_normal((6, 4))
    y = layer(x)
    used = layer.last_implementation
    assert used.name == "reference" and used.backward_path.endswith(":batch_norm_backward_paper")
    dx = layer.backward(dy)
    y_ref, cache = F.batch_norm_forward(x, layer.gamma.data, layer.beta.data, layer.eps)
    np.testing.assert_array_equal(y, y_ref)  # the very functions of the teaching path ran
    np.testing.assert_array_equal(dx, F.batch_norm_backward_paper(dy, cache)[0])


@pytest.mark.parametrize("op, make, shape", [
    ("batch_norm", lambda impl: nn.BatchNorm2d(3, impl=impl), (4, 3, 2, 5)),
    ("batch_renorm", lambda impl: nn.BatchRenorm2d(3, impl=impl), (4, 3, 2, 5)),
    ("memorized_batch_norm", lambda impl: nn.MemorizedBatchNorm2d(3, impl=impl), (4, 3, 2, 5))])
def test_every_implementation_keeps_per_channel_statistics_as_c_vectors(backend_name, op, make, shape):
    for impl in dispatch.available(op, backend.xp().zeros(1)):
        layer = make(impl)
        layer(on_active(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
        cache = layer._cache
        for key in ("mu_B", "var_B", "sigma_B", "r", "d", "mu_hat", "var_hat"):
            if key in cache:
                assert tuple(cache[key].shape) == (3,), (impl, key, cache[key].shape)


def test_auto_selection_follows_the_registration_order(monkeypatch):
    from minibn.kernels import numba_cpu
    x_small, x_large = np.ones((8, 4), np.float32), np.ones((256, 256), np.float32)
    fused = "fused" if numba_cpu.available() else None
    assert dispatch.select("batch_norm", "auto", x_small).name == (fused or "reference")
    assert dispatch.select("batch_norm", "auto", x_large).name == (fused or "fast")
    assert dispatch.select("batch_norm", "auto", x_small.astype(np.float16)).name == "reference"
    monkeypatch.setattr(numba_cpu, "available", lambda: False)
    assert dispatch.select("batch_norm", "auto", x_large).name == "fast"
    assert dispatch.select("layer_norm", "auto", x_large).name == "reference"
    with pytest.raises(ImportError, match="needs numba"):
        dispatch.select("layer_norm", "fused", x_large)
    with pytest.raises(ValueError, match=r"BatchRenorm1d: impl must be one of \('auto', 'fused', 'reference'\)"):
        nn.BatchRenorm1d(3, impl="fast")
