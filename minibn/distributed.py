"""Training across processes over MPI: a communicator, data-parallel training, data shards.

minibn does not implement message passing: it runs on MPI through mpi4py (install with
``pip install "minibn[mpi]"``, which brings mpi4py and the MPICH library with its
``mpiexec``). Launch a script on k processes ("ranks") with ``mpiexec -n k python script.py``;
each rank runs the same program on its own part of the data, and the ranks meet in
*collectives* (every rank calls the same one, and each gets the combined result).

What is here:

* :class:`Communicator`: the collectives minibn needs, on NumPy arrays: a sum over ranks
  (``allreduce_sum``), the merge of per-channel moments (``merge_moments``, for
  :class:`minibn.nn.SyncBatchNorm`), a broadcast from rank 0. Each can have a timeout, so that
  a rank that died or went another way gives an error on the others, not a hang. It counts
  the bytes it sends (``bytes_sent``), for the scaling measurements.
* :class:`DataParallel`: a model wrapper. Rank 0's parameters and buffers are broadcast at
  the start; after each backward the gradients of all ranks are summed in one all-reduce of
  one flat buffer (not one call per tensor).
* :class:`ShardedBatches`: the mini-batches of single-process training with the global
  batch size, each rank taking its own rows of each batch. k ranks with b rows each then see
  exactly what one process with k * b rows would: the runs can be compared number for number.
* :func:`abort_on_error`: an exception on one rank stops every rank (``MPI_Abort``), instead
  of leaving the others waiting in a collective.
* :func:`check_same_config`: a run's first collective. Ranks started with different settings
  (another ``--steps``, another seed) would call different collectives, or train on batches
  that do not fit together; they stop at once instead, with an error naming the settings.

minibn's commands (``drift --distributed``, ``reproduce sync-bn``) give every collective a
timeout (:data:`RUN_TIMEOUT`): MPI's own collectives wait for ever, so a rank that died or
went another way would hang the others until someone noticed.

GPU arrays (CuPy) are copied to the host for each collective and back: minibn does not
assume a CUDA-aware MPI library (MPICH from the package index is not one). The sums are
small for BN (2C + 1 and 2C values per layer); the gradient buffer is the model's size.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time

import numpy as np

from . import backend

INSTALL = 'pip install "minibn[mpi]"   (mpi4py and the MPICH library, with its mpiexec)'


#: seconds a collective of minibn's commands may wait for the other ranks before it is an
#: error (:class:`CollectiveTimeout`). Generous: in training the ranks meet every step, and
#: the longest legitimate wait is rank 0 evaluating the test set while the others wait in
#: the next step (under a second here); a rank that is gone is found out within minutes
#: instead of never.
RUN_TIMEOUT = 600.0


class CollectiveTimeout(RuntimeError):
    """A collective did not complete in time: another rank failed, or called something else."""


def mpi():
    """The ``mpi4py.MPI`` module; ImportError saying how to install it when it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"minibn.distributed needs mpi4py and an MPI library: {INSTALL} ({e})") from None
    return MPI


def available():
    """Whether mpi4py (and an MPI library) can be imported."""
    try:
        mpi()
        return True
    except ImportError:
        return False


def world(timeout=None):
    """A :class:`Communicator` over every rank of the job (``MPI.COMM_WORLD``). A script run
    without mpiexec is a job of one rank."""
    return Communicator(mpi().COMM_WORLD, timeout=timeout)


def single():
    """A :class:`Communicator` over this process alone (``MPI.COMM_SELF``)."""
    return Communicator(mpi().COMM_SELF)


class Communicator:
    """The collectives of minibn, over an mpi4py communicator.

    Args:
        comm: an ``mpi4py.MPI.Comm`` (default ``COMM_WORLD``).
        timeout: seconds a collective may take before :class:`CollectiveTimeout` is raised
            (None: wait for ever). With a timeout the collectives are the non-blocking ones
            (``Iallreduce``...), polled until done or out of time.

    Every rank must call the same collectives in the same order, with arrays of the same
    shape: that is the rule of MPI, and the layers keep it by construction.
    """

    def __init__(self, comm=None, timeout=None):
        MPI = mpi()
        self.comm = MPI.COMM_WORLD if comm is None else comm
        if timeout is not None and not timeout > 0:
            raise ValueError(f"Communicator: timeout must be None or > 0 seconds, got {timeout!r}")
        self.timeout = timeout
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        #: bytes this rank has contributed to collectives (its send buffers), how many calls,
        #: and the seconds spent in them (waiting for the other ranks included)
        self.bytes_sent = 0
        self.calls = 0
        self.seconds = 0.0

    def __repr__(self):
        return f"Communicator(rank={self.rank}, size={self.size}, timeout={self.timeout})"

    # -- plumbing ------------------------------------------------------------------------
    def _wait(self, request, what, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if timeout is None:
            request.Wait()
            return
        deadline = time.monotonic() + timeout
        while not request.Test():
            if time.monotonic() > deadline:
                raise CollectiveTimeout(
                    f"rank {self.rank} of {self.size}: {what} did not complete in {timeout} s "
                    f"(another rank failed, or is calling a different collective)")
            time.sleep(2e-5)

    @contextlib.contextmanager
    def _collective(self, buf):
        """Count one collective: its send buffer's bytes, and its time."""
        self.bytes_sent += buf.nbytes
        self.calls += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t0

    # -- collectives ---------------------------------------------------------------------
    def allreduce_sum(self, a, dtype=np.float64):
        """The element-wise sum of ``a`` over all ranks (every rank gets it), as a new array
        of a's shape on a's device, in ``dtype`` (float64 by default, whatever a's dtype:
        BN's sums; the gradient buffer goes in the parameters' own dtype, half the bytes
        for float32)."""
        host = np.ascontiguousarray(backend.asnumpy(a), dtype=dtype)
        out = np.empty_like(host)
        with self._collective(host):
            if self.size == 1:
                out[...] = host
            elif self.timeout is None:
                self.comm.Allreduce(host, out)
            else:
                self._wait(self.comm.Iallreduce(host, out), f"a sum of {host.size} values (allreduce)")
        return backend.get_array_module(a).asarray(out)

    def allgather(self, a, dtype=np.float64, timeout=None):
        """(size, *a.shape): every rank's ``a``, in rank order, on every rank, in ``dtype``
        (float64 by default). ``timeout``: this call's, instead of the communicator's."""
        host = np.ascontiguousarray(backend.asnumpy(a), dtype=dtype)
        out = np.empty((self.size,) + host.shape, dtype=dtype)
        with self._collective(host):
            if self.size == 1:
                out[0] = host
            elif self.timeout is None and timeout is None:
                self.comm.Allgather(host, out)
            else:
                self._wait(self.comm.Iallgather(host, out), f"a gather of {host.size} values per rank (allgather)",
                           timeout)
        return out

    def allgather_bytes(self, data, timeout=None):
        """Every rank's ``data`` (bytes, of any length), in rank order, on every rank: two
        collectives (the lengths, then the bytes padded to the longest), both with the timeout."""
        sizes = self.allgather(np.array([len(data)]), dtype=np.int64, timeout=timeout)[:, 0]
        buf = np.zeros(max(1, int(sizes.max())), dtype=np.uint8)
        buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
        table = self.allgather(buf, dtype=np.uint8, timeout=timeout)
        return [table[r, :sizes[r]].tobytes() for r in range(self.size)]

    def broadcast(self, a, root=0):
        """``a`` from rank ``root``, written into ``a`` on every other rank (in place; returns a)."""
        host = np.ascontiguousarray(backend.asnumpy(a))
        with self._collective(host if self.rank == root else host[:0]):
            if self.size > 1:
                if self.timeout is None:
                    self.comm.Bcast(host, root=root)
                else:
                    self._wait(self.comm.Ibcast(host, root=root), f"a broadcast of {host.size} values")
        if self.rank != root:
            a[...] = backend.get_array_module(a).asarray(host)
        return a

    def merge_moments(self, count, mean, m2):
        """Per channel, the count, mean and sum of squared deviations of the values of all
        ranks, from each rank's own: one collective (each rank sends its 2C + 1 numbers, and
        every rank merges all of them, in rank order, so all get bitwise the same result).

        The merge of two groups (Chan, Golub & LeVeque's pairwise update):

            n = n_a + n_b,  delta = mean_b - mean_a
            mean = mean_a + delta * n_b / n
            M2 = M2_a + M2_b + delta^2 * n_a * n_b / n

        It never forms E[x^2] - E[x]^2, which loses the variance to cancellation when
        the mean is large against the spread. Args: count (scalar, this rank's values per
        channel), mean and m2, (C,). Returns (counts (size,), mean (C,), m2 (C,)), on the host.
        """
        mean, m2 = backend.asnumpy(mean), backend.asnumpy(m2)
        table = self.allgather(np.concatenate([[float(count)], mean, m2]))  # (size, 1 + 2C)
        C = len(mean)
        counts = table[:, 0]
        n, mu, M2 = 0.0, np.zeros(C), np.zeros(C)
        for r in range(self.size):
            n_b, mean_b, m2_b = counts[r], table[r, 1:1 + C], table[r, 1 + C:]
            if n_b == 0:
                continue
            total = n + n_b
            delta = mean_b - mu
            mu = mu + delta * (n_b / total)
            M2 = M2 + m2_b + delta * delta * (n * n_b / total)
            n = total
        return counts, mu, M2

    def barrier(self):
        if self.size > 1:
            if self.timeout is None:
                self.comm.Barrier()
            else:
                self._wait(self.comm.Ibarrier(), "a barrier")


def check_same_config(comm, config):
    """ValueError on every rank unless every rank was started with the same ``config`` (a dict
    of JSON-able settings: the steps, the seed, the batch size, the model...). Call it first,
    before any collective of the run: the ranks of a job are started with the same command
    line as a rule, and one that was not (another ``--steps``, another ``--seed``) would wait
    for ever in a collective the others never call, or train on batches that do not fit
    together, without a word. The error names each setting that differs, rank by rank; every
    rank raises it (all see the same table), so the job ends cleanly."""
    mine = json.dumps(config, sort_keys=True, default=str)
    configs = [json.loads(b) for b in comm.allgather_bytes(mine.encode())]
    differ = []
    for key in sorted(set().union(*configs)):
        values = [json.dumps(c[key]) if key in c else "(not set)" for c in configs]
        if any(v != values[0] for v in values):
            ranks = {}  # value -> the ranks that have it
            for r, v in enumerate(values):
                ranks.setdefault(v, []).append(r)
            differ.append(f"{key}: " + ", ".join(f"{v} on rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}"
                                                   for v, rs in ranks.items()))
    if differ:
        raise ValueError(f"the {comm.size} ranks were not started with the same configuration ("
                         + "; ".join(differ) + "): start every rank with the same options")


def share_cores(comm):
    """Give each rank its share of this machine's cores: the BLAS (threadpoolctl) and
    minibn's compiled loops use cores // (ranks on this node) threads. Returns that count.

    k ranks on k cores each running a BLAS with k threads put k * k threads on k cores; a
    rank waiting in a collective also spins on its core. On 2 cores the Fig. 1 job over 2
    ranks took 6x longer with the default threads than with one per rank.
    """
    import os

    from threadpoolctl import threadpool_limits

    from .kernels import numba_cpu
    local = comm.comm.Split_type(mpi().COMM_TYPE_SHARED)  # the ranks on this node
    n = max(1, (os.cpu_count() or 1) // local.Get_size())
    local.Free()
    threadpool_limits(n)
    numba_cpu.set_threads(n)
    return n


@contextlib.contextmanager
def abort_on_error(comm):
    """Run the block; an exception on any rank prints it and aborts every rank of the job
    (``MPI_Abort``), so that a failed rank ends the job instead of leaving the others in a
    collective. With one rank the exception propagates as usual."""
    try:
        yield
    except BaseException as e:
        if comm.size == 1 or isinstance(e, SystemExit) and e.code in (0, None):
            raise
        import traceback
        print(f"minibn: rank {comm.rank} of {comm.size} failed ({type(e).__name__}: {e}); aborting the job",
              file=sys.stderr, flush=True)
        traceback.print_exc()
        sys.stderr.flush()
        time.sleep(0.5)  # the launcher forwards output through pipes: give it this rank's before the abort
        comm.comm.Abort(1)


# -- data-parallel training ---------------------------------------------------------------

class ShardedBatches:
    """This rank's rows of the mini-batches of single-process training.

    The global batches are those of :class:`minibn.data.BatchIterator` with ``global_batch``
    rows and the same seed (every rank draws the same permutation); rank r of k takes the
    r-th of k near-equal parts of each (``numpy.array_split``: the sizes differ by at most
    one when k does not divide the batch). Yields (x, y) of this rank, endlessly.
    ``sizes``: every rank's batch size.
    """

    def __init__(self, x, y, global_batch, comm, seed=0):
        from .data import BatchIterator
        if not isinstance(global_batch, int) or global_batch < comm.size:
            raise ValueError(f"ShardedBatches: global_batch must be an integer >= the number of ranks "
                             f"({comm.size}): every rank needs a sample, got {global_batch!r}")
        self._global = BatchIterator(np.arange(len(x)), np.arange(len(x)), global_batch, seed=seed)
        self.x, self.y = backend.to_active(x), backend.to_active(y)
        bounds = np.cumsum([0] + [len(p) for p in np.array_split(np.arange(global_batch), comm.size)])
        self.sizes = np.diff(bounds).tolist()
        self._lo, self._hi = int(bounds[comm.rank]), int(bounds[comm.rank + 1])

    def __iter__(self):
        return self

    def __next__(self):
        idx, _ = next(self._global)
        mine = backend.to_active(backend.asnumpy(idx)[self._lo:self._hi])
        return self.x[mine], self.y[mine]


class DataParallel:
    """A model trained on every rank at once, as one model (the rule of data parallelism).

    At construction rank 0's parameters and buffers are copied to every rank (one broadcast
    each), so all ranks start from the same model. In training:

    * ``forward(x)``: the model on this rank's rows. Without batch statistics across ranks
      (plain BatchNorm), each rank normalizes by its own rows ("local BN"); use
      :class:`minibn.nn.SyncBatchNorm` layers for the statistics of the whole batch.
    * ``backward(dy)``: dy is the gradient of this rank's mean loss over its n_r rows. The
      objective is the mean over all N = sum n_r rows, so dy is scaled by n_r / N first
      (the batch sizes are summed in the forward: one small all-reduce); then every
      parameter gradient is the sum over ranks of the local ones, which one all-reduce of
      one flat buffer holding all of them computes.

    The result equals one process training on the concatenated batch (tested to 1e-10 in
    float64), with or without SyncBatchNorm. Attribute access falls through to the wrapped
    model (``dp.layers``, ``dp[:2]``...).
    """

    def __init__(self, model, comm):
        self.module, self.comm = model, comm
        for _, p in model.named_parameters():
            comm.broadcast(p.data)
        for m in model.modules():
            for name in m._buffers:
                v = getattr(m, name)
                if hasattr(v, "shape") and v.shape:
                    comm.broadcast(v)
        self._flat = None
        self._scale = 1.0

    def __getattr__(self, name):
        return getattr(self.__dict__["module"], name)

    def __getitem__(self, i):
        return self.module[i]

    def __len__(self):
        return len(self.module)

    def __call__(self, x):
        if self.module.training:
            n_local = len(x)
            total = float(self.comm.allreduce_sum(np.array([n_local], dtype=np.float64))[0])
            self._scale = n_local / total
        return self.module(x)

    forward = __call__

    def backward(self, dy, need_dx=True):
        dx = self.module.backward(dy * self._scale, need_dx=need_dx)
        self.allreduce_gradients()
        return dx

    def loss_over_ranks(self, loss_sum, rows):
        """(the sum over every rank, the total row count) of each rank's ``loss_sum``, its
        per-row losses summed over some steps, and ``rows``, the rows they came from: the mean
        loss of the whole batch, not of this rank's part of it. One small all-reduce;
        :func:`minibn.train.fit` calls it at each evaluation, on every rank."""
        total = self.comm.allreduce_sum(np.array([float(loss_sum), float(rows)]))
        return float(total[0]), float(total[1])

    def allreduce_gradients(self):
        """Sum every parameter's gradient over the ranks, in one all-reduce of a flat buffer."""
        params = [p for p in self.module.parameters() if p.grad is not None]
        if not params:
            return
        size, dtype = sum(p.grad.size for p in params), np.result_type(*[p.grad.dtype for p in params])
        if self._flat is None or self._flat.size != size or self._flat.dtype != dtype:
            self._flat = np.empty(size, dtype)
        flat, offset = self._flat, 0
        for p in params:
            n = p.grad.size
            flat[offset:offset + n] = backend.asnumpy(p.grad).ravel()
            offset += n
        total = backend.asnumpy(self.comm.allreduce_sum(flat, dtype=flat.dtype))
        offset = 0
        for p in params:
            n = p.grad.size
            xp = backend.get_array_module(p.grad)
            p.grad = xp.asarray(total[offset:offset + n].reshape(p.grad.shape), dtype=p.grad.dtype)
            offset += n
