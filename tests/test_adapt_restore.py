"""adapt's rollback: a failed adaptation puts the model back exactly as it was, even when the
model already held a NaN (load_state_dict refuses NaN; the rollback must not)."""

import numpy as np
import pytest

from minibn import adapt, nn


def test_a_failed_adaptation_puts_back_a_model_that_already_held_nan():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model[1].running_mean[0] = np.nan
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    with pytest.raises(Exception) as e:
        adapt.adabn(model, [np.ones((2, 5))])  # the wrong width: fails inside the adaptation
    assert "NaN" not in str(e.value)  # the adaptation's own error, not the rollback's
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
