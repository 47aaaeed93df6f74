"""Working with a trained BN network's statistics, and adapting it to a new domain.

* :func:`population_statistics` - Algorithm 2 (steps 8-10) of Ioffe & Szegedy: replace the
  moving averages by statistics averaged over given training mini-batches.
* :func:`fold` - batchnorm freezing in its folded form (Suzuki et al. 2020, Sec. 3.1):
  each BN that follows a Linear or Conv2d is merged into that layer's weights and bias.
* :func:`freeze` - batchnorm freezing in place: BN keeps its inference transform (and
  its gamma, beta) during further training.
* :func:`adabn` - AdaBN (Li et al. 2016): running statistics := the exact statistics of
  the target data, layer by layer.
* :func:`iit` - the inference-invariant transformation (Suzuki et al. 2020, Eq. 3-6).
* :func:`bn_mismatch` - the train/inference mismatch of each BN layer as a KL divergence
  (the analysis of the IIT paper's Table 2).

All refuse a model without BN layers, or an empty set of batches, with a clear error,
leaving the model unchanged.
"""

from __future__ import annotations

import contextlib
import copy

from . import nn


def bn_layers(model):
    """Every BatchNorm layer of ``model``, in forward order.

    The functions here act on Algorithm 1's layers (:class:`minibn.nn.BatchNorm` and its
    subclasses: BatchNorm1d/2d, GhostBatchNorm, SyncBatchNorm) and their running mean and
    variance; BatchRenorm, Memorized BN and TransNorm keep other statistics and are not
    BatchNorm.

    Parameters
    ----------
    model : minibn.nn.Module
        The network.

    Returns
    -------
    list of minibn.nn.BatchNorm
    """
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm)]


def _require_bn(model, where, running_stats=True):
    """The model's BatchNorm layers; ValueError if there are none or (when
    ``running_stats``) one keeps no running statistics, before anything is changed."""
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{where}: the model has no BatchNorm layer")
    if running_stats:
        for i, bn in enumerate(layers):
            if not bn.track_running_stats:
                raise ValueError(f"{where}: BatchNorm layer {i} ({bn!r}) has track_running_stats=False: it keeps "
                                 f"no running statistics to work on")
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
    """Algorithm 2, steps 8-10: ``E[x] <- E_B[mu_B]``, ``Var[x] <- m/(m-1) E_B[sigma_B^2]``, per BN layer.

    The batches go through the network as in training (each BN normalizes with its batch
    statistics, as N_tr_BN does), while everything else is fixed: no parameter changes
    and every non-BN layer (e.g. Dropout) runs in eval mode. Each BN layer averages the
    batch means and unbiased batch variances over all batches with equal weight (for
    batches of one size m this is exactly m/(m-1) E_B[sigma_B^2]).

    Parameters
    ----------
    model : minibn.nn.Module
        A network with BatchNorm layers that keep running statistics.
    batches : iterable
        Inputs x (or tuples (x, labels, ...), whose first element is used), on the model's
        device.

    Returns
    -------
    minibn.nn.Module
        The model, in eval mode.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, one has ``track_running_stats=False`` or is
        frozen (:func:`freeze`: it would keep its inference transform and learn nothing),
        or there are no batches. On any error the model is left as it was.
    """
    layers = _require_bn(model, "population_statistics")
    for i, bn in enumerate(layers):
        if bn.frozen:
            raise ValueError(f"population_statistics: BatchNorm layer {i} ({bn!r}) is frozen (adapt.freeze), so "
                             f"its running statistics cannot change; call adapt.unfreeze(model) first")

    def run():
        momenta = [bn.momentum for bn in layers]
        for bn in layers:
            bn.train()
            bn.momentum = None  # cumulative average: factor 1/t for the t-th batch
            bn.num_batches_tracked = 0
        try:
            for x in _batch_inputs(batches, "population_statistics"):
                model(x)
        finally:
            for bn, mom in zip(layers, momenta):
                bn.momentum = mom

    return _guarded(model, run)


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
    """A copy of ``model`` with each BN that directly follows a Linear or Conv2d folded into it.

    Batchnorm freezing in its folded form (Suzuki et al. 2020, Sec. 3.1). With
    ``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``,
    the pair ``x -> W x + b -> BN`` becomes ``x -> (scale * W) x + (scale * b + shift)``:
    the same eval-mode outputs, one layer fewer. BN layers that follow anything else stay
    in place. Works through nested Sequentials.

    Parameters
    ----------
    model : minibn.nn.Sequential
        The network; not changed.

    Returns
    -------
    minibn.nn.Sequential
        The folded copy, in eval mode.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, one has ``track_running_stats=False``, or no
        BatchNorm directly follows a Linear or Conv2d with as many outputs.
    TypeError
        If the model is not an ``nn.Sequential``.
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
            if (isinstance(layer, nn.BatchNorm) and follows_affine
                    and out[-1].weight.shape[0] == layer.num_features):
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


# -- domain adaptation ----------------------------------------------------------------------

class _Capture:
    """Record the input of one layer (by wrapping its forward) while batches pass."""

    def __init__(self, layer):
        self.layer, self.inputs = layer, []

    def __enter__(self):
        original = self.layer.forward

        def forward(x, *a, **k):
            self.inputs.append(x)
            return original(x, *a, **k)

        self.layer.forward = forward
        return self

    def __exit__(self, *exc):
        del self.layer.forward  # back to the class's method


def _exact_stats(arrays):
    """Mean and unbiased variance per channel, (C,), over all values of all arrays (N_i, C, *):
    BN's batch moments (Algorithm 1, lines 1-2) of their concatenation, times m / (m - 1)."""
    from .backend import get_array_module
    from .functional import batch_moments
    x = get_array_module(arrays[0]).concatenate(arrays)
    mean, var = batch_moments(x)
    m = x.size // x.shape[1]
    return mean, var * (m / max(m - 1, 1))


def _layer_inputs(model, layer, inputs):
    """The inputs that reach ``layer`` when ``inputs`` pass through ``model`` in eval mode."""
    with model.mode(training=False), _Capture(layer) as cap:
        for x in inputs:
            model(x)
    return cap.inputs


def _guarded(model, run):
    """Call run() with the model in eval mode; on any error put the model back as it was
    (parameters, buffers and every layer's mode) and re-raise. Returns the model, in eval mode."""
    saved = copy.deepcopy(model.state_dict())
    try:
        with model.mode(training=False):
            run()
    except BaseException:
        model.load_state_dict(saved, check_values=False)  # as it was, NaN included
        raise
    return model.eval()


def adabn(model, batches):
    """AdaBN (Li et al. 2016): each BN layer's running statistics := the exact statistics of its target input.

    Layer by layer: the statistics of layer k (mean and unbiased variance over all the
    values of all batches) are taken with layers 1..k-1 already adapted, the whole network
    in inference mode.

    Parameters
    ----------
    model : minibn.nn.Module
        A network with BatchNorm layers that keep running statistics.
    batches : iterable
        Inputs x (or tuples (x, labels, ...), whose first element is used), on the model's
        device.
        Target data; all are kept in memory.

    Returns
    -------
    minibn.nn.Module
        The model, in eval mode.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, one has ``track_running_stats=False``, or
        there are no batches. On any error the model is left as it was.
    """
    layers = _require_bn(model, "adabn")
    inputs = list(_batch_inputs(batches, "adabn"))

    def run():
        for bn in layers:
            mean, var = _exact_stats(_layer_inputs(model, bn, inputs))
            bn.running_mean = mean.astype(bn.running_mean.dtype)
            bn.running_var = var.astype(bn.running_var.dtype)

    return _guarded(model, run)


def iit(model, batches):
    """The inference-invariant transformation (Suzuki et al. 2020, Eq. 3-6).

    For each BN layer, estimate mu_adapt, sigma^2_adapt (mean and unbiased variance) of
    its input on the target ``batches`` with the whole network in inference mode, then set::

        gamma_hat = gamma * sqrt(sigma^2_adapt + eps) / sqrt(sigma^2_base + eps)      (Eq. 4)
        beta_hat  = gamma * (mu_adapt - mu_base) / sqrt(sigma^2_base + eps) + beta     (Eq. 5)

    and the running statistics to mu_adapt, sigma^2_adapt. Inference outputs are exactly
    unchanged (Eq. 3), so all statistics can be taken in one pass before any change;
    training mode now normalizes target batches with statistics close to the running
    ones (Eq. 6), so fine-tuning starts without a train/inference mismatch.

    Parameters
    ----------
    model : minibn.nn.Module
        A network with affine BatchNorm layers that keep running statistics.
    batches : iterable
        Inputs x (or tuples (x, labels, ...), whose first element is used), on the model's
        device.
        Target data; all are kept in memory.

    Returns
    -------
    minibn.nn.Module
        The model, in eval mode.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, one has ``track_running_stats=False`` or
        ``affine=False``, or there are no batches. On any error the model is left as it was.
    """
    layers = _require_bn(model, "iit")
    for bn in layers:
        if not bn.affine:
            raise ValueError("iit: every BatchNorm layer must have affine=True (gamma and beta are adjusted)")
    inputs = list(_batch_inputs(batches, "iit"))

    def run():
        stats = []
        with contextlib.ExitStack() as stack:
            caps = [stack.enter_context(_Capture(bn)) for bn in layers]
            for x in inputs:
                model(x)
        for cap in caps:
            stats.append(_exact_stats(cap.inputs))
        for bn, (mu_a, var_a) in zip(layers, stats):
            sd_base = (bn.running_var + bn.eps) ** 0.5
            sd_adapt = (var_a + bn.eps) ** 0.5
            g, b = bn.gamma.data, bn.beta.data
            bn.gamma.data = (g * sd_adapt / sd_base).astype(g.dtype)
            bn.beta.data = (g * (mu_a - bn.running_mean) / sd_base + b).astype(b.dtype)
            bn.running_mean = mu_a.astype(bn.running_mean.dtype)
            bn.running_var = var_a.astype(bn.running_var.dtype)

    return _guarded(model, run)


def freeze(model):
    """Batchnorm freezing (Suzuki et al. 2020, Sec. 3.1): every BN layer keeps its inference transform during training.

    gamma, beta and the running statistics stay fixed (no gradient is accumulated into
    gamma and beta, so an optimizer leaves them alone). :func:`fold` is the same network
    with the frozen BN merged into the layer before it.

    Parameters
    ----------
    model : minibn.nn.Module
        A network with BatchNorm layers that keep running statistics; changed in place.

    Returns
    -------
    minibn.nn.Module
        The model; :func:`unfreeze` undoes it.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, or one has ``track_running_stats=False``.
    """
    for bn in _require_bn(model, "freeze"):
        bn.frozen = True
    return model


def unfreeze(model):
    """Undo :func:`freeze`: every BN layer normalizes with batch statistics in training again.

    Parameters
    ----------
    model : minibn.nn.Module
        A network with BatchNorm layers that keep running statistics; changed in place.

    Returns
    -------
    minibn.nn.Module
        The model.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, or one has ``track_running_stats=False``.
    """
    for bn in _require_bn(model, "unfreeze"):
        bn.frozen = False
    return model


def _gaussian_kl(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)) elementwise: (v1/v2 + (m1-m2)^2/v2 - 1 + log(v2/v1)) / 2."""
    from .backend import get_array_module
    xp = get_array_module(m1)
    return 0.5 * (v1 / v2 + (m1 - m2) ** 2 / v2 - 1.0 + xp.log(v2 / v1))


def bn_mismatch(model, batches, eps=1e-12):
    """The train/inference mismatch of each BN layer, as a KL divergence (the analysis of Suzuki et al. 2020, Table 2).

    Each layer's input is taken with the network in inference mode (the layers before it
    are fixed, as in the IIT paper's Table 2). Its output is then computed both ways: in
    training mode (each batch normalized with its own statistics) and in inference mode
    (the running statistics; a ghost BN layer's training mode normalizes each virtual
    batch by its own statistics). Estimator: per channel, a Gaussian is fitted (mean and
    variance over all outputs of all batches) to each of the two output distributions;
    the value is KL(P_train || P_inference) of the two Gaussians, averaged over channels.
    It is 0 when both modes give the same output distribution.

    Parameters
    ----------
    model : minibn.nn.Module
        A network with BatchNorm layers that keep running statistics; not changed.
    batches : iterable
        Inputs x (or tuples (x, labels, ...), whose first element is used), on the model's
        device.
        Each must have more than one value per channel.
    eps : float, optional
        Added to both variances, so that a constant channel gives a finite value.

    Returns
    -------
    list of dict
        One per BN layer, in forward order: {"layer": index among the BN layers, "kl": float}.

    Raises
    ------
    ValueError
        If the model has no BatchNorm layer, one has ``track_running_stats=False``, there
        are no batches, or a batch has one value per channel.
    """
    layers = _require_bn(model, "bn_mismatch")
    inputs = list(_batch_inputs(batches, "bn_mismatch"))
    from . import functional as F
    from .backend import asnumpy
    with model.mode(training=False):
        with contextlib.ExitStack() as stack:
            caps = [stack.enter_context(_Capture(bn)) for bn in layers]
            for x in inputs:
                model(x)
        out = []
        for i, (bn, cap) in enumerate(zip(layers, caps)):
            g, b = (bn.gamma.data, bn.beta.data) if bn.affine else (None, None)
            train_out, infer_out = [], []
            for h in cap.inputs:
                if isinstance(bn, nn.GhostBatchNorm):  # training mode normalizes each virtual batch by its own
                    train_out.append(F.ghost_batch_norm_forward(h, g, b, bn.virtual_batch_size, bn.eps)[0])
                else:
                    train_out.append(F.batch_norm_forward(h, g, b, bn.eps)[0])
                infer_out.append(F.batch_norm_inference_forward(h, g, b, bn.running_mean, bn.running_var, bn.eps)[0])
            m1, v1 = _exact_stats(train_out)
            m2, v2 = _exact_stats(infer_out)
            kl = _gaussian_kl(m1.astype("float64"), v1.astype("float64") + eps, m2.astype("float64"),
                              v2.astype("float64") + eps)
            out.append({"layer": i, "kl": float(asnumpy(kl).mean())})
    return out
