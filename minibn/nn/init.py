"""Weight initializers. Each fills a Parameter in place (on its device) and returns it.

* :func:`normal_` - N(0, std^2), the "small random Gaussian values" of the BN paper.
* :func:`xavier_uniform_`, :func:`xavier_normal_` - Glorot & Bengio 2010: Var = 2 / (fan_in + fan_out).
* :func:`he_normal_` - He et al. 2015: Var = 2 / fan_in, for ReLU networks.
* :func:`uniform_fan_in_` - U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the default of Linear and Conv2d
  (what PyTorch's default init amounts to).
"""

from __future__ import annotations

import math

from .. import backend


def _fans(shape):
    """(fan_in, fan_out) of a weight of shape (out, in) or (out, in, kh, kw)."""
    receptive = 1
    for s in shape[2:]:
        receptive *= s
    return shape[1] * receptive, shape[0] * receptive


def _fill(param, host_values):
    """Write the values into the parameter's array (keeping its device, dtype and memory layout)."""
    xp = backend.get_array_module(param.data)
    param.data[...] = xp.asarray(backend.to_device(host_values.astype(param.data.dtype), backend.device_of(param.data)))
    return param


def normal_(param, std=0.01, mean=0.0):
    """Fill ``param`` with N(mean, std^2) values: the "small random Gaussian values" of the BN paper.

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).
    std : float, optional
        The standard deviation.
    mean : float, optional
        The mean.

    Returns
    -------
    Parameter
        param itself.
    """
    return _fill(param, backend.rng().normal(mean, std, size=param.shape))


def uniform_(param, low, high):
    """Fill ``param`` with U(low, high) values.

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).
    low, high : float
        The bounds.

    Returns
    -------
    Parameter
        param itself.
    """
    return _fill(param, backend.rng().uniform(low, high, size=param.shape))


def zeros_(param):
    """Fill ``param`` with zeros.

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).

    Returns
    -------
    Parameter
        param itself.
    """
    return _fill(param, backend.rng().normal(size=param.shape) * 0.0)


def xavier_uniform_(param):
    """Glorot & Bengio 2010, uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).

    For a weight (out, in), fan_in = in and fan_out = out; for (out, in, kh, kw) both are
    multiplied by kh * kw.

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).

    Returns
    -------
    Parameter
        param itself.
    """
    fan_in, fan_out = _fans(param.shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(param, -a, a)


def xavier_normal_(param):
    """Glorot & Bengio 2010, normal: N(0, 2 / (fan_in + fan_out)).

    For a weight (out, in), fan_in = in and fan_out = out; for (out, in, kh, kw) both are
    multiplied by kh * kw.

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).

    Returns
    -------
    Parameter
        param itself.
    """
    fan_in, fan_out = _fans(param.shape)
    return normal_(param, std=math.sqrt(2.0 / (fan_in + fan_out)))


def he_normal_(param):
    """He et al. 2015, for ReLU networks: N(0, 2 / fan_in).

    For a weight (out, in), fan_in = in; for (out, in, kh, kw), in * kh * kw.

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).

    Returns
    -------
    Parameter
        param itself.
    """
    fan_in, _ = _fans(param.shape)
    return normal_(param, std=math.sqrt(2.0 / fan_in))


def uniform_fan_in_(param, fan_in):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the default of Linear and Conv2d (what PyTorch's default init amounts to).

    Parameters
    ----------
    param : Parameter
        The parameter to fill, in place (its device, dtype and memory layout are kept).
    fan_in : int
        The number of inputs of each output unit (in, or in * kh * kw).

    Returns
    -------
    Parameter
        param itself.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return uniform_(param, -bound, bound)


INITIALIZERS = {"normal": normal_, "xavier_uniform": xavier_uniform_, "xavier_normal": xavier_normal_,
                "he_normal": he_normal_}
