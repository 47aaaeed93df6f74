"""The Python half of `benchmarks/gpu_run.sh`: the checks that need a GPU, and the run's summary.

    python benchmarks/gpu_checks.py env     --out env.json
    python benchmarks/gpu_checks.py syncs   --out syncs.json [--batch 60]
    python benchmarks/gpu_checks.py bench   --md bench.md --json bench.json [--tiny] [--stand-in]
    python benchmarks/gpu_checks.py summary --steps steps.tsv --work DIR --out DIR --mode gpu

Every subcommand catches its own errors and writes what it has (a traceback in the JSON
rather than a crash), so that one failing check never costs the others their results. Without
CuPy and a CUDA device, ``syncs`` runs the same training step on NumPy and writes "skipped: no
CuPy", and ``bench`` runs the GPU rows on a CPU stand-in (small sizes; its report says that its
numbers are not GPU numbers): the structure is testable anywhere (tests/test_gpu_run.py).

``summary`` imports nothing but the standard library: it renders summary.md from the steps the
shell script recorded, the JSON files of the other subcommands and the steps' output.

(e) Host-device synchronizations inside one training step of the Fig. 1 MLP on the GPU are
looked for three ways:

* ``cupyx.allow_synchronize(False)`` around the step (deprecated since CuPy 10, still there in
  CuPy 14-15): it raises ``cupyx.DeviceSynchronized`` at the first synchronization CuPy itself
  declares, which is only ``ndarray.get()`` (so ``float(x)``, ``x.item()``, ``cupy.asnumpy``)
  and ``cupy.cuda.Device().synchronize()``; the frame that raised is reported;
* counting: the same CuPy hook, and numba-cuda's ``Stream``/``Context``/``Event.synchronize``,
  replaced for one step by counters that keep the minibn frames of each call. numba-cuda
  synchronizes the stream of every CuPy array a kernel takes (``__cuda_array_interface__``,
  NUMBA_CUDA_ARRAY_INTERFACE_SYNC=1 by default), which CuPy's hook cannot see;
* the busy device: a kernel that spins for about 0.25 s is queued, then the step is called.
  A step that never waits for the device returns long before the spin ends; any
  synchronization (whoever makes it: CuPy, numba-cuda, a copy to the host, the driver) makes
  the host wait for the spin. PyTorch's step is timed the same way as a control.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: minibn from this checkout
    sys.path.insert(0, str(REPO))


def _write_json(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _version(*distributions):
    """The installed version of the first of ``distributions`` found (package metadata only:
    nothing is imported)."""
    from importlib import metadata
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


# -- env ----------------------------------------------------------------------------------------

def environment():
    """The versions and the device that the run's results depend on."""
    env = {"python": f"{platform.python_version()} ({sys.executable})", "platform": platform.platform(),
           "cpu cores": os.cpu_count()}
    for names in (("numpy",), ("numba",), ("numba-cuda",), ("torch",), ("mpi4py",), ("pytest",), ("pytest-timeout",),
                  ("pytest-xdist",), ("tqdm",), ("matplotlib",),
                  ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"), ("cuda-python", "cuda-bindings")):
        env[names[0]] = _version(*names)
    gpu = False
    try:
        import cupy
        env["cupy"] = cupy.__version__
        try:
            n = cupy.cuda.runtime.getDeviceCount()
            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            env["cupy devices"] = n
            env["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
            env["compute capability"] = f"{props['major']}.{props['minor']}"
            env["gpu memory GiB"] = round(props["totalGlobalMem"] / 2 ** 30, 1)
            env["cuda runtime"] = cupy.cuda.runtime.runtimeGetVersion()
            env["cuda driver"] = cupy.cuda.runtime.driverGetVersion()
            gpu = n > 0
        except Exception as e:
            env["cupy devices"] = f"error: {type(e).__name__}: {e}"
    except Exception as e:
        env["cupy"] = f"not importable ({type(e).__name__}: {str(e)[:120]})"
    try:
        from numba import cuda
        env["numba.cuda.is_available"] = bool(cuda.is_available())
    except Exception as e:
        env["numba.cuda.is_available"] = f"error: {type(e).__name__}: {e}"
    if gpu:  # (importing torch takes seconds: only where its CUDA build matters)
        try:
            import torch
            env["torch cuda"] = f"{torch.version.cuda}, available: {torch.cuda.is_available()}"
        except Exception as e:
            env["torch cuda"] = f"error: {type(e).__name__}: {e}"
    try:
        import minibn
        from minibn import backend
        env["minibn"] = f"{minibn.__version__} from {Path(minibn.__file__).parent}"
        env["minibn backends"] = ", ".join(backend.available())
    except Exception as e:
        env["minibn"] = f"not importable ({type(e).__name__}: {e})"
    for var in ("NUMBA_ENABLE_CUDASIM", "NUMBA_CUDA_ARRAY_INTERFACE_SYNC", "MINIBN_BACKEND", "MINIBN_DATA",
                "CUDA_VISIBLE_DEVICES", "PYTHONPATH"):
        env[f"${var}"] = os.environ.get(var, "(unset)")
    return env


def cmd_env(args):
    try:
        env = environment()
    except Exception:
        env = {"error": traceback.format_exc()}
    _write_json(args.out, env)
    print(json.dumps(env, indent=1, default=str))
    return 0


# -- syncs --------------------------------------------------------------------------------------

SPIN_SOURCE = r"""
extern "C" __global__ void minibn_spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}
"""


def _minibn_frames(stack, keep=4):
    """'file:line function' of the innermost ``keep`` frames inside the minibn package,
    innermost first: where a synchronization was made, and the calls that led there."""
    frames = [f for f in stack if f"{os.sep}minibn{os.sep}" in f.filename and "gpu_checks" not in f.filename]
    out = []
    for f in reversed(frames[-keep:]):
        path = f.filename.split(f"{os.sep}minibn{os.sep}", 1)[-1]
        out.append(f"minibn/{path}:{f.lineno} {f.name}")
    return " <- ".join(out) or "(outside minibn)"


def _by_allow_synchronize(step):
    """cupyx.allow_synchronize(False) around one step: the first synchronization CuPy declares."""
    import warnings

    import cupyx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the API's deprecation warning
        try:
            with cupyx.allow_synchronize(False):
                step()
        except cupyx.DeviceSynchronized:
            tb = sys.exc_info()[2]
            return {"synchronized": True, "first_site": _minibn_frames(traceback.extract_tb(tb)),
                    "traceback": traceback.format_exc()[-3000:]}
    return {"synchronized": False,
            "note": "no DeviceSynchronized raised (CuPy declares only ndarray.get() and Device.synchronize(); "
                    "numba-cuda's stream synchronizations are not seen here: see 'counted')"}


def _counted(step):
    """One step with CuPy's synchronization hook and numba-cuda's synchronize methods counting
    their calls (with the minibn frames of each)."""
    counts = collections.Counter()
    patches = []

    def counting(kind, original):
        def wrapper(*a, **kw):
            counts[(kind, _minibn_frames(traceback.extract_stack()[:-1]))] += 1
            return original(*a, **kw)
        return wrapper

    try:
        from cupy._core import syncdetect
        patches.append((syncdetect, "_declare_synchronize", syncdetect._declare_synchronize))
        syncdetect._declare_synchronize = counting("cupy (ndarray.get / Device.synchronize)",
                                                   syncdetect._declare_synchronize)
    except Exception as e:
        counts[(f"cupy hook not installed: {type(e).__name__}: {e}", "")] += 0
    try:
        from numba.cuda.cudadrv import driver
        for cls in ("Stream", "Context", "Event"):
            klass = getattr(driver, cls)
            patches.append((klass, "synchronize", klass.synchronize))
            klass.synchronize = counting(f"numba-cuda {cls}.synchronize", klass.synchronize)
    except Exception as e:
        counts[(f"numba-cuda hooks not installed: {type(e).__name__}: {e}", "")] += 0
    try:
        step()
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
    sites = [{"kind": kind, "site": site, "count": n} for (kind, site), n in counts.most_common()]
    return {"total": sum(counts.values()), "sites": sites}


def _busy_device(step, cupy, seconds=0.25):
    """Queue a kernel that spins for about ``seconds``, then call ``step``: the host's time in
    the step is short unless the step waits for the device."""
    kernel = cupy.RawKernel(SPIN_SOURCE, "minibn_spin")
    device = cupy.cuda.Device()

    def spin(cycles):
        kernel((1,), (1,), (cupy.int64(cycles),))

    device.synchronize()
    spin(1000)  # compile
    device.synchronize()
    probe = 10 ** 8
    t0 = time.perf_counter()
    spin(probe)
    device.synchronize()
    rate = probe / max(time.perf_counter() - t0, 1e-6)
    cycles = int(rate * seconds)
    t0 = time.perf_counter()
    spin(cycles)
    device.synchronize()
    spin_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    spin(cycles)
    t1 = time.perf_counter()
    step()
    t2 = time.perf_counter()
    device.synchronize()
    total = time.perf_counter() - t0
    return {"spin_seconds": spin_alone, "spin_launch_seconds": t1 - t0, "step_host_seconds": t2 - t1,
            "step_and_spin_total_seconds": total, "waited_for_the_device": t2 - t1 > 0.5 * spin_alone,
            "note": "step_host_seconds: the host's time in the step, called just after the spin was queued; a "
                    "step that never waits for the device returns well before the spin ends"}


def check_syncs(batch=60):
    """Look for host-device synchronizations in one training step of the Fig. 1 MLP (forward,
    backward, SGD) on the GPU. Without CuPy, run the step on NumPy and say so."""
    import numpy as np

    from minibn import backend, bench
    from minibn.experiments.fig1_net import build_net

    result = {"what": f"one training step of the Fig. 1 MLP (batch {batch}: forward, loss, backward, SGD)",
              "status": None, "methods": {}, "errors": {}}
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if backend.cupy is None:
        model, _ = build_net(True)
        bench.minibn_train_step(model, x, y)()
        result["status"] = f"skipped: no CuPy ({backend._CUPY_ERROR}); the step ran on NumPy"
        result["verdict"] = {"met": None, "text": "not measured (no GPU)"}
        return result
    cupy = backend.cupy
    previous = backend._active
    backend.use("cupy")
    try:
        model, _ = build_net(True)
        model.to("gpu")
        step = bench.minibn_train_step(model, backend.to_device(x, "gpu"), backend.to_device(y, "gpu"))
        for _ in range(3):  # compiles the kernels, fills the memory pool
            step()
        cupy.cuda.Device().synchronize()
        result["implementations"] = sorted({f"{m.last_implementation.name} ({m.last_implementation.forward_path})"
                                            for m in model.modules() if getattr(m, "last_implementation", None)})
        for name, method in (("allow_synchronize", lambda: _by_allow_synchronize(step)),
                             ("counted", lambda: _counted(step)),
                             ("busy_device", lambda: _busy_device(step, cupy))):
            try:
                result["methods"][name] = method()
            except Exception:
                result["errors"][name] = traceback.format_exc()[-3000:]
            try:
                cupy.cuda.Device().synchronize()
            except Exception:
                result["errors"][name + " (synchronize after)"] = traceback.format_exc()[-2000:]
        try:
            import torch
            if torch.cuda.is_available():
                step_t = bench.torch_train_step(torch, bench.torch_fig1_mlp(torch), x, y, "cuda")
                for _ in range(3):
                    step_t()
                torch.cuda.synchronize()
                result["methods"]["busy_device_pytorch_control"] = _busy_device(step_t, cupy)
        except Exception:
            result["errors"]["busy_device_pytorch_control"] = traceback.format_exc()[-3000:]
    finally:
        backend.use(previous)
    result["status"] = "measured"
    result["verdict"] = verdict(result["methods"])
    return result


def verdict(methods):
    """{"met": True/False/None, "text"}: no synchronization inside the step?"""
    allow, counted, busy = methods.get("allow_synchronize"), methods.get("counted"), methods.get("busy_device")
    found, clean = [], []
    if allow is not None:
        (found if allow["synchronized"] else clean).append(
            f"allow_synchronize: {'raised at ' + allow['first_site'] if allow['synchronized'] else 'nothing raised'}")
    if counted is not None:
        if counted["total"]:
            top = "; ".join(f"{s['count']}x {s['kind']} at {s['site']}" for s in counted["sites"][:3])
            found.append(f"counted {counted['total']} in one step ({top})")
        else:
            clean.append("counted 0")
    if busy is not None:
        text = (f"host {busy['step_host_seconds'] * 1e3:.1f} ms in the step behind a "
                f"{busy['spin_seconds'] * 1e3:.0f} ms busy kernel")
        (found if busy["waited_for_the_device"] else clean).append(text)
    if not found and not clean:
        return {"met": None, "text": "not measured (every method failed: see errors)"}
    if found:
        return {"met": False, "text": "synchronizes: " + "; ".join(found)}
    return {"met": True, "text": "no synchronization found: " + "; ".join(clean)}


def cmd_syncs(args):
    try:
        result = check_syncs(args.batch)
    except Exception:
        result = {"status": "error", "errors": {"check": traceback.format_exc()},
                  "verdict": {"met": None, "text": "not measured (the check failed: see errors)"}}
    _write_json(args.out, result)
    print(json.dumps(result.get("verdict"), default=str))
    for name, tb in result.get("errors", {}).items():
        print(f"--- error in {name}:\n{tb}", file=sys.stderr)
    return 0 if result.get("status") not in ("error", None) and not result.get("errors") else 1


# -- bench --------------------------------------------------------------------------------------

def cmd_bench(args):
    from minibn import backend, bench
    try:
        import torch
    except ImportError:
        torch = None
    stand_in = args.stand_in or backend.cupy is None
    if stand_in and torch is not None:
        torch.set_num_threads(1)  # the stand-in's numbers mean nothing: keep it light
    try:
        result = bench.gpu_bench(torch, stand_in=stand_in, tiny=args.tiny or stand_in,
                                 progress=lambda text: print(f"bench: {text}", flush=True))
    except Exception:
        result = {"info": {}, "stand_in": stand_in, "copy_bandwidth": None, "rows": [], "targets": [],
                  "errors": [("bench", traceback.format_exc())]}
    text = bench.gpu_report(result)
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text("# minibn on the GPU: `minibn bench`'s GPU rows\n\n" + text + "\n")
    _write_json(args.json, bench.gpu_json(result))
    print(text)
    return 1 if result["errors"] or any(r.get("errors") for r in result["rows"]) else 0


# -- summary ------------------------------------------------------------------------------------

#: (key, step, what): the steps of gpu_run.sh in the summary's order
STEPS = [
    ("env", "setup", "environment and minibn importable"),
    ("a", "(a)", "the GPU cases of the test suite (pytest -m gpu: the cupy runs of every test)"),
    ("b1", "(b)", "CPU-vs-GPU agreement of every layer of the gradient-check table (tests/test_gpu.py)"),
    ("b2", "(b)", "gradient checks on the GPU (minibn gradcheck --backend cupy)"),
    ("c", "(c)", "numba-cuda kernels on the device (tests/test_cuda_kernels.py, simulator off)"),
    ("d1", "(d)", "minibn drift --backend cupy --steps 2000"),
    ("d2", "(d)", "MINIBN_BACKEND=cupy minibn reproduce all --fast"),
    ("e", "(e)", "host-device synchronizations in one training step"),
    ("f", "(f)", "minibn bench's GPU rows"),
    ("a2", "(a, info)", "the CPU unit tests with MINIBN_BACKEND=cupy as the default backend (not a target)"),
]
PYTEST_STEPS = ("a", "b1", "c", "a2")
#: skip reasons that a GPU does not remove (the test is for a machine without one, or by design)
KEPT_SKIPS = ("CuPy is usable here", "simulator's shared arrays", "different random generators")
GPU_SKIP = re.compile(r"CuPy|CUDA|GPU|numba-cuda|device", re.I)


def read_steps(path):
    rows = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 7:
            continue
        key, status, rc, seconds, log, note, command = parts[:7]
        rows[key] = {"status": status, "rc": rc, "seconds": seconds, "log": log, "note": note, "command": command}
    return rows


def pytest_counts(text):
    """{"passed": n, ...} from pytest's last summary line, and [(count, reason)] of its skips."""
    counts = {}
    for line in reversed(text.splitlines()):
        if re.search(r"\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", line) and \
                re.search(r" in [\d.]+s", line):
            for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)",
                                      line):
                counts["error" if what.startswith("error") else what] = int(n)
            break
        if re.search(r"no tests ran in [\d.]+s", line):
            break
    skips = [(int(n), reason.strip()) for n, reason in
             re.findall(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.*)$", text, re.M)]
    return counts, skips


def gradcheck_counts(text):
    m = re.search(r"(\d+) layers in (\d+) cases, (\d+) tensors checked: (\d+) passed, (\d+) failed", text)
    return None if m is None else {"layers": int(m[1]), "cases": int(m[2]), "tensors": int(m[3]),
                                   "passed": int(m[4]), "failed": int(m[5])}


def _read(path, limit=None):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return text if limit is None else text[-limit:]


def _load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def render_summary(steps, work, out, mode, budget, elapsed):
    work, out = Path(work), Path(out)
    env = _load_json(work / "env.json") or {}
    syncs, bench_json = _load_json(out / "syncs.json"), _load_json(out / "bench.json")
    mode_text = {"gpu": f"GPU: {env.get('gpu', 'device name unknown')}",
                 "cpu-fallback": "CPU fallback: no CuPy with a CUDA device here, so every GPU step is skipped "
                                 "(each ran its command on the CPU at a small size, to check the script)",
                 "dry-run": "dry run: the commands are listed, nothing was run"}.get(mode, mode)
    lines = ["# minibn on the GPU: `benchmarks/gpu_run.sh`", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Mode: {mode_text}. "
             f"Elapsed {elapsed} s of a {budget} s budget.", "",
             "## Steps", "", "| step | what | result | counts | seconds | log |",
             "| --- | --- | --- | --- | ---: | --- |"]
    skips_all, details = [], []
    for key, label, what in STEPS:
        row = steps.get(key)
        if row is None:
            lines.append(f"| {label} | {what} | not run (the script stopped before it) | | | |")
            continue
        text = _read(work / f"{key}.out")
        counts = ""
        if key in PYTEST_STEPS and text:
            c, skips = pytest_counts(text)
            counts = ", ".join(f"{n} {w}" for w, n in c.items()) if c else "no pytest summary line"
            if key != "a2" and not row["status"].startswith("skipped"):
                skips_all += [(key, n, r) for n, r in skips]
        elif key == "b2" and text:
            g = gradcheck_counts(text)
            counts = "" if g is None else (f"{g['passed']} of {g['tensors']} tensors passed ({g['layers']} layers, "
                                           f"{g['cases']} cases), {g['failed']} failed")
        elif key in ("d1", "d2") and text:
            found = re.findall(r"^\s*(.*final test accuracy [^;]*|all experiments in .*?\))", text, re.M)
            counts = "; ".join(found[:4])
        elif key == "e" and syncs:
            counts = (syncs.get("verdict") or {}).get("text", "")
        elif key == "f" and bench_json:
            counts = f"{len(bench_json.get('rows', []))} rows, {len(bench_json.get('errors', []))} part errors"
        result = row["status"] + (f" ({row['note']})" if row["note"] else "")
        lines.append(f"| {label} | {what} | {result} | {counts.replace('|', '/')} | {row['seconds']} | "
                     f"{row['log']} |")
        if not row["status"].startswith(("passed", "skipped", "dry run", "not selected")) and text:
            tail = "\n".join(text.rstrip().splitlines()[-15:])
            details += ["", f"{label} `{row['command'][:300]}`: {row['status']}; the end of its output:", "",
                        "```", tail, "```"]
    lines += ["", "Commands:", ""]
    lines += [f"- {label}: `{steps[k]['command'][:600]}`" for k, label, _ in STEPS if k in steps]
    if skips_all:
        lines += ["", "Skips in (a)-(c):", ""]
        lines += [f"- ({k}) {n} x {r}" for k, n, r in skips_all]
    lines += ["", "## Targets", ""] + targets(steps, skips_all, syncs, bench_json, mode)
    if details:
        lines += ["", "## Failed steps"] + details
    lines += ["", "## Environment", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()] or ["- not recorded"]
    smi = _read(work / "nvidia-smi.txt", 6000).strip()
    if smi:
        lines += ["", "<details><summary>nvidia-smi</summary>", "", "```", smi, "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def targets(steps, skips, syncs, bench_json, mode):
    out = []
    # 1. the suite on CuPy
    suite = [steps.get(k) for k in ("a", "b1", "b2", "c")]
    if mode != "gpu":
        out.append("- the suite passes on CuPy with no skips a GPU would remove: **not measured** (no GPU)")
    elif any(s is None or s["status"].startswith(("skipped", "not selected", "dry run")) for s in suite):
        out.append("- the suite passes on CuPy with no skips a GPU would remove: **unknown** (not every step of "
                   "(a)-(c) ran)")
    else:
        gpu_skips = [(k, n, r) for k, n, r in skips if GPU_SKIP.search(r) and not any(s in r for s in KEPT_SKIPS)]
        passed = all(s["status"] == "passed" for s in suite)
        n_gpu = sum(n for _, n, _ in gpu_skips)
        met = passed and n_gpu == 0
        why = ("(a), (b) and (c) passed" if passed else
               "failed: " + ", ".join(k for k, s in zip(("a", "b1", "b2", "c"), suite) if s["status"] != "passed"))
        out.append(f"- the suite passes on CuPy with no skips a GPU would remove: **{'met' if met else 'NOT met'}**: "
                   f"{why}; {n_gpu} skips that name the GPU/CuPy/CUDA"
                   + (f" ({'; '.join(f'{n} x {r}' for _, n, r in gpu_skips[:4])})" if gpu_skips else "")
                   + f"; {sum(n for _, n, _ in skips) - n_gpu} other skips (listed above)")
    # 2-3. bench
    if not bench_json or bench_json.get("stand_in") or mode != "gpu":
        out.append("- BN at >= 0.7 of the device's copy bandwidth at the two large shapes: **not measured** (no GPU)")
        out.append("- BN at least as fast as PyTorch CUDA at all four shapes: **not measured** (no GPU)")
    else:
        tg = bench_json.get("targets", [])
        for kind, text in (("fraction", "BN at >= 0.7 of the device's copy bandwidth at the two large shapes"),
                           ("speed vs PyTorch", "BN at least as fast as PyTorch CUDA at all four shapes")):
            mine = [t for t in tg if kind in t["target"]]
            if not mine:
                out.append(f"- {text}: **not measured** (no such row: see bench.md)")
                continue
            met = all(t["met"] for t in mine)
            unknown = any(t["met"] is None for t in mine)
            values = "; ".join(f"{t['target'].rsplit(', ', 1)[0].replace('BN forward+backward ', '')}: "
                               + ("not measured" if t["value"] is None else f"{t['value']:.2f}"
                                  + (f" ({t['spread'][0]:.2f}-{t['spread'][1]:.2f})" if t["spread"] else ""))
                               for t in mine)
            out.append(f"- {text}: **{'unknown' if unknown else 'met' if met else 'NOT met'}**: {values}")
    # 4. syncs
    v = (syncs or {}).get("verdict") or {}
    if mode != "gpu" or not syncs:
        out.append("- no host-device synchronisation inside a training step: **not measured**"
                   + (" (no GPU)" if mode != "gpu" else " (no syncs.json)"))
    else:
        word = {True: "met", False: "NOT met", None: "unknown"}[v.get("met")]
        out.append(f"- no host-device synchronisation inside a training step: **{word}**: {v.get('text', '')}")
    return out


def cmd_summary(args):
    steps = read_steps(args.steps)
    text = render_summary(steps, args.work, args.out, args.mode, args.budget, args.elapsed)
    path = Path(args.out) / "summary.md"
    tmp = path.with_name("summary.md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("env")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_env)
    s = sub.add_parser("syncs")
    s.add_argument("--out", required=True)
    s.add_argument("--batch", type=int, default=60)
    s.set_defaults(func=cmd_syncs)
    s = sub.add_parser("bench")
    s.add_argument("--md", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--tiny", action="store_true", help="small sizes (the stand-in's; a quick check on a GPU)")
    s.add_argument("--stand-in", action="store_true", help="run on the CPU stand-in even where CuPy works")
    s.set_defaults(func=cmd_bench)
    s = sub.add_parser("summary")
    s.add_argument("--steps", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--mode", default="gpu")
    s.add_argument("--budget", default="?")
    s.add_argument("--elapsed", default="?")
    s.set_defaults(func=cmd_summary)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
