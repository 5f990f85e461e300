"""Re-initialization of Equinox models by rules, and torch's defaults as rules.

Rule planning, path keys, drawing and the whole-model contract are ``_reinit``'s;
this module walks an Equinox model into its leaves (parameters, the initial
state ``eqx.nn.StateIndex`` holds, parameters tied by ``eqx.nn.Shared`` under
every path that reaches them) and writes the new leaves back. Equinox is
imported inside the functions, so importing this module never needs it.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _basic, _optional, _scaled, torch_defaults
from ._base import InitializerBase, LayoutInitializer, place
from ._reinit import (
    Derived,
    Leaf,
    ParamShapes,
    Path,
    Rules,
    _set_stacked,
    check_rules,
    fill,
    full,
    placement,
    rng_key,
    spectral_start,
)
from ._typing import Initializer, OutSharding


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
    return bool(jnp.issubdtype(value.dtype, jnp.inexact))


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

    A jaxinit layout initializer that names no axes of its own gets
    ``layout="torch"`` (a copy: the user's initializer is a frozen value and
    stays as given); one that names its axes is used as given. Any other
    initializer (``jax.nn.initializers``, a function of your own) is called as
    Flax calls a ``kernel_init``: on the Flax layout of the weight,
    ``(*kernel, in, out)``, and the result is transposed back to Equinox's
    ``(out, in, *kernel)`` (``FlaxLayout``), so that its fans are Flax's and
    hence torch's.
    """
    if not isinstance(init, LayoutInitializer):
        if isinstance(init, InitializerBase):
            return init
        return FlaxLayout(init)
    if init.in_axis is not None or init.out_axis is not None or init.batch_axis:
        return init
    return dataclasses.replace(init, layout="torch")


@dataclasses.dataclass(frozen=True)
class FlaxLayout:
    """An initializer written for Flax's ``(*kernel, in, out)`` layout.

    It draws a torch-layout ``(out, in, *kernel)`` weight on the transposed
    shape and transposes back; arrays of rank < 2 are drawn as they are.
    """

    init: Callable[..., jax.Array]

    def __call__(
        self,
        key: jax.Array,
        shape: Sequence[int],
        dtype: Any = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array:
        if out_sharding is not None:
            return place(lambda key: self(key, shape, dtype), key, out_sharding)
        shape = tuple(shape)
        if len(shape) < 2:
            return self.init(key, shape, dtype)
        flax_shape = (*shape[2:], shape[1], shape[0])
        rank = len(shape)
        drawn = self.init(key, flax_shape, dtype)
        return jnp.transpose(drawn, (rank - 1, rank - 2, *range(rank - 2)))


class _Mark:
    """Stands for a leaf of an ``eqx.nn.Shared`` pytree, to follow where and get."""

    def __init__(self, path: Path) -> None:
        self.path = path


def _shared_aliases(shared: Any, path: Path) -> dict[Path, Path]:
    """``{path of a tied slot: path of the leaf it takes}`` for ``eqx.nn.Shared``.

    ``where`` and ``get`` are run on a copy of the pytree whose leaves are
    markers; a ``get`` that computes (``jnp.transpose``) cannot run on them,
    and its slots are not followed.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shared.pytree)
    marks = [
        _Mark((*path, "pytree", *(_part(entry) for entry in key_path)))
        for key_path, _ in leaves
    ]
    marked = jax.tree_util.tree_unflatten(treedef, marks)
    try:
        slots = jax.tree.leaves(shared.where(marked))
        sources = jax.tree.leaves(shared.get(marked))
    except Exception:  # a get that computes on its values
        return {}
    return {
        slot.path: source.path
        for slot, source in zip(slots, sources, strict=False)
        if isinstance(slot, _Mark) and isinstance(source, _Mark)
    }


def _leaves(model: Any) -> tuple[list[tuple[Path, Any]], list[Leaf]]:
    """Every module (children first) and every array leaf of an Equinox model.

    Floating arrays are parameters, except the initial state an
    ``eqx.nn.StateIndex`` holds (running statistics, spectral norm's vectors);
    other arrays (integer, boolean) are state. ``eqx.nn.State`` objects in the
    tree are left alone. A leaf tied by ``eqx.nn.Shared`` also has the paths
    of the slots that take it.
    """
    eqx = require_equinox("walk")
    modules: list[tuple[Path, Any]] = []
    leaves: dict[Path, Leaf] = {}
    aliases: dict[Path, Path] = {}

    def visit(node: Any, path: Path, state: bool) -> None:
        state = state or isinstance(node, eqx.nn.StateIndex)
        if isinstance(node, eqx.nn.Shared):
            aliases.update(_shared_aliases(node, path))

        def stop(child: Any) -> bool:
            return child is not node and (
                isinstance(child, eqx.Module | eqx.nn.State) or _is_array(child)
            )

        children = jax.tree_util.tree_flatten_with_path(node, is_leaf=stop)[0]
        for key_path, child in children:
            child_path = path + tuple(_part(entry) for entry in key_path)
            if isinstance(child, eqx.nn.State):
                continue
            if isinstance(child, eqx.Module) and child is not node:
                visit(child, child_path, state)
            elif _is_array(child):
                param = not state and is_param(child)
                leaf = Leaf([child_path], child, param=param)
                leaf.start = rng_key if leaf.is_key else None
                leaves[child_path] = leaf
        if isinstance(node, eqx.Module):
            modules.append((path, node))

    visit(model, (), False)
    for slot, source in aliases.items():
        if source in leaves:
            leaves[source].paths.append(slot)
    return modules, list(leaves.values())


def _is_array(value: Any) -> bool:
    return isinstance(value, jax.Array | jax.ShapeDtypeStruct | np.ndarray)


def run(owner: str, model: Any, key: jax.Array, tiers: Sequence[Rules]) -> Any:
    """Re-draws the leaves the rules name and fills abstract ones.

    Returns the new model (see ``_reinit.fill`` for the contract).
    """
    require_equinox(owner)
    for rules in tiers:
        check_rules(owner, rules)
    modules, leaves = _leaves(model)
    _set_stacked(modules, leaves, own_ranks)
    new = fill(
        owner,
        key,
        leaves,
        modules,
        [_wrapper_rules(), *tiers],
        starts=_start_rules(),
        adapt=in_torch_layout,
        place=lambda leaf: placement(owner, leaf.paths[0], leaf.value),
    )
    if not new:
        return model
    return replace_leaves(
        model, {leaves[i].paths[0]: value for i, value in new.items()}
    )


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


# BatchNorm's running statistics (either mode): torch's reset_running_stats.
_RUNNING = {
    "ema_state_index/init/0": _basic.zeros(),
    "ema_state_index/init/1": _basic.ones(),
    "batch_state_index/init/0": _basic.zeros(),
    "batch_state_index/init/1": _basic.ones(),
    "batch_counter/init": _basic.zeros(),
}


def _batch_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    return {**_norm(module, shapes), **_RUNNING}


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
        (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm): _norm,
        nn.BatchNorm: _batch_norm,
        nn.PReLU: _prelu,
    }


def _start_rules() -> Rules:
    """Equinox's start of abstract state that no rule names.

    BatchNorm's: the running statistics torch's, 0 and 1; the counter 0; the
    "first call" flag set.
    """
    eqx = require_equinox("torch_rules")
    return {eqx.nn.BatchNorm: {**_RUNNING, "ema_first_time_index/init": full(True)}}


def _wrapper_rules() -> Rules:
    """Weight and spectral norm derive their leaves from the wrapped weight.

    ``WeightNorm``'s ``g`` is the norm of the weight over every axis but
    ``axis`` (torch's ``weight_norm`` and Equinox's own start): the effective
    weight is the drawn one. ``SpectralNorm``'s ``u`` and ``v`` are torch's
    start (``spectral_start``: normalized ``N(0, 1)`` vectors and 15 power
    iterations), on the weight as an ``(out, -1)`` matrix, as Equinox uses it.
    """
    eqx = require_equinox("torch_rules")
    return {
        eqx.nn.WeightNorm: _weight_norm,
        eqx.nn.SpectralNorm: _spectral_norm,
    }


def _weight_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Any]:
    axis = module.axis

    def make(key: jax.Array, weight: jax.Array) -> jax.Array:
        squares = jnp.square(weight.astype(jnp.float32))
        others = tuple(
            a for a in range(weight.ndim) if axis is None or a != axis % weight.ndim
        )
        return jnp.sqrt(jnp.sum(squares, axis=others, keepdims=True))

    return {"g": Derived(f"layer/{module.weight_name}", make)}


def _spectral_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Any]:
    def make(key: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array]:
        u, v, _ = spectral_start(key, jnp.reshape(weight, (weight.shape[0], -1)))
        return u, v

    source = f"layer/{module.weight_name}"
    return {
        "uv_index/init/0": Derived(source, make, 0),
        "uv_index/init/1": Derived(source, make, 1),
    }
