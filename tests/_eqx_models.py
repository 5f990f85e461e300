"""An Equinox model holding every layer jaxinit.equinox knows, and its torch twin.

The twin has the same attribute names (an ``eqx.nn.Sequential`` is a torch
``Sequential``; a list is a ``ModuleList``), so torch's state-dict names are the
Equinox paths joined by ``.``. ``LAWS`` gives the exact law torch draws every
parameter from, in Equinox's parametrization (formulas of
torch-init-semantics.md section 4).
"""

import math
from typing import Any

import equinox as eqx
import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from _porting_models import Law, constant, uniform  # noqa: E402

E, HEADS, HIDDEN = 64, 4, 64


class Model(eqx.Module):
    """Every Equinox layer with parameters, in containers of each kind."""

    lin: eqx.nn.Linear
    conv1: eqx.nn.Conv1d
    conv2: eqx.nn.Conv2d
    conv3: eqx.nn.Conv3d
    convt: eqx.nn.ConvTranspose2d
    attn: eqx.nn.MultiheadAttention
    attn_kv: eqx.nn.MultiheadAttention
    emb: eqx.nn.Embedding
    gru: eqx.nn.GRUCell
    lstm: eqx.nn.LSTMCell
    ln: eqx.nn.LayerNorm
    gn: eqx.nn.GroupNorm
    rms: eqx.nn.RMSNorm
    bn: eqx.nn.BatchNorm
    prelu: eqx.nn.PReLU
    body: eqx.nn.Sequential
    mlp: eqx.nn.MLP
    blocks: list[eqx.nn.Linear]

    def __init__(self, key: jax.Array) -> None:
        k = iter(jax.random.split(key, 16))
        nn = eqx.nn
        biases = dict.fromkeys(
            ("use_query_bias", "use_key_bias", "use_value_bias", "use_output_bias"),
            True,
        )
        self.lin = nn.Linear(64, 128, key=next(k))
        self.conv1 = nn.Conv1d(32, 64, 5, key=next(k))
        self.conv2 = nn.Conv2d(32, 64, 3, groups=4, key=next(k))
        self.conv3 = nn.Conv3d(4, 8, 3, key=next(k))
        self.convt = nn.ConvTranspose2d(
            16,
            32,
            3,
            stride=2,
            padding=1,
            output_padding=1,
            dilation=2,
            groups=2,
            key=next(k),
        )
        self.attn = nn.MultiheadAttention(HEADS, E, **biases, key=next(k))
        self.attn_kv = nn.MultiheadAttention(
            HEADS, E, key_size=32, value_size=48, **biases, key=next(k)
        )
        self.emb = nn.Embedding(256, 32, key=next(k))
        self.gru = nn.GRUCell(32, HIDDEN, key=next(k))
        self.lstm = nn.LSTMCell(32, HIDDEN, key=next(k))
        self.ln = nn.LayerNorm(32)
        self.gn = nn.GroupNorm(4, 16)
        self.rms = nn.RMSNorm(32, use_bias=False)
        self.bn = nn.BatchNorm(16, axis_name="batch", mode="batch")
        self.prelu = nn.PReLU()
        self.body = nn.Sequential(
            [
                nn.Linear(32, 32, key=next(k)),
                nn.Lambda(jax.nn.relu),
                nn.Linear(32, 16, key=next(k)),
            ]
        )
        self.mlp = nn.MLP(16, 8, 32, 2, key=next(k))
        self.blocks = [nn.Linear(16, 16, key=next(k)) for _ in range(2)]


def torch_twin() -> Any:
    """The torch model of the same layers and names (torch's own init)."""
    tnn = torch.nn
    model = tnn.Module()
    model.lin = tnn.Linear(64, 128)
    model.conv1 = tnn.Conv1d(32, 64, 5)
    model.conv2 = tnn.Conv2d(32, 64, 3, groups=4)
    model.conv3 = tnn.Conv3d(4, 8, 3)
    model.convt = tnn.ConvTranspose2d(
        16, 32, 3, stride=2, padding=1, output_padding=1, dilation=2, groups=2
    )
    model.attn = tnn.MultiheadAttention(E, HEADS, batch_first=True)
    model.attn_kv = tnn.MultiheadAttention(E, HEADS, kdim=32, vdim=48, batch_first=True)
    model.emb = tnn.Embedding(256, 32)
    model.gru = tnn.GRUCell(32, HIDDEN)
    model.lstm = tnn.LSTMCell(32, HIDDEN)
    model.ln = tnn.LayerNorm(32)
    model.gn = tnn.GroupNorm(4, 16)
    model.rms = tnn.RMSNorm(32, eps=1e-5)
    model.bn = tnn.BatchNorm1d(16)
    model.prelu = tnn.PReLU()
    model.body = tnn.Sequential(tnn.Linear(32, 32), tnn.ReLU(), tnn.Linear(32, 16))
    model.mlp = tnn.Module()
    model.mlp.layers = tnn.ModuleList(
        [tnn.Linear(16, 32), tnn.Linear(32, 32), tnn.Linear(32, 8)]
    )
    model.blocks = tnn.ModuleList([tnn.Linear(16, 16) for _ in range(2)])
    return model


def torch_state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _fan(fan_in: int) -> Law:
    return uniform(1 / math.sqrt(fan_in))


def _laws() -> dict[str, Law | tuple[Law, Law]]:
    """Equinox path -> torch's law; a pair splits a GRU bias at 2H."""
    laws: dict[str, Law | tuple[Law, Law]] = {}
    for name, fan in (
        ("lin", 64),
        ("conv1", 32 * 5),
        ("conv2", 8 * 9),
        ("conv3", 4 * 27),
        ("convt", 16 * 9),  # torch's fan: out_channels / groups * kernel
        ("body/layers/0", 32),
        ("body/layers/2", 32),
        ("mlp/layers/0", 16),
        ("mlp/layers/1", 32),
        ("mlp/layers/2", 32),
        ("blocks/0", 16),
        ("blocks/1", 16),
    ):
        laws[f"{name}/weight"] = laws[f"{name}/bias"] = _fan(fan)
    packed = uniform(math.sqrt(6 / (4 * E)))
    separate = {"query_proj": E, "key_proj": 32, "value_proj": 48}
    for attn in ("attn", "attn_kv"):
        for proj, width in separate.items():
            bound = math.sqrt(6 / (E + width))
            laws[f"{attn}/{proj}/weight"] = packed if attn == "attn" else uniform(bound)
            laws[f"{attn}/{proj}/bias"] = constant(0.0)
        laws[f"{attn}/output_proj/weight"] = _fan(E)
        laws[f"{attn}/output_proj/bias"] = constant(0.0)
    laws["emb/weight"] = Law("normal", 1.0)
    cell = _fan(HIDDEN)
    triangle = Law("triangular", 1 / math.sqrt(HIDDEN))
    for name in ("gru", "lstm"):
        laws[f"{name}/weight_ih"] = laws[f"{name}/weight_hh"] = cell
    laws["gru/bias"] = (triangle, cell)  # [b_ir + b_hr, b_iz + b_hz | b_in]
    laws["gru/bias_n"] = cell  # b_hn
    laws["lstm/bias"] = triangle  # b_ih + b_hh
    for name in ("ln", "gn", "rms", "bn"):
        laws[f"{name}/weight"] = constant(1.0)
    for name in ("ln", "gn", "bn"):
        laws[f"{name}/bias"] = constant(0.0)
    laws["prelu/negative_slope"] = constant(0.25)
    return laws


LAWS = _laws()
