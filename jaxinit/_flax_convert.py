"""Torch weights (numpy arrays, torch state-dict names) to Flax params and back.

Plain numpy: no torch and no Flax import. Each ``*_from_torch`` takes a layer's
state dict as ``{name: numpy array}`` and returns the layer's Flax params (a nested
dict, linen names unless ``layout`` says otherwise); each ``*_to_torch`` inverts it.
"""

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import numpy as np

Params: TypeAlias = dict[str, Any]
TorchState: TypeAlias = Mapping[str, Any]
LSTMLayout: TypeAlias = Literal["linen", "nnx", "nnx_optimized"]
GRULayout: TypeAlias = Literal["linen", "nnx"]


def _array(state: TorchState, name: str, owner: str) -> np.ndarray:
    if name not in state:
        raise KeyError(f"{owner}: missing {name!r}; got keys {sorted(state)}")
    return np.asarray(state[name])


def _optional(state: TorchState, name: str) -> np.ndarray | None:
    return np.asarray(state[name]) if state.get(name) is not None else None


def _with_bias(params: Params, bias: np.ndarray | None) -> Params:
    if bias is not None:
        params["bias"] = bias
    return params


def _torch_bias(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {"bias": np.asarray(params["bias"])} if "bias" in params else {}


def linear_from_torch(state: TorchState) -> Params:
    """``nn.Linear`` ``{weight (out, in), bias}`` to Flax ``{kernel (in, out), bias}``.

    Examples:
        >>> import numpy as np
        >>> from jaxinit.flax import linear_from_torch
        >>> state = {"weight": np.zeros((3, 5)), "bias": np.zeros(3)}
        >>> params = linear_from_torch(state)
        >>> params["kernel"].shape
        (5, 3)
    """
    weight = _array(state, "weight", "linear_from_torch")
    return _with_bias({"kernel": weight.T}, _optional(state, "bias"))


def linear_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax ``{kernel, bias}`` to ``nn.Linear``'s ``{weight, bias}``."""
    return {"weight": np.asarray(params["kernel"]).T, **_torch_bias(params)}


def _to_channels_last(weight: np.ndarray) -> np.ndarray:
    # (a, b, *k) -> (*k, b, a)
    spatial = tuple(range(2, weight.ndim))
    return weight.transpose(*spatial, 1, 0)


def _from_channels_last(kernel: np.ndarray) -> np.ndarray:
    # (*k, b, a) -> (a, b, *k)
    rank = kernel.ndim
    return kernel.transpose(rank - 1, rank - 2, *range(rank - 2))


def conv_from_torch(state: TorchState) -> Params:
    """``nn.Conv{1,2,3}d`` weight ``(out, in/g, *k)`` to Flax ``(*k, in/g, out)``.

    Grouped and depthwise convolutions need nothing else: Flax's ``Conv`` with
    ``feature_group_count=g`` has the same layout. Inputs go from torch's
    ``(N, C, *spatial)`` to Flax's ``(N, *spatial, C)``.

    Examples:
        >>> import numpy as np
        >>> from jaxinit.flax import conv_from_torch
        >>> conv_from_torch({"weight": np.zeros((16, 4, 3, 5))})["kernel"].shape
        (3, 5, 4, 16)
    """
    weight = _array(state, "weight", "conv_from_torch")
    return _with_bias({"kernel": _to_channels_last(weight)}, _optional(state, "bias"))


def conv_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax ``Conv`` ``{kernel, bias}`` to ``nn.Conv*d``'s ``{weight, bias}``."""
    return {
        "weight": _from_channels_last(np.asarray(params["kernel"])),
        **_torch_bias(params),
    }


def conv_transpose_from_torch(
    state: TorchState, *, transpose_kernel: bool = False
) -> Params:
    """``nn.ConvTranspose*d`` weight ``(in, out, *k)`` to a Flax ConvTranspose kernel.

    With Flax's default ``transpose_kernel=False`` the kernel is ``(*k, in, out)``
    with the spatial axes flipped; with ``transpose_kernel=True`` it is
    ``(*k, out, in)``, not flipped. Torch's ``padding=p`` (dilation ``d``,
    ``output_padding=q``) is Flax's explicit padding ``(d(k-1)-p, d(k-1)-p+q)`` per
    spatial axis. Flax's ``ConvTranspose`` has no groups, so a grouped weight raises.

    Raises:
        ValueError: the weight is grouped (its bias is longer than ``weight.shape[1]``).

    Examples:
        >>> import numpy as np
        >>> from jaxinit.flax import conv_transpose_from_torch
        >>> weight = np.zeros((8, 4, 3, 3))
        >>> conv_transpose_from_torch({"weight": weight})["kernel"].shape
        (3, 3, 8, 4)
        >>> params = conv_transpose_from_torch({"weight": weight},
        ...                                    transpose_kernel=True)
        >>> params["kernel"].shape
        (3, 3, 4, 8)
    """
    weight = _array(state, "weight", "conv_transpose_from_torch")
    bias = _optional(state, "bias")
    if bias is not None and bias.shape[0] != weight.shape[1]:
        raise ValueError(
            "conv_transpose_from_torch: grouped transposed convolutions (groups="
            f"{bias.shape[0] // max(weight.shape[1], 1)}) have no Flax ConvTranspose "
            "counterpart"
        )
    spatial = tuple(range(2, weight.ndim))
    if transpose_kernel:
        kernel = _to_channels_last(weight)
    else:
        kernel = np.flip(weight, axis=spatial).transpose(*spatial, 0, 1)
    return _with_bias({"kernel": np.ascontiguousarray(kernel)}, bias)


def conv_transpose_to_torch(
    params: Mapping[str, Any], *, transpose_kernel: bool = False
) -> dict[str, np.ndarray]:
    """Flax ``ConvTranspose`` params to ``nn.ConvTranspose*d``'s ``{weight, bias}``."""
    kernel = np.asarray(params["kernel"])
    rank = kernel.ndim
    if transpose_kernel:
        weight = _from_channels_last(kernel)
    else:
        weight = kernel.transpose(rank - 2, rank - 1, *range(rank - 2))
        weight = np.flip(weight, axis=tuple(range(2, rank)))
    return {"weight": np.ascontiguousarray(weight), **_torch_bias(params)}


def embedding_from_torch(state: TorchState) -> Params:
    """``nn.Embedding`` ``weight (n, d)`` to Flax ``Embed`` ``embedding (n, d)``."""
    return {"embedding": _array(state, "weight", "embedding_from_torch")}


def embedding_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax ``Embed`` ``embedding`` to ``nn.Embedding``'s ``weight``."""
    return {"weight": np.asarray(params["embedding"])}


_QKV = ("query", "key", "value")


def multihead_attention_from_torch(state: TorchState, num_heads: int) -> Params:
    """``nn.MultiheadAttention`` to Flax attention params ``{query, key, value, out}``.

    For linen ``MultiHeadDotProductAttention`` and nnx ``MultiHeadAttention``.

    Reads the packed ``in_proj_weight (3E, E)`` or, with kdim/vdim, the separate
    ``q/k/v_proj_weight``; ``in_proj_bias``; ``out_proj.weight``/``out_proj.bias``.
    Kernels become ``(in, heads, head_dim)`` (torch's heads are contiguous) and the
    out kernel ``(heads, head_dim, E)``. Use batch-first inputs on the torch side.

    Raises:
        ValueError: ``add_bias_kv`` weights (``bias_k``, ``bias_v``), which Flax lacks.

    Examples:
        >>> import numpy as np
        >>> from jaxinit.flax import multihead_attention_from_torch
        >>> state = {"in_proj_weight": np.zeros((24, 8)), "in_proj_bias": np.zeros(24),
        ...          "out_proj.weight": np.zeros((8, 8)), "out_proj.bias": np.zeros(8)}
        >>> params = multihead_attention_from_torch(state, num_heads=2)
        >>> params["query"]["kernel"].shape, params["out"]["kernel"].shape
        ((8, 2, 4), (2, 4, 8))
    """
    owner = "multihead_attention_from_torch"
    if state.get("bias_k") is not None or state.get("bias_v") is not None:
        raise ValueError(
            f"{owner}: add_bias_kv (bias_k, bias_v) has no Flax counterpart: Flax "
            "attention has no learned key/value row. Pop 'bias_k' and 'bias_v' from "
            "the state dict and append them to the projected keys and values in an "
            "attention_fn (see docs/conversion_limits.md)"
        )
    out_weight = _array(state, "out_proj.weight", owner)
    embed = out_weight.shape[0]
    if embed % num_heads:
        raise ValueError(
            f"{owner}: embed_dim {embed} is not divisible by {num_heads} heads"
        )
    head_dim = embed // num_heads
    if state.get("in_proj_weight") is not None:
        weights = np.split(_array(state, "in_proj_weight", owner), 3, axis=0)
    else:
        weights = [_array(state, f"{n}_proj_weight", owner) for n in ("q", "k", "v")]
    in_bias = _optional(state, "in_proj_bias")
    biases = np.split(in_bias, 3) if in_bias is not None else [None] * 3
    params: Params = {}
    for name, weight, bias in zip(_QKV, weights, biases, strict=True):
        kernel = weight.T.reshape(weight.shape[1], num_heads, head_dim)
        params[name] = _with_bias(
            {"kernel": kernel},
            None if bias is None else bias.reshape(num_heads, head_dim),
        )
    out_kernel = out_weight.T.reshape(num_heads, head_dim, out_weight.shape[0])
    params["out"] = _with_bias(
        {"kernel": out_kernel}, _optional(state, "out_proj.bias")
    )
    return params


def multihead_attention_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax attention params to ``nn.MultiheadAttention``'s state dict.

    Packed (``in_proj_weight``) when query, key and value all take ``E`` inputs,
    as torch does for ``kdim == vdim == embed_dim``; separate otherwise.
    """
    weights, biases = [], []
    for name in _QKV:
        kernel = np.asarray(params[name]["kernel"])
        weights.append(kernel.reshape(kernel.shape[0], -1).T)
        if "bias" in params[name]:
            biases.append(np.asarray(params[name]["bias"]).reshape(-1))
    embed = weights[0].shape[0]
    state: dict[str, np.ndarray] = {}
    if all(weight.shape == (embed, embed) for weight in weights):
        state["in_proj_weight"] = np.concatenate(weights, axis=0)
    else:
        for letter, weight in zip("qkv", weights, strict=True):
            state[f"{letter}_proj_weight"] = weight
    if biases:
        state["in_proj_bias"] = np.concatenate(biases)
    out_kernel = np.asarray(params["out"]["kernel"])
    state["out_proj.weight"] = out_kernel.reshape(-1, out_kernel.shape[-1]).T
    if "bias" in params["out"]:
        state["out_proj.bias"] = np.asarray(params["out"]["bias"])
    return state


_CELL_OF_GATES = {1.0: "an RNN cell", 3.0: "a GRU cell", 4.0: "an LSTM cell"}


def _rnn_state(
    state: TorchState, owner: str, suffix: str, gates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    w_ih = _array(state, f"weight_ih{suffix}", owner)
    w_hh = _array(state, f"weight_hh{suffix}", owner)
    if state.get(f"weight_hr{suffix}") is not None:
        raise ValueError(
            f"{owner}: proj_size > 0 (weight_hr) has no Flax cell counterpart"
        )
    if w_hh.ndim != 2:
        raise ValueError(
            f"{owner}: weight_hh{suffix} must be 2-D ({gates} * hidden, hidden), "
            f"got shape {w_hh.shape}"
        )
    hidden = w_hh.shape[1]
    rows = gates * hidden
    b_ih = _optional(state, f"bias_ih{suffix}")
    b_hh = _optional(state, f"bias_hh{suffix}")
    expected = {
        f"weight_hh{suffix}": (w_hh, (rows, hidden)),
        f"weight_ih{suffix}": (w_ih, (rows, w_ih.shape[-1] if w_ih.ndim else 0)),
        f"bias_ih{suffix}": (b_ih, (rows,)),
        f"bias_hh{suffix}": (b_hh, (rows,)),
    }
    for name, (array, shape) in expected.items():
        if array is not None and array.shape != shape:
            cell = _CELL_OF_GATES.get(w_hh.shape[0] / hidden if hidden else 0.0)
            wrong_cell = cell is not None and w_hh.shape[0] != rows
            hint = f" (weight_hh{suffix} is {cell}'s)" if wrong_cell else ""
            raise ValueError(
                f"{owner}: {name} has shape {array.shape}, but a cell with "
                f"{gates} gates and hidden size {hidden} (from weight_hh{suffix} "
                f"{w_hh.shape}) needs {shape}{hint}"
            )
    zeros = np.zeros(rows, w_ih.dtype)
    return (
        w_ih,
        w_hh,
        zeros if b_ih is None else b_ih,
        zeros if b_hh is None else b_hh,
    )


_LSTM_GATES = ("i", "f", "g", "o")


def lstm_from_torch(
    state: TorchState, *, layout: LSTMLayout = "linen", suffix: str = ""
) -> Params:
    """``nn.LSTM`` / ``nn.LSTMCell`` weights to a Flax LSTM cell's params.

    ``layout``: ``"linen"`` for linen ``LSTMCell``/``OptimizedLSTMCell`` (``ii, if,
    ig, io`` input kernels, ``hi, hf, hg, ho`` recurrent kernels with bias),
    ``"nnx"`` for nnx ``LSTMCell`` (the same, with ``if_``), ``"nnx_optimized"``
    for nnx ``OptimizedLSTMCell`` (fused ``dense_i``, ``dense_h``). Torch's gate
    order is i, f, g, o; each Flax bias is ``b_ih + b_hh``. ``suffix`` selects a
    layer of ``nn.LSTM`` (``"_l0"``, ``"_l0_reverse"``, ...); ``nn.LSTMCell`` has none.

    Raises:
        ValueError: ``proj_size > 0`` (``weight_hr``), which Flax cells lack.

    Examples:
        >>> import numpy as np
        >>> from jaxinit.flax import lstm_from_torch
        >>> state = {"weight_ih_l0": np.zeros((32, 3)),
        ...          "weight_hh_l0": np.zeros((32, 8)),
        ...          "bias_ih_l0": np.zeros(32), "bias_hh_l0": np.zeros(32)}
        >>> params = lstm_from_torch(state, layout="nnx", suffix="_l0")
        >>> params["if_"]["kernel"].shape, params["hf"]["bias"].shape
        ((3, 8), (8,))
    """
    owner = "lstm_from_torch"
    w_ih, w_hh, b_ih, b_hh = _rnn_state(state, owner, suffix, 4)
    bias = b_ih + b_hh
    if layout == "nnx_optimized":
        return {
            "dense_i": {"kernel": w_ih.T},
            "dense_h": {"kernel": w_hh.T, "bias": bias},
        }
    if layout not in ("linen", "nnx"):
        raise ValueError(f"{owner}: layout must be 'linen', 'nnx' or 'nnx_optimized'")
    params: Params = {}
    for gate, w_i, w_h, b in zip(
        _LSTM_GATES,
        np.split(w_ih, 4),
        np.split(w_hh, 4),
        np.split(bias, 4),
        strict=True,
    ):
        input_name = "if_" if (gate == "f" and layout == "nnx") else f"i{gate}"
        params[input_name] = {"kernel": w_i.T}
        params[f"h{gate}"] = {"kernel": w_h.T, "bias": b}
    return params


def lstm_to_torch(
    params: Mapping[str, Any], *, layout: LSTMLayout = "linen", suffix: str = ""
) -> dict[str, np.ndarray]:
    """A Flax LSTM cell's params to torch's; the summed bias goes to ``bias_ih``.

    Torch's ``b_ih`` and ``b_hh`` only ever act as their sum, so the split is
    arbitrary: ``bias_hh`` is returned as zeros.
    """
    if layout == "nnx_optimized":
        w_ih = np.asarray(params["dense_i"]["kernel"]).T
        w_hh = np.asarray(params["dense_h"]["kernel"]).T
        bias = np.asarray(params["dense_h"]["bias"])
    else:
        forget = "if_" if layout == "nnx" else "if"
        inputs = [params[forget if g == "f" else f"i{g}"] for g in _LSTM_GATES]
        w_ih = np.concatenate([np.asarray(p["kernel"]).T for p in inputs])
        hidden = [params[f"h{g}"] for g in _LSTM_GATES]
        w_hh = np.concatenate([np.asarray(p["kernel"]).T for p in hidden])
        bias = np.concatenate([np.asarray(p["bias"]) for p in hidden])
    return {
        f"weight_ih{suffix}": w_ih,
        f"weight_hh{suffix}": w_hh,
        f"bias_ih{suffix}": bias,
        f"bias_hh{suffix}": np.zeros_like(bias),
    }


def gru_from_torch(
    state: TorchState, *, layout: GRULayout = "linen", suffix: str = ""
) -> Params:
    """``nn.GRU`` / ``nn.GRUCell`` weights to a Flax GRU cell's params.

    Torch's gates are r, z, n with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
    linen ``GRUCell`` has the same structure: ``ir``, ``iz`` biases are
    ``b_ir + b_hr``, ``b_iz + b_hz``; ``in`` and ``hn`` keep ``b_in`` and ``b_hn``.
    nnx ``GRUCell`` fuses the gates (``dense_i`` with bias ``[b_ir + b_hr,
    b_iz + b_hz, b_in]``, ``dense_h`` without bias) and has no ``b_hn``.

    Raises:
        ValueError: ``layout="nnx"`` and ``b_hn`` is not zero (nnx cannot represent
            it; use linen's ``GRUCell``, or zero ``b_hn`` in torch first).

    Examples:
        >>> import numpy as np
        >>> from jaxinit.flax import gru_from_torch
        >>> state = {"weight_ih": np.zeros((24, 3)), "weight_hh": np.zeros((24, 8)),
        ...          "bias_ih": np.zeros(24), "bias_hh": np.zeros(24)}
        >>> sorted(gru_from_torch(state))
        ['hn', 'hr', 'hz', 'in', 'ir', 'iz']
        >>> gru_from_torch(state, layout="nnx")["dense_i"]["kernel"].shape
        (3, 24)
    """
    owner = "gru_from_torch"
    w_ih, w_hh, b_ih, b_hh = _rnn_state(state, owner, suffix, 3)
    hidden = w_hh.shape[0] // 3
    b_hn = b_hh[2 * hidden :]
    if layout == "nnx":
        if np.any(b_hn != 0):
            raise ValueError(
                f"{owner}: nnx GRUCell has no b_hn (the recurrent bias of the new "
                "gate), and this torch GRU's b_hn is not zero; use linen's GRUCell, "
                "or zero bias_hh[2*hidden:] before converting"
            )
        fused = np.concatenate(
            [b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :]]
        )
        return {
            "dense_i": {"kernel": w_ih.T, "bias": fused},
            "dense_h": {"kernel": w_hh.T},
        }
    if layout != "linen":
        raise ValueError(f"{owner}: layout must be 'linen' or 'nnx'")
    w_ir, w_iz, w_in = np.split(w_ih, 3)
    w_hr, w_hz, w_hn = np.split(w_hh, 3)
    b_ir, b_iz, b_in = np.split(b_ih, 3)
    b_hr, b_hz, _ = np.split(b_hh, 3)
    return {
        "ir": {"kernel": w_ir.T, "bias": b_ir + b_hr},
        "iz": {"kernel": w_iz.T, "bias": b_iz + b_hz},
        "in": {"kernel": w_in.T, "bias": b_in},
        "hr": {"kernel": w_hr.T},
        "hz": {"kernel": w_hz.T},
        "hn": {"kernel": w_hn.T, "bias": b_hn},
    }


def gru_to_torch(
    params: Mapping[str, Any], *, layout: GRULayout = "linen", suffix: str = ""
) -> dict[str, np.ndarray]:
    """A Flax GRU cell's params to torch's; summed r/z biases go to ``bias_ih``."""
    if layout == "nnx":
        w_ih = np.asarray(params["dense_i"]["kernel"]).T
        w_hh = np.asarray(params["dense_h"]["kernel"]).T
        b_ih = np.asarray(params["dense_i"]["bias"])
        b_hh = np.zeros_like(b_ih)
    else:
        gates_i = [params[n] for n in ("ir", "iz", "in")]
        gates_h = [params[n] for n in ("hr", "hz", "hn")]
        w_ih = np.concatenate([np.asarray(p["kernel"]).T for p in gates_i])
        w_hh = np.concatenate([np.asarray(p["kernel"]).T for p in gates_h])
        b_ih = np.concatenate([np.asarray(p["bias"]) for p in gates_i])
        b_hn = np.asarray(params["hn"]["bias"])
        b_hh = np.concatenate([np.zeros_like(b_hn), np.zeros_like(b_hn), b_hn])
    return {
        f"weight_ih{suffix}": w_ih,
        f"weight_hh{suffix}": w_hh,
        f"bias_ih{suffix}": b_ih,
        f"bias_hh{suffix}": b_hh,
    }
