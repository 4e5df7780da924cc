"""Rebuild tests/data/tiny_persona, the committed model the fast sampler tests use.

    python tests/data/make_tiny_persona.py

Needs requirements-train.txt (TensorFlow). Two LSTM layers of 24 units on aphorisms.txt,
a few seconds on a laptop; the fast tests then run without TensorFlow.
"""

from pathlib import Path

from bot.train.trainer import TrainConfig, train

HERE = Path(__file__).parent

if __name__ == "__main__":
    cfg = TrainConfig(
        name="tiny_persona",
        n_embd=16,
        n_hidden=24,
        n_layer=2,
        dropout=0.0,
        seq_len=64,
        batch_size=8,
        epochs=40,
        warmup_steps=10,
        learning_rate=1e-2,
        min_char_count=1,
    )
    train(cfg, [HERE / "tiny" / "aphorisms.txt"], HERE / "tiny_persona", verbose=False)
