"""Re-initialization of Equinox models by rules, and torch's defaults as rules.

The rule planning, path keys and drawing are ``_flax_reinit``'s framework-neutral
pieces; this module only walks an Equinox model and writes the new leaves back.
Equinox is imported inside the functions, so importing this module never needs it.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from . import _basic, _optional, _scaled, torch_defaults
from ._base import LayoutInitializer
from ._reinit import ParamShapes, Path, Rules, check_rules, draw, placement, plan
from ._typing import Initializer


def require_equinox(owner: str) -> Any:
    """Imports equinox, or raises an ImportError that says how to install it."""
    return _optional.require("equinox", "equinox", f"jaxinit.equinox.{owner}")


def _part(entry: Any) -> Any:
    """One step of a jax key path as a path part: attribute name or index."""
    for field in ("name", "idx", "key"):
        if hasattr(entry, field):
            return getattr(entry, field)
    return str(entry)  # pragma: no cover - other key kinds


def is_param(value: Any) -> bool:
    """Whether a leaf is a parameter: a floating array, concrete or abstract."""
    if not isinstance(value, jax.Array | jax.ShapeDtypeStruct | np.ndarray):
        return False
    return bool(np.issubdtype(np.dtype(value.dtype), np.inexact))


def walk(model: Any) -> tuple[list[tuple[Path, Any]], dict[Path, Any]]:
    """The model's modules and parameters, each with its path.

    Modules are listed outer first. Parameters are the floating array leaves
    (``jax.ShapeDtypeStruct`` for abstract models); the initial values held by
    ``eqx.nn.StateIndex`` (running statistics) are state, not parameters.
    """
    eqx = require_equinox("walk")
    modules: list[tuple[Path, Any]] = []
    params: dict[Path, Any] = {}

    def visit(node: Any, path: Path) -> None:
        if isinstance(node, eqx.nn.StateIndex):
            return
        if isinstance(node, eqx.Module):
            modules.append((path, node))

        def stop(child: Any) -> bool:
            return child is not node and (
                isinstance(child, eqx.Module) or is_param(child)
            )

        leaves = jax.tree_util.tree_flatten_with_path(node, is_leaf=stop)[0]
        for key_path, leaf in leaves:
            child_path = path + tuple(_part(entry) for entry in key_path)
            if isinstance(leaf, eqx.Module) and leaf is not node:
                visit(leaf, child_path)
            elif is_param(leaf):
                params[child_path] = leaf

    visit(model, ())
    return modules, params


def own_ranks(module: Any) -> dict[str, int]:
    """The rank of each parameter of one copy of an Equinox layer, by name.

    Empty for modules whose parameters this does not know (their own parameters
    are then taken as unstacked). Axes beyond these ranks were stacked by
    ``eqx.filter_vmap``.
    """
    import equinox as eqx

    nn = eqx.nn
    if isinstance(module, nn.Conv | nn.ConvTranspose):
        spatial = module.num_spatial_dims
        return {"weight": 2 + spatial, "bias": 1 + spatial}  # bias (out, 1, ...)
    if isinstance(module, nn.Linear):
        return {"weight": 2, "bias": 1}
    if isinstance(module, nn.Embedding):
        return {"weight": 2}
    if isinstance(module, nn.GRUCell | nn.LSTMCell):
        return {"weight_ih": 2, "weight_hh": 2, "bias": 1, "bias_n": 1}
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        rank = len(module.shape)
        return {"weight": rank, "bias": rank}
    if isinstance(module, nn.GroupNorm | nn.BatchNorm):
        return {"weight": 1, "bias": 1}
    return {}


def in_torch_layout(init: Initializer) -> Initializer:
    """``init`` read in Equinox's torch layout.

    Initializers that name their own axes are returned unchanged (a copy is made
    otherwise: the user's initializer is a frozen value and stays as given).
    """
    if not isinstance(init, LayoutInitializer):
        return init
    if init.in_axis is not None or init.out_axis is not None or init.batch_axis:
        return init
    return dataclasses.replace(init, layout="torch")


def run(owner: str, model: Any, key: jax.Array, tiers: Sequence[Rules]) -> Any:
    """Re-draws the parameters the rules name; returns the new model."""
    require_equinox(owner)
    for rules in tiers:
        check_rules(owner, rules)
    modules, params = walk(model)
    shapes = {path: tuple(value.shape) for path, value in params.items()}
    chosen = plan(modules, shapes, tiers, own_ranks=own_ranks, adapt=in_torch_layout)
    if not chosen:
        return model
    shardings = {
        path: where
        for path in chosen
        if (where := placement(owner, path, params[path])) is not None
    }
    return replace_leaves(model, draw(key, chosen, params, shardings))


def get_leaf(model: Any, path: Path) -> Any:
    """The value at ``path``: attribute names and container indices."""
    node = model
    for part in path:
        node = (
            node[part]
            if isinstance(part, int) or isinstance(node, dict)
            else (getattr(node, part))
        )
    return node


def replace_leaves(model: Any, new: Mapping[Path, Any]) -> Any:
    """A copy of ``model`` with the leaves at ``new``'s paths replaced."""
    eqx = require_equinox("replace_leaves")
    paths = list(new)

    def where(tree: Any) -> list[Any]:
        return [get_leaf(tree, path) for path in paths]

    return eqx.tree_at(where, model, [new[path] for path in paths])


# Torch's defaults, as rules on Equinox module types.

_SQRT5 = math.sqrt(5.0)


def _linear(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    fan_in = 1 if module.in_features == "scalar" else module.in_features
    inits = torch_defaults.linear(fan_in)
    return {"weight": inits["kernel_init"], "bias": inits["bias_init"]}


def _conv(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    inits = torch_defaults.conv(
        module.in_channels, module.kernel_size, groups=module.groups
    )
    return {"weight": inits["kernel_init"], "bias": inits["bias_init"]}


def _conv_transpose(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    # torch's weight is (in, out/g, *k) and its fan-in the output side, out/g * k;
    # kaiming_uniform(a=sqrt(5)) there is U(+-1/sqrt(fan)), the bias's law.
    inits = torch_defaults.conv_transpose(
        module.in_channels,
        module.out_channels,
        module.kernel_size,
        groups=module.groups,
    )
    return {"weight": inits["bias_init"], "bias": inits["bias_init"]}


def _embedding(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    return {"weight": torch_defaults.embedding(module.num_embeddings)["embedding_init"]}


def _attention(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    embed = module.query_size
    like_torch = module.num_heads * module.qk_size == embed and (
        module.num_heads * module.vo_size == embed
    )
    projection: Initializer
    if like_torch:
        # Packed (3E, E) xavier when kdim == vdim == E: its elements are iid
        # U(+-sqrt(6 / 4E)), so each of q, k, v is drawn from that law.
        projection = torch_defaults.multihead_attention(
            embed, kdim=module.key_size, vdim=module.value_size
        )["kernel_init"]
    else:
        projection = _scaled.xavier_uniform()
    rules: dict[str, Initializer] = {}
    for name in ("query_proj", "key_proj", "value_proj"):
        rules[f"{name}/weight"] = projection
        rules[f"{name}/bias"] = _basic.zeros()
    out = torch_defaults.multihead_attention(embed)
    rules["output_proj/weight"] = out["out_kernel_init"]
    rules["output_proj/bias"] = out["out_bias_init"]
    return rules


def _cell(
    defaults: Callable[[int], torch_defaults.RecurrentInits],
) -> Callable[[Any, ParamShapes], Mapping[str, Initializer]]:
    def rule(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
        inits = defaults(module.hidden_size)
        return {
            "weight_ih": inits["kernel_init"],
            "weight_hh": inits["recurrent_kernel_init"],
            # LSTM: b_ih + b_hh per gate; GRU: [b_ir + b_hr, b_iz + b_hz, b_in].
            "bias": inits["bias_init"],
            # GRU's b_hn stays apart, inside the reset gate: one uniform.
            "bias_n": inits["kernel_init"],
        }

    return rule


def _norm(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    inits = torch_defaults.layer_norm()
    return {"weight": inits["scale_init"], "bias": inits["bias_init"]}


def _prelu(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    slope = torch_defaults.prelu()["negative_slope_init"]
    return {"negative_slope": _basic.constant(slope)}


def torch_rules() -> dict[Any, Any]:
    """Torch's ``reset_parameters`` defaults as rules on Equinox layer types."""
    eqx = require_equinox("torch_rules")
    nn = eqx.nn
    return {
        nn.Linear: _linear,
        nn.Conv: _conv,
        nn.ConvTranspose: _conv_transpose,
        nn.Embedding: _embedding,
        nn.MultiheadAttention: _attention,
        nn.GRUCell: _cell(torch_defaults.gru_cell),
        nn.LSTMCell: _cell(torch_defaults.lstm_cell),
        (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.BatchNorm): _norm,
        nn.PReLU: _prelu,
    }
