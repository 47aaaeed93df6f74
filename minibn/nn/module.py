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
from .._checks import PLAIN_ARRAYS, float_dtype, plain_array

__all__ = ["Module", "Parameter", "Sequential"]


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (None until a backward).

    Parameters
    ----------
    data : ndarray
        The values (NumPy or CuPy), kept as they are (no copy).
    """

    __slots__ = ("data", "grad", "_buffer")

    def __init__(self, data):
        self.data = data
        self.grad = None
        self._buffer = None

    @classmethod
    def zeros(cls, shape, dtype="float32", order="C"):
        """A parameter of zeros on the active backend (an initializer of :mod:`minibn.nn.init` then fills it).

        Parameters
        ----------
        shape : int or tuple of int
            The parameter's shape.
        dtype : str or dtype, optional
            Its dtype.
        order : {"C", "F"}, optional
            Its memory layout: "F" for a column-major array.

        Returns
        -------
        Parameter
        """
        return cls(backend.xp().zeros(shape, dtype=dtype, order=order))

    @property
    def shape(self):
        """The shape of ``data``."""
        return self.data.shape

    @property
    def dtype(self):
        """The dtype of ``data``."""
        return self.data.dtype

    def grad_buffer(self):
        """An array like ``data``, kept between steps, for a layer to write a step's first gradient into.

        Like ``data`` in shape, dtype, memory layout and device. A fresh large array every step
        costs page faults, and an optimizer may place this one inside its flat gradient array
        (:class:`minibn.optim.SGD`). So a gradient stored here is overwritten by the backward
        after the next ``zero_grad``: copy a ``.grad`` you want to keep.

        Returns
        -------
        ndarray
            The buffer (uninitialized the first time).
        """
        if self._buffer is None or not backend.same_layout(self._buffer, self.data):
            self._buffer = backend.get_array_module(self.data).empty_like(self.data)
        return self._buffer

    def set_grad_buffer(self, b):
        """Use ``b`` as :meth:`grad_buffer` (an optimizer's flat gradient view).

        Parameters
        ----------
        b : ndarray
            An array like ``data`` (shape, dtype, memory layout, device).
        """
        self._buffer = b

    def accumulate(self, g):
        """``grad += g``; the first call (``grad`` None) stores g itself (or its conversion, below).

        Parameters
        ----------
        g : ndarray
            A gradient, ``data``'s shape. In another floating dtype (a float64 input to a layer
            of float32 parameters gives float64 gradients) it is converted to ``data``'s, so that
            ``grad`` always has the parameter's dtype, as in PyTorch.
        """
        if g.dtype != self.data.dtype:
            g = g.astype(self.data.dtype)
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    def __repr__(self):
        where = backend.device_of(self.data)
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, device={where})"


def _is_array(v):
    return hasattr(v, "shape") and hasattr(v, "dtype")


def unfit_value(name, value, dtype):
    """Why the host value ``value`` (an array or a number) cannot be loaded into the state
    entry ``name`` of dtype ``dtype``, or None when it can. It cannot when it is not numbers,
    holds NaN or inf, or holds a value that the conversion to ``dtype`` would change: 1e300
    becomes inf in float32, 2.5 becomes 2 in int64, -1 becomes 255 in uint8 (rounding to a
    float dtype's precision is fine). The reason names the entry and the first bad value,
    e.g. "entry '1.running_var' holds nan at index (3,): NaN and inf are not valid ...".
    Used by :meth:`Module.load_state_dict`; :func:`minibn.checkpoint.load` makes the same
    checks, in the same words.
    """
    value, dtype = numpy.asarray(value), numpy.dtype(dtype)
    if value.dtype.kind not in "fiub":
        return f"entry {name!r} holds {value.dtype} values, not numbers"
    if value.dtype.kind == "f":
        why = _first_bad(name, value, ~numpy.isfinite(value), "NaN and inf are not valid parameters or "
                         "statistics (did training diverge?)")
        if why:
            return why
    with numpy.errstate(all="ignore"):
        converted = value.astype(dtype)
        kept = numpy.isfinite(converted) if dtype.kind == "f" else converted == value
    why = f"the model keeps this entry as {dtype}, where it would become {{}}"
    return _first_bad(name, value, ~kept, why, converted)


def _first_bad(name, value, bad, why, became=None):
    """None if no value is ``bad``; else "entry 'name' holds v at index i (and n more bad
    values): why", with ``{}`` in ``why`` filled with what ``became`` holds at index i."""
    if not bad.any():
        return None
    index = tuple(int(i) for i in numpy.argwhere(bad)[0])
    at = f" at index {index}" if index else ""
    more = int(bad.sum()) - 1
    others = f" (and {more} more bad value{'s' if more > 1 else ''})" if more else ""
    if became is not None:
        why = why.format(became[index].item())
    return f"entry {name!r} holds {value[index].item()!r}{at}{others}: {why}"


class Module:
    """Base class of the layers: subclasses implement ``forward(x)`` and ``backward(dy)``.

    ``forward`` caches what ``backward`` needs; ``backward`` returns dx and *accumulates*
    into ``p.grad`` for each of the module's parameters (call :meth:`zero_grad` between
    steps). Calling the module (``layer(x)``) runs ``forward`` and records the output's
    shape and dtype, against which ``backward`` checks dy. A new module is in training mode.
    """

    #: True on a class that exists to be subclassed (Module, Normalization, BatchNorm, ...),
    #: not built as a layer. Not inherited: each class that does not set it is a layer.
    base_class = True
    _buffers: tuple = ()
    #: True when ``backward(dy, need_dx=False)`` can skip computing dx (Linear, Conv2d).
    can_skip_dx = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.base_class = vars(cls).get("base_class", False)  # only where the class itself says so

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
        """The layer's output for its input (each layer implements it).

        Raises
        ------
        NotImplementedError
            On the base class.
        """
        raise NotImplementedError

    def backward(self, dy):
        """Backpropagate dy, the gradient of the last forward's output: returns dx (each layer implements it).

        Raises
        ------
        NotImplementedError
            On the base class.
        """
        raise NotImplementedError

    # -- traversal -------------------------------------------------------------------
    def named_children(self):
        """The direct child modules, as (attribute name, module) pairs.

        Yields
        ------
        tuple of (str, Module)
        """
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix=""):
        """(dotted name, parameter) pairs of this module and its descendants, each parameter once.

        A module that holds one layer under two names lists its parameters under the first name
        only, as torch's ``named_parameters()`` does, so an optimizer steps them once per step.

        Parameters
        ----------
        prefix : str, optional
            Put in front of every name.

        Yields
        ------
        tuple of (str, Parameter)
        """
        seen = set()
        for name, p in self._all_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _all_parameters(self, prefix):
        """Every (dotted name, parameter) pair, a shared parameter under each of its names."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child._all_parameters(prefix + name + ".")

    def parameters(self):
        """Every parameter of this module and its descendants, once each.

        Returns
        -------
        list of Parameter
            In the order of :meth:`named_parameters`.
        """
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """(dotted name, value) pairs of the buffers (the names in each class's ``_buffers``).

        Buffers are state that is saved and moved but not trained: BN's running statistics,
        ``num_batches_tracked`` (a Python int).

        Parameters
        ----------
        prefix : str, optional
            Put in front of every name.

        Yields
        ------
        tuple of (str, ndarray or int)
        """
        for name in self._buffers:
            yield prefix + name, getattr(self, name)
        for name, child in self.named_children():
            yield from child.named_buffers(prefix + name + ".")

    def modules(self):
        """This module and all its descendants, depth first.

        Yields
        ------
        Module
        """
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def zero_grad(self):
        """Set every parameter's ``grad`` to None (the next backward stores its gradient afresh)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        """Set this module and all its descendants to training mode (or eval mode with ``mode=False``).

        Parameters
        ----------
        mode : bool, optional
            True for training, False for eval.

        Returns
        -------
        Module
            self.
        """
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Set this module and all its descendants to eval mode: ``train(False)``.

        Returns
        -------
        Module
            self.
        """
        return self.train(False)

    @contextlib.contextmanager
    def mode(self, training: bool):
        """A context manager: the block runs with every submodule in the given mode.

        ``with model.mode(training=False): ...``; afterwards (also after an error) each
        submodule gets its own mode back.

        Parameters
        ----------
        training : bool
            The mode inside the block.

        Yields
        ------
        Module
            self.
        """
        saved = [(m, m.training) for m in self.modules()]
        self.train(training)
        try:
            yield self
        finally:
            for m, t in saved:
                m.training = t

    # -- state -----------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name, as arrays (references, not copies).

        Returns
        -------
        collections.OrderedDict
            name -> array: the parameters' ``data`` first, then the buffers (a Python number
            buffer as a 0-d NumPy array).
        """
        d = OrderedDict((k, p.data) for k, p in self.named_parameters())
        for k, v in self.named_buffers():
            d[k] = v if _is_array(v) else numpy.asarray(v)
        return d

    def _slots(self):
        """(name, owner, attribute, is_parameter) for every entry of the state dict (a shared
        parameter under its first name only, as in :meth:`named_parameters`)."""
        out, seen = [], set()

        def walk(mod, prefix):
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    out.append((prefix + name, mod, name, True))
            for name in mod._buffers:
                out.append((prefix + name, mod, name, False))
            for name, child in mod.named_children():
                walk(child, prefix + name + ".")

        walk(self, "")
        return out

    def load_state_dict(self, state, strict: bool = True, check_values: bool = True):
        """Copy arrays from ``state`` (name -> array) into this module.

        Values keep this module's device, dtype and memory layout; an array already on the
        entry's device is copied there (no trip through the host). Every entry is checked
        before anything is assigned, so a refused load leaves the module unchanged. Device
        values loaded into a device module are not looked at: reading them would make the host
        wait for the device.

        Parameters
        ----------
        state : mapping of str to ndarray
            As :meth:`state_dict` returns it.
        strict : bool, optional
            Require exactly this module's names (else missing and unexpected names are ignored).
        check_values : bool, optional
            Check the host values (:func:`unfit_value`); False skips the check, for putting back
            a module's own earlier state (which may hold the NaN that made a computation fail).

        Returns
        -------
        Module
            self.

        Raises
        ------
        KeyError
            With ``strict``, if names are missing or unexpected (listing them).
        ValueError
            If an entry's shape differs, or (``check_values``) a host value is NaN or inf, or
            one the entry's dtype cannot hold (1e300 in float32, 2.5 in an integer), naming the
            entry.
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
            plan.append((name, owner, attr, is_param, current, new))
        values = []  # every check and conversion first: a refused entry leaves the module unchanged
        for name, *_, current, new in plan:
            if backend.is_gpu_array(new) and not backend.is_gpu_array(current):
                new = backend.asnumpy(new)  # into a host array, or a Python scalar buffer
            if check_values and not backend.is_gpu_array(new):
                why = unfit_value(name, new, current.dtype if _is_array(current) else numpy.asarray(current).dtype)
                if why:
                    raise ValueError(f"load_state_dict: {why}")
            if _is_array(current):
                value = backend.get_array_module(current).empty_like(current)  # device, dtype, memory layout
                value[...] = backend.to_device(new, backend.device_of(current))  # a copy only between devices
                values.append(value)
            else:  # a Python scalar buffer such as num_batches_tracked
                values.append(type(current)(new))
        for (_, owner, attr, is_param, _, _), value in zip(plan, values):
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
        """Move the parameters (and their gradients) and the array buffers to a device, in place.

        Parameters
        ----------
        device : {"cpu", "gpu"}
            "cpu" (NumPy) or "gpu" (CuPy).

        Returns
        -------
        Module
            self.

        Raises
        ------
        ValueError
            For another device name.
        RuntimeError
            For "gpu" where CuPy is not usable (with the install hint).
        """
        return self._map_arrays(lambda a: backend.to_device(a, device))

    def astype(self, dtype):
        """Cast the floating parameters (and their gradients) and array buffers to ``dtype``, in place.

        Parameters
        ----------
        dtype : str or dtype
            A floating dtype ("float64" for a gradient check, say); integer arrays are left as they are.

        Returns
        -------
        Module
            self.

        Raises
        ------
        ValueError
            If dtype is not a floating-point dtype (an integer one would round every weight).
        """
        dtype = float_dtype(dtype, f"{type(self).__name__}.astype")
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
    """Layers applied in order; backward runs them in reverse. Indexes like a list.

    ``seq[i]`` is a layer, ``seq[i:j]`` a new Sequential of the same layer objects.

    Parameters
    ----------
    *layers : Module
        The layers, in forward order.

    Raises
    ------
    TypeError
        If a layer is not a Module.
    ValueError
        If one layer object appears twice: a layer keeps one forward's cache, so its second
        use would make the first one's gradients silently wrong (use two layers, or
        ``copy.deepcopy(layer)`` for the same initial values).
    """

    def __init__(self, *layers):
        super().__init__()
        first = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} must be a Module, got {type(layer).__name__}")
            # A layer keeps the cache of its last forward only, so the backward of its first use
            # would read the second use's input: the gradients would be silently wrong.
            j = first.setdefault(id(layer), i)
            if j != i:
                raise ValueError(f"Sequential: layer {i} is layer {j} again ({type(layer).__name__}): a layer keeps "
                                 f"one forward's cache, so it cannot be used twice in a model; use two layers "
                                 f"(copy.deepcopy(layer) for the same initial values)")
        self.layers = list(layers)

    def named_children(self):
        """The layers, as (index as a string, layer) pairs.

        Yields
        ------
        tuple of (str, Module)
        """
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
        """Apply the layers in order (each through ``layer(x)``).

        Parameters
        ----------
        x : ndarray
            The first layer's input.

        Returns
        -------
        ndarray
            The last layer's output.
        """
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy, need_dx: bool = True):
        """Backpropagate dy through every layer, last to first (each layer checks its dy).

        Parameters
        ----------
        dy : ndarray
            The gradient of the last forward's output.
        need_dx : bool, optional
            False lets the first layer skip its input gradient when it can (a Linear or Conv2d
            applied to data): one matrix product fewer per step.

        Returns
        -------
        ndarray or None
            dx of the first layer's input; None when it was skipped.
        """
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        first = self.layers[0]
        if not need_dx and first.can_skip_dx:
            return first.backward(dy, need_dx=False)
        return first.backward(dy)
