"""The root conftest spreads the whole suite over the cores (pytest-xdist), and only the whole suite.

Each case runs pytest in a fresh process on a small project that uses the repository's
conftest.py: two test files of ten tests each, every test writing the name of the process that
ran it (``PYTEST_XDIST_WORKER``, absent outside a worker) to its file's record.
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

import pytest


@pytest.mark.parametrize("i", range(10))
def test_where(i):
    with Path(__file__).with_suffix(".ran").open("a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
"""


@pytest.fixture
def project(tmp_path):
    try:
        import xdist  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("pytest-xdist is required when CI is set (pip install -e '.[test]')")
        pytest.skip("pytest-xdist not installed (pip install -e '.[test]')")
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["t"]\n')
    (tmp_path / "t").mkdir()
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / "t" / name).write_text(TEST_FILE)
    return tmp_path


def where(project, *args):
    """{test file: the set of processes that ran its tests} after ``python -m pytest ARGS``."""
    # as on two cores, whatever this machine has; without the variables of the xdist worker that
    # may be running this test, which the inner run's processes would otherwise inherit
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTEST_XDIST_AUTO_NUM_WORKERS"] = "2"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {p.stem: set(p.read_text().split()) for p in sorted((project / "t").glob("*.ran"))}


def test_the_whole_suite_runs_each_file_in_one_worker(project):
    ran = where(project)
    # each file's ten tests in one worker (by test, xdist would share them out), both workers used
    assert ran in ({"test_a": {"gw0"}, "test_b": {"gw1"}}, {"test_a": {"gw1"}, "test_b": {"gw0"}})


@pytest.mark.parametrize("args", [["t"], ["-k", "test_where"], ["-n", "0"], ["-s"]],
                         ids=["a folder", "-k", "-n 0", "-s"])
def test_a_path_a_selection_or_a_debugging_run_stays_in_one_process(project, args):
    assert where(project, *args) == {"test_a": {"main"}, "test_b": {"main"}}
