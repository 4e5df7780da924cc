"""`bot train` on tiny data: the artifact, resume, the time budget, fine-tuning, bad corpora."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bot.core.errors import CorpusError
from bot.engine.card import read_card
from bot.train.data import load_corpus

if TYPE_CHECKING:
    from bot.train.trainer import TrainConfig

DATA = Path(__file__).parent / "data" / "tiny"
BOT = Path(sys.executable).with_name("bot")


def tiny_config(name: str = "tiny", **overrides: object) -> TrainConfig:
    from bot.train.trainer import TrainConfig

    base = TrainConfig(
        name=name, n_embd=8, n_hidden=16, n_layer=1, dropout=0.0, seq_len=32, batch_size=8,
        epochs=2, warmup_steps=5, learning_rate=1e-2, min_char_count=1,
    )  # fmt: skip
    return replace(base, **overrides)


@pytest.fixture
def tf() -> None:
    pytest.importorskip("tensorflow")


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_training_writes_a_complete_loadable_persona(tmp_path: Path) -> None:
    import keras

    from bot.train.trainer import train

    out = tmp_path / "models" / "tiny"
    train(tiny_config(epochs=4), [DATA / "aphorisms.txt"], out, verbose=False, critic_samples=30)
    names = {p.name for p in out.iterdir()}
    written = {"card.json", "loss.png", "model.keras", "ngrams.npy", "words.npz"}
    # the critic only where enough of the young model's candidates passed the filters
    assert names - {"critic.npz"} == written
    assert ("critic.npz" in names) == ("critic" in read_card(out).curation)
    assert not list((tmp_path / "models").glob(".tiny.tmp-*"))  # nothing half-written left
    model = keras.saving.load_model(out / "model.keras")
    card = read_card(out)
    assert model.output_shape[-1] == card.vocab_size
    history = card.metrics["history"]
    assert history[-1]["loss"] < history[0]["loss"]  # it learned something
    assert card.metrics["best_val_loss_nats_per_char"] == pytest.approx(
        min(h["val_loss"] for h in history), abs=1e-4
    )
    assert card.metrics["best_val_bits_per_char"] == pytest.approx(
        card.metrics["best_val_loss_nats_per_char"] / 0.693147, abs=1e-3
    )
    assert card.corpus["sha256"] and card.corpus["chars"] > 10_000
    assert set(card.samples) == {"0.2", "0.5", "0.8", "1.0"}
    assert card.versions["keras"] == keras.__version__


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_a_trained_persona_is_readable_by_the_daemons_user(tmp_path: Path) -> None:
    """README's systemd unit and Docker image run `bot run` as another user than the one
    who trained: the folder is 0755 and its files 0644, as the shipped personas are."""
    from bot.train.trainer import train

    out = tmp_path / "models" / "tiny"
    old = os.umask(0o022)
    try:
        train(tiny_config(epochs=1), [DATA / "aphorisms.txt"], out, verbose=False,
              critic_samples=20)  # fmt: skip
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.resolve().stat().st_mode) == 0o755
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    from bot.train.trainer import train

    out = tmp_path / "tiny"
    train(tiny_config(epochs=1), [DATA / "aphorisms.txt"], out, verbose=False)
    card = train(tiny_config(epochs=3), [DATA / "aphorisms.txt"], out, resume=True, verbose=False)
    epochs = [h["epoch"] for h in card.metrics["history"]]
    assert epochs == [1, 2, 3]
    assert card.training["epochs_run"] == 3


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_a_resumed_training_counts_the_time_spent_before_against_its_budget(
    tmp_path: Path,
) -> None:
    """#26.19: a budget already spent before the interruption leaves one more step (its
    partial epoch validated), not the whole budget again."""
    from bot.train.trainer import train

    out = tmp_path / "tiny"
    train(tiny_config(epochs=4), [DATA / "aphorisms.txt"], out, verbose=False)
    spent = json.loads((tmp_path / ".tiny.train" / "state.json").read_text())["elapsed_s"]
    card = train(tiny_config(epochs=50, max_minutes=spent / 60), [DATA / "aphorisms.txt"], out,
                 resume=True, verbose=False)  # fmt: skip
    assert [h["epoch"] for h in card.metrics["history"]] == [1, 2, 3, 4, 5]


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_time_budget_stops_cleanly_and_keeps_the_best(tmp_path: Path) -> None:
    from bot.train.trainer import train

    out = tmp_path / "tiny"
    start = time.monotonic()
    card = train(
        tiny_config(epochs=500, max_minutes=0.15), [DATA / "aphorisms.txt"], out, verbose=False
    )
    assert time.monotonic() - start < 60
    assert card.training["epochs_run"] < 500
    assert (out / "model.keras").is_file()
    best = min(h["val_loss"] for h in card.metrics["history"])
    assert card.metrics["best_val_loss_nats_per_char"] == pytest.approx(best, abs=1e-4)


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_fine_tuning_maps_the_vocabularies(tmp_path: Path) -> None:
    from bot.train.trainer import train

    base = tmp_path / "base"
    train(tiny_config("base", epochs=3), [DATA / "aphorisms.txt"], base, verbose=False)
    posts = tmp_path / "posts.jsonl"
    posts.write_text((DATA / "posts.jsonl").read_text() * 3)
    # Fine-tuned and from scratch, same epochs: borrowing English must not hurt.
    tuned = train(tiny_config("tuned", epochs=3, n_hidden=99), [posts], tmp_path / "tuned",
                  from_dir=base, verbose=False)  # fmt: skip
    assert tuned.architecture.n_hidden == 16  # the base's shape wins over the flags
    assert tuned.training["from"] == str(base)
    scratch = train(tiny_config("scratch", epochs=3), [posts], tmp_path / "s", verbose=False)
    assert (
        tuned.metrics["best_val_loss_nats_per_char"]
        < scratch.metrics["best_val_loss_nats_per_char"]
    )


@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_a_fresh_model_starts_at_the_unigram_loss_not_the_uniform_one() -> None:
    import keras

    from bot.engine.card import Architecture
    from bot.train.data import build_vocab
    from bot.train.model import build_model
    from bot.train.trainer import WindowDataset, unigram_bias

    corpus = load_corpus([DATA / "aphorisms.txt"])
    vocab = build_vocab(corpus.train, min_count=1)
    ids = vocab.encode(corpus.train)
    n_vocab = len(vocab.chars) + 2
    model = build_model(Architecture(n_vocab, 8, 16, 1, 0.0))
    x, y = WindowDataset(ids, 32, 64, seed=1)[0]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = float(loss(y, model(x)))
    unigram_bias(model, ids)
    after = float(loss(y, model(x)))
    freq = np.bincount(ids, minlength=n_vocab) / len(ids)
    entropy = float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())
    assert before == pytest.approx(np.log(n_vocab), abs=0.05)  # uniform guess
    assert after == pytest.approx(entropy, abs=0.15)  # one batch vs the whole text
    assert after < before - 0.5


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_a_fresh_model_begins_on_short_windows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.train.trainer import train

    cfg = tiny_config(epochs=1, seq_len=64, short_start=((16, 20), (32, 10), (128, 5)))
    train(cfg, [DATA / "aphorisms.txt"], tmp_path / "a")
    out = capsys.readouterr().out
    assert "short start: 20 steps on 16-char windows" in out
    assert "short start: 10 steps on 32-char windows" in out
    assert "128-char" not in out  # never longer than seq_len
    assert out.index("short start") < out.index("epoch 1:")

    train(replace(cfg, short_start=()), [DATA / "aphorisms.txt"], tmp_path / "b")
    assert "short start" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no text"),
        (b"\x00\x01\x02binary\x00", "looks binary"),
        ("Caf\u00e9 au lait".encode("latin-1") * 10, "not UTF-8"),
        (b'{"text": "fine"}\n{"txt": "oops"}\n', ":2 is not a corpus record"),
    ],
)
def test_bad_corpora_are_one_clear_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / ("c.jsonl" if content.startswith(b"{") else "c.txt")
    path.write_bytes(content)
    with pytest.raises(CorpusError) as err:
        load_corpus([path])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_validation_is_held_out_text_never_trained_on() -> None:
    corpus = load_corpus([DATA / "aphorisms.txt"], val_fraction=0.1)
    train_text = "\n".join(corpus.train)
    assert corpus.val
    assert all(para not in train_text for para in corpus.val)
    tail = (DATA / "aphorisms.txt").read_text().split()[-5:]
    assert " ".join(tail) in corpus.val[-1]  # the end of the document is held out


def test_posts_become_documents_and_some_are_held_out() -> None:
    corpus = load_corpus([DATA / "posts.jsonl"], val_fraction=0.2)
    lines = [json.loads(line)["text"] for line in (DATA / "posts.jsonl").open()]
    assert len(corpus.train) + len(corpus.val) == len(lines)
    assert 0 < len(corpus.val) < len(lines)


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
def test_resume_keeps_the_saved_split_and_refuses_a_changed_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resuming used to split the corpus with the new command line's seed and validation
    fraction: validation text went into training."""
    from bot.core.errors import ModelError
    from bot.train.trainer import train

    out = tmp_path / "tiny"
    train(tiny_config(epochs=1, seed=7, val_fraction=0.2), [DATA / "aphorisms.txt"], out)
    first = re.search(r"validation ([\d,]+) tokens", capsys.readouterr().out)
    train(tiny_config(epochs=2), [DATA / "aphorisms.txt"], out, resume=True)  # defaults
    resumed = re.search(r"validation ([\d,]+) tokens", capsys.readouterr().out)
    assert first and resumed and resumed.group(1) == first.group(1)
    with pytest.raises(ModelError, match=r"--seed 9 differs from the checkpoint's 7"):
        train(tiny_config(epochs=3, seed=9), [DATA / "aphorisms.txt"], out, resume=True)


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
@pytest.mark.parametrize("legacy", [True, False], ids=["from-a-folder", "from-a-link"])
def test_model_swap_leaves_a_loadable_persona_at_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    """A crash at any file-system step of the swap leaves the old or the new persona in
    models/NAME, never none (the swap used to rename the old folder away first)."""
    import shutil

    from bot.train import artifacts

    class Crash(BaseException):
        pass

    step = 0
    while True:
        step += 1
        out = tmp_path / f"try{step}" / "tiny"
        if legacy:
            out.mkdir(parents=True)
            (out / "card.json").write_text("old")
        else:
            with artifacts._atomic_dir(out) as tmp:
                (tmp / "card.json").write_text("old")
        calls = [0]

        def crashing(fn: Any, calls: list[int] = calls, at: int = step) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                calls[0] += 1
                if calls[0] == at:
                    raise Crash
                return fn(*args, **kwargs)

            return call

        for owner, name in ((Path, "rename"), (Path, "replace"), (Path, "symlink_to"),
                            (shutil, "rmtree"), (artifacts, "_exchange")):  # fmt: skip
            monkeypatch.setattr(owner, name, crashing(getattr(owner, name)))
        try:
            with artifacts._atomic_dir(out) as tmp:
                (tmp / "card.json").write_text("new")
            crashed = False
        except Crash:
            crashed = True
        monkeypatch.undo()
        assert (out / "card.json").read_text() in ("old", "new"), f"crash at step {step}"
        if not crashed:
            assert (out / "card.json").read_text() == "new" and out.is_symlink()
            break
    assert step > 3


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.usefixtures("tf")
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no text in"),
        (b"\x00\x01\x02binary\x00", "looks binary"),
        (b"Too short to fill one batch.\n\nReally.\n", "shorter than one batch"),  # after import
    ],
    ids=["empty", "binary", "short"],
)
def test_bot_train_errors_are_one_line_without_tensorflow_logs(
    tmp_path: Path, content: bytes, message: str
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KERAS_"))}
    result = subprocess.run(
        [str(BOT), "train", "-p", "x", "--corpus", str(corpus), "--min-char-count", "1",
         "-o", str(tmp_path / "out")],
        check=False, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr


def test_quiet_import_drops_native_chatter_and_replays_it_on_failure(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.train.quiet import quiet_backend_import

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with quiet_backend_import():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
    assert capfd.readouterr().err == ""
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    with pytest.raises(ImportError), quiet_backend_import():
        os.write(2, b"E0000 libcudart.so: cannot open shared object file\n")
        raise ImportError("no backend")
    assert "libcudart.so: cannot open" in capfd.readouterr().err
    with quiet_backend_import(verbose=True):  # -v shows everything
        os.write(2, b"W0000 shown with -v\n")
    assert "shown with -v" in capfd.readouterr().err
