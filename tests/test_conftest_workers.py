"""The root conftest spreads the whole suite over the cores (pytest-xdist), and only the whole suite.

Each case runs pytest in a fresh process on a small project that uses the repository's
conftest.py: two test files, each writing the name of the process that ran it
(``PYTEST_XDIST_WORKER``, absent outside a worker).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TEST_FILE = """import os
from pathlib import Path


def test_where():
    Path(__file__).with_suffix(".ran").write_text(os.environ.get("PYTEST_XDIST_WORKER", "main"))
"""


@pytest.fixture
def project(tmp_path):
    pytest.importorskip("xdist")
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["t"]\n')
    (tmp_path / "t").mkdir()
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / "t" / name).write_text(TEST_FILE)
    return tmp_path


def where(project, *args):
    """{test file: the process that ran it} after ``python -m pytest ARGS`` in the project."""
    # as on two cores, whatever this machine has; without the variables of the xdist worker that
    # may be running this test, which the inner run's processes would otherwise inherit
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTEST_XDIST_AUTO_NUM_WORKERS"] = "2"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {p.stem: p.read_text() for p in sorted((project / "t").glob("*.ran"))}


def test_the_whole_suite_runs_one_file_per_worker(project):
    ran = where(project)
    assert set(ran) == {"test_a", "test_b"} and set(ran.values()) == {"gw0", "gw1"}


@pytest.mark.parametrize("args", [["t"], ["-n", "0"], ["-s"]], ids=["a folder", "-n 0", "-s"])
def test_a_named_path_or_a_debugging_run_stays_in_one_process(project, args):
    assert where(project, *args) == {"test_a": "main", "test_b": "main"}

