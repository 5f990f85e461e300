"""The framework-neutral core of re-initialization by rules.

Flax (``_flax_reinit``) and Equinox (``_eqx_reinit``) are adapters: each walks
its model into ``Leaf`` records (every array of the model, parameter or state,
with every path that reaches it) and the modules that own them, and writes the
new values back. Everything else is decided here, once for every framework:
which rule draws which leaf (priority, shared leaves, stacked layers), the
leaves a wrapper derives from another (weight and spectral norm), the start of
state, and the whole-model contract (``account_for_every_leaf``): after a call,
every leaf is drawn by a rule, derived, started, or carried over from a
concrete input, or the call raises one error listing the others.
"""

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from . import _base
from ._tree import init_tree, leaf_key
from ._typing import Initializer, OutSharding

ParamShapes: TypeAlias = Mapping[str, tuple[int, ...]]
Rules: TypeAlias = Mapping[Any, Any]
Path: TypeAlias = tuple[Any, ...]
Start: TypeAlias = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]

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


@dataclasses.dataclass(eq=False)
class Leaf:
    """One array of a model, as an adapter reports it to the core.

    Attributes:
        paths: every path that reaches the array (a shared parameter has
            several); rules match any of them. The first is its home: where
            the framework keeps it, or for a tied parameter, where it was
            made (nnx: the first in definition order; Equinox: ``Shared``'s
            ``get``).
        value: the array: concrete, traced, or abstract (``ShapeDtypeStruct``).
        param: a trainable parameter (path patterns match these); False for
            state (running statistics, RNG state, caches), which only a module
            rule naming it redraws.
        stacked: how many leading axes hold copies of a layer (``nn.scan``,
            ``nnx.vmap``, ``eqx.filter_vmap``).
        start: the framework's value for an abstract leaf no rule names:
            ``start(key, shape, dtype)`` (e.g. an RNG counter's 0).
        key_from: the path its key is folded from, if not its home (linen
            state: the collection, then the path).
    """

    paths: list[Path]
    value: Any
    param: bool = True
    stacked: int = 0
    start: Start | None = None
    key_from: Path | None = None

    @property
    def key_path(self) -> Path:
        """The path this leaf's key is ``param_key`` of."""
        return self.key_from if self.key_from is not None else self.paths[0]

    @property
    def abstract(self) -> bool:
        return isinstance(self.value, jax.ShapeDtypeStruct)

    @property
    def is_key(self) -> bool:
        return bool(jnp.issubdtype(self.value.dtype, jax.dtypes.prng_key))


@dataclasses.dataclass(frozen=True, eq=False)
class Derived:
    """A leaf a reparametrizing wrapper computes from another leaf.

    ``make(key, source)`` gives the leaf (or, with ``index``, a tuple whose
    element ``index`` is the leaf) from the source's new value, for one copy
    of the layer; ``source`` is a path relative to the rule's module (a
    ``/``-joined string) or an absolute path (a tuple). ``key`` is
    ``param_key(key, (*source_path, "derived"))``, the same for every leaf
    derived from one source, so that coupled leaves (spectral norm's u and v)
    agree. Used by the wrapper rules (weight norm's ``g``, spectral norm's
    power-iteration vectors); applied when the source is drawn in this call or
    the leaf is abstract, and otherwise the leaf is carried over.
    """

    source: str | Path
    make: Callable[[jax.Array, jax.Array], Any]
    index: int | None = None


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


# Stacked copies.


def for_copies(init: Any, count: int) -> Any:
    """``init`` for ``count`` leading copies of the array it was written for.

    A jaxinit layout initializer takes the copies as batch axes
    (``_base.stacked``); jaxinit's other laws read their shape from the
    trailing axes and draw the copies as they are (elementwise laws, the
    ``torch_defaults`` biases and padded embeddings), except ``eye``, which
    is 2-D only. ``eye`` and any initializer that is not jaxinit's (one from
    ``jax.nn.initializers``, a function of your own) draw each copy on its
    own shape (``PerCopy``), copy ``i`` with the key ``fold_in(key, i)`` (the
    copies counted in row-major order over the leading axes).
    """
    if count == 0:
        return init
    if isinstance(init, _base.LayoutInitializer):
        return _base.stacked(init, count)
    if isinstance(init, _base.InitializerBase) and init.name != "eye":
        return init
    return PerCopy(init, count)


@dataclasses.dataclass(frozen=True)
class PerCopy:
    """An initializer of one copy, drawn for each of ``count`` leading copies."""

    init: Callable[..., jax.Array]
    count: int

    def __call__(
        self,
        key: jax.Array,
        shape: Sequence[int],
        dtype: Any = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array:
        if out_sharding is not None:
            return _base.place(lambda key: self(key, shape, dtype), key, out_sharding)
        shape = tuple(shape)
        copies, one = shape[: self.count], shape[self.count :]
        keys = copy_keys(key, math.prod(copies))
        drawn = jax.vmap(lambda k: self.init(k, one, dtype))(keys)
        return jnp.reshape(drawn, shape)


def copy_keys(key: jax.Array, count: int) -> jax.Array:
    """``fold_in(key, i)`` for each copy ``i``: the keys of stacked copies."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(
        jnp.arange(count, dtype=jnp.uint32)
    )


# Planning: which rule claims which leaf.


@dataclasses.dataclass
class _Claim:
    priority: tuple[int, int, int, int, int]
    action: Any  # an initializer, or a Derived
    module_path: Path  # the module a module rule matched at; () for path rules


def _claims(
    modules: Sequence[tuple[Path, Any]],
    leaves: Sequence[Leaf],
    tiers: Sequence[Rules],
) -> dict[int, _Claim]:
    """The winning rule of every leaf a rule names, by leaf index.

    Priority, highest first: path-pattern rules over module rules; among module
    rules, for a shared leaf, the modules on its first path (its home: torch's
    ``b.weight = a.weight`` keeps ``a``'s tensor, made by ``a``'s
    initialization) over the other owners; then the module torch's
    ``model.apply`` visits last (``modules`` are in that order: children
    before their parent, so the outer module wins, as the parent's function
    writes last); then later tiers, then later rules within a tier, then the
    later of two names one rule gives the same leaf. Path patterns match
    parameters only; a module rule names any leaf but an RNG key, parameter or
    state, by its path relative to the module.
    """
    named = {
        path: index
        for index, leaf in enumerate(leaves)
        if not leaf.is_key
        for path in leaf.paths
    }
    under: dict[Path, dict[str, int]] = {}  # module path -> {local name: leaf}
    for path, index in named.items():
        for depth in range(len(path)):
            under.setdefault(tuple(path[:depth]), {})[path_string(path[depth:])] = index
    chosen: dict[int, _Claim] = {}

    def claim(index: int, claim_: _Claim) -> None:
        if index not in chosen or chosen[index].priority <= claim_.priority:
            chosen[index] = claim_

    for tier, rules in enumerate(tiers):
        for order, (matcher, action) in enumerate(rules.items()):
            if isinstance(matcher, str):
                pattern = re.compile(matcher)
                for path, index in named.items():
                    if leaves[index].param and pattern.fullmatch(path_string(path)):
                        priority = (_PATH_RULE, 0, 0, tier, order)
                        claim(index, _Claim(priority, action, ()))
                continue
            for position, (path, module) in enumerate(modules):
                if not isinstance(module, matcher):
                    continue
                module_path = tuple(path)
                local = under.get(module_path, {})
                mapping = (
                    action
                    if isinstance(action, Mapping)
                    else action(
                        module,
                        {
                            name: tuple(leaves[i].value.shape)[leaves[i].stacked :]
                            for name, i in local.items()
                        },
                    )
                )
                depth = len(module_path)
                for name, init in mapping.items():
                    if name in local:
                        index = local[name]
                        home = tuple(leaves[index].paths[0][:depth]) == module_path
                        priority = (_MODULE_RULE, int(home), position, tier, order)
                        claim(index, _Claim(priority, init, module_path))
    return chosen


def _set_stacked(
    modules: Sequence[tuple[Path, Any]],
    leaves: Sequence[Leaf],
    own_ranks: Callable[[Any], Mapping[str, int]],
) -> None:
    """Sets ``stacked`` from the rank of one copy of each known layer's leaves."""
    by_path = {path: leaf for leaf in leaves for path in leaf.paths}
    for module_path, module in modules:
        for name, rank in own_ranks(module).items():
            leaf = by_path.get((*module_path, *name.split("/")))
            if leaf is not None:
                leaf.stacked = max(leaf.stacked, len(leaf.value.shape) - rank, 0)


def _adapted(
    init: Initializer, leaf: Leaf, adapt: Callable[[Initializer], Initializer] | None
) -> Initializer:
    adapted = adapt(init) if adapt is not None else init
    return for_copies(adapted, leaf.stacked)  # type: ignore[no-any-return]


# The whole-model contract.


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a call does to one leaf.

    ``how`` is one of ``"drawn"`` (by ``init``), ``"derived"`` (by ``derived``
    from leaf ``source``), ``"started"`` (by ``init``, the framework's start of
    an abstract leaf) and ``"carried"`` (unchanged).
    """

    how: str
    init: Any = None
    derived: Derived | None = None
    source: int | None = None


def account_for_every_leaf(
    owner: str,
    leaves: Sequence[Leaf],
    chosen: Mapping[int, _Claim],
    starts: Mapping[int, _Claim],
    by_path: Mapping[Path, int],
) -> list[Outcome]:
    """The one place that decides every leaf's fate, or raises.

    A leaf is drawn by the rule that claims it; or derived, when a wrapper
    derives it and its source is drawn in this call or it is abstract; or
    carried over, when it is concrete; or started, when the framework (or
    torch) has a start for it; and otherwise it is listed in the one
    ``ValueError`` the call raises.
    """
    outcomes: dict[int, Outcome] = {}
    derived_from: dict[int, tuple[Derived, int]] = {}
    for index, claim in chosen.items():
        if not isinstance(claim.action, Derived):
            outcomes[index] = Outcome("drawn", init=claim.action)
            continue
        named = claim.action.source
        path = (
            tuple(named)
            if isinstance(named, tuple)
            else (*claim.module_path, *named.split("/"))
        )
        if path in by_path:
            derived_from[index] = (claim.action, by_path[path])
    missing: set[int] = set()
    for index, leaf in enumerate(leaves):
        if index in outcomes or index in derived_from:
            continue
        if not leaf.abstract:
            outcomes[index] = Outcome("carried")
        elif index in starts:
            outcomes[index] = Outcome("started", init=starts[index].action)
        elif leaf.start is not None:
            outcomes[index] = Outcome("started", init=leaf.start)
        else:
            missing.add(index)
    for index, (derived, source) in derived_from.items():
        if source in missing:
            missing.add(index)  # derived from a leaf nothing fills
            continue
        source_outcome = outcomes.get(source)
        redrawn = source_outcome is not None and source_outcome.how != "carried"
        if redrawn or leaves[index].abstract:
            outcomes[index] = Outcome("derived", derived=derived, source=source)
        else:
            outcomes[index] = Outcome("carried")
    if missing:
        raise ValueError(_missing_message(owner, leaves, sorted(missing), derived_from))
    return [outcomes[index] for index in range(len(leaves))]


def _missing_message(
    owner: str,
    leaves: Sequence[Leaf],
    missing: Sequence[int],
    derived_from: Mapping[int, tuple[Derived, int]],
) -> str:
    lines = []
    for index in missing:
        leaf = leaves[index]
        kind = "parameter" if leaf.param else "state"
        aliases = ", ".join(path_string(p) for p in leaf.paths[1:])
        also = f" (also {aliases})" if aliases else ""
        source = derived_from.get(index)
        extra = (
            f", derived from {path_string(leaves[source[1]].key_path)}"
            if source is not None
            else ""
        )
        lines.append(
            f"  {path_string(leaf.paths[0])}{also}: "
            f"{tuple(leaf.value.shape)} {leaf.value.dtype}, {kind}{extra}"
        )
    first = path_string(leaves[missing[0]].paths[0])
    count = (
        f"{len(missing)} abstract leaf"
        if len(missing) == 1
        else (f"{len(missing)} abstract leaves")
    )
    return (
        f"{owner}: cannot fill {count} (jax.ShapeDtypeStruct): no rule draws "
        "them and they have no start of their own:\n"
        + "\n".join(lines)
        + "\nAdd a rule for each: a path pattern for parameters, e.g. "
        f"{{r{first!r}: jaxinit.trunc_normal(std=0.02)}}, or a module rule naming a "
        "state leaf by its path in the module, e.g. {MyModule: {'cache': "
        "jaxinit.zeros()}}; or give the model concrete values for them."
    )


# Drawing.


def fill(
    owner: str,
    key: jax.Array,
    leaves: Sequence[Leaf],
    modules: Sequence[tuple[Path, Any]],
    tiers: Sequence[Rules],
    *,
    starts: Rules | None = None,
    adapt: Callable[[Initializer], Initializer] | None = None,
    place: Callable[[Leaf], jax.sharding.Sharding | None] | None = None,
) -> dict[int, Any]:
    """The new value of every leaf that changes, by index into ``leaves``.

    ``modules`` are ``(path, module)`` in torch's ``model.apply`` order
    (children before parents; a module reached by several paths is listed
    under each). ``tiers`` are the rule tiers, lowest first (a wrapper tier,
    torch's defaults, the caller's rules). ``starts`` are module rules giving
    the framework's start of abstract state no rule names (BatchNorm's running
    statistics). ``adapt`` rewrites each chosen initializer (Equinox's layout);
    ``place`` gives the sharding a new value goes to (None: ``init_tree``'s).
    """
    by_path = {path: index for index, leaf in enumerate(leaves) for path in leaf.paths}
    chosen = _claims(modules, leaves, tiers)
    abstract = [i for i, leaf in enumerate(leaves) if leaf.abstract]
    started: dict[int, _Claim] = {}
    if starts:
        some = _claims(modules, [leaves[i] for i in abstract], [starts])
        started = {abstract[i]: claim for i, claim in some.items()}
    outcomes = account_for_every_leaf(owner, leaves, chosen, started, by_path)

    def where(index: int) -> jax.sharding.Sharding | None:
        return place(leaves[index]) if place is not None else None

    planned: dict[Path, Initializer] = {}
    index_of: dict[Path, int] = {}
    own: dict[int, Start] = {}
    for index, outcome in enumerate(outcomes):
        leaf = leaves[index]
        if outcome.how == "drawn":
            planned[leaf.key_path] = _adapted(outcome.init, leaf, adapt)
        elif outcome.how == "started" and index in started:
            planned[leaf.key_path] = outcome.init
        elif outcome.how == "started":
            own[index] = outcome.init
            continue
        else:
            continue
        index_of[leaf.key_path] = index
    values = {path: leaves[index].value for path, index in index_of.items()}
    shardings = {
        path: sharding
        for path, index in index_of.items()
        if (sharding := where(index)) is not None
    }
    new: dict[int, Any] = {
        index_of[path]: value
        for path, value in draw(key, planned, values, shardings).items()
    }
    for index, start in own.items():
        leaf = leaves[index]
        shape, dtype = tuple(leaf.value.shape), leaf.value.dtype
        new[index] = _put(
            start(leaf_key(key, leaf.key_path), shape, dtype), where(index)
        )
    for index, outcome in enumerate(outcomes):
        if outcome.how == "derived":
            assert outcome.derived is not None and outcome.source is not None
            source = leaves[outcome.source]
            value = new.get(outcome.source, source.value)
            made = _derive(key, outcome.derived, source, value, leaves[index])
            new[index] = _put(made, where(index))
    return new


def _derive(
    key: jax.Array, derived: Derived, source: Leaf, value: Any, target: Leaf
) -> jax.Array:
    """A derived leaf's value from its source's, copy by copy for stacked ones."""
    derived_key = leaf_key(key, (*source.key_path, "derived"))
    count = source.stacked

    def one(key: jax.Array, value: jax.Array) -> jax.Array:
        made = derived.make(key, value)
        out: jax.Array = made if derived.index is None else made[derived.index]
        return out

    def run(key: jax.Array, value: jax.Array) -> jax.Array:
        if count == 0:
            return one(key, value)
        copies = value.shape[:count]
        flat = jnp.reshape(value, (-1, *value.shape[count:]))
        made = jax.vmap(one)(copy_keys(key, flat.shape[0]), flat)
        return jnp.reshape(made, (*copies, *made.shape[1:]))

    made = run(derived_key, value)  # a few small ops: cheaper eager than compiled
    shape = tuple(target.value.shape)
    if made.shape != shape:
        raise ValueError(
            f"the value derived for {path_string(target.key_path)} has shape "
            f"{made.shape}, the model holds {shape}"
        )
    return made.astype(target.value.dtype)


def _put(value: jax.Array, sharding: jax.sharding.Sharding | None) -> jax.Array:
    if sharding is None or isinstance(value, jax.core.Tracer):
        return value
    placed: jax.Array = jax.device_put(value, sharding)
    return placed


def draw(
    key: jax.Array,
    chosen: Mapping[Path, Initializer],
    shapes: Mapping[Path, Any],
    shardings: Mapping[Path, jax.sharding.Sharding] | None = None,
) -> dict[Path, jax.Array]:
    """Draws every planned leaf from its initializer and its path's key.

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


# Starts.


def full(value: Any) -> Start:
    """A start that fills the leaf with ``value`` (a counter's 0, a flag)."""

    def start(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        return jnp.full(shape, value, dtype)

    return start


def rng_key(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """The start of an abstract RNG key leaf: its leaf key, split per element.

    The leaf key of its path (``param_key``), so each RNG stream of the model
    starts from its own key; a key array of shape ``s`` gets
    ``fold_in(leaf key, i)`` at flat position ``i``.
    """
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    if key.dtype != dtype:
        raise ValueError(
            f"an abstract RNG key of dtype {dtype} cannot be started from a key of "
            f"dtype {key.dtype}: pass a key of the same implementation"
        )
    if not shape:
        return key
    return jnp.reshape(copy_keys(key, math.prod(shape)), shape)


# Reparametrizing wrappers.


def spectral_start(
    key: jax.Array, matrix: jax.Array, eps: float = 1e-12
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Torch's start of spectral norm on an ``(out, in)`` matrix: ``(u, v, sigma)``.

    ``torch.nn.utils.parametrizations.spectral_norm``: ``u`` and ``v`` are
    ``N(0, 1)`` vectors (keys ``split(key)``), normalized, then 15 power
    iterations ``u = normalize(W v)``, ``v = normalize(W^T u)``;
    ``sigma = u^T W v``.
    """
    matrix = matrix.astype(jnp.float32)
    key_u, key_v = jax.random.split(key)

    def normalize(x: jax.Array) -> jax.Array:
        return x / jnp.maximum(jnp.linalg.norm(x), eps)

    u = normalize(jax.random.normal(key_u, matrix.shape[:1]))
    v = normalize(jax.random.normal(key_v, matrix.shape[1:]))
    for _ in range(15):
        u = normalize(matrix @ v)
        v = normalize(matrix.T @ u)
    return u, v, u @ matrix @ v


# Placement.


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
