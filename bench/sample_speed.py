"""Sampling speed and footprint of the NumPy engine (issue 4, point 5), in one run.

    python bench/sample_speed.py --model models/nietzsche

(a) reference: the classic loop (Keras example, textgenrnn): load model.keras with Keras and
    call model.predict on the last 40 characters for every generated character;
(b) ours at batch 1: one 280-character post (.generate end to end: the C loop of
    bot/engine/_lstm.c on its default threads, on one thread, and the NumPy row that is the
    fallback), and the speed-up over (a); target >= 500x; then again with other processes
    spinning on 1 and on 2 cores (--busy), as when a training shares the machine;
(c) ours at batch 64: 64 candidates of 280 characters against the matmul-bound time (this
    machine's measured float32 matmul speed on the sampler's own product shapes times the
    persona's FLOPs per character); target <= 2x;
(d) `bot preview -n 1` in a fresh process: peak RSS (its own VmHWM; target <= 150 MB)
    and cold start, process start to the first post printed (target <= 1.5 s).

NumPy parts run first; TensorFlow is imported only for (a), after them. Lengths are forced to
the full 280 characters (no end-of-post, no early sentence stop), so every run does the same
work. Timings are medians over --repeats after one warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bot.engine.sampler
from bot.engine.card import EOS
from bot.engine.sampler import Sampler

# -----------------------------------------------------------------------------
model_dir = "models/nietzsche"
chars = 280  # one post
batch = 64  # candidates per round in (c)
repeats = 5  # timed runs per measurement (median reported)
ref_chars = 20  # characters timed for the Keras reference loop (it is slow)
ref_window = 40  # the Keras example's maxlen
preview_runs = 5  # `bot preview` processes for RSS and cold start
temperature = 0.8
prompt = "The "
seed = 1337
# -----------------------------------------------------------------------------


def median_time(fn: Callable[[], object], n: int, warmup: int = 1) -> tuple[float, float]:
    """(median, min) seconds of fn() over n runs after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


@contextlib.contextmanager
def full_length(sampler: Sampler) -> Iterator[None]:
    """Make .generate run to max_chars: no end-of-post token, no early sentence stop.

    The end-of-post logit is pinned to -inf through the output bias, so sampling itself runs
    unchanged (no wrapper in the timed loop) and the token can never be drawn."""
    bias = sampler.b_out[EOS]
    soft = bot.engine.sampler.SOFT_LIMIT
    sampler.b_out[EOS] = -np.inf
    bot.engine.sampler.SOFT_LIMIT = 2.0  # past max_chars: never reached
    try:
        yield
    finally:
        sampler.b_out[EOS] = bias
        bot.engine.sampler.SOFT_LIMIT = soft


@contextlib.contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """n other processes, each spinning on a core (a training, a neighbour), for the block."""
    spin = [sys.executable, "-c", "while True: pass"]
    procs = [subprocess.Popen(spin) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def step_loop(sampler: Sampler, n: int, steps: int) -> None:
    """The bare engine: n rows, `steps` characters, greedy feedback (no sampling cost).
    One row steps in place (bot.engine.sampler._Row), as generate(n=1) and priming do."""
    if n == 1:
        row, token = bot.engine.sampler._Row(sampler, sampler.zero_state(1)), EOS
        for _ in range(steps):
            token = int(row.step(token).argmax())
        return
    state = sampler.zero_state(n)
    tokens = np.full(n, EOS)
    for _ in range(steps):
        logits, state = sampler.step(tokens, state)
        tokens = logits.argmax(axis=1)


def flops_per_char(sampler: Sampler) -> dict[str, int]:
    """Multiply-adds x 2 per character per candidate, from the card's architecture."""
    a = sampler.card.architecture
    h, v, e, n_layer = a.n_hidden, a.vocab_size, a.n_embd, a.n_layer
    sampler_flops = 2 * (h * 4 * h + (n_layer - 1) * 2 * h * 4 * h + h * v)
    # Keras also multiplies the embedding by layer 0's input kernel; the sampler folds that
    # product into a [vocab, 4H] table at load time.
    return {"sampler": sampler_flops, "keras_model": sampler_flops + 2 * e * 4 * h}


def matmul_bound(sampler: Sampler, n: int, reps: int) -> dict[str, object]:
    """Time this machine's float32 matmuls on the sampler's per-step shapes at batch n."""
    a = sampler.card.architecture
    h, v, n_layer = a.n_hidden, a.vocab_size, a.n_layer
    rng = np.random.default_rng(seed)
    shapes = {
        "[n,H]@[H,4H]": (h, 4 * h, 1),
        "[n,2H]@[2H,4H]": (2 * h, 4 * h, n_layer - 1),
        "[n,H]@[H,V]": (h, v, 1),
    }
    out: dict[str, object] = {}
    step_s = 0.0
    inner = 200  # products per timing, so the timer's resolution does not matter
    for name, (k, m, count) in shapes.items():
        x = rng.standard_normal((n, k), dtype=np.float32)
        w = rng.standard_normal((k, m), dtype=np.float32)

        def run(x: np.ndarray = x, w: np.ndarray = w) -> None:
            for _ in range(inner):
                x @ w

        t, _ = median_time(run, reps)
        t /= inner
        out[name] = {"gflops": round(2 * n * k * m / t / 1e9, 2), "us": round(t * 1e6, 2)}
        step_s += count * t
    out["step_s"] = step_s
    return out


def streaming_floor(sampler: Sampler, reps: int) -> float:
    """Seconds per batch-1 step for the step's matrix-vector products alone, in sequence.

    At batch 1 every weight is read once per character and the weights (5 MB for 3 x 256)
    exceed a core's L2, so a step cannot be faster than streaming them from L3/memory; this
    measures exactly that, with the sampler's own arrays, and nothing else."""
    h = sampler.n_hidden
    vec_h = np.full(h, 0.01, np.float32)
    vec_xh = np.full(2 * h + 1, 0.01, np.float32)
    z = np.empty(4 * h, np.float32)
    out = np.empty(sampler.card.vocab_size, np.float32)
    inner = 200

    def run() -> None:
        for _ in range(inner):
            np.dot(vec_h, sampler.recurrent0, out=z)
            for w in sampler.folded:
                np.dot(vec_xh, w, out=z)
            np.dot(vec_h, sampler.w_out, out=out)

    t, _ = median_time(run, reps)
    return t / inner


def reference_loop(
    model_path: Path, ids: list[int], n_chars: int, rng: np.random.Generator
) -> float:
    """Seconds per character of the classic loop: predict on the last 40 ids, every char."""
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    window = list(ids)

    def one_char() -> None:
        x = np.array([window[-ref_window:]], dtype=np.int32)
        logits = model.predict(x, verbose=0)[0, -1].astype(np.float64)
        p = np.exp((logits - logits.max()) / temperature)
        window.append(int(rng.choice(len(p), p=p / p.sum())))

    for _ in range(3):  # warm-up: builds the predict function
        one_char()
    t0 = time.perf_counter()
    for _ in range(n_chars):
        one_char()
    return (time.perf_counter() - t0) / n_chars


def preview_config(model: Path, tmp: Path) -> Path:
    """A config with one persona: the repo's first persona's settings, pointed at `model`."""
    persona: dict[str, object] = {"prompts": [prompt]}
    repo_config = ROOT / "config.yaml"
    if repo_config.is_file():
        raw = yaml.safe_load(repo_config.read_text(encoding="utf-8"))
        persona = dict(next(iter(raw["personas"].values())))
    persona.update(model=str(model.resolve()), publisher="outbox")
    persona.pop("mastodon", None)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({"personas": {"bench": persona}}), encoding="utf-8")
    return path


# Runs `python -m bot ...` and, at exit, writes the process's own peak RSS (VmHWM) to the
# file named by $BENCH_HWM. Not rusage: Linux carries ru_maxrss across fork and exec, so a
# child spawned by this (by then ~95 MB) bench would report the bench's own peak.
HWM_WRAPPER = """
import atexit, os, runpy, sys
def hwm():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_HWM"], "w") as out:
        out.write(kb)
atexit.register(hwm)
sys.argv[0] = "bot"
runpy.run_module("bot", run_name="__main__")
"""


def preview_once(config: Path, home: Path) -> dict[str, object]:
    """One `python -m bot preview -n 1` process: seconds to the first post line, peak RSS."""
    hwm_file = home / "hwm"
    env = {
        **os.environ,
        "REVENANT_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
        "BENCH_HWM": str(hwm_file),
    }
    cmd = [
        sys.executable, "-c", HWM_WRAPPER, "-c", str(config), "preview", "-n", "1", "--seed", "1"
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    first_post = None
    after_header = False
    assert proc.stdout is not None
    for line in proc.stdout:
        if first_post is None and after_header and line.strip():
            first_post = time.perf_counter() - t0  # the post's text line
        if line.startswith(("1. [", "no candidate survived")):
            after_header = True
            if line.startswith("no candidate"):
                first_post = time.perf_counter() - t0
    proc.wait()
    total = time.perf_counter() - t0
    return {
        "first_post_s": first_post,
        "exit_s": total,
        "peak_rss_mb": int(hwm_file.read_text()) / 1024,  # VmHWM is in kB
        "rc": proc.returncode,
    }


def main() -> None:
    global chars, batch, repeats, ref_chars, preview_runs, seed
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=model_dir, help="persona directory")
    ap.add_argument("--chars", type=int, default=chars, help="characters per post")
    ap.add_argument("--batch", type=int, default=batch, help="candidates in (c)")
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--ref-chars", type=int, default=ref_chars, help="chars timed in (a)")
    ap.add_argument("--preview-runs", type=int, default=preview_runs)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--skip-reference", action="store_true", help="no TensorFlow: skip (a)")
    ap.add_argument(
        "--busy",
        type=int,
        nargs="*",
        default=[1, 2],
        help="also time (b) with this many cores kept busy by other processes",
    )
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    chars, batch, repeats = args.chars, args.batch, args.repeats
    ref_chars, preview_runs, seed = args.ref_chars, args.preview_runs, args.seed
    model = Path(args.model)

    t0 = time.perf_counter()
    sampler = Sampler.load(model)
    load_s = time.perf_counter() - t0
    a = sampler.card.architecture
    fl = flops_per_char(sampler)
    res: dict[str, object] = {
        "model": str(model),
        "architecture": f"{a.n_layer}x{a.n_hidden} LSTM, embd {a.n_embd}, vocab {a.vocab_size}",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
        "load_s": load_s,
        "flops_per_char": fl,
    }
    print(
        f"{res['architecture']}; sampler {fl['sampler'] / 1e6:.2f} MFLOP/char "
        f"(Keras model {fl['keras_model'] / 1e6:.2f}); load {load_s * 1e3:.0f} ms"
    )

    # (b) batch 1 ---------------------------------------------------------------------
    rng = np.random.default_rng(seed)
    steps_b1, _ = median_time(lambda: step_loop(sampler, 1, chars), repeats)

    def post(engine: Sampler) -> Callable[[], object]:
        return lambda: engine.generate(
            prompt, n=1, max_chars=chars, temperature=temperature, rng=rng
        )

    # generate(n=1) by each engine: the C loop on its default threads (what runs), the C
    # loop on one core, and the NumPy row (the fallback where nothing compiled it)
    engines: dict[str, Sampler] = {}
    if sampler.native:
        engines["c"] = sampler
        engines["c_one_thread"] = Sampler.load(model, threads=1)
    engines["numpy"] = Sampler.load(model)
    engines["numpy"].native = False
    gen: dict[str, float] = {}
    for name, engine in engines.items():
        with full_length(engine):
            gen[name], _ = median_time(post(engine), repeats)
            got = len(post(engine)()[0].text)  # type: ignore[index]
    gen_b1 = gen["c" if sampler.native else "numpy"]
    bound1 = matmul_bound(sampler, 1, repeats)
    res["batch1"] = {
        "step_loop_s": steps_b1,
        "generate_s": gen_b1,
        "generate_by_engine_s": gen,
        "threads": sampler.threads if sampler.native else 1,
        "chars": got,
        "steps_per_s": chars / steps_b1,
        "matmul_bound_s": bound1["step_s"] * chars,  # each shape alone: its weights stay hot
        "streaming_floor_s": streaming_floor(sampler, repeats) * chars,
        "weight_mb": sampler.weight_bytes / 2**20,
    }

    # (b') batch 1 on a busy machine: other processes spinning on `busy` cores
    res["batch1_busy"] = {}
    for busy in args.busy:
        with busy_cores(busy):
            times = {}
            for name, engine in engines.items():
                with full_length(engine):
                    times[name], _ = median_time(post(engine), repeats)
        res["batch1_busy"][busy] = times

    # (c) batch 64 --------------------------------------------------------------------
    steps_bn, _ = median_time(lambda: step_loop(sampler, batch, chars), repeats)
    with full_length(sampler):
        gen_bn, _ = median_time(
            lambda: sampler.generate(
                prompt, n=batch, max_chars=chars, temperature=temperature, rng=rng
            ),
            repeats,
        )
    bound = matmul_bound(sampler, batch, repeats)
    bound_s = bound["step_s"] * chars
    res["batchN"] = {
        "batch": batch,
        "step_loop_s": steps_bn,
        "generate_s": gen_bn,
        "matmul": bound,
        "matmul_bound_s": bound_s,
        "bound_ratio_step_loop": steps_bn / bound_s,
        "bound_ratio_generate": gen_bn / bound_s,
    }

    # (d) bot preview in fresh processes -------------------------------------------------
    runs = []
    with tempfile.TemporaryDirectory(prefix="revenant-bench-") as tmp:
        config = preview_config(model, Path(tmp))
        preview_once(config, Path(tmp))  # warm the OS file cache; not counted
        runs = [preview_once(config, Path(tmp)) for _ in range(preview_runs)]
    firsts = [r["first_post_s"] for r in runs if r["first_post_s"] is not None]
    res["preview"] = {
        "runs": runs,
        "cold_start_median_s": statistics.median(firsts) if firsts else None,
        "peak_rss_max_mb": max(r["peak_rss_mb"] for r in runs),
        "failed": sum(r["rc"] != 0 for r in runs),
    }

    # (a) the Keras reference loop, last (it imports TensorFlow) ------------------------
    if not args.skip_reference:
        ids, _ = sampler.encode_prompt(prompt)
        ref = reference_loop(model / "model.keras", [EOS, *ids], ref_chars, rng)
        res["reference"] = {"s_per_char": ref, "post_s": ref * chars}
        res["speedup_step_loop"] = ref * chars / steps_b1
        res["speedup_generate"] = ref * chars / gen_b1
        res["speedup_by_engine"] = {k: ref * chars / v for k, v in gen.items()}
        res["speedup_floor"] = ref * chars / res["batch1"]["streaming_floor_s"]

    report(res)
    if args.json:
        print(json.dumps(res, indent=1, default=float))


def report(res: dict) -> None:
    b1, bn, pv = res["batch1"], res["batchN"], res["preview"]
    ms = 1e3
    print(f"\n{'measurement':<52}{'time':>12}{'per char':>14}")
    print("-" * 78)
    if "reference" in res:
        r = res["reference"]
        print(
            f"{'(a) Keras predict on last 40 chars, batch 1':<52}"
            f"{r['post_s']:>10.2f} s{r['s_per_char'] * ms:>11.2f} ms"
        )
    print(
        f"{'(b) NumPy step loop, batch 1':<52}{b1['step_loop_s'] * ms:>9.1f} ms"
        f"{b1['step_loop_s'] / chars * 1e6:>11.1f} us"
    )
    labels = {
        "c": f"C loop, {b1['threads']} thread{'s' * (b1['threads'] > 1)}",
        "c_one_thread": "C loop, 1 thread",
        "numpy": "NumPy row",
    }
    for name, t in b1["generate_by_engine_s"].items():
        print(
            f"{f'(b) Sampler.generate, batch 1, {labels[name]}':<52}{t * ms:>9.1f} ms"
            f"{t / chars * 1e6:>11.1f} us"
        )
    for busy, times in res["batch1_busy"].items():
        for name, t in times.items():
            print(
                f"{f'    ... with {busy} core(s) busy, {labels[name]}':<52}{t * ms:>9.1f} ms"
                f"{t / chars * 1e6:>11.1f} us"
            )
    print(
        f"{'    matmul-bound, batch 1 (each shape alone)':<52}{b1['matmul_bound_s'] * ms:>9.1f} ms"
        f"{b1['matmul_bound_s'] / chars * 1e6:>11.1f} us"
    )
    print(
        f"{'    streaming floor, batch 1 (step products only)':<52}"
        f"{b1['streaming_floor_s'] * ms:>9.1f} ms{b1['streaming_floor_s'] / chars * 1e6:>11.1f} us"
        f"  ({b1['weight_mb']:.1f} MB of weights per char)"
    )
    n = bn["batch"]
    print(
        f"{f'(c) NumPy step loop, batch {n}':<52}{bn['step_loop_s'] * ms:>9.1f} ms"
        f"{bn['step_loop_s'] / (chars * n) * 1e6:>11.2f} us"
    )
    print(
        f"{f'(c) Sampler.generate, batch {n}':<52}{bn['generate_s'] * ms:>9.1f} ms"
        f"{bn['generate_s'] / (chars * n) * 1e6:>11.2f} us"
    )
    print(
        f"{f'    matmul-bound, batch {n}':<52}{bn['matmul_bound_s'] * ms:>9.1f} ms"
        f"{bn['matmul_bound_s'] / (chars * n) * 1e6:>11.2f} us"
    )
    for shape, m in bn["matmul"].items():
        if shape != "step_s":
            print(
                f"      {shape.replace('n', str(n), 1):<22} {m['us']:>8.1f} us  "
                f"{m['gflops']:>7.1f} GFLOP/s"
            )
    print(
        f"(d) bot preview -n 1: cold start median "
        f"{_fmt(pv['cold_start_median_s'], 's')}, peak RSS max {pv['peak_rss_max_mb']:.0f} MB"
        f" over {len(pv['runs'])} runs ({pv['failed']} failed)"
    )
    print("\nratios (target)")
    if "reference" in res:
        print(
            f"  speed-up vs (a), one {chars}-char post, generate  {res['speedup_generate']:>8.0f}x"
            f"  (>= 500x)   "
            + ", ".join(f"{labels[k]} {v:.0f}x" for k, v in res["speedup_by_engine"].items())
        )
        print(
            f"  speed-up vs (a) at the batch-1 streaming floor  "
            f"{res['speedup_floor']:>7.0f}x  (one core, float32 weights)"
        )
    print(
        f"  batch {n} / matmul-bound, generate             {bn['bound_ratio_generate']:>8.2f}"
        f"   (<= 2)      step loop {bn['bound_ratio_step_loop']:.2f}"
    )
    print(
        f"  preview peak RSS                               {pv['peak_rss_max_mb']:>7.0f} MB"
        f"  (<= 150 MB)"
    )
    print(
        f"  preview cold start                             {_fmt(pv['cold_start_median_s'], 's'):>9}"
        f"  (<= 1.5 s)"
    )


def _fmt(x: float | None, unit: str) -> str:
    return "n/a" if x is None else f"{x:.2f} {unit}"


if __name__ == "__main__":
    main()
