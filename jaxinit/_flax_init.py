"""``jaxinit.flax.init``: linen's ``module.init``, without a compile per parameter.

``jax.jit(module.init)`` compiles the random-number code of every parameter into
one program (~80 ms a leaf on CPU). Here:

1. One abstract ``module.init`` (``jax.eval_shape``: no compute) gives the
   variables' structure, shapes and dtypes, while ``Scope.param`` is wrapped to
   record, per parameter path, the initializer and arguments the module passes.
2. Parameters whose initializer is a jaxinit one (also inside
   ``nn.with_partitioning``) go to ``init_tree``: shape-independent programs,
   key ``leaf_key(key, path)``.
3. Every other parameter is drawn by its own initializer, called with
   ``leaf_key(key, path)`` and the recorded arguments, all in one jit.
4. When that replay cannot stand in for the module (other collections such as
   ``batch_stats`` or caches, parameters created under lifted transforms such as
   ``nn.scan``, initializers that read traced inputs), the module's own code runs
   instead: ``module.init`` in one jit, whose ``Scope.param`` hands out the
   parameters drawn so far and lets the module make the rest as it always does
   (those parameters then use the module's ``params`` stream of ``key``).

Flax is imported inside the functions, so importing this module never needs it.
"""

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from ._base import InitializerBase
from ._flax_reinit import linen_placement
from ._tree import init_tree, leaf_key

Path = tuple[str, ...]


class _Call(NamedTuple):
    init_fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@contextlib.contextmanager
def _params_hook(
    prefilled: Mapping[Path, Any] | None = None,
) -> Iterator[dict[Path, _Call]]:
    """Wraps linen's ``Scope.param`` (not thread-safe).

    Records the call that creates each parameter, by path; a parameter in
    ``prefilled`` takes that value instead of calling its initializer.
    """
    from flax.core import meta, scope as flax_scope

    calls: dict[Path, _Call] = {}
    original = flax_scope.Scope.param

    def param(
        self: Any,
        name: str,
        init_fn: Callable[..., Any],
        *init_args: Any,
        unbox: bool = True,
        **init_kwargs: Any,
    ) -> Any:
        if not self.has_variable("params", name):
            path = (*(str(part) for part in self.path), name)
            calls.setdefault(path, _Call(init_fn, init_args, init_kwargs))
            if prefilled is not None and path in prefilled:
                self.reserve(name, "params")
                value = prefilled[path]
                self.put_variable("params", name, value)
                return meta.unbox(value) if unbox else value
        return original(self, name, init_fn, *init_args, unbox=unbox, **init_kwargs)

    flax_scope.Scope.param = param  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        flax_scope.Scope.param = original  # type: ignore[method-assign]


def _jaxinit_init(call: _Call, abstract: Any, boxed: bool) -> InitializerBase | None:
    """The jaxinit initializer behind a recorded call, if init_tree can draw it."""
    init_fn: Any = call.init_fn
    if boxed:
        init_fn = getattr(init_fn, "__wrapped__", None)  # nn.with_partitioning
    if not isinstance(init_fn, InitializerBase) or call.kwargs:
        return None
    if not call.args or tuple(call.args[0]) != abstract.shape:
        return None  # e.g. created under nn.scan: the recorded shape is a slice
    if len(call.args) > 2:
        return None
    requested = call.args[1] if len(call.args) == 2 else None
    if requested is not None and np.dtype(requested) != abstract.dtype:
        return None
    return init_fn


def _has_tracer(tree: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def init(
    module: Any,
    key: jax.Array,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    method: Any,
) -> Any:
    """See ``jaxinit.flax.init``."""
    from flax import traverse_util
    from flax.core import FrozenDict, freeze, meta

    def abstract_init(key: jax.Array) -> Any:
        return module.init(key, *args, method=method, **kwargs)

    with _params_hook() as calls:
        abstract = jax.eval_shape(abstract_init, key)
    flatten: Any = traverse_util.flatten_dict  # untyped in flax
    unflatten: Any = traverse_util.unflatten_dict
    shapes = {
        tuple(str(p) for p in path): leaf
        for path, leaf in flatten(dict(abstract.get("params", {}))).items()
    }
    spec: dict[Path, tuple[InitializerBase, tuple[int, ...], np.dtype]] = {}
    others: dict[Path, _Call] = {}
    for path, leaf in shapes.items():
        call = calls.get(path)
        boxed = isinstance(leaf, meta.AxisMetadata)
        value = leaf.unbox(apply_constraint=False) if boxed else leaf
        drawn_by = None if call is None else _jaxinit_init(call, value, boxed)
        if drawn_by is not None:
            spec[path] = (drawn_by, value.shape, value.dtype)
        elif call is not None:
            others[path] = call
    params: dict[Path, Any] = dict(
        init_tree(key, spec, out_shardings=_box_shardings(shapes, spec) or None)
    )
    for path, value in params.items():
        leaf = shapes[path]
        if isinstance(leaf, meta.AxisMetadata):
            params[path] = leaf.replace_boxed(value)
    replayable = set(abstract) <= {"params"} and len(params) + len(others) == len(
        shapes
    )
    if replayable and not _has_tracer([tuple(c) for c in others.values()]):
        try:
            params.update(_replay(key, others, shapes))
        except (jax.errors.UnexpectedTracerError, _Mismatch):
            replayable = False  # e.g. made under nn.scan, or reads a traced input
    else:
        replayable = False
    if replayable:
        variables: Any = {"params": unflatten(params)}
    else:
        variables = _apply(module, key, params, args, kwargs, method)
    if isinstance(abstract, FrozenDict):
        return freeze(variables)
    return variables


def _box_shardings(
    abstract: Mapping[Path, Any], spec: Mapping[Path, Any]
) -> dict[Any, jax.sharding.Sharding | None]:
    """Where each boxed parameter goes: by its names, as ``torch_init`` places it.

    Only under a mesh (the current one, or the box's own): outside any mesh,
    ``module.init`` leaves boxed values unplaced too.
    """
    from flax.core import meta

    shardings: dict[Any, jax.sharding.Sharding | None] = {}
    for path in spec:
        leaf = abstract[path]
        if isinstance(leaf, meta.Partitioned) and (
            leaf.mesh is not None or not jax.sharding.get_mesh().empty
        ):
            where = linen_placement("init", path, leaf)
            if where is not None:
                shardings[path] = where
    return shardings


class _Mismatch(Exception):
    """A recorded call does not make the parameter module.init made."""


def _replay(
    key: jax.Array, calls: Mapping[Path, _Call], abstract: Mapping[Path, Any]
) -> dict[Path, Any]:
    """Every recorded call with its path's key, in one jit."""
    if not calls:
        return {}

    def draw(key: jax.Array) -> dict[Path, Any]:
        return {
            path: call.init_fn(leaf_key(key, path), *call.args, **call.kwargs)
            for path, call in calls.items()
        }

    made = jax.eval_shape(draw, key)
    for path, value in made.items():
        same_tree = str(jax.tree.structure(value)) == str(
            jax.tree.structure(abstract[path])
        )
        if not same_tree or any(
            (a.shape, a.dtype) != (b.shape, b.dtype)
            for a, b in zip(
                jax.tree.leaves(value), jax.tree.leaves(abstract[path]), strict=True
            )
        ):
            raise _Mismatch(path)
    drawn: dict[Path, Any] = jax.jit(draw)(key)
    return drawn


def _apply(
    module: Any,
    key: jax.Array,
    params: Mapping[Path, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    method: Any,
) -> Any:
    """The module's own init, in one jit, taking the parameters already drawn."""

    def run(params: Mapping[Path, Any], key: jax.Array) -> Any:
        with _params_hook(params):
            return module.init(key, *args, method=method, **kwargs)

    return jax.jit(run)(params, key)
