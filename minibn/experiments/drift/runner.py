"""Running both nets of `minibn drift`: one after the other, in worker processes (one per
net), or each data-parallel over the ranks of an MPI job (rank 0 writes the files)."""

from __future__ import annotations

import time
from dataclasses import asdict

from ... import __version__, backend, cli_args, distributed
from ...data import load_mnist
from ...data.mnist import ensure_files
from .. import _parallel
from .config import NETS, DriftConfig
from .files import write_outputs
from .training import train_net


def _worker(name, cfg, data_root, progress, position):
    """One net in a child process (spawned with single-threaded BLAS)."""
    data = load_mnist(root=data_root, progress=False)
    return train_net(name == "bn", cfg, data, progress, position)


def run(cfg: DriftConfig = None, out="results/drift", nets=NETS, data_root=None, progress=True, jobs=None,
        comm=None):
    """Train the nets, write the outputs, return the summary dict.

    ``jobs``: how many nets to train at once, in processes (default: 2 on the numpy
    backend with >= 2 cores, else 1; see :mod:`minibn.experiments._parallel`).
    ``comm``: train each net data-parallel over the communicator's ranks (run under
    mpiexec; see :func:`train_net`); rank 0 writes the outputs and returns the summary,
    the other ranks return None.
    On Ctrl-C the outputs are written for the steps done (the summary says
    ``"interrupted": true``) and KeyboardInterrupt is raised again.
    """
    cfg = cfg or DriftConfig()
    nets = tuple(nets)
    if comm is not None:
        return _run_distributed(cfg, out, nets, data_root, progress, comm)
    cfg.validate(nets)
    cli_args.check_out_dir(out)  # before training, not after
    jobs = _parallel.default_jobs(len(nets)) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1 and backend.active() != "numpy":
        raise ValueError("jobs > 1 trains in separate CPU processes: use it with the numpy backend")
    t0 = time.perf_counter()
    if jobs > 1:
        ensure_files(data_root, progress=progress)  # missing data: fail (or download) once, here, not in each worker
        out_list, interrupted = _parallel.run_tasks(
            _worker, [(name, cfg, data_root, progress, i) for i, name in enumerate(nets)], jobs)
    else:
        data = load_mnist(root=data_root, progress=progress)
        out_list, interrupted = [], False
        for name in nets:
            out_list.append(train_net(name == "bn", cfg, data, progress))
            if out_list[-1]["history"].interrupted:
                break
    results = {name: r for name, r in zip(nets, out_list) if r is not None}
    interrupted = interrupted or len(results) < len(nets) or any(r["history"].interrupted for r in results.values())
    summary = write_outputs(out, cfg, results, nets, time.perf_counter() - t0, interrupted, jobs)
    if interrupted:
        raise KeyboardInterrupt
    return summary


def run_config(cfg, nets):
    """What must be the same on every rank of a distributed run: the whole configuration,
    the nets, the backend and minibn's version (not --out or --data: only rank 0 writes, and
    each node may keep the data in its own place)."""
    return {"experiment": "drift", "nets": list(nets), **asdict(cfg), "backend": backend.active(),
            "minibn": __version__}


def _run_distributed(cfg, out, nets, data_root, progress, comm):
    # First, before anything a rank could do alone: the ranks agree on what they run. Then a
    # bad setting is the same error on every rank (one line, exit 2), not one rank leaving
    # while the others wait for it.
    distributed.check_same_config(comm, run_config(cfg, nets))
    cfg.validate(nets)
    if cfg.batch_size < comm.size:
        raise ValueError(f"--batch-size {cfg.batch_size} is smaller than the number of ranks ({comm.size}): "
                         f"every rank needs rows of each batch")
    cli_args.check_out_dir(out)
    distributed.share_cores(comm)
    lead = comm.rank == 0
    with distributed.abort_on_error(comm):  # from here an error on one rank ends the job
        t0 = time.perf_counter()
        data = load_mnist(root=data_root, progress=progress and lead)
        results = {}
        for name in nets:
            results[name] = train_net(name == "bn", cfg, data, progress, comm=comm)
            if results[name]["history"].interrupted:
                raise KeyboardInterrupt
        if not lead:
            return None
        return write_outputs(out, cfg, results, nets, time.perf_counter() - t0, False, jobs=1, ranks=comm.size)
