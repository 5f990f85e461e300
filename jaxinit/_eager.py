"""Eager calls without a compile per shape: one leaf through the draw engine.

An initializer called outside any trace would otherwise compile one program per
(initializer, shape, dtype), 0.2-0.5 s each on CPU, which dominates building a
model layer by layer (nnx) on a fresh process. Here a leaf whose law the
shape-independent programs draw (``InitializerBase.law``) goes to the draw
engine under the key given, as ``init_tree``'s leaves do under their leaf keys:
the same compiled program per (law, dtype) serves both. Constants are filled
on the host. The engine assembles the leaf in host memory, which is device
memory only on the CPU backend: elsewhere eager calls keep the initializer's
own program, on the device.

The bits are those of the initializer's own program (``_programs`` says why),
so eager, jitted and vmapped calls still agree exactly.
"""

import math

import jax
import numpy as np

from . import _bits, _compat, _engine, _keys, _programs, _sampling
from ._assembly import Leaf

try:  # private API: the trace state and the legacy ``with mesh:`` context
    from jax._src import core as _jax_core, mesh as _jax_mesh
except ImportError:  # pragma: no cover - jax moved them
    _jax_core = _jax_mesh = None  # type: ignore[assignment]


def is_concrete(key: jax.Array | None) -> bool:
    """Whether no trace or mesh is active and ``key`` is a concrete threefry key.

    A concrete key captured from outside a ``jax.jit`` is still drawn inside
    the trace: the draw belongs in the caller's program, not baked into it as
    a constant. Under a mesh context (``jax.set_mesh``) XLA compiles the
    initializer's own program differently (the normal law's constants are not
    folded the same way), so those calls keep that program and its bits.
    """
    if not _top_level() or _compat.context_mesh_axes():
        return False
    if key is None:
        return True
    if isinstance(key, jax.core.Tracer) or not isinstance(key, jax.Array):
        return False
    return _bits.is_threefry(key) and len(key.sharding.device_set) == 1


def _top_level() -> bool:
    """No trace is active, nor a legacy ``with mesh:`` context."""
    try:
        return bool(
            _jax_core.trace_ctx.is_top_level()
            and _jax_mesh.thread_resources.env.physical_mesh.empty
        )
    except AttributeError:  # pragma: no cover - jax moved its trace state
        return False


def draw(
    plan: _sampling.Plan | None,
    key: jax.Array | None,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> jax.Array | None:
    """The leaf ``plan`` draws under ``key``, or None when the engine does not.

    ``plan`` is the initializer's ``law(shape, dtype)``; the leaf is, bit for
    bit, the initializer's own call. ``shape`` and ``dtype`` are already
    validated; ``key`` passed ``is_concrete`` (None for initializers that need
    no key).
    """
    if math.prod(shape) >= 2**32:
        return None  # counters need 64 bits
    device = None if key is None else next(iter(key.sharding.device_set))
    platform = jax.default_backend() if device is None else device.platform
    if platform != "cpu":
        return None
    row_plan = _programs.row_plan(plan, dtype)
    if row_plan is None or (key is None and row_plan.law != "constant"):
        return None
    words = np.zeros(2, np.uint32) if key is None else _keys.host_words(key)
    leaf = Leaf(None, shape, dtype, row_plan, words)
    drawn = _engine.draw([leaf], {}, on_device=False)[None]
    if key is not None and key.committed:
        # Committed to the key's device, as the jitted call's result would be.
        placed: jax.Array = jax.device_put(drawn, key.sharding)
        return placed
    return drawn
