"""Nothing lost, every error clear: bad input, interrupted runs, files on a shared server.

Each test is one behaviour a user met (or could meet) and what they get now."""

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import minibn as mb
from minibn import adapt, nn, optim
from minibn.checkpoint import CheckpointError
from minibn.cli import build_parser, main
from minibn.train import second_forward

# -- wrong results without a word --------------------------------------------------------------


def _bn_net(track=True):
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=track), nn.ReLU(),
                         nn.Linear(3, 2)).astype(np.float64)


@pytest.mark.parametrize("fn", [adapt.iit, adapt.adabn, adapt.population_statistics, adapt.fold])
def test_adaptation_refuses_a_bn_without_running_statistics_and_changes_nothing(rng, fn):
    model = _bn_net(track=False)
    x = rng.standard_normal((8, 4))
    before = model.eval()(x).copy()
    with pytest.raises(ValueError, match="track_running_stats=False"):
        fn(model, [x]) if fn is not adapt.fold else fn(model)
    np.testing.assert_array_equal(model.eval()(x), before)


def test_second_forward_leaves_a_memorized_bn_without_double_forward_alone(rng):
    plain = nn.MemorizedBatchNorm1d(3, memory_size=4, lam=0.5)
    recorder = nn.MemorizedBatchNorm1d(3, memory_size=4, lam=0.5, double_forward=True)
    model = nn.Sequential(nn.Linear(4, 3), plain, nn.Linear(3, 3), recorder).astype(np.float64)
    x = rng.standard_normal((6, 4))
    model(x)
    assert plain.memory_len == 1 and recorder.memory_len == 0
    second_forward(model, x)
    assert plain.memory_len == 1 and recorder.memory_len == 1  # the plain one recorded its batch once


@pytest.mark.parametrize("labels, bad", [([0, 1, -1], "[-1]"), ([0, 3, 1], "[3]"), ([7, 1, -2], "[-2, 7]")])
def test_loss_refuses_labels_outside_the_classes_naming_them(labels, bad):
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\), got " + bad.replace("[", r"\[")):
        nn.SoftmaxCrossEntropy()(np.zeros((3, 3)), np.array(labels))


@pytest.mark.parametrize("impl", ["reference", "fast", pytest.param("fused", marks=pytest.mark.skipif(
    not mb.kernels.numba_cpu.available(), reason="numba"))])
def test_a_nan_batch_is_reported_and_does_not_poison_the_running_statistics(rng, impl):
    layer = nn.BatchNorm1d(3, impl=impl).astype(np.float64)
    layer(rng.standard_normal((8, 3)))
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    x = rng.standard_normal((8, 3))
    x[2, 1] = np.nan
    with pytest.warns(nn.NumericalWarning, match=r"BatchNorm1d: the batch has NaN or inf values in channel\(s\) \[1\]"):
        with np.errstate(invalid="ignore"):
            y = layer(x)
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()
    assert layer.running_mean[1] == mean[1] and layer.running_var[1] == var[1]  # kept
    assert layer.running_mean[0] != mean[0]  # the others were updated


@pytest.mark.parametrize("impl", ["reference", "fast", pytest.param("fused", marks=pytest.mark.skipif(
    not mb.kernels.numba_cpu.available(), reason="numba"))])
def test_eps_zero_with_a_constant_channel_is_reported(rng, impl):
    layer = nn.BatchNorm1d(3, eps=0.0, impl=impl).astype(np.float64)
    x = rng.standard_normal((8, 3))
    x[:, 2] = 4.0
    with pytest.warns(nn.NumericalWarning, match=r"BatchNorm1d: channel\(s\) \[2\] are constant .*eps = 0.0"):
        with np.errstate(invalid="ignore", divide="ignore"):
            layer(x)


def test_layer_errors_from_an_implementation_name_the_layer():
    with pytest.raises(ValueError, match="BatchNorm2d: expected more than 1 value per channel"):
        nn.BatchNorm2d(3)(np.ones((1, 3, 1, 1), np.float32))
    with pytest.raises(TypeError, match="LayerNorm: the fused path takes float32 or float64"):
        nn.LayerNorm(3, impl="fused")(np.ones((2, 3), np.float16))


# -- errors from deep inside: checkpoints ------------------------------------------------------


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_load_of_a_truncated_file_names_the_path_and_changes_nothing(tmp_path):
    path = tmp_path / "m.npz"
    mb.save(_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    model = _model()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=f"cannot read {path}: the file is truncated or damaged"):
        mb.load(model, path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_of_a_text_file_says_it_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are my notes\n")
    with pytest.raises(CheckpointError, match="it is not a checkpoint") as e:
        mb.load(_model(), path)
    assert "pickle" not in str(e.value)


def test_load_checks_every_entry_before_changing_anything(tmp_path):
    model = _model()
    state = {k: np.asarray(v) for k, v in model.state_dict().items()}
    names = list(state)
    state[names[3]] = np.array(["not", "numbers"] * (state[names[3]].size // 2 or 1))[: state[names[3]].size] \
        .reshape(state[names[3]].shape)
    np.savez(tmp_path / "bad.npz", **state)
    other = _model()
    before = {k: v.copy() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=rf"{names[3]}.*not numbers"):
        mb.load(other, tmp_path / "bad.npz")
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_save_into_a_missing_folder_names_the_path(tmp_path):
    target = tmp_path / "nowhere" / "m.npz"
    with pytest.raises(FileNotFoundError, match=f"cannot write {target}: the folder .*nowhere does not exist"):
        mb.save(_model(), target)


def test_output_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        mb.save(_model(), tmp_path / "m.npz")
        from minibn.experiments import outputs
        outputs.write_all(tmp_path / "out", {"s.json": outputs.json_bytes({"a": 1})})
    finally:
        os.umask(old)
    for name in ("m.npz", "out/s.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755  # the folder too (mkdtemp's is 0700)


# -- the command line ------------------------------------------------------------------------


def _status(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_a_data_error_is_one_line_and_exit_status_2(tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    from minibn.data import mnist
    for name in mnist.FILES:
        (folder / name).write_bytes(b"\x1f\x8b truncated")
    assert _status(["drift", "--data", str(tmp_path), "--steps", "10", "--out", str(tmp_path / "out"), "--quiet",
                    "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minibn drift: error:") and "Traceback" not in err and "--debug" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, match", [
    (["reproduce", "small-batch", "--jobs", "0"], "argument --jobs: must be >= 1, got '0'"),
    (["reproduce", "adaptation", "--seeds", "-1"], "argument --seeds: must be >= 0, got '-1'"),
    (["reproduce", "small-batch", "--steps", "x"], "argument --steps: expected an integer, got 'x'"),
    (["gradcheck", "--seed", "-3"], "argument --seed: must be >= 0"),
])
def test_every_subcommand_validates_its_options(capsys, argv, match):
    assert _status(argv) == 2
    assert match in capsys.readouterr().err


def test_help_shows_defaults_and_bench_writes_to_a_results_folder():
    parser = build_parser()
    assert parser.parse_args(["bench"]).out == "results/bench"
    drift_help = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "drift")[1]
    text = drift_help.format_help()
    assert "(default: 50000)" in text and "(default: 0.5)" in text and "SGD learning rate" in text


def test_python_m_minibn_and_an_unusable_backend_variable():
    env = {**os.environ, "MINIBN_BACKEND": "cupy"}
    r = subprocess.run([sys.executable, "-m", "minibn", "--help"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and "gradcheck" in r.stdout
    if "cupy" not in mb.backend.available():
        r = subprocess.run([sys.executable, "-m", "minibn", "gradcheck"], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "MINIBN_BACKEND='cupy'" in r.stderr and "pip install" in r.stderr


# -- interrupted runs ------------------------------------------------------------------------


def _sleeper(i, pid_dir):
    """A worker that, on Ctrl-C, returns what it has (as a training run returns its history)."""
    # written whole, then renamed: the test must never read a pid file still empty
    tmp = os.path.join(pid_dir, f"{i}.tmp")
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, os.path.join(pid_dir, f"{i}.pid"))
    try:
        time.sleep(60)
        return f"finished {i}"
    except KeyboardInterrupt:
        return f"partial {i}"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_keeps_the_partial_results_of_every_worker(tmp_path):
    from minibn.experiments import _parallel

    def interrupt():
        deadline = time.time() + 60
        def pids():
            return [name for name in os.listdir(tmp_path) if name.endswith(".pid")]

        while len(pids()) < 2 and time.time() < deadline:
            time.sleep(0.05)
        for name in pids():
            os.kill(int((tmp_path / name).read_text()), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # the parent, as a terminal's Ctrl-C does

    # Ctrl-C as in a terminal: a suite started in the background of a shell without job
    # control (`pytest &` in a script) inherits SIGINT ignored, and the parent would not stop
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        results, interrupted = _parallel.run_tasks(_sleeper, [(0, str(tmp_path)), (1, str(tmp_path))], jobs=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted and results == ["partial 0", "partial 1"]


def test_a_failed_plot_leaves_no_output_that_looks_complete(tmp_path, monkeypatch, mnist_dir):
    from minibn.experiments import drift

    def broken(*a, **k):
        raise ValueError("the plot failed")

    monkeypatch.setattr(drift.files, "plot", broken)  # the plot write_outputs draws
    with pytest.raises(ValueError, match="the plot failed"):
        drift.run(drift.DriftConfig(steps=4, eval_every=2), tmp_path / "out", progress=False, jobs=1)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_interrupted_training_evaluates_once_more(rng):
    from minibn.train import fit
    model = nn.Sequential(nn.Linear(4, 3)).astype(np.float64)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)

    class Batches:
        n = 0

        def __next__(self):
            self.n += 1
            if self.n == 4:
                raise KeyboardInterrupt
            return x, y

    evals = []
    h = fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), Batches(), 100,
            eval_fn=lambda: evals.append(1) or {"accuracy": 0.5}, progress=False)
    assert h.interrupted and h.eval_steps == [0, 3] and len(evals) == 2


def test_warnings_are_not_raised_for_clean_inputs(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.BatchNorm1d(3)(rng.standard_normal((8, 3)).astype(np.float32))
