"""The few jax APIs that moved between the oldest supported jax and the newest.

jaxinit supports jax 0.4.38 on: mesh contexts (``jax.set_mesh``, 0.7) and
``jax.shard_map`` (0.7) are used where they exist; before, no mesh context can
be set, so there is none to read or to step out of.
"""

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import jax


def context_mesh_axes() -> dict[str, int]:
    """The axis sizes of the mesh set by ``jax.set_mesh``; empty without one."""
    get_abstract_mesh = getattr(jax.sharding, "get_abstract_mesh", None)
    if get_abstract_mesh is None:  # jax < 0.5.3: no mesh context to read
        return {}
    return dict(get_abstract_mesh().shape)


@contextlib.contextmanager
def mesh_context(mesh: jax.sharding.Mesh | None) -> Iterator[None]:
    """``jax.set_mesh(mesh)`` (None: no mesh) where jax has it; else nothing."""
    set_mesh = getattr(jax, "set_mesh", None)
    if set_mesh is None or (mesh is None and not context_mesh_axes()):
        yield  # jax < 0.7 has no mesh context; None: there is none to leave
        return
    try:
        context: contextlib.AbstractContextManager[Any] = set_mesh(mesh)
    except ValueError:  # jax < 0.9 cannot set None: draws follow the caller's mesh
        context = contextlib.nullcontext()
    with context:
        yield


def shard_map(
    f: Callable[..., Any], *, mesh: Any, in_specs: Any, out_specs: Any
) -> Callable[..., Any]:
    """``jax.shard_map`` (jax 0.7 on), or its experimental predecessor."""
    public = getattr(jax, "shard_map", None)
    if public is not None:
        mapped: Callable[..., Any] = public(
            f, mesh=mesh, in_specs=in_specs, out_specs=out_specs
        )
        return mapped
    # Imported only here: newer jax deprecates the experimental module.
    experimental: Any = importlib.import_module("jax.experimental.shard_map")
    mapped = experimental.shard_map(
        f, mesh=mesh, in_specs=in_specs, out_specs=out_specs
    )
    return mapped
