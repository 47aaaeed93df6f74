"""Stateful layers with explicit backward, on top of :mod:`minibn.functional` (and, for the
normalization layers, the implementations :mod:`minibn.dispatch` selects).

Every module lists its public names in ``__all__``; this package exports exactly those
(``nn.BatchNorm1d``, ...), and the submodule :mod:`minibn.nn.init`.
"""

from . import (
           activation,
           batchnorm,
           conv,
           init,
           linear,
           loss,
           memorized,
           module,
           norm,
           normalization,
           renorm,
           syncbn,
           transnorm,
)
from .activation import *  # noqa: F403
from .batchnorm import *  # noqa: F403
from .conv import *  # noqa: F403
from .linear import *  # noqa: F403
from .loss import *  # noqa: F403
from .memorized import *  # noqa: F403
from .module import *  # noqa: F403
from .norm import *  # noqa: F403
from .normalization import *  # noqa: F403
from .renorm import *  # noqa: F403
from .syncbn import *  # noqa: F403
from .transnorm import *  # noqa: F403

__all__ = ["init", *module.__all__, *linear.__all__, *conv.__all__, *activation.__all__, *loss.__all__,
           *norm.__all__, *batchnorm.__all__, *syncbn.__all__, *renorm.__all__, *memorized.__all__,
           *transnorm.__all__, *normalization.__all__]
