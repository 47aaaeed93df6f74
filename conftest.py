"""Root pytest configuration.

* Notebooks executed by the test run use their fast mode: the kernels nbmake starts inherit
  this process's environment, so MINIBN_FAST=1 here makes every notebook take its short path
  (a user who opens a notebook in Jupyter gets the real experiment). Set MINIBN_FAST=0 to
  execute them in full.
* `python -m pytest` executes the course's notebooks (minibn/notebooks/*.ipynb, a test path
  in pyproject.toml) top to bottom through nbmake when nbmake is installed (the [test]
  extra), as ``--nbmake --nbmake-timeout=600`` would: see :func:`pytest_configure`. The
  option is not in ``addopts``, so a test file also runs where nbmake is not installed
  (``python -m pytest tests/test_registry.py``).
* The whole suite (``python -m pytest`` from the repository's root, no path, no ``-k``/``-m``)
  runs on every core through pytest-xdist when it is installed (the [test] extra), as ``-n
  auto --dist loadfile`` would: see :func:`pytest_configure`. A test file's tests stay in one
  process, so a module fixture (the nbgrader course, the site build) runs once. ``-n 0`` (or
  ``-p no:xdist``) runs everything in this process, as a ``breakpoint()`` in a test needs;
  ``-n N`` picks the count.
* Without a CUDA device, the GPU kernels (numba-cuda) are verified in numba-cuda's CUDA
  simulator, which runs them on the CPU: NUMBA_ENABLE_CUDASIM=1, set before numba is
  imported. With a GPU they run on it.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MINIBN_FAST", "1")
if "NUMBA_ENABLE_CUDASIM" not in os.environ:
    from minibn import backend

    if "cupy" not in backend.available():
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


#: seconds a notebook cell may run under nbmake before the notebook fails (nbmake's default is 300)
NOTEBOOK_CELL_TIMEOUT = 600


def pytest_configure(config):
    """Turn on nbmake's notebook collection when the plugin is there (not with ``-p no:nbmake``)
    and the run may hold notebooks: the test paths, a folder, or a notebook (not a run of
    .py test files only); with a cell timeout of :data:`NOTEBOOK_CELL_TIMEOUT` unless
    ``--nbmake-timeout`` is given. Before that, spread the whole suite over the cores
    (:func:`_spread_over_the_cores`)."""
    paths = [Path(arg.split("::")[0]) for arg in config.args]  # the test paths when none are given
    _spread_over_the_cores(config)
    if not config.pluginmanager.hasplugin("nbmake") or not any(p.is_dir() or p.suffix == ".ipynb" for p in paths):
        return
    config.option.nbmake = True
    if not any(arg.startswith("--nbmake-timeout") for arg in config.invocation_params.args):
        config.option.nbmake_timeout = NOTEBOOK_CELL_TIMEOUT


def _spread_over_the_cores(config):
    """Run the whole suite on every core, one worker per core (pytest-xdist's ``-n auto``),
    each test file in one worker (``--dist loadfile``): only a run with no test path and no
    selection (``-k``, ``-m``, ``--lf``), not a debugging run (``--pdb``, ``--trace``, or ``-s``:
    a worker's prints would not reach the terminal), and only where xdist is installed and
    neither ``-n`` nor ``--dist`` was given. A run of a few tests stays in one process:
    starting the workers (each imports and collects everything) costs more than it saves.

    xdist reads these options in its own ``pytest_configure``, which runs after this one
    (it is marked ``trylast``); its ``-n auto`` would have resolved the count (capped by
    ``--maxprocesses``) earlier, in ``pytest_cmdline_main``, so the same is done here. The
    suite's times either way: docs/testing.md."""
    # A worker is started with this run's arguments and looks like a whole-suite run itself:
    # the workerinput test is what keeps workers from starting workers of their own.
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    option = config.option
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS or option.numprocesses is not None \
            or option.dist != "no" or config.getoption("capture", None) == "no":
        return
    # each from a plugin that may be turned off (-p no:cacheprovider removes --lf)
    if any(config.getoption(name, None) for name in ("keyword", "markexpr", "lf", "collectonly", "usepdb", "trace")):
        return
    n = config.hook.pytest_xdist_auto_num_workers(config=config)
    if option.maxprocesses:
        n = min(n, option.maxprocesses)
    if n > 1:
        option.numprocesses, option.dist, option.tx = n, "loadfile", ["popen"] * n
