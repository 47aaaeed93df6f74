import numpy as np, pytest
from minibn import nn, adapt

def test_a_failed_adaptation_puts_back_a_model_that_already_held_nan():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model[1].running_mean[0] = np.nan
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    with pytest.raises(Exception) as e:
        adapt.adabn(model, [np.ones((2, 5))])  # wrong width: fails inside
    assert "NaN" not in str(e.value)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
