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


def _tiny_fit(steps=12, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), BatchIterator(x, y, 8),
               steps, eval_fn=lambda: evaluate(model, x, y), eval_every=4, desc="tiny", **kwargs)


def test_progress_where_nothing_can_be_redrawn_is_whole_lines(monkeypatch):
    """A pipe, a log, or a worker process a notebook started (its stderr copied into the cell):
    no carriage return, no cursor move, a line at the start and one at the end, even for a bar
    stacked at position 1 (the second net of `minibn drift`)."""
    import io
    import sys
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    _tiny_fit(position=1)
    text = err.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("tiny:   0%") and lines[1].startswith("tiny: 100%")
    assert "12/12" in lines[1] and "accuracy=" in lines[1]


def test_progress_in_a_notebook_is_one_line_that_ends_at_the_final_state(monkeypatch):
    """In a kernel the bar is one display output, updated in place (nbclient applies the
    updates to the saved notebook too): no widget whose saved text says 0%, no stacked lines,
    and the final state stays although fit's bar is made with leave=False."""
    pytest.importorskip("IPython")
    import IPython.display

    from minibn import train
    shown = []

    class Handle:
        def update(self, bundle, raw=False):
            shown.append(bundle["text/plain"])

    def display(bundle, raw=False, display_id=None):
        assert raw and display_id is True
        shown.append(bundle["text/plain"])
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(train, "_in_notebook_kernel", lambda: True)
    _tiny_fit(position=1)
    assert shown and shown[0].startswith("tiny:   0%") and shown[-1].startswith("tiny: 100%")
    assert all("\r" not in s and "\n" not in s and "\x1b" not in s and s.strip() for s in shown)


def test_progress_in_a_terminal_is_tqdm_redrawing_its_line(monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    _tiny_fit()
    assert "\rtiny:" in err.getvalue()  # redrawn in place, and cleared at the end (leave=False)


def test_no_progress_writes_nothing(monkeypatch, capsys):
    _tiny_fit(progress=False)
    assert capsys.readouterr().err == ""


def _tiny(rng):
    model = nn.Sequential(nn.Linear(4, 3))
    x = on_active(rng.standard_normal((6, 4)).astype(np.float32))
    return model, x, on_active(np.arange(6) % 3)


def test_evaluate_names_labels_that_are_not_one_class_index_per_row(rng):
    """One-hot or too few labels failed inside NumPy ("operands could not be broadcast")."""
    model, x, y = _tiny(rng)
    assert set(evaluate(model, x, y, loss_fn=nn.SoftmaxCrossEntropy())) == {"accuracy", "loss"}
    one_hot = on_active(np.eye(3, dtype=np.float32)[np.arange(6) % 3])
    with pytest.raises(ValueError, match=r"expected y of shape \(6,\), one integer class index per row of x, "
                                         r"got shape \(6, 3\) of dtype float32 \(one-hot labels\? pass "
                                         r"y.argmax\(axis=1\)\)"):
        evaluate(model, x, one_hot)
    with pytest.raises(ValueError, match=r"expected y of shape \(6,\), .* got shape \(4,\) of dtype int"):
        evaluate(model, x, y[:4])
    with pytest.raises(ValueError, match=r"got shape \(6, 1\) .* \(a column of labels\? pass y.ravel\(\)\)"):
        evaluate(model, x, y[:, None])


def test_fit_names_batches_that_are_not_an_iterator_and_metrics_that_are_not_numbers(rng):
    model, x, y = _tiny(rng)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"batches must be an iterator of \(x, labels\) pairs.* got a list"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, [(x, y)], 1, progress=False)
    # a dict inside the metrics failed later, in the progress bar's "{v:.4f}"
    with pytest.raises(TypeError, match=r"eval_fn must return a dict of numbers .*: 'acc' is a dict"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, iter([(x, y)]), 1, progress=False,
            eval_fn=lambda: {"acc": evaluate(model, x, y)})
    with pytest.raises(TypeError, match=r"eval_fn must return a dict of numbers .*, got 0.5"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, iter([(x, y)]), 1, progress=False, eval_fn=lambda: 0.5)
    # NumPy scalars and 0-d arrays (a CuPy mean is one) are numbers
    hist = fit(model, nn.SoftmaxCrossEntropy(), opt, iter([(x, y)]), 1, progress=True,
               eval_fn=lambda: {"accuracy": np.float32(0.5), "n": 3, "loss": np.array(0.25)})
    assert hist.metrics["loss"][-1] == 0.25 and hist.metrics["n"] == [3, 3]


def test_fit_refuses_an_optimizer_of_another_models_parameters(rng):
    """It trained nothing, without a word."""
    model, x, y = _tiny(rng)
    other = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"the optimizer holds none of the model's parameters .* "
                                         r"SGD\(model.parameters\(\), ...\)"):
        fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(other.parameters(), lr=0.1), iter([(x, y)]), 1, progress=False)
    # a part of the model's parameters (the rest frozen) is fine
    fit(model, nn.SoftmaxCrossEntropy(), optim.SGD([model[0].weight], lr=0.1), iter([(x, y)]), 1, progress=False)
