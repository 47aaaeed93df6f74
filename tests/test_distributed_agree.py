"""Distributed runs agree or stop.

* Ranks started with different settings (another ``--steps``: a hang; another ``--seed``:
  batches that do not fit together) stop at once, every rank with an error naming what differs.
* Every collective of a command's run has a timeout (:data:`minibn.distributed.RUN_TIMEOUT`).
* The training loss a distributed run records is the whole batch's, as one process records it,
  not rank 0's part of the batch.

Small jobs: 2 ranks, a few steps, a time limit on each (2 cores here).
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minibn import distributed
from minibn.cli import main
from minibn.experiments import drift, sync_bn

CHECKS = Path(__file__).parent / "mpi" / "checks.py"


def mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


@pytest.fixture(scope="module")
def mpi_job():
    """run(*commands, limit): one MPI job, one rank per command (MPMD: ``mpiexec -n 1 A : -n 1 B``),
    each command a list of arguments to Python; a job that outlives ``limit`` fails the test."""
    if not (distributed.available() and mpiexec()):
        if os.environ.get("CI"):
            pytest.fail('CI must install mpi4py and an MPI library (pip install -e ".[test]" brings them)')
        pytest.skip("mpi4py or mpiexec is not installed (pip install \"minibn[mpi]\")")

    def run(*commands, limit=90):
        cmd = [mpiexec()]
        for i, args in enumerate(commands):
            cmd += ([":"] if i else []) + ["-n", "1", sys.executable, *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired as e:  # the hang this file is about
            pytest.fail(f"{' '.join(cmd)} did not finish in {limit} s (a hang):\n{e.stdout}\n{e.stderr}")
    return run


DRIFT = ["-m", "minibn", "drift", "--distributed", "--eval-every", "10", "--quiet"]


@pytest.mark.parametrize("option, values, expected", [
    ("--steps", ("20", "30"), "steps: 20 on rank 0, 30 on rank 1"),
    ("--seed", ("0", "1"), "seed: 0 on rank 0, 1 on rank 1"),
    ("--norm", ("batchnorm", "renorm"), 'norm: "batchnorm" on rank 0, "renorm" on rank 1'),
])
def test_drift_ranks_started_differently_stop_with_an_error_naming_the_difference(
        mpi_job, tmp_path, mnist_dir, option, values, expected):
    base = [*DRIFT, "--out", str(tmp_path / "out"), *(["--steps", "20"] if option != "--steps" else [])]
    done = mpi_job(*[[*base, option, v] for v in values], limit=60)
    assert done.returncode != 0
    # every rank says it (the launcher may interleave the ranks' lines: counted, not split)
    error = f"minibn drift: error: the 2 ranks were not started with the same configuration ({expected})"
    assert done.stderr.count(error) == 2 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_sync_bn_ranks_started_differently_stop_with_an_error(mpi_job, tmp_path, mnist_dir):
    base = ["-m", "minibn", "reproduce", "sync-bn", "--fast", "--quiet", "--out", str(tmp_path / "out")]
    done = mpi_job([*base, "--steps", "20"], [*base, "--steps", "30", "--seeds", "0", "1"], limit=60)
    assert done.returncode != 0
    assert "steps: 20 on rank 0, 30 on rank 1" in done.stderr and "seeds: [0] on rank 0, [0, 1] on rank 1" \
        in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_the_configuration_check_and_the_global_loss_over_ranks(mpi_job):
    done = mpi_job([str(CHECKS), "agree"], [str(CHECKS), "agree"], limit=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == ["ok", "configs_must_agree", "ok", "global_loss_equals_one_process"]


def _train_loss(folder):
    with open(folder / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    return {net: [float(r[f"train_loss_{net}"]) for r in rows[1:]] for net in drift.NETS}  # row 0: no loss yet


def test_the_recorded_training_loss_is_the_whole_batchs(mpi_job, tmp_path, mnist_dir):
    """`mpiexec -n 2 minibn drift --distributed` records the same training-loss curve as one
    process (float32 sums in another order apart), not that of rank 0's 30 rows of each 60."""
    args = ["drift", "--steps", "40", "--eval-every", "10", "--quiet"]
    done = mpi_job(*[["-m", "minibn", *args, "--distributed", "--out", str(tmp_path / "mpi")]] * 2, limit=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    mpi, one = _train_loss(tmp_path / "mpi"), _train_loss(tmp_path / "one")
    for net in drift.NETS:
        assert len(mpi[net]) == len(one[net]) == 4
        assert mpi[net] == pytest.approx(one[net], rel=2e-4), net


def test_the_commands_give_every_collective_a_timeout(monkeypatch, tmp_path):
    """In one process (a job of one rank): the communicator each command runs on."""
    if not distributed.available():
        pytest.skip("mpi4py is not installed")
    seen = []

    def record(cfg, out, *a, comm=None, **k):
        seen.append(comm or a[-1])
        return (None, None) if isinstance(cfg, sync_bn.SyncBNConfig) else None

    monkeypatch.setattr(drift.cli, "run", record)  # the run `minibn drift` calls
    monkeypatch.setattr(sync_bn, "run", record)
    assert main(["drift", "--distributed", "--steps", "10", "--out", str(tmp_path / "a")]) == 0
    assert main(["reproduce", "sync-bn", "--fast", "--out", str(tmp_path / "b")]) == 0
    assert [c.timeout for c in seen] == [distributed.RUN_TIMEOUT] * 2
    assert 60 <= distributed.RUN_TIMEOUT <= 3600  # generous, and still an end
