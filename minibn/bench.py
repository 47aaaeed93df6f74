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
    files = {"cpu.md": None}
    if torch is None:
        # the figure is the speed relative to PyTorch: without it there is nothing to draw
        text += ("\n\nPyTorch is not installed: no speed ratios and no cpu.png, only the times and the "
                 "fractions of the copy bandwidth (pip install torch for the comparison).")
    else:
        files["cpu.png"] = _io.figure_bytes(plot(rows))
    files["cpu.md"] = (text + "\n").encode()
    # both files replace the previous run's together (a folder such as docs/benchmarks keeps
    # its other notes: only these two are bench's)
    _io.write_all(out, files, ("cpu.md", "cpu.png"))
    return text


# -- the GPU rows: minibn on CuPy against PyTorch CUDA and the device's copy bandwidth ----------
#
# Run by `benchmarks/gpu_checks.py bench` (in `benchmarks/gpu_run.sh`, the GPU machine's one
# prepared call). Each call of an implementation is timed by CUDA events recorded before and
# after it, the host waiting for the second (cupyx.profiler.benchmark for minibn and the copy,
# torch.cuda.Event for PyTorch: the same method): a call's time runs from its first kernel to
# its last, with any wait of the device for the host's launches in between. The implementations
# of a row and the copy reference are timed in alternating blocks, round by round, so that
# speed() and fraction() pair them as they do on the CPU. Without CuPy the same code runs on a
# stand-in (NumPy arrays, wall-clock times, PyTorch CPU in the PyTorch CUDA column), so that the
# rows, the report and the targets can be tested on any machine; its report says that its
# numbers are not GPU numbers.

GPU = "minibn CuPy"  # impl="auto": the numba-cuda kernels where numba-cuda is installed
GPU_FAST = "minibn CuPy fast"
GPU_REFERENCE = "minibn CuPy reference"
TORCH_CUDA = "PyTorch CUDA"
GPU_BN_SHAPES = [(4096, 1024), (65536, 1024), (64, 64, 32, 32), (256, 64, 56, 56)]
GPU_TARGET_BN_SHAPES = ((65536, 1024), (256, 64, 56, 56))  # the "two large shapes" of the bandwidth target
GPU_TARGET_FRACTION = 0.7
GPU_COPY_BYTES = 2 ** 30  # 1 GiB: far beyond the H200's 60 MB of L2
GPU_BATCHES = (60, 1024)
#: the stand-in's sizes (and a quick check on a GPU): the same rows, small
GPU_TINY = {"bn_shapes": [(64, 32), (256, 32), (8, 4, 6, 6), (16, 4, 6, 6)],
            "large": ((256, 32), (16, 4, 6, 6)), "rows_2d": (256, 32), "rows_4d": (16, 8, 6, 6),
            "batches": (8, 32), "copy_bytes": 2 ** 22, "rounds": 2, "block": 2}
GPU_FULL = {"bn_shapes": GPU_BN_SHAPES, "large": GPU_TARGET_BN_SHAPES, "rows_2d": (65536, 1024),
            "rows_4d": (256, 64, 56, 56), "batches": GPU_BATCHES, "copy_bytes": GPU_COPY_BYTES, "rounds": 5,
            "block": 10}
GPU_TARGET_ROUNDS = 9  # the BN rows of the targets, as on the CPU


def _host_call_times(fn, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


class GpuDevice:
    """Where the GPU rows run: CuPy and PyTorch CUDA, or (``stand_in=True``, or no CuPy with
    a device and ``allow_stand_in``) NumPy and PyTorch CPU with wall-clock times."""

    def __init__(self, torch=None, stand_in=False, allow_stand_in=False):
        if not stand_in and backend.cupy is None:
            if not allow_stand_in:
                raise RuntimeError(f"the GPU rows need CuPy with a CUDA device ({backend._CUPY_ERROR})")
            stand_in = True
        self.stand_in, self.torch = stand_in, torch
        self.xp = np if stand_in else backend.cupy
        if torch is None:
            self.torch_device = None
        elif stand_in:
            self.torch_device = "cpu"
        else:
            self.torch_device = "cuda" if torch.cuda.is_available() else None

    @property
    def name(self):
        return "cpu" if self.stand_in else "gpu"

    def to(self, a):
        return backend.to_device(a, self.name)

    def synchronize(self):
        if not self.stand_in:  # pragma: no cover - GPU only
            self.xp.cuda.Device().synchronize()
            if self.torch_device == "cuda":
                self.torch.cuda.synchronize()

    def call_times(self, fn, n):
        """[seconds of each of n calls] of a CuPy (minibn) function."""
        if self.stand_in:
            return _host_call_times(fn, n)
        from cupyx.profiler import benchmark  # pragma: no cover - GPU only
        return [float(t) for t in benchmark(fn, n_repeat=n, n_warmup=0).gpu_times[0]]  # pragma: no cover

    def torch_call_times(self, fn, n):
        """[seconds of each of n calls] of a PyTorch function (CUDA events on the GPU)."""
        if self.torch_device != "cuda":
            return _host_call_times(fn, n)
        torch, times = self.torch, []  # pragma: no cover - GPU only
        for _ in range(n):  # pragma: no cover - GPU only
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return times  # pragma: no cover - GPU only

    def active(self):
        """A context in which minibn creates its arrays on this device (backend.use)."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            previous = backend._active
            backend.use("numpy" if self.stand_in else "cupy")
            try:
                yield self
            finally:
                backend.use(previous)
        return ctx()


def gpu_copy_step(dev, nbytes=GPU_COPY_BYTES):
    """(step, bytes): a copy of ``nbytes`` on the device (cupy.copyto), and the bytes it moves
    (read + written)."""
    src = dev.xp.ones(nbytes // 4, dev.xp.float32)
    dst = dev.xp.empty_like(src)
    return (lambda: dev.xp.copyto(dst, src)), 2 * src.nbytes


def gpu_copy_bandwidth(dev, nbytes=GPU_COPY_BYTES, repeats=20):
    """Bytes read + written per second by a copy of ``nbytes`` on the device (median call)."""
    step, moved = gpu_copy_step(dev, nbytes)
    for _ in range(3):
        step()
    dev.synchronize()
    return moved / float(np.median(dev.call_times(step, repeats)))


def _gpu_time_row(dev, row, fns, torch_names=(), copy=None, rounds=5, block=10, warmup=3):
    """Time ``fns`` {name: call} on ``dev`` in alternating blocks of ``block`` calls, ``rounds``
    rounds, with the copy reference ``copy`` = (step, bytes) in the same rounds: row["t"] (median
    of all calls), row["rounds"] (each round's median), row["bw"] and row["bw_rounds"] (the copy's),
    as :func:`_time_row` and :func:`_with_copy_reference` give on the CPU. An implementation that
    raises is left out of the row, its error in row["errors"]."""
    calls = dict(fns)
    if copy is not None:
        calls[COPY] = copy[0]
    errors = row.setdefault("errors", {})
    for name in list(calls):
        try:
            for _ in range(warmup):
                calls[name]()
            dev.synchronize()
        except Exception as e:  # one implementation failing must not lose the others
            errors[name] = f"{type(e).__name__}: {e}"
            del calls[name]
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in list(calls.items()):
            if name not in times:
                continue
            try:
                timer = dev.torch_call_times if name in torch_names else dev.call_times
                times[name].append(timer(fn, block))
            except Exception as e:
                errors[name] = f"{type(e).__name__}: {e}"
                del times[name]
    times = {name: t for name, t in times.items() if t}
    row["t"] = _medians(times)
    row["rounds"] = {name: [float(np.median(b)) for b in t] for name, t in times.items()}
    if COPY in row["t"]:
        moved = copy[1]
        row["bw"] = moved / row["t"].pop(COPY)
        row["bw_rounds"] = [moved / t for t in row["rounds"].pop(COPY)]
    if not errors:
        del row["errors"]
    return row


def _torch_device_layer_step(torch, layer, x, dy, device):
    """PyTorch forward+backward on ``device``; x.grad is dropped before each call, so that the
    call does not also add the new gradient to the last one (a pass more than minibn's)."""
    xt = torch.tensor(x, device=device, requires_grad=True)
    dyt = torch.tensor(dy, device=device)
    layer = layer.to(device)

    def both():
        xt.grad = None
        layer(xt).backward(dyt)
    return both


def _implementation(layer):
    impl = getattr(layer, "last_implementation", None)
    return None if impl is None else f"{impl.name} ({impl.forward_path})"


def _gpu_norm_row(dev, name, shape, makes, make_torch, data, copy, rounds, block, target=False):
    """A forward+backward row: minibn's layers ``makes`` {column: make()} and PyTorch's
    ``make_torch()`` (or None) at ``shape``, float32, with the copy reference."""
    x, dy = data(shape)
    xd, dyd = dev.to(x), dev.to(dy)
    row = {"layer": name, "shape": tuple(shape), "mode": "both", "bytes": _bytes(x, "both"), "target": target}
    fns, layers, errors = {}, {}, {}
    for column, make in makes.items():
        try:
            layers[column] = make().to(dev.name)
            fns[column] = _minibn_layer_step(layers[column], xd, dyd, "both")
        except Exception as e:
            errors[column] = f"{type(e).__name__}: {e}"
    if make_torch is not None and dev.torch_device is not None:
        try:
            fns[TORCH_CUDA] = _torch_device_layer_step(dev.torch, make_torch(), x, dy, dev.torch_device)
        except Exception as e:
            errors[TORCH_CUDA] = f"{type(e).__name__}: {e}"
    row["errors"] = errors
    _gpu_time_row(dev, row, fns, torch_names=(TORCH_CUDA,), copy=copy, rounds=rounds, block=block)
    if GPU in layers:
        row["implementation"] = _implementation(layers[GPU])
    return row


def _host_data():
    """data(shape) -> (x, dy), float32 host arrays, made once per shape."""
    cache = {}

    def data(shape):
        shape = tuple(shape)
        if shape not in cache:
            rng = np.random.default_rng(0)
            x = rng.standard_normal(shape, dtype=np.float32)
            x *= 3
            x += 1
            cache.clear()  # one shape at a time: the large ones are 256 MiB each
            cache[shape] = x, rng.standard_normal(shape, dtype=np.float32)
        return cache[shape]
    return data


def gpu_bn_rows(dev, shapes=GPU_BN_SHAPES, large=GPU_TARGET_BN_SHAPES, copy=None, rounds=5, block=10, data=None):
    """BatchNorm forward+backward on the device at each shape: minibn (auto, fast, reference)
    and PyTorch CUDA, with the copy reference; the ``large`` shapes (the bandwidth target's)
    get :data:`GPU_TARGET_ROUNDS` rounds (at least ``rounds``)."""
    data = data or _host_data()
    rows = []
    for shape in shapes:
        C = shape[1]
        cls = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        T = dev.torch
        tcls = None if T is None else (T.nn.BatchNorm1d if len(shape) == 2 else T.nn.BatchNorm2d)
        target = tuple(shape) in {tuple(s) for s in large}
        makes = {GPU: lambda: cls(C), GPU_FAST: lambda: cls(C, impl="fast"),
                 GPU_REFERENCE: lambda: cls(C, impl="reference")}
        rows.append(_gpu_norm_row(dev, "BatchNorm", shape, makes, None if tcls is None else (lambda: tcls(C)), data,
                                  copy, max(rounds, GPU_TARGET_ROUNDS) if target else rounds, block, target))
    return rows


def gpu_other_norm_rows(dev, rows_2d=(65536, 1024), rows_4d=(256, 64, 56, 56), copy=None, rounds=5, block=10,
                        data=None):
    """LayerNorm, GroupNorm (32 groups), BatchRenorm and Memorized BN forward+backward on the
    device at the large shapes: minibn (auto and reference) and PyTorch CUDA where it has the layer."""
    data = data or _host_data()
    T = dev.torch
    L, C = rows_2d[1], rows_4d[1]
    from math import gcd
    groups = gcd(32, C)  # 32 groups at the benchmark's 64 channels

    def pair(make):
        return {GPU: lambda: make(), GPU_REFERENCE: lambda: make(impl="reference")}
    cases = [("LayerNorm", rows_2d, pair(lambda **kw: nn.LayerNorm(L, **kw)),
              None if T is None else (lambda: T.nn.LayerNorm(L))),
             (f"GroupNorm ({groups} groups)", rows_4d, pair(lambda **kw: nn.GroupNorm(groups, C, **kw)),
              None if T is None else (lambda: T.nn.GroupNorm(groups, C))),
             ("BatchRenorm", rows_2d, pair(lambda **kw: nn.BatchRenorm1d(L, r_max=3.0, d_max=5.0, **kw)), None),
             ("MemorizedBN", rows_2d, pair(lambda **kw: nn.MemorizedBatchNorm1d(L, lam=0.5, **kw)), None)]
    return [_gpu_norm_row(dev, name, shape, makes, make_torch, data, copy, rounds, block)
            for name, shape, makes, make_torch in cases]


def _torch_fig1_mlp(torch):
    layers, width = [], 784
    for _ in range(3):
        layers += [torch.nn.Linear(width, 100, bias=False), torch.nn.BatchNorm1d(100), torch.nn.Sigmoid()]
        width = 100
    layers.append(torch.nn.Linear(100, 10))
    return torch.nn.Sequential(*layers)


def _torch_device_train_step(torch, model, x, y, device, lr=0.1):
    xt, yt = torch.tensor(x, device=device), torch.tensor(y, device=device)
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def gpu_step_rows(dev, batches=GPU_BATCHES, rounds=5, block=10):
    """The Fig. 1 MLP's training step (forward, backward, SGD) on the device at each batch size."""
    from .experiments.drift import build_net
    rows = []
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.random((batch, 784), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        row = {"layer": "Fig. 1 MLP step (BN)", "shape": (batch, 784), "mode": "train step", "bytes": 0}
        fns, errors = {}, {}
        try:
            model, _ = build_net(True)
            model.to(dev.name)
            fns[GPU] = _minibn_train_step(model, dev.to(x), dev.to(y))
        except Exception as e:
            errors[GPU] = f"{type(e).__name__}: {e}"
        if dev.torch_device is not None:
            try:
                model_t = _torch_fig1_mlp(dev.torch)
                fns[TORCH_CUDA] = _torch_device_train_step(dev.torch, model_t, x, y, dev.torch_device)
            except Exception as e:
                errors[TORCH_CUDA] = f"{type(e).__name__}: {e}"
        row["errors"] = errors
        rows.append(_gpu_time_row(dev, row, fns, torch_names=(TORCH_CUDA,), rounds=rounds, block=block))
    return rows


def gpu_targets(rows):
    """The GPU targets, measured: [{"target", "value", "goal", "met", "spread"}]: BN
    forward+backward at >= 0.7 of the device's copy bandwidth at the large shapes (rows with
    row["target"]) and at least as fast as PyTorch CUDA at every BN shape. A target whose
    column is missing (an error, no PyTorch) has value None and met None."""
    out = []

    def add(text, measured, goal):
        value, lo, hi = measured if measured is not None else (None, None, None)
        out.append({"target": text, "value": value, "goal": goal, "met": None if value is None else value >= goal,
                    "spread": None if lo is None else [lo, hi]})
    for r in rows:
        if r["layer"] != "BatchNorm" or r["mode"] != "both":
            continue
        has = GPU in r["t"]
        if r.get("target"):
            add(f"BN forward+backward {tuple(r['shape'])}, fraction of the device's copy bandwidth",
                fraction(r, GPU) if has and "bw" in r else None, GPU_TARGET_FRACTION)
        add(f"BN forward+backward {tuple(r['shape'])}, speed vs PyTorch CUDA",
            speed(r, GPU, TORCH_CUDA) if has and TORCH_CUDA in r["t"] else None, 1.0)
    return out


def gpu_machine(dev):
    """The device and the versions that its numbers depend on."""
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if dev.stand_in:
        info["device"] = "CPU stand-in (no CuPy with a CUDA device): NumPy, wall-clock times, PyTorch CPU"
    else:  # pragma: no cover - GPU only
        cupy = dev.xp
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["device"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        info["cupy"] = cupy.__version__
        info["cuda runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda driver"] = cupy.cuda.runtime.driverGetVersion()
    info["numpy"] = np.__version__
    for mod in ("numba", "numba_cuda"):
        try:
            info[mod.replace("_", "-")] = __import__(mod).__version__
        except Exception:
            info[mod.replace("_", "-")] = "not importable"
    if dev.torch is not None:
        info["torch"] = dev.torch.__version__ + ("" if dev.torch_device != "cuda" else
                                                  f" (CUDA {dev.torch.version.cuda})")
    else:
        info["torch"] = "not installed (no PyTorch column)"
    return info


def gpu_bench(torch=None, stand_in=False, tiny=False, progress=None):
    """Every GPU row, each part on its own (an error is recorded and the next part runs):
    {"info", "stand_in", "copy_bandwidth", "rows", "targets", "errors"}. ``tiny``: the small
    sizes of :data:`GPU_TINY` (the stand-in's; a quick check on a GPU); ``progress(text)`` is
    called before each part."""
    import traceback

    sizes = GPU_TINY if tiny else GPU_FULL
    dev = GpuDevice(torch, stand_in=stand_in, allow_stand_in=stand_in)
    result = {"info": gpu_machine(dev), "stand_in": dev.stand_in, "tiny": tiny, "copy_bandwidth": None, "rows": [],
              "targets": [], "errors": []}
    say = progress or (lambda text: None)
    rounds, block = sizes["rounds"], sizes["block"]
    data = _host_data()
    with dev.active():
        copy = None
        try:
            say("copy bandwidth")
            copy = gpu_copy_step(dev, sizes["copy_bytes"])
            result["copy_bandwidth"] = gpu_copy_bandwidth(dev, sizes["copy_bytes"])
        except Exception:
            result["errors"].append(("copy bandwidth", traceback.format_exc()))
        parts = [(f"BatchNorm {s}", lambda s=s: gpu_bn_rows(dev, [s], sizes["large"], copy, rounds, block, data))
                 for s in sizes["bn_shapes"]]
        parts.append(("LayerNorm, GroupNorm, BatchRenorm, Memorized BN",
                      lambda: gpu_other_norm_rows(dev, sizes["rows_2d"], sizes["rows_4d"], copy, rounds, block, data)))
        parts.append(("Fig. 1 MLP steps", lambda: gpu_step_rows(dev, sizes["batches"], rounds, block)))
        for name, part in parts:
            say(name)
            try:
                result["rows"] += part()
            except Exception:
                result["errors"].append((name, traceback.format_exc()))
    result["targets"] = gpu_targets(result["rows"])
    return result


def _spread_ms(row, name):
    rounds = row.get("rounds", {}).get(name)
    if not rounds or len(rounds) < 2:
        return ""
    lo, hi = np.percentile(rounds, 25) * 1e3, np.percentile(rounds, 75) * 1e3
    return f" ({lo:.3f}-{hi:.3f})"


def gpu_report(result):
    """The markdown of :func:`gpu_bench`'s result: the device, the copy bandwidth, one line per
    implementation of each row, the targets and any errors."""
    info, rows = result["info"], result["rows"]
    lines = []
    if result.get("stand_in"):
        lines += ["**CPU stand-in: no CuPy with a CUDA device here. These are NOT GPU numbers** (NumPy arrays, "
                  "wall-clock times, PyTorch CPU in the PyTorch CUDA column, small sizes): this report only "
                  "shows that the GPU rows' code and report run.", ""]
    lines.append(f"Run on {info.get('date', '?')}. " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "date")
                 + ".")
    bw = result.get("copy_bandwidth")
    own = [r["bw"] for r in rows if "bw" in r]
    copy_text = ("not measured" if bw is None else f"{bw / 1e9:.0f} GB/s at the start of the run")
    if own:
        copy_text += (f"; the rows with a byte count carry their own, the copy timed in their rounds "
                      f"({min(own) / 1e9:.0f}-{max(own) / 1e9:.0f} GB/s), and their fraction is of that, paired "
                      f"round by round (median over the rounds; brackets: their middle half)")
    lines += [f"Copy bandwidth of the device (bytes read + written by a copy on the device): {copy_text}.",
              "Float32, forward+backward (training mode) or a whole training step (forward, backward, SGD). "
              "Each call timed by CUDA events (cupyx.profiler.benchmark for minibn and the copy, torch.cuda.Event "
              "for PyTorch), the host waiting for the device after each call; the implementations of a row in "
              "alternating blocks, round by round. Time: the median of all calls, and in brackets the middle half "
              "(25th-75th percentile) of the rounds' medians. GB/s counts x and y forward, x, dy and dx backward. "
              f"Speed: relative to {TORCH_CUDA} (> 1: minibn faster), the median over the rounds of the ratio "
              "within a round.", "",
              "| layer | shape | mode | implementation | median time, ms | GB/s | fraction of copy bandwidth | "
              f"speed vs {TORCH_CUDA} |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for name, t in r["t"].items():
            nbytes = r.get("bytes") or 0
            gbs = f"{nbytes / t / 1e9:.0f}" if nbytes else "-"
            fr = _fmt(*fraction(r, name, bw)) if nbytes and ("bw" in r or bw) else "-"
            ratio = _fmt(*speed(r, name, TORCH_CUDA), unit="x") if TORCH_CUDA in r["t"] else "-"
            label = name + (f" [{r['implementation']}]" if name == GPU and r.get("implementation") else "")
            lines.append(f"| {r['layer']} | {tuple(r['shape'])} | {r['mode']} | {label} | {t * 1e3:.3f}"
                         f"{_spread_ms(r, name)} | {gbs} | {fr} | {ratio} |")
        for name, err in r.get("errors", {}).items():
            lines.append(f"| {r['layer']} | {tuple(r['shape'])} | {r['mode']} | {name} | error: "
                         f"{err.splitlines()[0][:200] if err else ''} | | | |")
    lines += ["", "Targets (measured in this run):", ""]
    for t in result.get("targets", []):
        if t["value"] is None:
            lines.append(f"- {t['target']}: not measured (goal >= {t['goal']})")
            continue
        spread = "" if not t["spread"] else f" (middle half of the rounds: {t['spread'][0]:.2f}-{t['spread'][1]:.2f})"
        lines.append(f"- {t['target']}: {t['value']:.2f}{spread} (goal >= {t['goal']}): "
                     f"{'met' if t['met'] else 'NOT met'}")
    if not result.get("targets"):
        lines.append("- none measured")
    for part, tb in result.get("errors", []):
        lines += ["", f"Error in {part}:", "", "```", tb.rstrip(), "```"]
    return "\n".join(lines)


def gpu_json(result):
    """:func:`gpu_bench`'s result as JSON-ready data (shapes as lists; each row's fractions and
    speeds computed, as in the report)."""
    rows = []
    bw = result.get("copy_bandwidth")
    for r in result["rows"]:
        row = {k: v for k, v in r.items()}
        row["shape"] = list(r["shape"])
        derived = {}
        for name in r["t"]:
            d = {}
            if r.get("bytes"):
                d["gb_per_s"] = r["bytes"] / r["t"][name] / 1e9
                if "bw" in r or bw:
                    d["fraction"] = list(fraction(r, name, bw))
            if TORCH_CUDA in r["t"]:
                d["speed_vs_torch"] = list(speed(r, name, TORCH_CUDA))
            derived[name] = d
        row["derived"] = derived
        rows.append(row)
    return {**{k: v for k, v in result.items() if k != "rows"}, "rows": rows}
