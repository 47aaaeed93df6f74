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
    return _fill(param, backend.rng().normal(mean, std, size=param.shape))


def uniform_(param, low, high):
    return _fill(param, backend.rng().uniform(low, high, size=param.shape))


def zeros_(param):
    return _fill(param, backend.rng().normal(size=param.shape) * 0.0)


def xavier_uniform_(param):
    fan_in, fan_out = _fans(param.shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(param, -a, a)


def xavier_normal_(param):
    fan_in, fan_out = _fans(param.shape)
    return normal_(param, std=math.sqrt(2.0 / (fan_in + fan_out)))


def he_normal_(param):
    fan_in, _ = _fans(param.shape)
    return normal_(param, std=math.sqrt(2.0 / fan_in))


def uniform_fan_in_(param, fan_in):
    bound = 1.0 / math.sqrt(fan_in)
    return uniform_(param, -bound, bound)


INITIALIZERS = {"normal": normal_, "xavier_uniform": xavier_uniform_, "xavier_normal": xavier_normal_,
                "he_normal": he_normal_}
