import numpy as np

from minibn.data import disc
from minibn.experiments.deep_init import create_model, init_sweep


def test_disc_is_balanced_and_seeded():
    x, y = disc(20000, seed=3)
    assert x.shape == (20000, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert abs(y.mean() - 0.5) < 0.02  # radius sqrt(2/pi): half the square's area
    assert np.array_equal(disc(10, seed=3)[0], x[:10])


def test_deep_model_has_17_hidden_layers():
    kinds = [type(m).__name__ for m in create_model(True)]
    assert kinds.count("Linear") == 18 and kinds.count("BatchNorm1d") == 17
    assert "BatchNorm1d" not in [type(m).__name__ for m in create_model(False)]


def test_init_sweep_runs_and_bn_trains_where_plain_does_not():
    rows = init_sweep(stds=(1.0,), steps=150, n_train=500, n_test=500)
    by = {r["batchnorm"]: r for r in rows}
    assert not np.isfinite(by[False]["train_loss"]) or by[False]["test_accuracy"] < 0.6  # std 1: diverges
    assert by[True]["test_accuracy"] > 0.8


def test_init_sweep_takes_a_model_factory_and_an_initializer():
    from minibn import nn
    built, inits = [], []

    def make(bn):
        built.append(bn)
        return nn.Sequential(nn.Linear(2, 8), *([nn.LayerNorm(8)] if bn else []), nn.ReLU(), nn.Linear(8, 2))

    def init(model, std):
        inits.append(std)
        for layer in model:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=std)  # the weights only: gamma stays 1, beta 0

    rows = init_sweep(stds=(0.5,), steps=5, n_train=100, n_test=100, make_model=make, init=init)
    assert built == [False, True] and inits == [0.5, 0.5] and len(rows) == 2
