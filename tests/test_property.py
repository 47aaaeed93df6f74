"""Any input, any layer, any implementation: the right answer or a clear error.

For every registered layer and every implementation installed here, hypothesis draws
inputs of other shapes (batch sizes, empty batches, other ranks, channel counts,
positions), dtypes (float64, float32, float16, int64), values (NaN, inf, a large offset)
and layouts (non-contiguous views). Each either gives the result of the reference
implementation in float64 (outputs and input gradient, NaN where it has NaN) or raises a
ValueError / TypeError whose message starts with the layer's name: never an error from
inside NumPy or numba, never a silently different value.
"""

import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibn as mb
from minibn.testing import SPECS

LAYERS = [(s, impl) for s in SPECS for impl in s.impls()]
TOLERANCE = {np.float64: 1e-8, np.float32: 2e-4, np.float16: 2e-2}


def _shape(draw, base):
    change = draw(st.sampled_from(["none", "batch", "empty", "rank_up", "rank_down", "channels", "positions"]))
    shape = list(base)
    if change == "batch":
        shape[0] = draw(st.integers(1, 9))
    elif change == "empty":
        shape[0] = 0
    elif change == "rank_up":
        shape.append(draw(st.integers(1, 3)))
    elif change == "rank_down" and len(shape) > 1:
        shape.pop()
    elif change == "channels" and len(shape) > 1:
        shape[1] = draw(st.integers(1, 7))
    elif change == "positions" and len(shape) > 2:
        shape[2:] = [draw(st.integers(1, 5)) for _ in shape[2:]]
    return tuple(shape)


def _input(draw, shape):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    x = rng.standard_normal(shape) * draw(st.sampled_from([1.0, 3.0])) + draw(st.sampled_from([0.0, 12.0, 1e3]))
    if x.size and draw(st.booleans()):
        x.reshape(-1)[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float16, np.int64]))
    x = x.astype(dtype) if dtype is not np.int64 else np.nan_to_num(x, posinf=5, neginf=-5).astype(np.int64)
    if x.ndim >= 2 and draw(st.booleans()):
        x = np.asfortranarray(x)  # the same values in a non-C-contiguous layout
    return x


def _quiet(fn, *args):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


@pytest.mark.parametrize("s, impl", LAYERS, ids=[f"{s.name}-{impl}" for s, impl in LAYERS])
@settings(max_examples=15, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_input_gives_the_right_answer_or_a_clear_error(s, impl, data):
    mode = data.draw(st.sampled_from(s.modes))
    kwargs = {} if impl is None else {"impl": impl}
    x = _input(data.draw, _shape(data.draw, s.shapes[0]))
    # the layer in the input's precision (float32 parameters for float16 and integer inputs)
    layer = s.make(s.shapes[0], **kwargs).astype(np.float64 if x.dtype == np.float64 else np.float32)
    layer.train(mode == "train")
    reference = copy.deepcopy(layer).astype(np.float64)
    if impl is not None:
        reference.impl = "reference"
    mb.seed(0)
    try:
        y = _quiet(layer, x)
    except (ValueError, TypeError) as e:
        assert str(e).startswith(f"{s.name}:"), f"{type(e).__name__} without the layer's name: {e}"
        return
    mb.seed(0)
    y_ref = _quiet(reference, x.astype(np.float64))
    assert y.shape == y_ref.shape
    tol = TOLERANCE.get(np.dtype(y.dtype).type, 0)
    scale = float(np.nanmax(np.abs(y_ref[np.isfinite(y_ref)]), initial=1.0))
    np.testing.assert_allclose(np.asarray(y, np.float64), y_ref, rtol=tol, atol=tol * scale, equal_nan=True)
    if y.dtype.kind != "f" or not y.size:
        return
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = _quiet(layer.backward, dy.astype(y.dtype))
    dx_ref = _quiet(reference.backward, dy)
    scale = float(np.nanmax(np.abs(dx_ref[np.isfinite(dx_ref)]), initial=1.0))
    np.testing.assert_allclose(np.asarray(dx, np.float64), dx_ref, rtol=10 * tol, atol=10 * tol * scale,
                               equal_nan=True)
