"""Parameter, Module and Sequential: state on top of the pure functions.

A Module's ``forward(x)`` caches what its ``backward(dy)`` needs; ``backward`` returns
dx and *accumulates* into ``p.grad`` for each of its parameters (call ``zero_grad``
between steps). Nothing is differentiated automatically.

Parameters, buffers and child modules are found by looking at the attributes: a
:class:`Parameter` attribute is a parameter, a :class:`Module` attribute a child, and
the attribute names listed in a class's ``_buffers`` are buffers (state that is saved
and moved but not trained, e.g. BN's running statistics).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy

from .. import backend, dispatch
from .._checks import PLAIN_ARRAYS, plain_array


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (None until a backward)."""

    __slots__ = ("data", "grad", "_buffer")

    def __init__(self, data):
        self.data = data
        self.grad = None
        self._buffer = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def grad_buffer(self):
        """An array like ``data`` (shape, dtype, memory layout, device), kept between steps, for
        a layer to write the first gradient of a step into: a fresh large array every step
        costs page faults, and an optimizer may place this one inside its flat gradient
        array (:class:`minibn.optim.SGD`). So a gradient stored here is overwritten by the
        backward after the next ``zero_grad``: copy a ``.grad`` you want to keep."""
        if self._buffer is None or not backend.same_layout(self._buffer, self.data):
            self._buffer = backend.get_array_module(self.data).empty_like(self.data)
        return self._buffer

    def set_grad_buffer(self, b):
        """Use ``b``, an array like ``data``, as :meth:`grad_buffer` (an optimizer's flat gradient view)."""
        self._buffer = b

    def accumulate(self, g):
        """grad += g (the first call stores g)."""
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    def __repr__(self):
        where = backend.device_of(self.data)
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, device={where})"


def _is_array(v):
    return hasattr(v, "shape") and hasattr(v, "dtype")


class Module:
    """Base class: subclasses implement ``forward(x)`` and ``backward(dy)``."""

    _buffers: tuple = ()
    #: True when ``backward(dy, need_dx=False)`` can skip computing dx (Linear, Conv2d).
    can_skip_dx = False

    def __init__(self):
        self.training = True

    def __call__(self, *args, **kwargs):
        y = self.forward(*args, **kwargs)
        self._y_shape = tuple(getattr(y, "shape", ()))  # what backward's dy must look like
        self._y_dtype = getattr(y, "dtype", None)
        return y

    def _run(self, op, impl, x, *args, **kwargs):
        """Select the implementation of ``op`` for x (:func:`minibn.dispatch.select`), run its
        forward, and keep it as ``last_implementation`` (its backward goes with this forward).
        An error it raises is re-raised with this layer's name in front."""
        try:
            implementation = dispatch.select(op, impl, x)
            out = implementation.forward(x, *args, **kwargs)
        except (ValueError, TypeError, ImportError, NotImplementedError) as e:
            raise type(e)(f"{type(self).__name__}: {e}") from None
        self.last_implementation = implementation
        return out

    def _check_dy(self, dy):
        """dy, checked against the last forward's output, in the output's dtype.

        RuntimeError if no forward ran yet; TypeError unless dy is a plain array
        (:func:`minibn._checks.plain_array`) of a floating dtype; ValueError unless it has
        the output's shape. A dy of another floating dtype (float64 for a float32 output)
        is converted to the output's, as PyTorch's autograd converts a gradient: the
        backward then computes in the dtype of the forward, and dx has x's dtype.
        """
        shape, dtype = getattr(self, "_y_shape", None), getattr(self, "_y_dtype", None)
        if type(dy) in PLAIN_ARRAYS and dy.shape == shape and dy.dtype == dtype:
            return dy  # the usual case, in one test: what follows builds the messages
        name = type(self).__name__
        if shape is None:
            raise RuntimeError(f"{name}: backward called before any forward (run the layer on an input first)")
        if type(dy) not in PLAIN_ARRAYS:
            dy = plain_array("dy", dy, name)
        if dy.dtype.kind != "f":
            raise TypeError(f"{name}: dy must be a floating-point array (the gradient of the output, of dtype "
                            f"{dtype}), got dtype {dy.dtype}: pass dy.astype(numpy.{dtype})")
        if tuple(dy.shape) != shape:
            raise ValueError(f"{name}: expected dy of shape {shape} (the output's), got {tuple(dy.shape)}")
        if dtype is not None and dy.dtype != dtype:
            dy = dy.astype(dtype)
        return dy

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    # -- traversal -------------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for name in self._buffers:
            yield prefix + name, getattr(self, name)
        for name, child in self.named_children():
            yield from child.named_buffers(prefix + name + ".")

    def modules(self):
        """This module and all its descendants, depth first."""
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def mode(self, training: bool):
        """``with model.mode(training=False): ...`` runs the block with every submodule in
        that mode, and gives each one its own mode back afterwards (also after an error)."""
        saved = [(m, m.training) for m in self.modules()]
        self.train(training)
        try:
            yield self
        finally:
            for m, t in saved:
                m.training = t

    # -- state -----------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name, as arrays (references, not copies)."""
        d = OrderedDict((k, p.data) for k, p in self.named_parameters())
        for k, v in self.named_buffers():
            d[k] = v if _is_array(v) else numpy.asarray(v)
        return d

    def _slots(self):
        """(name, owner, attribute, is_parameter) for every entry of the state dict."""
        out = []

        def walk(mod, prefix):
            for name, value in vars(mod).items():
                if isinstance(value, Parameter):
                    out.append((prefix + name, mod, name, True))
            for name in mod._buffers:
                out.append((prefix + name, mod, name, False))
            for name, child in mod.named_children():
                walk(child, prefix + name + ".")

        walk(self, "")
        return out

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays from ``state`` (name -> array) into this module.

        Every shape is checked before anything is assigned, so a mismatch leaves the
        module unchanged. Values keep this module's device, dtype and memory layout.
        """
        slots = self._slots()
        names = {s[0] for s in slots}
        if strict:
            missing = sorted(names - set(state))
            unexpected = sorted(set(state) - names)
            if missing or unexpected:
                raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        plan = []
        for name, owner, attr, is_param in slots:
            if name not in state:
                continue
            current = getattr(owner, attr).data if is_param else getattr(owner, attr)
            new = state[name]
            cur_shape = tuple(getattr(current, "shape", ()))
            new_shape = tuple(getattr(new, "shape", ()))
            if cur_shape != new_shape:
                raise ValueError(
                    f"load_state_dict: {name}: expected shape {cur_shape}, got {new_shape}")
            plan.append((owner, attr, is_param, current, new))
        values = []  # every conversion first: a bad entry leaves the module unchanged
        for *_, current, new in plan:
            if _is_array(current):
                xp = backend.get_array_module(current)
                value = xp.empty_like(current)  # this module's device, dtype and memory layout
                value[...] = xp.asarray(backend.to_device(backend.asnumpy(new), backend.device_of(current)))
                values.append(value)
            else:  # a Python scalar buffer such as num_batches_tracked
                values.append(type(current)(backend.asnumpy(new)))
        for (owner, attr, is_param, _, _), value in zip(plan, values):
            if is_param:
                getattr(owner, attr).data = value
            else:
                setattr(owner, attr, value)
        return self

    def _map_arrays(self, fn):
        for m in self.modules():
            for value in vars(m).values():
                if isinstance(value, Parameter):
                    value.data = fn(value.data)
                    if value.grad is not None:
                        value.grad = fn(value.grad)
            for name in m._buffers:
                v = getattr(m, name)
                if _is_array(v):
                    setattr(m, name, fn(v))
        return self

    def to(self, device: str):
        """Move parameters and buffers to ``"cpu"`` or ``"gpu"`` (in place); returns self."""
        return self._map_arrays(lambda a: backend.to_device(a, device))

    def astype(self, dtype):
        """Cast floating parameters and buffers to ``dtype`` (in place); returns self."""
        return self._map_arrays(lambda a: a.astype(dtype) if a.dtype.kind == "f" else a)

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse. Indexes like a list."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} must be a Module, got {type(layer).__name__}")
        self.layers = list(layers)

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*self.layers[i])
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy, need_dx: bool = True):
        """Backpropagate dy through every layer; returns dx of the first (each layer checks
        its dy).

        ``need_dx=False`` lets the first layer skip its input gradient when it can
        (a Linear or Conv2d applied to data): one matrix product fewer per step.
        """
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        first = self.layers[0]
        if not need_dx and first.can_skip_dx:
            return first.backward(dy, need_dx=False)
        return first.backward(dy)
