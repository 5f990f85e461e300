"""Whole-model initialization: ``init_tree(key, {path: (initializer, shape, dtype)})``.

Why not one ``jax.jit`` over the model: XLA compiles the random-number code once
per parameter (~80 ms a leaf on CPU), and one compiled program per distinct
(initializer, shape) still costs ~0.5 s each. Here each leaf whose initializer
has a law the shape-independent programs draw (``InitializerBase.law``:
uniform, normal, xavier_*, kaiming_*, trunc_normal with far bounds, constants)
goes to the draw engine (``_engine``), with its leaf key's words derived on the
host (``_keys``); the first call compiles one small program per law and dtype,
shared with eager calls. Any other leaf (orthogonal, sparse, eye, dirac, a
non-jaxinit initializer, float64, a non-threefry key, a traced key) is drawn
by its own call.

Every leaf equals ``initializer(leaf_key(key, path), shape, dtype)`` bit for
bit (``_programs`` says why), sharded or not: with ``out_shardings``, each
device draws only its own shards, and nothing holds a whole sharded leaf.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from jax.typing import DTypeLike

from . import _bits, _checks, _engine, _programs
from ._assembly import Leaf
from ._base import InitializerBase

# leaf_key re-exported: the keys init_tree gives, for its callers.
from ._keys import Path, PathT, leaf_key as leaf_key, leaf_key_words, path_name

LeafSpec: TypeAlias = tuple[Callable[..., jax.Array], Sequence[int], DTypeLike | None]


def init_tree(
    key: jax.Array,
    spec: Mapping[PathT, LeafSpec],
    *,
    out_shardings: Mapping[Path, jax.sharding.Sharding | PartitionSpec | None]
    | None = None,
) -> dict[PathT, jax.Array]:
    """Initializes every leaf of a model at once: ``{path: array}``.

    A framework-free whole-model entry point. Each leaf is drawn with its own
    key, ``leaf_key(key, path)``, so its values depend only on the key, its path,
    its initializer, shape and dtype: ``init_tree(key, spec)[path]`` equals
    ``initializer(leaf_key(key, path), shape, dtype)`` bit for bit. The
    difference is speed: leaves that share a law are drawn together by compiled
    programs that do not depend on the shapes, so the first call compiles a
    handful of small programs instead of one per parameter.

    With ``out_shardings``, each device draws only its own shards of a sharded
    leaf (with the same compiled programs, one for all devices), and no device
    ever holds a whole sharded leaf. Elementwise laws give the unsharded values
    bit for bit; other leaves are the initializer's own call with
    ``out_sharding=`` (``jax.jit(..., out_shardings=)`` for initializers that
    are not jaxinit's).

    Args:
        key: a JAX PRNG key.
        spec: ``{path: (initializer, shape, dtype)}``; a path is a string or a
            tuple of parts (hashed by name); ``dtype`` None means float32 (or
            the initializer's default dtype).
        out_shardings: ``{path: sharding}``, a ``jax.sharding.Sharding`` (or a
            ``PartitionSpec`` under ``jax.set_mesh``) for some paths of
            ``spec`` (matched by name); the others, and paths mapped to None,
            go to the default device.

    Returns:
        A dict with the same paths, each mapped to an array placed on its
        sharding, or on the default device.

    Raises:
        ValueError: a path of ``out_shardings`` is not in ``spec``, or its
            sharding cannot hold the leaf (an axis that the mesh axes do not
            divide, a partition spec longer than the rank).
        TypeError: ``out_shardings`` is not a mapping of shardings.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit
        >>> from jaxinit import init_tree, leaf_key
        >>> key = jax.random.key(0)
        >>> spec = {
        ...     "dense/kernel": (jaxinit.kaiming_uniform(), (64, 32), None),
        ...     "dense/bias": (jaxinit.zeros(), (32,), jnp.bfloat16),
        ... }
        >>> params = init_tree(key, spec)
        >>> params["dense/kernel"].shape, params["dense/bias"].dtype
        ((64, 32), dtype(bfloat16))
        >>> own = jaxinit.kaiming_uniform()(leaf_key(key, "dense/kernel"), (64, 32))
        >>> bool((params["dense/kernel"] == own).all())
        True
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> columns = jax.sharding.NamedSharding(mesh, jax.P(None, "model"))
        >>> sharded = init_tree(key, spec, out_shardings={"dense/kernel": columns})
        >>> sharded["dense/kernel"].sharding.spec
        P(None, 'model')
        >>> bool((sharded["dense/kernel"] == own).all())
        True
    """
    key = _checks.key("init_tree", key)
    shardings = _resolve_shardings(spec, out_shardings)
    batched = _can_batch(key)
    out: dict[Path, jax.Array] = {}
    drawn: list[tuple[Path, tuple[int, ...], np.dtype, _programs.RowPlan]] = []
    mesh = _engine.lane_mesh(shardings)
    for path, (init, shape, dtype) in spec.items():
        sharding = shardings.get(path)
        leaf = _prepare(init, shape, dtype) if batched else None
        if sharding is not None:
            dims = leaf[0] if leaf is not None else _checks.shape("init_tree", shape)
            name = f"out_shardings[{path!r}]"
            _checks.sharding_fits("init_tree", name, dims, sharding)
        if leaf is None:
            out[path] = _own_call(init, leaf_key(key, path), shape, dtype, sharding)
        else:
            drawn.append((path, *leaf))
            # XLA compiles this leaf's program while the others are prepared.
            _engine.compile_ahead(leaf[1], leaf[2], None if sharding is None else mesh)
    if drawn:
        words = leaf_key_words(key, [path for path, *_ in drawn])
        leaves = [Leaf(*leaf, w) for leaf, w in zip(drawn, words, strict=True)]
        out.update(_engine.draw(leaves, shardings))
    return {path: out[path] for path in spec}


def _can_batch(key: jax.Array) -> bool:
    """Whether the engine applies: a concrete threefry key, outside a trace.

    Under an outer ``jax.jit`` (or ``eval_shape``) every leaf is drawn by its own
    call, inside the caller's program: the engine reads the key and the draws
    on the host. A key captured from outside the trace is concrete, but any
    operation on it is staged into the trace, so its key data come out traced.
    """
    if isinstance(key, jax.core.Tracer):
        return False
    if isinstance(jax.random.key_data(key), jax.core.Tracer):
        return False
    return _bits.is_threefry(key)


def _resolve_shardings(
    spec: Mapping[PathT, LeafSpec],
    out_shardings: Mapping[Path, jax.sharding.Sharding | PartitionSpec | None] | None,
) -> dict[Path, jax.sharding.Sharding]:
    """``out_shardings`` keyed by the paths of ``spec``, PartitionSpecs resolved."""
    if out_shardings is None:
        return {}
    if not isinstance(out_shardings, Mapping):
        raise TypeError(
            "init_tree: out_shardings must be a mapping {path: jax.sharding."
            f"Sharding}}, got {type(out_shardings).__name__}"
        )
    by_name = {path_name(path): path for path in spec}
    resolved: dict[Path, jax.sharding.Sharding] = {}
    for path, sharding in out_shardings.items():
        target = path if path in spec else by_name.get(path_name(path))
        if target is None:
            raise ValueError(
                f"init_tree: out_shardings names the path {path!r}, which is not "
                "in spec; name only paths of spec"
            )
        if sharding is None:
            continue
        if isinstance(sharding, PartitionSpec):
            mesh = jax.sharding.get_mesh()
            if mesh.empty:
                raise ValueError(
                    f"init_tree: out_shardings[{path!r}] is a PartitionSpec but "
                    "no mesh is set; pass a NamedSharding or call under "
                    "jax.set_mesh(mesh)"
                )
            sharding = NamedSharding(mesh, sharding)
        if not isinstance(sharding, jax.sharding.Sharding):
            raise TypeError(
                f"init_tree: out_shardings[{path!r}] must be a jax.sharding."
                f"Sharding or a PartitionSpec, got {type(sharding).__name__}"
            )
        resolved[target] = sharding
    return resolved


def _own_call(
    init: Callable[..., jax.Array],
    key: jax.Array,
    shape: Sequence[int],
    dtype: DTypeLike | None,
    sharding: jax.sharding.Sharding | None,
) -> jax.Array:
    """A leaf the batched programs do not draw: the initializer's own call."""
    if sharding is None:
        return init(key, shape, dtype)
    if isinstance(init, InitializerBase) and isinstance(sharding, NamedSharding):
        return init(key, shape, dtype, out_sharding=sharding)
    placed: jax.Array = jax.jit(
        lambda key: init(key, shape, dtype), out_shardings=sharding
    )(key)
    return placed


def _prepare(
    init: Callable[..., jax.Array],
    shape: Sequence[int],
    dtype: DTypeLike | None,
) -> tuple[tuple[int, ...], np.dtype, _programs.RowPlan] | None:
    """A leaf validated as ``init.__call__`` would, with its row plan.

    None when the engine does not draw it.
    """
    if not isinstance(init, InitializerBase):
        return None
    dims = _checks.shape(init.name, shape)
    requested = dtype if dtype is not None else getattr(init, "dtype", None)
    resolved = _checks.dtype(init.name, requested, exact_ok=not init.needs_key)
    init.check_shape(dims)
    if math.prod(dims) == 0 or math.prod(dims) >= 2**32:
        return None  # the initializer's call warns, or counters need 64 bits
    plan = _programs.row_plan(init.law(dims, resolved), resolved)
    return None if plan is None else (dims, resolved, plan)
