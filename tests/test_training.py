"""End to end: a small MLP learns a synthetic 2-class problem on each backend present."""

import numpy as np

from minibn import backend, nn, optim
from tests.helpers import on_active


def two_moons(n, rng):
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.stack([np.cos(t) + label * 1.0 - 0.5, np.sin(t) * (1 - 2 * label) + 0.25 * (2 * label - 1)], 1)
    return (x + 0.1 * rng.standard_normal((n, 2))).astype(np.float32), label


def test_mlp_learns_two_moons(backend_name):
    rng = np.random.default_rng(0)
    x, y = two_moons(1000, rng)
    xt, yt = two_moons(500, rng)
    model = nn.Sequential(nn.Linear(2, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 2))
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _step in range(600):
        idx = rng.integers(0, len(x), 32)
        loss = loss_fn(model(on_active(x[idx])), on_active(y[idx]))
        model.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
    assert np.isfinite(float(loss))
    model.eval()
    pred = backend.asnumpy(model(on_active(xt)).argmax(axis=1))
    assert (pred == yt).mean() > 0.95
