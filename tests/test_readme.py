"""The README's short tour runs as written and prints what its comments say it prints."""

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def tour_code():
    text = README.read_text()
    section = text.split("## A short tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: no ```python block under '## A short tour'"
    return match.group(1)


def test_the_tour_runs_and_prints_what_it_says(tmp_path):
    out = subprocess.run([sys.executable, "-c", tour_code()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    loss = float(re.match(r"loss (\S+)", lines[0]).group(1))
    assert abs(loss - 2.3) < 0.3, lines[0]                       # "about 2.3 (ln 10: random labels)"
    checks = [line for line in lines if "max rel error" in line]
    assert checks and all(line.endswith("pass") for line in checks), out.stdout
    assert "(256, 16) 8" in lines, out.stdout                    # 8 virtual batches of 32 tracked
    assert "[1. 1. 1.]" in lines, out.stdout                     # RMSNorm: unit mean square per row
