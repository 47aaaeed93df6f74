"""The `minibn` command line: what a user sees when something is wrong, and before any work.

Each test is one promise of the command line (the README and docs/reproductions.md): a bad
option is one line on stderr and exit status 2; an output folder that cannot be written is
said before training, not after it; a mistyped --data creates nothing; the speed figures are
of training, not of compiling.
"""

import argparse
import dataclasses
import errno
import os
import time

import pytest

from minibn import cli, cli_args, nn
from minibn.cli import build_parser, main
from minibn.data import mnist
from minibn.experiments import drift


def status(argv):
    """main()'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def all_parsers(parser):
    """Every (sub)parser below ``parser``, with ``parser`` first."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += all_parsers(sub)
    return found


# -- 1. a bad option: one line and exit status 2 ----------------------------------------------

@pytest.mark.parametrize("argv, start", [
    (["drift", "--steps", "x"], "minibn drift: error: argument --steps: expected an integer, got 'x'"),
    (["drift", "--no-such-option"], "minibn drift: error: unrecognized arguments: --no-such-option"),
    (["reproduce", "small-batch", "--jobs", "0"], "minibn reproduce small-batch: error: argument --jobs"),
    (["reproduce"], "minibn reproduce: error: the following arguments are required"),
    ([], "minibn: error: the following arguments are required"),
    (["no-such-command"], "minibn: error: argument COMMAND: invalid choice: 'no-such-command'"),
])
def test_a_bad_option_is_one_line_on_stderr_with_a_hint(capsys, argv, start):
    assert status(argv) == 2
    out, err = capsys.readouterr()
    prog = start.split(": error:")[0]
    assert err.count("\n") == 1 and err.startswith(start) and "usage:" not in err and out == ""
    assert err.rstrip().endswith(f"({prog} --help lists the options)")


def test_help_still_shows_the_whole_usage(capsys):
    assert status(["drift", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: minibn drift [-h]")


def test_every_parser_reports_errors_in_one_line_and_describes_itself():
    parsers = all_parsers(build_parser())
    assert {p.prog for p in parsers} >= {"minibn gradcheck", "minibn bench", "minibn drift",
                                         "minibn reproduce small-batch", "minibn reproduce all"}
    for p in parsers:
        assert isinstance(p, cli.Parser), p.prog
        assert p.description and len(p.description) > 40, f"{p.prog} has no description"


# -- 2. the output folder: checked before any work ---------------------------------------------

OUTPUT_ARGVS = [
    ["drift", "--steps", "10", "--out"],
    ["bench", "--fast", "--out"],
    ["reproduce", "small-batch", "--fast", "--out"],
    ["reproduce", "adaptation", "--fast", "--out"],
    ["reproduce", "lr-sweep", "--fast", "--out"],
    ["reproduce", "sync-bn", "--fast", "--out"],
    ["reproduce", "all", "--fast", "--out"],
    ["course", "notebooks"],
    ["course", "nbgrader"],
]


@pytest.fixture
def no_work(monkeypatch):
    """Training, loading the data or benchmarking fails the test: the check must come first."""
    def work(*a, **k):
        raise AssertionError("work started before the output folder was checked")
    monkeypatch.setattr(drift.runner, "train_net", work)
    monkeypatch.setattr(drift.runner, "ensure_files", work)  # (drift loads it for its workers)
    monkeypatch.setattr(mnist, "ensure_files", work)  # under every experiment's load_mnist
    monkeypatch.setattr("minibn.bench.run", work)


@pytest.mark.parametrize("argv", OUTPUT_ARGVS, ids=lambda a: " ".join(a[:2]))
def test_every_subcommand_checks_its_output_folder_before_work(tmp_path, capsys, no_work, argv):
    (tmp_path / "a_file").write_text("in the way")
    out = tmp_path / "a_file" / "out"
    assert status([*argv, str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write to {out}: {tmp_path / 'a_file'} exists and is not a folder" in err


def test_an_unwritable_folder_fails_before_training(tmp_path, capsys, no_work):
    if getattr(os, "geteuid", lambda: -1)() == 0:
        pytest.skip("root writes into a read-only folder (the probe-failure test below covers the report)")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert status(["drift", "--steps", "10", "--out", str(locked / "out")]) == 2
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert f"cannot write to {locked / 'out'}: creating a file in {locked} failed (Permission denied)" in err


def test_a_folder_that_takes_no_file_fails_before_training(tmp_path, capsys, no_work, monkeypatch):
    """A read-only file system, as root too: the probe write fails, whatever the permission bits say."""
    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(cli_args.tempfile, "NamedTemporaryFile", read_only)
    assert status(["drift", "--out", str(tmp_path / "out")]) == 2
    assert f"creating a file in {tmp_path} failed (Read-only file system)" in capsys.readouterr().err


def test_the_check_creates_nothing_and_accepts_a_new_or_existing_folder(tmp_path):
    cli_args.check_out_dir(tmp_path / "new" / "deeper")
    cli_args.check_out_dir(tmp_path)
    assert os.listdir(tmp_path) == []  # no folder made, no probe file left


# -- 3. a missing data folder: said so, and not created ---------------------------------------

def test_a_missing_data_folder_is_named_and_not_created(tmp_path, capsys, monkeypatch):
    def offline(url, timeout):
        raise OSError("no network")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    data = tmp_path / "no" / "such" / "folder"
    assert status(["drift", "--data", str(data), "--steps", "10", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("minibn drift: error:") and f"({tmp_path / 'no'} does not exist)" in first
    # the missing folder is said next to it, not after "the download failed" as if it were its cause
    assert f"not found in {data / 'mnist'} ({tmp_path / 'no'} does not exist) and the download failed (below)" in first
    assert first.endswith("or run it again when a mirror can be reached and sends them (why each mirror failed is "
                          "below).")
    assert "no network" in err
    assert all(name in first for name in mnist.FILES)
    assert os.listdir(tmp_path) == []  # neither the data folder nor the outputs

    with pytest.raises(mnist.DataError, match=r"does not exist\) and downloading is off.*t10k-labels-idx1-ubyte.gz.*"
                                              r"let load_mnist download them \(download=True\)"):
        mnist.load_mnist(root=data, download=False)
    assert os.listdir(tmp_path) == []


# -- 4. speed figures: training steps, not the first call's compilation -----------------------

class JumpingClock:
    """The training loop's clock (``minibn.train.time``), moved on by ``jump`` seconds when asked:
    a slow call on it, whatever the machine's load does to the real steps."""

    def __init__(self):
        self.offset = 0.0

    def perf_counter(self):
        return time.perf_counter() + self.offset

    def __getattr__(self, name):
        return getattr(time, name)


def test_steps_per_second_leaves_out_the_compilation_of_the_first_step(tmp_path, mnist_dir, monkeypatch):
    """The first backward in a process takes 1,000 s, as numba compiling a kernel takes seconds;
    the 20 timed steps must not include it."""
    clock, real, calls = JumpingClock(), nn.Linear.backward, []

    def first_call_compiles(self, *a, **k):
        if not calls:
            clock.offset += 1000.0
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr("minibn.train.time", clock)
    monkeypatch.setattr(nn.Linear, "backward", first_call_compiles)
    summary = drift.run(drift.DriftConfig(steps=20, eval_every=20), tmp_path / "out", nets=("baseline",),
                        progress=False, jobs=1)
    # with the compilation in them: 20 steps in over 1,000 s, 0.02 steps/s
    assert summary["nets"]["baseline"]["steps_per_second"] > 0.5


# -- 5. the end of `minibn drift`: readable lines, no bare JSON -------------------------------

def test_drift_ends_with_readable_lines_and_keeps_json_in_the_summary(tmp_path, mnist_dir, capsys):
    out = tmp_path / "out"
    assert main(["drift", "--bn", "--steps", "20", "--jobs", "1", "--quiet", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert not any(line.lstrip().startswith(("{", "[")) for line in lines), lines
    assert lines[0].strip().startswith("With BN: final test accuracy")
    assert any(line.startswith("steps/s: training steps only") for line in lines)
    assert "summary.json" in lines[-1] and (out / "summary.json").exists()


# -- 7. gradcheck: still passes ----------------------------------------------------------------

def test_gradcheck_passes_and_exits_0(capsys):
    assert main(["gradcheck"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(" 0 failed")


def test_gradcheck_names_a_layer_it_could_not_check(capsys, monkeypatch):
    """Without mpi4py SyncBatchNorm has no cases: the table said nothing of it."""
    from minibn import gradcheck, testing
    specs = [dataclasses.replace(s, installed=lambda: False) if s.cls is nn.SyncBatchNorm else s
             for s in testing.SPECS]
    monkeypatch.setattr(testing, "SPECS", specs)
    linear = [s for s in specs if s.cls is nn.Linear]  # one layer's rows: the table itself is not the point
    monkeypatch.setattr(gradcheck, "layer_cases", lambda: testing.layer_cases(linear))
    assert main(["gradcheck"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert ('not checked here: SyncBatchNorm, which needs mpi4py and an MPI library: pip install "minibn[mpi]"'
            in lines[-2])
    assert lines[-1].endswith(" 0 failed")


def test_version(capsys):
    from minibn import __version__
    assert status(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"minibn {__version__}"


@pytest.mark.parametrize("name, module", [("small-batch", "small_batch"), ("adaptation", "adaptation")])
def test_an_experiments_last_line_names_every_file_it_writes(tmp_path, capsys, monkeypatch, name, module):
    """Its outputs (OUTPUTS, what the run writes) include provenance.json, which the line left out."""
    import importlib
    experiment = importlib.import_module(f"minibn.experiments.{module}")
    monkeypatch.setattr(experiment, "run", lambda cfg, out, data, jobs, progress: (None, "the table"))
    assert main(["reproduce", name, "--fast", "--quiet", "--out", str(tmp_path / "out")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"outputs in {tmp_path / 'out'}/") and all(f in last for f in experiment.OUTPUTS), last
