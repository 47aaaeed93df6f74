"""The batch iterator, the training loop and the activation recorder."""

import numpy as np
import pytest

from minibn import backend, nn, optim
from minibn.data import BatchIterator
from minibn.train import ActivationRecorder, evaluate, fit
from tests.helpers import on_active


def test_batches_are_seeded_and_cover_each_epoch(backend_name):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    a = BatchIterator(x, y, 3, seed=5)
    b = BatchIterator(x, y, 3, seed=5)
    first = [backend.asnumpy(next(a)[1]) for _ in range(3)]  # one epoch (the last 1 row is dropped)
    assert all(np.array_equal(f, backend.asnumpy(next(b)[1])) for f in first)
    seen = np.concatenate(first)
    assert len(set(seen.tolist())) == 9
    xb, yb = next(a)
    assert a.epoch == 2 and backend.get_array_module(xb) is backend.xp()
    np.testing.assert_array_equal(backend.asnumpy(xb)[:, 0], 2 * backend.asnumpy(yb))  # rows stay paired


def test_batch_iterator_bad_input():
    with pytest.raises(ValueError, match="x has 4 rows but y has 3"):
        BatchIterator(np.zeros((4, 2)), np.zeros(3), 2)
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 4\], got 5"):
        BatchIterator(np.zeros((4, 2)), np.zeros(4), 5)


def test_recorder_percentiles_match_numpy(backend_name, rng):
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Sigmoid(), nn.Linear(6, 2))
    probe = on_active(rng.standard_normal((50, 5)).astype(np.float32))
    rec = ActivationRecorder(model, 2, [1, 4], probe)
    model.train()
    rec(0)
    assert model[1].training  # the model's mode is restored
    model.eval()
    h = backend.asnumpy(model[1](model[0](probe)))
    expected = np.percentile(h[:, [1, 4]].astype(np.float64), [15, 50, 85], axis=0).T
    np.testing.assert_allclose(rec.values[0], expected, rtol=1e-6)
    assert rec.values.shape == (1, 2, 3) and rec.steps == [0]


def test_fit_records_history_and_interrupt_keeps_it(rng):
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    batches = BatchIterator(x, y, 16)
    calls = []
    h = fit(model, nn.SoftmaxCrossEntropy(), opt, batches, 30, eval_fn=lambda: evaluate(model, x, y),
            eval_every=10, callbacks=[lambda s, m: calls.append(s)], progress=False)
    assert h.eval_steps == [0, 10, 20, 30] and calls == [0, 10, 20, 30] and h.steps_done == 30
    assert len(h.metrics["accuracy"]) == 4 and np.isfinite(h.metrics["train_loss"][1:]).all()

    class Boom:
        def __init__(self):
            self.n = 0

        def __next__(self):
            self.n += 1
            if self.n == 7:
                raise KeyboardInterrupt
            return next(batches)

    h = fit(model, nn.SoftmaxCrossEntropy(), opt, Boom(), 30, eval_every=5, progress=False)
    # an interrupt evaluates once more: the last metrics are those of the 6 steps done
    assert h.interrupted and h.steps_done == 6 and h.eval_steps == [0, 5, 6]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, batches, 0)
