"""Fig. 1 of Ioffe & Szegedy (2015), Sec. 4.1: activation drift in an MNIST MLP, with and without BN.

The network: 784-100-100-100-10, sigmoid hidden units, weights from a small Gaussian,
softmax cross-entropy, mini-batches of 60, 50,000 SGD steps. It is trained twice: as
is (``Linear -> Sigmoid``), and with BN before each sigmoid (``Linear(bias=False) ->
BatchNorm1d -> Sigmoid``: the bias is dropped because BN's mean subtraction cancels it
and beta takes its role, Sec. 3.2). Both nets see the same initial weights (same seed)
and the same sequence of mini-batches.

Recorded: test accuracy over training (Fig. 1a) and the {15, 50, 85}th percentiles of
the input of one sigmoid of the last hidden layer on a fixed probe set of test images
(Fig. 1b, c).

Choices the paper leaves open (defaults, and why):

* ``init_std = 0.1``: "small random Gaussian values". With 784 inputs in [0, 1] this
  gives first-layer pre-activations of std ~ 1, inside the sigmoid's sensitive range, so
  the plain network starts training at once and the comparison is about training
  dynamics, not about escaping a dead start.
* ``lr = 0.5``, plain SGD (no momentum, no decay): the paper used plain SGD; 0.5 is about
  the largest rate at which the network *without* BN still trains stably here (a fair
  baseline), and it lets the BN net show its faster convergence.
* Test accuracy (all 10,000 test images) and the percentiles are taken every
  ``eval_every`` = 1,000 steps (51 points per curve; a full test pass costs as much as
  tens of training steps, so a denser curve would lengthen the run noticeably). The
  percentiles are taken in inference mode (BN with its running statistics) on 2,000
  test images. Unit 0 is plotted (any unit is "typical": the
  units are exchangeable at initialization); ``--unit`` picks another.

The code, by concern: :mod:`~minibn.experiments.drift.config` (the settings),
:mod:`minibn.experiments.fig1_net` (the network), :mod:`~minibn.experiments.drift.training`
(one net's training and the statistics of its record), :mod:`~minibn.experiments.drift.files`
(summary.json, curves.csv, the figure), :mod:`~minibn.experiments.drift.runner` (both nets,
in processes or over MPI ranks) and :mod:`~minibn.experiments.drift.cli` (`minibn drift`).
"""

from __future__ import annotations

from ..fig1_net import NORMS, build_net
from .cli import add_cli
from .config import LABELS, NETS, DriftConfig, default_eval_every, label
from .files import OUTPUTS, PERCENTILE_STYLES, plot, write_outputs
from .runner import run, run_config
from .training import Trace, summarize, train_net

__all__ = ["LABELS", "NETS", "NORMS", "OUTPUTS", "PERCENTILE_STYLES", "DriftConfig", "Trace", "add_cli", "build_net",
           "default_eval_every", "label", "plot", "run", "run_config", "summarize", "train_net", "write_outputs"]
