"""Re-initialization of existing Flax models by rules: torch's ``model.apply(fn)``.

Flax is imported inside the functions, so importing this module never needs it.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from . import _basic, _optional, _scaled, torch_defaults
from ._reinit import (
    ParamShapes,
    Path,
    Rules,
    check_rules,
    current_mesh,
    draw,
    placement,
    plan,
)
from ._typing import Initializer

_SQRT5 = math.sqrt(5.0)


def _count(value: Any) -> int:
    """How many axes a Flax size argument stands for (an int is one)."""
    return 1 if isinstance(value, int) else len(value)


def own_ranks(module: Any) -> dict[str, int]:
    """The rank of each parameter of one copy of a Flax layer, by local name.

    Empty for modules whose parameters this does not know (their own parameters
    are then taken as unstacked).
    """
    from flax import linen as nn, nnx

    if isinstance(module, nn.Dense | nnx.Linear):
        return {"kernel": 2, "bias": 1}
    if isinstance(module, nn.Conv | nnx.Conv | nn.ConvTranspose | nnx.ConvTranspose):
        return {"kernel": _count(module.kernel_size) + 2, "bias": 1}
    if isinstance(module, nn.Embed | nnx.Embed):
        return {"embedding": 2}
    if isinstance(module, nn.DenseGeneral):
        batch, out = len(module.batch_dims), _count(module.features)
        return {"kernel": batch + _count(module.axis) + out, "bias": batch + out}
    if isinstance(module, nnx.LinearGeneral):
        batch, out = len(module.batch_axis), len(module.out_features)
        return {"kernel": batch + len(module.in_features) + out, "bias": batch + out}
    return {}


def _named(
    owner: str, path: Path, mesh: Any, spec: jax.sharding.PartitionSpec
) -> jax.sharding.NamedSharding:
    """``spec`` on ``mesh`` (a partitioning's own), or on the current mesh."""
    if not isinstance(mesh, jax.sharding.Mesh):
        mesh = current_mesh(owner, path, mesh)
    return jax.sharding.NamedSharding(mesh, spec)


def _traced_spec(
    value: Any, names: jax.sharding.PartitionSpec | None
) -> jax.sharding.PartitionSpec | None:
    """The partition a traced parameter keeps: its names, or its type's spec.

    Under ``jit`` a traced value has no placement to keep, only its partition
    names (or, on Explicit mesh axes, the spec in its type); None outside a mesh.
    """
    if jax.sharding.get_abstract_mesh().empty:
        return None
    if names is not None:
        return names
    typed = getattr(jax.typeof(value), "sharding", None)
    spec = getattr(typed, "spec", None)
    return spec if spec is not None and any(spec) else None


def _constrain(value: jax.Array, spec: jax.sharding.PartitionSpec) -> jax.Array:
    """``value`` laid out by ``spec`` on the context mesh, inside a trace."""
    mesh = jax.sharding.get_abstract_mesh()
    explicit = jax.sharding.AxisType.Explicit
    constrained: jax.Array
    if all(axis_type == explicit for axis_type in mesh.axis_types):
        constrained = jax.sharding.reshard(value, spec)  # type: ignore[no-untyped-call]
    else:
        constrained = jax.lax.with_sharding_constraint(value, spec)  # type: ignore[no-untyped-call]
    return constrained


def _nnx_placement(
    owner: str, path: Path, variable: Any, value: Any
) -> jax.sharding.Sharding | None:
    """Where an nnx parameter's new value goes: where its value is.

    An abstract value without a sharding goes by its ``out_sharding`` metadata
    on its ``mesh`` metadata or the current mesh, as ``nnx.as_abstract`` reads
    them.
    """
    unsharded = isinstance(value, jax.ShapeDtypeStruct) and value.sharding is None
    spec = _nnx_names(variable) if unsharded else None
    if spec is not None:
        return _named(owner, path, variable.get_metadata("mesh", None), spec)
    return placement(owner, path, value)


def _nnx_names(variable: Any) -> jax.sharding.PartitionSpec | None:
    """The partition an nnx parameter's ``out_sharding`` metadata names."""
    if not variable.get_metadata("out_sharding", None):
        return None
    from flax.nnx import spmd

    spec: jax.sharding.PartitionSpec | None = spmd.get_var_pspec(variable)
    return spec


def _reinit_nnx(model: Any, key: jax.Array, tiers: Sequence[Rules], owner: str) -> None:
    from flax import nnx

    modules = [(tuple(path), module) for path, module in nnx.iter_modules(model)]
    variables = {
        tuple(path): variable
        for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }
    values = {path: variable.get_value() for path, variable in variables.items()}
    shapes = {path: tuple(value.shape) for path, value in values.items()}
    chosen = plan(modules, shapes, tiers, own_ranks=own_ranks)
    shardings = {
        path: where
        for path in chosen
        if (where := _nnx_placement(owner, path, variables[path], values[path]))
        is not None
    }
    traced = {
        path: spec
        for path in chosen
        if isinstance(values[path], jax.core.Tracer)
        and (spec := _traced_spec(values[path], _nnx_names(variables[path])))
        is not None
    }
    for path, new in draw(key, chosen, values, shardings).items():
        if path in traced:  # under jit: keep the partition, not a replica
            new = _constrain(new, traced[path])
        variables[path].set_value(new)


def _unbox(leaf: Any) -> Any:
    """A linen parameter's value, out of its ``nn.Partitioned`` (or other) box."""
    from flax.core import meta

    if isinstance(leaf, meta.Partitioned):
        return leaf.value  # unbox() would add a sharding constraint
    return leaf.unbox() if isinstance(leaf, meta.AxisMetadata) else leaf


def linen_placement(owner: str, path: Path, leaf: Any) -> jax.sharding.Sharding | None:
    """Where a linen parameter's new value goes.

    A value boxed by ``nn.with_partitioning`` goes where its names say, on its
    box's mesh or the current one (outside any mesh, a concrete value stays
    where it is); a plain value stays where it is.
    """
    from flax.core import meta

    value = _unbox(leaf)
    if (
        not isinstance(leaf, meta.Partitioned)
        or isinstance(value, jax.core.Tracer)  # the enclosing jit places it
        or (
            leaf.mesh is None
            and isinstance(value, jax.Array)
            and jax.sharding.get_mesh().empty
        )
    ):
        return placement(owner, path, value)
    return _named(owner, path, leaf.mesh, _box_names(leaf))


def _box_names(leaf: Any) -> jax.sharding.PartitionSpec:
    """The partition a linen box names, logical names through the axis rules."""
    from flax import linen as nn
    from flax.linen import spmd

    if isinstance(leaf, nn.LogicallyPartitioned):
        mapped = spmd.logical_to_mesh_axes(leaf.names, leaf.rules)
        return jax.sharding.PartitionSpec() if mapped is None else mapped  # type: ignore[no-untyped-call]
    spec: jax.sharding.PartitionSpec = leaf.get_partition_spec()
    return spec


def _names_of(leaf: Any) -> jax.sharding.PartitionSpec | None:
    from flax.core import meta

    return _box_names(leaf) if isinstance(leaf, meta.Partitioned) else None


def _reinit_linen(
    module: Any,
    key: jax.Array,
    tiers: Sequence[Rules],
    variables: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    method: Any,
    owner: str,
) -> Any:
    from flax import linen as nn, traverse_util
    from flax.core import FrozenDict, freeze, meta

    if "params" not in variables:
        raise ValueError(f"{owner}: variables has no 'params' collection")
    seen: dict[Path, Any] = {}

    def record(next_fun: Any, call_args: Any, call_kwargs: Any, context: Any) -> Any:
        # The first call seen at a path is the module that owns it (a wrapper such as
        # nn.RNN may re-enter a cell under a lifted scope later).
        seen.setdefault(tuple(context.module.path), context.module)
        return next_fun(*call_args, **call_kwargs)

    rngs = {"params": key, "dropout": key}

    def run(variables: Any) -> Any:
        return module.apply(
            variables, *args, method=method, mutable=True, rngs=rngs, **kwargs
        )

    # Variables are an argument, not a closure, so they may be abstract
    # (jax.ShapeDtypeStruct, e.g. from jax.eval_shape(module.init, ...)).
    with nn.intercept_methods(record):
        jax.eval_shape(run, variables)
    flatten: Any = traverse_util.flatten_dict  # untyped in flax
    unflatten: Any = traverse_util.unflatten_dict
    params = flatten(dict(variables["params"]))
    values = {tuple(path): _unbox(leaf) for path, leaf in params.items()}
    shapes = {path: tuple(value.shape) for path, value in values.items()}
    chosen = plan(list(seen.items()), shapes, tiers, own_ranks=own_ranks)
    shardings = {
        path: where
        for path in chosen
        if (where := linen_placement(owner, path, params[path])) is not None
    }
    traced = {
        path: spec
        for path in chosen
        if isinstance(values[path], jax.core.Tracer)
        and (spec := _traced_spec(values[path], _names_of(params[path]))) is not None
    }
    new_params = dict(params)
    for path, new in draw(key, chosen, values, shardings).items():
        if path in traced:  # under jit: keep the partition, not a replica
            new = _constrain(new, traced[path])
        leaf = params[path]
        # Boxed parameters come back in the same box (names, mesh, rules).
        boxed = isinstance(leaf, meta.AxisMetadata)
        new_params[path] = leaf.replace_boxed(new) if boxed else new
    result = dict(variables)
    result["params"] = unflatten(new_params)
    return freeze(result) if isinstance(variables, FrozenDict) else result


def _is_nnx(model: Any) -> bool:
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is optional
        return False
    return isinstance(model, nnx.Module)


def run(
    owner: str,
    model: Any,
    key: jax.Array,
    tiers: Sequence[Rules],
    variables: Mapping[str, Any] | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    method: Any,
) -> Any:
    """Dispatches to nnx (in place, returns None) or linen (returns variables)."""
    _optional.require("flax", "flax", f"jaxinit.flax.{owner}")
    for rules in tiers:
        check_rules(owner, rules)
    if _is_nnx(model):
        if variables is not None:
            raise TypeError(
                f"{owner}: an nnx model holds its own state; drop variables="
            )
        _reinit_nnx(model, key, tiers, owner)
        return None
    if variables is None:
        raise TypeError(
            f"{owner}: a linen module needs its variables (variables=...) and example "
            "inputs (args=...) to find which module owns which parameter; got "
            f"{type(model).__name__} without variables"
        )
    return _reinit_linen(
        model, key, tiers, variables, args, kwargs or {}, method, owner
    )


# Torch's defaults, as rules on Flax module types.


def _dense(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    kernel = shapes.get("kernel")
    if kernel is None:
        return {}
    fan_in = math.prod(kernel[:-1])  # Dense (in, out), Conv (*k, in/g, out)
    return {
        "kernel": _scaled.kaiming_uniform(a=_SQRT5),
        "bias": torch_defaults.linear(fan_in)["bias_init"],
    }


def _conv_transpose(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    kernel = shapes.get("kernel")
    if kernel is None:
        return {}
    flipped = bool(getattr(module, "transpose_kernel", False))
    # torch's fan-in is the output channels times the window: the kernel's last
    # axis for (*k, in, out), its second to last for (*k, out, in).
    out_channels = kernel[-2] if flipped else kernel[-1]
    fan_in = out_channels * math.prod(kernel[:-2])
    kernel_init = (
        _scaled.kaiming_uniform(a=_SQRT5)
        if flipped
        else _scaled.kaiming_uniform(a=_SQRT5, in_axis=-1, out_axis=-2)
    )
    return {"kernel": kernel_init, "bias": torch_defaults.linear(fan_in)["bias_init"]}


def _embed(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    return {"embedding": _basic.normal()}


def _attention(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    query, key, value = (
        shapes.get(f"{name}/kernel") for name in ("query", "key", "value")
    )
    if query is None or key is None or value is None:
        return {}
    embed = math.prod(query[1:])
    projection: Initializer
    if query[0] == key[0] == value[0] == embed:
        # torch packs q, k, v into one (3E, E) matrix and draws one xavier over it.
        projection = _basic.uniform(
            -torch_defaults._packed_in_projection_bound(embed),
            torch_defaults._packed_in_projection_bound(embed),
        )
    else:
        projection = _scaled.xavier_uniform(in_axis=0, out_axis=(1, 2))
    rules: dict[str, Initializer] = {}
    for name in ("query", "key", "value"):
        rules[f"{name}/kernel"] = projection
        rules[f"{name}/bias"] = _basic.zeros()
    out = shapes.get("out/kernel")
    if out is not None:
        heads_axes = tuple(range(len(out) - 1))
        rules["out/kernel"] = _scaled.kaiming_uniform(
            a=_SQRT5, in_axis=heads_axes, out_axis=len(out) - 1
        )
    rules["out/bias"] = _basic.zeros()
    return rules


_RECURRENT_KERNELS = ("hi/kernel", "hr/kernel", "h/kernel", "dense_h/kernel")
# torch biases that Flax keeps apart rather than summed: GRU's b_in and b_hn.
_SINGLE_BIASES = ("in/bias", "hn/bias")


def _cell(
    defaults: Callable[[int], torch_defaults.RecurrentInits],
) -> Callable[[Any, ParamShapes], Mapping[str, Initializer]]:
    def rule(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
        recurrent = next((shapes[n] for n in _RECURRENT_KERNELS if n in shapes), None)
        if recurrent is None:
            return {}
        inits = defaults(recurrent[-2])  # (H, gates * H)
        rules: dict[str, Initializer] = {}
        for name in shapes:
            if name.endswith("kernel"):
                rules[name] = inits["kernel_init"]
            elif name in _SINGLE_BIASES:
                rules[name] = inits["kernel_init"]
            elif name.endswith("bias"):
                rules[name] = inits["bias_init"]
        return rules

    return rule


def _norm(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    return {"scale": _basic.ones(), "bias": _basic.zeros()}


def _prelu(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    return {"negative_slope": _basic.constant(0.25)}


def torch_rules() -> dict[Any, Any]:
    """Torch's ``reset_parameters`` defaults as rules on linen and nnx module types."""
    _optional.require("flax", "flax", "jaxinit.flax.torch_rules")
    from flax import linen as nn, nnx

    rules: dict[Any, Any] = {
        (nn.Dense, nnx.Linear, nn.Conv, nnx.Conv): _dense,
        (nn.ConvTranspose, nnx.ConvTranspose): _conv_transpose,
        (nn.Embed, nnx.Embed): _embed,
        (nn.MultiHeadDotProductAttention, nnx.MultiHeadAttention): _attention,
        (nn.SimpleCell, nnx.SimpleCell): _cell(torch_defaults.rnn_cell),
        (
            nn.LSTMCell,
            nn.OptimizedLSTMCell,
            nnx.LSTMCell,
            nnx.OptimizedLSTMCell,
        ): _cell(torch_defaults.lstm_cell),
        (nn.GRUCell, nnx.GRUCell): _cell(torch_defaults.gru_cell),
        (
            nn.LayerNorm,
            nn.GroupNorm,
            nn.BatchNorm,
            nn.RMSNorm,
            nnx.LayerNorm,
            nnx.GroupNorm,
            nnx.BatchNorm,
            nnx.RMSNorm,
        ): _norm,
        (nn.PReLU, nnx.PReLU): _prelu,
    }
    return rules
