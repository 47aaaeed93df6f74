"""Every implementation of every operation, in one place (:func:`minibn.dispatch.register`).

For each operation, the ways to compute it, fastest first (``impl="auto"`` takes the first
that applies); the reference (the teaching path, :mod:`minibn.functional`) is always last.
Each is registered with its functions, so that a reader (and an editor, and a dead-code
tool) goes from a registration to its code. Importing the kernel modules is cheap: numba
and the CUDA kernels are imported when a compiled loop first runs
(:mod:`minibn.kernels.numba_cpu`, :mod:`minibn.kernels.cuda_loops`).

What the tests and ``minibn gradcheck`` check for each layer (shapes, bad inputs, the
PyTorch counterpart) is in :mod:`minibn.testing`. A new normalization layer is its
functional (teaching path), its layer, its tests, and its lines in both
(docs/architecture.md walks through it).
"""

from __future__ import annotations

from . import functional as F
from .dispatch import register
from .kernels import cuda_bn, fused_bn, fused_conv, fused_elementwise, fused_pool, fused_rows, numba_cpu, numpy_fast

#: the compiled CPU loops (numba): NumPy float32/float64 arrays, where numba is installed
NUMBA = dict(applies=numba_cpu.applies, check=numba_cpu.check, installed=numba_cpu.available)
#: the numba-cuda kernels: CuPy arrays, where numba-cuda is installed
CUDA = dict(applies=cuda_bn.applies, check=cuda_bn.check, installed=cuda_bn.installed)

# BatchNorm1d / BatchNorm2d (Algorithm 1)
register("batch_norm", "fused", fused_bn.batch_norm_forward_fused, fused_bn.batch_norm_backward_fused,
         running_update=fused_bn.update_running_stats_fused, **NUMBA)
register("batch_norm", "fused", cuda_bn.batch_norm_forward_cuda, cuda_bn.batch_norm_backward_cuda, **CUDA)
register("batch_norm", "fast", numpy_fast.batch_norm_forward_fast, numpy_fast.batch_norm_backward_fast,
         applies=numpy_fast.applies, check=numpy_fast.check, min_size=65536, workspace=True)
register("batch_norm", "reference", F.batch_norm_forward, F.batch_norm_backward)
# BatchNorm with backward="paper": the six chain-rule formulas need the reference's cache
register("batch_norm_paper", "reference", F.batch_norm_forward, F.batch_norm_backward_paper)
# GhostBatchNorm1d / 2d (Hoffer et al. 2017: Algorithm 1 on each virtual batch)
register("ghost_batch_norm", "reference", F.ghost_batch_norm_forward, F.ghost_batch_norm_backward)
# BatchRenorm1d / 2d
register("batch_renorm", "fused", fused_bn.batch_renorm_forward_fused, fused_bn.batch_renorm_backward_fused, **NUMBA)
register("batch_renorm", "fused", cuda_bn.batch_renorm_forward_cuda, cuda_bn.batch_renorm_backward_cuda, **CUDA)
register("batch_renorm", "reference", F.batch_renorm_forward, F.batch_renorm_backward)
# MemorizedBatchNorm1d / 2d
register("memorized_batch_norm", "fused", fused_bn.memorized_batch_norm_forward_fused,
         fused_bn.memorized_batch_norm_backward_fused, **NUMBA)
register("memorized_batch_norm", "fused", cuda_bn.memorized_batch_norm_forward_cuda,
         cuda_bn.memorized_batch_norm_backward_cuda, **CUDA)
register("memorized_batch_norm", "reference", F.memorized_batch_norm_forward, F.memorized_batch_norm_backward)
# TransNorm1d / 2d
register("transnorm", "reference", F.transnorm_forward, F.transnorm_backward)
# LayerNorm, RMSNorm, GroupNorm, InstanceNorm2d
register("layer_norm", "fused", fused_rows.layer_norm_forward_fused, fused_rows.layer_norm_backward_fused, **NUMBA)
register("layer_norm", "fused", cuda_bn.layer_norm_forward_cuda, cuda_bn.layer_norm_backward_cuda, **CUDA)
register("layer_norm", "reference", F.layer_norm_forward, F.layer_norm_backward)
register("rms_norm", "reference", F.rms_norm_forward, F.rms_norm_backward)
register("group_norm", "fused", fused_rows.group_norm_forward_fused, fused_rows.group_norm_backward_fused, **NUMBA)
register("group_norm", "fused", cuda_bn.group_norm_forward_cuda, cuda_bn.group_norm_backward_cuda, **CUDA)
register("group_norm", "reference", F.group_norm_forward, F.group_norm_backward)
register("instance_norm", "fused", fused_rows.instance_norm_forward_fused, fused_rows.instance_norm_backward_fused,
         **NUMBA)
register("instance_norm", "fused", cuda_bn.instance_norm_forward_cuda, cuda_bn.instance_norm_backward_cuda, **CUDA)
register("instance_norm", "reference", F.instance_norm_forward, F.instance_norm_backward)
# MaxPool2d, Conv2d
register("max_pool2d", "fused", fused_pool.max_pool2d_forward_fused, fused_pool.max_pool2d_backward_fused, **NUMBA)
register("max_pool2d", "reference", F.max_pool2d_forward, F.max_pool2d_backward)
register("conv2d", "fused", fused_conv.conv2d_forward_fused, fused_conv.conv2d_backward_fused, **NUMBA)
register("conv2d", "reference", F.conv2d_forward, F.conv2d_backward)
# ReLU, Sigmoid and the softmax cross-entropy loss (their backward returns dx, dlogits)
register("relu", "fused", fused_elementwise.relu_forward_fused, fused_elementwise.relu_backward_fused, **NUMBA)
register("relu", "reference", F.relu_forward, F.relu_backward)
register("sigmoid", "fused", fused_elementwise.sigmoid_forward_fused, fused_elementwise.sigmoid_backward_fused,
         **NUMBA)
register("sigmoid", "reference", F.sigmoid_forward, F.sigmoid_backward)
register("softmax_cross_entropy", "fused", fused_elementwise.softmax_cross_entropy_forward_fused,
         fused_elementwise.softmax_cross_entropy_backward_fused, **NUMBA)
register("softmax_cross_entropy", "reference", F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward)
