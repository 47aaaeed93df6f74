"""Stateful layers with explicit backward, on top of :mod:`minibn.functional`."""

from . import init
from .activation import Dropout, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import AvgPool2d, Conv2d, Flatten, MaxPool2d
from .linear import Linear
from .loss import SoftmaxCrossEntropy
from .memorized import MemorizedBatchNorm1d, MemorizedBatchNorm2d, lambda_scheduler
from .module import Module, Parameter, Sequential
from .normalization import GroupNorm, LayerNorm
from .renorm import BatchRenorm1d, BatchRenorm2d, renorm_schedulers
from .transnorm import GradientReversal, TransNorm1d, TransNorm2d

__all__ = ["Module", "Parameter", "Sequential", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
           "ReLU", "Sigmoid", "Tanh", "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
           "SoftmaxCrossEntropy", "init", "BatchRenorm1d", "BatchRenorm2d", "MemorizedBatchNorm1d",
           "MemorizedBatchNorm2d", "renorm_schedulers", "lambda_scheduler", "TransNorm1d", "TransNorm2d",
           "GradientReversal"]
