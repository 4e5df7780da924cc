"""`bot train`: turn a corpus into a persona in models/<name>/.

    bot train -p nietzsche --corpus a.txt --corpus b.txt --max-minutes 90

Reads text or JSONL posts (bot/train/data.py), trains Embedding -> LSTM x n -> Dense on
windows where every position is a target, with Adam, global-norm clipping, warm-up and a
cosine learning rate that follows the time budget (or the epochs when there is none).

A fresh model starts fast: the output bias is set to the corpus' log character frequencies
(Adam moves a bias ~lr per step, so learning "e is common, ξ is rare" from zero costs
thousands of steps and holds a deep LSTM on the unigram plateau), and the first few hundred
steps train on short windows (16, 32, 64 characters: many cheap updates while the model
learns spelling), then the full seq_len. BENCHMARKS.md measures both.

Validation loss is reported every epoch in nats/char and bits/char; the best weights by
validation loss are kept. `--max-minutes` stops cleanly and keeps the best; `--resume`
continues from the last epoch's checkpoint, with the checkpoint's train/validation split.
The persona directory is swapped in atomically (models/NAME is a symlink to a versioned
folder, flipped with one rename), so a running daemon never sees half a persona and a
crash never leaves none.

After the model, the persona's word list (words.npz) and critic (critic.npz) are written
(bot/train/curate.py): the critic learns the author's sentences against the new model's own
filtered candidates.

On 2 CPU cores a 3x256 model learns at ~10k chars/s; see BENCHMARKS.md for figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bot.core.errors import CorpusError, ModelError
from bot.engine.card import (
    ABC_LSTM,
    BARS_FILE,
    CARD_FILE,
    LOSS_PLOT_FILE,
    MODEL_FILE,
    N_SPECIAL,
    NGRAMS_FILE,
    Architecture,
    PersonaCard,
    read_card,
)
from bot.engine.novelty import build_index, save_index
from bot.train.artifacts import _atomic_dir, _plot, _versions
from bot.train.curate import CRITIC_FAKES, curate
from bot.train.data import MIN_CHARS_WARNING, Corpus, Vocab, build_vocab, load_corpus
from bot.train.loop import Budget, Checkpoints, WindowDataset, _StopAfter, validation_windows
from bot.train.model import build_model, distribution_scope
from bot.train.settings import TrainConfig

LN2 = math.log(2.0)
SAMPLE_TEMPERATURES = (0.2, 0.5, 0.8, 1.0)


def short_start(
    model: keras.Model,
    ids: np.ndarray,
    cfg: TrainConfig,
    budget: Budget,
    callbacks: list[keras.callbacks.Callback],
    say: Callable[[str], object] = print,
) -> int:
    """Train on the config's short windows before the full ones (a fresh model only).

    `budget` counts the steps and time (its learning-rate warm-up runs through here);
    `callbacks` are the caller's per-batch ones. No validation: that starts with epoch 1.
    Returns the characters trained on (targets).
    """
    chars = 0
    deadline = budget.budget_s * cfg.short_start_share if budget.budget_s else None
    for seq_len, steps in cfg.short_start:
        if seq_len >= cfg.seq_len or (deadline is not None and budget.elapsed >= deadline):
            continue
        data = WindowDataset(ids, seq_len, cfg.batch_size, cfg.seed + seq_len)
        stop = _StopAfter(steps, budget, deadline)
        history = model.fit(
            data, epochs=math.ceil(steps / len(data)), callbacks=[*callbacks, stop], verbose=0
        )
        loss = history.history["loss"][-1]
        chars += stop.done * cfg.batch_size * seq_len
        say(
            f"short start: {stop.done} steps on {seq_len}-char windows, train {loss:.4f} "
            f"nats/char  elapsed {budget.elapsed / 60:.1f} min"
        )
    return chars


def unigram_bias(model: keras.Model, ids: np.ndarray, only: list[int] | None = None) -> None:
    """Set the output bias to log character frequencies (add-one smoothed); with `only`,
    just those token ids (a fine-tune's characters the base never saw)."""
    logits = model.get_layer("logits")
    kernel, bias = logits.get_weights()
    counts = np.bincount(ids, minlength=len(bias)).astype(np.float64) + 1.0
    log_freq = np.log(counts / counts.sum()).astype(bias.dtype)
    picked = slice(None) if only is None else only
    bias[picked] = log_freq[picked]
    logits.set_weights([kernel, bias])


def _compile(model: keras.Model, cfg: TrainConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate, global_clipnorm=cfg.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=cfg.jit_compile,
    )


def _transplant(model: keras.Model, base_dir: Path, chars: list[str]) -> list[str]:
    """Copy a base persona's weights into `model`, mapping embedding rows and logit columns
    character by character; characters the base never saw keep their fresh init."""
    base_card = read_card(base_dir)
    base = keras.saving.load_model(base_dir / MODEL_FILE, compile=False)
    base_ids = {ch: i for i, ch in enumerate(base_card.itos)}
    base_ids.update({ch: i + N_SPECIAL for i, ch in enumerate(base_card.chars)})
    new_ids = list(range(N_SPECIAL)) + [base_ids.get(ch, -1) for ch in chars]
    fresh = [ch for ch in chars if ch not in base_ids]
    for layer in model.layers:
        if not layer.weights:
            continue
        src = base.get_layer(layer.name).get_weights()
        if layer.name == "embedding":
            (emb,) = layer.get_weights()
            for new, old in enumerate(new_ids):
                if old >= 0:
                    emb[new] = src[0][old]
            layer.set_weights([emb])
        elif layer.name == "logits":
            kernel, bias = layer.get_weights()
            for new, old in enumerate(new_ids):
                if old >= 0:
                    kernel[:, new], bias[new] = src[0][:, old], src[1][old]
            layer.set_weights([kernel, bias])
        else:
            layer.set_weights(src)
    return fresh


SPLIT_FLAGS = {"seed": "--seed", "val_fraction": "--val-fraction", "normalise": "--normalise"}


def _saved_split(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """The checkpoint's split settings (seed, validation fraction, normalisation), so that
    resuming never moves validation text into training; a value given on the command line
    (one that differs from both the default and the checkpoint) is refused."""
    defaults = TrainConfig(name=cfg.name)
    for key, flag in SPLIT_FLAGS.items():
        mine, theirs = getattr(cfg, key), saved.get(key, getattr(defaults, key))
        if mine != theirs and mine != getattr(defaults, key):
            raise ModelError(
                f"{flag} {mine} differs from the checkpoint's {theirs}: resuming keeps the saved"
                " train/validation split",
                f"drop {flag}, or train again without --resume",
            )
    return replace(cfg, **{key: saved[key] for key in SPLIT_FLAGS if key in saved})


def _val_sha256(corpus: Corpus) -> str:
    digest = hashlib.sha256()
    for document in corpus.val:
        digest.update(document.encode("utf-8") + b"\0")
    return digest.hexdigest()


def train(
    cfg: TrainConfig,
    corpus_paths: list[Path],
    out_dir: Path,
    *,
    resume: bool = False,
    from_dir: Path | None = None,
    verbose: bool = True,
    critic_samples: int = CRITIC_FAKES,
) -> PersonaCard:
    """Train a persona and write models/<name>/ atomically; returns the card written."""
    say = print if verbose else (lambda *a, **k: None)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    workdir = out_dir.with_name(f".{out_dir.name}.train")
    state: dict[str, Any]
    if resume:  # the split comes from the checkpoint, before the corpus is read
        if not (workdir / "state.json").is_file():
            raise ModelError(f"{workdir}: nothing to resume", "start without --resume first")
        state = json.loads((workdir / "state.json").read_text())
        cfg = _saved_split(cfg, state["config"])
    corpus: Corpus = load_corpus(
        corpus_paths, val_fraction=cfg.val_fraction, normalise=cfg.normalise, seed=cfg.seed
    )
    if corpus.n_chars < MIN_CHARS_WARNING:
        say(f"warning: {corpus.n_chars:,} characters is little; ~1M trains a good persona")

    if resume:
        if state["corpus_sha256"] != corpus.sha256:
            raise CorpusError(
                "the corpus changed since the checkpoint", "train again without --resume"
            )
        if state.get("val_sha256", _val_sha256(corpus)) != _val_sha256(corpus):
            raise CorpusError(
                "the validation split differs from the checkpoint's",
                "train again without --resume",
            )
        saved = dict(state["config"])
        saved["short_start"] = tuple(tuple(phase) for phase in saved.get("short_start", ()))
        cfg = replace(TrainConfig(**saved), epochs=cfg.epochs, max_minutes=cfg.max_minutes)
        vocab = Vocab(state["chars"], state["unknown"], cfg.rare)
    else:
        vocab = build_vocab(corpus.train, min_count=cfg.min_char_count, rare=cfg.rare)
    if vocab.unknown:
        shown = ", ".join(f"{ch!r} x{n}" for ch, n in list(vocab.unknown.items())[:12])
        more = f" and {len(vocab.unknown) - 12} more" if len(vocab.unknown) > 12 else ""
        action = "map to the unknown token" if cfg.rare == "unk" else "are dropped"
        say(f"{len(vocab.unknown)} rare characters {action}: {shown}{more}")
    train_ids, val_ids = vocab.encode(corpus.train), vocab.encode(corpus.val)
    data = WindowDataset(train_ids, cfg.seq_len, cfg.batch_size, cfg.seed)
    x_val, y_val = validation_windows(val_ids, cfg.seq_len)
    say(
        f"corpus: {len(corpus.files)} files, {corpus.n_chars:,} chars; "
        f"train {len(train_ids):,} / validation {len(val_ids):,} tokens; "
        f"vocabulary {len(vocab.chars) + N_SPECIAL}"
    )

    with distribution_scope():
        if resume:
            model = keras.saving.load_model(workdir / "last.keras")
            arch = Architecture(**state["architecture"])
            say(f"resuming after epoch {state['epoch']} ({state['elapsed_s'] / 60:.1f} min)")
        else:
            arch = Architecture(
                vocab_size=len(vocab.chars) + N_SPECIAL,
                n_embd=cfg.n_embd,
                n_hidden=cfg.n_hidden,
                n_layer=cfg.n_layer,
                dropout=cfg.dropout,
            )
            if from_dir is not None:
                base = read_card(from_dir).architecture
                arch = replace(
                    arch, n_embd=base.n_embd, n_hidden=base.n_hidden, n_layer=base.n_layer
                )
                cfg = replace(cfg, n_embd=base.n_embd, n_hidden=base.n_hidden, n_layer=base.n_layer)
            model = build_model(arch, seed=cfg.seed)
            if from_dir is not None:
                fresh = _transplant(model, from_dir, vocab.chars)
                say(f"fine-tuning from {from_dir} ({len(fresh)} new characters)")
                new_ids = [N_SPECIAL + vocab.chars.index(ch) for ch in fresh]
                unigram_bias(model, train_ids, only=new_ids)  # not 0: above every old one
            else:
                unigram_bias(model, train_ids)
            _compile(model, cfg)
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            state = {
                "config": asdict(cfg),
                "architecture": asdict(arch),
                "chars": vocab.chars,
                "unknown": vocab.unknown,
                "corpus_sha256": corpus.sha256,
                "val_sha256": _val_sha256(corpus),
                "from": str(from_dir) if from_dir else None,
                "history": [],
                "best_val_loss": float("inf"),
                "best_epoch": 0,
                "epoch": 0,
                "step": 0,
                "elapsed_s": 0.0,
                "trained_chars": 0,
            }
        say(f"model: {arch.n_layer} x LSTM({arch.n_hidden}), {model.count_params():,} parameters")
        budget = Budget(cfg, len(data), state["step"], state["elapsed_s"])
        callbacks: list[keras.callbacks.Callback] = [
            budget,
            Checkpoints(workdir, state, budget, verbose),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience),
        ]
        run_t0, short_chars = time.monotonic(), 0
        if state["step"] == 0 and from_dir is None:
            short_chars = short_start(model, train_ids, cfg, budget, [budget], say)
        step0 = budget.step
        if state["epoch"] < cfg.epochs:
            model.fit(
                data,
                validation_data=(x_val, y_val),
                validation_batch_size=cfg.batch_size * 4,
                epochs=cfg.epochs,
                initial_epoch=state["epoch"],
                callbacks=callbacks,
                verbose=1 if verbose else 0,
            )
        run_s = time.monotonic() - run_t0
        run_chars = (budget.step - step0) * cfg.batch_size * cfg.seq_len + short_chars
        state["trained_chars"] = state.get("trained_chars", 0) + run_chars
        (workdir / "state.json").write_text(json.dumps(state, indent=1))

    if not (workdir / "best.weights.h5").is_file():
        raise ModelError(
            "training stopped before the first validation", "give it more --max-minutes"
        )
    if budget.out_of_time:
        say(f"time budget of {cfg.max_minutes} min reached; keeping the best epoch")
    export = build_model(arch, seed=cfg.seed)  # uncompiled: no optimizer state in the artifact
    export.load_weights(workdir / "best.weights.h5")

    best = state["best_val_loss"]
    card = PersonaCard(
        name=cfg.name,
        chars=vocab.chars,
        architecture=arch,
        training={
            **{k: v for k, v in asdict(cfg).items() if k not in ("name",)},
            "epochs_run": state["epoch"],
            "best_epoch": state["best_epoch"],
            "from": state.get("from"),
            "rare_characters": vocab.unknown,
        },
        corpus={
            "files": [Path(f).name for f in corpus.files],
            "sha256": corpus.sha256,
            "bytes": corpus.n_bytes,
            "chars": corpus.n_chars,
            "train_tokens": len(train_ids),
            "val_tokens": len(val_ids),
        },
        metrics={
            "best_val_loss_nats_per_char": round(best, 4),
            "best_val_bits_per_char": round(best / LN2, 4),
            "train_seconds": round(state["elapsed_s"], 1),
            "chars_per_second": round(run_chars / run_s) if run_s > 0 else None,
            "parameters": int(export.count_params()),
            "history": state["history"],
        },
        versions=_versions(),
        novelty_n=cfg.novelty_n,
        kind=cfg.kind,
        created_at_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    with _atomic_dir(out_dir) as tmp:
        export.save(tmp / MODEL_FILE)
        card.write(tmp)
        save_index(build_index(corpus.train + corpus.val, cfg.novelty_n), tmp / NGRAMS_FILE)
        _plot(state["history"], tmp / LOSS_PLOT_FILE, f"{cfg.name}: best {best:.3f} nats/char")
        card = _with_samples(tmp, card, cfg.seed)
        if cfg.kind == ABC_LSTM:  # tunes: the phrase index; no word list, no prose critic
            from bot.music.novelty import build_bar_index, save_bar_index

            index = build_bar_index(corpus.train + corpus.val)
            save_bar_index(index, tmp / BARS_FILE)
            say(f"phrase index: {len(index):,} distinct 4-bar phrases")
        else:
            card = curate(tmp, corpus.train + corpus.val, corpus.train, seed=cfg.seed,
                          fakes=critic_samples, say=say)  # fmt: skip
    say(
        f"wrote {out_dir}: best validation loss {best:.4f} nats/char "
        f"({best / LN2:.3f} bits/char) at epoch {state['best_epoch']}"
    )
    return card


def _with_samples(directory: Path, card: PersonaCard, seed: int) -> PersonaCard:
    """One sample per temperature from the NumPy engine, stored in the card."""
    from bot.engine.sampler import Sampler

    sampler = Sampler.load(directory)
    rng = np.random.default_rng(seed)
    samples = {
        f"{t:.1f}": sampler.generate("", n=1, max_chars=200, temperature=t, rng=rng)[0].text
        for t in SAMPLE_TEMPERATURES
    }
    card = replace(card, samples=samples)
    (directory / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
    return card
