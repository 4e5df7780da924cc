"""The engines and Keras agree on the same weights: per-step probabilities within 1e-5.

Both of generate(n=1)'s loops are checked (the C one in bot/engine/_lstm.c and the NumPy row), and
the batched NumPy step that serves several candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bot.engine.sampler
from bot.engine.card import EOS
from bot.engine.sampler import Sampler

DATA = Path(__file__).parent / "data" / "tiny"
TEXT = "Supposing that Truth is a woman -- what then? Is there not ground for suspecting?"


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("n_layer", [1, 3])
@pytest.mark.parametrize("engine", ["c", "numpy"])
def test_step_probabilities_match_keras(tmp_path: Path, n_layer: int, engine: str) -> None:
    pytest.importorskip("tensorflow")
    if engine == "c" and bot.engine.sampler._lstm is None:
        pytest.skip("bot.engine._lstm not built (test_native checks that it is, given a compiler)")
    import keras

    from bot.train.trainer import TrainConfig, train

    cfg = TrainConfig(
        name=f"parity{n_layer}", n_embd=12, n_hidden=20, n_layer=n_layer, dropout=0.2,
        seq_len=32, batch_size=8, epochs=1, warmup_steps=5, min_char_count=1,
    )  # fmt: skip
    out = tmp_path / cfg.name
    train(cfg, [DATA / "aphorisms.txt"], out, verbose=False)
    sampler = Sampler.load(out)
    sampler.native = engine == "c"
    ids = [EOS, *sampler.encode_prompt(TEXT)[0]]
    model = keras.saving.load_model(out / "model.keras")
    logits = model(np.array([ids], dtype=np.int32), training=False)
    z = keras.ops.convert_to_numpy(logits[0]).astype(np.float64)
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = sampler.probabilities(ids)
    assert got.shape == expected.shape == (len(ids), sampler.card.vocab_size)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    # And the trained weights are not trivial: the model prefers some characters.
    assert expected.max() > 2.0 / sampler.card.vocab_size
    # The batched path (several candidates) agrees too: three copies of the text as rows.
    state = sampler.zero_state(3)
    for t, token in enumerate(ids):
        batch_logits, state = sampler.step(np.full(3, token), state)
        z = batch_logits.astype(np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(
            p / p.sum(axis=1, keepdims=True), expected[t][None].repeat(3, 0), atol=1e-5, rtol=0
        )
