"""SyncBatchNorm: batch normalization whose statistics are those of the batch over all ranks.

In data-parallel training (:class:`minibn.distributed.DataParallel`) each rank holds a part
of the mini-batch. Plain :class:`BatchNorm` normalizes each part by its own statistics
("local BN": with a small part per rank, the small-batch problem of Batch Renorm and
Memorized BN). SyncBatchNorm exchanges per-channel sums so that every part is normalized by
the statistics of the whole batch: one collective in the forward (count, mean and sum of
squared deviations, 2C + 1 numbers per rank), one in the backward (two sums, 2C numbers). The
maths, and why two exchanges suffice, is in :mod:`minibn.functional.syncbn`.

Everything else is BatchNorm's: the arguments, the running statistics (updated from the
global statistics, so identical on every rank), eval mode (the fixed transform, no
communication), freezing.
"""

from __future__ import annotations

from .. import functional as F
from .batchnorm import BatchNorm

__all__ = ["SyncBatchNorm"]


class SyncBatchNorm(BatchNorm):
    """BN over (N, C, ...) with the statistics of the batch spread over the ranks.

    Every rank must run the layer's training forward and backward together (they are
    collectives: :mod:`minibn.functional.syncbn`). Eval mode is BatchNorm's fixed transform,
    with no communication. x may be 2- to 5-d.

    Parameters
    ----------
    num_features : int
        C, the channels (a positive integer).
    comm : minibn.distributed.Communicator, optional
        Default: every rank of the job, ``minibn.distributed.world()`` (needs mpi4py: the
        ImportError says how to install it).
    eps, momentum, affine, track_running_stats, dtype
        As :class:`BatchNorm`.

    Raises
    ------
    ValueError
        As :class:`BatchNorm`.
    ImportError
        Without ``comm``, if mpi4py is not installed.
    """

    _ndims = (2, 3, 4, 5)
    _layout = "(N, {C}, *)"

    def __init__(self, num_features, comm=None, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype="float32"):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, impl="reference", dtype=dtype)
        if comm is None:
            from .. import distributed
            comm = distributed.world()
        self.comm = comm

    def forward(self, x):
        """Normalize this rank's part by the statistics of the whole batch (training), or by the running ones (eval).

        Parameters
        ----------
        x : ndarray, shape (n_r, C, ...)
            This rank's part of the batch, a plain floating-point array.

        Returns
        -------
        ndarray
            x's shape and dtype.

        Raises
        ------
        TypeError
            If x is not a plain floating-point array (naming the fix).
        ValueError
            If x's shape is not one the layer takes; in training, on every rank alike, if a
            rank has an empty batch or the whole batch has one value per channel.
        """
        if not ((self.training and not self.frozen) or not self.track_running_stats):
            return super().forward(x)  # the fixed inference transform: no communication
        x = self._check(x)
        gamma, beta = self._gamma_beta()
        try:
            y, cache = F.sync_batch_norm_forward(x, gamma, beta, self.eps, self.comm)
        except ValueError as e:  # the same on every rank: they all saw the same counts
            raise ValueError(f"{self.name}: {e}") from None
        self._remember(F.sync_batch_norm_backward, cache, y, x)
        self._after_batch_statistics(cache)  # the global m, mu_B, var_B: the same on every rank
        return y

    def extra_repr(self):
        return (f"{self.num_features}, ranks={self.comm.size}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
