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
    """Announced once a process: the first session of the README's tour compiled a dozen loops
    and printed a dozen pairs of lines."""
    code = """
import numpy as np
from minibn import nn
nn.LayerNorm(4)(np.ones((3, 4), np.float32))
nn.BatchNorm1d(4)(np.ones((3, 4), np.float32))
nn.ReLU()(np.ones((3, 4), np.float32))
"""
    first = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("minibn: compiling the fused CPU loops") == 1, first.stderr
    # a later compilation is said only if it takes a second or more (on a slow machine, some do)
    assert first.stderr.count("minibn: compiled in") == 1 + first.stderr.count("compiling more"), first.stderr
    second = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert second.returncode == 0 and "compiling" not in second.stderr


@pytest.mark.skipif(not numba_cpu.available(), reason="numba is not installed")
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_the_compiling_message_does_not_break_into_a_progress_bar(tmp_path):
    """In a terminal, a bar is redrawn in place; the message (printed when the first training
    step compiles the loops, while the bar runs) must start a line of its own, not continue the
    bar's ("... 1/3 [00:00<?, ?it/s]minibn: compiling ...")."""
    import fcntl
    import pty
    import struct
    import termios

    code = """
import numpy as np
from minibn import nn
from minibn.train import progress_bar
bar = progress_bar(3, desc="steps", mininterval=0)
bar.update(1)
nn.LayerNorm(4)(np.ones((3, 4), np.float32))
bar.update(2)
bar.close()
"""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stderr=child, stdout=child,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(main)
    out = b"".join(chunks).decode()
    assert "steps:  33%" in out  # the bar was drawn before the compilation
    for message in ("minibn: compiling", "minibn: compiled in"):
        at = out.index(message)
        assert out[at - 1] in "\r\n", repr(out[max(0, at - 80):at + 20])


class _Event:
    """A numba compile event of a minibn loop, as the listener sees it."""
    data = {"dispatcher": type("D", (), {"py_func": type("F", (), {"__module__": "minibn.kernels._x"})})()}


def test_a_later_compilation_is_said_only_when_it_is_slow():
    """The first compilation before and after; a later one only once it has run `delay` seconds
    (from a timer: the pause is explained while it lasts), then when it ends; a short one not."""
    import time

    said = []
    announce = numba_cpu._Announce(said.append, delay=0.2)
    announce.on_start(_Event())  # the first: before and after
    announce.on_end(_Event())
    assert len(said) == 2 and said[0].startswith("minibn: compiling the fused CPU loops")
    assert said[1].startswith("minibn: compiled in")
    announce.on_start(_Event())  # a short later one: nothing
    announce.on_end(_Event())
    time.sleep(0.4)
    assert len(said) == 2
    announce.on_start(_Event())  # a slow one: said while it runs
    time.sleep(0.6)
    assert said[2:] == ["minibn: compiling more of the fused loops (once)..."]
    announce.on_end(_Event())
    assert said[3].startswith("minibn: compiled in") and len(said) == 4
