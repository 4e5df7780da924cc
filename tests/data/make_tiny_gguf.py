"""Rebuild tests/data/tiny_sense.gguf, the sense model the tests of bot/train/sense.py read.

    python tests/data/make_tiny_gguf.py

A 2-layer Llama of width 32 (4 query heads sharing 2 key/value heads, as SmolLM2's 9 share
3) over a byte-level BPE vocabulary: three control tokens, the 256 bytes as GPT-2 writes
them, and a few merges (" the"). Matrices are Q4_1 like the real model's; embeddings and
norms F32. Its output head is built so that after a byte the next byte up is far likelier
than any other: "abcdefgh" costs it little, "hgfedcba" much. Needs `gguf` (requirements-sense.txt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
OUT = HERE / "tiny_sense.gguf"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "1 2"]  # "12": never merged (digits split)
LAYERS, WIDTH, HEADS, KV_HEADS, FFN = 2, 32, 4, 2, 64
BOS = 1
# Attention strong enough that a text seeing another would score differently; the residual
# stream still carries the token, so the head's preference holds.
SCALE = {"attn_q": 0.5, "attn_k": 0.5, "attn_v": 0.15, "attn_output": 0.15, "ffn_gate": 0.05,
         "ffn_up": 0.05, "ffn_down": 0.05}  # fmt: skip
QUANTISED = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def byte_tokens() -> list[str]:
    """The 256 bytes as GPT-2's byte-level BPE writes them (a space is 'Ġ')."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def vocabulary() -> list[str]:
    return [*SPECIAL, *byte_tokens(), *("".join(m.split(" ")) for m in MERGES)]


def tensors(seed: int = 27) -> dict[str, np.ndarray]:
    """Every tensor in float32, NumPy order ([out, in] for a matrix), before quantisation."""
    rng = np.random.default_rng(seed)
    vocab = len(vocabulary())
    embed = rng.standard_normal((vocab, WIDTH)).astype(np.float32)
    embed *= np.sqrt(WIDTH) / np.linalg.norm(embed, axis=1, keepdims=True)  # RMS 1 per row
    # The head scores v by how close the embedding of v's byte minus one is to the input:
    # after byte b it expects byte b + 1.
    head = 0.3 * rng.standard_normal((vocab, WIDTH)).astype(np.float32)
    first = len(SPECIAL)
    for b in range(1, 256):
        head[first + b] = 3.0 * embed[first + b - 1] / np.sqrt(WIDTH)
    out: dict[str, np.ndarray] = {
        "token_embd.weight": embed,
        "output_norm.weight": np.ones(WIDTH, dtype=np.float32),
        "output.weight": head,
    }
    head_dim = WIDTH // HEADS
    shapes = {
        "attn_q": (HEADS * head_dim, WIDTH),
        "attn_k": (KV_HEADS * head_dim, WIDTH),
        "attn_v": (KV_HEADS * head_dim, WIDTH),
        "attn_output": (WIDTH, HEADS * head_dim),
        "ffn_gate": (FFN, WIDTH),
        "ffn_up": (FFN, WIDTH),
        "ffn_down": (WIDTH, FFN),
    }
    for i in range(LAYERS):
        out[f"blk.{i}.attn_norm.weight"] = np.ones(WIDTH, dtype=np.float32)
        out[f"blk.{i}.ffn_norm.weight"] = np.ones(WIDTH, dtype=np.float32)
        for name, shape in shapes.items():
            out[f"blk.{i}.{name}.weight"] = SCALE[name] * rng.standard_normal(shape).astype(
                np.float32
            )
    return out


def write(path: Path = OUT) -> Path:
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("revenant tiny sense model")
    writer.add_context_length(4096)
    writer.add_embedding_length(WIDTH)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    tokens = vocabulary()
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIAL) + [1] * (len(tokens) - len(SPECIAL)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(2)
    for name, value in tensors().items():
        if name.split(".")[-2] in QUANTISED:
            q = gguf.GGMLQuantizationType.Q4_1
            writer.add_tensor(name, gguf.quants.quantize(value, q), raw_dtype=q)
        else:
            writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


if __name__ == "__main__":
    print(f"wrote {write()} ({OUT.stat().st_size:,} bytes)")
