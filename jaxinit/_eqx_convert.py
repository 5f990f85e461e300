"""Torch state dicts in and out of Equinox models (numpy; torch is never imported).

Each Equinox layer with a torch counterpart has an exporter (Equinox layer ->
``{torch name: array}``, written with ``jnp`` so that it also gives the expected
shapes of an abstract layer) and an importer (the inverse). Parameters outside
those layers map one to one, under the same name.
"""

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


def _batch_norm_buffers(module: Any) -> dict[str, np.ndarray]:
    """Torch's fresh running statistics (Equinox keeps its own in eqx.nn.State)."""
    size = module.input_size
    return {
        "running_mean": np.zeros(size, np.float32),
        "running_var": np.ones(size, np.float32),
        "num_batches_tracked": np.zeros((), np.int64),
    }


class _Plan:
    """Which torch tensors a model has: its layers and its loose parameters."""

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

        A Sequential's ``layers`` is left out: torch's names children by index.
        """
        parts = []
        for index, part in enumerate(path):
            owner = self.by_path.get(path[:index])
            if part == "layers" and isinstance(owner, self.eqx.nn.Sequential):
                continue
            parts.append(str(part))
        return ".".join(parts)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def to_torch(model: Any) -> dict[str, np.ndarray]:
    """See ``jaxinit.equinox.to_torch``."""
    plan = _Plan(model)
    state: dict[str, np.ndarray] = {}
    for path, (module, export, _) in plan.layers.items():
        prefix = plan.prefix(path)
        for name, value in export(module).items():
            state[_join(prefix, name)] = np.array(value)
    for prefix, module in plan.batch_norms:
        for name, value in _batch_norm_buffers(module).items():
            state[_join(prefix, name)] = value
    for path in plan.loose:
        state[plan.prefix(path)] = np.array(plan.params[path])
    return state


def from_torch(model: Any, state_dict: Mapping[str, Any]) -> Any:
    """See ``jaxinit.equinox.from_torch``."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "from_torch: state_dict must be a mapping from torch names to arrays, "
            f"got {type(state_dict).__name__}"
        )
    plan = _Plan(model)
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
    for prefix, module in plan.batch_norms:
        used.update(_join(prefix, name) for name in _batch_norm_buffers(module))
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
    return replace_leaves(model, cast)
