"""THE TEACHING PATH: the papers as written, as pure functions.

forward(x, params...) -> (y, cache); backward(dy, cache) -> gradients. No state lives
here (:mod:`minibn.nn` wraps these in Modules) and no speed trick either: the faster
implementations of the same operations are in :mod:`minibn.kernels`. Each module lists
its functions in ``__all__``; they are all re-exported here (``F.batch_norm_forward``).
"""

from .activation import *  # noqa: F403
from .batchnorm import *  # noqa: F403
from .conv import *  # noqa: F403
from .dropout import *  # noqa: F403
from .groupnorm import *  # noqa: F403
from .layernorm import *  # noqa: F403
from .linear import *  # noqa: F403
from .loss import *  # noqa: F403
from .memorized import *  # noqa: F403
from .pooling import *  # noqa: F403
from .renorm import *  # noqa: F403
from .standardize import *  # noqa: F403
from .syncbn import *  # noqa: F403
from .transnorm import *  # noqa: F403
