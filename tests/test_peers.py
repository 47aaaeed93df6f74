"""minibn.bench.peers: each framework's training step in a process of its own (timings are
reported by `minibn bench`, never asserted)."""

import numpy as np
import pytest

from minibn.bench import peers
from minibn.bench.report import JAX, report, targets
from minibn.experiments.fig1_net import build_net

pytestmark = pytest.mark.slow


def test_jax_step_is_the_minibn_step():
    """The JAX network is minibn's: from the same parameters, one SGD step on the same batch
    gives the same loss, weights and BN parameters (float32)."""
    pytest.importorskip("jax")
    from minibn.bench.steps import minibn_train_step

    x, y = peers.data("fig1", 60)
    model = build_net(True)[0]
    start = {k: np.array(v) if not isinstance(v, list) else [np.array(a) for a in v]
             for k, v in peers.jax_fig1_params(model).items()}
    step = peers.jax_fig1_step(x, y, lr=0.1, params=start)
    loss = float(step())
    minibn_train_step(model, x, y, lr=0.1)()
    after = peers.jax_fig1_params(model)
    jax_after = step.state[0]
    assert 2.0 < loss < 2.6  # ln 10 at the start, about
    for key in ("W", "gamma", "beta"):
        for ours, theirs, before in zip(after[key], jax_after[key], start[key]):
            np.testing.assert_allclose(np.asarray(theirs), ours, rtol=1e-4, atol=1e-6, err_msg=key)
            assert not np.allclose(ours, before), key  # the step moved it
    np.testing.assert_allclose(np.asarray(jax_after["W_out"]), after["W_out"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax_after["b_out"]), after["b_out"], rtol=1e-4, atol=1e-6)
    running_mean, running_var = (np.asarray(a) for a in step.state[1][0])
    np.testing.assert_allclose(running_mean, model[1].running_mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(running_var, model[1].running_var, rtol=1e-4, atol=1e-6)


def test_a_process_times_its_blocks():
    times = peers.run_process("fig1", "minibn", 8, blocks=2, steps=3, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_unknown_pairs_are_refused():
    with pytest.raises(ValueError, match="'JAX \\(jit\\)' has no 'conv' step"):
        peers.make_step("conv", JAX, 8)


def test_rounds_rotate_the_order_and_the_row_pairs_them(monkeypatch):
    calls = []

    def fake(net, framework, batch, blocks, steps, warmup):
        calls.append(framework)
        return [{"minibn": 1.0, "PyTorch CPU": 1.5, JAX: 0.5}[framework]] * blocks

    monkeypatch.setattr(peers, "run_process", fake)
    monkeypatch.setattr(peers, "installed", lambda f: True)
    row = peers.peer_row("Fig. 1 MLP step (BN)", "fig1", 60, rounds=3, blocks=2, steps=1)
    assert calls == ["minibn", "PyTorch CPU", JAX, "PyTorch CPU", JAX, "minibn", JAX, "minibn", "PyTorch CPU"]
    assert row["shape"] == (60, 784) and row["rounds"]["minibn"] == [1.0, 1.0, 1.0]
    found = {d: (v, goal, met) for d, v, goal, met, _ in targets([row])}
    assert found["Fig. 1 MLP step, batch 60, speed vs JAX (jit of the whole step)"] == (0.5, 1.0, False)
    assert found["Fig. 1 MLP step, batch 60, speed vs PyTorch CPU"] == (1.5, 1.5, True)
    text = report([row], 1e10, {"cpu": "test"})
    assert "each framework in a process of its own, 3 round(s)" in text and "| JAX (jit) |" in text


def test_a_framework_not_installed_is_left_out(monkeypatch):
    monkeypatch.setattr(peers, "installed", lambda f: f == "minibn")
    monkeypatch.setattr(peers, "run_process", lambda *a, **k: [1.0])
    row = peers.peer_row("small conv net step", "conv", 64, rounds=1, blocks=1, steps=1)
    assert set(row["t"]) == {"minibn"}
