"""Seeded, shuffling mini-batches, delivered on the device of the data.

Host data is moved to the active backend's device once, when the iterator is made (data
already on the GPU stays there), and each epoch's permutation goes to the data's device
once per epoch; a batch is then an index into device memory. So there is at most one
host-to-device transfer per batch (far fewer, in fact), and on the CPU no copy beyond the
batch itself.
"""

from __future__ import annotations

import numpy as np

from .. import backend


class BatchIterator:
    """Endless mini-batches ``(x, y)``, reshuffled every epoch with a seeded generator.

    Args:
        x: (N, ...) inputs; y: (N,) labels (host or device arrays). Host arrays are
            moved to the active backend's device; device arrays stay where they are
            (and take host labels or inputs given with them along).
        batch_size: rows per batch. The last, incomplete batch of an epoch is dropped
            (``drop_last=True``), so every batch has the same size (BN statistics are
            then comparable from step to step).
        seed: the shuffling seed; the same seed gives the same batches.
    """

    def __init__(self, x, y, batch_size, seed=0, shuffle=True, drop_last=True):
        if len(x) != len(y):
            raise ValueError(f"BatchIterator: x has {len(x)} rows but y has {len(y)}")
        if not isinstance(batch_size, int) or batch_size < 1 or (drop_last and batch_size > len(x)):
            raise ValueError(f"BatchIterator: batch_size must be an integer in [1, {len(x)}], got {batch_size!r}")
        if backend.is_gpu_array(x) or backend.is_gpu_array(y):  # data on the GPU stays there
            self.x, self.y = backend.to_device(x, "gpu"), backend.to_device(y, "gpu")
        else:
            self.x, self.y = backend.to_active(x), backend.to_active(y)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self._rng = np.random.default_rng(seed)
        self.epoch = 0
        self._order, self._pos = None, 0

    def _new_epoch(self):
        n = len(self.x)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        self._order = backend.to_device(order, backend.device_of(self.x))  # one transfer per epoch
        self._pos = 0
        self.epoch += 1

    def __iter__(self):
        return self

    def __next__(self):
        n = len(self.x)
        if self._order is None or self._pos + (self.batch_size if self.drop_last else 1) > n:
            self._new_epoch()
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return self.x[idx], self.y[idx]
