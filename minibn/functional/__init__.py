"""Pure functions: forward(x, params...) -> (y, cache); backward(dy, cache) -> grads.

No state lives here; :mod:`minibn.nn` wraps these in Modules.
"""

from .activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward
from .batchnorm import (
                         batch_norm_backward,
                         batch_norm_backward_paper,
                         batch_norm_forward,
                         batch_norm_inference_backward,
                         batch_norm_inference_forward,
                         update_running_stats,
)
from .batchnorm_fast import Workspace, batch_norm_backward_fast, batch_norm_forward_fast, fast_applicable
from .batchnorm_fused import (
                         batch_norm_backward_fused,
                         batch_norm_forward_fused,
                         batch_renorm_backward_fused,
                         batch_renorm_forward_fused,
                         fused_applicable,
                         fused_available,
                         memorized_batch_norm_backward_fused,
                         memorized_batch_norm_forward_fused,
                         use_fused,
)
from .conv import col2im, conv2d_backward, conv2d_forward, im2col
from .dropout import dropout_backward, dropout_forward
from .groupnorm import group_norm_backward, group_norm_forward
from .layernorm import layer_norm_backward, layer_norm_forward
from .linear import linear_backward, linear_forward
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .memorized import (
                         memorized_batch_norm_backward,
                         memorized_batch_norm_forward,
                         memory_weights,
                         pool_with_batch,
                         pooled_statistics,
)
from .pooling import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .renorm import (
                         batch_renorm_backward,
                         batch_renorm_forward,
                         batch_renorm_inference_backward,
                         batch_renorm_inference_forward,
)
from .standardize_fused import (
                         group_norm_backward_fused,
                         group_norm_forward_fused,
                         layer_norm_backward_fused,
                         layer_norm_forward_fused,
)
from .transnorm import split_point as transnorm_split_point
from .transnorm import transnorm_alpha, transnorm_backward, transnorm_forward

__all__ = [name for name in dir() if name.endswith(("_forward", "_backward", "_paper"))] + [
    "im2col", "col2im", "update_running_stats", "pooled_statistics", "pool_with_batch", "memory_weights",
    "transnorm_alpha", "transnorm_split_point", "Workspace", "fast_applicable", "fused_applicable", "fused_available",
    "use_fused"]
