"""Re-initialization of existing Flax models by rules: torch's ``model.apply(fn)``.

Flax is imported inside the functions, so importing this module never needs it.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _basic, _optional, _scaled, torch_defaults
from ._reinit import (
    Derived,
    Leaf,
    ParamShapes,
    Path,
    Rules,
    Start,
    _set_stacked,
    check_rules,
    current_mesh,
    fill,
    full,
    placement,
    rng_key,
    spectral_start,
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
    modules, leaves, homes = _nnx_walk(model)
    _set_stacked(modules, leaves, own_ranks)

    def place(leaf: Leaf) -> jax.sharding.Sharding | None:
        home = homes[id(leaf)]
        if isinstance(home, _RawSlot):
            return placement(owner, leaf.paths[0], leaf.value)
        return _nnx_placement(owner, leaf.paths[0], home, leaf.value)

    new = fill(
        owner,
        key,
        leaves,
        modules,
        [_wrapper_rules(), *tiers],
        starts=_start_rules(),
        place=place,
    )
    for index, value in new.items():
        leaf = leaves[index]
        home = homes[id(leaf)]
        if isinstance(home, _RawSlot):
            home.write(value)
            continue
        spec = (
            _traced_spec(leaf.value, _nnx_names(home))
            if isinstance(leaf.value, jax.core.Tracer)
            else None
        )
        if spec is not None:  # under jit: keep the partition, not a replica
            value = _constrain(value, spec)
        home.set_value(value)


@dataclasses.dataclass(eq=False)
class _RawSlot:
    """Where a bare array of an nnx model lives: an attribute or an item."""

    parent: Any
    key: Any

    def write(self, value: Any) -> None:
        from flax import nnx

        if isinstance(self.parent, nnx.Module) or not hasattr(
            self.parent, "__setitem__"
        ):
            setattr(self.parent, self.key, value)
        else:
            self.parent[self.key] = value


def _is_array(value: Any) -> bool:
    return isinstance(value, jax.Array | jax.ShapeDtypeStruct | np.ndarray)


def _nnx_walk(
    model: Any,
) -> tuple[list[tuple[Path, Any]], list[Leaf], dict[int, Any]]:
    """An nnx model's modules and leaves, every path of each.

    nnx's own listings (``nnx.state``, ``iter_modules``) give a shared node
    once, under one path; this walk follows every path, so that a parameter
    tied into another module (``Head(self.wte.embedding)``) is found under
    both. Attributes are visited in definition order; modules are listed
    children first (torch's ``model.apply`` order), leaves by first visit,
    whose path gives the key. ``homes`` maps each leaf to its ``Variable`` or,
    for a bare array, its ``_RawSlot``.
    """
    from flax import nnx
    from flax.nnx import graph  # not graphlib: flax 0.12.1 has only graph

    modules: list[tuple[Path, Any]] = []
    leaves: list[Leaf] = []
    homes: dict[int, Any] = {}
    by_variable: dict[int, Leaf] = {}

    def add(path: Path, value: Any, home: Any, variable: Any = None) -> None:
        if variable is not None and id(variable) in by_variable:
            by_variable[id(variable)].paths.append(path)
            return
        param = isinstance(variable, nnx.Param)
        leaf = Leaf([path], value, param=param, start=_nnx_start(variable))
        leaves.append(leaf)
        homes[id(leaf)] = home
        if variable is not None:
            by_variable[id(variable)] = leaf

    def visit(node: Any, path: Path, ancestors: frozenset[int]) -> None:
        impl = graph.get_node_impl(node)
        if impl is None or id(node) in ancestors:
            return
        children = impl.node_dict(node)
        order = {name: i for i, name in enumerate(getattr(node, "__dict__", {}))}
        names = sorted(children, key=lambda name: order.get(name, len(order)))
        inside = ancestors | {id(node)}
        for name in names:
            if isinstance(name, str) and name.startswith("_pytree__"):
                continue
            child, child_path = children[name], (*path, name)
            if isinstance(child, nnx.Variable):
                value = child.get_value()
                if _is_array(value):
                    add(child_path, value, child, child)
            elif _is_array(child):
                add(child_path, child, _RawSlot(node, name))
            else:
                visit(child, child_path, inside)
        if isinstance(node, nnx.Module):
            modules.append((path, node))

    visit(model, (), frozenset())
    return modules, leaves, homes


def _nnx_start(variable: Any) -> Start | None:
    """The start of an abstract nnx variable no rule names, by its type."""
    if variable is None:
        return None
    from flax import nnx

    if isinstance(variable, nnx.RngKey):
        return rng_key
    if isinstance(variable, nnx.RngCount | nnx.Cache):
        return full(0)  # nnx's own start of counters and decoding caches
    return None


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

    if not isinstance(variables, Mapping):
        raise TypeError(
            f"{owner}: variables must be the mapping of collections module.init "
            f"returns, got {type(variables).__name__}"
        )
    # (path, type) -> module, in order of each one's last completed call: a
    # child's call ends before its parent's, which gives torch's apply order.
    seen: dict[tuple[Path, type], Any] = {}
    own: dict[tuple[str, Path], tuple[int, ...]] = {}  # one copy's shapes

    def record(next_fun: Any, call_args: Any, call_kwargs: Any, context: Any) -> Any:
        out = next_fun(*call_args, **call_kwargs)
        called = context.module
        path = tuple(called.path)
        # Transforms (nn.map_variables, nn.vmap) call a stand-in at the root
        # path whose parent is a scope; share_scope's child has its module.
        root = type(called) is type(module) or isinstance(called.parent, nn.Module)
        if path or root:
            seen.pop((path, type(called)), None)
            seen[(path, type(called))] = called
            _own_shapes(called, path, own)
        return out

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
    boxes: dict[tuple[str, Path], Any] = {}
    leaves: list[Leaf] = []
    for collection, tree in variables.items():
        for path, box in flatten(dict(tree)).items():
            value = _unbox(box)
            if not _is_array(value):
                continue
            path = tuple(path)
            boxes[(collection, path)] = box
            stacked = len(value.shape) - len(own.get((collection, path), value.shape))
            leaves.append(
                Leaf(
                    [path],
                    value,
                    param=collection == "params",
                    stacked=max(stacked, 0),
                    start=full(0) if collection == "cache" else None,
                    key_from=None if collection == "params" else (collection, *path),
                )
            )
    where = list(boxes)
    box_of = {id(leaf): boxes[slot] for leaf, slot in zip(leaves, where, strict=True)}

    def place(leaf: Leaf) -> jax.sharding.Sharding | None:
        return linen_placement(owner, leaf.paths[0], box_of[id(leaf)])

    new = fill(
        owner,
        key,
        leaves,
        [(path, called) for (path, _), called in seen.items()],
        [_wrapper_rules(), *tiers],
        starts=_start_rules(),
        place=place,
    )
    flat = {collection: flatten(dict(tree)) for collection, tree in variables.items()}
    for index, value in new.items():
        collection, path = where[index]
        box = boxes[(collection, path)]
        old = leaves[index].value
        if isinstance(old, jax.core.Tracer):  # under jit: keep the partition
            spec = _traced_spec(old, _names_of(box))
            if spec is not None:
                value = _constrain(value, spec)
        # Boxed values come back in the same box (names, mesh, rules).
        boxed = isinstance(box, meta.AxisMetadata)
        flat[collection][path] = box.replace_boxed(value) if boxed else value
    result = {collection: unflatten(flat[collection]) for collection in variables}
    return freeze(result) if isinstance(variables, FrozenDict) else result


def _own_shapes(
    module: Any, path: Path, own: dict[tuple[str, Path], tuple[int, ...]]
) -> None:
    """Records the shapes a module sees of its own variables: one copy's.

    Inside ``nn.scan`` or ``nn.vmap`` a module sees one slice of the stacked
    arrays, so the difference in rank is the number of stacked axes, for any
    module (raw ``self.param`` included).
    """
    try:
        collections = module.variables
    except Exception:  # pragma: no cover - an unbound or stand-in module
        return
    for collection, tree in collections.items():
        for name, value in tree.items():
            value = _unbox(value)
            if _is_array(value):
                own.setdefault((collection, (*path, name)), tuple(value.shape))


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


def _batch_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Initializer]:
    # torch's reset_parameters resets the running statistics too.
    return {**_norm(module, shapes), **_RUNNING}


_RUNNING = {"mean": _basic.zeros(), "var": _basic.ones()}


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
        (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm): _norm,
        (nnx.LayerNorm, nnx.GroupNorm, nnx.RMSNorm): _norm,
        (nn.BatchNorm, nnx.BatchNorm): _batch_norm,
        (nn.PReLU, nnx.PReLU): _prelu,
    }
    return rules


def _start_rules() -> Rules:
    """The start of abstract state no rule names: BatchNorm's, torch's and Flax's."""
    from flax import linen as nn, nnx

    return {(nn.BatchNorm, nnx.BatchNorm): _RUNNING}


# Reparametrizing wrappers: the leaves they derive from the wrapped weight.


def _wrapper_rules() -> Rules:
    """Weight and spectral norm, started from the wrapped layer's (new) weight.

    As torch's ``weight_norm`` and ``spectral_norm`` start them.
    Weight norm's scale is the norm of the weight over every axis but the
    feature axes, so the effective weight is the drawn one (torch's
    ``g = norm_except_dim(v)``; Flax itself starts the scale at ones). Spectral
    norm's power-iteration state is torch's: ``u``, ``v`` normalized ``N(0, 1)``
    vectors, 15 power iterations on the weight, ``sigma = u^T W v``.
    """
    from flax import linen as nn, nnx

    return {
        nnx.WeightNorm: _nnx_weight_norm,
        nn.WeightNorm: _linen_weight_norm,
        nnx.SpectralNorm: _nnx_spectral_norm,
        nn.SpectralNorm: _linen_spectral_norm,
    }


def _feature_norm(feature_axes: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Flax weight norm's scale for a weight: its norm over the other axes."""

    def make(key: jax.Array, weight: jax.Array) -> jax.Array:
        if feature_axes is None:
            features: tuple[int, ...] = ()
        else:
            axes = (feature_axes,) if isinstance(feature_axes, int) else feature_axes
            features = tuple(sorted(axis % weight.ndim for axis in axes))
        reduced = tuple(axis for axis in range(weight.ndim) if axis not in features)
        squares = jnp.square(weight.astype(jnp.float32))
        return jnp.sqrt(jnp.sum(squares, axis=reduced))

    return make


def _nnx_weight_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Any]:
    scales = module.scales or {}
    make = _feature_norm(module.feature_axes)
    return {
        f"scales/{path}": Derived("layer_instance/" + "/".join(map(str, path)), make)
        for path in scales
    }


def _linen_weight_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Any]:
    layer = module.layer_instance
    prefix, make = f"{layer.name}/", _feature_norm(module.feature_axes)
    return {
        name: Derived(
            (*layer.path, *name[len(prefix) : -len("/scale")].split("/")), make
        )
        for name in shapes
        if name.startswith(prefix) and name.endswith("/scale")
    }


def _flax_spectral(key: jax.Array, kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Flax's ``(u, sigma)`` from torch's start: Flax keeps ``u`` of ``W^T``."""
    matrix = jnp.reshape(kernel, (-1, kernel.shape[-1])).T  # torch's (out, in)
    u, _, sigma = spectral_start(key, matrix)
    return u[None, :], sigma


def _nnx_spectral_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Any]:
    rules: dict[str, Any] = {}
    for path in module.batch_stats or {}:
        source = "layer_instance/" + "/".join(map(str, path[:-1]))
        index = {"u": 0, "sigma": 1}[path[-1]]
        rules[f"batch_stats/{path}"] = Derived(source, _flax_spectral, index)
    return rules


def _linen_spectral_norm(module: Any, shapes: ParamShapes) -> Mapping[str, Any]:
    layer = module.layer_instance
    prefix = f"{layer.name}/"
    rules: dict[str, Any] = {}
    for name in shapes:
        head, _, last = name.rpartition("/")
        if name.startswith(prefix) and last in ("u", "sigma"):
            source = (*layer.path, *head[len(prefix) :].split("/"))
            rules[name] = Derived(source, _flax_spectral, {"u": 0, "sigma": 1}[last])
    return rules
