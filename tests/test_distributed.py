"""minibn.distributed and SyncBatchNorm.

The checks that need several processes run under ``mpiexec -n 2`` and ``-n 4``
(tests/mpi/checks.py: SyncBN = BN on the concatenated batch, data-parallel SGD = one process
with the whole batch, the gradient check across ranks, errors instead of hangs). Each job has
a wall-clock limit here and every collective in it a timeout. Without mpi4py or mpiexec they
skip, except when CI is set: CI installs them (the test extra).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minibn import distributed, nn

CHECKS = Path(__file__).parent / "mpi" / "checks.py"


def mpiexec():
    """The mpiexec beside this Python (a virtual environment's MPICH), else on the PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


@pytest.fixture(scope="module")
def launcher():
    if not (distributed.available() and mpiexec()):
        if os.environ.get("CI"):
            pytest.fail('CI must install mpi4py and an MPI library (pip install -e ".[test]" brings them)')
        pytest.skip("mpi4py or mpiexec is not installed (pip install \"minibn[mpi]\")")

    def run(ranks, *args, limit=90):
        cmd = [mpiexec(), "-n", str(ranks), sys.executable, *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired as e:  # a hang is a failure, with what it printed
            pytest.fail(f"{' '.join(cmd)} did not finish in {limit} s:\n{e.stdout}\n{e.stderr}")
    return run


@pytest.mark.parametrize("ranks", [2, 4])
def test_sync_bn_and_data_parallel_equal_one_process(launcher, ranks):
    done = launcher(ranks, str(CHECKS), "equivalence")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == ["ok", "syncbn_equals_bn", "ok", "syncbn_gradcheck",
                                   "ok", "data_parallel_equals_one_process", "ok", "empty_rank_is_an_error_everywhere"]


def test_a_missized_rank_ends_the_job_with_its_error(launcher):
    done = launcher(2, str(CHECKS), "missized", limit=60)
    assert done.returncode != 0
    # the rank's one-line summary or its traceback's last line (both name the error; an abort
    # may cut the launcher's forwarding of output short, so either may be the one that arrives)
    assert "ValueError: SyncBatchNorm: expected x of shape (N, 3, *) with size 3 on axis 1, got shape (2, 4)" \
        in done.stderr


def test_a_rank_that_never_joins_times_the_others_out(launcher):
    done = launcher(2, str(CHECKS), "silent", limit=60)  # rank 1 sleeps 60 s: the abort must end it
    assert done.returncode != 0
    assert "CollectiveTimeout: rank 0 of 2: a sum of 3 values (allreduce) did not complete in 1.0 s" in done.stderr


# -- without mpiexec ------------------------------------------------------------------------

def test_without_mpi4py_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(ImportError, match=r'minibn.distributed needs mpi4py .*pip install "minibn\[mpi\]"'):
        distributed.world()
    with pytest.raises(ImportError, match="needs mpi4py"):
        nn.SyncBatchNorm(3)
    assert not distributed.available()
    nn.BatchNorm1d(3)(np.ones((2, 3), np.float32) + np.arange(2)[:, None])  # the rest of minibn works


class _Table(distributed.Communicator):
    """A communicator whose 'other ranks' are given: allgather returns the rows of a table
    (to test the merge of moments without processes)."""

    def __init__(self, rows):
        self.rank, self.size, self.timeout, self.bytes_sent, self.calls, self.seconds = 0, len(rows), None, 0, 0, 0.0
        self.rows = rows

    def allgather(self, a):
        return np.array(self.rows)


@pytest.mark.parametrize("offset", [0.0, 1e8])
def test_merging_moments_is_exact_where_the_naive_formula_cancels(offset):
    """The pairwise merge keeps the variance of data with mean 1e8 and spread 1 to ~1e-8,
    where E[x^2] - E[x]^2 loses it entirely (float64 keeps 16 digits of 1e16)."""
    r = np.random.default_rng(0)
    parts = [r.standard_normal((n, 3)) + offset for n in (5, 1, 9, 4)]
    rows = [np.concatenate([[len(p)], p.mean(0), ((p - p.mean(0)) ** 2).sum(0)]) for p in parts]
    counts, mean, m2 = _Table(rows).merge_moments(*rows[0][:1], rows[0][1:4], rows[0][4:])
    whole = np.concatenate(parts)
    assert counts.tolist() == [5, 1, 9, 4]
    np.testing.assert_allclose(mean, whole.mean(0), rtol=1e-15)
    np.testing.assert_allclose(m2 / len(whole), whole.var(0), rtol=1e-8)
    naive = (whole ** 2).mean(0) - whole.mean(0) ** 2
    if offset:
        assert np.abs(naive - whole.var(0)).max() > 0.1  # what the merge avoids


class _Rank:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("ranks, global_batch", [(2, 6), (4, 9), (3, 3)])
def test_the_shards_of_each_batch_are_the_one_process_batch(ranks, global_batch):
    from minibn.data import BatchIterator
    X, Y = np.arange(50.0)[:, None] * np.ones((1, 2)), np.arange(50)
    shards = [distributed.ShardedBatches(X, Y, global_batch, _Rank(r, ranks), seed=4) for r in range(ranks)]
    whole = BatchIterator(X, Y, global_batch, seed=4)
    for _ in range(12):  # past an epoch boundary
        xa, ya = next(whole)
        parts = [next(s) for s in shards]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), xa)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ya)
        assert max(len(p[1]) for p in parts) - min(len(p[1]) for p in parts) <= 1
    with pytest.raises(ValueError, match=r"global_batch must be an integer >= the number of ranks \(4\)"):
        distributed.ShardedBatches(X, Y, 3, _Rank(0, 4))


def test_a_communicator_refuses_a_bad_timeout():
    if not distributed.available():
        pytest.skip("mpi4py is not installed")
    with pytest.raises(ValueError, match="timeout must be None or > 0 seconds, got 0"):
        distributed.world(timeout=0)


def test_the_drift_job_over_two_ranks_is_the_one_process_job(launcher, tmp_path, mnist_dir):
    """`mpiexec -n 2 minibn drift --distributed`: the same accuracies and percentile traces as
    one process (rows split, BN synchronized, gradients summed), written by rank 0 alone. The
    job's net is float32: sums taken in another order round differently (the float64
    equality to 1e-10 is tests/mpi/checks.py's)."""
    import json

    from minibn.cli import main
    args = ["drift", "--steps", "40", "--eval-every", "20", "--quiet"]
    done = launcher(2, "-m", "minibn", *args, "--distributed", "--out", str(tmp_path / "mpi"), limit=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data-parallel over 2 rank(s), 30-30 rows each, BN synchronized" in done.stdout
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    mpi, one = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("mpi", "one"))
    assert mpi["mpi_ranks"] == 2 and one["mpi_ranks"] == 1
    for net in ("baseline", "bn"):
        assert abs(mpi["nets"][net]["final_test_accuracy"] - one["nets"][net]["final_test_accuracy"]) <= 2e-4
        for key in ("p50_final", "spread_final"):
            assert mpi["nets"][net][key] == pytest.approx(one["nets"][net][key], rel=1e-4), (net, key)


def test_the_sync_bn_experiment_runs_under_mpiexec(launcher, tmp_path, mnist_dir):
    """`reproduce sync-bn --fast` over 2 ranks: every output, and SyncBN's runs agree with
    one process at the global batch (the same training, float32 rounding apart)."""
    import json
    out = tmp_path / "sync_bn"
    done = launcher(2, "-m", "minibn", "reproduce", "sync-bn", "--fast", "--quiet", "--out", str(out), limit=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"table.md", "sync_bn.png", "runs.csv", "summary.json", "provenance.json"} <= {p.name for p in out.iterdir()}
    s = json.loads((out / "summary.json").read_text())
    assert s["mpi_ranks"] == 2 and set(s["test_error"]) == {"local BN", "SyncBN", "BN, 1 process", "BRN", "MBN"}
    for b in ("2", "8"):
        assert abs(s["test_error"]["SyncBN"][b]["mean"] - s["test_error"]["BN, 1 process"][b]["mean"]) <= 0.05
        sync, local = s["cost"]["SyncBN"][b], s["cost"]["local BN"][b]
        # SyncBN adds one collective per BN layer and direction (2 layers) to local BN's two
        assert sync["collectives_per_step"] == local["collectives_per_step"] + 4
        assert sync["bytes_per_step"] - local["bytes_per_step"] == 2 * (8 * (1 + 2 * 100) + 8 * 2 * 100)


@pytest.mark.parametrize("argv", [["drift", "--distributed", "--steps", "10"], ["reproduce", "sync-bn", "--fast"]])
def test_without_mpi4py_the_commands_say_how_to_install(monkeypatch, capsys, tmp_path, argv):
    from minibn.cli import main
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'needs mpi4py and an MPI library: pip install "minibn[mpi]"' in err
