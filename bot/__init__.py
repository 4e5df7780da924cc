"""Revenant: a persona bot that brings a voice back to life.

Importing `bot` must stay cheap (no NumPy, no TensorFlow), so `bot --help` answers at once.
"""

import os

# NumPy's OpenBLAS starts one thread per core. For the sampler's small matrix products a
# second thread gains little, and when the core is busy (a training beside the daemon, a
# neighbour on a shared host) its spin-waits stall every step: measured 44 ms instead of
# 1.8 ms per character on 2 busy cores. One thread unless the user sets the variable;
# it must be set before NumPy is first imported, hence here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
