"""Runs never lose their work, and what they write is what happened.

* A full disk (or any error) while a run writes its folder leaves the previous run's folder
  exactly as it was: the new folder is built beside it and renamed into place whole. A
  folder holds one run's files, never the new curves beside the old figure.
* SIGTERM (``kill``, ``timeout``, a batch scheduler) saves what Ctrl-C saves, exits with 143,
  and leaves no worker process behind; workers also end when their parent is killed.
* summary.json is standard JSON: NaN is written as null, not as a bare NaN.
* A seed given twice is refused: it would be one run counted twice, with an interval of width 0.
"""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from minibn import _files
from minibn.cli import main
from minibn.data import mnist
from minibn.experiments import drift, everything, lr_sweep, outputs, small_batch, stats

needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="reads /proc (Linux)")


def snapshot(folder):
    """{path relative to folder: bytes} of every file below ``folder``."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class _FullFile:
    """A file on a full disk: the first write stores half of its bytes, then fails."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _where(f):
    """The path of an open file (from its descriptor: a temporary file may be opened by
    descriptor, or through an opener that names its folder, not the file)."""
    return os.readlink(f"/proc/self/fd/{f.fileno()}")


def full_disk(m, under, files_ok):
    """Make the disk below ``under`` fill up: the first ``files_ok`` files opened for writing
    there are written, the next one fails partway (ENOSPC) and so does every later one.
    Files elsewhere (numba's cache) are not affected. ``m``: a monkeypatch."""
    real = io.open
    opened = []

    def fake_open(file, mode="r", *args, **kwargs):
        f = real(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        path = _where(f) if writing else ""
        probe = os.path.basename(path).startswith(".minibn-write-test-")  # check_out_dir's, before the run
        if writing and path.startswith(str(under) + os.sep) and not probe:
            opened.append(file)
            if len(opened) > files_ok:
                return _FullFile(f)
        return f

    m.setattr("builtins.open", fake_open)
    m.setattr(io, "open", fake_open)  # os.fdopen and pathlib open files through io.open


# -- 1. a full disk keeps the previous run -------------------------------------------------------

@needs_proc
def test_a_full_disk_leaves_the_previous_drift_run_as_it_was(tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / "drift"
    drift.run(drift.DriftConfig(steps=4, eval_every=2), out, progress=False, jobs=1)
    before = snapshot(out)
    assert set(before) == {"summary.json", "curves.csv", "fig1.png", "provenance.json"}
    with monkeypatch.context() as m:
        full_disk(m, tmp_path, files_ok=1)  # the new curves.csv is written, the next file fails
        with pytest.raises(OSError, match="No space left on device"):
            drift.run(drift.DriftConfig(steps=6, eval_every=3, seed=1), out, progress=False, jobs=1)
    assert snapshot(out) == before  # the previous run, whole: not its figure beside new curves
    assert os.listdir(tmp_path) == ["drift"]  # and no half-written folder beside it


def test_a_new_folder_replaces_the_old_one_whole_and_keeps_what_is_not_the_runs(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "cpu.md").write_text("old table")
    (out / "cpu.png").write_text("old figure")
    (out / "notes.md").write_text("a note of the user's")
    (out / "old_runs").mkdir()
    (out / "old_runs" / "a.csv").write_text("kept")
    _files.replace_folder(out, {"cpu.md": b"new table"}, outputs=("cpu.md", "cpu.png"))
    # the previous run's figure is gone with it (this run made none); the rest is not the run's
    assert snapshot(out) == {"cpu.md": b"new table", "notes.md": b"a note of the user's",
                             "old_runs/a.csv": b"kept"}
    assert os.listdir(tmp_path) == ["bench"]


def test_an_error_while_writing_leaves_the_old_folder_and_nothing_beside_it(tmp_path):
    out = tmp_path / "deeper" / "run"
    with pytest.raises(RuntimeError):
        with _files.new_folder(out, ("*",)) as new:
            (new / "a.txt").write_text("half")
            raise RuntimeError("the plot failed")
    assert os.listdir(tmp_path) == []  # not even the parent folder it made
    out.mkdir(parents=True)
    (out / "a.txt").write_text("previous")
    with pytest.raises(OSError):
        with _files.new_folder(out, ("*",)) as new:
            (new / "a.txt").write_text("new")
            raise OSError(errno.ENOSPC, "full")
    assert snapshot(out) == {"a.txt": b"previous"} and os.listdir(out.parent) == ["run"]


def test_an_interrupt_publishes_what_was_written_and_nothing_if_nothing_was(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with _files.new_folder(out, ("*",)):
            raise KeyboardInterrupt  # before anything was written: the previous run stays
    assert snapshot(out) == {"summary.json": b"previous"}
    with pytest.raises(KeyboardInterrupt):
        with _files.new_folder(out, ("*",)) as new:
            (new / "summary.json").write_text("partial")
            raise KeyboardInterrupt  # the partial results, as Ctrl-C promises
    assert snapshot(out) == {"summary.json": b"partial"} and os.listdir(tmp_path) == ["run"]


def test_a_sweep_that_fails_after_its_runs_leaves_the_previous_sweep_whole(tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / "sweep"
    lr_sweep.run(lrs=(0.5, 0.1), steps=4, out=out, jobs=1, progress=False)
    before = snapshot(out)
    assert {"table.md", "lr_sweep.png", "lr_0.5/fig1.png", "lr_0.1/curves.csv"} <= set(before)

    def broken(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lr_sweep, "plot", broken)
    with pytest.raises(OSError):
        lr_sweep.run(lrs=(0.5, 0.1), steps=4, out=out, jobs=1, progress=False, seed=1)
    assert snapshot(out) == before  # not the new runs' lr_*/ beside the previous sweep's table
    assert os.listdir(tmp_path) == ["sweep"]


def test_reproduce_all_that_fails_partway_leaves_the_previous_folder_whole(tmp_path, monkeypatch):
    out = tmp_path / "figures"
    (out / "drift").mkdir(parents=True)
    (out / "drift" / "fig1.png").write_text("previous figure")
    (out / "provenance.json").write_text("previous record")
    (out / "sync_bn").mkdir()  # written by `mpiexec ... reproduce sync-bn`, not by `all`
    (out / "sync_bn" / "table.md").write_text("sync table")
    before = snapshot(out)

    def fake_drift(cfg, folder, **k):
        outputs.write_all(folder, {"fig1.png": b"new figure"})
        return {}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(drift, "run", fake_drift)
    monkeypatch.setattr(small_batch, "run", full)
    with pytest.raises(OSError):
        everything.run(out, fast=True, progress=False)
    assert snapshot(out) == before and os.listdir(tmp_path) == ["figures"]


@needs_proc
def test_bench_replaces_its_two_files_together_and_keeps_the_folders_other_notes(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minibn import bench
    for name in ("bn_rows", "step_rows"):  # bench.suite: the names bench.run looks up
        monkeypatch.setattr(bench.suite, name, lambda *a, **k: [])
    monkeypatch.setattr(bench.suite, "copy_bandwidth_cpu", lambda *a, **k: 1.0)
    monkeypatch.setattr(bench.suite, "report", lambda *a, **k: "the new table")
    monkeypatch.setattr(bench.suite, "targets", lambda *a, **k: [])
    monkeypatch.setattr(bench.suite, "plot", lambda rows: plt.figure())
    out = tmp_path / "benchmarks"
    out.mkdir()
    for name, text in (("cpu.md", "old table"), ("cpu.png", "old figure"), ("distributed.md", "other notes")):
        (out / name).write_text(text)
    before = snapshot(out)
    with monkeypatch.context() as m:
        full_disk(m, tmp_path, files_ok=1)
        with pytest.raises(OSError):
            bench.run(out, fast=True, progress=False)
    assert snapshot(out) == before and os.listdir(tmp_path) == ["benchmarks"]
    bench.run(out, fast=True, progress=False)
    after = snapshot(out)
    assert after["cpu.md"].startswith(b"the new table") and after["cpu.png"].startswith(b"\x89PNG")
    assert after["distributed.md"] == b"other notes"


def test_the_output_folder_may_not_be_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["drift", "--steps", "10", "--out", "."]) == 2
    assert "it is the current folder or holds it" in capsys.readouterr().err


# -- 2. SIGTERM saves what Ctrl-C saves, and no process is left behind --------------------------

def _children(pid):
    """The pids of the live (not zombie) child processes of ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "(command)": state, ppid, ...
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _start_drift(out, env_extra=None):
    """`python -m minibn drift` with both nets in two worker processes, and a thread
    (``process.reader``) that collects its stderr; returns (process, lines of stderr so far)."""
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "minibn", "drift", "--steps", "100000", "--eval-every", "500",
                             "--jobs", "2", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    lines = []
    proc.reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    proc.reader.start()
    return proc, lines


def _wait_until_both_nets_train(proc, lines, limit=180):
    """Until each worker's progress bar has started (its first line: training, not loading)."""
    deadline = time.time() + limit
    while not (any(s.startswith("Without BN") for s in lines) and any(s.startswith("With BN") for s in lines)):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"drift did not start training both nets in {limit} s:\n{''.join(lines)}")
        time.sleep(0.2)
    time.sleep(2)  # some steps of each


def _wait_gone(pids, limit=20):
    deadline = time.time() + limit
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


@needs_proc
def test_sigterm_saves_what_ctrl_c_saves_exits_143_and_leaves_no_process(tmp_path, mnist_dir):
    out = tmp_path / "D"
    proc, lines = _start_drift(out)
    try:
        _wait_until_both_nets_train(proc, lines)
        children = _children(proc.pid)
        assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc.reader.join(30)  # until it has read the last lines (the end of stderr)
    err = "".join(lines)
    assert proc.returncode == 143, err  # 128 + SIGTERM: stopped from outside, outputs written
    assert "interrupted: the outputs so far (both nets, up to the interrupt) are in" in err
    assert _wait_gone(children) == []  # no worker left running, or waiting for work
    # a whole, consistent partial result: both nets' curves, figure, summary and record
    assert sorted(os.listdir(out)) == ["curves.csv", "fig1.png", "provenance.json", "summary.json"]
    assert os.listdir(tmp_path) == ["D"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and set(summary["nets"]) == {"baseline", "bn"}, err
    for net in summary["nets"].values():
        assert 0 < net["steps"] < 100000
    header = (out / "curves.csv").read_text().splitlines()[0]
    assert "train_loss_baseline" in header and "train_loss_bn" in header


@needs_proc
def test_workers_end_when_their_parent_is_killed(tmp_path, mnist_dir):
    proc, lines = _start_drift(tmp_path / "D")
    try:
        _wait_until_both_nets_train(proc, lines)
        children = _children(proc.pid)
        proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up by the parent
        proc.wait(timeout=30)
        assert children and _wait_gone(children) == []  # they noticed and exited (no orphans training on)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_interrupt_inside_a_compiled_function_stops_training_like_any_other(rng):
    """numba reports a KeyboardInterrupt that arrives while its compiled code calls back into
    Python as a SystemError caused by it (seen in a worker stopped by SIGTERM): fit must stop
    and return the steps done, as for Ctrl-C, not lose the run."""
    from minibn import nn, optim
    from minibn.train import fit
    model = nn.Sequential(nn.Linear(4, 3)).astype(np.float64)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)

    class Batches:
        n = 0

        def __next__(self):
            self.n += 1
            if self.n == 4:
                try:
                    raise KeyboardInterrupt
                except KeyboardInterrupt as e:
                    raise SystemError("CPUDispatcher(forward) returned a result with an exception set") from e
            return x, y

    h = fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), Batches(), 100,
            eval_fn=lambda: {"accuracy": 0.5}, progress=False)
    assert h.interrupted and h.steps_done == 3 and h.eval_steps == [0, 3]

    class Broken:
        def __next__(self):
            raise SystemError("a real bug")  # not caused by an interrupt: raised as it is

    with pytest.raises(SystemError, match="a real bug"):
        fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), Broken(), 5, progress=False)


# -- 3. standard JSON ----------------------------------------------------------------------------

def _strict(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_json_has_null_where_python_would_write_nan():
    data = _strict(outputs.json_bytes({"one seed": stats.summarize([2.0]), "inf": float("-inf"),
                                   "numpy": np.float64("nan"), "array": np.array([1.5, np.nan]),
                                   "fine": [1, 2.5, "x", None, True]}))
    assert data["one seed"] == {"mean": 2.0, "std": None, "n": 1, "ci95": [None, None]}
    assert data["inf"] is None and data["numpy"] is None and data["array"] == [1.5, None]
    assert data["fine"] == [1, 2.5, "x", None, True]


def test_a_diverged_run_writes_a_summary_every_json_reader_accepts(tmp_path, mnist_dir):
    out = tmp_path / "drift"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the diverging run warns of its NaN batches: expected here
        summary = drift.run(drift.DriftConfig(steps=4, eval_every=2, lr=1e30, init_std=100), out, progress=False,
                            jobs=1)
    assert np.isnan(summary["nets"]["bn"]["p50_final"])  # the run did diverge
    written = _strict((out / "summary.json").read_text())
    assert written["nets"]["bn"]["p50_final"] is None
    _strict((out / "provenance.json").read_text())


# -- 4. a seed given twice ---------------------------------------------------------------------

@pytest.fixture
def no_work(monkeypatch):
    def work(*a, **k):
        raise AssertionError("work started before the seeds were checked")
    monkeypatch.setattr(drift.runner, "train_net", work)
    monkeypatch.setattr(mnist, "ensure_files", work)


@pytest.mark.parametrize("argv", [["reproduce", "small-batch", "--fast"], ["reproduce", "adaptation", "--fast"],
                                  ["reproduce", "all", "--fast"], ["reproduce", "sync-bn", "--fast"]],
                         ids=lambda a: a[1])
def test_a_seed_given_twice_is_refused_before_any_work(tmp_path, capsys, no_work, argv):
    if argv[1] == "sync-bn":
        from minibn import distributed
        if not distributed.available():
            pytest.skip("mpi4py is not installed")
    assert main([*argv, "--seeds", "3", "0", "3", "--out", str(tmp_path / "out")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # (sync-bn notes 1 rank)
    assert len(errors) == 1 and "seeds must differ: 3 given more than once in [3, 0, 3]" in errors[0]
    assert os.listdir(tmp_path) == []
