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
    assert "Double-Forward costs" in capsys.readouterr().out


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
