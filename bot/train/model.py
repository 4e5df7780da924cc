"""The persona model: Embedding -> n_layer stacked LSTMs -> Dense logits over the vocabulary.

Written in Keras 3 terms only, so it trains on any backend (TensorFlow by default, JAX or
torch on the lent GPU machines). The LSTM layers keep cuDNN-compatible settings (tanh,
sigmoid, no recurrent dropout, not unrolled, biases on), so Keras takes the cuDNN kernel
whenever a GPU is visible; dropout sits between layers as its own layer for that reason.
The NumPy sampler (bot/engine/sampler.py) reimplements exactly this forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from bot.engine.card import Architecture


def build_model(arch: Architecture, *, seed: int = 1337) -> keras.Model:
    """An uncompiled model taking int32 ids [batch, time] and returning logits [b, t, vocab]."""
    inputs = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(arch.vocab_size, arch.n_embd, name="embedding")(inputs)
    for i in range(arch.n_layer):
        x = keras.layers.LSTM(
            arch.n_hidden,
            return_sequences=True,
            seed=seed + i,
            name=f"lstm_{i}",
        )(x)
        if arch.dropout > 0:
            x = keras.layers.Dropout(arch.dropout, seed=seed + 100 + i, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(arch.vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="persona")


def count_gpus() -> int:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return sum(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 0


@contextlib.contextmanager
def distribution_scope() -> Iterator[None]:
    """Use every visible GPU: MirroredStrategy on TensorFlow, DataParallel on JAX."""
    gpus = count_gpus()
    backend = keras.backend.backend()
    if gpus > 1 and backend == "tensorflow":
        import tensorflow as tf

        with tf.distribute.MirroredStrategy().scope():
            yield
        return
    if gpus > 1 and backend == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    yield
