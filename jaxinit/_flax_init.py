"""``jaxinit.flax.init``: linen's ``module.init``, without a compile per parameter.

``jax.jit(module.init)`` compiles the random-number code of every parameter into
one program (~80 ms a leaf on CPU). Here:

1. One abstract ``module.init`` (``jax.eval_shape``: no compute) gives the
   variables' structure, shapes and dtypes, while ``Scope.param`` records, per
   parameter path, the initializer and arguments the module passes and the
   value it stored. A parameter whose final value is that stored value (the
   same object, compared inside the trace) is the initializer's output.
   Parameters that lifted transforms (``nn.remat``, ``nn.jit``) carried out of
   an inner trace are checked again: the module traced with those parameters
   as inputs must hand them back untouched (``_forwarded``).
2. Parameters whose initializer is a jaxinit one (also inside
   ``nn.with_partitioning``) go to ``init_tree``: shape-independent programs,
   key ``leaf_key(key, path)``.
3. Every other such parameter is drawn by its own initializer, called with
   ``leaf_key(key, path)`` and the recorded arguments, all in one jit.
4. When that replay cannot stand in for the module (other collections such as
   ``batch_stats`` or caches, parameters the module changed after creating them
   (``put_variable``, ``nn.map_variables``), parameters created under lifted
   transforms such as ``nn.scan``, initializers that read traced inputs), the
   module's own code runs instead: ``module.init`` in one jit, whose
   ``Scope.param`` hands out the parameters drawn so far and lets the module
   make the rest as it always does (those parameters then use the module's
   ``params`` stream).

``Scope.param`` is wrapped once, for the process; the wrapper calls linen's own
unless a ``jaxinit.flax.init`` in the same context (thread, or asyncio task)
has set a hook, so other threads building models meanwhile are unaffected.
Flax is imported inside the functions, so importing this module never needs it.
"""

import contextlib
import contextvars
import functools
import threading
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


class _Hook:
    """What one ``jaxinit.flax.init`` step wants from ``Scope.param``.

    Records each new parameter's call and the value it stored, by path; a
    parameter in ``prefilled`` takes that value instead of calling its
    initializer.
    """

    def __init__(self, prefilled: Mapping[Path, Any] | None = None) -> None:
        self.prefilled = prefilled
        self.calls: dict[Path, list[_Call]] = {}
        self.stored: dict[Path, list[Any]] = {}  # what each call stored, same order

    def param(
        self,
        original: Callable[..., Any],
        scope: Any,
        name: str,
        init_fn: Callable[..., Any],
        init_args: tuple[Any, ...],
        unbox: bool,
        init_kwargs: dict[str, Any],
    ) -> Any:
        from flax.core import meta

        if scope.has_variable("params", name):
            return original(
                scope, name, init_fn, *init_args, unbox=unbox, **init_kwargs
            )
        path = (*(str(part) for part in scope.path), name)
        if self.prefilled is not None and path in self.prefilled:
            scope.reserve(name, "params")
            value = self.prefilled[path]
            scope.put_variable("params", name, value)
            return meta.unbox(value) if unbox else value
        out = original(scope, name, init_fn, *init_args, unbox=unbox, **init_kwargs)
        self.calls.setdefault(path, []).append(_Call(init_fn, init_args, init_kwargs))
        self.stored.setdefault(path, []).append(scope.get_variable("params", name))
        return out

    def origins(self, params: Mapping[Path, Any]) -> dict[Path, _Call]:
        """The call whose output each stored parameter is, where identity shows it.

        Must run inside the trace that made ``params``: the abstract values
        that come out of it are new objects. Drops the recorded values, which
        belong to that trace.
        """
        stored, self.stored = self.stored, {}
        found: dict[Path, _Call] = {}
        for path, final in params.items():
            leaves = jax.tree.leaves(final)
            made_by = zip(self.calls.get(path, ()), stored.get(path, ()), strict=True)
            for call, made in made_by:
                made_leaves = jax.tree.leaves(made)
                if len(made_leaves) == len(leaves) and all(
                    a is b for a, b in zip(made_leaves, leaves, strict=True)
                ):
                    found[path] = call
                    break
        return found


_HOOK: contextvars.ContextVar[_Hook | None] = contextvars.ContextVar(
    "jaxinit_flax_param_hook", default=None
)
_INSTALL = threading.Lock()


def _install() -> None:
    """Wraps linen's ``Scope.param`` once: it dispatches to the context's hook."""
    from flax.core import scope as flax_scope

    with _INSTALL:
        original = flax_scope.Scope.param
        if getattr(original, "_jaxinit_dispatch", False):
            return

        @functools.wraps(original)
        def param(
            self: Any,
            name: str,
            init_fn: Callable[..., Any],
            *init_args: Any,
            unbox: bool = True,
            **init_kwargs: Any,
        ) -> Any:
            hook = _HOOK.get()
            if hook is None:
                return original(
                    self, name, init_fn, *init_args, unbox=unbox, **init_kwargs
                )
            return hook.param(
                original, self, name, init_fn, init_args, unbox, init_kwargs
            )

        param._jaxinit_dispatch = True  # type: ignore[attr-defined]
        flax_scope.Scope.param = param  # type: ignore[method-assign]


@contextlib.contextmanager
def _hooked(hook: _Hook) -> Iterator[_Hook]:
    """``hook`` serves ``Scope.param`` in this context only, for the block."""
    _install()
    token = _HOOK.set(hook)
    try:
        yield hook
    finally:
        _HOOK.reset(token)


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


def _params_key(rngs: Any) -> jax.Array | None:
    """The key of the ``params`` stream: ``rngs`` itself, or ``rngs["params"]``."""
    if isinstance(rngs, Mapping):
        key: jax.Array | None = rngs.get("params")
        return key
    return rngs  # type: ignore[no-any-return]


def _flat(params: Any) -> dict[Path, Any]:
    """A linen collection as ``{path: leaf}``, boxes kept whole."""
    from flax import traverse_util

    flatten: Any = traverse_util.flatten_dict  # untyped in flax
    return {
        tuple(str(p) for p in path): leaf
        for path, leaf in flatten(dict(params)).items()
    }


def _traced() -> bool:
    """Whether a trace (``jax.jit``, ``eval_shape``) is active: values are staged."""
    return isinstance(jax.numpy.zeros(()), jax.core.Tracer)


def init(
    module: Any,
    rngs: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    method: Any,
) -> Any:
    """See ``jaxinit.flax.init``."""
    from flax import traverse_util
    from flax.core import FrozenDict, freeze, meta

    unflatten: Any = traverse_util.unflatten_dict  # untyped in flax
    hook = _Hook()
    origins: dict[Path, _Call] = {}

    def abstract_init(rngs: Any) -> Any:
        variables = module.init(rngs, *args, method=method, **kwargs)
        origins.update(hook.origins(_flat(variables.get("params", {}))))
        return variables

    with _hooked(hook):
        abstract = jax.eval_shape(abstract_init, rngs)
    shapes = _flat(abstract.get("params", {}))
    unsure = {
        path: calls[0]
        for path in shapes.keys() - origins.keys()
        if len(calls := hook.calls.get(path, [])) == 1
    }
    if unsure:
        kept = _forwarded(module, rngs, args, kwargs, method, shapes, sorted(unsure))
        origins.update((path, unsure[path]) for path in kept)
    key = _params_key(rngs)
    if key is None and shapes:  # module.init has failed before, in flax's words
        raise ValueError("jaxinit.flax.init: the rng dict has no 'params' key")
    spec: dict[Path, tuple[InitializerBase, tuple[int, ...], np.dtype]] = {}
    others: dict[Path, _Call] = {}
    for path, leaf in shapes.items():
        call = origins.get(path)
        if call is None:
            continue  # made by the module's own code
        boxed = isinstance(leaf, meta.AxisMetadata)
        value = leaf.unbox(apply_constraint=False) if boxed else leaf
        drawn_by = _jaxinit_init(call, value, boxed)
        if drawn_by is not None:
            spec[path] = (drawn_by, value.shape, value.dtype)
        else:
            others[path] = call
    params: dict[Path, Any] = {}
    if spec and key is not None:
        shardings = None if _traced() else _box_shardings(shapes, spec)
        params.update(init_tree(key, spec, out_shardings=shardings or None))
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
            replayable = False  # e.g. reads a traced input
    else:
        replayable = False
    if replayable:
        variables: Any = {"params": unflatten(params)} if "params" in abstract else {}
    else:
        variables = _apply(module, rngs, params, args, kwargs, method)
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
    key: jax.Array | None, calls: Mapping[Path, _Call], abstract: Mapping[Path, Any]
) -> dict[Path, Any]:
    """Every recorded call with its path's key, in one jit."""
    if not calls or key is None:  # None: no parameters (init raised otherwise)
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
    rngs: Any,
    params: Mapping[Path, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    method: Any,
) -> Any:
    """The module's own init, in one jit, taking the parameters already drawn."""

    def run(params: Mapping[Path, Any], rngs: Any) -> Any:
        with _hooked(_Hook(prefilled=params)):
            return module.init(rngs, *args, method=method, **kwargs)

    return jax.jit(run)(params, rngs)


# Primitives that run a sub-jaxpr whose inputs and outputs are the equation's
# own, one for one: an output the sub-jaxpr forwards is the equation's input.
_CALLS = frozenset(
    {
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "remat",
        "remat2",
        "checkpoint",
        "custom_jvp_call",
        "custom_vjp_call",
        "custom_vjp_call_jaxpr",
    }
)


def _sources(jaxpr: Any) -> list[int | None]:
    """For each output of ``jaxpr``, the input it is unchanged, if any."""
    from jax.extend import core

    inputs = {var: index for index, var in enumerate(jaxpr.invars)}
    passed: dict[Any, Any] = {}  # an equation's output -> its input, unchanged
    for eqn in jaxpr.eqns:
        if eqn.primitive.name not in _CALLS:
            continue
        inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
        inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's own jaxpr
        if inner is None or len(inner.invars) != len(eqn.invars):
            continue
        if len(inner.outvars) != len(eqn.outvars):
            continue
        for out, source in zip(eqn.outvars, _sources(inner), strict=True):
            if source is not None and isinstance(eqn.invars[source], core.Var):
                passed[out] = eqn.invars[source]
    found: list[int | None] = []
    for var in jaxpr.outvars:
        while isinstance(var, core.Var) and var in passed:
            var = passed[var]
        found.append(inputs.get(var) if isinstance(var, core.Var) else None)
    return found


def _forwarded(
    module: Any,
    rngs: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    method: Any,
    shapes: Mapping[Path, Any],
    paths: Sequence[Path],
) -> set[Path]:
    """The ``paths`` whose parameter the module stores as ``Scope.param`` gave it.

    The module is traced (no compute) with those parameters as inputs, handed
    out by ``Scope.param``; a parameter whose stored value is its input, passed
    through the calls of lifted transforms (``nn.remat``, ``nn.jit``) and
    nothing else, is the initializer's output.
    """
    placeholders = [shapes[path] for path in paths]

    def probe(values: Sequence[Any], rngs: Any) -> list[Any]:
        with _hooked(_Hook(prefilled=dict(zip(paths, values, strict=True)))):
            variables = module.init(rngs, *args, method=method, **kwargs)
        stored = _flat(variables.get("params", {}))
        return [stored.get(path) for path in paths]

    try:
        closed, out = jax.make_jaxpr(probe, return_shape=True)(placeholders, rngs)
    except Exception:  # any failure: the module makes them
        return set()
    sources = _sources(closed.jaxpr)
    kept: set[Path] = set()
    given = made = 0  # where each path's leaves start among inputs, outputs
    for path, placeholder, stored in zip(paths, placeholders, out, strict=True):
        count = len(jax.tree.leaves(placeholder))
        structure: Any = jax.tree.structure  # its PyTreeDef is untyped
        same = structure(stored) == structure(placeholder)
        if same and all(sources[made + i] == given + i for i in range(count)):
            kept.add(path)
        given += count
        made += len(jax.tree.leaves(stored))
    return kept
