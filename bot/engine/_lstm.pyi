# The C extension built from bot/engine/_lstm.c (setup.py); see its generate() docstring.
import numpy as np

Buffer = np.ndarray  # any C-contiguous buffer does; the sampler passes arrays

def generate(
    weights: Buffer,
    offsets: Buffer,
    table: Buffer,
    b_out: Buffer,
    h: Buffer,
    c: Buffer,
    logits: Buffer,
    ends: Buffer,
    uniforms: Buffer,
    out: Buffer,
    forced: Buffer,
    trace: Buffer,
    mask: Buffer,
    keys: Buffer,
    targets: Buffer,
    letter: Buffer,
    n_layer: int,
    n_hidden: int,
    vocab: int,
    threads: int,
    nb_out: int,
    max_chars: int,
    soft: int,
    top_k: int,
    unk: int,
    eos: int,
    n_states: int,
    n_alpha: int,
    state: int,
    temperature: float,
    top_p: float,
    slow: float,
    wait: float,
    alone: bool,
    /,
) -> tuple[int, float, int, int, int, int]: ...
def _stall(barrier: int, hold: bool, /) -> None: ...
