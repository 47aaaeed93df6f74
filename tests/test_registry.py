"""What every layer gets from its registrations (its implementations in minibn/registry.py,
its LayerSpec in minibn/testing.py): the gradient check of every implementation installed
here, the bad-input checks, the PyTorch comparison, the statistics its cache must hold;
and the selection rule (minibn/dispatch.py) that every normalization layer uses."""

import inspect

import numpy as np
import pytest

from minibn import backend, dispatch, nn
from minibn import functional as F
from minibn.gradcheck import check_case
from minibn.testing import SPECS, layer_cases, spec
from tests.helpers import impls, on_active, skip_unless_runs_here, to_np

CASES = layer_cases()


def installed_specs(where=lambda s: True):
    """pytest parameters: every spec (for which ``where`` holds), those whose layer needs a
    package that is missing here (SyncBatchNorm without mpi4py) marked to skip."""
    return [pytest.param(s, id=s.name, marks=() if s.is_installed() else
                         pytest.mark.skip(reason=f"{s.name} needs a package that is not installed"))
            for s in SPECS if where(s)]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradient_check(backend_name, case):
    if case.impl is not None:
        skip_unless_runs_here(case.spec.op, case.impl)
    rows = check_case(case, raise_on_fail=True)  # GradcheckError names tensor, index and values
    assert {r["tensor"].split("/")[0] for r in rows} == set(case.modes)
    assert all(r["passed"] for r in rows)


def test_every_layer_class_is_registered_and_checked_in_both_modes():
    exported = [getattr(nn, n) for n in nn.__all__]
    not_layers = (nn.Sequential, nn.SoftmaxCrossEntropy)  # the container and the loss (tests/nn/test_module.py)
    layers = [c for c in exported if inspect.isclass(c) and issubclass(c, nn.Module) and not c.base_class
              and c not in not_layers]
    assert nn.BatchNorm1d in layers and nn.BatchNorm not in layers and nn.Normalization not in layers
    for cls in layers:
        s = spec(cls)  # KeyError when a layer has no registration
        assert set(s.modes) == {"train", "eval"}, cls
    assert {c.spec.cls for c in CASES} == {cls for cls in layers if spec(cls).is_installed()}


def test_every_installed_implementation_is_in_the_table():
    for s in SPECS:
        if s.op is not None:
            assert {c.impl for c in CASES if c.spec is s} == set(dispatch.available(s.op)), s.name


@pytest.mark.parametrize("s", installed_specs())
def test_integer_input_is_refused_naming_the_layer(s):
    if not s.bad_shapes:
        pytest.skip(f"{s.name} takes any array")
    layer = s.make(s.shapes[0])
    with pytest.raises(TypeError, match=rf"{s.name}: x must be a floating-point array, got dtype int64"):
        layer(np.ones(s.shapes[0], np.int64))


@pytest.mark.parametrize("s, shape", [pytest.param(p.values[0], b, id=f"{p.id}-{b}", marks=p.marks)
                                      for p in installed_specs() for b in p.values[0].bad_shapes])
def test_wrong_shape_is_refused_naming_the_layer_and_both_shapes(s, shape):
    layer = s.make(s.shapes[0])
    with pytest.raises(ValueError, match=rf"{s.name}: .*{tuple(shape)}".replace("(", r"\(").replace(")", r"\)")):
        layer(np.ones(shape, np.float32))


@pytest.mark.parametrize("s", installed_specs())
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
    assert used.name == "reference" and used.backward_function is F.batch_norm_backward_paper
    dx = layer.backward(dy)
    y_ref, cache = F.batch_norm_forward(x, layer.gamma.data, layer.beta.data, layer.eps)
    np.testing.assert_array_equal(y, y_ref)  # the very functions of the teaching path ran
    np.testing.assert_array_equal(dx, F.batch_norm_backward_paper(dy, cache)[0])


def _normalization(s):
    return issubclass(s.cls, nn.Normalization)


@pytest.mark.parametrize("s", installed_specs(_normalization))
def test_every_implementation_leaves_the_statistics_the_layer_declares(backend_name, s):
    """Each layer declares the statistics it reads from its training forward's cache, with
    their shapes for an input (``_cache_statistics``); every implementation of its operation
    must leave them so, on every registered shape."""
    for impl in s.impls():
        if impl is not None and impl not in dispatch.available(s.op, backend.xp().zeros(1)):
            continue  # the fused CPU loops on the CuPy backend
        for shape in s.shapes:
            layer = s.make(shape, **({} if impl is None else {"impl": impl}))
            x = on_active(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
            layer(x)
            for key, expected in layer._cache_statistics(x).items():
                assert key in layer._cache, (s.name, impl, key)
                assert tuple(layer._cache[key].shape) == expected, (s.name, impl, key, layer._cache[key].shape)


@pytest.mark.parametrize("s", installed_specs(_normalization))
def test_the_layers_that_keep_statistics_declare_them(s):
    """A declaration may be empty (a layer that reads nothing back: LayerNorm, ...), but not by
    mistake: the layers with running statistics or a memory declare what they update them from."""
    x = np.zeros(s.shapes[0], np.float32)
    declared = s.make(s.shapes[0])._cache_statistics(x)
    assert bool(declared) == issubclass(s.cls, (nn.RunningStatistics, nn.MemorizedBatchNorm)), declared


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


def test_each_implementation_is_registered_once(monkeypatch):
    for op, impls_of_op in dispatch._REGISTRY.items():
        keys = [(i.name, i.applies) for i in impls_of_op]
        assert len(keys) == len(set(keys)), f"{op}: an implementation registered twice"
    monkeypatch.setattr(dispatch, "_REGISTRY", {op: list(v) for op, v in dispatch._REGISTRY.items()})
    with pytest.raises(ValueError, match="'rms_norm' already has an implementation 'reference'"):
        dispatch.register("rms_norm", "reference", F.rms_norm_forward, F.rms_norm_backward)
