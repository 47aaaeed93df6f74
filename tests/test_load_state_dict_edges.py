"""Module.load_state_dict refuses a value that would load wrong, before anything changes: NaN
or inf, a value the entry's dtype cannot hold (1e300 into float32 is inf, 2.5 into an integer
is 2), for array entries and Python scalar buffers alike; the error is a ValueError naming the
entry, the bad value and where it is, in the words of mb.load (minibn/checkpoint.py). And a
device state dict loaded into a device model stays on the device (tests/strict_device.py)."""

import copy

import numpy as np
import pytest

from minibn import backend, nn
from minibn.nn.module import Module, unfit_value
from tests import strict_device as sd


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))  # float32


def _state(model):
    return {k: np.array(backend.asnumpy(v)) for k, v in model.state_dict().items()}


def _refused(model, state, match):
    """Loading ``state`` into ``model`` raises ValueError matching ``match`` and changes nothing."""
    before = _state(model)
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    for k, v in _state(model).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("key", ["0.weight", "1.gamma", "1.running_mean", "2.bias"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_anywhere_is_refused(key, bad):
    state = _state(_model())
    state[key].flat[-1] = bad
    index = np.unravel_index(state[key].size - 1, state[key].shape)
    _refused(_model(), state,
             rf"^load_state_dict: entry '{key}' holds {bad} at index \({', '.join(map(str, index))},?\): NaN and inf")


def test_the_last_entry_refused_leaves_the_earlier_ones_unchanged():
    model, state = _model(), _state(_model())
    state["2.bias"][0] = np.nan  # the last entry: every other one was converted before it
    _refused(model, state, "entry '2.bias' holds nan at index")


def test_a_value_that_overflows_the_dtype_is_refused():
    state = _state(_model())
    state["1.running_mean"] = np.array([0.0, 1e300, 2e300, 0.5])  # float64
    _refused(_model(), state, r"entry '1.running_mean' holds 1e\+300 at index \(1,\) \(and 1 more bad value\): "
                              r"the model keeps this entry as float32, where it would become inf")


def test_the_largest_float32_and_a_float64_model_still_load():
    state = _state(_model())
    state["1.running_mean"] = np.full(4, float(np.finfo(np.float32).max))
    assert np.isfinite(_model().load_state_dict(state)[1].running_mean).all()
    state["1.running_mean"] = np.full(4, 1e300)
    assert (_model().astype(np.float64).load_state_dict(state)[1].running_mean == 1e300).all()


@pytest.mark.parametrize("bad, became", [(2.5, "2"), (np.nan, None), (np.inf, None)])
def test_a_scalar_buffer_refuses_a_fraction_nan_and_inf(bad, became):
    state = _state(_model())
    state["1.num_batches_tracked"] = np.array(bad)
    why = f"the model keeps this entry as int64, where it would become {became}" if became else "NaN and inf"
    _refused(_model(), state, f"entry '1.num_batches_tracked' holds {bad}: {why}")


def test_a_scalar_buffer_takes_a_whole_number_of_any_dtype():
    state = _state(_model())
    for value in (np.array(3.0), 3, np.array(3, np.uint8)):
        state["1.num_batches_tracked"] = value
        model = _model().load_state_dict(state)
        assert model[1].num_batches_tracked == 3 and type(model[1].num_batches_tracked) is int


class _Counts(Module):
    """A module with an integer array buffer."""

    _buffers = ("counts",)

    def __init__(self, dtype):
        super().__init__()
        self.counts = np.zeros(3, dtype)


@pytest.mark.parametrize("dtype, value, became", [("int64", 2.5, 2), ("uint8", 300, 44), ("uint8", -1, 255)])
def test_an_integer_array_buffer_refuses_what_it_cannot_hold(dtype, value, became):
    state = {"counts": np.array([1, value, 2])}
    _refused(_Counts(dtype), state, rf"entry 'counts' holds {value} at index \(1,\): the model keeps this entry as "
                                    rf"{dtype}, where it would become {became}")
    assert _Counts(dtype).load_state_dict({"counts": np.array([1.0, 7.0, 2.0])}).counts.tolist() == [1, 7, 2]


def test_values_that_are_not_numbers_are_refused():
    state = _state(_model())
    state["0.bias"] = np.array(["a", "b", "c", "d"])
    _refused(_model(), state, r"entry '0.bias' holds <U1 values, not numbers")


def test_unfit_value_is_none_for_a_good_value():
    assert unfit_value("w", np.ones(3), np.dtype("float32")) is None
    assert unfit_value("n", 4, "int64") is None
    assert unfit_value("n", np.array([True]), "float64") is None


def test_the_same_words_as_mb_load(tmp_path):
    """load_state_dict and mb.load name the same entry, value, index and reason."""
    import minibn as mb
    state = _state(_model())
    state["1.running_mean"] = np.array([0.0, 1e300, 0.0, 0.5])
    with pytest.raises(ValueError) as direct:
        _model().load_state_dict(state)
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(ValueError) as loaded:
        mb.load(_model(), tmp_path / "bad.npz")
    reason = str(direct.value).removeprefix("load_state_dict: ")
    assert reason in str(loaded.value)


# -- devices (the strict stand-in for CuPy) -------------------------------------------------------

@pytest.fixture
def device():
    with sd.installed() as counter:
        yield counter


def test_a_device_state_into_a_device_model_stays_on_the_device(device):
    gpu = _model().to("gpu")
    state = copy.deepcopy(gpu.state_dict())
    with device.watch() as seen:
        gpu.load_state_dict(state)
    assert seen.total() == 0, seen.places()
    assert isinstance(gpu[0].weight.data, sd.DeviceArray) and isinstance(gpu[1].running_var, sd.DeviceArray)
    assert gpu[0].weight.data is not state["0.weight"]  # a copy, not the state's own array


def test_a_host_state_into_a_device_model_is_checked_and_copied_once_each(device):
    gpu = _model().to("gpu")
    state = _state(_model())
    arrays = sum(isinstance(v, sd.DeviceArray) for v in gpu.state_dict().values())
    with device.watch() as seen:
        gpu.load_state_dict(state)
    assert seen.counts() == {"h2d": arrays, "d2h": 0, "sync": 0, "implicit": 0}
    np.testing.assert_array_equal(sd.host(gpu[0].weight.data), state["0.weight"])
    state["1.running_var"][1] = np.nan
    with pytest.raises(ValueError, match=r"entry '1.running_var' holds nan at index \(1,\)"):
        gpu.load_state_dict(state)


def test_a_device_state_into_a_host_model_is_checked_on_the_host(device):
    state = {k: backend.to_device(v, "gpu") for k, v in _state(_model()).items()}
    state["0.bias"] = backend.to_device(np.array([0.0, np.inf, 0.0, 0.0], np.float32), "gpu")
    _refused(_model(), state, r"entry '0.bias' holds inf at index \(1,\)")
    del state["0.bias"]
    model = _model().load_state_dict(state, strict=False)
    assert isinstance(model[0].weight.data, np.ndarray)
