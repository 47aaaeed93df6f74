"""The benchmark suite's plumbing (timings themselves are reported, never asserted)."""

import importlib.util

import numpy as np
import pytest

from minibn import bench


def test_bn_rows_report_targets_and_plot(torch):
    rows = bench.bn_rows(torch, [(60, 100)], modes=("both",))
    assert set(rows[0]["t"]) == {"minibn", "minibn fast (NumPy)", "minibn reference", "PyTorch CPU"}
    assert all(t > 0 for t in rows[0]["t"].values())
    rows.append({"layer": "BatchNorm", "shape": (4096, 1024), "mode": "both", "bytes": 5 * 2 ** 24,
                 "t": {"minibn": 2.0, "PyTorch CPU": 1.0}})
    text = bench.report(rows, 20e9, {"date": "2026-11-22 08:00 UTC", "cpu": "test"})
    assert text.startswith("Run on 2026-11-22 08:00 UTC. Machine: cpu test.")
    assert "| BatchNorm | (60, 100) | both | minibn |" in text and "0.50x" in text
    assert bench.targets(rows) == [("BN forward+backward (4096, 1024), speed vs PyTorch CPU", 0.5, 0.8, False, None)]
    assert bench.targets(rows, bw=5 * 2 ** 24)[0] == (
        "BN forward+backward (4096, 1024), fraction of the copy bandwidth of all cores", 0.5, 0.6, False, None)
    assert set(rows[0]["rounds"]) == set(rows[0]["t"]) and all(len(v) == 3 for v in rows[0]["rounds"].values())
    assert "x (" in text  # the measured row's ratio comes with its rounds' range
    bench.plot(rows)


def test_speed_pairs_the_rounds():
    """A slow spell that hits both in one round cancels in that round's ratio; the ratio
    of the medians would not see the pairing."""
    row = {"t": {"minibn": 2.0, "PyTorch CPU": 3.0},
           "rounds": {"minibn": [1.0, 2.0, 4.0, 2.0, 1.0], "PyTorch CPU": [1.5, 3.0, 6.0, 3.2, 2.0]}}
    ratio, lo, hi = bench.speed(row, "minibn", "PyTorch CPU")
    assert ratio == pytest.approx(1.5) and lo == pytest.approx(1.5) and hi == pytest.approx(1.6)
    assert bench.speed({"t": row["t"]}, "minibn", "PyTorch CPU") == (1.5, None, None)
    row.update(layer="Fig. 1 MLP step (BN)", shape=(60, 784))
    assert bench.targets([row]) == [("Fig. 1 MLP step, batch 60, speed vs PyTorch CPU", 1.5, 1.5, True, (1.5, 1.6))]


def test_copy_bandwidth_on_one_and_two_threads():
    one, two = bench.copy_bandwidth_cpu(2 ** 22), bench.copy_bandwidth_cpu(2 ** 22, threads=2)
    assert one > 0 and two > 0


def test_interleaved_medians_alternates_blocks():
    order = []
    t = bench.interleaved_medians({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                  rounds=3, block=2, warmup=1, pause=0, settle=0)
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 3
    rounds = bench.interleaved_rounds({"a": lambda: None}, rounds=4, block=3, warmup=0, pause=0, settle=0)
    assert [len(b) for b in rounds["a"]] == [3, 3, 3, 3]


def test_interleaved_medians_settles_untimed_after_each_rest():
    calls = {"a": 0}

    def a():
        calls["a"] += 1

    bench.interleaved_medians({"a": a}, rounds=2, block=3, warmup=0, pause=0, settle=0.01)
    assert calls["a"] > 2 * 3  # the settling calls ran, and are not among the timed ones


def test_rows_carry_the_copy_bandwidth_timed_in_their_rounds(torch):
    copy = bench.copy_step(2 ** 22, threads=2)
    row = bench.bn_rows(torch, [(60, 100)], modes=("both",), copy=copy)[0]
    assert bench.COPY not in row["t"] and row["bw"] > 0
    assert len(row["bw_rounds"]) == len(row["rounds"]["minibn"]) == 3
    text = bench.report([row], 1.0, {"cpu": "test"})  # the row's own bandwidth, not the 1 B/s passed
    frac, lo, hi = bench.fraction(row, "minibn")
    assert f"| {frac:.2f} ({lo:.2f}-{hi:.2f}) |" in text and "carry their own" in text


def test_fraction_pairs_the_rounds_with_the_copy_timed_beside_them():
    """A slow spell that halves both the copy's bandwidth and the row's speed in one round
    leaves that round's fraction alone; median time over median bandwidth would not."""
    row = {"layer": "BatchNorm", "shape": (4096, 1024), "mode": "both", "bytes": 10.0,
           "t": {"minibn": 2.0}, "bw": 10.0,
           "rounds": {"minibn": [1.0, 2.0, 2.0, 1.0, 1.0]}, "bw_rounds": [20.0, 10.0, 10.0, 20.0, 16.0]}
    v, lo, hi = bench.fraction(row, "minibn")
    assert (v, lo, hi) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5))
    unpaired = row["bytes"] / np.median(row["rounds"]["minibn"]) / np.median(row["bw_rounds"])
    assert unpaired == pytest.approx(0.625)  # what the medians, taken apart, would say
    assert bench.fraction({k: row[k] for k in ("bytes", "t", "bw")}, "minibn") == (0.5, None, None)
    row["bw_rounds"][-1] = 40.0  # one round's copy twice as fast: its fraction 0.25, the median stays
    assert bench.fraction(row, "minibn")[:2] == (pytest.approx(0.5), pytest.approx(0.5))
    assert bench.targets([row]) == [("BN forward+backward (4096, 1024), fraction of the copy bandwidth of all "
                                     "cores", pytest.approx(0.5), 0.6, False, (pytest.approx(0.5), pytest.approx(0.5)))]


def test_median_time_counts_calls():
    calls = []
    assert bench.median_time(lambda: calls.append(1), repeats=5, warmup=2) >= 0
    assert len(calls) == 7


@pytest.mark.parametrize("key", ["cpu", "cores", "python", "numpy", "numba"])
def test_machine_description(key):
    assert key in bench.machine()


def test_the_bn_benchmark_script_runs(tmp_path, torch):
    """benchmarks/bench_batchnorm.py end to end on one small shape (it once broke unnoticed
    when the fast paths moved to minibn.kernels)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_batchnorm.py"
    spec = importlib.util.spec_from_file_location("bench_batchnorm", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "bn.md"
    script.main(["--rounds", "1", "--out", str(out)], shapes=[(60, 100)])
    text = out.read_text()
    for name in ("minibn paper", "minibn closed", "minibn fast (NumPy)", "minibn fused (numba)", "PyTorch CPU"):
        assert f"| (60, 100) | {name} |" in text


def test_without_pytorch_the_run_writes_its_table_and_says_why_there_is_no_figure(tmp_path, monkeypatch, capsys):
    """`minibn bench` on a plain install (no torch): it failed in plot() with "min() arg is an
    empty sequence" after timing everything, and wrote nothing. Its last line then named a
    cpu.png it had not written."""
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kw):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    monkeypatch.setattr(bench.suite, "FAST_BN_SHAPES", [(8, 4)])  # the names bench.run looks up
    monkeypatch.setattr(bench.suite, "step_rows", lambda torch, batches, **kw: [])
    text = bench.run(tmp_path / "b", fast=True, progress=False)
    assert "PyTorch is not installed" in text
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["cpu.md"]
    from minibn.cli import main
    capsys.readouterr()
    assert main(["bench", "--fast", "--quiet", "--out", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"outputs in {tmp_path / 'c'}/ (cpu.md)")


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="the flat step calls numba's fused kernels")
def test_the_flat_step_of_the_floor_benchmark_is_minibns_step_bit_for_bit():
    """benchmarks/step_floor.py times the Fig. 1 step's kernels without the layers; its ratio
    means something only while it computes what minibn's step computes: the same losses,
    parameters and running statistics after three steps, to the last bit."""
    from pathlib import Path

    from minibn import backend, nn, optim
    from minibn.bench.peers import data
    from minibn.experiments.fig1_net import build_net

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "step_floor.py"
    spec = importlib.util.spec_from_file_location("step_floor", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    x, labels = data("fig1", 60)
    backend.seed(0)
    model = build_net(True)[0]
    backend.seed(0)
    flat_model = build_net(True)[0]
    flat = script.flat_step(flat_model, x, labels)
    loss_fn, opt = nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
        assert flat() == loss
    for (name, p), (_, q) in zip(model.named_parameters(), flat_model.named_parameters()):
        np.testing.assert_array_equal(q.data, p.data, err_msg=name)
    for a, b in zip(model.layers[1::3], flat_model.layers[1::3]):
        np.testing.assert_array_equal(b.running_mean, a.running_mean)
        np.testing.assert_array_equal(b.running_var, a.running_var)
