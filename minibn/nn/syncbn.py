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


class SyncBatchNorm(BatchNorm):
    """BN over (N, C) or (N, C, *) with the statistics of the batch spread over the ranks.

    Args:
        num_features: C.
        comm: a :class:`minibn.distributed.Communicator` (default: every rank of the job,
            ``minibn.distributed.world()``; needs mpi4py: the ImportError says how to install it).
        eps, momentum, affine, track_running_stats, dtype: as :class:`BatchNorm`.

    Every rank must run the layer's forward and backward together (they are collectives).
    A rank with an empty batch, or a whole batch of one value per channel, raises ValueError
    on every rank.
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
        """x: this rank's (n_r, C, *) -> y of the same shape."""
        if not ((self.training and not self.frozen) or not self.track_running_stats):
            return super().forward(x)  # the fixed inference transform: no communication
        x = self._check(x)
        gamma, beta = self._affine()
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
