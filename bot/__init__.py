"""Revenant: a persona bot that brings a voice back to life.

Only the version lives here: importing `bot` must stay cheap (no NumPy, no TensorFlow),
so `bot --help` answers at once.
"""

__version__ = "0.1.0"
