"""The facts a benchmark's numbers depend on: the machine, its cores, and the versions of
the libraries timed."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from .. import backend


def cpu():
    """{"cpu": the processor's model name, "cores": the number of cores}, read without
    importing PyTorch or JAX (an experiment's record asks for these: importing PyTorch to learn
    its version, as :func:`machine` does, takes seconds)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return {"cpu": name, "cores": os.cpu_count()}


def machine():
    """{"cpu", "cores", "python", "numpy", "numba", "torch", "jax" (and "gpu", "cupy" with a GPU)}:
    what the CPU numbers depend on."""
    info = cpu() | {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import numba
        info["numba"] = f"{numba.__version__} ({numba.get_num_threads()} threads)"
    except ImportError:
        info["numba"] = "not installed (the fused BN path is off)"
    try:
        import torch
        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = "not installed (no PyTorch column)"
    # JAX is only timed in its own processes (bench.peers): its version, not imported here
    try:
        from importlib.metadata import PackageNotFoundError, version
        info["jax"] = version("jax")
    except PackageNotFoundError:
        info["jax"] = "not installed (no JAX row)"
    if backend.cupy is not None:  # pragma: no cover - GPU only
        import cupy
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["cupy"] = cupy.__version__
    return info


def gpu_machine(dev):
    """The device and the versions that its numbers depend on."""
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if dev.stand_in:
        info["device"] = "CPU stand-in (no CuPy with a CUDA device): NumPy, wall-clock times, PyTorch CPU"
    else:  # pragma: no cover - GPU only
        cupy = dev.xp
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["device"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        info["cupy"] = cupy.__version__
        info["cuda runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda driver"] = cupy.cuda.runtime.driverGetVersion()
    info["numpy"] = np.__version__
    for mod in ("numba", "numba_cuda"):
        try:
            info[mod.replace("_", "-")] = __import__(mod).__version__
        except Exception:
            info[mod.replace("_", "-")] = "not importable"
    if dev.torch is not None:
        info["torch"] = dev.torch.__version__ + ("" if dev.torch_device != "cuda" else
                                                  f" (CUDA {dev.torch.version.cuda})")
    else:
        info["torch"] = "not installed (no PyTorch column)"
    return info
