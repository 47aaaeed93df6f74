"""Root pytest configuration.

* Notebooks executed by the test run use their fast mode: the kernels nbmake starts inherit
  this process's environment, so MINIBN_FAST=1 here makes every notebook take its short path
  (a user who opens a notebook in Jupyter gets the real experiment). Set MINIBN_FAST=0 to
  execute them in full.
* Without a CUDA device, the GPU kernels (numba-cuda) are verified in numba-cuda's CUDA
  simulator, which runs them on the CPU: NUMBA_ENABLE_CUDASIM=1, set before numba is
  imported. With a GPU they run on it.
"""

import os

os.environ.setdefault("MINIBN_FAST", "1")
if "NUMBA_ENABLE_CUDASIM" not in os.environ:
    from minibn import backend

    if "cupy" not in backend.available():
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
