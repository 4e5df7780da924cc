"""Training speed on CPU: our trainer's setup against two references, on the same data.

    python bench/train_speed.py --corpus /work/shared/corpora/nietzsche_*.txt

Every variant trains in its own process (so thread settings take effect and memory is
freed), for a fixed wall-clock budget, on the same training ids (bot.train.data, validation
held out as `bot train` does), and is evaluated on the same held-out positions:

  ours      the trainer's setup: Embedding -> n_layer x LSTM(hidden) -> Dense from
            bot.train.model.build_model, every position a target, WindowDataset batches of
            64 x 128, Adam with global-norm clipping and the trainer's warm-up + cosine
            schedule over the budget (bot.train.trainer's own TrainConfig and compile), and
            its fresh-model start: output bias at the log unigram frequencies, then the
            short-window phases (trainer.short_start) before the 128-character windows.
            chars/s is the main phase's; validation loss counts the whole run.
  plain     ours without that start (zero output bias, 128-character windows from step 1):
            the trainer before the start was added, for the ablation.
  classic   (a) the Keras example recipe (keras.io lstm_character_level_text_generation):
            one-hot 40-character windows, step 3, one target per window, LSTM(128) ->
            Dense softmax, RMSprop(learning_rate=0.01), batch 128. The one-hot batches are
            built per batch (a PyDataset) instead of one 2 GB array; the model sees the same.
  defaults  (b) "a plain model.fit of the same architecture with default settings": the
            same layers as ours (Embedding, n_layer x LSTM(hidden), dropout, Dense), but
            trained the classic way, with Keras defaults: 40-character windows, step 3, one
            target per window (the last LSTM returns its last step), model.fit(x, y) on
            NumPy arrays, batch_size=32 (the default), Adam() at its default 1e-3, no
            clipping, no schedule.

Validation, the same for all: next-character loss (nats/char) at --val-windows positions
spread over the held-out text, each predicted from the 40 characters before it (the
classic recipe's context; sequence models read the same 40 and are scored on the last).
That is higher than the trainer's own validation loss, which uses up to 128 characters.

Then short runs of `ours` (main loop only, no short start) justify its defaults: XLA
jit_compile, batch 32/128, sequence 64/256, TensorFlow thread settings (intra/inter op). Reported: training chars/s (targets
per second after warm-up; 1 per window for the one-target recipes), corpus chars/s (how fast
an epoch moves through the text), warm-up time, validation loss per minute of training,
and the time ours needs to reach the loss (b) ends at. Evaluation time is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# -----------------------------------------------------------------------------
corpus = sorted(str(p) for p in Path("/work/shared/corpora").glob("nietzsche_*.txt"))
minutes = 3.0  # budget for each of ours / classic / defaults
sweep_minutes = 1.0  # budget for each setting of ours in the sweep
hidden = 256  # ours and (b): LSTM units per layer (the shipped persona: 256)
layers = 3  # ours and (b): stacked LSTM layers (the shipped persona: 3)
window = 40  # the Keras example's maxlen
step = 3  # the Keras example's window step
val_windows = 2048  # held-out positions scored
eval_every_s = 60.0  # training seconds between evaluations in the main runs
warmup_steps = 5  # steps excluded from chars/s (graph building, XLA compilation)
lr_warmup_steps = 20  # ours: the trainer's 200 are ~3% of a 90-min run; 20 keeps that share
seed = 1337
# -----------------------------------------------------------------------------

MAIN = ["ours", "plain", "classic", "defaults"]
MAIN_EXTRA: dict[str, dict[str, Any]] = {"plain": {"kind": "ours", "short_start": False}}
SWEEP: dict[str, dict[str, Any]] = {
    "jit": {"jit_compile": True},
    "batch32": {"batch_size": 32},
    "batch128": {"batch_size": 128},
    "seq64": {"seq_len": 64},
    "seq256": {"seq_len": 256},
    "threads1x1": {"intra": 1, "inter": 1},
    "threads2x1": {"intra": 2, "inter": 1},
}


# --- the worker: one variant, in its own process ----------------------------------------


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    if spec.get("intra"):  # before TensorFlow runs anything
        tf.config.threading.set_intra_op_parallelism_threads(spec["intra"])
    if spec.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter"])
    import keras

    from bot.engine.card import N_SPECIAL
    from bot.train.data import build_vocab, load_corpus

    keras.utils.set_random_seed(spec["seed"])
    corpus_ = load_corpus([Path(p) for p in spec["corpus"]], seed=spec["seed"])
    vocab = build_vocab(corpus_.train)
    train_ids, val_ids = vocab.encode(corpus_.train), vocab.encode(corpus_.val)
    n_vocab = len(vocab.chars) + N_SPECIAL
    pos = np.linspace(window, len(val_ids) - 1, min(spec["val_windows"], len(val_ids) - window))
    pos = pos.astype(int)
    x_val = val_ids[pos[:, None] - window + np.arange(window)]
    y_val = val_ids[pos]

    kind = spec["kind"]
    if kind == "ours":
        model, data, fit_kwargs, per_step, schedule = _ours(spec, n_vocab, train_ids)
    elif kind == "classic":
        model, data, fit_kwargs, per_step, schedule = _classic(spec, n_vocab, train_ids)
        x_val = np.eye(n_vocab, dtype=np.float32)[x_val]
    else:
        model, data, fit_kwargs, per_step, schedule = _defaults(spec, n_vocab, train_ids)
    lr_at = schedule.lr_at if schedule is not None else None

    def evaluate() -> float:
        out = model.predict(x_val, batch_size=256, verbose=0).astype(np.float64)
        if out.ndim == 3:
            out = out[:, -1]
        if kind == "classic":  # softmax probabilities
            return float(-np.mean(np.log(np.maximum(out[np.arange(len(y_val)), y_val], 1e-12))))
        out -= out.max(axis=1, keepdims=True)
        logp = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
        return float(-np.mean(logp[np.arange(len(y_val)), y_val]))

    clock = make_clock(keras, spec["minutes"] * 60, spec["eval_every_s"], evaluate, lr_at)
    if kind == "ours" and spec.get("short_start", True):  # the trainer's fresh-model start
        from bot.train.trainer import short_start

        short_start(model, train_ids, schedule.cfg, schedule, [clock], say=lambda *a, **k: None)
        clock.short_steps, clock.short_s = clock.step, clock.train_s
    clock.main = True
    if not clock.out_of_time:
        model.fit(data, epochs=1_000_000, callbacks=[clock], verbose=0, **fit_kwargs)
    main_steps = clock.step - clock.short_steps
    main_s = clock.train_s - clock.short_s
    if main_steps > warmup_steps:
        steady_s, steady_steps = main_s - clock.warm_s, main_steps - warmup_steps
    else:  # too short to leave the warm-up out
        steady_s, steady_steps = main_s, main_steps
    return {
        "name": spec["name"],
        "kind": kind,
        "parameters": int(model.count_params()),
        "targets_per_step": per_step[0],
        "steps": clock.step,
        "short_start_steps": clock.short_steps,
        "short_start_s": clock.short_s,
        "train_s": clock.train_s,
        "warmup_s": clock.warm_s,
        "chars_per_s": per_step[0] * steady_steps / steady_s if steady_s > 0 else None,
        "corpus_chars_per_s": per_step[1] * steady_steps / steady_s if steady_s > 0 else None,
        "evals": clock.evals,
        "eval_every_s": spec["eval_every_s"],
        "budget_s": spec["minutes"] * 60,
        "train_chars": len(train_ids),
        "threads": [
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ],
    }


def make_clock(keras: Any, budget_s: float, eval_every: float, evaluate: Any, lr_at: Any) -> Any:
    """A callback: training time without evaluation pauses, evals, the budget, the LR.

    One clock spans every fit() call of a run (the short start's phases, then the main one),
    so its state starts at construction, not at on_train_begin."""

    class _Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.t0, self.paused, self.step, self.warm_s = time.perf_counter(), 0.0, 0, 0.0
            self.evals: list[dict[str, float]] = []
            self.next_eval = eval_every
            self.short_steps, self.short_s, self.out_of_time = 0, 0.0, False
            self.main = False  # in the main fit (not a short-start phase)

        @property
        def train_s(self) -> float:
            return time.perf_counter() - self.t0 - self.paused

        def _eval(self) -> None:
            t = time.perf_counter()
            self.evals.append({"train_s": self.train_s, "step": self.step, "val": evaluate()})
            self.paused += time.perf_counter() - t

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if lr_at is not None:
                self.model.optimizer.learning_rate.assign(lr_at(self.step, self.train_s))

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if self.main and self.step - self.short_steps == warmup_steps:
                self.warm_s = self.train_s - self.short_s  # main phase's compilation excluded
            if self.train_s >= budget_s:
                self.model.stop_training = self.out_of_time = True
                self._eval()
            elif self.train_s >= self.next_eval:
                self._eval()
                self.next_eval += eval_every

    return _Clock()


def _ours(spec: dict[str, Any], n_vocab: int, ids: np.ndarray) -> tuple:
    from bot.engine.card import Architecture
    from bot.train.model import build_model
    from bot.train.trainer import Budget, TrainConfig, WindowDataset, _compile, unigram_bias

    cfg = TrainConfig(
        name="bench",
        n_hidden=spec["hidden"],
        n_layer=spec["layers"],
        max_minutes=spec["minutes"],
        seed=spec["seed"],
        warmup_steps=spec["lr_warmup_steps"],
        **{k: spec[k] for k in ("batch_size", "seq_len", "jit_compile") if k in spec},
    )
    arch = Architecture(n_vocab, cfg.n_embd, cfg.n_hidden, cfg.n_layer, cfg.dropout)
    model = build_model(arch, seed=cfg.seed)
    _compile(model, cfg)
    data = WindowDataset(ids, cfg.seq_len, cfg.batch_size, cfg.seed)
    if spec.get("short_start", True):
        unigram_bias(model, ids)  # what `bot train` does to a fresh model
    schedule = Budget(cfg, len(data), 0, 0.0)  # the trainer's warm-up + cosine, by time
    per_step = (cfg.batch_size * cfg.seq_len, cfg.batch_size * cfg.seq_len)
    return model, data, {}, per_step, schedule


def _classic(spec: dict[str, Any], n_vocab: int, ids: np.ndarray) -> tuple:
    import keras

    class OneHotWindows(keras.utils.PyDataset):
        """The example's x[i, t, char] = 1 and y[i, next_char] = 1, one batch at a time."""

        def __init__(self, batch_size: int) -> None:
            super().__init__()
            self.starts = np.arange(0, len(ids) - window, step)
            self.batch_size, self.eye = batch_size, np.eye(n_vocab, dtype=bool)
            self.rng = np.random.default_rng(spec["seed"])
            self.on_epoch_end()

        def on_epoch_end(self) -> None:
            self.rng.shuffle(self.starts)

        def __len__(self) -> int:
            return math.ceil(len(self.starts) / self.batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            s = self.starts[i * self.batch_size : (i + 1) * self.batch_size]
            return self.eye[ids[s[:, None] + np.arange(window)]], self.eye[ids[s + window]]

    model = keras.Sequential(
        [
            keras.Input(shape=(window, n_vocab)),
            keras.layers.LSTM(128),
            keras.layers.Dense(n_vocab, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(0.01))
    return model, OneHotWindows(128), {}, (128, 128 * step), None


def _defaults(spec: dict[str, Any], n_vocab: int, ids: np.ndarray) -> tuple:
    import keras

    from bot.train.trainer import TrainConfig

    cfg = TrainConfig(name="bench", n_hidden=spec["hidden"], n_layer=spec["layers"])
    inputs = keras.Input(shape=(window,), dtype="int32")
    x = keras.layers.Embedding(n_vocab, cfg.n_embd)(inputs)
    for i in range(cfg.n_layer):
        x = keras.layers.LSTM(cfg.n_hidden, return_sequences=i < cfg.n_layer - 1)(x)
        x = keras.layers.Dropout(cfg.dropout)(x)
    model = keras.Model(inputs, keras.layers.Dense(n_vocab)(x))
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    starts = np.arange(0, len(ids) - window, step)
    x_train = ids[starts[:, None] + np.arange(window)]
    y_train = ids[starts + window]
    return model, x_train, {"y": y_train}, (32, 32 * step), None  # batch_size=32: the default


# --- the parent: run the variants, print the tables ---------------------------------------


def run_variant(spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="revenant-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--worker", json.dumps(spec), "--out", str(out)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        limit = spec["minutes"] * 60 * 2 + 600  # evaluation pauses, imports, compilation
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, check=False, env=env, capture_output=True, text=True, timeout=limit
            )
        except subprocess.TimeoutExpired:
            return {"name": spec["name"], "error": f"timed out after {limit:.0f} s"}
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"name": spec["name"], "error": f"exit {proc.returncode}: {tail[0][:200]}"}
        res = json.loads(out.read_text())
        res["wall_s"] = wall
        return res


def best_val(res: dict[str, Any]) -> float | None:
    return min((e["val"] for e in res.get("evals", [])), default=None)


def time_to(res: dict[str, Any], target: float) -> float | None:
    """Training seconds until the validation loss first reaches `target` (interpolated)."""
    prev_t, prev_v = 0.0, math.inf
    for e in res.get("evals", []):
        if e["val"] <= target:
            if math.isinf(prev_v):
                return e["train_s"]
            frac = (prev_v - target) / (prev_v - e["val"])
            return prev_t + frac * (e["train_s"] - prev_t)
        prev_t, prev_v = e["train_s"], e["val"]
    return None


def loss_at(res: dict[str, Any], t: float) -> float | None:
    """The run's last validation loss evaluated at or before `t` training seconds (+1 s)."""
    seen = [e["val"] for e in res.get("evals", []) if e["train_s"] <= t + 1.0]
    return seen[-1] if seen else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", default=corpus, help="text files")
    ap.add_argument("--minutes", type=float, default=minutes, help="per main variant")
    ap.add_argument("--sweep-minutes", type=float, default=sweep_minutes, help="per sweep run")
    ap.add_argument("--hidden", type=int, default=hidden)
    ap.add_argument("--layers", type=int, default=layers)
    ap.add_argument("--lr-warmup-steps", type=int, default=lr_warmup_steps, help="ours")
    ap.add_argument("--val-windows", type=int, default=val_windows)
    ap.add_argument("--eval-every", type=float, default=eval_every_s, help="training seconds")
    ap.add_argument("--only", help=f"comma list of {','.join(MAIN + list(SWEEP))}")
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(json.loads(args.worker))))
        return

    names = args.only.split(",") if args.only else MAIN + list(SWEEP)
    unknown = set(names) - set(MAIN) - set(SWEEP)
    if unknown:
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if not args.corpus:
        ap.error("no corpus files; pass --corpus")
    base = {
        "corpus": args.corpus,
        "hidden": args.hidden,
        "layers": args.layers,
        "val_windows": args.val_windows,
        "seed": args.seed,
        "lr_warmup_steps": args.lr_warmup_steps,
    }
    specs = []
    for name in names:
        if name in MAIN:
            specs.append(
                {
                    **base,
                    "name": name,
                    "kind": name,
                    "minutes": args.minutes,
                    "eval_every_s": args.eval_every,
                    **MAIN_EXTRA.get(name, {}),
                }
            )
        else:
            specs.append(
                {
                    **base,
                    **SWEEP[name],
                    "name": name,
                    "kind": "ours",
                    "short_start": False,  # the main loop's speed, from its first step
                    "minutes": args.sweep_minutes,
                    "eval_every_s": 1e9,
                }
            )
    budget = sum(s["minutes"] for s in specs)
    print(
        f"{len(specs)} variants, {budget:.1f} min of training plus imports, compilation and "
        f"evaluation; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; corpus {len(args.corpus)} files",
        flush=True,
    )

    results = []
    for spec in specs:
        print(f"  {spec['name']} ({spec['minutes']:g} min) ...", end=" ", flush=True)
        res = run_variant(spec)
        results.append(res)
        if "error" in res:
            print(res["error"], flush=True)
        else:
            print(
                f"{res['chars_per_s']:,.0f} chars/s, val {best_val(res):.3f} "
                f"({res['wall_s']:.0f} s wall)",
                flush=True,
            )
    report(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))


def report(results: list[dict[str, Any]]) -> None:
    ok = {r["name"]: r for r in results if "error" not in r}
    print(
        f"\n{'variant':<12}{'params':>10}{'chars/s':>10}{'corpus/s':>10}{'steps':>7}"
        f"{'warm-up':>9}{'best val':>9}  threads"
    )
    print("-" * 78)
    for r in results:
        if "error" in r:
            print(f"{r['name']:<12}  failed: {r['error']}")
            continue
        print(
            f"{r['name']:<12}{r['parameters']:>10,}{r['chars_per_s']:>10,.0f}"
            f"{r['corpus_chars_per_s']:>10,.0f}{r['steps']:>7}{r['warmup_s']:>8.1f}s"
            f"{best_val(r):>9.3f}  {'/'.join(str(t or 'auto') for t in r['threads'])}"
        )

    main_runs = [ok[n] for n in MAIN if n in ok]
    if main_runs:
        print("\nvalidation loss (nats/char, 40-char context) by minutes of training")
        print(f"{'min':>6}" + "".join(f"{r['name']:>10}" for r in main_runs))
        for k in range(max(len(r["evals"]) for r in main_runs)):
            row = [r["evals"][k]["val"] if k < len(r["evals"]) else None for r in main_runs]
            nominal = min((k + 1) * main_runs[0]["eval_every_s"], main_runs[0]["budget_s"])
            print(
                f"{nominal / 60:>6.2f}" + "".join(f"{v:>10.3f}" if v else f"{'':>10}" for v in row)
            )

    if "ours" in ok:
        ours = ok["ours"]
        print("\nratios")
        for ref in ("plain", "classic", "defaults"):
            if ref not in ok:
                continue
            r = ok[ref]
            print(
                f"  ours / {ref}: chars/s {ours['chars_per_s'] / r['chars_per_s']:.1f}x, "
                f"corpus chars/s {ours['corpus_chars_per_s'] / r['corpus_chars_per_s']:.1f}x, "
                f"final val {best_val(ours):.3f} vs {best_val(r):.3f}"
            )
            target = best_val(r)
            t_ours = time_to(ours, target) if target is not None else None
            if t_ours is not None:
                first = t_ours == ours["evals"][0]["train_s"]  # below it at the first look
                print(
                    f"    ours reaches {ref}'s best {target:.3f} "
                    f"{'by its first evaluation,' if first else 'after'} {t_ours / 60:.2f} min "
                    f"({'>= ' if first else ''}{r['train_s'] / t_ours:.1f}x faster to equal loss)"
                )
            else:
                print(f"    ours did not reach {ref}'s best {target:.3f}")
            # every evaluation time, not only the last: is ours' loss lower at each?
            ahead = sum(
                1
                for e in r["evals"]
                if (v := loss_at(ours, e["train_s"])) is not None and v < e["val"]
            )
            print(
                f"    ours' loss is the lower one at {ahead} of {ref}'s {len(r['evals'])} evaluations"
            )
        for name in SWEEP:
            if name in ok:
                print(
                    f"  {name:<11} / ours: {ok[name]['chars_per_s'] / ours['chars_per_s']:.2f}x "
                    f"chars/s, warm-up {ok[name]['warmup_s']:.1f} s"
                )


if __name__ == "__main__":
    main()
