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
* Without a CUDA device, the GPU kernels (numba-cuda) are verified in numba-cuda's CUDA
  simulator, which runs them on the CPU: NUMBA_ENABLE_CUDASIM=1, set before numba is
  imported. With a GPU they run on it.
"""

import os
from pathlib import Path

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
    ``--nbmake-timeout`` is given."""
    paths = [Path(arg.split("::")[0]) for arg in config.args]  # the test paths when none are given
    if not config.pluginmanager.hasplugin("nbmake") or not any(p.is_dir() or p.suffix == ".ipynb" for p in paths):
        return
    config.option.nbmake = True
    if not any(arg.startswith("--nbmake-timeout") for arg in config.invocation_params.args):
        config.option.nbmake_timeout = NOTEBOOK_CELL_TIMEOUT
