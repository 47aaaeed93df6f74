"""A strict stand-in for CuPy, so that the GPU code paths run (and fail as CuPy would) on a
machine without a GPU.

The most common fault of NumPy code ported to CuPy is an *implicit* conversion between host
and device. CuPy refuses most of them, and pays for the rest:

* ``numpy.asarray(gpu_array)`` (and every NumPy routine that calls it: ``numpy.testing``,
  a ``numpy.random.Generator`` method, a host array assigned from a device one) raises
  ``TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()` to
  construct a NumPy array explicitly.`` (``ndarray.__array__``);
* a host ``numpy.ndarray`` mixed with a device array in arithmetic, or passed to a CuPy
  function, raises ``TypeError: Unsupported type <class 'numpy.ndarray'>`` (CuPy's kernels
  take device arrays and Python/NumPy *scalars* only; a 0-d host array is an array);
* a device array as an index into a host array raises the same TypeError (NumPy converts
  the index through ``__array__``);
* NumPy functions called on device arrays dispatch to CuPy (NEP 13 ``__array_ufunc__``,
  NEP 18 ``__array_function__``) and return device arrays; a NumPy function CuPy does not
  implement raises TypeError ("no implementation found for ...");
* ``float()``, ``int()``, ``bool()``, ``.item()``, ``.tolist()``, ``repr``/``str``/f-strings
  of a device array work, but each copies to the host and waits for the device: a
  *synchronization*, harmless at the edge and a stall in a training step. So do a boolean
  mask index and ``nonzero``, whose output size depends on the values;
* a host array or list used as an index into a device array, or assigned through an
  advanced (array) index, is converted silently (a hidden host-to-device copy), while a
  host array assigned through a basic index (``dev[...] = host``) goes through ``fill``,
  which raises ``ValueError: non-scalar numpy.ndarray cannot be used for fill``;
* an integer index array out of bounds wraps around (CuPy does not check: it would have to
  read the indices back), where NumPy raises IndexError.

What the stand-in is: :class:`DeviceArray`, a wrapper holding a NumPy array (not an ndarray
subclass: ``numpy.asarray`` of a subclass never calls ``__array__``), that behaves as above,
and :data:`cupy`, a module object exposing what minibn uses of CuPy (creation functions,
ufuncs, the NumPy functions CuPy has, ``asarray``/``asnumpy``/``get_array_module``,
``ndarray``, ``random``, ``cuda.Device().synchronize()``), whose functions take and return
device arrays and refuse host ones as CuPy's do. Every transfer and synchronization is
counted by :data:`COUNTER` (a :class:`Transfers`), with the file and line that caused it:

========  ====================================================================================
kind      what
========  ====================================================================================
h2d       an explicit host-to-device copy: ``cupy.asarray``/``cupy.array`` of host data,
          ``DeviceArray.set``, unpickling
d2h       an explicit device-to-host copy: ``cupy.asnumpy``, ``.get()``, ``.tobytes()``,
          pickling, ``cupy.save*``
sync      a host read of device values: ``float``/``int``/``bool``/``complex``, ``.item()``,
          ``.tolist()``, ``repr``/``str``/``format``; a boolean mask index, ``nonzero``,
          ``unique``... (output sized by the values); ``cuda.Device().synchronize()``
implicit  a host array or list CuPy converts without being asked: an index into a device
          array, a value assigned through an advanced index
========  ====================================================================================

:func:`installed` makes it ``minibn.backend.cupy`` for a block (``backend.use("cupy")``
then works, ``model.to("gpu")`` moves to stand-in arrays); the numba-cuda "fused" kernels
are not selected for stand-in arrays (``minibn.kernels.cuda_bn`` bound ``cupy`` = None at
import, so its ``applies`` is False, and the arrays have no ``__cuda_array_interface__``).

Not mimicked: asynchronous execution and streams (every operation is immediate, so a sync
costs nothing here: it is only counted), memory pools and out-of-memory, multiple devices,
CuPy's own dtype rules where they differ from NumPy's (CuPy follows NumPy 2's NEP 50
closely), NumPy functions CuPy lacks beyond the list in :data:`NOT_IN_CUPY`, signatures
where a CuPy function takes fewer arguments than NumPy's (only einsum's are checked),
``cupy.fuse``/``ElementwiseKernel``/``RawKernel``, ``cupyx``, ``.data`` (a MemoryPointer),
``.flat``, ``__cuda_array_interface__`` (so numba-cuda cannot take these arrays), and
``import cupy`` (the stand-in is not put in ``sys.modules``).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import types

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")

#: NumPy functions that CuPy does not implement (numpy's top-level callables absent from
#: cupy/__init__.py at cupy commit 6b6d956, 2026): through ``__array_function__`` they raise
#: TypeError on device arrays, and ``cupy.<name>`` is an AttributeError, as with CuPy.
NOT_IN_CUPY = frozenset({
    "asmatrix", "block", "bmat", "busday_count", "busday_offset", "datetime_as_string", "datetime_data",
    "einsum_path", "frompyfunc", "fromregex", "geomspace", "get_include", "getbufsize", "geterr", "geterrcall",
    "histogram_bin_edges", "info", "insert", "is_busday", "isnat", "matvec", "nanpercentile", "nanquantile",
    "nested_iters", "polyder", "polydiv", "polyint", "setbufsize", "seterr", "seterrcall", "show_runtime",
    "spacing", "test", "unstack", "vecdot", "vecmat",
})

#: functions whose output size depends on the values: CuPy reads a count back (a sync)
_SYNCING = frozenset({"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"})
#: CuPy's I/O functions: an explicit device-to-host copy of each array
_TO_HOST = frozenset({"save", "savez", "savez_compressed", "savetxt"})
#: the comparison ufuncs, where CuPy turns a 0-d host array into a scalar (numpy/numpy#12142)
_COMPARISONS = frozenset({"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"})
_SCALARS = (int, float, complex, bool, numpy.generic)
#: keyword arguments NumPy takes and CuPy's function does not
_UNSUPPORTED_KWARGS = {"einsum": ("out", "order", "casting")}


# -- the counter ----------------------------------------------------------------------------

_HERE = os.path.abspath(__file__)
_ROOT = os.path.dirname(os.path.dirname(_HERE))
_NUMPY_DIR = os.path.dirname(numpy.__file__)


def _caller():
    """'file:line (function)' of the first frame outside this module and NumPy: the code that
    asked for the transfer."""
    f = sys._getframe(2)
    while f is not None:
        name = os.path.abspath(f.f_code.co_filename)
        if name != _HERE and not name.startswith(_NUMPY_DIR) and "contextlib" not in name:
            return f"{os.path.relpath(name, _ROOT)}:{f.f_lineno} ({f.f_code.co_name})"
        f = f.f_back
    return "?"


class Transfers:
    """Counts host<->device traffic: ``h2d``, ``d2h``, ``sync`` and ``implicit`` (see the
    module docstring), each event with the place that caused it.

    ``counts()`` -> {kind: n}; ``total()``; ``places(kind=None)`` -> Counter of
    "file:line (function)"; ``reset()``; ``with counter.watch() as seen:`` counts one block
    into a fresh :class:`Transfers` (``seen``) as well.
    """

    KINDS = ("h2d", "d2h", "sync", "implicit")

    def __init__(self):
        self.events = []
        self._watchers = []

    def record(self, kind, what):
        event = (kind, _caller(), what)
        self.events.append(event)
        for w in self._watchers:
            w.events.append(event)

    def reset(self):
        self.events.clear()

    def counts(self):
        c = dict.fromkeys(self.KINDS, 0)
        for kind, _, _ in self.events:
            c[kind] += 1
        return c

    def total(self):
        return len(self.events)

    def places(self, kind=None):
        return collections.Counter(f"{k}: {where}: {what}" for k, where, what in self.events
                                   if kind is None or k == kind)

    @contextlib.contextmanager
    def watch(self):
        seen = Transfers()
        self._watchers.append(seen)
        try:
            yield seen
        finally:
            self._watchers.remove(seen)

    def __repr__(self):
        return f"Transfers({self.counts()})"


#: every transfer and sync of the stand-in device
COUNTER = Transfers()


# -- conversion between the two worlds --------------------------------------------------------

class _Defer(Exception):
    """An operand CuPy does not know (a list, an object): the operation returns NotImplemented."""


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _operand(x, comparison=False):
    """A ufunc operand as CuPy's kernels take it: a device array (its NumPy array here), or a
    Python/NumPy scalar. A host ndarray is refused (a 0-d one is a scalar in comparisons)."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, numpy.ndarray):
        if comparison and x.ndim == 0:
            return x.item()
        raise _unsupported(x)
    if isinstance(x, _SCALARS) or x is None:
        return x
    raise _Defer


def _unwrap(x):
    """The arguments of a CuPy function: device arrays unwrapped, host arrays refused, anything
    else (shapes, axes, dtypes, lists of device arrays) as it is."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise _unsupported(x)
    if type(x) in (list, tuple):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(r):
    """A NumPy result as CuPy returns it: arrays and NumPy scalars (a reduction, an element)
    become device arrays (CuPy returns 0-d arrays, never host scalars)."""
    if isinstance(r, numpy.ndarray):
        return DeviceArray._of(r)
    if isinstance(r, numpy.generic):
        return DeviceArray._of(numpy.asarray(r))
    if type(r) in (list, tuple):
        return type(r)(_wrap(v) for v in r)
    return r


def _outs(kwargs):
    """Unwrap ``out=`` (a device array, or a tuple of them, as NumPy passes it) in place;
    returns the device arrays (None without out)."""
    out = kwargs.get("out")
    if out is None:
        return None
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        if o is not None and not isinstance(o, DeviceArray):
            raise _unsupported(o) if isinstance(o, numpy.ndarray) else TypeError(f"out must be a cupy.ndarray, "
                                                                                 f"got {type(o)}")
    kwargs["out"] = tuple(None if o is None else o._a for o in outs) if isinstance(out, tuple) else out._a
    return outs


def _result(r, outs):
    if outs is None:
        return _wrap(r)
    return outs[0] if len(outs) == 1 else outs


def _apply_ufunc(ufunc, method, inputs, kwargs):
    """NumPy's ``ufunc.method`` on device arrays, with CuPy's rules for its operands."""
    comparison = ufunc.__name__ in _COMPARISONS
    try:
        args = [_operand(x, comparison) for x in inputs]
        kwargs = dict(kwargs)
        if "where" in kwargs and not isinstance(kwargs["where"], bool):
            kwargs["where"] = _operand(kwargs["where"])
    except _Defer:
        return NotImplemented
    outs = _outs(kwargs)
    return _result(getattr(ufunc, method)(*args, **kwargs), outs)


def _index(key, shape):
    """An index into a device array of ``shape``, as CuPy takes it: device index arrays are used
    as they are (a boolean one syncs: its count sizes the output); host arrays and lists are
    converted silently (counted as ``implicit``); integer index arrays wrap around out of
    bounds (CuPy's kernels take them modulo the axis length, where NumPy raises IndexError).
    Returns (the NumPy index, whether it is an advanced one)."""
    parts = key if isinstance(key, tuple) else (key,)
    out, advanced, axis = [], False, 0  # axis: the axis an index applies to (None: unknown)
    for k in parts:
        if k is None or k is Ellipsis:
            axis = None
        if isinstance(k, (DeviceArray, numpy.ndarray, list)):
            advanced = True
            if isinstance(k, DeviceArray):
                k = k._a
            else:
                COUNTER.record("implicit", f"host {type(k).__name__} used as an index (copied to the device)")
                k = numpy.asarray(k)
            if k.dtype == numpy.bool_:
                COUNTER.record("sync", "boolean mask index (its count sizes the output)")
            elif axis is not None and axis < len(shape) and shape[axis] > 0:
                k = numpy.mod(k, shape[axis])
        if axis is not None:
            axis += k.ndim if isinstance(k, numpy.ndarray) and k.dtype == numpy.bool_ else 1
        out.append(k)
    return (tuple(out) if isinstance(key, tuple) else out[0]), advanced


# -- the device array ------------------------------------------------------------------------

class Device:
    """``cupy.cuda.Device``: one device, id 0; ``synchronize()`` waits for it (a sync)."""

    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        COUNTER.record("sync", "cuda.Device().synchronize()")

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id} (strict stand-in)>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _method(name):
    def method(self, *args, **kwargs):
        outs = _outs(kwargs)
        kwargs = {k: v if k == "out" else _unwrap(v) for k, v in kwargs.items()}
        return _result(getattr(self._a, name)(*_unwrap(args), **kwargs), outs)
    method.__name__ = name
    method.__doc__ = f"``cupy.ndarray.{name}``: NumPy's, on the device (results are device arrays)."
    return method


class DeviceArray(NDArrayOperatorsMixin):
    """A "device" array: a NumPy array that refuses implicit conversion, as ``cupy.ndarray`` does.

    ``numpy.asarray(d)`` raises TypeError (CuPy's message); arithmetic with a host ndarray
    raises ``TypeError: Unsupported type``; NumPy functions dispatch here (NEP 13/18) and
    return device arrays; ``.get()`` / ``cupy.asnumpy`` are the explicit way back, and are
    counted, as are ``float()``, ``int()``, ``bool()``, ``.item()`` (syncs).
    ``DeviceArray(shape, dtype, order=...)`` makes an uninitialized array, as
    ``cupy.ndarray(shape, dtype)`` does.
    """

    __slots__ = ("_a",)

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in makes new arrays only (no memptr, no strides)")
        self._a = numpy.empty(shape, dtype, order=order)

    @classmethod
    def _of(cls, a):
        d = cls.__new__(cls)
        d._a = a
        return d

    # -- conversions CuPy refuses -------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """CuPy's rule: the function of the same module path and name in cupy, if it has one
        and every argument type is a NumPy or CuPy array; otherwise NotImplemented (NumPy then
        raises TypeError)."""
        if not all(issubclass(t, (DeviceArray, numpy.ndarray)) for t in types):
            return NotImplemented
        module = cupy
        for part in func.__module__.split(".")[1:]:
            module = getattr(module, part, None)
            if not isinstance(module, _DeviceModule):
                module = cupy  # a private NumPy module path: look the name up at the top
                break
        try:
            implementation = getattr(module, func.__name__)
        except AttributeError:
            return NotImplemented
        return implementation(*args, **kwargs)

    # -- explicit transfers and syncs (counted) ---------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """The explicit device-to-host copy (counted as d2h)."""
        COUNTER.record("d2h", f".get() of {self.shape} {self.dtype}")
        if out is not None:
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order)

    def set(self, arr, stream=None):
        """The explicit host-to-device copy into this array (counted as h2d)."""
        COUNTER.record("h2d", f".set() of {numpy.shape(arr)}")
        self._a[...] = arr

    def item(self, *args):
        COUNTER.record("sync", ".item()")
        return self._a.item(*args)

    def tolist(self):
        COUNTER.record("sync", ".tolist()")
        return self._a.tolist()

    def tobytes(self, order="C"):
        COUNTER.record("d2h", ".tobytes()")
        return self._a.tobytes(order)

    def _read(self, what):
        COUNTER.record("sync", what)
        return self._a

    def __float__(self):
        return float(self._read("float() of a device array"))

    def __int__(self):
        return int(self._read("int() of a device array"))

    def __complex__(self):
        return complex(self._read("complex() of a device array"))

    def __bool__(self):
        if self.size == 1:
            return bool(self._read("bool() of a device array (an `if` on device values)"))
        return bool(self._a)  # NumPy's (and CuPy's) error for several values

    def __repr__(self):
        return repr(self._read("repr() of a device array"))

    def __str__(self):
        return str(self._read("str() of a device array"))

    def __format__(self, spec):
        return format(self._read("format() of a device array (an f-string)"), spec)

    def __reduce__(self):
        COUNTER.record("d2h", "pickling a device array")
        return _unpickle, (numpy.array(self._a, order="A"),)

    # -- copies on the device (not counted) ---------------------------------------------
    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()  # as CuPy: copy(order="C"), so a column-major array comes back row-major

    def copy(self, order="C"):
        return DeviceArray._of(self._a.copy(order=order))

    # -- indexing ------------------------------------------------------------------------
    def __getitem__(self, key):
        key, advanced = _index(key, self.shape)
        r = self._a[key]
        if isinstance(r, numpy.generic) and not advanced:  # CuPy: a 0-d view, not a host scalar
            r = self._a[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
        return _wrap(r)

    def __setitem__(self, key, value):
        key, advanced = _index(key, self.shape)
        if isinstance(value, DeviceArray):
            value = value._a
        elif isinstance(value, (numpy.ndarray, list, tuple)):
            if not advanced and numpy.ndim(value) != 0:  # CuPy: dev[basic] = host goes through fill()
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            if numpy.ndim(value) != 0:
                COUNTER.record("implicit", f"host {type(value).__name__} assigned through an array index")
        self._a[key] = value

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # -- attributes ----------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: DeviceArray._of(self._a.T))
    mT = property(lambda self: DeviceArray._of(self._a.mT))
    real = property(lambda self: DeviceArray._of(self._a.real))
    imag = property(lambda self: DeviceArray._of(self._a.imag))
    device = property(lambda self: _DEVICE, doc="the one stand-in device (cupy.cuda.Device(0))")

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    def nonzero(self):
        COUNTER.record("sync", "nonzero() (its count sizes the output)")
        return _wrap(self._a.nonzero())

    def compress(self, condition, axis=None, out=None):
        COUNTER.record("sync", "compress() (its count sizes the output)")
        return DeviceArray._of(self._a.compress(_unwrap(condition), axis))


#: the methods of cupy.ndarray that are NumPy's on the device
_METHODS = ("astype", "reshape", "transpose", "swapaxes", "ravel", "flatten", "squeeze", "view", "sum", "mean", "var",
            "std", "max", "min", "argmax", "argmin", "prod", "cumsum", "cumprod", "all", "any", "clip", "round", "take",
            "repeat", "dot", "diagonal", "trace", "argsort", "sort", "fill", "put", "ptp", "choose", "searchsorted",
            "partition", "argpartition", "conj", "conjugate")
for _name in _METHODS:
    setattr(DeviceArray, _name, _method(_name))
del _name


def _unpickle(host):
    COUNTER.record("h2d", "unpickling a device array")
    return DeviceArray._of(host)


_DEVICE = Device(0)


# -- the module -------------------------------------------------------------------------------

class _DeviceUfunc:
    """A CuPy ufunc: NumPy's, applied to device arrays only (``cupy.exp``, ``cupy.add.reduce``...)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def _run(self, method, inputs, kwargs):
        r = _apply_ufunc(self._ufunc, method, inputs, kwargs)
        if r is NotImplemented:
            raise TypeError(f"cupy.{self.__name__}: unsupported operand types "
                            f"{[type(x).__name__ for x in inputs]}")
        return r

    def __call__(self, *inputs, **kwargs):
        return self._run("__call__", inputs, kwargs)

    def reduce(self, *inputs, **kwargs):
        return self._run("reduce", inputs, kwargs)

    def accumulate(self, *inputs, **kwargs):
        return self._run("accumulate", inputs, kwargs)

    def outer(self, *inputs, **kwargs):
        return self._run("outer", inputs, kwargs)

    def at(self, *inputs, **kwargs):
        return self._run("at", inputs, kwargs)

    def __repr__(self):
        return f"<stand-in ufunc 'cupy.{self.__name__}'>"


def _device_function(name, f):
    """A CuPy function: NumPy's ``f`` on device arrays (host arrays refused), results on the device."""
    like = name.endswith("_like")  # CuPy's *_like read only the prototype's shape and dtype: host ones work

    refused = _UNSUPPORTED_KWARGS.get(name, ())

    def call(*args, **kwargs):
        if any(k in kwargs for k in refused):
            raise TypeError(f"cupy.{name}: unsupported keyword arguments {sorted(set(kwargs) & set(refused))}")
        if like and args and isinstance(args[0], numpy.ndarray):
            args = (args[0],) + _unwrap(args[1:])
        else:
            args = _unwrap(args)
        outs = _outs(kwargs)
        kwargs = {k: v if k == "out" else _unwrap(v) for k, v in kwargs.items()}
        if name in _SYNCING:
            COUNTER.record("sync", f"cupy.{name}() (its count sizes the output)")
        if name in _TO_HOST:
            COUNTER.record("d2h", f"cupy.{name}()")
        return _result(f(*args, **kwargs), outs)

    call.__name__ = name
    call.__doc__ = f"``cupy.{name}``: NumPy's on device arrays (host arrays raise TypeError)."
    return call


class _DeviceModule(types.ModuleType):
    """A stand-in for ``cupy`` (or one of its submodules, e.g. ``cupy.linalg``): every NumPy
    name that CuPy also has, working on device arrays. Types and constants (``float32``,
    ``dtype``, ``finfo``, ``pi``, ``newaxis``) are NumPy's own, as in CuPy."""

    def __init__(self, name, numpy_module):
        super().__init__(name)
        self._numpy = numpy_module

    def __getattr__(self, name):
        if name.startswith("__") or name in NOT_IN_CUPY:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(self._numpy, name)  # AttributeError as CuPy's
        if isinstance(value, numpy.ufunc):
            value = _DeviceUfunc(value)
        elif isinstance(value, types.ModuleType):
            value = _DeviceModule(f"{self.__name__}.{name}", value)
        elif callable(value) and not isinstance(value, type):
            value = _device_function(name, value)
        setattr(self, name, value)  # looked up once
        return value


class _Random(types.ModuleType):
    """``cupy.random``: samples made on the device (no transfer), from its own generator."""

    def __init__(self):
        super().__init__("cupy.random")
        self._gen = numpy.random.default_rng()

    def seed(self, seed=None):
        self._gen = numpy.random.default_rng(seed)

    def random(self, size=None, dtype=float):
        return DeviceArray._of(numpy.asarray(self._gen.random(size, dtype=numpy.dtype(dtype))))

    random_sample = random

    def rand(self, *shape, dtype=float):
        return self.random(shape, dtype)

    def standard_normal(self, size=None, dtype=float):
        return DeviceArray._of(numpy.asarray(self._gen.standard_normal(size, dtype=numpy.dtype(dtype))))

    def randn(self, *shape, dtype=float):
        return self.standard_normal(shape, dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return DeviceArray._of(numpy.asarray(self._gen.normal(loc, scale, size)).astype(dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return DeviceArray._of(numpy.asarray(self._gen.uniform(low, high, size)).astype(dtype))

    def randint(self, low, high=None, size=None, dtype=int):
        return DeviceArray._of(numpy.asarray(self._gen.integers(low, high, size, dtype=dtype)))

    def permutation(self, n):
        if isinstance(n, DeviceArray):
            return DeviceArray._of(self._gen.permutation(n._a))
        return DeviceArray._of(self._gen.permutation(_unwrap(n)))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """``cupy.asarray``: a device array as it is (cast if asked); host data is copied to the
    device (an explicit transfer: counted as h2d)."""
    if isinstance(a, DeviceArray):
        if dtype is None or numpy.dtype(dtype) == a.dtype:
            return a.copy(order or "K") if copy else a
        return DeviceArray._of(a._a.astype(dtype, order=order or "K"))
    COUNTER.record("h2d", f"cupy.asarray of a host {type(a).__name__} {numpy.shape(a)}")
    return DeviceArray._of(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """``cupy.array``: a copy on the device; host data is transferred (h2d)."""
    if isinstance(obj, DeviceArray):
        a = numpy.array(obj._a, dtype=dtype, copy=bool(copy) or None, order=order, ndmin=ndmin)
        return DeviceArray._of(a)
    COUNTER.record("h2d", f"cupy.array of a host {type(obj).__name__} {numpy.shape(obj)}")
    return DeviceArray._of(numpy.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """``cupy.asnumpy``: the explicit device-to-host copy (counted as d2h); a host object is
    returned as ``numpy.asarray`` of it."""
    if isinstance(a, DeviceArray):
        return a.get(stream, order, out)
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    """``cupy.get_array_module``: this module if any argument is a device array, else numpy."""
    return cupy if any(isinstance(a, DeviceArray) for a in args) else numpy


def _make_cupy():
    m = _DeviceModule("cupy", numpy)
    m.__doc__ = "The strict stand-in for cupy (tests/strict_device.py)."
    m.__version__ = "0+strict-stand-in"
    m.ndarray = DeviceArray
    m.asarray = m.asanyarray = asarray
    m.array = array
    m.asnumpy = asnumpy
    m.get_array_module = get_array_module
    m.random = _Random()
    m.cuda = types.SimpleNamespace(
        Device=Device,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0,
                                      getDeviceProperties=lambda i: {"name": b"strict stand-in device"}))
    return m


#: the stand-in ``cupy`` module
cupy = _make_cupy()


# -- installing it ------------------------------------------------------------------------------

@contextlib.contextmanager
def installed():
    """Make the stand-in ``minibn.backend.cupy`` for a block, as if CuPy and a GPU were there.

    Sets ``backend.cupy`` (so ``backend.available()``, ``use("cupy")``, ``to_device(x, "gpu")``,
    ``is_gpu_array`` and ``get_array_module`` see it), clears the "no CuPy" errors, and adds
    :class:`DeviceArray` to ``PLAIN_ARRAYS`` wherever minibn bound it at import (on a GPU
    machine that tuple holds ``cupy.ndarray``). Leaves ``minibn.kernels.cuda_bn.cupy`` as it
    was bound at import (None here), so the numba-cuda kernels do not apply to stand-in arrays.
    Restores everything, the active backend included, afterwards. Yields :data:`COUNTER`, reset.
    """
    from minibn import _checks, backend
    from minibn.kernels import cuda_bn

    plain = (numpy.ndarray, DeviceArray)
    holders = [m for name, m in list(sys.modules.items())
               if name.startswith("minibn") and getattr(m, "PLAIN_ARRAYS", None) == _checks.PLAIN_ARRAYS]
    saved = {"cupy": backend.cupy, "_CUPY_ERROR": backend._CUPY_ERROR, "_active": backend._active,
             "_ENV_ERROR": backend._ENV_ERROR}
    saved_plain = [(m, m.PLAIN_ARRAYS) for m in holders]
    backend.cupy, backend._CUPY_ERROR, backend._ENV_ERROR = cupy, None, None
    for m in holders:
        m.PLAIN_ARRAYS = plain
    assert not cuda_bn.applies(DeviceArray._of(numpy.zeros(2))), "the numba-cuda kernels must not take stand-in arrays"
    COUNTER.reset()
    try:
        yield COUNTER
    finally:
        for name, value in saved.items():
            setattr(backend, name, value)
        for m, value in saved_plain:
            m.PLAIN_ARRAYS = value


def on_device(x):
    """A host array as a stand-in device array, without counting the transfer (for test setup)."""
    return DeviceArray._of(numpy.array(x))


def host(x):
    """A stand-in device array's values as a NumPy array, without counting (for test checks)."""
    return numpy.array(x._a) if isinstance(x, DeviceArray) else numpy.asarray(x)
