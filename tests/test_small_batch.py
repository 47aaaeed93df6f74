"""`minibn reproduce small-batch`: the fast mode writes its outputs; bad options fail early."""

import json
import os

import pytest

from minibn.cli import main
from minibn.experiments import small_batch


def test_fast_mode_writes_table_figure_and_json(tmp_path, mnist_dir, capsys):
    out = tmp_path / "sb"
    assert main(["reproduce", "small-batch", "--fast", "--out", str(out), "--quiet"]) == 0
    assert {"table.md", "small_batch.png", "runs.csv", "summary.json"} <= set(os.listdir(out))
    s = json.loads((out / "summary.json").read_text())
    assert set(s["test_error"]) == set(small_batch.VARIANTS)
    for v in small_batch.VARIANTS:
        for b in ("4", "32"):
            assert 0 <= s["test_error"][v][b]["mean"] <= 100 and s["test_error"][v][b]["n"] == 1
    assert "A Double-Forward step took" in capsys.readouterr().out


def test_networks_use_the_right_layers():
    cfg = small_batch.SmallBatchConfig()
    kinds = {v: type(small_batch.build_net(v, cfg)[1]).__name__ for v in small_batch.VARIANTS}
    assert kinds == {"BN": "BatchNorm1d", "BRN": "BatchRenorm1d", "MBN": "MemorizedBatchNorm1d",
                     "MBN+DF": "MemorizedBatchNorm1d"}
    assert small_batch.build_net("MBN+DF", cfg)[1].double_forward
    assert not small_batch.build_net("MBN", cfg)[1].double_forward


@pytest.mark.parametrize("args, match", [(["--batch-sizes", "1", "4"], "batch sizes must be >= 2"),
                                         (["--steps", "3"], "steps must be >= 10")])
def test_bad_options(tmp_path, capsys, args, match):
    assert main(["reproduce", "small-batch", "--out", str(tmp_path / "x"), *args]) == 2
    assert match in capsys.readouterr().err


def _rows(seeds, errors):
    """Synthetic runs: errors[variant][batch] is the test error of seed 0 (+ 0.1 per further seed)."""
    return [{"variant": v, "batch_size": b, "seed": s, "test_error": e + 0.1 * i, "steps_per_second": 100.0}
            for v, per_batch in errors.items() for b, e in per_batch.items() for i, s in enumerate(seeds)]


ERRORS = {"BN": {2: 80.0, 32: 3.3}, "BRN": {2: 79.0, 32: 3.4}, "MBN": {2: 30.0, 32: 3.5}, "MBN+DF": {2: 28.0, 32: 3.2}}


def test_one_seed_prints_no_interval_and_no_verdict():
    """One seed has no spread: no "95% interval", no "(1 seed)" in every cell, no "beats ... beyond
    the noise" (which would read as a finding); the means and the speed are there."""
    cfg = small_batch.SmallBatchConfig(batch_sizes=[2, 32], seeds=[0], steps=100)
    table, speed = small_batch.summarize(_rows([0], ERRORS), cfg)
    text = small_batch.markdown(table, speed, cfg, 12.0)
    assert "interval" in text.splitlines()[0] and "one seed (0): no interval" in text
    for banned in ("95%", "[", "beyond the noise", "beats", "within it", "lowest mean", "(1 seed)", "nan"):
        assert banned not in text, banned
    assert "| MBN+DF | 28.00 | 3.20 |" in text and "no verdict" in text
    assert "A Double-Forward step took 0% more wall time than an MBN step" in text
    title = small_batch.plot(table, cfg).axes[0].get_title()
    assert "one seed, no interval" in title and "95%" not in title


def test_several_seeds_print_intervals_and_verdicts():
    cfg = small_batch.SmallBatchConfig(batch_sizes=[2, 32], seeds=[0, 1, 2], steps=100)
    table, speed = small_batch.summarize(_rows([0, 1, 2], ERRORS), cfg)
    text = small_batch.markdown(table, speed, cfg, 12.0)
    assert "mean [95% interval] over seeds [0, 1, 2]" in text and "| MBN+DF | 28.10 [" in text
    assert "- batch 2: MBN+DF has the lowest mean error; it beats BN, BRN, MBN beyond the noise" in text
    assert "no verdict" not in text
    assert "95% interval over 3 seeds" in small_batch.plot(table, cfg).axes[0].get_title()


def test_log_axis_has_plain_tick_labels():
    """The test-error axis is logarithmic, labelled 2, 5, 10, 20, 50 (not 2x10^0, 5x10^1)."""
    import matplotlib
    matplotlib.use("Agg")
    cfg = small_batch.SmallBatchConfig(batch_sizes=[2, 32], seeds=[0], steps=100)
    fig = small_batch.plot(*small_batch.summarize(_rows([0], ERRORS), cfg)[:1], cfg)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(label.replace(".", "").isdigit() for label in labels), labels
    assert not [t for t in ax.yaxis.get_minorticklabels() if t.get_text()]
    legend = ax.get_legend()  # beside the axes, where it covers no curve
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1


def test_one_seed_stats_helpers():
    from minibn.experiments import stats
    assert not stats.several([3]) and not stats.several([3, 3]) and stats.several([0, 1])
    assert stats.what_the_cells_are([3]) == "one seed (3): no interval"
    assert stats.what_the_cells_are([0, 1]) == "mean [95% interval] over seeds [0, 1]"
    assert stats.cell(stats.summarize([3.0]), mark_single=False) == "3.00"
    assert stats.cell(stats.summarize([3.0])) == "3.00 (1 seed)"  # a lone value in a table of several seeds


def test_sync_bn_one_seed_prints_no_interval_and_no_verdict():
    """The sync-bn table (notebook 9) follows the same rule as the small-batch one."""
    from minibn.experiments import sync_bn
    for seeds, several in (([0], False), ([0, 1, 2], True)):
        cfg = sync_bn.SyncBNConfig(per_worker=[2, 8], seeds=seeds, steps=100)
        rows = [{"variant": v, "per_worker": b, "seed": s, "test_error": e + b + 0.1 * i, "steps_per_second": 50.0,
                 "bytes_per_step": 1024.0, "collectives_per_step": 3.0}
                for v, e in zip(sync_bn.VARIANTS, (40.0, 5.0, 5.0, 30.0, 20.0)) for b in cfg.per_worker
                for i, s in enumerate(seeds)]
        table, cost = sync_bn.summarize(rows, cfg)
        text = sync_bn.markdown(table, cost, cfg, 4, 10.0)
        assert ("95%" in text and "beyond the noise" in text and "SyncBN beats local BN" in text) == several
        assert ("one seed (0): no interval" in text and "no verdict" in text) == (not several)
        title = sync_bn.plot(table, cfg, 4).axes[0].get_title()
        assert ("95% interval over 3 seeds" in title) == several and ("one seed" in title) == (not several)


def test_double_forward_cost_reads_right_whichever_way_the_timing_went():
    """MBN+DF does two forwards a step; in a short run it may still time faster (noise), and
    the summary must not print "costs -10% more"."""
    cfg = small_batch.SmallBatchConfig(batch_sizes=[2, 32], seeds=[0], steps=100)
    table, speed = small_batch.summarize(_rows([0], ERRORS), cfg)
    slower = small_batch.markdown(table, {**speed, "MBN": 150.0, "MBN+DF": 100.0}, cfg, 1.0)
    faster = small_batch.markdown(table, {**speed, "MBN": 90.0, "MBN+DF": 100.0}, cfg, 1.0)
    assert "A Double-Forward step took 50% more wall time than an MBN step" in slower
    assert "took 10% less wall time than an MBN step" in faster and "timing noise" in faster


def test_the_warm_up_before_a_timed_run_changes_none_of_its_numbers(mnist_dir, monkeypatch):
    """Each run first trains a throwaway net for two steps, so that loading the compiled loops
    is not timed (BN, first in each worker, ran at a fifth of MBN's steps/s). It comes before
    the seed: the run's test error is the same as without it, to the last bit."""
    cfg = small_batch.SmallBatchConfig(batch_sizes=[4], seeds=[0], steps=30)
    with_warm_up = [small_batch.train_one(v, 4, 0, cfg, str(mnist_dir))["test_error"] for v in cfg.variants]
    monkeypatch.setattr(small_batch, "_warm_up", lambda *a: None)
    without = [small_batch.train_one(v, 4, 0, cfg, str(mnist_dir))["test_error"] for v in cfg.variants]
    assert with_warm_up == without
