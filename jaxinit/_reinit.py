"""The framework-neutral core of re-initialization by rules.

Flax (``_flax_reinit``) and Equinox (``_eqx_reinit``) are thin adapters: each
lists its modules and parameters, says the rank of one copy of each layer's
parameters, and writes the drawn values back. Rule checking, planning (rule
priority, stacked layers), keys, placement and drawing live here.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import jax
import numpy as np

from . import _base
from ._tree import init_tree, leaf_key
from ._typing import Initializer

ParamShapes: TypeAlias = Mapping[str, tuple[int, ...]]
ModuleAction: TypeAlias = (
    Mapping[str, Initializer] | Callable[[Any, ParamShapes], Mapping[str, Initializer]]
)
Rules: TypeAlias = Mapping[Any, Any]
Path: TypeAlias = tuple[Any, ...]

OwnRanks: TypeAlias = Callable[[Any], Mapping[str, int]]

_PATH_RULE, _MODULE_RULE = 1, 0


def path_string(path: Iterable[Any]) -> str:
    """A parameter path as rules and keys see it: names joined by ``/``."""
    return "/".join(str(part) for part in path)


def param_key(key: jax.Array, path: Iterable[Any]) -> jax.Array:
    """The key of the parameter at ``path``: ``leaf_key`` of the path string.

    It depends on the path alone, so adding or removing other parameters leaves
    this one's value unchanged. It is ``init_tree``'s key for the same path.
    """
    return leaf_key(key, tuple(path))


def check_rules(owner: str, rules: Rules) -> None:
    if not isinstance(rules, Mapping):
        raise TypeError(
            f"{owner}: rules must be a mapping from a module type or a path pattern "
            f"to initializers, got {type(rules).__name__}"
        )
    for matcher, action in rules.items():
        if isinstance(matcher, str):
            if not callable(action):
                raise TypeError(
                    f"{owner}: the rule for path pattern {matcher!r} must be an "
                    f"initializer, got {action!r}"
                )
            re.compile(matcher)
            continue
        types = matcher if isinstance(matcher, tuple) else (matcher,)
        if not types or not all(isinstance(item, type) for item in types):
            raise TypeError(
                f"{owner}: a rule key must be a module type, a tuple of types or a "
                f"path pattern (str), got {matcher!r}"
            )
        if not (isinstance(action, Mapping) or callable(action)):
            raise TypeError(
                f"{owner}: the rule for {matcher!r} must map parameter names to "
                f"initializers, or be a function (module, shapes) -> such a mapping"
            )


def stacked_axes(
    modules: Sequence[tuple[Path, Any]],
    shapes: Mapping[Path, tuple[int, ...]],
    own_ranks: OwnRanks,
) -> dict[Path, int]:
    """How many leading axes each parameter has beyond its layer's own rank.

    ``nnx.vmap``, linen ``nn.scan``/``nn.vmap`` and ``eqx.filter_vmap`` stack
    copies of a layer on leading axes; those are batch axes, which no fan may
    count.
    """
    counts: dict[Path, int] = {}
    for module_path, module in modules:
        for name, rank in own_ranks(module).items():
            path = (*module_path, name)
            if path in shapes:
                counts[path] = max(len(shapes[path]) - rank, 0)
    return counts


def plan(
    modules: Sequence[tuple[Path, Any]],
    shapes: Mapping[Path, tuple[int, ...]],
    tiers: Sequence[Rules],
    *,
    own_ranks: OwnRanks,
    adapt: Callable[[Initializer], Initializer] | None = None,
) -> dict[Path, Initializer]:
    """Which initializer each parameter gets, or none (left untouched).

    Priority, highest first: path-pattern rules over module rules; among module
    rules the outer module over the inner one (torch's ``apply`` visits children
    first, so the parent's function writes last); then later tiers, then later
    rules within a tier.

    Rules describe one copy of a layer, as a Flax ``kernel_init`` does: a
    function rule sees each parameter's shape without the leading axes of
    stacked copies (``nnx.vmap``, ``nn.scan``), and each chosen initializer
    takes those axes as batch axes. ``own_ranks`` gives a framework's layer
    ranks; ``adapt`` rewrites each chosen initializer before that (Equinox reads
    layout initializers in torch layout).
    """
    chosen: dict[Path, tuple[tuple[int, int, int, int], Initializer]] = {}
    stacked = stacked_axes(modules, shapes, own_ranks)

    def claim(
        path: Path, priority: tuple[int, int, int, int], init: Initializer
    ) -> None:
        if path not in chosen or chosen[path][0] <= priority:
            adapted = adapt(init) if adapt is not None else init
            chosen[path] = (priority, _base.stacked(adapted, stacked.get(path, 0)))

    for tier, rules in enumerate(tiers):
        for index, (matcher, action) in enumerate(rules.items()):
            if isinstance(matcher, str):
                pattern = re.compile(matcher)
                for path in shapes:
                    if pattern.fullmatch(path_string(path)):
                        claim(path, (_PATH_RULE, 0, tier, index), action)
                continue
            for module_path, module in modules:
                if not isinstance(module, matcher):
                    continue
                depth = len(module_path)
                local = {
                    path_string(path[depth:]): path
                    for path in shapes
                    if len(path) > depth and tuple(path[:depth]) == tuple(module_path)
                }
                if isinstance(action, Mapping):
                    mapping = action
                else:
                    mapping = action(
                        module,
                        {
                            name: shapes[p][stacked.get(p, 0) :]
                            for name, p in local.items()
                        },
                    )
                for name, init in mapping.items():
                    if name in local:
                        claim(local[name], (_MODULE_RULE, -depth, tier, index), init)
    return {path: init for path, (_, init) in chosen.items()}


def draw(
    key: jax.Array,
    chosen: Mapping[Path, Initializer],
    shapes: Mapping[Path, Any],
    shardings: Mapping[Path, jax.sharding.Sharding] | None = None,
) -> dict[Path, jax.Array]:
    """Draws every planned parameter from its initializer and its path's key.

    Through ``init_tree``: its compiled programs do not depend on the model, so
    a first call costs a few small compiles rather than one per parameter. A
    path in ``shardings`` is drawn straight into that sharding, each device
    making only its own shards; the others are placed as ``init_tree`` places.
    """
    spec = {
        path: (init, tuple(shapes[path].shape), np.dtype(shapes[path].dtype))
        for path, init in chosen.items()
    }
    shardings = shardings or {}
    placed: dict[Any, jax.sharding.Sharding | None] = {
        path: shardings[path] for path in chosen if path in shardings
    }
    if not placed:
        return init_tree(key, spec)
    return init_tree(key, spec, out_shardings=placed)


def _default_device() -> Any:
    device = getattr(jax.config, "jax_default_device", None)
    if isinstance(device, jax.Device):
        return device
    return jax.devices(device)[0] if isinstance(device, str) else jax.devices()[0]


def current_mesh(owner: str, path: Path, wanted: Any) -> jax.sharding.Mesh:
    """The concrete mesh of the context, for a sharding laid out on ``wanted``.

    ``wanted`` is an abstract mesh (from ``eval_shape`` under ``jax.set_mesh``)
    that the context's mesh must match, or None (a linen box without a mesh).
    """
    mesh = jax.sharding.get_mesh()
    if mesh.empty:
        raise ValueError(
            f"{owner}: the parameter {path_string(path)!r} is sharded over a mesh "
            f"with axes {_axes(wanted)} that is not concrete here; call {owner} "
            "under jax.set_mesh(mesh) with a concrete mesh"
        )
    if wanted is not None and mesh.abstract_mesh != wanted:
        raise ValueError(
            f"{owner}: the parameter {path_string(path)!r} is sharded over a mesh "
            f"with axes {_axes(wanted)}, but the current mesh has axes "
            f"{_axes(mesh)}"
        )
    return mesh


def _axes(mesh: Any) -> str:
    if mesh is None:
        return "named by its partitioning"
    return str(dict(zip(mesh.axis_names, mesh.axis_sizes, strict=True)))


def placement(owner: str, path: Path, value: Any) -> jax.sharding.Sharding | None:
    """Where the new value of the parameter at ``path`` goes: where it is.

    A concrete array keeps its ``.sharding``; an abstract one
    (``jax.ShapeDtypeStruct``) its ``.sharding``, an abstract mesh made concrete
    by the current one, and without a sharding is replicated on the current
    mesh (as linen's and nnx's own init under ``jax.set_mesh``). None
    (``init_tree``'s placement) for an array on the default device, a traced
    value (the enclosing ``jit`` places its outputs) and an abstract value
    without a sharding outside any mesh.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    sharding = getattr(value, "sharding", None)
    if sharding is None and isinstance(value, jax.ShapeDtypeStruct):
        mesh = jax.sharding.get_mesh()
        if not mesh.empty:
            return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())  # type: ignore[no-untyped-call]
    if isinstance(sharding, jax.sharding.SingleDeviceSharding):
        return None if sharding.device_set == {_default_device()} else sharding
    if isinstance(sharding, jax.sharding.NamedSharding) and isinstance(
        sharding.mesh, jax.sharding.AbstractMesh
    ):
        mesh = current_mesh(owner, path, sharding.mesh)
        return jax.sharding.NamedSharding(mesh, sharding.spec)
    return sharding if isinstance(sharding, jax.sharding.Sharding) else None
