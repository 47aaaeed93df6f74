"""The benchmark suite behind `minibn bench`: minibn vs PyTorch, CPU (and CuPy vs CUDA when present).

Every row is timed in one run against the same references: PyTorch CPU (when installed),
minibn on CuPy and PyTorch CUDA (when a GPU is present), and the machine's copy bandwidth,
timed in the same interleaved rounds as each row that counts bytes. Times are medians,
the implementations of a row timed in alternating blocks (:func:`interleaved_medians`)
so that the machine's slow spells hit them alike. Effective bandwidth counts the bytes of
x and y in the forward and of x, dy and dx in the backward. GPU timings synchronise the
device (cupyx.profiler.benchmark; CUDA events for PyTorch).

Outputs (``--out``, default results/bench/; the committed tables in docs/benchmarks/ are
written with ``--out docs/benchmarks``): ``cpu.md`` (tables, machine, targets) and ``cpu.png``.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from . import backend, nn, optim

BN_SHAPES = [(60, 100), (256, 1024), (4096, 1024), (64, 64, 32, 32), (256, 256, 14, 14)]
FAST_BN_SHAPES = [(60, 100), (256, 1024)]


def median_time(fn, repeats=20, warmup=2, max_seconds=4.0):
    """Median of up to ``repeats`` timed calls (fewer if they take over ``max_seconds``)."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_rounds(fns, rounds=5, block=5, warmup=2, max_seconds=8.0, pause=0.15, settle=0.05):
    """{name: [[the call times of round 0's block], [round 1's], ...]}: each function in
    ``fns`` timed in alternating blocks.

    Each round runs ``block`` calls of every function in turn, so a slow spell of a
    shared machine (they last seconds here) hits all of them alike instead of whichever
    was being timed; within a block the function runs warm. Before each block the
    machine rests ``pause`` seconds: OpenBLAS's threads keep spinning for about 0.1 s
    after a matrix product, and without the rest they slowed PyTorch's conv-net step
    that followed minibn's from 9 ms to 18 ms. After the rest the function runs untimed
    for ``settle`` seconds: on the 2-core VMs here the first 20-30 ms of work after an
    idle spell ran up to 2x slower (BN at (4096, 1024): 3.8 ms a call after the rest,
    2.0 ms in a continuous loop), which a block of short calls would otherwise time.
    Stops after 3 rounds once ``max_seconds`` have passed.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            t_settle = time.perf_counter()
            while time.perf_counter() - t_settle < settle:
                fn()
            block_times = []
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                block_times.append(time.perf_counter() - t0)
            times[name].append(block_times)
        if r >= 2 and time.perf_counter() - start > max_seconds:
            break
    return times


def interleaved_medians(fns, **kw):
    """{name: median time of all its timed calls} (:func:`interleaved_rounds`, same arguments)."""
    return _medians(interleaved_rounds(fns, **kw))


def _medians(times):
    """{name: median of all its calls} of :func:`interleaved_rounds`'s times."""
    return {name: float(np.median(np.concatenate(t))) for name, t in times.items()}


def _middle_half(values):
    """(median, 25th percentile, 75th percentile) of the rounds' values."""
    return float(np.median(values)), float(np.percentile(values, 25)), float(np.percentile(values, 75))


def _time_row(row, fns, **kw):
    """Time ``fns`` (:func:`interleaved_rounds`) into the row: row["t"] {name: median of all
    calls} and row["rounds"] {name: [median of each round's block]}, which :func:`speed`
    pairs round by round."""
    times = interleaved_rounds(fns, **kw)
    row["t"] = _medians(times)
    row["rounds"] = {name: [float(np.median(b)) for b in t] for name, t in times.items()}
    return row


def speed(row, name, ref):
    """minibn's speed relative to ``ref`` in a row: (ratio, low, high), the ratio being the
    median over the rounds of t_ref / t_name within each round (the two blocks ran seconds
    apart, so a slow spell of the machine changes both), low and high the 25th and 75th
    percentiles of the rounds' ratios (the middle half of the rounds). Without per-round
    times (a GPU row), or for ``ref`` itself: the ratio of the medians, low = high = None."""
    rounds = row.get("rounds", {})
    if name in rounds and ref in rounds and name != ref:
        return _middle_half(np.array(rounds[ref]) / np.array(rounds[name]))
    return row["t"][ref] / row["t"][name], None, None


def _fmt(value, low, high, unit=""):
    """A :func:`speed` or :func:`fraction`: "1.61x (1.45-1.89)", the spread when there is one."""
    return f"{value:.2f}{unit}" if low is None else f"{value:.2f}{unit} ({low:.2f}-{high:.2f})"


def gpu_time(fn, repeats=50):  # pragma: no cover - GPU only
    from cupyx.profiler import benchmark
    r = benchmark(fn, n_repeat=repeats, n_warmup=5)
    return float(np.median(r.gpu_times[0]))


def copy_step(nbytes=256 * 2 ** 20, threads=1):
    """(step, bytes): a call of ``step`` copies ``nbytes`` with np.copyto on ``threads``
    threads (each its own slice: np.copyto releases the GIL) and moves ``bytes`` (read +
    written). 256 MiB is far beyond the caches: this is the memory's bandwidth."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    if threads == 1:
        return (lambda: np.copyto(dst, src)), 2 * nbytes
    from concurrent.futures import ThreadPoolExecutor
    bounds = np.linspace(0, src.size, threads + 1).astype(int)
    pairs = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="minibn-bench-copy")
    return (lambda: list(pool.map(lambda p: np.copyto(*p), pairs))), 2 * nbytes


def copy_bandwidth_cpu(nbytes=256 * 2 ** 20, threads=1):
    """Bytes read + written per second by np.copyto of ``nbytes``, on ``threads`` threads."""
    step, moved = copy_step(nbytes, threads)
    return moved / median_time(step, repeats=10)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}
    try:
        import numba
        info["numba"] = f"{numba.__version__} ({numba.get_num_threads()} threads)"
    except ImportError:
        info["numba"] = "not installed (the fused BN path is off)"
    try:
        import torch
        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = "not installed (no PyTorch column)"
    if backend.cupy is not None:  # pragma: no cover - GPU only
        import cupy
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["cupy"] = cupy.__version__
    return info


# -- BN and friends -----------------------------------------------------------------------------

def _minibn_layer_step(layer, x, dy, mode):
    if mode == "forward":
        return lambda: layer(x)
    if mode == "backward":
        layer(x)
        return lambda: layer.backward(dy)
    def both():
        layer(x)
        layer.backward(dy)
    return both


def _torch_layer_step(torch, layer, x, dy, mode, device="cpu"):
    xt = torch.tensor(x, device=device, requires_grad=True)
    dyt = torch.tensor(dy, device=device)
    layer = layer.to(device)
    if mode == "forward":
        def fwd():
            with torch.no_grad():
                layer(xt)
        return fwd
    if mode == "backward":
        y = layer(xt)
        return lambda: y.backward(dyt, retain_graph=True)
    def both():
        layer(xt).backward(dyt)
    return both


def _bytes(x, mode):
    return {"forward": 2, "backward": 3, "both": 5}[mode] * x.nbytes


COPY = "copy"  # the key of the copy reference timed beside a row's implementations
TARGET_BN_SHAPES = ((4096, 1024), (64, 64, 32, 32))
TARGET_ROUNDS = 9  # rounds for the BN rows of the targets (3 for the others): about 6 s each


def _is_target_bn(row):
    return row["layer"] == "BatchNorm" and row["mode"] == "both" and tuple(row["shape"]) in TARGET_BN_SHAPES


def _with_copy_reference(fns, row, copy, rounds=3):
    """Time ``fns`` and the copy reference ``copy = (step, bytes)`` in the same interleaved
    rounds; set row["t"], row["bw"], the copy bandwidth of those rounds, and row["bw_rounds"],
    each round's (a slow spell of the machine then lowers the reference too, not only the
    row: :func:`fraction` pairs them round by round)."""
    step, moved = copy
    _time_row(row, {**fns, COPY: step}, rounds=rounds)
    row["bw"] = moved / row["t"].pop(COPY)
    row["bw_rounds"] = [moved / t for t in row["rounds"].pop(COPY)]
    return row


def fraction(row, name, bw=None):
    """The fraction of the copy bandwidth that ``name`` reaches in a row with a byte count:
    (value, low, high). With the copy timed in the row's own rounds (row["bw_rounds"]) the
    value is the median over the rounds of (bytes / t_name) / copy bandwidth within the
    round, low and high the 25th and 75th percentiles, as in :func:`speed`; otherwise
    bytes / median time / (row["bw"], else ``bw``), low = high = None."""
    if "bw_rounds" in row and name in row.get("rounds", {}):
        return _middle_half(row["bytes"] / np.array(row["rounds"][name]) / np.array(row["bw_rounds"]))
    return row["bytes"] / row["t"][name] / row.get("bw", bw), None, None


def bn_rows(torch, shapes, modes=("forward", "backward", "both"), cuda=False, copy=None):
    """BatchNorm rows: every implementation at each shape and mode. ``copy``: a
    :func:`copy_step` timed in the same rounds (its bandwidth in row["bw"])."""
    rows = []
    for shape in shapes:
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        C = shape[1]
        cls = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        for mode in modes:
            fns = {"minibn": _minibn_layer_step(cls(C), x, dy, mode),
                   "minibn fast (NumPy)": _minibn_layer_step(cls(C, impl="fast"), x, dy, mode),
                   "minibn reference": _minibn_layer_step(cls(C, impl="reference"), x, dy, mode)}
            if torch is not None:
                tl = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(C)
                fns["PyTorch CPU"] = _torch_layer_step(torch, tl, x, dy, mode)
            row = {"layer": "BatchNorm", "shape": shape, "mode": mode, "bytes": _bytes(x, mode)}
            if copy is None:
                _time_row(row, fns, rounds=3)
            else:  # the targets' rows get more rounds: the spread of their fraction is quoted
                _with_copy_reference(fns, row, copy, rounds=TARGET_ROUNDS if _is_target_bn(row) else 3)
            if cuda:  # pragma: no cover - GPU only
                _gpu_bn(row, torch, cls, C, x, dy, mode)
            rows.append(row)
    return rows


def _gpu_bn(row, torch, cls, C, x, dy, mode):  # pragma: no cover - GPU only
    prev = backend.active()
    backend.use("cupy")
    try:
        layer = cls(C).to("gpu")
        xg, dyg = backend.to_device(x, "gpu"), backend.to_device(dy, "gpu")
        row["t"]["minibn CuPy"] = gpu_time(_minibn_layer_step(layer, xg, dyg, mode))
    finally:
        backend.use(prev)
    if torch is not None and torch.cuda.is_available():
        tl = (torch.nn.BatchNorm1d if x.ndim == 2 else torch.nn.BatchNorm2d)(C)
        step = _torch_layer_step(torch, tl, x, dy, mode, "cuda")
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(5):
            step()
        ts = []
        for _ in range(50):
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(end) / 1e3)
        row["t"]["PyTorch CUDA"] = float(np.median(ts))


def other_norm_rows(torch, copy=None):
    """LayerNorm, GroupNorm, BatchRenorm and MBN, forward+backward at one large shape: the
    default implementation (fused with numba) and the reference. ``copy`` as in :func:`bn_rows`."""
    rows = []
    rng = np.random.default_rng(0)
    def brn(**kw):
        return lambda: nn.BatchRenorm1d(1024, r_max=3.0, d_max=5.0, **kw)

    def mbn(**kw):
        return lambda: nn.MemorizedBatchNorm1d(1024, lam=0.5, **kw)

    def ln(**kw):
        return lambda: nn.LayerNorm(1024, **kw)

    def gn(**kw):
        return lambda: nn.GroupNorm(32, 64, **kw)

    cases = [("LayerNorm", (4096, 1024), {"minibn": ln(), "minibn reference": ln(impl="reference")},
              lambda: torch.nn.LayerNorm(1024)),
             ("GroupNorm (32 groups)", (64, 64, 32, 32), {"minibn": gn(), "minibn reference": gn(impl="reference")},
              lambda: torch.nn.GroupNorm(32, 64)),
             ("BatchRenorm", (4096, 1024), {"minibn": brn(), "minibn reference": brn(impl="reference")}, None),
             ("MemorizedBN", (4096, 1024), {"minibn": mbn(), "minibn reference": mbn(impl="reference")}, None)]
    for name, shape, makes, make_torch in cases:
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        fns = {impl: _minibn_layer_step(make(), x, dy, "both") for impl, make in makes.items()}
        if torch is not None and make_torch is not None:
            fns["PyTorch CPU"] = _torch_layer_step(torch, make_torch(), x, dy, "both")
        row = {"layer": name, "shape": shape, "mode": "both", "bytes": _bytes(x, "both")}
        if copy is None:
            _time_row(row, fns)
        else:
            _with_copy_reference(fns, row, copy)
        rows.append(row)
    return rows


# -- training steps -----------------------------------------------------------------------------

def _minibn_train_step(model, x, y, lr=0.1):
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=lr)

    def step():
        loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
    return step


def _torch_train_step(torch, model, x, y, lr=0.1):
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def step_rows(torch, batches=(60, 1024)):
    from .experiments.drift import build_net
    rows = []
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.random((batch, 784), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        model, _ = build_net(True)
        fns = {"minibn": _minibn_train_step(model, x, y)}
        if torch is not None:
            layers, width = [], 784
            for _ in range(3):
                layers += [torch.nn.Linear(width, 100, bias=False), torch.nn.BatchNorm1d(100), torch.nn.Sigmoid()]
                width = 100
            layers.append(torch.nn.Linear(100, 10))
            fns["PyTorch CPU"] = _torch_train_step(torch, torch.nn.Sequential(*layers), x, y)
        # batch 60 carries a target: 20 rounds for a tighter median ratio (about 9 s)
        rounds, block, limit = (20, 20, 15.0) if batch < 100 else (5, 5, 8.0)
        rows.append(_time_row({"layer": "Fig. 1 MLP step (BN)", "shape": (batch, 784), "mode": "train step",
                               "bytes": 0}, fns, rounds=rounds, block=block, max_seconds=limit))
    # a small conv net on MNIST-sized images
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    ours = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    fns = {"minibn": _minibn_train_step(ours, x, y)}
    if torch is not None:
        T = torch.nn
        theirs = T.Sequential(T.Conv2d(1, 8, 3, padding=1, bias=False), T.BatchNorm2d(8), T.ReLU(), T.MaxPool2d(2),
                              T.Conv2d(8, 16, 3, padding=1, bias=False), T.BatchNorm2d(16), T.ReLU(), T.MaxPool2d(2),
                              T.Flatten(), T.Linear(16 * 7 * 7, 10))
        fns["PyTorch CPU"] = _torch_train_step(torch, theirs, x, y)
    rows.append(_time_row({"layer": "small conv net step", "shape": (64, 1, 28, 28), "mode": "train step",
                           "bytes": 0}, fns, rounds=10, max_seconds=12.0))
    return rows


# -- report -------------------------------------------------------------------------------------

def _fmt_t(t):
    return f"{t * 1e3:.3f} ms" if t < 1 else f"{t:.2f} s"


def report(rows, bw, info, device="cpu", bw_one=None):
    """The table. ``bw``: the copy bandwidth of all cores, measured on its own (the fractions
    are of it, except in rows that carry their own, row["bw"], timed in the same rounds);
    ``bw_one``: one thread's."""
    ref = "PyTorch CPU" if device == "cpu" else "PyTorch CUDA"
    one = f"; one thread: {bw_one / 1e9:.1f} GB/s" if bw_one else ""
    own = [r["bw"] for r in rows if "bw" in r]
    if own:
        own_text = (f" Rows with a byte count carry their own: the same copy timed in the rounds that time "
                    f"the row ({min(own) / 1e9:.1f}-{max(own) / 1e9:.1f} GB/s, median "
                    f"{float(np.median(own)) / 1e9:.1f}), and their fraction is of that: the median over the "
                    f"rounds of the fraction within a round, and in brackets the middle half of the rounds'.")
    else:
        own_text = " The fractions below are of it."
    when = f"Run on {info['date']}. " if "date" in info else ""
    lines = [when + "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "date") + ".",
             f"Copy bandwidth (bytes read + written, np.copyto of 256 MiB on {os.cpu_count()} threads): "
             f"{bw / 1e9:.1f} GB/s measured at the start of the run{one}." + own_text,
             "Times are medians; GB/s counts x and y (forward), x, dy and dx (backward); the last column is "
             f"minibn's speed relative to {ref} (> 1: minibn faster; '-': {ref} has no such layer, "
             "or is not installed): the median over the timing rounds of the ratio within a round, and in "
             "brackets the middle half of the rounds' ratios (25th-75th percentile).", "",
             "| layer | shape | mode | implementation | median time | GB/s | fraction of copy bandwidth | "
             f"speed vs {ref} |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for name, t in r["t"].items():
            gbs = r["bytes"] / t / 1e9 if r["bytes"] else float("nan")
            ratio = _fmt(*speed(r, name, ref), unit="x") if ref in r["t"] else "-"
            g = f"{gbs:.1f}" if r["bytes"] else "-"
            fr = _fmt(*fraction(r, name, bw)) if r["bytes"] else "-"
            lines.append(f"| {r['layer']} | {r['shape']} | {r['mode']} | {name} | {_fmt_t(t)} | {g} | {fr} | "
                         f"{ratio} |")
    return "\n".join(lines)


def targets(rows, bw=None):
    """The CPU targets, measured: (description, value, goal, met, spread). ``bw``: the all-core
    copy bandwidth, for the BN rows' fraction of it (a row's own row["bw"] first, when it has
    one). Values and spreads are :func:`speed`'s and :func:`fraction`'s (the median round's;
    the 25th and 75th percentiles of the rounds'; no spread without per-round times)."""
    out = []
    for r in rows:
        if "minibn" not in r["t"]:
            continue
        big_bn = _is_target_bn(r)
        if big_bn and r.get("bw", bw):
            v, lo, hi = fraction(r, "minibn", bw)
            out.append((f"BN forward+backward {r['shape']}, fraction of the copy bandwidth of all cores",
                        v, 0.6, None if lo is None else (lo, hi)))
        if "PyTorch CPU" not in r["t"]:
            continue
        ratio, lo, hi = speed(r, "minibn", "PyTorch CPU")
        spread = None if lo is None else (lo, hi)
        if big_bn:
            out.append((f"BN forward+backward {r['shape']}, speed vs PyTorch CPU", ratio, 0.8, spread))
        if r["layer"].startswith("Fig. 1") and r["shape"][0] == 60:
            out.append(("Fig. 1 MLP step, batch 60, speed vs PyTorch CPU", ratio, 1.5, spread))
        if r["layer"] == "small conv net step":
            out.append(("small conv net step, speed vs PyTorch CPU", ratio, 0.8, spread))
    return [(d, v, goal, v >= goal, spread) for d, v, goal, spread in out]


def plot(rows, device="cpu"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    ref = "PyTorch CPU" if device == "cpu" else "PyTorch CUDA"
    sel = [r for r in rows if ref in r["t"] and "minibn" in r["t"] and r["mode"] in ("both", "train step")]
    labels = [f"{r['layer']}\n{r['shape']}" for r in sel]
    speeds = [speed(r, "minibn", ref) for r in sel]
    ratios = [v for v, _, _ in speeds]
    err = [[v - (v if lo is None else lo) for v, lo, _ in speeds],
           [(v if hi is None else hi) - v for v, _, hi in speeds]]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sel)), 4.2))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in ratios]
    ax.bar(range(len(sel)), ratios, color=colors, yerr=err, capsize=3, ecolor="0.3")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(sel)), labels, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel=f"speed relative to {ref} (> 1: minibn faster)", yscale="log",
           title=f"minibn vs {ref}: forward+backward and training steps\n"
                 "(median round's ratio; whiskers: the middle half of the rounds)")
    lows = [v - e for v, e in zip(ratios, err[0])]
    highs = [v + e for v, e in zip(ratios, err[1])]
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8) if min(lows) / 2 <= t <= max(highs) * 2]
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])  # 0.5x, 1x, 2x rather than 5 x 10^-1
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def run(out="results/bench", fast=False, progress=True):
    """Run the suite on the CPU (and the GPU rows where CuPy and a device are present); write
    ``cpu.md`` and ``cpu.png`` to ``out`` and return the report's text."""
    from tqdm.auto import tqdm

    from .experiments import _io
    try:
        import torch
    except ImportError:
        torch = None
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **machine()}
    shapes = FAST_BN_SHAPES if fast else BN_SHAPES
    cuda = backend.cupy is not None
    batches = (60,) if fast else (60, 1024)
    # the copy reference timed beside each row costs a 256 MiB copy per call: only in the full run
    copy = None if fast else copy_step(threads=os.cpu_count() or 1)
    parts = [lambda s=s: bn_rows(torch, [s], cuda=cuda, copy=copy) for s in shapes]
    if not fast:
        parts.append(lambda: other_norm_rows(torch, copy=copy))
    parts.append(lambda: step_rows(torch, batches=batches))
    rows = []
    with tqdm(total=len(parts) + 1, desc="minibn bench", disable=not progress, leave=False) as bar:
        bw_one = copy_bandwidth_cpu()
        bw = copy_bandwidth_cpu(threads=os.cpu_count() or 1)
        bar.update(1)
        for part in parts:
            rows += part()
            bar.update(1)
    text = report(rows, bw, info, bw_one=bw_one)
    tg = targets(rows, bw)
    if tg:
        text += "\n\nTargets (measured in this run):\n\n"
        for d, v, goal, met, sp in tg:
            spread = "" if sp is None else f" (middle half of the rounds: {sp[0]:.2f}-{sp[1]:.2f})"
            text += f"- {d}: {v:.2f}{spread} (goal >= {goal}): {'met' if met else 'NOT met'}\n"
        text = text.rstrip("\n")
    if not cuda:
        text += ("\n\nNo CUDA device was present: the minibn CuPy and PyTorch CUDA columns, and the GPU targets "
                 "(>= 70% of copy bandwidth, at least as fast as PyTorch CUDA), were not measured.")
    out = Path(out)
    _io._atomic(out / "cpu.md", lambda f: f.write((text + "\n").encode()))
    _io.save_figure(plot(rows), out / "cpu.png")
    return text
