"""minibn: a from-scratch NumPy/CuPy engine for teaching and studying batch normalization.

    import minibn as mb
    from minibn import nn, optim
"""

from . import adapt, backend, functional, nn, optim, registry  # registry: every implementation of every operation
from .backend import asnumpy, get_array_module, seed
from .checkpoint import load, save

__version__ = "0.1.0"

__all__ = ["backend", "functional", "nn", "optim", "adapt", "seed", "asnumpy", "get_array_module",
           "save", "load", "__version__"]
