"""Data: MNIST (verified IDX files) and seeded mini-batching."""

from .batching import BatchIterator
from .mnist import DataError, data_dir, load_mnist, parse_idx
from .shifts import SHIFTS, apply_shift
from .toy import disc

__all__ = ["load_mnist", "parse_idx", "data_dir", "DataError", "BatchIterator", "SHIFTS", "apply_shift", "disc"]
