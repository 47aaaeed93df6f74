"""mb.load refuses a checkpoint whose values would load wrong ("nothing lost, nothing silently
wrong"): NaN or inf, a value the model's dtype cannot hold (1e300 into float32 is inf, 2.5
into an integer is 2), a negative variance or count, a zero standard deviation; the error
names the file, the entry, a bad value, where it is and why, and the model is left as it was.
A folder given as the checkpoint's path is said to be a folder."""

import numpy as np
import pytest

import minibn as mb
from minibn import nn
from minibn.checkpoint import CheckpointError


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))  # float32


def _state(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def _refused(tmp_path, model, state, match):
    """Save ``state`` as a checkpoint; loading it into ``model`` raises CheckpointError matching
    ``match`` and changes nothing."""
    path = tmp_path / "bad.npz"
    np.savez(path, **state)
    before = _state(model)
    with pytest.raises(CheckpointError, match=match):
        mb.load(model, path)
    for k, v in _state(model).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("key", ["0.weight", "1.gamma", "1.running_mean", "2.bias"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_anywhere_is_refused(tmp_path, key, bad):
    state = _state(_model())
    state[key].flat[-1] = bad
    index = np.unravel_index(state[key].size - 1, state[key].shape)
    _refused(tmp_path, _model(), state,
             rf"bad.npz: entry '{key}' holds {bad} at index \({', '.join(map(str, index))},?\): NaN and inf")


def test_a_value_that_overflows_the_buffers_dtype_is_refused(tmp_path):
    """1e300 written as float64 became inf in the float32 buffer."""
    state = _state(_model())
    state["1.running_mean"] = np.array([0.0, 1e300, 2e300, 0.5])  # float64
    _refused(tmp_path, _model(), state, r"entry '1.running_mean' holds 1e\+300 at index \(1,\) \(and 1 more bad "
                                        r"value\): the model keeps this entry as float32, where it would become inf")


def test_the_largest_float32_still_loads(tmp_path):
    state = _state(_model())
    state["1.running_mean"] = np.full(4, float(np.finfo(np.float32).max))  # float64, but float32 holds it
    np.savez(tmp_path / "ok.npz", **state)
    model = mb.load(_model(), tmp_path / "ok.npz")
    assert np.isfinite(model[1].running_mean).all()


def test_a_fraction_into_an_integer_buffer_is_refused(tmp_path):
    state = _state(_model())
    state["1.num_batches_tracked"] = np.array(2.5)
    _refused(tmp_path, _model(), state,
             r"entry '1.num_batches_tracked' holds 2.5: the model keeps this entry as int64, where it would become 2")


def test_a_negative_running_variance_is_refused(tmp_path):
    state = _state(_model())
    state["1.running_var"][2] = -0.25
    _refused(tmp_path, _model(), state, r"entry '1.running_var' holds -0.25 at index \(2,\): a variance or a count "
                                        r"cannot be negative")


@pytest.mark.parametrize("layer, key, bad, why", [
    (lambda: nn.BatchRenorm1d(3), "running_std", 0.0, "a standard deviation must be > 0"),
    (lambda: nn.TransNorm1d(3), "running_var_target", -1.0, "a variance or a count cannot be negative"),
    (lambda: nn.MemorizedBatchNorm1d(3), "memory_count", -2.0, "a variance or a count cannot be negative"),
    (lambda: nn.BatchNorm1d(3), "num_batches_tracked", -1, "a variance or a count cannot be negative"),
])
def test_other_statistics_that_cannot_be_negative(tmp_path, layer, key, bad, why):
    model = nn.Sequential(layer())
    state = _state(model)
    state[f"0.{key}"][...] = bad
    _refused(tmp_path, model, state, f"entry '0.{key}' holds {bad}.*: {why}")


def test_a_clean_checkpoint_still_loads_into_a_model_of_another_dtype(tmp_path):
    a = _model().astype(np.float64)
    mb.save(a, tmp_path / "m.npz")
    b = mb.load(_model(), tmp_path / "m.npz")
    np.testing.assert_allclose(b[0].weight.data, a[0].weight.data.astype(np.float32))


def test_load_of_a_folder_says_it_is_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"^mb.load: {tmp_path} is a folder: expected a checkpoint file "
                                                 r"\(an .npz file written by mb.save\)$"):
        mb.load(_model(), tmp_path)


def test_save_onto_a_folder_says_it_is_a_folder_and_writes_nothing(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(IsADirectoryError, match=f"mb.save: cannot write {tmp_path / 'runs'}: it is a folder; give "
                                                f"the path of a file in it, e.g. {tmp_path / 'runs' / 'model.npz'}"):
        mb.save(_model(), tmp_path / "runs")
    assert [p.name for p in tmp_path.iterdir()] == ["runs"] and not any((tmp_path / "runs").iterdir())

