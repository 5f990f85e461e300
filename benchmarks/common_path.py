"""The common path: a GPT-2 small built the way users build it, first and second time.

GPT-2 small (12 blocks of width 768, vocabulary 50257, context 1024): every Dense
``kernel_init=normal(std=0.02)``, ``bias_init=zeros()``, both embeddings
``normal(std=0.02)``, LayerNorms with their framework's defaults. Sides:

- ``nnx``: ``GPT(nnx.Rngs(0))``, eager, jaxinit initializers;
- ``flax_init``: linen, ``jaxinit.flax.init(module, key, tokens)``;
- ``jit_jaxinit`` / ``jit_flax``: linen, ``jax.jit(module.init)(key, tokens)`` with
  jaxinit's / Flax's own initializers;
- ``nnx_jit_jaxinit`` / ``nnx_jit_flax``: ``nnx.jit`` of the nnx constructor;
- ``torch``: torch's plain build of the same model, ``nn.Module`` construction
  with each layer's own defaults (no second ``normal_`` pass), 2 threads;
- ``nnx_floor`` / ``linen_floor``: what the framework costs on its own: the nnx
  model with ``jaxinit.zeros()`` for every kernel and embedding (a host fill, no
  draw, no compile), and linen's abstract ``module.init``
  (``jax.eval_shape``), which ``jaxinit.flax.init`` runs once to read the
  parameters.

First build: a fresh process per run (no persistent compilation cache, imports
excluded); second build: the next call in that process. Wall and CPU seconds
(the CPU time of all threads; on a loaded machine it is the steadier figure).
Run: ``python benchmarks/common_path.py [--runs 3] [--side nnx ...]``.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import markdown_table, ratio, run_script

SIDES = (
    "torch",
    "nnx",
    "nnx_floor",
    "flax_init",
    "linen_floor",
    "jit_jaxinit",
    "jit_flax",
    "nnx_jit_jaxinit",
    "nnx_jit_flax",
)
VOCAB, WIDTH, BLOCKS, CONTEXT = 50257, 768, 12, 1024
# Sides whose first build takes several times torch's (one jit of the whole
# model): one fresh process each is enough to show it, and keeps run_all short.
SLOW = ("jit_jaxinit", "jit_flax", "nnx_jit_jaxinit", "nnx_jit_flax")
# The medians of the last run(), by side, for first_build's table.
MEDIANS: dict[str, dict[str, float]] = {}


def _torch() -> Callable[[], Any]:
    import torch

    torch.set_num_threads(2)
    nn = torch.nn

    def block() -> Any:
        d = WIDTH
        return nn.ModuleDict(
            {
                "ln_1": nn.LayerNorm(d),
                "c_attn": nn.Linear(d, 3 * d),
                "c_proj": nn.Linear(d, d),
                "ln_2": nn.LayerNorm(d),
                "c_fc": nn.Linear(d, 4 * d),
                "mlp_proj": nn.Linear(4 * d, d),
            }
        )

    def build() -> Any:
        wte, wpe = nn.Embedding(VOCAB, WIDTH), nn.Embedding(CONTEXT, WIDTH)
        blocks = nn.ModuleList([block() for _ in range(BLOCKS)])
        return nn.ModuleList([wte, wpe, blocks, nn.LayerNorm(WIDTH)])

    return build


def _inits(flavour: str) -> tuple[Any, Any]:
    if flavour == "flax":
        from flax import linen

        return linen.initializers.normal(0.02), linen.initializers.zeros_init()
    import jaxinit

    if flavour == "floor":
        return jaxinit.zeros(), jaxinit.zeros()
    return jaxinit.normal(std=0.02), jaxinit.zeros()


def _nnx(flavour: str, jitted: bool) -> Callable[[], Any]:
    import jax
    from flax import nnx

    normal, zeros = _inits(flavour)

    def dense(fan_in: int, fan_out: int, rngs: Any) -> Any:
        return nnx.Linear(
            fan_in, fan_out, kernel_init=normal, bias_init=zeros, rngs=rngs
        )

    class Block(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            d = WIDTH
            self.ln_1 = nnx.LayerNorm(d, rngs=rngs)
            self.c_attn = dense(d, 3 * d, rngs)
            self.c_proj = dense(d, d, rngs)
            self.ln_2 = nnx.LayerNorm(d, rngs=rngs)
            self.c_fc = dense(d, 4 * d, rngs)
            self.mlp_proj = dense(4 * d, d, rngs)

    class GPT(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.wte = nnx.Embed(VOCAB, WIDTH, embedding_init=normal, rngs=rngs)
            self.wpe = nnx.Embed(CONTEXT, WIDTH, embedding_init=normal, rngs=rngs)
            self.h = nnx.List([Block(rngs) for _ in range(BLOCKS)])
            self.ln_f = nnx.LayerNorm(WIDTH, rngs=rngs)

    def create() -> Any:
        return GPT(nnx.Rngs(0))

    make = nnx.jit(create) if jitted else create
    return lambda: jax.block_until_ready(nnx.state(make()))


def _linen(flavour: str, how: str) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    normal, zeros = _inits(flavour)

    def dense(features: int, name: str) -> Any:
        return nn.Dense(features, kernel_init=normal, bias_init=zeros, name=name)

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            d = WIDTH
            h = nn.LayerNorm(name="ln_1")(x)
            x = x + dense(d, "c_proj")(dense(3 * d, "c_attn")(h)[..., :d])
            h = nn.gelu(dense(4 * d, "c_fc")(nn.LayerNorm(name="ln_2")(x)))
            return x + dense(d, "mlp_proj")(h)

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, tokens: Any) -> Any:
            x = nn.Embed(VOCAB, WIDTH, embedding_init=normal, name="wte")(tokens)
            positions = jnp.arange(tokens.shape[-1])
            x = x + nn.Embed(CONTEXT, WIDTH, embedding_init=normal, name="wpe")(
                positions
            )
            for i in range(BLOCKS):
                x = Block(name=f"h_{i}")(x)
            return nn.LayerNorm(name="ln_f")(x)

    module, key = GPT(), jax.random.key(0)
    tokens = jnp.zeros((1, 8), jnp.int32)
    if how == "flax_init":
        import jaxinit.flax

        return lambda: jax.block_until_ready(jaxinit.flax.init(module, key, tokens))
    if how == "floor":
        return lambda: jax.eval_shape(module.init, key, tokens)
    init = jax.jit(module.init)
    return lambda: jax.block_until_ready(init(key, tokens))


def build(side: str) -> Callable[[], Any]:
    """A zero-argument function that builds the model and blocks."""
    if side == "torch":
        return _torch()
    if side == "nnx":
        return _nnx("jaxinit", jitted=False)
    if side == "nnx_floor":
        return _nnx("floor", jitted=False)
    if side == "linen_floor":
        return _linen("jaxinit", "floor")
    if side.startswith("nnx_jit_"):
        return _nnx(side.removeprefix("nnx_jit_"), jitted=True)
    if side == "flax_init":
        return _linen("jaxinit", "flax_init")
    return _linen(side.removeprefix("jit_"), "jit")


def first_and_second(side: str) -> dict[str, float]:
    """In this (fresh) process: the first and second build, wall and CPU."""
    fn = build(side)
    out: dict[str, float] = {}
    for name in ("first", "second"):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        out[f"{name}_s"] = time.perf_counter() - wall
        out[f"{name}_cpu_s"] = time.process_time() - cpu
    return out


def run(runs: int = 3, sides: tuple[str, ...] = SIDES) -> str:
    """Fresh processes round-robin over the sides; medians; ratios to torch."""
    env = {"JAX_ENABLE_COMPILATION_CACHE": "false", "OPENBLAS_NUM_THREADS": "1"}
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for round_ in range(runs):
        for side in sides:
            if round_ and side in SLOW:
                continue
            result = run_script([__file__, "--one", side], env=env)
            samples[side].append(json.loads(result.strip().splitlines()[-1]))
    med = {
        side: {k: statistics.median(s[k] for s in got) for k in got[0]}
        for side, got in samples.items()
    }
    MEDIANS.update(med)
    rows = []
    for side in sides:
        m, t = med[side], med.get("torch", med[side])
        rows.append(
            (
                side,
                f"{m['first_s']:.2f}",
                f"{m['first_cpu_s']:.2f}",
                f"{m['second_s']:.2f}",
                f"{m['second_cpu_s']:.2f}",
                ratio(m["first_s"], t["first_s"]),
                ratio(m["first_cpu_s"], t["first_cpu_s"]),
                ratio(m["second_cpu_s"], t["second_cpu_s"]),
            )
        )
    header = (
        "side",
        "first s",
        "first CPU s",
        "second s",
        "second CPU s",
        "first / torch",
        "first CPU / torch",
        "second CPU / torch",
    )
    return (
        f"GPT-2 small, median of {runs} fresh processes per side, round-robin "
        f"(one for {', '.join(SLOW)}).\n\n" + markdown_table(header, rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=SIDES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", action="append", choices=SIDES)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(first_and_second(args.one)))
        return
    print(run(args.runs, tuple(args.side or SIDES)))


if __name__ == "__main__":
    sys.exit(main())
