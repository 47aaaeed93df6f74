"""benchmarks/gpu_run.sh, the GPU machine's one prepared call, checked without a GPU.

The script runs on a GPU machine lent for minutes: whatever can be checked here is checked
here. Its CPU fallback (no CuPy: every GPU step "skipped: no CuPy", its command run small on the
CPU), its dry run, the summary it renders from GPU results (given here as a GPU run would leave
them), and the GPU rows of the benchmark on their CPU stand-in. Not marked gpu or slow: part of
the normal suite (about 20 s, most of it the fallback run).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minibn import bench

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_run.sh"
ALLOWED = {"summary.md", "tests.log", "agreement.log", "kernels.log", "drift.log", "syncs.json", "bench.md",
           "bench.json"}
STEP_LABELS = ["setup", "(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(a, info)"]

needs_bash = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils' timeout")


def _checks():
    spec = importlib.util.spec_from_file_location("gpu_checks", ROOT / "benchmarks" / "gpu_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(out, *args, only=None, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in ("MINIBN_BACKEND", "GPU_RUN_ONLY")}
    env.update(OUT=str(out), PYTHON=sys.executable, GPU_RUN_FORCE_CPU="1")
    if only is not None:
        env["GPU_RUN_ONLY"] = only
    # from another folder: the script finds the repository itself
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=out.parent, capture_output=True, text=True,
                          timeout=timeout)


def _step_lines(summary):
    return [ln for ln in summary.splitlines() if ln.startswith("| ") and not ln.startswith(("| step", "| ---"))]


def test_the_script_passes_bash_n():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@needs_bash
def test_dry_run_lists_every_step_and_runs_nothing(tmp_path):
    out = tmp_path / "out"
    r = _run(out, "--dry-run", timeout=60)
    assert r.returncode == 0, r.stderr
    files = {p.name for p in out.iterdir()}
    assert files <= ALLOWED and "summary.md" in files
    summary = (out / "summary.md").read_text()
    assert "Mode: dry run" in summary
    rows = _step_lines(summary)
    assert [row.split(" | ")[0][2:] for row in rows] == ["setup", "(a)", "(b)", "(b)", "(c)", "(d)", "(d)", "(e)",
                                                          "(f)", "(a, info)"]
    assert all("dry run: not run" in row for row in rows)
    for command in ("-m gpu tests", "tests/test_gpu.py", "gradcheck --backend cupy", "tests/test_cuda_kernels.py",
                    "drift --backend cupy --steps 2000", "reproduce all --fast", "gpu_checks.py syncs",
                    "gpu_checks.py bench"):
        assert command in summary, command
    assert "env -u NUMBA_ENABLE_CUDASIM" in summary  # the kernels' tests run on the device


@needs_bash
def test_cpu_fallback_skips_the_gpu_steps_and_still_writes_the_report(tmp_path):
    """The fallback run of (a), (b)'s gradcheck, (e) and (f) (the others are "not selected", to
    keep this short; --dry-run above lists them all): each "skipped: no CuPy" with its CPU run passed,
    at most 8 files in $OUT, the summary, the syncs and the bench files sensible."""
    out = tmp_path / "out"
    r = _run(out, only="a b2 e f")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = {p.name for p in out.iterdir()}
    assert files <= ALLOWED and len(files) <= 8, files
    assert {"summary.md", "syncs.json", "bench.md", "bench.json"} <= files
    summary = (out / "summary.md").read_text()
    assert "Mode: CPU fallback" in summary and "## Targets" in summary and "## Environment" in summary
    rows = {row.split(" | ")[1]: row for row in _step_lines(summary)}
    for what in ("the GPU cases of the test suite", "host-device synchronizations", "minibn bench's GPU rows"):
        row = next(v for k, v in rows.items() if k.startswith(what))
        assert "skipped: no CuPy (CPU fallback: passed" in row, row
    assert "2 skipped" in next(v for k, v in rows.items() if k.startswith("the GPU cases of the test suite"))
    assert "skipped: no CuPy |" in next(v for k, v in rows.items() if k.startswith("gradient checks on the GPU"))
    for what in ("CPU-vs-GPU agreement", "numba-cuda kernels", "minibn drift", "MINIBN_BACKEND=cupy minibn reproduce"):
        assert "not selected" in next(v for k, v in rows.items() if k.startswith(what))
    assert summary.count("**not measured** (no GPU)") == 4
    assert "setup | environment and minibn importable | passed" in summary
    syncs = json.loads((out / "syncs.json").read_text())
    assert syncs["status"].startswith("skipped: no CuPy") and syncs["verdict"]["met"] is None
    data = json.loads((out / "bench.json").read_text())
    assert data["stand_in"] is True and not data["errors"]
    layers = {row["layer"] for row in data["rows"]}
    assert {"BatchNorm", "LayerNorm", "BatchRenorm", "MemorizedBN", "Fig. 1 MLP step (BN)"} <= layers
    assert "NOT GPU numbers" in (out / "bench.md").read_text()
    assert "(a) " in (out / "tests.log").read_text()


def test_summary_of_a_gpu_run(tmp_path):
    """The summary a GPU run would get, from the files such a run leaves (made up here):
    counts from pytest's and gradcheck's last lines, the skips sorted into those a GPU removes
    and the others, the targets from bench.json and syncs.json, a failed step's output."""
    checks = _checks()
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    steps = [("env", "passed", "0", "3", "-", "", "python env"),
             ("a", "failed (exit 1)", "1", "40", "tests.log", "", "pytest -m gpu tests"),
             ("b1", "passed", "0", "50", "agreement.log", "", "pytest tests/test_gpu.py"),
             ("b2", "passed", "0", "30", "agreement.log", "", "minibn gradcheck --backend cupy"),
             ("c", "passed", "0", "20", "kernels.log", "", "pytest tests/test_cuda_kernels.py"),
             ("d1", "timed out after 120 s", "124", "120", "drift.log", "", "minibn drift"),
             ("e", "passed", "0", "9", "-", "", "gpu_checks.py syncs"),
             ("f", "passed", "0", "60", "-", "", "gpu_checks.py bench")]
    (work / "steps.tsv").write_text("".join("\t".join(s) + "\n" for s in steps))
    (work / "a.out").write_text("F.s\nFAILED tests/x.py::test_y - TypeError: Unsupported type\n"
                                "SKIPPED [2] tests/test_backend.py:13: CuPy is usable here\n"
                                "1 failed, 268 passed, 2 skipped, 1549 deselected in 35.10s\n")
    (work / "b1.out").write_text("SKIPPED [1] tests/test_gpu.py:26: different random generators on the two devices\n"
                                 "177 passed, 1 skipped in 40.2s\n")
    (work / "b2.out").write_text("31 layers in 89 cases, 240 tensors checked: 240 passed, 0 failed\n")
    (work / "c.out").write_text("SKIPPED [1] tests/test_cuda_kernels.py:162: the simulator's shared arrays (a GPU "
                                "has real ones)\nSKIPPED [3] tests/test_x.py:1: CuPy with a CUDA device is not "
                                "available\n19 passed, 4 skipped in 12.0s\n")
    (work / "d1.out").write_text("training...\n")
    (work / "env.json").write_text(json.dumps({"gpu": "NVIDIA H200", "cupy": "14.2.0"}))
    (work / "nvidia-smi.txt").write_text("| NVIDIA H200 |\n")
    targets = [{"target": "BN forward+backward (65536, 1024), fraction of the device's copy bandwidth",
                "value": 0.55, "goal": 0.7, "met": False, "spread": [0.5, 0.6]},
               {"target": "BN forward+backward (65536, 1024), speed vs PyTorch CUDA", "value": 1.2, "goal": 1.0,
                "met": True, "spread": None}]
    (out / "bench.json").write_text(json.dumps({"stand_in": False, "rows": [{}], "errors": [], "targets": targets}))
    (out / "syncs.json").write_text(json.dumps({"verdict": {"met": False, "text": "synchronizes: counted 12"}}))
    text = checks.render_summary(checks.read_steps(work / "steps.tsv"), work, out, "gpu", 450, 400)
    assert "Mode: GPU: NVIDIA H200" in text
    assert "| (a) | the GPU cases of the test suite" in text and "1 failed, 268 passed, 2 skipped" in text
    assert "240 of 240 tensors passed (31 layers, 89 cases), 0 failed" in text
    assert "| (d) | MINIBN_BACKEND=cupy minibn reproduce all --fast | not run" in text
    assert "**NOT met**: failed: a; 3 skips that name the GPU/CuPy/CUDA (3 x CuPy with a CUDA device" in text
    assert "; 4 other skips" in text  # "CuPy is usable here" (2), the random generators, the simulator's arrays
    assert "copy bandwidth at the two large shapes: **NOT met**: (65536, 1024): 0.55 (0.50-0.60)" in text
    assert "as fast as PyTorch CUDA at all four shapes: **met**: (65536, 1024): 1.20" in text
    assert "no host-device synchronisation inside a training step: **NOT met**: synchronizes: counted 12" in text
    assert "## Failed steps" in text and "TypeError: Unsupported type" in text and "training..." in text
    assert "<summary>nvidia-smi</summary>" in text


def test_pytest_and_gradcheck_lines_are_read():
    checks = _checks()
    counts, skips = checks.pytest_counts("x\nSKIPPED [178] tests/test_gpu.py:23: CuPy with a CUDA device is not "
                                         "available\n178 skipped in 2.24s\n")
    assert counts == {"skipped": 178} and skips == [(178, "CuPy with a CUDA device is not available")]
    counts, _ = checks.pytest_counts("!!! KeyboardInterrupt !!!\n== 5 passed, 1 error in 3.00s ==\n")
    assert counts == {"passed": 5, "error": 1}
    assert checks.pytest_counts("no tests ran in 0.5s\n") == ({}, [])
    assert checks.gradcheck_counts("nothing") is None


def test_sync_verdict():
    checks = _checks()
    clean = {"allow_synchronize": {"synchronized": False}, "counted": {"total": 0, "sites": []},
             "busy_device": {"step_host_seconds": 0.004, "spin_seconds": 0.25, "waited_for_the_device": False}}
    assert checks.verdict(clean)["met"] is True
    numba = dict(clean, counted={"total": 24, "sites": [{"kind": "numba-cuda Stream.synchronize", "count": 24,
                                                         "site": "minibn/kernels/cuda_loops.py:240 moments"}]},
                 busy_device={"step_host_seconds": 0.26, "spin_seconds": 0.25, "waited_for_the_device": True})
    v = checks.verdict(numba)
    assert v["met"] is False and "24x numba-cuda Stream.synchronize at minibn/kernels/cuda_loops.py:240" in v["text"]
    assert checks.verdict({})["met"] is None


def test_gpu_rows_on_the_cpu_stand_in():
    """bench.gpu_bench's rows, targets, report and JSON, on the stand-in (NumPy, no PyTorch
    column: torch=None keeps it short; the fallback run above has PyTorch)."""
    result = bench.gpu_bench(None, stand_in=True, tiny=True)
    assert result["stand_in"] and not result["errors"] and result["copy_bandwidth"] > 0
    bn = [r for r in result["rows"] if r["layer"] == "BatchNorm"]
    assert [tuple(r["shape"]) for r in bn] == bench.GPU_TINY["bn_shapes"]
    assert set(bn[0]["t"]) == {bench.GPU, bench.GPU_FAST, bench.GPU_REFERENCE} and "bw_rounds" in bn[0]
    assert [r["target"] for r in bn] == [False, True, False, True]
    assert len(bn[1]["rounds"][bench.GPU]) == bench.GPU_TARGET_ROUNDS  # the large shapes get more rounds
    # no PyTorch column: the speed targets are listed, not measured
    assert [t["met"] for t in result["targets"] if "speed" in t["target"]] == [None] * 4
    assert sum("fraction" in t["target"] for t in result["targets"]) == 2
    text = bench.gpu_report(result)
    assert "NOT GPU numbers" in text and "| BatchNorm | (256, 32) | both | minibn CuPy" in text
    data = json.loads(json.dumps(bench.gpu_json(result)))
    assert data["rows"][0]["derived"][bench.GPU]["fraction"][0] > 0


def test_gpu_targets_pair_the_rounds():
    row = {"layer": "BatchNorm", "shape": (65536, 1024), "mode": "both", "bytes": 10.0, "target": True,
           "t": {bench.GPU: 2.0, bench.TORCH_CUDA: 3.0}, "bw": 10.0,
           "rounds": {bench.GPU: [1.0, 2.0, 2.0], bench.TORCH_CUDA: [1.5, 3.0, 3.0]},
           "bw_rounds": [20.0, 10.0, 10.0]}
    small = dict(row, shape=(4096, 1024), target=False, t={bench.GPU: 1.0}, rounds={bench.GPU: [1.0]})
    tg = bench.gpu_targets([row, small])
    assert [t["target"] for t in tg] == [
        "BN forward+backward (65536, 1024), fraction of the device's copy bandwidth",
        "BN forward+backward (65536, 1024), speed vs PyTorch CUDA",
        "BN forward+backward (4096, 1024), speed vs PyTorch CUDA"]
    assert tg[0]["value"] == pytest.approx(0.5) and tg[0]["met"] is False
    assert tg[1]["value"] == pytest.approx(1.5) and tg[1]["met"] is True
    assert tg[2]["value"] is None and tg[2]["met"] is None  # no PyTorch time in that row
    errors = {"layer": "BatchNorm", "shape": (64, 32), "mode": "both", "bytes": 8, "t": {}, "rounds": {},
              "errors": {bench.GPU: "CUDADriverError: boom"}}
    text = bench.gpu_report({"info": {}, "rows": [errors], "targets": [], "errors": [("part", "Traceback: x")]})
    assert "| minibn CuPy | error: CUDADriverError: boom |" in text and "Error in part:" in text
    assert np.isfinite(bench.gpu_json({"rows": [row], "copy_bandwidth": 1.0})["rows"][0]["derived"][bench.GPU]
                       ["fraction"][0])


def test_the_sync_counter_sees_numba_cuda_stream_synchronizations():
    """(e)'s counter replaces numba-cuda's synchronize methods for one step, and puts them back.
    In a process of its own: the test session runs numba-cuda's simulator, which has no Stream."""
    code = """
import importlib.util, json, sys
from numba.cuda.cudadrv import driver
spec = importlib.util.spec_from_file_location("gpu_checks", sys.argv[1])
checks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks)
original = driver.Stream.synchronize
def step():
    try:
        driver.Stream.synchronize(None)  # counted, then fails: there is no stream here
    except Exception:
        pass
counted = checks._counted(step)
print(json.dumps({"counted": counted, "restored": driver.Stream.synchronize is original}))
"""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks" / "gpu_checks.py")], env=env,
                       capture_output=True, text=True, timeout=120)
    if r.returncode and "No module named" in r.stderr:
        pytest.skip("numba-cuda is not installed")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["restored"] and result["counted"]["total"] == 1
    assert [s["kind"] for s in result["counted"]["sites"] if s["count"]] == ["numba-cuda Stream.synchronize"]
