"""GPT-2 small in Equinox: ``jaxinit.equinox.torch_init`` against torch and Equinox.

Sides, each the first call in a fresh process (imports excluded, no persistent
compilation cache), median of ``--first-runs`` processes, run round-robin:

- ``jaxinit``: ``eqx.filter_eval_shape`` of the model (nothing drawn), then
  ``jaxinit.equinox.torch_init`` (torch's laws for every layer), blocked on;
- ``equinox``: Equinox building the model with its own initialization;
- ``torch``: torch building the same model (``nn.Embedding``, ``nn.LayerNorm``,
  ``nn.MultiheadAttention``, ``nn.Linear``; 2 threads).

Run: ``python benchmarks/bench_equinox.py``.
"""

import argparse
import json
import statistics
import sys
import time
from typing import Any

from _common import markdown_table, ratio, run_script

SIDES = ("jaxinit", "equinox", "torch")
D, HEADS, LAYERS, VOCAB, CONTEXT = 768, 12, 12, 50257, 1024


def equinox_gpt2(key: Any) -> Any:
    """GPT-2 small's parameters as Equinox layers (tied output embedding)."""
    import equinox as eqx
    import jax

    class Block(eqx.Module):
        ln_1: eqx.nn.LayerNorm
        attn: eqx.nn.MultiheadAttention
        ln_2: eqx.nn.LayerNorm
        fc: eqx.nn.Linear
        proj: eqx.nn.Linear

        def __init__(self, key: Any) -> None:
            k1, k2, k3 = jax.random.split(key, 3)
            self.ln_1 = eqx.nn.LayerNorm(D)
            self.attn = eqx.nn.MultiheadAttention(
                HEADS,
                D,
                use_query_bias=True,
                use_key_bias=True,
                use_value_bias=True,
                use_output_bias=True,
                key=k1,
            )
            self.ln_2 = eqx.nn.LayerNorm(D)
            self.fc = eqx.nn.Linear(D, 4 * D, key=k2)
            self.proj = eqx.nn.Linear(4 * D, D, key=k3)

    class GPT2(eqx.Module):
        wte: eqx.nn.Embedding
        wpe: eqx.nn.Embedding
        h: list[Block]
        ln_f: eqx.nn.LayerNorm

        def __init__(self, key: Any) -> None:
            keys = jax.random.split(key, LAYERS + 2)
            self.wte = eqx.nn.Embedding(VOCAB, D, key=keys[0])
            self.wpe = eqx.nn.Embedding(CONTEXT, D, key=keys[1])
            self.h = [Block(k) for k in keys[2:]]
            self.ln_f = eqx.nn.LayerNorm(D)

    return GPT2(key)


def torch_gpt2() -> Any:
    import torch

    nn = torch.nn
    model = nn.Module()
    model.wte = nn.Embedding(VOCAB, D)
    model.wpe = nn.Embedding(CONTEXT, D)
    blocks = []
    for _ in range(LAYERS):
        block = nn.Module()
        block.ln_1 = nn.LayerNorm(D)
        block.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
        block.ln_2 = nn.LayerNorm(D)
        block.fc = nn.Linear(D, 4 * D)
        block.proj = nn.Linear(4 * D, D)
        blocks.append(block)
    model.h = nn.ModuleList(blocks)
    model.ln_f = nn.LayerNorm(D)
    return model


def first_call(side: str) -> dict[str, float]:
    """In this (fresh) process: the first build's seconds, imports excluded."""
    if side == "torch":
        import torch

        torch.set_num_threads(2)
        start = time.perf_counter()
        model = torch_gpt2()
        seconds = time.perf_counter() - start
        count = sum(p.numel() for p in model.parameters())
        return {"first_s": seconds, "params": count}
    import equinox as eqx
    import jax

    import jaxinit.equinox

    key = jax.random.key(0)
    start = time.perf_counter()
    if side == "equinox":
        model = equinox_gpt2(key)
    else:
        abstract = eqx.filter_eval_shape(equinox_gpt2, key)
        model = jaxinit.equinox.torch_init(abstract, key)
    arrays = jax.block_until_ready(eqx.filter(model, eqx.is_array))
    seconds = time.perf_counter() - start
    count = sum(leaf.size for leaf in jax.tree.leaves(arrays))
    return {"first_s": seconds, "params": count}


def run(first_runs: int = 3) -> str:
    """Measures every side and returns the Markdown report section."""
    env = {"JAX_ENABLE_COMPILATION_CACHE": "false", "OPENBLAS_NUM_THREADS": "1"}
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    params: dict[str, float] = {}
    for _ in range(first_runs):
        for side in SIDES:
            result = json.loads(run_script([__file__, "--first", side], env=env))
            samples[side].append(result["first_s"])
            params[side] = result["params"]
    first = {side: statistics.median(samples[side]) for side in SIDES}
    row = (
        "GPT-2 small (Equinox)",
        f"{params['jaxinit'] / 1e6:.1f} M",
        *(f"{first[side]:.2f}" for side in SIDES),
        ratio(first["jaxinit"], first["torch"]),
        ratio(first["jaxinit"], first["equinox"]),
    )
    header = (
        "model",
        "params",
        *(f"first {side} s" for side in SIDES),
        "jaxinit / torch",
        "jaxinit / equinox",
    )
    return (
        f"First call: median of {first_runs} fresh processes per side, "
        "round-robin, no persistent compilation cache, imports excluded.\n\n"
        + markdown_table(header, [row])
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", choices=SIDES)
    parser.add_argument("--first-runs", type=int, default=3)
    args = parser.parse_args()
    if args.first:
        print(json.dumps(first_call(args.first)))
        return
    print(run(args.first_runs))


if __name__ == "__main__":
    sys.exit(main())
