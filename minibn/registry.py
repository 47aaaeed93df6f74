"""Every registration in one place: operations -> implementations, layers -> their checks.

1. **Implementations** (:func:`minibn.dispatch.register`). For each operation, the ways to
   compute it, fastest first (``impl="auto"`` takes the first that applies); the reference
   (the teaching path, :mod:`minibn.functional`) is always last. Functions are named by
   "module:function" path and imported on first use.

2. **Layers** (:class:`LayerSpec`). For each layer class, how to build a small instance
   with non-trivial state, the inputs to check it on, the inputs it must refuse, and its
   PyTorch counterpart. The gradient-check table (``minibn gradcheck`` and the test
   suite), the bad-input tests and the PyTorch comparison are generated from these
   specs, for every implementation available on the machine.

A new normalization layer is its functional (teaching path), its layer, its tests, and
its lines here (docs/architecture.md walks through it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy

from . import backend, nn
from .dispatch import available, register
from .kernels import cuda_bn, numba_cpu, numpy_fast

_F = "minibn.functional."
_K = "minibn.kernels."
_NUMBA = dict(applies=numba_cpu.applies, check=numba_cpu.check, installed=numba_cpu.available)
_CUDA = dict(applies=cuda_bn.applies, check=cuda_bn.check, installed=cuda_bn.installed)


def _gpu(op, name):
    """The numba-cuda kernels of ``op``, registered as "fused" for CuPy arrays."""
    register(op, "fused", f"{_K}cuda_bn:{name}_forward_cuda", f"{_K}cuda_bn:{name}_backward_cuda", **_CUDA)

# -- 1. implementations ----------------------------------------------------------------------

# BatchNorm1d / BatchNorm2d (Algorithm 1)
register("batch_norm", "fused", _K + "fused_bn:batch_norm_forward_fused", _K + "fused_bn:batch_norm_backward_fused",
         **_NUMBA)
_gpu("batch_norm", "batch_norm")
register("batch_norm", "fast", _K + "numpy_fast:batch_norm_forward_fast", _K + "numpy_fast:batch_norm_backward_fast",
         applies=numpy_fast.applies, check=numpy_fast.check, min_size=65536, workspace=True)
register("batch_norm", "reference", _F + "batchnorm:batch_norm_forward", _F + "batchnorm:batch_norm_backward")
# BatchNorm with backward="paper": the six chain-rule formulas need the reference's cache
register("batch_norm_paper", "reference", _F + "batchnorm:batch_norm_forward",
         _F + "batchnorm:batch_norm_backward_paper")
# BatchRenorm1d / 2d
register("batch_renorm", "fused", _K + "fused_bn:batch_renorm_forward_fused",
         _K + "fused_bn:batch_renorm_backward_fused", **_NUMBA)
_gpu("batch_renorm", "batch_renorm")
register("batch_renorm", "reference", _F + "renorm:batch_renorm_forward", _F + "renorm:batch_renorm_backward")
# MemorizedBatchNorm1d / 2d
register("memorized_batch_norm", "fused", _K + "fused_bn:memorized_batch_norm_forward_fused",
         _K + "fused_bn:memorized_batch_norm_backward_fused", **_NUMBA)
_gpu("memorized_batch_norm", "memorized_batch_norm")
register("memorized_batch_norm", "reference", _F + "memorized:memorized_batch_norm_forward",
         _F + "memorized:memorized_batch_norm_backward")
# TransNorm1d / 2d
register("transnorm", "reference", _F + "transnorm:transnorm_forward", _F + "transnorm:transnorm_backward")
# LayerNorm, GroupNorm, InstanceNorm2d
register("layer_norm", "fused", _K + "fused_rows:layer_norm_forward_fused", _K + "fused_rows:layer_norm_backward_fused",
         **_NUMBA)
_gpu("layer_norm", "layer_norm")
register("layer_norm", "reference", _F + "layernorm:layer_norm_forward", _F + "layernorm:layer_norm_backward")
register("group_norm", "fused", _K + "fused_rows:group_norm_forward_fused", _K + "fused_rows:group_norm_backward_fused",
         **_NUMBA)
_gpu("group_norm", "group_norm")
register("group_norm", "reference", _F + "groupnorm:group_norm_forward", _F + "groupnorm:group_norm_backward")
register("instance_norm", "fused", _K + "fused_rows:instance_norm_forward_fused",
         _K + "fused_rows:instance_norm_backward_fused", **_NUMBA)
_gpu("instance_norm", "instance_norm")
register("instance_norm", "reference", _F + "groupnorm:instance_norm_forward", _F + "groupnorm:instance_norm_backward")
# MaxPool2d, Conv2d
register("max_pool2d", "fused", _K + "fused_pool:max_pool2d_forward_fused", _K + "fused_pool:max_pool2d_backward_fused",
         **_NUMBA)
register("max_pool2d", "reference", _F + "pooling:max_pool2d_forward", _F + "pooling:max_pool2d_backward")
register("conv2d", "fused", _K + "fused_conv:conv2d_forward_fused", _K + "fused_conv:conv2d_backward_fused", **_NUMBA)
register("conv2d", "reference", _F + "conv:conv2d_forward", _F + "conv:conv2d_backward")



# -- 2. layers ---------------------------------------------------------------------------------

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

    @property
    def name(self):
        return self.cls.__name__

    def impls(self):
        """The implementations to check here: every one installed (None: the layer has one)."""
        if self.installed is not None and not self.installed():
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
    """Running statistics that are not the trivial 0 / 1, and gamma, beta not 1 / 0."""
    for name in ("running_mean", "running_var"):
        arr = getattr(layer, name, None)
        if arr is not None:
            setattr(layer, name, _on_device_of(_rng(1).uniform(0.5, 2.0, arr.shape), arr))
    if getattr(layer, "gamma", None) is not None:
        layer.gamma.data = _on_device_of(_rng(2).uniform(0.5, 1.5, layer.gamma.shape), layer.gamma.data)
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
    import copy
    probe = copy.deepcopy(layer).astype(numpy.float64)
    probe(x)
    layer.fixed_alpha = backend.asnumpy(probe.last_alpha)
    return layer


def _bn(cls):
    return lambda shape, **kw: _with_stats(cls(shape[1], **kw))


def _mpi_installed():
    from . import distributed
    return distributed.available()


def _sync_bn(shape, **kw):
    """SyncBatchNorm over one rank (this process alone: mpi4py without mpiexec); the tests
    under mpiexec check it over 2 and 4."""
    from . import distributed
    kw.pop("impl", None)  # one implementation
    return _with_stats(nn.SyncBatchNorm(shape[1], comm=distributed.single(), **kw))


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
    LayerSpec(nn.ReLU, "activation", lambda s, **kw: nn.ReLU(), ((4, 5),), offset=False),
    LayerSpec(nn.Sigmoid, "activation", lambda s, **kw: nn.Sigmoid(), ((4, 5),), offset=False),
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
              bad_shapes=((6, 5), (6,)), torch=_torch_bn("BatchNorm1d"), installed=_mpi_installed),
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
    raise KeyError(f"{cls.__name__} has no LayerSpec in minibn.registry")


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
