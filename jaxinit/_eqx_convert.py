"""Torch state dicts in and out of Equinox models (numpy; torch is never imported).

Each Equinox layer with a torch counterpart has an exporter (Equinox layer ->
``{torch name: array}``, written with ``jnp`` so that it also gives the expected
shapes of an abstract layer) and an importer (the inverse). Parameters outside
those layers map one to one, under the same name.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from ._eqx_reinit import replace_leaves, require_equinox, walk
from ._reinit import Path

Tensors: TypeAlias = dict[str, Any]
Exporter: TypeAlias = Callable[[Any], Tensors]
Importer: TypeAlias = Callable[[Any, Tensors], dict[Path, Any]]


def _weight_and_bias(module: Any) -> Tensors:
    tensors = {"weight": module.weight}
    if getattr(module, "bias", None) is not None:
        tensors["bias"] = module.bias
    return tensors


def _load_weight_and_bias(module: Any, tensors: Tensors) -> dict[Path, Any]:
    return {(name,): value for name, value in tensors.items()}


def _conv_out(module: Any) -> Tensors:
    tensors = _weight_and_bias(module)
    if "bias" in tensors:
        tensors["bias"] = tensors["bias"].reshape(-1)  # Equinox: (out, 1, ..., 1)
    return tensors


def _conv_in(module: Any, tensors: Tensors) -> dict[Path, Any]:
    loaded = _load_weight_and_bias(module, tensors)
    if module.bias is not None:
        loaded[("bias",)] = tensors["bias"].reshape(module.bias.shape)
    return loaded


def _swap_groups(weight: Any, groups: int) -> Any:
    """(g * a, b, *k) -> (g * b, a, *k): swaps the two channel axes per group."""
    a, b, *kernel = weight.shape
    grouped = weight.reshape(groups, a // groups, b, *kernel)
    return jnp.swapaxes(grouped, 1, 2).reshape(groups * b, a // groups, *kernel)


def _conv_transpose_out(module: Any) -> Tensors:
    # Equinox runs a transposed convolution as a dilated convolution with kernel
    # (out, in/g, *k); torch's kernel is (in, out/g, *k), the same flipped in
    # space with input and output channels swapped within each group.
    tensors = _conv_out(module)
    spatial = tuple(range(2, 2 + module.num_spatial_dims))
    flipped = jnp.flip(module.weight, spatial)
    tensors["weight"] = _swap_groups(flipped, module.groups)
    return tensors


def _conv_transpose_in(module: Any, tensors: Tensors) -> dict[Path, Any]:
    loaded = _conv_in(module, tensors)
    spatial = tuple(range(2, 2 + module.num_spatial_dims))
    swapped = _swap_groups(tensors["weight"], module.groups)
    loaded[("weight",)] = jnp.flip(swapped, spatial)
    return loaded


_PROJECTIONS = ("query_proj", "key_proj", "value_proj")


def _attention_layout(module: Any) -> tuple[bool, bool]:
    """(packed, biased) of the torch MultiheadAttention this layer stands for."""
    embed = module.query_size
    sizes = (module.num_heads * module.qk_size, module.num_heads * module.vo_size)
    if sizes != (embed, embed) or module.output_size != embed:
        raise ValueError(
            f"from_torch/to_torch: torch's MultiheadAttention projects to embed_dim "
            f"= query_size = output_size = num_heads * qk_size = num_heads * "
            f"vo_size; this layer has query_size={embed}, output_size="
            f"{module.output_size}, num_heads * qk_size={sizes[0]}, num_heads * "
            f"vo_size={sizes[1]}"
        )
    flags = {
        module.use_query_bias,
        module.use_key_bias,
        module.use_value_bias,
        module.use_output_bias,
    }
    if len(flags) != 1:
        raise ValueError(
            "from_torch/to_torch: torch's MultiheadAttention has all four biases "
            "(bias=True) or none; this layer has use_query_bias="
            f"{module.use_query_bias}, use_key_bias={module.use_key_bias}, "
            f"use_value_bias={module.use_value_bias}, use_output_bias="
            f"{module.use_output_bias}"
        )
    packed = module.key_size == module.value_size == embed
    return packed, flags.pop()


def _attention_out(module: Any) -> Tensors:
    packed, biased = _attention_layout(module)
    weights = [getattr(module, name).weight for name in _PROJECTIONS]
    tensors: Tensors = {}
    if packed:
        tensors["in_proj_weight"] = jnp.concatenate(weights)
    else:
        for prefix, weight in zip("qkv", weights, strict=True):
            tensors[f"{prefix}_proj_weight"] = weight
    if biased:
        biases = [getattr(module, name).bias for name in _PROJECTIONS]
        tensors["in_proj_bias"] = jnp.concatenate(biases)
    tensors["out_proj.weight"] = module.output_proj.weight
    if biased:
        tensors["out_proj.bias"] = module.output_proj.bias
    return tensors


def _attention_in(module: Any, tensors: Tensors) -> dict[Path, Any]:
    packed, biased = _attention_layout(module)
    if packed:
        weights = jnp.split(tensors["in_proj_weight"], 3)
    else:
        weights = [tensors[f"{prefix}_proj_weight"] for prefix in "qkv"]
    loaded: dict[Path, Any] = {
        (name, "weight"): weight
        for name, weight in zip(_PROJECTIONS, weights, strict=True)
    }
    loaded[("output_proj", "weight")] = tensors["out_proj.weight"]
    if biased:
        biases = jnp.split(tensors["in_proj_bias"], 3)
        for name, bias in zip(_PROJECTIONS, biases, strict=True):
            loaded[(name, "bias")] = bias
        loaded[("output_proj", "bias")] = tensors["out_proj.bias"]
    return loaded


def _cell_out(module: Any) -> Tensors:
    tensors = {"weight_ih": module.weight_ih, "weight_hh": module.weight_hh}
    if module.bias is not None:
        # Equinox keeps the sums; torch's split is not recoverable, so b_hh is 0
        # (GRU: b_hn, which sits inside the reset gate, is Equinox's bias_n).
        hidden = module.hidden_size
        tensors["bias_ih"] = module.bias
        if hasattr(module, "bias_n"):
            zeros = jnp.zeros((2 * hidden,), module.bias.dtype)
            tensors["bias_hh"] = jnp.concatenate([zeros, module.bias_n])
        else:
            tensors["bias_hh"] = jnp.zeros_like(module.bias)
    return tensors


def _cell_in(module: Any, tensors: Tensors) -> dict[Path, Any]:
    loaded: dict[Path, Any] = {
        ("weight_ih",): tensors["weight_ih"],
        ("weight_hh",): tensors["weight_hh"],
    }
    if module.bias is not None:
        input_bias, hidden_bias = tensors["bias_ih"], tensors["bias_hh"]
        if hasattr(module, "bias_n"):
            hidden = module.hidden_size
            gates = jnp.concatenate(
                [hidden_bias[: 2 * hidden], jnp.zeros((hidden,), hidden_bias.dtype)]
            )
            loaded[("bias",)] = input_bias + gates
            loaded[("bias_n",)] = hidden_bias[2 * hidden :]
        else:
            loaded[("bias",)] = input_bias + hidden_bias
    return loaded


def _prelu_out(module: Any) -> Tensors:
    # torch's PReLU weight has at least one element: (1,) for a scalar slope.
    return {"weight": jnp.atleast_1d(module.negative_slope)}


def _prelu_in(module: Any, tensors: Tensors) -> dict[Path, Any]:
    slope = tensors["weight"].reshape(module.negative_slope.shape)
    return {("negative_slope",): slope}


def _layers(eqx: Any) -> dict[type, tuple[Exporter, Importer]]:
    nn = eqx.nn
    plain = (_weight_and_bias, _load_weight_and_bias)
    return {
        nn.Linear: plain,
        nn.Conv: (_conv_out, _conv_in),
        nn.ConvTranspose: (_conv_transpose_out, _conv_transpose_in),
        nn.Embedding: plain,
        nn.MultiheadAttention: (_attention_out, _attention_in),
        nn.GRUCell: (_cell_out, _cell_in),
        nn.LSTMCell: (_cell_out, _cell_in),
        nn.LayerNorm: plain,
        nn.GroupNorm: plain,
        nn.RMSNorm: plain,
        nn.BatchNorm: plain,
        nn.PReLU: (_prelu_out, _prelu_in),
    }


_STATISTICS = ("running_mean", "running_var")


def _fresh_buffers(module: Any, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Torch's running statistics before any batch: mean 0, variance 1."""
    size = module.input_size
    return {
        "running_mean": np.zeros(size, dtype),
        "running_var": np.ones(size, dtype),
        "num_batches_tracked": np.zeros((), np.int64),
    }


def _debias(module: Any, count: Any) -> float:
    """What Equinox's ``batch`` mode divides its running sums by after ``count``."""
    count = int(count)
    return 1.0 if count == 0 else 1.0 - float(module.momentum) ** count


def _buffers_from_state(module: Any, state: Any) -> dict[str, np.ndarray]:
    """Torch's running statistics of one BatchNorm, read from an ``eqx.nn.State``.

    ``batch`` mode: Equinox keeps debiased sums and a counter; torch's running
    mean and variance are the statistics Equinox's inference uses. ``ema``
    mode keeps the statistics themselves but no count: 0 batches before the
    first training step (the buffers are then unset), 1 after.
    """
    if module.mode == "batch":
        count = np.array(state.get(module.batch_counter))
        mean, var = (np.array(v) for v in state.get(module.batch_state_index))
        scale = _debias(module, count)
        return {
            "running_mean": (mean / scale).astype(mean.dtype),
            "running_var": (var / scale).astype(var.dtype),
            "num_batches_tracked": count.astype(np.int64),
        }
    mean, var = (np.array(v) for v in state.get(module.ema_state_index))
    if bool(state.get(module.ema_first_time_index)):
        return _fresh_buffers(module, mean.dtype)
    return {
        "running_mean": mean,
        "running_var": var,
        "num_batches_tracked": np.ones((), np.int64),
    }


def _buffers_into_state(
    module: Any, state: Any, buffers: Mapping[str, np.ndarray]
) -> Any:
    """``state`` with one BatchNorm's running statistics set from torch's buffers."""
    counted = buffers.get("num_batches_tracked")
    count = 0 if counted is None else int(np.asarray(counted))
    if module.mode == "batch":
        old_count = state.get(module.batch_counter)
        old = state.get(module.batch_state_index)
        scale = _debias(module, count)
        sums = tuple(
            jnp.asarray(np.asarray(buffers[name], np.float64) * scale, o.dtype)
            for name, o in zip(_STATISTICS, old, strict=True)
        )
        # full_like keeps the counter's weak type, which State.set compares.
        state = state.set(module.batch_counter, jax.lax.full_like(old_count, count))
        return state.set(module.batch_state_index, sums)
    old = state.get(module.ema_state_index)
    stats = tuple(
        jnp.asarray(buffers[name], o.dtype)
        for name, o in zip(_STATISTICS, old, strict=True)
    )
    first_time = state.get(module.ema_first_time_index)
    state = state.set(
        module.ema_first_time_index, jax.lax.full_like(first_time, count == 0)
    )
    return state.set(module.ema_state_index, stats)


@functools.cache
def _unshared_type() -> Any:
    """``eqx.nn.Shared`` with its tied nodes filled in, for naming and loading.

    Its fields are ``Shared``'s; the tied targets hold what ``get`` gives them,
    as ``shared()`` returns them.
    """
    eqx = require_equinox("to_torch")

    class Unshared(eqx.Module):  # type: ignore[misc, name-defined]
        pytree: Any
        where: Any
        get: Any

    return Unshared


def _unshare(model: Any) -> Any:
    """``model`` with every ``eqx.nn.Shared`` (nested ones too) filled in."""
    eqx = require_equinox("to_torch")
    unshared = _unshared_type()

    def fill(node: Any) -> Any:
        if isinstance(node, eqx.nn.Shared):
            return unshared(_unshare(node()), node.where, node.get)
        return node

    def is_shared(node: Any) -> bool:
        return isinstance(node, eqx.nn.Shared)

    return jax.tree.map(fill, model, is_leaf=is_shared)


def _reshare(model: Any, name: Callable[[Path], str], at: Path = ()) -> Any:
    """The inverse of ``_unshare``; tied values must agree with their source.

    ``name(path)`` is the torch name of the node at ``path`` (for the error).
    """
    eqx = require_equinox("from_torch")
    unshared = _unshared_type()

    def tie(key_path: Any, node: Any) -> Any:
        if not isinstance(node, unshared):
            return node
        path = at + tuple(_key(entry) for entry in key_path)
        pytree = _reshare(node.pytree, name, (*path, "pytree"))
        targets = jax.tree.leaves(node.where(node.pytree))
        sources = jax.tree.leaves(node.get(node.pytree))
        if not all(
            np.array_equal(np.asarray(t), np.asarray(s))
            for t, s in zip(targets, sources, strict=True)
            if not isinstance(t, jax.ShapeDtypeStruct | jax.core.Tracer)
        ):
            raise ValueError(
                f"from_torch: the tensors tied by the eqx.nn.Shared at "
                f"{name(path)!r} differ in the state dict (torch's state_dict "
                "lists a tied parameter under each of its names, equal)"
            )
        return eqx.nn.Shared(pytree, node.where, node.get)

    return jax.tree_util.tree_map_with_path(
        tie, model, is_leaf=lambda node: isinstance(node, unshared)
    )


def _key(entry: Any) -> Any:
    """One step of a jax key path as ``walk`` names it: attribute or index."""
    for field in ("name", "idx", "key"):
        if hasattr(entry, field):
            return getattr(entry, field)
    return str(entry)  # pragma: no cover - other key kinds


class _Plan:
    """Which torch tensors a model has: its layers and its loose parameters.

    ``model`` is the model with its ``eqx.nn.Shared`` filled in (``_unshare``).
    """

    def __init__(self, model: Any) -> None:
        eqx = require_equinox("from_torch")
        self.eqx = eqx
        known = _layers(eqx)
        modules, self.params = walk(model)
        self.by_path = dict(modules)
        self.layers: dict[Path, tuple[Any, Exporter, Importer]] = {}
        self.batch_norms: list[tuple[str, Any]] = []
        for path, module in modules:
            if any(path[: len(p)] == p for p in self.layers):
                continue  # inside a layer already handled (attention's Linears)
            for layer_type, (export, load) in known.items():
                if isinstance(module, layer_type):
                    self.layers[path] = (module, export, load)
                    if isinstance(module, eqx.nn.BatchNorm):
                        self.batch_norms.append((self.prefix(path), module))
                    break
        self.loose = [
            path
            for path in self.params
            if not any(path[: len(p)] == p for p in self.layers)
        ]

    def prefix(self, path: Path) -> str:
        """The torch name of ``path``: its parts joined by ``.``.

        A Sequential's ``layers`` and a Shared's ``pytree`` are left out: torch
        names children by index (``ModuleList``, ``Sequential``).
        """
        left_out = (
            (self.eqx.nn.Sequential, "layers"),
            (_unshared_type(), "pytree"),
        )
        parts = []
        for index, part in enumerate(path):
            owner = self.by_path.get(path[:index])
            if any(part == name and isinstance(owner, kind) for kind, name in left_out):
                continue
            parts.append(str(part))
        return ".".join(parts)

    def check_concrete(self, owner: str) -> None:
        """Raises a TypeError naming the parameters that have no values."""
        abstract = [
            self.prefix(path)
            for path, value in self.params.items()
            if isinstance(value, jax.ShapeDtypeStruct)
        ]
        if abstract:
            raise TypeError(
                f"{owner}: the model is abstract: {len(abstract)} parameter(s) are "
                f"jax.ShapeDtypeStruct, not arrays ({', '.join(abstract[:3])}"
                f"{', ...' if len(abstract) > 3 else ''}); give them values first, "
                "e.g. jaxinit.equinox.torch_init(model, key)"
            )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_state(owner: str, state: Any) -> None:
    eqx = require_equinox(owner)
    if state is not None and not isinstance(state, eqx.nn.State):
        raise TypeError(
            f"{owner}: state must be an eqx.nn.State (from eqx.nn.make_with_state) "
            f"or None, got {type(state).__name__}"
        )


def to_torch(model: Any, state: Any = None) -> dict[str, np.ndarray]:
    """See ``jaxinit.equinox.to_torch``."""
    _check_state("to_torch", state)
    plan = _Plan(_unshare(model))
    plan.check_concrete("to_torch")
    tensors: dict[str, np.ndarray] = {}
    for path, (module, export, _) in plan.layers.items():
        prefix = plan.prefix(path)
        for name, value in export(module).items():
            tensors[_join(prefix, name)] = np.array(value)
    for prefix, module in plan.batch_norms:
        if state is None:
            buffers = _fresh_buffers(module)
        else:
            buffers = _buffers_from_state(module, state)
        for name, value in buffers.items():
            tensors[_join(prefix, name)] = value
    for path in plan.loose:
        tensors[plan.prefix(path)] = np.array(plan.params[path])
    return tensors


def from_torch(model: Any, state_dict: Mapping[str, Any], state: Any = None) -> Any:
    """See ``jaxinit.equinox.from_torch``."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "from_torch: state_dict must be a mapping from torch names to arrays, "
            f"got {type(state_dict).__name__}"
        )
    _check_state("from_torch", state)
    unshared = _unshare(model)
    plan = _Plan(unshared)
    eqx = plan.eqx
    used: set[str] = set()

    def fetch(name: str, expected: tuple[int, ...]) -> np.ndarray:
        if name not in state_dict:
            raise KeyError(
                f"from_torch: missing tensor {name!r} (expected shape {expected})"
            )
        value = np.asarray(state_dict[name])
        if value.shape != expected:
            raise ValueError(
                f"from_torch: tensor {name!r} has shape {value.shape}, the model "
                f"expects {expected}"
            )
        used.add(name)
        return value

    new: dict[Path, Any] = {}
    for path, (module, export, load) in plan.layers.items():
        prefix = plan.prefix(path)
        shapes = eqx.filter_eval_shape(export, module)
        tensors = {
            name: jnp.asarray(fetch(_join(prefix, name), tuple(shape.shape)))
            for name, shape in shapes.items()
        }
        for local, value in load(module, tensors).items():
            new[path + local] = value
    if state is not None:
        # State.set invalidates the State it is called on: work on a copy.
        state = jax.tree.map(lambda leaf: leaf, state)
    for prefix, module in plan.batch_norms:
        fresh = _fresh_buffers(module)
        if state is not None:
            buffers = {
                name: fetch(_join(prefix, name), fresh[name].shape)
                for name in _STATISTICS
            }
            counter = _join(prefix, "num_batches_tracked")
            if counter in state_dict:
                buffers["num_batches_tracked"] = fetch(counter, ())
            state = _buffers_into_state(module, state, buffers)
        used.update(_join(prefix, name) for name in fresh)
    for path in plan.loose:
        new[path] = fetch(plan.prefix(path), tuple(plan.params[path].shape))
    unexpected = sorted(set(state_dict) - used)
    if unexpected:
        raise KeyError(f"from_torch: unexpected tensors {unexpected}")
    cast = {
        path: jnp.asarray(value, dtype=plan.params[path].dtype)
        for path, value in new.items()
    }
    for path, value in cast.items():
        old = plan.params[path]
        if isinstance(old, jax.Array) and not isinstance(old, jax.core.Tracer):
            cast[path] = jax.device_put(value, old.sharding)
    loaded = _reshare(replace_leaves(unshared, cast), plan.prefix)
    return loaded if state is None else (loaded, state)
