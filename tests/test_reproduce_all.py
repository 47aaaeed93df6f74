"""`minibn reproduce all` end to end in its fast mode: every figure, table and provenance
record written, each record complete. (No timing is asserted.)"""

import json
import os
from pathlib import Path

from minibn.cli import main
from minibn.experiments import provenance, stats

EXPECTED = {
    "drift": ["fig1.png", "summary.json", "provenance.json"],
    "small_batch": ["small_batch.png", "table.md", "provenance.json"],
    "adaptation": ["adaptation.png", "tables.md", "provenance.json"],
    "lr_sweep": ["lr_sweep.png", "table.md", "provenance.json", "lr_0.5/fig1.png", "lr_0.02/fig1.png"],
}


def test_reproduce_all_writes_every_figure_and_a_complete_record(tmp_path, mnist_dir, capsys):
    out = tmp_path / "all"
    assert main(["reproduce", "all", "--fast", "--out", str(out), "--data", mnist_dir, "--quiet", "--seeds", "0",
                 "1"]) == 0
    assert "outputs and provenance in" in capsys.readouterr().out
    for part, files in EXPECTED.items():
        for name in files:
            assert (out / part / name).stat().st_size > 0, f"{part}/{name}"
        record = json.loads((out / part / "provenance.json").read_text())
        assert provenance.missing(record) == [], (part, provenance.missing(record))
        assert record["implementations"]["batch_norm"] in ("fused", "fast", "reference")
    top = json.loads((out / "provenance.json").read_text())
    assert provenance.missing(top) == [] and set(top["config"]["wall_seconds_by_part"]) == set(EXPECTED)
    table = (out / "small_batch" / "table.md").read_text()
    assert "mean [95% interval]" in table and "beyond the noise" in table


def test_intervals_and_the_noise_rule():
    a, b = stats.summarize([1.0, 1.1, 0.9, 1.0, 1.05]), stats.summarize([2.0, 2.2, 1.9, 2.1, 2.0])
    assert a["n"] == 5 and abs(a["mean"] - 1.01) < 1e-12
    half = a["ci95"][1] - a["mean"]
    assert abs(half - 2.776 * a["std"] / 5 ** 0.5) < 1e-12  # Student's t, 4 degrees of freedom
    assert stats.separated(a, b) and not stats.separated(a, stats.summarize([1.02, 0.95, 1.1]))
    assert stats.cell(stats.summarize([3.0])) == "3.00 (1 seed)"
    assert stats.cell(a).startswith("1.01 [")


def test_a_record_imports_no_peer_framework():
    """Writing an experiment's record must not import PyTorch or JAX to learn about the machine
    (importing PyTorch took seconds of each `minibn drift` run): checked in a fresh process."""
    import subprocess
    import sys
    code = ("import sys; from minibn.experiments import provenance; r = provenance.record('x', 1.0); "
            "assert r['machine']['cores'] and r['machine']['cpu'], r['machine']; "
            "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_record_outside_a_checkout_does_not_claim_a_clean_tree(monkeypatch):
    """Installed from a wheel, minibn's source is not in a git checkout: its record says the
    commit is unknown, and whether the source was changed is unknown too (null), not false."""
    monkeypatch.setattr(provenance, "_git", lambda *args: "")
    record = provenance.record("x", 1.0)
    assert record["commit"] == "unknown"
    assert record["dirty"] is None and record["changed_source_files"] is None
    assert provenance.missing(record) == []


def test_a_copy_inside_another_git_repository_is_not_that_repositorys_commit(tmp_path):
    """Installed into a project's ignored .venv, minibn sits inside a git repository that is not
    its source: the record said that project's commit (and its changed files) was minibn's."""
    import importlib.util
    import shutil
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                            "GIT_COMMITTER_EMAIL": "t@t"})

    git("init", "-q")
    (tmp_path / ".gitignore").write_text(".venv/\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'someone-else'\n")
    git("add", ".")
    git("commit", "-q", "-m", "a project")
    installed = tmp_path / ".venv" / "site-packages" / "minibn" / "experiments"
    installed.mkdir(parents=True)
    shutil.copy(provenance.__file__, installed / "provenance.py")
    spec = importlib.util.spec_from_file_location("copied_provenance", installed / "provenance.py")
    copied = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copied)
    assert copied.commit() == ("unknown", None)
    if (Path(provenance.__file__).parents[2] / ".git").exists():  # run from a clone: its commit stands
        assert provenance.commit()[0] != "unknown"
