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
    """The ``mpi4py.MPI`` module.

    Returns
    -------
    module

    Raises
    ------
    ImportError
        If mpi4py (or an MPI library) is missing, saying how to install it.
    """
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"minibn.distributed needs mpi4py and an MPI library: {INSTALL} ({e})") from None
    return MPI


def available():
    """Whether mpi4py (and an MPI library) can be imported.

    Returns
    -------
    bool
    """
    try:
        mpi()
        return True
    except ImportError:
        return False


def world(timeout=None):
    """A :class:`Communicator` over every rank of the job (``MPI.COMM_WORLD``).

    A script run without mpiexec is a job of one rank.

    Parameters
    ----------
    timeout : float or None, optional
        As :class:`Communicator`.

    Returns
    -------
    Communicator

    Raises
    ------
    ImportError
        If mpi4py is missing (:func:`mpi`).
    ValueError
        For a timeout that is not None or > 0.
    """
    return Communicator(mpi().COMM_WORLD, timeout=timeout)


def single():
    """A :class:`Communicator` over this process alone (``MPI.COMM_SELF``), without timeout.

    Returns
    -------
    Communicator

    Raises
    ------
    ImportError
        If mpi4py is missing (:func:`mpi`).
    """
    return Communicator(mpi().COMM_SELF)


class Communicator:
    """The collectives of minibn, over an mpi4py communicator.

    Every rank must call the same collectives in the same order, with arrays of the same
    shape: that is the rule of MPI, and the layers keep it by construction. ``rank`` and
    ``size`` are this rank's number and the number of ranks; ``bytes_sent``, ``calls`` and
    ``seconds`` count this rank's collectives (the bytes of its send buffers, and the time
    spent in them, waiting for the other ranks included). GPU arrays are copied to the host
    for each collective and back.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Default ``COMM_WORLD``.
    timeout : float or None, optional
        Seconds a collective may take before :class:`CollectiveTimeout` is raised (None:
        wait for ever). With a timeout the collectives are the non-blocking ones
        (``Iallreduce``...), polled until done or out of time.

    Raises
    ------
    ImportError
        If mpi4py is missing (:func:`mpi`).
    ValueError
        If timeout is neither None nor > 0.
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
        """The element-wise sum of ``a`` over all ranks (every rank gets it).

        Parameters
        ----------
        a : ndarray
            This rank's part, any shape; every rank's of the same shape.
        dtype : dtype, optional
            The dtype it is summed and returned in: float64 by default, whatever a's dtype (BN's
            sums); the gradient buffer goes in the parameters' own dtype, half the bytes for
            float32.

        Returns
        -------
        ndarray
            A new array of a's shape on a's device, in ``dtype``.

        Raises
        ------
        CollectiveTimeout
            If the collective does not complete within the communicator's timeout.
        """
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
        """Every rank's ``a``, stacked in rank order, on every rank.

        Parameters
        ----------
        a : ndarray
            This rank's array; every rank's of the same shape.
        dtype : dtype, optional
            The dtype it is sent and returned in (float64 by default).
        timeout : float or None, optional
            This call's timeout, instead of the communicator's.

        Returns
        -------
        ndarray, shape (size,) + a.shape
            On the host.

        Raises
        ------
        CollectiveTimeout
            If the collective does not complete within the communicator's timeout.
        """
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
        """Every rank's ``data`` (bytes, of any length), in rank order, on every rank.

        Two collectives (the lengths, then the bytes padded to the longest), both with the
        timeout.

        Parameters
        ----------
        data : bytes
            This rank's bytes.
        timeout : float or None, optional
            This call's timeout, instead of the communicator's.

        Returns
        -------
        list of bytes
            One per rank.

        Raises
        ------
        CollectiveTimeout
            If the collective does not complete within the communicator's timeout.
        """
        sizes = self.allgather(np.array([len(data)]), dtype=np.int64, timeout=timeout)[:, 0]
        buf = np.zeros(max(1, int(sizes.max())), dtype=np.uint8)
        buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
        table = self.allgather(buf, dtype=np.uint8, timeout=timeout)
        return [table[r, :sizes[r]].tobytes() for r in range(self.size)]

    def broadcast(self, a, root=0):
        """Copy ``a`` from rank ``root`` into ``a`` on every other rank, in place.

        Parameters
        ----------
        a : ndarray
            The array: the values on ``root``, the destination (of the same shape) elsewhere.
        root : int, optional
            The rank whose values are sent.

        Returns
        -------
        ndarray
            a itself.

        Raises
        ------
        CollectiveTimeout
            If the collective does not complete within the communicator's timeout.
        """
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
        """Per channel, the count, mean and sum of squared deviations of the values of all ranks, from each rank's own.

        One collective: each rank sends its 2C + 1 numbers, and every rank merges all of them,
        in rank order, so all get bitwise the same result. The merge of two groups (Chan, Golub
        & LeVeque's pairwise update)::

            n = n_a + n_b,  delta = mean_b - mean_a
            mean = mean_a + delta * n_b / n
            M2 = M2_a + M2_b + delta^2 * n_a * n_b / n

        It never forms E[x^2] - E[x]^2, which loses the variance to cancellation when the mean
        is large against the spread. A rank with count 0 is skipped.

        Parameters
        ----------
        count : int or float
            This rank's values per channel.
        mean, m2 : ndarray, shape (C,)
            This rank's mean and sum of squared deviations, per channel.

        Returns
        -------
        counts : ndarray, shape (size,)
            Every rank's count, in rank order.
        mean, m2 : ndarray, shape (C,), float64
            Those of all the values, on the host.

        Raises
        ------
        CollectiveTimeout
            If the collective does not complete within the communicator's timeout.
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
        """Wait until every rank has called it.

        Raises
        ------
        CollectiveTimeout
            If the collective does not complete within the communicator's timeout.
        """
        if self.size > 1:
            if self.timeout is None:
                self.comm.Barrier()
            else:
                self._wait(self.comm.Ibarrier(), "a barrier")


def check_same_config(comm, config):
    """Check that every rank was started with the same ``config``: a run's first collective.

    Call it first, before any collective of the run: the ranks of a job are started with
    the same command line as a rule, and one that was not (another ``--steps``, another
    ``--seed``) would wait for ever in a collective the others never call, or train on
    batches that do not fit together, without a word.

    Parameters
    ----------
    comm : Communicator
        The ranks.
    config : dict
        JSON-able settings: the steps, the seed, the batch size, the model...

    Raises
    ------
    ValueError
        On every rank (all see the same table), so that the job ends cleanly, if the configs
        differ: the message names each setting that differs, rank by rank.
    CollectiveTimeout
        If the exchange does not complete within the communicator's timeout.
    """
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
    """Give each rank its share of this machine's cores: cores // (ranks on this node) threads.

    The BLAS (through threadpoolctl) and minibn's compiled loops are limited to that many
    threads. k ranks on k cores each running a BLAS with k threads put k * k threads on k
    cores; a rank waiting in a collective also spins on its core. On 2 cores the Fig. 1 job
    over 2 ranks took 6x longer with the default threads than with one per rank.

    Parameters
    ----------
    comm : Communicator
        The job's ranks.

    Returns
    -------
    int
        The threads per rank (at least 1).
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
    """A context manager: an exception on any rank prints it and aborts every rank of the job (``MPI_Abort``).

    So a failed rank ends the job instead of leaving the others waiting in a collective.
    With one rank, or for ``SystemExit`` with code 0 or None, the exception propagates as
    usual.

    Parameters
    ----------
    comm : Communicator
        The job's ranks.
    """
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

    The global batches are those of :class:`minibn.data.BatchIterator` with
    ``global_batch`` rows and the same seed (every rank draws the same permutation); rank r
    of k takes the r-th of k near-equal parts of each (``numpy.array_split``: the sizes
    differ by at most one when k does not divide the batch). k ranks with b rows each see
    exactly what one process with k * b rows would. Iterating yields (x, y) of this rank,
    on the active backend, endlessly. ``sizes``: every rank's batch size.

    Parameters
    ----------
    x, y : ndarray
        The whole training set (inputs and labels, the same length), on the host.
    global_batch : int
        The rows of each global batch, at least the number of ranks.
    comm : Communicator
        The ranks.
    seed : int, optional
        The seed of the batch order.

    Raises
    ------
    ValueError
        If global_batch is not an integer >= the number of ranks.
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
        mine = idx[self._lo:self._hi]  # on the data's device already: no round trip through the host
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

    Parameters
    ----------
    model : minibn.nn.Module
        The model, built alike on every rank.
    comm : Communicator
        The ranks.
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
        """The model's output on this rank's rows (in training, also the batch sizes' sum over the ranks: a collective).

        Parameters
        ----------
        x : ndarray
            This rank's part of the batch.

        Returns
        -------
        ndarray
            The model's output.
        """
        if self.module.training:
            n_local = len(x)
            total = float(self.comm.allreduce_sum(np.array([n_local], dtype=np.float64))[0])
            self._scale = n_local / total
        return self.module(x)

    forward = __call__

    def backward(self, dy, need_dx=True):
        """Backpropagate dy scaled by n_r / N, then sum every parameter gradient over the ranks (a collective).

        Parameters
        ----------
        dy : ndarray
            The gradient of this rank's mean loss over its rows.
        need_dx : bool, optional
            As the model's backward.

        Returns
        -------
        ndarray or None
            The model's dx on this rank's rows.
        """
        dx = self.module.backward(dy * self._scale, need_dx=need_dx)
        self.allreduce_gradients()
        return dx

    def loss_over_ranks(self, loss_sum, rows):
        """The loss of the whole batch from each rank's part: one small all-reduce, on every rank.

        :func:`minibn.train.fit` calls it at each evaluation.

        Parameters
        ----------
        loss_sum : float
            This rank's per-row losses summed over some steps.
        rows : int
            The rows they came from.

        Returns
        -------
        total_loss, total_rows : float
            The sums over every rank: their ratio is the mean loss of the whole batch, not of
            this rank's part of it.
        """
        total = self.comm.allreduce_sum(np.array([float(loss_sum), float(rows)]))
        return float(total[0]), float(total[1])

    def allreduce_gradients(self):
        """Sum every parameter's gradient over the ranks, in one all-reduce of a flat buffer.

        The buffer is made on the gradients' device, so a GPU model crosses to the host once
        each way per step (in :meth:`Communicator.allreduce_sum`), not once per parameter.
        Each ``p.grad`` becomes its part of the sum. Parameters without a gradient are skipped
        (every rank must have the same ones).
        """
        params = [p for p in self.module.parameters() if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        xp = backend.get_array_module(*grads)
        size, dtype = sum(g.size for g in grads), np.result_type(*[g.dtype for g in grads])
        flat = self._flat
        if flat is None or flat.size != size or flat.dtype != dtype or backend.get_array_module(flat) is not xp:
            flat = self._flat = xp.empty(size, dtype)
        xp.concatenate([g.ravel() for g in grads], out=flat)
        total = self.comm.allreduce_sum(flat, dtype=dtype)  # a new array, on flat's device
        offset = 0
        for p in params:
            n = p.grad.size
            p.grad = total[offset:offset + n].reshape(p.grad.shape).astype(p.grad.dtype, copy=False)
            offset += n
