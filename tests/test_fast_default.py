"""numba is a dependency: the fused loops for every user, announced when they compile, and
minibn on NumPy (saying why once) where numba cannot be imported."""

import os
import subprocess
import sys
import textwrap

import pytest

from minibn.kernels import numba_cpu

BLOCK_NUMBA = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("numba blocked for this test")
sys.meta_path.insert(0, Block())
"""


def _python(code, **env):
    return subprocess.run([sys.executable, "-W", "always", "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def test_without_numba_minibn_runs_on_numpy_and_says_why_once():
    r = _python(BLOCK_NUMBA + """
import numpy as np
from minibn import nn
for layer in (nn.BatchNorm1d(4), nn.BatchNorm1d(4), nn.LayerNorm(4)):
    layer(np.random.default_rng(0).random((8, 4)).astype(np.float32))
    print(layer.last_implementation.name)
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["reference", "reference", "reference"]
    assert r.stderr.count("numba cannot be imported (ImportError: numba blocked for this test)") == 1


@pytest.mark.skipif(not numba_cpu.available(), reason="numba is not installed")
def test_compiling_the_loops_is_announced_and_loading_them_from_the_cache_is_silent(tmp_path):
    code = """
import numpy as np
from minibn import nn
nn.LayerNorm(4)(np.ones((3, 4), np.float32))
"""
    first = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "minibn: compiling the fused CPU loops" in first.stderr and "minibn: compiled in" in first.stderr
    second = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert second.returncode == 0 and "compiling" not in second.stderr
