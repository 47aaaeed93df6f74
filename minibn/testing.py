"""What the checks of every layer are generated from: one :class:`LayerSpec` per layer class.

Like ``numpy.testing``, this module is for tests, not for the running package: the layers
never import it. It ships with the package because ``minibn gradcheck``
(:func:`minibn.gradcheck.gradcheck_all`) builds its table from these specs at run time.

A spec says how to build a small instance of the layer with non-trivial state, the input
shapes to check it on, the inputs it must refuse, its variants and its PyTorch counterpart.
From the specs come, for every implementation installed on the machine (the
registrations of :mod:`minibn.registry`): the gradient-check table
(:func:`layer_cases`, ``minibn gradcheck``, tests/test_registry.py), the bad-input tests,
the float64 comparison with PyTorch, and the contract tests (tests/test_contract.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy

from . import backend, distributed, nn
from .dispatch import available


@dataclass(frozen=True)
class Torch:
    """A layer's PyTorch counterpart: ``make(torch, ours)`` builds it with our layer's
    arguments; ``params`` and ``buffers`` map our names to PyTorch's."""

    make: Callable
    params: dict = field(default_factory=lambda: {"gamma": "weight", "beta": "bias"})
    buffers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LayerSpec:
    """How to check one layer class.

    Args:
        cls: the layer class.
        family: what kind of layer ("batchnorm", "renorm", "memorized", "transnorm",
            "relatives", "linear", "conv", "pooling", "activation", ...).
        make: ``make(shape, **kwargs) -> layer`` for inputs of ``shape``, with state that
            is not the trivial initial one (running statistics, a filled memory, ...).
        shapes: the input shapes of the gradient check (small: elementwise checks).
        op: the registered operation, for layers with ``impl=`` (one case per available
            implementation); None for layers with one implementation.
        variants: {label: kwargs} checked besides the default arguments; a label that
            starts with "reference:" is checked with the reference only.
        modes: the modes to check ("train", "eval"); ``eval_only`` variants likewise.
        offset: inputs 5 * randn + 12 (True: a mean far from 0) or randn.
        bad_shapes: input shapes the layer made for ``shapes[0]`` must refuse.
        torch: the PyTorch counterpart, if any (:class:`Torch`).
        frozen_for: ``frozen_for(layer, x) -> layer``: the function the backward really
            differentiates, where the layer treats something as a constant (TransNorm's alpha).
        installed: ``installed() -> bool``, for a layer that needs an optional package
            (SyncBatchNorm: mpi4py); without it the layer has no cases to check.
        needs: what is missing then, and how to install it (``minibn gradcheck`` says it).
    """

    cls: type
    family: str
    make: Callable
    shapes: tuple
    op: str = None
    variants: dict = field(default_factory=dict)
    modes: tuple = ("train", "eval")
    offset: bool = True
    bad_shapes: tuple = ()
    torch: Torch = None
    frozen_for: Callable = None
    installed: Callable = None
    needs: str = None  # what ``installed`` looks for, said when the layer is not checked

    @property
    def name(self):
        return self.cls.__name__

    def is_installed(self):
        """Whether what the layer needs is installed here (``installed``; True when it needs nothing)."""
        return self.installed is None or self.installed()

    def impls(self):
        """The implementations to check here: every one installed (None: the layer has one)."""
        if not self.is_installed():
            return ()
        return available(self.op) if self.op else (None,)

    def configurations(self, impl):
        """[(label, kwargs)]: the default arguments ("") and the variants that run with ``impl``."""
        out = []
        for label, kwargs in {"": {}, **self.variants}.items():
            if label.startswith("reference:"):
                if impl not in (None, "reference"):
                    continue
                label = label[len("reference:"):]
            out.append((label, kwargs))
        return out


@dataclass(frozen=True)
class LayerCase:
    """One row of the gradient-check table: a layer, an implementation, a variant, a shape."""

    spec: LayerSpec
    impl: str
    variant: str
    kwargs: dict
    shape: tuple
    modes: tuple

    @property
    def layer(self):
        return self.spec.name

    @property
    def family(self):
        return self.spec.family

    @property
    def name(self):
        parts = [self.layer, str(self.shape)]
        if self.impl is not None:
            parts.append(self.impl)
        if self.variant:
            parts.append(self.variant)
        return " ".join(parts)

    def make_layer(self):
        kw = dict(self.kwargs)
        if self.impl is not None:
            kw["impl"] = self.impl
        return self.spec.make(self.shape, **kw)

    def make_input(self, rng):
        x = rng.standard_normal(self.shape)
        return 5.0 * x + 12.0 if self.spec.offset else x


def _rng(seed):
    return numpy.random.default_rng(seed)


def _on_device_of(values, like):
    return backend.to_device(values.astype(like.dtype), backend.device_of(like))


def _with_stats(layer):
    """Running statistics that are not the trivial 0 / 1, and gamma, beta (each where the
    layer has it) not 1 / 0: a wrong gradient cannot hide behind a neutral value."""
    for name in ("running_mean", "running_var"):
        arr = getattr(layer, name, None)
        if arr is not None:
            setattr(layer, name, _on_device_of(_rng(1).uniform(0.5, 2.0, arr.shape), arr))
    if getattr(layer, "gamma", None) is not None:
        layer.gamma.data = _on_device_of(_rng(2).uniform(0.5, 1.5, layer.gamma.shape), layer.gamma.data)
    if getattr(layer, "beta", None) is not None:
        layer.beta.data = layer.beta.data * 0 + 0.3
    return layer


def _renorm(cls):
    """BatchRenorm with moving statistics far from the batch ones (std 100 vs 5, mean -1000
    vs 12), so every r and d is clipped: locally constant, and the stop-gradient backward is
    then the true derivative. (Unclipped r and d are checked with r and d frozen in
    tests/nn/test_renorm.py.)"""
    def make(shape, **kw):
        layer = _with_stats(cls(shape[1], r_max=1.5, d_max=0.5, **kw))
        layer.running_mean = layer.running_mean * 0 - 1000.0
        layer.running_std = layer.running_std * 0 + 100.0
        return layer
    return make


def _memorized(cls):
    """Memorized BN with three batches (of different sizes) already in memory."""
    def make(shape, **kw):
        C, per_row = shape[1], int(numpy.prod(shape[2:]))
        layer = _with_stats(cls(C, memory_size=4, lam=0.7, eta=0.9, **kw))
        r = _rng(4)
        for n in (5, 8, 3):
            layer.push(backend.to_active(r.normal(12, 5, C)), backend.to_active(r.uniform(10, 40, C)), n * per_row)
        return layer
    return make


def _transnorm(cls):
    """TransNorm whose source and target running statistics differ (a non-uniform alpha in eval)."""
    def make(shape, **kw):
        layer = cls(shape[1], **kw)
        r = _rng(5)
        for dom in ("source", "target"):
            for stat, lo, hi in (("mean", -2.0, 14.0), ("var", 0.5, 30.0)):
                name = f"running_{stat}_{dom}"
                setattr(layer, name, _on_device_of(r.uniform(lo, hi, shape[1]), getattr(layer, name)))
        return _with_stats(layer)
    return make


def _freeze_alpha(layer, x):
    """TransNorm's backward treats alpha as a constant: check the function with alpha held
    at its value for this input."""
    probe = copy.deepcopy(layer).astype(numpy.float64)
    probe(x)
    layer.fixed_alpha = backend.asnumpy(probe.last_alpha)
    return layer


def _bn(cls):
    return lambda shape, **kw: _with_stats(cls(shape[1], **kw))


def _sync_bn(shape, **kw):
    """SyncBatchNorm over one rank (this process alone: mpi4py without mpiexec); the tests
    under mpiexec check it over 2 and 4."""
    kw.pop("impl", None)  # one implementation
    return _with_stats(nn.SyncBatchNorm(shape[1], comm=distributed.single(), **kw))


def _ghost_bn(cls, virtual_batch_size=4):
    return lambda shape, **kw: _with_stats(cls(shape[1], virtual_batch_size, **kw))


def _torch_ghost_bn(name):
    """PyTorch's BatchNorm applied to each virtual batch in turn: what GhostBatchNorm must equal,
    running statistics included."""
    def make(T, ours):
        class Ghost(T.nn.Module):
            def __init__(self):
                super().__init__()
                self.bn = getattr(T.nn, name)(ours.num_features, eps=ours.eps, momentum=ours.momentum,
                                              affine=ours.affine, track_running_stats=ours.track_running_stats)

            def forward(self, x):
                return T.cat([self.bn(part) for part in x.split(ours.virtual_batch_size)])

        ghost = Ghost()
        for our_name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            setattr(Ghost, our_name, property(lambda self, n=our_name: getattr(self.bn, n)))
        return ghost
    return Torch(make, buffers={"running_mean": "running_mean", "running_var": "running_var"})


def _torch_bn(name):
    return Torch(lambda T, l: getattr(T.nn, name)(l.num_features, eps=l.eps, momentum=l.momentum, affine=l.affine,
                                                   track_running_stats=l.track_running_stats),
                 buffers={"running_mean": "running_mean", "running_var": "running_var"})


SPECS = [
    LayerSpec(nn.Linear, "linear", lambda s, **kw: nn.Linear(s[1], 4, **kw), ((3, 5),), offset=False,
              variants={"bias=False": {"bias": False}}, bad_shapes=((3, 4), (3, 5, 1))),
    LayerSpec(nn.Conv2d, "conv", lambda s, **kw: nn.Conv2d(s[1], 3, 3, **kw), ((2, 2, 5, 5),), op="conv2d",
              offset=False,
              variants={"stride=2": {"stride": 2}, "padding=1": {"padding": 1}},
              bad_shapes=((2, 3, 5, 5), (2, 5, 5), (1, 2, 2, 2)),
              torch=Torch(lambda T, l: T.nn.Conv2d(l.in_channels, l.out_channels, l.kernel_size, l.stride,
                                                   l.padding, bias=l.bias is not None),
                          params={"weight": "weight", "bias": "bias"})),
    LayerSpec(nn.MaxPool2d, "pooling", lambda s, **kw: nn.MaxPool2d(2, **kw), ((2, 2, 4, 4),), op="max_pool2d",
              offset=False,
              variants={"stride=1 padding=1": {"stride": 1, "padding": 1}}, bad_shapes=((2, 4),)),
    LayerSpec(nn.AvgPool2d, "pooling", lambda s, **kw: nn.AvgPool2d(2, **kw), ((2, 2, 4, 4),), offset=False,
              variants={"stride=1 padding=1": {"stride": 1, "padding": 1}}, bad_shapes=((2, 4),)),
    LayerSpec(nn.Flatten, "reshape", lambda s, **kw: nn.Flatten(), ((2, 2, 3, 3),), offset=False),
    LayerSpec(nn.ReLU, "activation", lambda s, **kw: nn.ReLU(**kw), ((4, 5), (2, 3, 4)), op="relu", offset=False,
              torch=Torch(lambda T, l: T.nn.ReLU(), params={})),
    LayerSpec(nn.Sigmoid, "activation", lambda s, **kw: nn.Sigmoid(**kw), ((4, 5), (2, 3, 4)), op="sigmoid",
              offset=False, torch=Torch(lambda T, l: T.nn.Sigmoid(), params={})),
    LayerSpec(nn.Tanh, "activation", lambda s, **kw: nn.Tanh(), ((4, 5),), offset=False),
    LayerSpec(nn.Dropout, "activation", lambda s, **kw: nn.Dropout(0.3), ((4, 5),), offset=False),
    LayerSpec(nn.GradientReversal, "activation", lambda s, **kw: nn.GradientReversal(0.7), ((4, 5),), offset=False),
    LayerSpec(nn.BatchNorm1d, "batchnorm", _bn(nn.BatchNorm1d), ((6, 4), (2, 3, 4)), op="batch_norm",
              variants={"affine=False": {"affine": False}, "momentum=None": {"momentum": None},
                        "track_running_stats=False": {"track_running_stats": False},
                        "reference:backward=paper": {"backward": "paper"}},
              bad_shapes=((6, 5), (6, 4, 2, 2), (6,)), torch=_torch_bn("BatchNorm1d")),
    LayerSpec(nn.BatchNorm2d, "batchnorm", _bn(nn.BatchNorm2d), ((2, 3, 3, 3), (1, 2, 3, 3)), op="batch_norm",
              variants={"affine=False": {"affine": False}}, bad_shapes=((2, 4, 3, 3), (2, 3, 3)),
              torch=_torch_bn("BatchNorm2d")),
    LayerSpec(nn.SyncBatchNorm, "batchnorm", _sync_bn, ((6, 4), (2, 3, 4)),
              variants={"affine=False": {"affine": False}, "track_running_stats=False": {"track_running_stats": False}},
              bad_shapes=((6, 5), (6,)), torch=_torch_bn("BatchNorm1d"), installed=distributed.available,
              needs="mpi4py and an MPI library: pip install \"minibn[mpi]\""),
    LayerSpec(nn.GhostBatchNorm1d, "batchnorm", _ghost_bn(nn.GhostBatchNorm1d), ((10, 4), (6, 3, 4)),
              op="ghost_batch_norm",
              variants={"affine=False": {"affine": False}, "momentum=None": {"momentum": None},
                        "track_running_stats=False": {"track_running_stats": False}},
              bad_shapes=((10, 5), (10, 4, 2, 2), (10,)), torch=_torch_ghost_bn("BatchNorm1d")),
    LayerSpec(nn.GhostBatchNorm2d, "batchnorm", _ghost_bn(nn.GhostBatchNorm2d, 2), ((5, 3, 2, 2),),
              op="ghost_batch_norm", variants={"affine=False": {"affine": False}},
              bad_shapes=((5, 4, 2, 2), (5, 3, 2)), torch=_torch_ghost_bn("BatchNorm2d")),
    LayerSpec(nn.BatchRenorm1d, "renorm", _renorm(nn.BatchRenorm1d), ((6, 4),), op="batch_renorm",
              bad_shapes=((6, 5), (6, 4, 2, 2))),
    LayerSpec(nn.BatchRenorm2d, "renorm", _renorm(nn.BatchRenorm2d), ((2, 3, 3, 3),), op="batch_renorm",
              bad_shapes=((2, 4, 3, 3), (2, 3))),
    LayerSpec(nn.MemorizedBatchNorm1d, "memorized", _memorized(nn.MemorizedBatchNorm1d), ((6, 4), (2, 3, 4)),
              op="memorized_batch_norm", bad_shapes=((6, 5), (6, 4, 2, 2))),
    LayerSpec(nn.MemorizedBatchNorm2d, "memorized", _memorized(nn.MemorizedBatchNorm2d), ((2, 3, 3, 3),),
              op="memorized_batch_norm", bad_shapes=((2, 4, 3, 3), (2, 3))),
    LayerSpec(nn.TransNorm1d, "transnorm", _transnorm(nn.TransNorm1d), ((8, 4), (7, 3)),
              frozen_for=_freeze_alpha, bad_shapes=((8, 5), (8, 4, 2, 2))),
    LayerSpec(nn.TransNorm2d, "transnorm", _transnorm(nn.TransNorm2d), ((4, 3, 2, 3),),
              frozen_for=_freeze_alpha, bad_shapes=((4, 4, 2, 3), (4, 3))),
    LayerSpec(nn.LayerNorm, "relatives", lambda s, **kw: _with_stats(nn.LayerNorm(s[1:], **kw)),
              ((4, 5), (2, 2, 3, 3)), op="layer_norm", bad_shapes=((4, 6), (4, 5, 1)),
              torch=Torch(lambda T, l: T.nn.LayerNorm(l.normalized_shape, eps=l.eps,
                                                      elementwise_affine=l.affine))),
    LayerSpec(nn.RMSNorm, "relatives", lambda s, **kw: _with_stats(nn.RMSNorm(s[1:], **kw)),
              ((4, 5), (2, 2, 3, 3)), op="rms_norm", bad_shapes=((4, 6), (4, 5, 1)),
              variants={"elementwise_affine=False": {"elementwise_affine": False}, "eps=1e-3": {"eps": 1e-3}},
              torch=Torch(lambda T, l: T.nn.RMSNorm(l.normalized_shape, eps=l.eps,
                                                    elementwise_affine=l.affine), params={"gamma": "weight"})),
    LayerSpec(nn.GroupNorm, "relatives", lambda s, **kw: _with_stats(nn.GroupNorm(2, s[1], **kw)),
              ((2, 4, 3, 3), (5, 4)), op="group_norm", bad_shapes=((2, 6, 3, 3), (4,)),
              torch=Torch(lambda T, l: T.nn.GroupNorm(l.num_groups, l.num_features, eps=l.eps, affine=l.affine))),
    LayerSpec(nn.InstanceNorm2d, "relatives",
              lambda s, **kw: _with_stats(nn.InstanceNorm2d(s[1], **{"affine": True, **kw})),
              ((2, 3, 3, 4),), op="instance_norm", variants={"affine=False": {"affine": False}},
              bad_shapes=((2, 4, 3, 4), (2, 3, 12)),
              torch=Torch(lambda T, l: T.nn.InstanceNorm2d(l.num_features, eps=l.eps, affine=l.affine))),
]


def spec(cls):
    """The :class:`LayerSpec` of a layer class (KeyError if it has none)."""
    for s in SPECS:
        if s.cls is cls:
            return s
    raise KeyError(f"{cls.__name__} has no LayerSpec in minibn.testing.SPECS")


def layer_cases(specs=None):
    """Every row of the gradient-check table: each spec x each installed implementation x
    its default arguments and variants x its shapes."""
    cases = []
    for s in SPECS if specs is None else specs:
        for impl in s.impls():
            for label, kwargs in s.configurations(impl):
                for shape in s.shapes:
                    cases.append(LayerCase(s, impl, label, kwargs, shape, s.modes))
    return cases
