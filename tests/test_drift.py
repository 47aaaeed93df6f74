"""`minibn drift`: the short run writes all three outputs; bad options fail before training."""

import json
import os

import numpy as np
import pytest

from minibn import nn
from minibn.cli import main
from minibn.experiments import drift


def test_short_run_writes_png_csv_json(tmp_path, mnist_dir, capsys):
    out = tmp_path / "drift"
    assert main(["drift", "--steps", "300", "--eval-every", "100", "--out", str(out), "--quiet"]) == 0
    assert {"fig1.png", "curves.csv", "summary.json"} <= set(os.listdir(out))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["nets"]) == {"baseline", "bn"} and not summary["interrupted"]
    for s in summary["nets"].values():
        assert 0.5 < s["final_test_accuracy"] <= 1 and s["steps"] == 300 and s["steps_per_second"] > 0
    assert summary["config"]["batch_size"] == 60 and summary["backend"] == "numpy" and "numpy" in summary["versions"]
    assert summary["jobs"] == min(2, os.cpu_count())  # the two nets trained in parallel processes
    rows = (out / "curves.csv").read_text().splitlines()
    assert rows[0].startswith("step,test_accuracy_baseline") and len(rows) == 1 + 4  # steps 0,100,200,300
    assert (out / "fig1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_network_matches_the_paper():
    model, sig = drift.build_net(bn=True)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "BatchNorm1d", "Sigmoid"] * 3 + ["Linear"]
    hidden_linears = [m for m in list(model)[:-1] if type(m).__name__ == "Linear"]
    assert len(hidden_linears) == 3 and all(m.bias is None for m in hidden_linears)  # Sec. 3.2: BN subsumes b
    assert sig == 8 and type(model[sig]).__name__ == "Sigmoid"
    plain, sig = drift.build_net(bn=False)
    assert [type(m).__name__ for m in plain] == ["Linear", "Sigmoid"] * 3 + ["Linear"] and sig == 5
    assert plain[0].weight.shape == (100, 784) and plain[-1].weight.shape == (10, 100)
    assert abs(float(np.std(model[0].weight.data)) - 0.1) < 0.005


def exit_status(argv):
    """main()'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("args, match", [
    (["--batch-size", "1"], "batch_size must be >= 2 with BN"),
    (["--steps", "0"], "argument --steps: must be >= 1, got '0'"),
    (["--eval-every", "0"], "argument --eval-every: must be >= 1, got '0'"),
    (["--lr", "inf"], "argument --lr: expected a finite number, got 'inf'"),
    (["--lr", "-0.1"], "argument --lr: must be > 0.0, got '-0.1'"),
    (["--jobs", "0"], "argument --jobs: must be >= 1, got '0'"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got '-1'"),
])
def test_invalid_options_fail_before_training(tmp_path, capsys, args, match):
    out = tmp_path / "x"
    assert exit_status(["drift", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not out.exists()


def test_out_naming_a_file_fails_before_training(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    assert exit_status(["drift", "--out", str(tmp_path / "taken"), "--steps", "10"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_eval_cadence_scales_with_the_run():
    assert drift.DriftConfig().eval_every == 1000
    assert drift.DriftConfig(steps=500).eval_every == 10
    assert drift.DriftConfig(steps=20).eval_every == 1


def test_sequential_and_parallel_runs_agree(tmp_path, mnist_dir):
    """Same seed, same batches: one process or two gives the same run (up to float32 rounding:
    the workers use one BLAS thread, which sums the matrix products in another order)."""
    cfg = drift.DriftConfig(steps=40, eval_every=20)
    a = drift.run(cfg, tmp_path / "a", progress=False, jobs=1)
    b = drift.run(cfg, tmp_path / "b", progress=False, jobs=2)
    for name in drift.NETS:
        assert a["nets"][name]["final_test_accuracy"] == b["nets"][name]["final_test_accuracy"]
        assert a["nets"][name]["p50_final"] == pytest.approx(b["nets"][name]["p50_final"], rel=1e-3, abs=1e-5)


def test_unknown_backend_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["drift", "--backend", "tpu"])


def test_batch_size_one_is_fine_without_bn(tmp_path, mnist_dir):
    cfg = drift.DriftConfig(steps=5, batch_size=1, eval_every=5)
    cfg.validate(("baseline",))


def test_interrupt_leaves_readable_outputs(tmp_path, mnist_dir, monkeypatch):
    real_fit = drift.training.fit

    def fit_then_interrupt(*a, **k):
        h = real_fit(*a, **k)
        h.interrupted = True
        return h

    monkeypatch.setattr(drift.training, "fit", fit_then_interrupt)
    out = tmp_path / "drift"
    with pytest.raises(KeyboardInterrupt):
        drift.run(drift.DriftConfig(steps=20, eval_every=10), out, progress=False, jobs=1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and list(summary["nets"]) == ["baseline"]
    assert (out / "fig1.png").exists() and (out / "curves.csv").exists()


@pytest.mark.parametrize("norm, kind, bias", [("layernorm", "LayerNorm", True), ("groupnorm", "GroupNorm", True),
                                              ("renorm", "BatchRenorm1d", False),
                                              ("memorized", "MemorizedBatchNorm1d", False)])
def test_the_normalized_net_takes_any_normalization(norm, kind, bias):
    model, sig = drift.build_net(True, norm=norm)
    assert [type(m).__name__ for m in model][:3] == ["Linear", kind, "Sigmoid"]
    assert (model[0].bias is not None) == bias and sig == 8
    custom, _ = drift.build_net(True, norm=lambda C: nn.GroupNorm(2, C))
    assert type(custom[1]).__name__ == "GroupNorm"


def test_drift_with_layernorm_runs_at_batch_one(tmp_path, mnist_dir):
    summary = drift.run(drift.DriftConfig(steps=6, batch_size=1, norm="layernorm"), tmp_path / "ln", nets=("bn",),
                        progress=False, jobs=1)
    assert summary["config"]["norm"] == "layernorm" and summary["nets"]["bn"]["steps"] == 6
    assert exit_status(["drift", "--norm", "weightnorm"]) == 2


def _fake_results(steps, acc_start=0.1):
    """What drift.plot needs, for a run whose accuracy climbs from chance."""
    from minibn.train import History
    t = np.asarray(steps, dtype=float) / steps[-1]
    results = {}
    for k, name in enumerate(drift.NETS):
        acc = list(acc_start + (0.97 + 0.01 * k - acc_start) * (1 - np.exp(-20 * t)))
        med = -np.log1p(10 * t)
        values = np.stack([med - 1 - k * t, med, med + 1 + 2 * t], axis=1)[:, None, :]
        results[name] = {"history": History(eval_steps=list(steps), metrics={"accuracy": acc}),
                         "recorder": drift.Trace(list(steps), values, (15, 50, 85))}
    return results


def test_figure_shows_every_point_and_keeps_legends_off_the_curves():
    import matplotlib
    matplotlib.use("Agg")
    steps = list(range(0, 5001, 100))
    results = _fake_results(steps)
    fig = drift.plot(results, drift.NETS, drift.DriftConfig(steps=5000))
    fig.canvas.draw()
    a, b, c = fig.axes[:3]
    low, high = a.get_ylim()
    accs = [x for r in results.values() for x in r["history"].metrics["accuracy"]]
    assert low < min(accs) and high > max(accs)  # the start at chance shows too
    labels = [t.get_text() for t in a.get_yticklabels() if t.get_text()]
    assert labels and all(label.replace(".", "").isdigit() for label in labels), labels
    # no legend inside a panel; the figure's legends lie below the panels
    assert all(ax.get_legend() is None for ax in (a, b, c)) and len(fig.legends) == 2
    bottom = min(ax.get_window_extent().y0 for ax in (a, b, c))
    assert all(leg.get_window_extent().y1 <= bottom for leg in fig.legends)
    # the 15th and 85th percentiles are told apart by their line style
    for ax in (b, c):
        p15, p50, p85 = (line.get_linestyle() for line in ax.get_lines()[:3])
        assert len({p15, p50, p85}) == 3
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "Without BN" in texts and "With BN" in texts and "15th percentile" in texts and "85th percentile" in texts


def test_figure_of_one_net_says_which_is_missing():
    import matplotlib
    matplotlib.use("Agg")
    results = _fake_results([0, 10, 20])
    del results["bn"]
    fig = drift.plot(results, ("baseline",), drift.DriftConfig(steps=20))
    assert "not trained" in [t.get_text() for t in fig.axes[2].texts]
