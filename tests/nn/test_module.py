import os

import numpy as np
import pytest

import minibn as mb
from minibn import backend, nn
from tests.helpers import on_active


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_parameters_and_names():
    model = mlp()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.gamma", "1.beta", "3.weight", "3.bias"]
    assert len(model.parameters()) == 6
    assert len(model) == 4 and isinstance(model[1], nn.BatchNorm1d)
    assert [type(m).__name__ for m in model] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert isinstance(model[1:], nn.Sequential) and len(model[1:]) == 3


def test_backward_accumulates_and_zero_grad_clears(backend_name):
    model = mlp()
    x = on_active(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    dy = on_active(np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32))
    model(x)
    model.backward(dy)
    g1 = backend.asnumpy(model[0].weight.grad).copy()
    model(x)
    model.backward(dy)
    np.testing.assert_allclose(backend.asnumpy(model[0].weight.grad), 2 * g1, rtol=1e-5, atol=1e-6)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_propagates():
    model = mlp()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_state_dict_round_trip_and_buffers():
    a, b = mlp(), mlp()
    a(on_active(np.ones((3, 4), np.float32) + np.arange(4, dtype=np.float32)))
    sd = a.state_dict()
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= set(sd)
    b.load_state_dict(sd)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(backend.asnumpy(va), backend.asnumpy(vb), err_msg=k)
    assert b[1].num_batches_tracked == 1 and isinstance(b[1].num_batches_tracked, int)


def test_load_state_dict_shape_mismatch_names_key_and_leaves_model_unchanged():
    model = mlp()
    before = {k: backend.asnumpy(v).copy() for k, v in model.state_dict().items()}
    bad = dict(model.state_dict())
    bad["0.bias"] = np.zeros(8, np.float32) + 5  # fine
    bad["3.weight"] = np.zeros((3, 9), np.float32)  # wrong
    with pytest.raises(ValueError, match=r"3\.weight: expected shape \(3, 8\), got \(3, 9\)"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(backend.asnumpy(v), before[k])


def test_load_state_dict_missing_keys():
    model = mlp()
    sd = dict(model.state_dict())
    del sd["1.gamma"]
    with pytest.raises(KeyError, match="missing keys.*1.gamma"):
        model.load_state_dict(sd)


def test_checkpoint_round_trip(tmp_path):
    a, b = mlp(), mlp()
    path = tmp_path / "model.npz"
    mb.save(a, path)
    with np.load(path, allow_pickle=False) as z:  # a plain .npz, no pickled objects
        assert set(z.files) == set(a.state_dict())
    mb.load(b, path)
    x = on_active(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    a.eval(), b.eval()
    np.testing.assert_array_equal(backend.asnumpy(a(x)), backend.asnumpy(b(x)))


def test_failed_checkpoint_write_leaves_no_partial_file(tmp_path, monkeypatch):
    model = mlp()
    path = tmp_path / "model.npz"
    mb.save(model, path)
    good = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        mb.save(model, path)
    assert path.read_bytes() == good  # the earlier checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary left behind


def test_astype_casts_parameters_and_buffers():
    model = mlp().astype(np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_var.dtype == np.float64


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="layer 1 must be a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_first_layer_can_skip_dx():
    model = mlp()
    x = on_active(np.ones((3, 4), np.float32))
    y = model(x)
    assert model.backward(backend.xp().ones_like(y), need_dx=False) is None
    assert model[0].weight.grad is not None


def test_linear_weight_is_column_major_through_init_load_and_backward(backend_name):
    """The layout is for BLAS's speed only: init, load_state_dict and dW keep it, and the
    values are those of the same matrix stored row-major."""
    lin = nn.Linear(6, 4, dtype="float64")
    assert lin.weight.data.flags.f_contiguous and not lin.weight.data.flags.c_contiguous
    nn.init.normal_(lin.weight, std=0.5)
    assert lin.weight.data.flags.f_contiguous
    w = np.arange(24.0).reshape(4, 6)  # row-major
    lin.load_state_dict({"weight": w, "bias": np.zeros(4)})
    assert lin.weight.data.flags.f_contiguous and (backend.asnumpy(lin.weight.data) == w).all()
    x = on_active(np.random.default_rng(0).standard_normal((3, 6)))
    dy = on_active(np.random.default_rng(1).standard_normal((3, 4)))
    np.testing.assert_allclose(backend.asnumpy(lin(x)), backend.asnumpy(x) @ w.T, rtol=1e-14)
    lin.backward(dy)
    assert lin.weight.grad.flags.f_contiguous
    np.testing.assert_allclose(backend.asnumpy(lin.weight.grad), backend.asnumpy(dy).T @ backend.asnumpy(x),
                               rtol=1e-14)
