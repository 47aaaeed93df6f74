"""Root pytest configuration: notebooks executed by the test run use their fast mode.

The kernels nbmake starts inherit this process's environment, so MINIBN_FAST=1 here
makes every notebook take its short path (a user who opens a notebook in Jupyter gets
the real experiment). Set MINIBN_FAST=0 to execute them in full.
"""

import os

os.environ.setdefault("MINIBN_FAST", "1")
