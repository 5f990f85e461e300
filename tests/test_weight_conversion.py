"""jaxinit.flax weight conversion: torch weights (numpy) to linen and nnx params give
the same forward outputs as torch on random inputs, and convert back losslessly."""

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
    flat,
    load_nnx,
    torch_state,
)
from flax import linen as nn, nnx, traverse_util

import jaxinit.flax as jflax

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def state_of(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def rng_input(*shape: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=shape).astype(np.float32)


def flax_forward(case: Case, flavour: str, params: dict[str, Any]) -> np.ndarray:
    x = jnp.asarray(case.flax_input())
    if flavour == "linen":
        module = case.linen_module(False)
        expected = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
        shapes = {
            path: v.shape for path, v in traverse_util.flatten_dict(expected).items()
        }
        assert shapes == {path: v.shape for path, v in flat(params).items()}
        return np.asarray(jax.jit(module.apply)({"params": params}, x))
    if case.name in ("lstm", "gru"):
        model = case.nnx_module(False, 0)  # nnx.RNN needs concrete RNG state
    else:
        model = nnx.eval_shape(lambda: case.nnx_module(False, 0))  # no default init
    load_nnx(model, params)
    return np.asarray(nnx.jit(lambda model, x: model(x))(model, x))


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_forward_outputs_agree(case: Case, flavour: str) -> None:
    torch_module = case.torch()
    with torch.no_grad():  # random biases everywhere, so no term can hide
        for param in torch_module.parameters():
            if param.ndim == 1:
                param.uniform_(-0.5, 0.5)
    params = case.from_torch(torch_state(torch_module), flavour)
    if case.name == "gru" and flavour == "nnx":
        # nnx GRUCell has no b_hn: the torch model must not use it either.
        with torch.no_grad():
            torch_module.bias_hh_l0[64:] = 0.0
    expected = case.torch_output(torch_module)
    got = flax_forward(case, flavour, params)
    np.testing.assert_allclose(got, expected, **TOLERANCE)


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_conv_transpose_1d_with_dilation_and_output_padding(
    transpose_kernel: bool,
) -> None:
    torch.manual_seed(0)
    k, stride, pad, dilation, extra = 3, 2, 1, 2, 1
    layer = torch.nn.ConvTranspose1d(
        4, 6, k, stride=stride, padding=pad, output_padding=extra, dilation=dilation
    )
    x = rng_input(2, 4, 7)
    with torch.no_grad():
        expected = layer(torch.from_numpy(x)).numpy().transpose(0, 2, 1)
    edge = dilation * (k - 1) - pad
    module = nn.ConvTranspose(
        6,
        (k,),
        strides=(stride,),
        padding=((edge, edge + extra),),
        kernel_dilation=(dilation,),
        transpose_kernel=transpose_kernel,
    )
    params = jflax.conv_transpose_from_torch(
        state_of(layer), transpose_kernel=transpose_kernel
    )
    got = module.apply({"params": params}, x.transpose(0, 2, 1))
    np.testing.assert_allclose(got, expected, **TOLERANCE)


def test_grouped_conv3d_and_conv1d() -> None:
    torch.manual_seed(0)
    conv3 = torch.nn.Conv3d(4, 6, (1, 2, 3), groups=2)
    x3 = rng_input(1, 4, 3, 4, 5)
    with torch.no_grad():
        expected3 = conv3(torch.from_numpy(x3)).numpy().transpose(0, 2, 3, 4, 1)
    module3 = nn.Conv(6, (1, 2, 3), padding="VALID", feature_group_count=2)
    got3 = module3.apply(
        {"params": jflax.conv_from_torch(state_of(conv3))}, x3.transpose(0, 2, 3, 4, 1)
    )
    np.testing.assert_allclose(got3, expected3, **TOLERANCE)
    conv1 = torch.nn.Conv1d(6, 6, 3, groups=6, padding=1)
    x1 = rng_input(2, 6, 9)
    with torch.no_grad():
        expected1 = conv1(torch.from_numpy(x1)).numpy().transpose(0, 2, 1)
    module1 = nn.Conv(6, (3,), padding=((1, 1),), feature_group_count=6)
    got1 = module1.apply(
        {"params": jflax.conv_from_torch(state_of(conv1))}, x1.transpose(0, 2, 1)
    )
    np.testing.assert_allclose(got1, expected1, **TOLERANCE)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_attention_with_kdim_and_vdim(flavour: str) -> None:
    torch.manual_seed(0)
    kv = 16
    mha = torch.nn.MultiheadAttention(32, 4, kdim=kv, vdim=kv, batch_first=True)
    with torch.no_grad():
        mha.in_proj_bias.uniform_(-0.5, 0.5)
        mha.out_proj.bias.uniform_(-0.5, 0.5)
    state = state_of(mha)
    assert "q_proj_weight" in state
    q, k = rng_input(2, 3, 32), rng_input(2, 5, kv)
    with torch.no_grad():
        expected = mha(*(torch.from_numpy(a) for a in (q, k, k)), need_weights=False)[0]
    params = jflax.multihead_attention_from_torch(state, 4)
    if flavour == "linen":
        got = nn.MultiHeadDotProductAttention(4).apply({"params": params}, q, k)
    else:
        model = nnx.eval_shape(
            lambda: nnx.MultiHeadAttention(
                4, 32, in_kv_features=kv, decode=False, rngs=nnx.Rngs(0)
            )
        )
        load_nnx(model, params)
        got = model(q, k)
    np.testing.assert_allclose(got, expected.numpy(), **TOLERANCE)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_optimized_lstm_cells(flavour: str) -> None:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 8, batch_first=True)
    x = rng_input(2, 4, 3)
    with torch.no_grad():
        expected = lstm(torch.from_numpy(x))[0].numpy()
    if flavour == "linen":
        params = jflax.lstm_from_torch(state_of(lstm), layout="linen", suffix="_l0")
        module = nn.RNN(nn.OptimizedLSTMCell(8))
        got = module.apply({"params": {"cell": params}}, x)
    else:
        params = jflax.lstm_from_torch(
            state_of(lstm), layout="nnx_optimized", suffix="_l0"
        )
        model = nnx.RNN(nnx.OptimizedLSTMCell(3, 8, rngs=nnx.Rngs(0)))
        load_nnx(model, {"cell": params})
        got = model(x)
    np.testing.assert_allclose(got, expected, **TOLERANCE)


def test_round_trips() -> None:
    torch.manual_seed(0)
    layers = {
        "linear": (
            torch.nn.Linear(5, 3),
            jflax.linear_from_torch,
            jflax.linear_to_torch,
        ),
        "conv": (
            torch.nn.Conv2d(4, 6, (2, 3), groups=2),
            jflax.conv_from_torch,
            jflax.conv_to_torch,
        ),
        "embedding": (
            torch.nn.Embedding(7, 3, padding_idx=0),
            jflax.embedding_from_torch,
            jflax.embedding_to_torch,
        ),
        "attention": (
            torch.nn.MultiheadAttention(8, 2),
            lambda s: jflax.multihead_attention_from_torch(s, 2),
            jflax.multihead_attention_to_torch,
        ),
        "attention_kdim": (
            torch.nn.MultiheadAttention(8, 2, kdim=4, vdim=6),
            lambda s: jflax.multihead_attention_from_torch(s, 2),
            jflax.multihead_attention_to_torch,
        ),
    }
    for transpose_kernel in (False, True):
        layers[f"conv_transpose_{transpose_kernel}"] = (
            torch.nn.ConvTranspose3d(4, 6, (1, 2, 3)),
            lambda s, t=transpose_kernel: jflax.conv_transpose_from_torch(
                s, transpose_kernel=t
            ),
            lambda p, t=transpose_kernel: jflax.conv_transpose_to_torch(
                p, transpose_kernel=t
            ),
        )
    for name, (layer, to_flax, to_torch) in layers.items():
        state = state_of(layer)
        back = to_torch(to_flax(state))
        assert back.keys() == state.keys(), name
        for key, value in state.items():
            np.testing.assert_array_equal(back[key], value, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("layout", ["linen", "nnx", "nnx_optimized"])
def test_lstm_round_trip_keeps_weights_and_bias_sums(layout: Any) -> None:
    torch.manual_seed(0)
    state = state_of(torch.nn.LSTMCell(3, 4))
    back = jflax.lstm_to_torch(
        jflax.lstm_from_torch(state, layout=layout), layout=layout
    )
    for name in ("weight_ih", "weight_hh"):
        np.testing.assert_array_equal(back[name], state[name])
    np.testing.assert_allclose(
        back["bias_ih"] + back["bias_hh"],
        state["bias_ih"] + state["bias_hh"],
        rtol=1e-6,
    )


@pytest.mark.parametrize("layout", ["linen", "nnx"])
def test_gru_round_trip(layout: Any) -> None:
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(3, 4)
    with torch.no_grad():
        cell.bias_hh[8:] = 0.0 if layout == "nnx" else cell.bias_hh[8:]
    state = state_of(cell)
    back = jflax.gru_to_torch(jflax.gru_from_torch(state, layout=layout), layout=layout)
    for name in ("weight_ih", "weight_hh"):
        np.testing.assert_array_equal(back[name], state[name])
    summed = state["bias_ih"][:8] + state["bias_hh"][:8]  # r and z act through the sum
    np.testing.assert_allclose(
        back["bias_ih"][:8] + back["bias_hh"][:8], summed, rtol=1e-6
    )
    np.testing.assert_array_equal(back["bias_ih"][8:], state["bias_ih"][8:])
    np.testing.assert_array_equal(back["bias_hh"][8:], state["bias_hh"][8:])


def test_unrepresentable_weights_raise() -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="grouped"):
        jflax.conv_transpose_from_torch(
            state_of(torch.nn.ConvTranspose2d(4, 6, 3, groups=2))
        )
    with pytest.raises(ValueError, match="b_hn"):
        jflax.gru_from_torch(state_of(torch.nn.GRUCell(3, 4)), layout="nnx")
    with pytest.raises(ValueError, match="add_bias_kv"):
        jflax.multihead_attention_from_torch(
            state_of(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True)), 2
        )
    with pytest.raises(ValueError, match="proj_size"):
        jflax.lstm_from_torch(state_of(torch.nn.LSTM(3, 4, proj_size=2)), suffix="_l0")
    with pytest.raises(KeyError, match="weight"):
        jflax.linear_from_torch({})
