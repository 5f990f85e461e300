"""jaxinit.torch_defaults: Flax layers built with these keyword arguments start from
torch's exact laws (formulas per parameter, and two-sample KS against the torch
layer's own draw), for linen and nnx; plus values, reprs and errors."""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("flax")

import torch
from _porting_models import (
    CASES,
    FLAVOURS,
    Case,
    assert_law,
    check_against_torch,
    flat,
    nnx_params,
    pooled,
    triangular,
    uniform,
)
from _stats import assert_same_law
from flax import linen as nn, nnx

import jaxinit
import jaxinit.flax as jflax
from jaxinit import torch_defaults as td


def defaults_draws(case: Case, flavour: str) -> Callable[[int], dict[Any, np.ndarray]]:
    """draw(i): the parameters of the case's Flax model built with torch_defaults,
    with key (linen) or seed (nnx) 3 + i."""
    if flavour == "linen":
        init = jax.jit(case.linen_module(True).init)
        x = jnp.asarray(case.flax_input())
        return lambda index: flat(init(jax.random.key(3 + index), x)["params"])
    return lambda index: nnx_params(case.nnx_module(True, 3 + index))


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_layers_built_with_defaults_draw_torch_laws(case: Case, flavour: str) -> None:
    draws = check_against_torch(
        case, flavour, defaults_draws(case, flavour), exact=False
    )
    for path in case.inexact_defaults & draws[0].keys():
        # linen GRUCell: one bias_init for ir, iz, in, hn: b_ir + b_hr's law for all.
        law = triangular(1 / math.sqrt(32))
        assert_law(pooled(draws, path), law, "/".join(path))


def test_linear_values() -> None:
    kwargs = td.linear(784)
    assert kwargs["kernel_init"] == jaxinit.kaiming_uniform(a=math.sqrt(5))
    assert kwargs["bias_init"] == jaxinit.uniform(-1 / 28, 1 / 28)
    assert td.linear(784) == kwargs and hash(kwargs["bias_init"]) == hash(
        td.linear(784)["bias_init"]
    )
    assert td.linear(0)["bias_init"] == jaxinit.zeros()  # torch: bias 0 when fan_in 0


def test_conv_bias_bound_uses_groups() -> None:
    assert td.conv(64, (3, 3), groups=64)["bias_init"] == jaxinit.uniform(-1 / 3, 1 / 3)
    bound = 1 / math.sqrt(3 * 7 * 7)  # Conv2d(3, 64, 7): 0.08247860988423225
    assert td.conv(3, (7, 7))["bias_init"] == jaxinit.uniform(-bound, bound)
    assert td.conv(8, (3,))["kernel_init"] == td.linear(5)["kernel_init"]


def test_conv_transpose_fans_and_settings() -> None:
    plain = td.conv_transpose(64, 32, (4, 4))
    flipped = td.conv_transpose(64, 32, (4, 4), transpose_kernel=True)
    bound = 1 / math.sqrt(32 * 4 * 4)
    assert plain["bias_init"] == jaxinit.uniform(-bound, bound)
    assert plain["kernel_init"] == jaxinit.kaiming_uniform(
        a=math.sqrt(5), in_axis=-1, out_axis=-2
    )
    assert flipped["kernel_init"] == jaxinit.kaiming_uniform(a=math.sqrt(5))
    # Grouped (spec golden case 6): torch's fan is (out/g) * prod(k) = 256.
    grouped = td.conv_transpose(64, 32, (4, 4), groups=2)
    assert grouped["kernel_init"] == jaxinit.uniform(-1 / 16, 1 / 16)
    assert grouped["bias_init"] == grouped["kernel_init"]


def test_grouped_conv_transpose_matches_torch_weight_law() -> None:
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(6, 16, 3, groups=2)  # spec: W (6, 8, 3, 3), k = 72
    kernel = td.conv_transpose(6, 16, (3, 3), groups=2)["kernel_init"]
    drawn = kernel(jax.random.key(0), (3, 3, 3, 16))  # lax kernel (*k, in/g, out)
    bound = 1 / math.sqrt(72)
    assert_law(np.asarray(drawn), uniform(bound), "kernel")
    assert_law(layer.weight.detach().numpy(), uniform(bound), "torch weight")
    assert_same_law(drawn, layer.weight.detach().numpy())


def test_attention_separate_projections() -> None:
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, kdim=16, vdim=24, batch_first=True)
    state = {k: v.detach().numpy() for k, v in mha.state_dict().items()}
    reference = jflax.multihead_attention_from_torch(state, 4)
    module = nn.MultiHeadDotProductAttention(
        4, **td.multihead_attention(32, kdim=16, vdim=24)
    )
    q, k, v = jnp.ones((1, 2, 32)), jnp.ones((1, 3, 16)), jnp.ones((1, 3, 24))
    params = jax.jit(module.init)(jax.random.key(0), q, k, v)["params"]
    for name, fan_in in (("query", 32), ("key", 16), ("value", 24)):
        law = uniform(math.sqrt(6 / (fan_in + 32)))
        assert_law(np.asarray(params[name]["kernel"]), law, name)
        assert_law(reference[name]["kernel"], law, f"torch {name}")
        assert_same_law(params[name]["kernel"], reference[name]["kernel"])


def test_attention_packed_bound() -> None:
    bound = td.multihead_attention(512)["kernel_init"]
    assert bound == jaxinit.uniform(
        -0.05412658773652741, 0.05412658773652741
    )  # golden 7
    separate = td.multihead_attention(512, kdim=256)["kernel_init"]
    assert separate == jaxinit.xavier_uniform()


def test_embedding_padding_row() -> None:
    init = td.embedding(10, padding_idx=-2)["embedding_init"]
    table = init(jax.random.key(0), (10, 4))
    assert bool((table[8] == 0).all()) and bool((table[:8] != 0).all())
    assert init == td.embedding(10, padding_idx=8)["embedding_init"]
    assert eval(repr(init), {"jaxinit": jaxinit}) == init
    assert td.embedding(10)["embedding_init"] == jaxinit.normal()
    jitted = jax.jit(lambda key: init(key, (10, 4)))(jax.random.key(0))
    np.testing.assert_array_equal(jitted, table)


def test_recurrent_bias_layouts() -> None:
    bias = td.gru_cell(16)["bias_init"]
    fused = np.asarray(bias(jax.random.key(0), (48,)))
    assert np.abs(fused[:32]).max() <= 0.5 and np.abs(fused[32:]).max() <= 0.25
    assert np.abs(np.asarray(bias(jax.random.key(0), (16,)))).max() <= 0.5
    lstm = td.lstm_cell(16)["bias_init"]
    assert lstm(jax.random.key(0), (64,)).shape == (64,)
    assert lstm(jax.random.key(0), (16,), jnp.bfloat16).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="hidden_size=16"):
        lstm(jax.random.key(0), (20,))
    assert td.rnn_cell(16)["kernel_init"] == jaxinit.uniform(-0.25, 0.25)
    assert td.lstm_cell(16) == td.lstm_cell(16)
    assert repr(bias) == "jaxinit.torch_defaults.gru_cell(16)['bias_init']"
    assert eval(repr(bias), {"jaxinit": jaxinit}) == bias
    assert td.gru_cell(16)["bias_init"] != td.lstm_cell(16)["bias_init"]


def test_recurrent_bias_triangular_law() -> None:
    hidden = 2**14
    drawn = td.lstm_cell(hidden)["bias_init"](jax.random.key(0), (4 * hidden,))
    assert_law(np.asarray(drawn), triangular(1 / 128), "lstm bias")


def test_norms_and_prelu() -> None:
    for kwargs in (td.layer_norm(), td.group_norm(), td.batch_norm()):
        assert kwargs == {"scale_init": jaxinit.ones(), "bias_init": jaxinit.zeros()}
    layer = nnx.PReLU(**td.prelu())
    assert (
        float(layer.negative_slope[...])
        == 0.25
        == float(torch.nn.PReLU().weight.detach())
    )
    assert td.prelu(num_parameters=8, init=0.1) == {"negative_slope_init": 0.1}
    norm = nnx.GroupNorm(8, num_groups=2, **td.group_norm(), rngs=nnx.Rngs(0))
    assert bool((norm.scale[...] == 1).all())


def test_low_precision_params() -> None:
    layer = nnx.Linear(
        16, 8, param_dtype=jnp.bfloat16, **td.linear(16), rngs=nnx.Rngs(0)
    )
    assert layer.bias[...].dtype == jnp.bfloat16
    assert bool((abs(layer.bias[...].astype(jnp.float32)) <= 0.25).all())


def test_errors() -> None:
    with pytest.raises(TypeError, match="ambiguous"):
        td.conv(3, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        td.conv(6, (3, 3), groups=4)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        td.conv_transpose(4, 6, (3, 3), groups=4)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        td.conv(6, (3, 3), groups=0)
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings"):
        td.embedding(10, padding_idx=10)
    with pytest.raises(ValueError, match="embedding table"):
        td.embedding(10, padding_idx=0)["embedding_init"](jax.random.key(0), (9, 4))
    with pytest.raises(ValueError, match="hidden_size must be >= 1"):
        td.lstm_cell(0)
    with pytest.raises(TypeError, match="in_features must be an int"):
        td.linear(3.0)  # type: ignore[arg-type]
