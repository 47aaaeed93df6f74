"""Working with a trained BN network's statistics.

* :func:`population_statistics` - Algorithm 2 (steps 8-10) of Ioffe & Szegedy: replace the
  moving averages by statistics averaged over given training mini-batches.
* :func:`fold` - batchnorm freezing in its folded form (Suzuki et al. 2020, Sec. 3.1):
  each BN that follows a Linear or Conv2d is merged into that layer's weights and bias.

Both refuse a model without BN layers (and an empty set of batches) with a clear error,
leaving the model unchanged.
"""

from __future__ import annotations

import copy

from . import nn


def bn_layers(model):
    """Every BatchNorm1d / BatchNorm2d layer of ``model``, in forward order.

    (Batch Renormalization and Memorized BN keep other statistics and are not included.)
    """
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]


def _require_bn(model, where):
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{where}: the model has no BatchNorm layer")
    return layers


def _batch_inputs(batches, where):
    """Yield the input array of each batch (a batch is x or a tuple (x, labels, ...))."""
    n = 0
    for batch in batches:
        n += 1
        yield batch[0] if isinstance(batch, (tuple, list)) else batch
    if n == 0:
        raise ValueError(f"{where}: got no batches")


def population_statistics(model, batches):
    """Algorithm 2, step 10: E[x] <- E_B[mu_B], Var[x] <- m/(m-1) E_B[sigma_B^2], per BN layer.

    The batches go through the network as in training (each BN normalizes with its batch
    statistics, as N_tr_BN does), while everything else is fixed: no parameter changes
    and every non-BN layer (e.g. Dropout) runs in eval mode. Each BN layer averages the
    batch means and unbiased batch variances over all batches with equal weight (for
    batches of one size m this is exactly m/(m-1) E_B[sigma_B^2]).

    ``batches``: an iterable of inputs x (or tuples (x, ...)), on the model's device.
    Returns the model, in eval mode. On error the model is left unchanged.
    """
    layers = _require_bn(model, "population_statistics")
    saved = copy.deepcopy(model.state_dict())
    modes = {id(m): m.training for m in model.modules()}
    momenta = [bn.momentum for bn in layers]
    try:
        model.eval()
        for bn in layers:
            if not bn.track_running_stats:
                raise ValueError("population_statistics: a BatchNorm layer has track_running_stats=False")
            bn.train()
            bn.momentum = None  # cumulative average: factor 1/t for the t-th batch
            bn.num_batches_tracked = 0
        for x in _batch_inputs(batches, "population_statistics"):
            model(x)
    except BaseException:
        model.load_state_dict(saved)
        for m in model.modules():
            m.training = modes[id(m)]
        raise
    finally:
        for bn, mom in zip(layers, momenta):
            bn.momentum = mom
    return model.eval()


def _fold_pair(layer, bn):
    """Merge bn (eval transform y = scale * x + shift) into the preceding Linear/Conv2d."""
    scale = 1.0 / (bn.running_var + bn.eps) ** 0.5
    if bn.affine:
        scale = bn.gamma.data * scale
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift + bn.beta.data
    w = layer.weight.data
    layer.weight.data = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = layer.bias.data if layer.bias is not None else 0.0
    new_bias = bias * scale + shift
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.astype(w.dtype))
    else:
        layer.bias.data = new_bias.astype(w.dtype)


def fold(model):
    """Return a copy of ``model`` with each BN that directly follows a Linear or Conv2d
    folded into it (batchnorm freezing, IIT paper Sec. 3.1).

    With scale = gamma / sqrt(running_var + eps) and shift = beta - running_mean * scale,
    the pair x -> W x + b -> BN becomes x -> (scale * W) x + (scale * b + shift): the same
    eval-mode outputs, one layer fewer. The original model is not changed. BN layers
    that follow anything else stay in place. Works through nested Sequentials.

    Raises ValueError if there is nothing to fold or a BN keeps no running statistics.
    """
    _require_bn(model, "fold")
    new = copy.deepcopy(model)
    count = [0]

    def visit(seq):
        out = []
        for layer in seq.layers:
            if isinstance(layer, nn.Sequential):
                visit(layer)
            follows_affine = out and isinstance(out[-1], (nn.Linear, nn.Conv2d))
            if (isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and follows_affine
                    and out[-1].weight.shape[0] == layer.num_features):
                if not layer.track_running_stats:
                    raise ValueError("fold: a BatchNorm layer with track_running_stats=False cannot be folded")
                _fold_pair(out[-1], layer)
                count[0] += 1
                continue
            out.append(layer)
        seq.layers = out

    if not isinstance(new, nn.Sequential):
        raise TypeError(f"fold: expected an nn.Sequential model, got {type(model).__name__}")
    visit(new)
    if count[0] == 0:
        raise ValueError("fold: no BatchNorm layer directly follows a Linear or Conv2d")
    return new.eval()
