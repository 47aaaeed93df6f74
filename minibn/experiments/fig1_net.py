"""The network of Fig. 1 (Ioffe & Szegedy 2015, Sec. 4.1): a 784-100-100-100-10 MLP with
sigmoid hidden units, with or without a normalization layer before each sigmoid. Trained by
`minibn drift` (:mod:`minibn.experiments.drift`) and timed by `minibn bench`
(:mod:`minibn.bench`); it imports nothing of either."""

from __future__ import annotations

from .. import nn

#: the normalization layers the "bn" net can use (``--norm``): name -> (factory of a layer
#: for ``hidden`` features, its label, whether it makes the Linear's bias redundant). BN and
#: its batch-statistics variants subtract each feature's mean over the batch, so a bias
#: before them cancels (Sec. 3.2); LayerNorm and GroupNorm subtract a per-sample mean over
#: the features, which leaves a bias's differences between features in place.
NORMS = {
    "batchnorm": (lambda C: nn.BatchNorm1d(C), "BN", True),
    "renorm": (lambda C: nn.BatchRenorm1d(C, r_max=3.0, d_max=5.0), "Batch Renorm", True),
    "memorized": (lambda C: nn.MemorizedBatchNorm1d(C), "Memorized BN", True),
    "layernorm": (lambda C: nn.LayerNorm(C), "LayerNorm", False),
    "groupnorm": (lambda C: nn.GroupNorm(10, C), "GroupNorm (10 groups)", False),
}


def build_net(bn: bool, init_std=0.1, hidden=100, depth=3, in_features=784, classes=10, norm="batchnorm",
              comm=None):
    """The Sec. 4.1 MLP, (N, in_features) -> (N, classes) logits. Returns (model, index of
    the last hidden sigmoid in the Sequential).

    Each hidden layer is ``Linear -> Sigmoid``, or with ``bn`` ``Linear -> norm -> Sigmoid``;
    weights are drawn from N(0, init_std^2), biases start at zero. ``norm``: which
    normalization, a key of :data:`NORMS` (BN by default), or a callable
    ``norm(num_features) -> layer`` (the Linear before it then keeps its bias). ``comm``: with
    a :class:`minibn.distributed.Communicator`, BN is :class:`minibn.nn.SyncBatchNorm` over
    its ranks (the other norms stay as they are: Batch Renorm and Memorized BN then use each
    rank's own rows).
    """
    make, drop_bias = (norm, False) if callable(norm) else (NORMS[norm][0], NORMS[norm][2])
    if comm is not None and norm == "batchnorm":
        make = lambda C: nn.SyncBatchNorm(C, comm=comm)  # noqa: E731
    layers, width = [], in_features
    for _ in range(depth):
        lin = nn.Linear(width, hidden, bias=not (bn and drop_bias))
        nn.init.normal_(lin.weight, std=init_std)
        if lin.bias is not None:
            nn.init.zeros_(lin.bias)
        layers += [lin, make(hidden), nn.Sigmoid()] if bn else [lin, nn.Sigmoid()]
        width = hidden
    head = nn.Linear(width, classes)
    nn.init.normal_(head.weight, std=init_std)
    nn.init.zeros_(head.bias)
    layers.append(head)
    return nn.Sequential(*layers), len(layers) - 2
