"""Data-parallel training over MPI ranks: steps/s, bytes and collectives per step, time in collectives.

    python benchmarks/bench_distributed.py [--ranks 1 2 4] [--out docs/benchmarks/distributed.md]

The net is the Fig. 1 MLP (784-100-100-100-10, sigmoid, BN before each sigmoid), float32,
SGD, on random MNIST-shaped inputs (the data does not change the cost). For each number of
ranks k it launches ``mpiexec -n k`` on this file and times, on every rank, blocks of
training steps of three setups:

* ``SyncBN, batch 60``: the Fig. 1 job (global batch 60, 60 / k rows per rank: strong scaling);
* ``local BN, batch 60``: the same with each rank's own statistics (the cost of synchronizing
  is the difference);
* ``SyncBN, 60 per rank``: 60 rows per rank (weak scaling: the global batch grows with k).

The setups are timed in turn, block by block (a slow moment of the machine hits them all).

Reported per setup: the median over blocks of steps/s and rows/s (of rank 0), the bytes one
rank sends per step and in how many collectives (counted by the communicator), and the
share of the step spent inside collectives (waiting for the others included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SETUPS = [("SyncBN, batch 60", True, 60, False), ("local BN, batch 60", False, 60, False),
          ("SyncBN, 60 per rank", True, 60, True)]


def worker(steps, blocks):
    from minibn import distributed, nn, optim
    from minibn.experiments.fig1_net import build_net

    comm = distributed.world()
    distributed.share_cores(comm)
    r = np.random.default_rng(comm.rank)
    runs = []
    for name, sync, batch, per_rank in SETUPS:
        rows = batch if per_rank else len(np.array_split(np.arange(batch), comm.size)[comm.rank])
        model, _ = build_net(True, comm=comm if sync else None)
        model = distributed.DataParallel(model, comm)
        opt, loss = optim.SGD(model.parameters(), lr=0.1), nn.SoftmaxCrossEntropy()
        x, y = r.random((rows, 784), dtype=np.float32), r.integers(0, 10, rows)

        def step(model=model, opt=opt, loss=loss, x=x, y=y):
            loss(model(x), y)
            opt.zero_grad()
            model.backward(loss.backward(), need_dx=False)
            opt.step()

        for _ in range(20):  # warm-up: the compiled loops, the caches
            step()
        runs.append({"setup": name, "ranks": comm.size, "rows_per_rank": rows,
                     "global_batch": batch * (comm.size if per_rank else 1), "step": step, "rates": [],
                     "bytes": 0, "calls": 0, "seconds": 0.0, "wall": 0.0})
    for _ in range(blocks):  # the setups in turn, block by block: a slow moment hits them all
        for run in runs:
            comm.barrier()
            b0, c0, s0 = comm.bytes_sent, comm.calls, comm.seconds
            t0 = time.perf_counter()
            for _ in range(steps):
                run["step"]()
            dt = time.perf_counter() - t0
            run["rates"].append(steps / dt)
            run["wall"] += dt
            run["bytes"] += comm.bytes_sent - b0
            run["calls"] += comm.calls - c0
            run["seconds"] += comm.seconds - s0
    n = steps * blocks
    out = [{"setup": u["setup"], "ranks": u["ranks"], "rows_per_rank": u["rows_per_rank"],
            "global_batch": u["global_batch"], "steps_per_second": float(np.median(u["rates"])),
            "bytes_per_step": u["bytes"] / n, "collectives_per_step": u["calls"] / n,
            "collective_share": u["seconds"] / u["wall"]} for u in runs]
    if comm.rank == 0:
        print(json.dumps(out), flush=True)


def launch(ranks, steps, blocks):
    here = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(here) if here.exists() else "mpiexec"
    cmd = [mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", "--steps", str(steps),
           "--blocks", str(blocks)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(rows, info):
    lines = ["# Data-parallel training over MPI ranks", "",
             f"Machine: {info}. The Fig. 1 MLP (784-100-100-100-10, BN before each sigmoid), float32, SGD; medians "
             "over blocks of steps, rank 0's view. Bytes: what one rank sends per step (all collectives).", "",
             "| setup | ranks | rows per rank | steps/s | rows/s | KiB sent per step | collectives per step "
             "| time in collectives |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['setup']} | {r['ranks']} | {r['rows_per_rank']} | {r['steps_per_second']:.0f} | "
                     f"{r['steps_per_second'] * r['global_batch']:.0f} | {r['bytes_per_step'] / 1024:.1f} | "
                     f"{r['collectives_per_step']:.0f} | {100 * r['collective_share']:.0f}% |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=100, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=7, help="timed blocks (the median is reported)")
    p.add_argument("--out", default="docs/benchmarks/distributed.md")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.steps, a.blocks)
    import os
    import platform
    rows = []
    for k in a.ranks:
        rows += launch(k, a.steps, a.blocks)
    info = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = report(rows, info)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
