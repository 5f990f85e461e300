"""GPT-2 (Hugging Face ``transformers``) and its JAX ports, for ``compare``.

The torch side is ``GPT2LMHeadModel(GPT2Config(...))``: its ``_init_weights``
draws the ``Conv1D`` and embedding weights from N(0, 0.02), the residual
projections (``attn.c_proj``, ``mlp.c_proj``) from N(0, 0.02 / sqrt(2 n_layer)),
zero biases, LayerNorm ones and zeros; ``lm_head`` is tied to ``wte``. The
ports name their layers as Hugging Face does, without the ``transformer.``
prefix (hence ``MAPPING``), in nnx (a list of blocks), linen (``nn.scan`` over
the blocks) and Equinox (blocks stacked by ``eqx.filter_vmap``); each is built
abstractly and drawn by ``torch_init`` with ``rules``.
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import jaxinit
import jaxinit.flax

SMALL = {
    "vocab_size": 512,
    "n_positions": 64,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 2,
    "bos_token_id": 0,
    "eos_token_id": 0,
}
GPT2_SMALL = {
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
}
MAPPING = [(r"transformer\.(.*)", r"\1")]
STD = 0.02


def torch_factory(config: dict[str, int]) -> Callable[[int], Any]:
    """seed -> a freshly initialized ``GPT2LMHeadModel``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    def make(seed: int) -> Any:
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(**config))

    return make


def residual_std(config: dict[str, int]) -> float:
    return STD / math.sqrt(2 * config["n_layer"])


def flax_rules(config: dict[str, int], *, linen: bool = False) -> dict[Any, Any]:
    from flax import linen as nn, nnx

    dense, embed = (nn.Dense, nn.Embed) if linen else (nnx.Linear, nnx.Embed)
    return {
        dense: {"kernel": jaxinit.normal(std=STD), "bias": jaxinit.zeros()},
        embed: {"embedding": jaxinit.normal(std=STD)},
        r".*/c_proj/kernel": jaxinit.normal(std=residual_std(config)),
    }


# --- nnx ---------------------------------------------------------------------------


def nnx_init(config: dict[str, int], rules: dict[Any, Any]) -> Callable[[Any], Any]:
    """key -> the nnx port, drawn by ``torch_init(..., rules)``."""
    from flax import nnx

    width = config["n_embd"]

    class Attention(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.c_attn = nnx.Linear(width, 3 * width, rngs=rngs)
            self.c_proj = nnx.Linear(width, width, rngs=rngs)

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.c_fc = nnx.Linear(width, 4 * width, rngs=rngs)
            self.c_proj = nnx.Linear(4 * width, width, rngs=rngs)

    class Block(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.ln_1 = nnx.LayerNorm(width, rngs=rngs)
            self.attn = Attention(rngs)
            self.ln_2 = nnx.LayerNorm(width, rngs=rngs)
            self.mlp = MLP(rngs)

    class GPT2(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.wte = nnx.Embed(config["vocab_size"], width, rngs=rngs)
            self.wpe = nnx.Embed(config["n_positions"], width, rngs=rngs)
            self.h = nnx.List([Block(rngs) for _ in range(config["n_layer"])])
            self.ln_f = nnx.LayerNorm(width, rngs=rngs)

    def init(key: Any) -> Any:
        model = nnx.eval_shape(lambda: GPT2(nnx.Rngs(0)))
        jaxinit.flax.torch_init(model, key, rules)
        return model

    return init


# --- linen, blocks under nn.scan ------------------------------------------------------


def linen_init(config: dict[str, int], rules: dict[Any, Any]) -> Callable[[Any], Any]:
    """key -> the linen port's variables, blocks stacked by ``nn.scan``."""
    from flax import linen as nn

    width = config["n_embd"]

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x: Any, _: Any) -> tuple[Any, None]:
            h = nn.LayerNorm(name="ln_1")(x)
            h = nn.Dense(3 * width, name="c_attn")(h)[..., :width]
            x = x + nn.Dense(width, name="c_proj")(h)
            h = nn.Dense(4 * width, name="c_fc")(nn.LayerNorm(name="ln_2")(x))
            return x + nn.Dense(width, name="mlp_proj")(nn.gelu(h)), None

    class GPT2(nn.Module):
        @nn.compact
        def __call__(self, tokens: Any) -> Any:
            wte = nn.Embed(config["vocab_size"], width, name="wte")
            positions = jnp.arange(tokens.shape[-1])
            x = wte(tokens) + nn.Embed(config["n_positions"], width, name="wpe")(
                positions
            )
            blocks = nn.scan(
                Block,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                length=config["n_layer"],
            )
            x, _ = blocks(name="h")(x, None)
            return wte.attend(nn.LayerNorm(name="ln_f")(x))

    module = GPT2()
    tokens = jnp.zeros((1, 4), jnp.int32)

    def init(key: Any) -> Any:
        abstract = jax.eval_shape(module.init, jax.random.key(0), tokens)
        return jaxinit.flax.torch_init(
            module, key, rules, variables=abstract, args=(tokens,)
        )

    return init


# linen names the blocks' layers flat: torch's attn.c_attn is h/c_attn[i].
LINEN_MAPPING = [
    (r"transformer\.h\.(\d+)\.(attn|mlp)\.c_(attn|fc)\.(\w+)", r"h.\1.c_\3.\4"),
    (r"transformer\.h\.(\d+)\.attn\.c_proj\.(\w+)", r"h.\1.c_proj.\2"),
    (r"transformer\.h\.(\d+)\.mlp\.c_proj\.(\w+)", r"h.\1.mlp_proj.\2"),
    (r"transformer\.(.*)", r"\1"),
]


def linen_rules(config: dict[str, int]) -> dict[Any, Any]:
    rules = flax_rules(config, linen=True)
    del rules[r".*/c_proj/kernel"]
    rules[r"h/(c_proj|mlp_proj)/kernel"] = jaxinit.normal(std=residual_std(config))
    return rules


# --- Equinox, blocks stacked by filter_vmap -------------------------------------------


def eqx_init(config: dict[str, int], rules: dict[Any, Any]) -> Callable[[Any], Any]:
    """key -> the Equinox port, ``h`` one ``filter_vmap``-stacked block."""
    import equinox as eqx

    import jaxinit.equinox

    width = config["n_embd"]

    class Attention(eqx.Module):
        c_attn: eqx.nn.Linear
        c_proj: eqx.nn.Linear

        def __init__(self, key: Any) -> None:
            k1, k2 = jax.random.split(key)
            self.c_attn = eqx.nn.Linear(width, 3 * width, key=k1)
            self.c_proj = eqx.nn.Linear(width, width, key=k2)

    class MLP(eqx.Module):
        c_fc: eqx.nn.Linear
        c_proj: eqx.nn.Linear

        def __init__(self, key: Any) -> None:
            k1, k2 = jax.random.split(key)
            self.c_fc = eqx.nn.Linear(width, 4 * width, key=k1)
            self.c_proj = eqx.nn.Linear(4 * width, width, key=k2)

    class Block(eqx.Module):
        ln_1: eqx.nn.LayerNorm
        attn: Attention
        ln_2: eqx.nn.LayerNorm
        mlp: MLP

        def __init__(self, key: Any) -> None:
            k1, k2 = jax.random.split(key)
            self.ln_1, self.ln_2 = eqx.nn.LayerNorm(width), eqx.nn.LayerNorm(width)
            self.attn, self.mlp = Attention(k1), MLP(k2)

    class GPT2(eqx.Module):
        wte: eqx.nn.Embedding
        wpe: eqx.nn.Embedding
        h: Block
        ln_f: eqx.nn.LayerNorm

        def __init__(self, key: Any) -> None:
            k1, k2, k3 = jax.random.split(key, 3)
            self.wte = eqx.nn.Embedding(config["vocab_size"], width, key=k1)
            self.wpe = eqx.nn.Embedding(config["n_positions"], width, key=k2)
            keys = jax.random.split(k3, config["n_layer"])
            self.h = eqx.filter_vmap(Block)(keys)
            self.ln_f = eqx.nn.LayerNorm(width)

    def init(key: Any) -> Any:
        abstract = eqx.filter_eval_shape(GPT2, jax.random.key(0))
        return jaxinit.equinox.torch_init(abstract, key, rules)

    return init


def eqx_rules(config: dict[str, int]) -> dict[Any, Any]:
    import equinox as eqx

    return {
        eqx.nn.Linear: {"weight": jaxinit.normal(std=STD), "bias": jaxinit.zeros()},
        eqx.nn.Embedding: {"weight": jaxinit.normal(std=STD)},
        r"h/(attn|mlp)/c_proj/weight": jaxinit.normal(std=residual_std(config)),
    }
