"""Read a persona's model.keras without Keras: the layers' arrays from the zip's HDF5, and
the gate layout the NumPy and C engines use.

Keras orders an LSTM's gate columns (i, f, g, o); the engines reorder them (i, f, o, g) and
halve the sigmoid ones, so one tanh over all 4H columns gives every gate
(sigmoid(z) = (1 + tanh(z/2)) / 2). Never imports TensorFlow or Keras.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np

from bot.core.errors import ModelError
from bot.engine.card import PersonaCard


def _sigmoid_prescale(w: np.ndarray, h: int) -> np.ndarray:
    """Reorder Keras' gate columns (i, f, g, o) to (i, f, o, g); halve the sigmoid ones."""
    i, f, g, o = (w[..., k * h : (k + 1) * h] for k in range(4))
    return np.concatenate([0.5 * i, 0.5 * f, 0.5 * o, g], axis=-1).astype(np.float32)


def _read_weights(path: Path, card: PersonaCard) -> dict[str, list[np.ndarray]]:
    """Layer name (as in config.json) -> its arrays, read from the zip with h5py."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
            weights = io.BytesIO(zf.read("model.weights.h5"))
    except FileNotFoundError as err:
        raise ModelError(
            f"{path}: model file missing", f"run `bot train -p {card.name}` or fix the path"
        ) from err
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as err:
        raise ModelError(
            f"{path}: not a complete Keras model file ({err})",
            f"the file is truncated or corrupt; retrain with `bot train -p {card.name}`",
        ) from err
    out: dict[str, list[np.ndarray]] = {}
    seen: dict[str, int] = {}
    try:
        with h5py.File(weights, "r") as h5:
            for layer in config["config"]["layers"]:
                # Keras names weight groups by class, snake_case, numbered in order of use.
                cls = _snake(layer["class_name"])
                k = seen.get(cls, 0)
                seen[cls] = k + 1
                group = h5["layers"][cls if k == 0 else f"{cls}_{k}"]
                if "cell" in group:
                    group = group["cell"]
                arrays = [np.asarray(group["vars"][str(j)]) for j in range(len(group["vars"]))]
                out[layer["config"]["name"]] = arrays
    except (KeyError, OSError, ValueError) as err:
        raise ModelError(
            f"{path}: weights do not match the model's layers ({err})",
            f"retrain with `bot train -p {card.name}`",
        ) from err
    return out


def _snake(name: str) -> str:
    """Keras' own to_snake_case: "LSTM" -> "lstm", "InputLayer" -> "input_layer"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
