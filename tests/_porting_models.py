"""Small torch models and their linen and nnx twins, shared by the porting tests.

Each ``Case`` builds the torch module, the linen module (with its variables) and the
nnx module of the same sizes; converts torch weights to each Flax flavour with
jaxinit.flax; knows the exact law torch draws every parameter from (from the
formulas of torch-init-semantics.md section 4, in Flax layout); and runs the three
forward passes on the same input. ``defaults=True`` builds the Flax layers with
``jaxinit.torch_defaults`` keyword arguments instead of Flax's own defaults.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

torch = pytest.importorskip("torch")
flax = pytest.importorskip("flax")
from _stats import assert_ks, assert_same_law  # noqa: E402
from flax import linen as nn, nnx, traverse_util  # noqa: E402

import jaxinit.flax as jflax  # noqa: E402
from jaxinit import torch_defaults as td  # noqa: E402

Path = tuple[str, ...]
FLAVOURS = ("linen", "nnx")


@dataclasses.dataclass(frozen=True)
class Law:
    """The exact law of one parameter: uniform, normal, triangular or constant."""

    kind: str  # "uniform" | "normal" | "triangular" | "constant" | "padded_normal"
    scale: float = 0.0  # bound (uniform, triangular half-width / 2), std, or value
    row: int = 0  # the zero row of "padded_normal"

    def dist(self) -> Any:
        if self.kind == "uniform":
            return scipy.stats.uniform(-self.scale, 2 * self.scale)
        if self.kind == "triangular":  # sum of two U(+-scale)
            return scipy.stats.triang(0.5, loc=-2 * self.scale, scale=4 * self.scale)
        if self.kind in ("normal", "padded_normal"):
            return scipy.stats.norm(0.0, self.scale)
        raise ValueError(self.kind)

    def support(self) -> float:
        """Largest |value| the law allows (inf for normals)."""
        if self.kind == "uniform":
            return self.scale
        if self.kind == "triangular":
            return 2 * self.scale
        return math.inf


def uniform(bound: float) -> Law:
    return Law("uniform", bound)


def fan_in_law(fan_in: int) -> Law:
    return Law("uniform", 1.0 / math.sqrt(fan_in))


def triangular(bound: float) -> Law:
    return Law("triangular", bound)


def constant(value: float) -> Law:
    return Law("constant", value)


def torch_state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def sub(state: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of a torch state dict under ``prefix.``, prefix removed."""
    start = prefix + "."
    return {k[len(start) :]: v for k, v in state.items() if k.startswith(start)}


def flat(tree: Any) -> dict[Path, np.ndarray]:
    return {
        tuple(str(p) for p in path): np.asarray(value)
        for path, value in traverse_util.flatten_dict(dict(tree)).items()
    }


def nnx_params(model: Any) -> dict[Path, np.ndarray]:
    return {
        tuple(str(p) for p in path): np.asarray(var.get_value())
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


def load_nnx(model: Any, params: dict[str, Any]) -> None:
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(model, state)


def norm_from_torch(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"scale": state["weight"], "bias": state["bias"]}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    torch_module: Callable[[], Any]  # seeded inside
    linen_module: Callable[[bool], Any]  # defaults -> module
    nnx_module: Callable[[bool, int], Any]  # defaults, seed -> module
    torch_input: Callable[[], np.ndarray]
    to_flax_input: Callable[[np.ndarray], np.ndarray]
    from_torch: Callable[[dict[str, np.ndarray], str], dict[str, Any]]  # state, flavour
    laws: Callable[[str], dict[Path, Law]]  # flavour -> law per Flax path
    to_torch_output: Callable[[Any], np.ndarray] = lambda y: np.asarray(y)
    torch_call: Callable[[Any, Any], Any] = lambda m, x: m(x)
    extra_rules: Callable[[], dict[Any, Any]] = dict  # extra torch_init rules
    inexact_defaults: frozenset[Path] = frozenset()  # kwargs cannot be exact here

    def torch(self, seed: int = 0) -> Any:
        torch.manual_seed(seed)
        return self.torch_module().eval()

    def linen_variables(self, module: Any, key: jax.Array) -> Any:
        return module.init(key, jnp.asarray(self.flax_input()))

    def flax_input(self) -> np.ndarray:
        return self.to_flax_input(self.torch_input())

    def torch_output(self, module: Any) -> np.ndarray:
        with torch.no_grad():
            out = self.torch_call(module, torch.from_numpy(self.torch_input()))
        return self.to_torch_output(out.numpy())


def _rng_input(*shape: int) -> Callable[[], np.ndarray]:
    return lambda: np.random.default_rng(0).normal(size=shape).astype(np.float32)


# --- MLP -----------------------------------------------------------------------


class LinenMLP(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        kw1 = td.linear(64) if self.defaults else {}
        kw2 = td.linear(128) if self.defaults else {}
        x = nn.relu(nn.Dense(128, name="fc1", **kw1)(x))
        return nn.Dense(32, name="fc2", **kw2)(x)


class NnxMLP(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        kw1 = td.linear(64) if defaults else {}
        kw2 = td.linear(128) if defaults else {}
        self.fc1 = nnx.Linear(64, 128, rngs=rngs, **kw1)
        self.fc2 = nnx.Linear(128, 32, rngs=rngs, **kw2)

    def __call__(self, x: Any) -> Any:
        return self.fc2(nnx.relu(self.fc1(x)))


def _mlp_torch() -> Any:
    return torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32)
    )


MLP = Case(
    name="mlp",
    torch_module=_mlp_torch,
    linen_module=lambda d: LinenMLP(d),
    nnx_module=lambda d, s: NnxMLP(d, nnx.Rngs(s)),
    torch_input=_rng_input(4, 64),
    to_flax_input=lambda x: x,
    from_torch=lambda s, f: {
        "fc1": jflax.linear_from_torch(sub(s, "0")),
        "fc2": jflax.linear_from_torch(sub(s, "2")),
    },
    laws=lambda f: {
        ("fc1", "kernel"): fan_in_law(64),
        ("fc1", "bias"): fan_in_law(64),
        ("fc2", "kernel"): fan_in_law(128),
        ("fc2", "bias"): fan_in_law(128),
    },
)


# --- CNN with grouped and depthwise convolutions ---------------------------------

_PAD1 = ((1, 1), (1, 1))
# (name, in, out, groups): plain, grouped, depthwise. conv1 and conv2 share a kernel
# shape (3, 3, 4, 32), which halves the XLA compiles of the CNN tests.
_CONVS = (("conv1", 4, 32, 1), ("conv2", 32, 32, 8), ("conv3", 32, 32, 32))


class LinenCNN(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        for name, ins, outs, groups in _CONVS:
            kw = td.conv(ins, (3, 3), groups=groups) if self.defaults else {}
            conv = nn.Conv(
                outs, (3, 3), padding=_PAD1, feature_group_count=groups, name=name, **kw
            )
            x = nn.relu(conv(x))
        return x


class NnxCNN(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        for name, ins, outs, groups in _CONVS:
            kw = td.conv(ins, (3, 3), groups=groups) if defaults else {}
            layer = nnx.Conv(
                ins,
                outs,
                (3, 3),
                padding=_PAD1,
                feature_group_count=groups,
                rngs=rngs,
                **kw,
            )
            setattr(self, name, layer)

    def __call__(self, x: Any) -> Any:
        for name, *_ in _CONVS:
            x = nnx.relu(getattr(self, name)(x))
        return x


def _cnn_torch() -> Any:
    layers = []
    for _, ins, outs, groups in _CONVS:
        layers += [
            torch.nn.Conv2d(ins, outs, 3, padding=1, groups=groups),
            torch.nn.ReLU(),
        ]
    return torch.nn.Sequential(*layers)


def _cnn_laws(flavour: str) -> dict[Path, Law]:
    laws = {}
    for name, ins, _, groups in _CONVS:
        law = fan_in_law(ins // groups * 9)
        laws[(name, "kernel")] = law
        laws[(name, "bias")] = law
    return laws


CNN = Case(
    name="cnn",
    torch_module=_cnn_torch,
    linen_module=lambda d: LinenCNN(d),
    nnx_module=lambda d, s: NnxCNN(d, nnx.Rngs(s)),
    torch_input=_rng_input(2, 4, 8, 8),
    to_flax_input=lambda x: x.transpose(0, 2, 3, 1),
    to_torch_output=lambda y: np.asarray(y).transpose(0, 2, 3, 1),
    from_torch=lambda s, f: {
        name: jflax.conv_from_torch(sub(s, str(2 * i)))
        for i, (name, *_) in enumerate(_CONVS)
    },
    laws=_cnn_laws,
)


# --- ConvTranspose decoder: both Flax kernel settings ----------------------------

# (name, in, out, kernel, stride, torch padding, Flax transpose_kernel)
_UPS = (("up1", 16, 8, 4, 2, 1, False), ("up2", 8, 4, 3, 1, 1, True))


def _flax_padding(kernel: int, padding: int) -> tuple[tuple[int, int], ...]:
    edge = kernel - 1 - padding
    return ((edge, edge), (edge, edge))


class LinenDecoder(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        for name, ins, outs, k, stride, pad, flipped in _UPS:
            kw = (
                td.conv_transpose(ins, outs, (k, k), transpose_kernel=flipped)
                if self.defaults
                else {}
            )
            x = nn.ConvTranspose(
                outs,
                (k, k),
                strides=(stride, stride),
                padding=_flax_padding(k, pad),
                transpose_kernel=flipped,
                name=name,
                **kw,
            )(x)
            x = nn.relu(x)
        return x


class NnxDecoder(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        for name, ins, outs, k, stride, pad, flipped in _UPS:
            kw = (
                td.conv_transpose(ins, outs, (k, k), transpose_kernel=flipped)
                if defaults
                else {}
            )
            layer = nnx.ConvTranspose(
                ins,
                outs,
                (k, k),
                strides=(stride, stride),
                padding=_flax_padding(k, pad),
                transpose_kernel=flipped,
                rngs=rngs,
                **kw,
            )
            setattr(self, name, layer)

    def __call__(self, x: Any) -> Any:
        for name, *_ in _UPS:
            x = nnx.relu(getattr(self, name)(x))
        return x


def _decoder_torch() -> Any:
    layers = []
    for _, ins, outs, k, stride, pad, _ in _UPS:
        layers += [
            torch.nn.ConvTranspose2d(ins, outs, k, stride=stride, padding=pad),
            torch.nn.ReLU(),
        ]
    return torch.nn.Sequential(*layers)


def _decoder_laws(flavour: str) -> dict[Path, Law]:
    laws = {}
    for name, _, outs, k, *_ in _UPS:
        law = fan_in_law(outs * k * k)  # torch's fan-in of (in, out, k, k) is out*k*k
        laws[(name, "kernel")] = law
        laws[(name, "bias")] = law
    return laws


DECODER = Case(
    name="conv_transpose",
    torch_module=_decoder_torch,
    linen_module=lambda d: LinenDecoder(d),
    nnx_module=lambda d, s: NnxDecoder(d, nnx.Rngs(s)),
    torch_input=_rng_input(2, 16, 5, 5),
    to_flax_input=lambda x: x.transpose(0, 2, 3, 1),
    to_torch_output=lambda y: np.asarray(y).transpose(0, 2, 3, 1),
    from_torch=lambda s, f: {
        name: jflax.conv_transpose_from_torch(
            sub(s, str(2 * i)), transpose_kernel=flipped
        )
        for i, (name, *_, flipped) in enumerate(_UPS)
    },
    laws=_decoder_laws,
)


# --- Transformer encoder block ----------------------------------------------------

E, HEADS, FF = 32, 4, 64


def _attention_kwargs(defaults: bool) -> dict[str, Any]:
    return dict(td.multihead_attention(E)) if defaults else {}


class LinenEncoderBlock(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        attention = nn.MultiHeadDotProductAttention(
            HEADS, name="self_attn", **_attention_kwargs(self.defaults)
        )
        norm = td.layer_norm() if self.defaults else {}
        x = nn.LayerNorm(epsilon=1e-5, name="norm1", **norm)(x + attention(x))
        kw1 = td.linear(E) if self.defaults else {}
        kw2 = td.linear(FF) if self.defaults else {}
        hidden = nn.relu(nn.Dense(FF, name="linear1", **kw1)(x))
        y = nn.Dense(E, name="linear2", **kw2)(hidden)
        return nn.LayerNorm(epsilon=1e-5, name="norm2", **norm)(x + y)


class NnxEncoderBlock(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        self.self_attn = nnx.MultiHeadAttention(
            HEADS, E, decode=False, rngs=rngs, **_attention_kwargs(defaults)
        )
        norm = td.layer_norm() if defaults else {}
        self.norm1 = nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs, **norm)
        self.linear1 = nnx.Linear(
            E, FF, rngs=rngs, **(td.linear(E) if defaults else {})
        )
        self.linear2 = nnx.Linear(
            FF, E, rngs=rngs, **(td.linear(FF) if defaults else {})
        )
        self.norm2 = nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs, **norm)

    def __call__(self, x: Any) -> Any:
        x = self.norm1(x + self.self_attn(x))
        return self.norm2(x + self.linear2(nnx.relu(self.linear1(x))))


def _encoder_torch() -> Any:
    return torch.nn.TransformerEncoderLayer(
        E, HEADS, dim_feedforward=FF, dropout=0.0, batch_first=True
    )


def _encoder_from_torch(state: dict[str, np.ndarray], flavour: str) -> dict[str, Any]:
    return {
        "self_attn": jflax.multihead_attention_from_torch(
            sub(state, "self_attn"), HEADS
        ),
        "linear1": jflax.linear_from_torch(sub(state, "linear1")),
        "linear2": jflax.linear_from_torch(sub(state, "linear2")),
        "norm1": norm_from_torch(sub(state, "norm1")),
        "norm2": norm_from_torch(sub(state, "norm2")),
    }


def _encoder_laws(flavour: str) -> dict[Path, Law]:
    packed = uniform(math.sqrt(3.0) * math.sqrt(2.0 / (4 * E)))
    laws: dict[Path, Law] = {}
    for name in ("query", "key", "value"):
        laws[("self_attn", name, "kernel")] = packed
        laws[("self_attn", name, "bias")] = constant(0.0)
    laws[("self_attn", "out", "kernel")] = fan_in_law(E)
    laws[("self_attn", "out", "bias")] = constant(0.0)
    laws[("linear1", "kernel")] = laws[("linear1", "bias")] = fan_in_law(E)
    laws[("linear2", "kernel")] = laws[("linear2", "bias")] = fan_in_law(FF)
    for norm in ("norm1", "norm2"):
        laws[(norm, "scale")] = constant(1.0)
        laws[(norm, "bias")] = constant(0.0)
    return laws


ENCODER = Case(
    name="transformer",
    torch_module=_encoder_torch,
    linen_module=lambda d: LinenEncoderBlock(d),
    nnx_module=lambda d, s: NnxEncoderBlock(d, nnx.Rngs(s)),
    torch_input=_rng_input(2, 6, E),
    to_flax_input=lambda x: x,
    from_torch=_encoder_from_torch,
    laws=_encoder_laws,
)


# --- Embedding with padding_idx ---------------------------------------------------

VOCAB, DIM, PAD = 200, 16, 3


def _embed_kwargs(defaults: bool) -> dict[str, Any]:
    return dict(td.embedding(VOCAB, padding_idx=PAD)) if defaults else {}


class LinenEmbed(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, ids: Any) -> Any:
        return nn.Embed(VOCAB, DIM, name="embed", **_embed_kwargs(self.defaults))(ids)


class NnxEmbed(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(VOCAB, DIM, rngs=rngs, **_embed_kwargs(defaults))

    def __call__(self, ids: Any) -> Any:
        return self.embed(ids)


EMBEDDING = Case(
    name="embedding",
    torch_module=lambda: torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD),
    linen_module=lambda d: LinenEmbed(d),
    nnx_module=lambda d, s: NnxEmbed(d, nnx.Rngs(s)),
    torch_input=lambda: np.random.default_rng(0).integers(0, VOCAB, size=(3, 7)),
    to_flax_input=lambda x: x,
    from_torch=lambda s, f: {"embed": jflax.embedding_from_torch(s)},
    laws=lambda f: {("embed", "embedding"): Law("padded_normal", 1.0, PAD)},
    extra_rules=lambda: {
        r"(.*/)?embedding": td.embedding(VOCAB, padding_idx=PAD)["embedding_init"]
    },
)


# --- LSTM and GRU -------------------------------------------------------------------

IN, HIDDEN = 8, 32


def _cell_kwargs(defaults: bool, factory: Callable[[int], Any]) -> dict[str, Any]:
    return dict(factory(HIDDEN)) if defaults else {}


class LinenLSTM(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        cell = nn.LSTMCell(
            HIDDEN, name="lstm", **_cell_kwargs(self.defaults, td.lstm_cell)
        )
        return nn.RNN(cell)(x)


class NnxLSTM(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        kw = _cell_kwargs(defaults, td.lstm_cell)
        self.lstm = nnx.RNN(nnx.LSTMCell(IN, HIDDEN, rngs=rngs, **kw))

    def __call__(self, x: Any) -> Any:
        return self.lstm(x)


def _lstm_from_torch(state: dict[str, np.ndarray], flavour: str) -> dict[str, Any]:
    if flavour == "linen":
        return {"lstm": jflax.lstm_from_torch(state, layout="linen", suffix="_l0")}
    return {"lstm": {"cell": jflax.lstm_from_torch(state, layout="nnx", suffix="_l0")}}


def _lstm_laws(flavour: str) -> dict[Path, Law]:
    bound = 1.0 / math.sqrt(HIDDEN)
    prefix: Path = ("lstm",) if flavour == "linen" else ("lstm", "cell")
    forget = "if" if flavour == "linen" else "if_"
    laws: dict[Path, Law] = {}
    for gate in ("i", "f", "g", "o"):
        laws[(*prefix, forget if gate == "f" else f"i{gate}", "kernel")] = uniform(
            bound
        )
        laws[(*prefix, f"h{gate}", "kernel")] = uniform(bound)
        laws[(*prefix, f"h{gate}", "bias")] = triangular(bound)
    return laws


LSTM = Case(
    name="lstm",
    torch_module=lambda: torch.nn.LSTM(IN, HIDDEN, batch_first=True),
    linen_module=lambda d: LinenLSTM(d),
    nnx_module=lambda d, s: NnxLSTM(d, nnx.Rngs(s)),
    torch_input=_rng_input(2, 5, IN),
    to_flax_input=lambda x: x,
    torch_call=lambda m, x: m(x)[0],
    from_torch=_lstm_from_torch,
    laws=_lstm_laws,
)


class LinenGRU(nn.Module):
    defaults: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        cell = nn.GRUCell(
            HIDDEN, name="gru", **_cell_kwargs(self.defaults, td.gru_cell)
        )
        return nn.RNN(cell)(x)


class NnxGRU(nnx.Module):
    def __init__(self, defaults: bool, rngs: nnx.Rngs) -> None:
        kw = _cell_kwargs(defaults, td.gru_cell)
        self.gru = nnx.RNN(nnx.GRUCell(IN, HIDDEN, rngs=rngs, **kw))

    def __call__(self, x: Any) -> Any:
        return self.gru(x)


def _gru_torch() -> Any:
    module = torch.nn.GRU(IN, HIDDEN, batch_first=True)
    return module


def _gru_from_torch(state: dict[str, np.ndarray], flavour: str) -> dict[str, Any]:
    if flavour == "linen":
        return {"gru": jflax.gru_from_torch(state, layout="linen", suffix="_l0")}
    state = dict(state)
    state["bias_hh_l0"] = state["bias_hh_l0"].copy()
    state["bias_hh_l0"][2 * HIDDEN :] = 0.0  # nnx GRUCell has no b_hn
    return {"gru": {"cell": jflax.gru_from_torch(state, layout="nnx", suffix="_l0")}}


def _gru_laws(flavour: str) -> dict[Path, Law]:
    bound = 1.0 / math.sqrt(HIDDEN)
    if flavour == "nnx":
        # dense_i's fused bias is checked per gate chunk by the tests.
        return {
            ("gru", "cell", "dense_i", "kernel"): uniform(bound),
            ("gru", "cell", "dense_h", "kernel"): uniform(bound),
        }
    laws: dict[Path, Law] = {}
    for name in ("ir", "iz", "in", "hr", "hz", "hn"):
        laws[("gru", name, "kernel")] = uniform(bound)
    laws[("gru", "ir", "bias")] = triangular(bound)
    laws[("gru", "iz", "bias")] = triangular(bound)
    laws[("gru", "in", "bias")] = uniform(bound)
    laws[("gru", "hn", "bias")] = uniform(bound)
    return laws


GRU = Case(
    name="gru",
    torch_module=_gru_torch,
    linen_module=lambda d: LinenGRU(d),
    nnx_module=lambda d, s: NnxGRU(d, nnx.Rngs(s)),
    torch_input=_rng_input(2, 5, IN),
    to_flax_input=lambda x: x,
    torch_call=lambda m, x: m(x)[0],
    from_torch=_gru_from_torch,
    laws=_gru_laws,
    inexact_defaults=frozenset({("gru", "in", "bias"), ("gru", "hn", "bias")}),
)

CASES = (MLP, CNN, DECODER, ENCODER, EMBEDDING, LSTM, GRU)


def assert_law(values: np.ndarray, law: Law, where: str) -> None:
    """The exact law: constants equal, supports hold, one-sample KS passes."""
    values = np.asarray(values, np.float64)
    if law.kind == "constant":
        np.testing.assert_array_equal(values, law.scale, err_msg=where)
        return
    if law.kind == "padded_normal":
        np.testing.assert_array_equal(values[law.row], 0.0, err_msg=where)
        values = np.delete(values, law.row, axis=0)
    assert np.abs(values).max() <= law.support(), where
    assert_ks(values, law.dist())


def check_fused_gru_bias(values: np.ndarray, reference: np.ndarray) -> None:
    """nnx GRUCell's dense_i bias is [b_ir + b_hr, b_iz + b_hz, b_in].

    Both arrays are (..., 3H): one draw, or independent draws stacked.
    """
    bound = 1 / math.sqrt(HIDDEN)
    summed, single = values[..., : 2 * HIDDEN], values[..., 2 * HIDDEN :]
    assert_law(summed, triangular(bound), "dense_i/bias[:2H]")
    assert_law(single, uniform(bound), "dense_i/bias[2H:]")
    assert_same_law(summed, reference[..., : 2 * HIDDEN])
    assert_same_law(single, reference[..., 2 * HIDDEN :])


# A parameter with fewer values than this is tested on independent draws pooled
# to at least this many. At ALPHA, KS on 16 values rejects only a sup-CDF
# distance above 0.63 (an all-zero uniform parameter, distance 0.5, gives
# p = 3e-4 and passes), on 32 above 0.46; on 256 above 0.17 (a bound off by
# sqrt(2) is at 0.15-0.29, a zero parameter at 0.5).
POOLED_VALUES = 256


def pooled(
    draws: list[dict[Any, np.ndarray]], path: Path, size: int | None = None
) -> np.ndarray:
    """The parameter's values, stacked over more draws if POOLED_VALUES needs them
    (``size``: the values per draw of the smallest part tested on its own)."""
    size = draws[0][path].size if size is None else size
    count = max(1, math.ceil(POOLED_VALUES / max(size, 1)))
    if count == 1:
        return draws[0][path]
    return np.stack([draw[path] for draw in draws[:count]])


def check_against_torch(
    case: Case,
    flavour: str,
    draw: Callable[[int], dict[Any, np.ndarray]],
    *,
    exact: bool = True,
) -> list[dict[Any, np.ndarray]]:
    """Every parameter: torch's formula law, and the same law as torch's own draw.

    ``draw(i)`` returns the Flax parameters of the i-th independent draw; torch's
    reference for draw ``i`` is the torch module built under seed ``i``. Small
    parameters are pooled over draws (POOLED_VALUES). Returns the draws made.
    """
    params = draw(0)
    reference = flat(case.from_torch(torch_state(case.torch()), flavour))
    assert params.keys() == reference.keys()
    for path, values in params.items():
        assert values.shape == reference[path].shape, "/".join(path)
    fused_gru = case is GRU and flavour == "nnx"  # its bias is tested per gate
    smallest = min(max(values.size, 1) for values in params.values())
    smallest = min(smallest, HIDDEN) if fused_gru else smallest
    count = max(1, math.ceil(POOLED_VALUES / smallest))
    draws = [params] + [draw(index) for index in range(1, count)]
    references = [reference] + [
        flat(case.from_torch(torch_state(case.torch(index)), flavour))
        for index in range(1, count)
    ]
    laws = case.laws(flavour)
    for path in params:
        where = "/".join(path)
        if fused_gru and path[-2:] == ("dense_i", "bias"):
            check_fused_gru_bias(
                pooled(draws, path, HIDDEN), pooled(references, path, HIDDEN)
            )
            continue
        values, theirs = pooled(draws, path), pooled(references, path)
        if not exact and path in case.inexact_defaults:
            continue
        law = laws[path]
        assert_law(theirs, law, f"torch {where}")  # the formula is torch's
        assert_law(values, law, where)
        assert_same_law(values, theirs)
    return draws
