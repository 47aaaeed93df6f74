"""Stateful layers with explicit backward, on top of :mod:`minibn.functional` (and, for the
normalization layers, the implementations :mod:`minibn.dispatch` selects)."""

from . import init
from .activation import Dropout, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm, BatchNorm1d, BatchNorm2d
from .conv import AvgPool2d, Conv2d, Flatten, MaxPool2d
from .linear import Linear
from .loss import SoftmaxCrossEntropy
from .memorized import MemorizedBatchNorm, MemorizedBatchNorm1d, MemorizedBatchNorm2d, lambda_scheduler
from .module import Module, Parameter, Sequential
from .norm import Normalization, NumericalWarning, RunningStatistics
from .normalization import *  # noqa: F403 (LayerNorm, GroupNorm, InstanceNorm2d: see its __all__)
from .normalization import __all__ as _relatives
from .renorm import BatchRenorm, BatchRenorm1d, BatchRenorm2d, renorm_schedulers
from .syncbn import SyncBatchNorm
from .transnorm import GradientReversal, TransNorm, TransNorm1d, TransNorm2d

__all__ = ["Module", "Parameter", "Sequential", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
           "ReLU", "Sigmoid", "Tanh", "Dropout", "SoftmaxCrossEntropy", "init", "Normalization",
           "RunningStatistics", "NumericalWarning",
           "BatchNorm", "BatchNorm1d", "BatchNorm2d", "SyncBatchNorm", "BatchRenorm", "BatchRenorm1d", "BatchRenorm2d",
           "MemorizedBatchNorm", "MemorizedBatchNorm1d", "MemorizedBatchNorm2d", "TransNorm", "TransNorm1d",
           "TransNorm2d", "renorm_schedulers", "lambda_scheduler", "GradientReversal", *_relatives]
