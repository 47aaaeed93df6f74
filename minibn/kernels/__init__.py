"""The speed path: the operations of :mod:`minibn.functional`, computed faster.

Each module here registers implementations of an operation (NumPy/CuPy in fewer passes,
numba loops on the CPU, numba-cuda kernels on the GPU); :mod:`minibn.dispatch` picks one.
Every implementation is tested against the teaching path.
"""
