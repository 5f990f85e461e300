"""Eager calls without a compile per shape: one leaf through ``init_tree``'s programs.

An initializer called outside any trace would otherwise compile one program per
(initializer, shape, dtype), 0.2-0.5 s each on CPU, which dominates building a
model layer by layer (nnx) on a fresh process. Here a leaf whose law
``init_tree`` batches (uniform, normal, trunc_normal with far bounds, xavier_*,
kaiming_*, constants) is drawn instead by ``_tree._draw_block``, whose compiled
program depends only on the dtype, the law and the block size: ``_ROWS`` rows of
``_tree._ROW`` values, each row a stretch of the leaf's own stream under the key
given. Blocks are copied into one aligned host buffer that the device then uses
in place, with the next block drawn meanwhile. Constants are filled on the host.
That is the CPU backend's fast path (host memory is device memory); on other
backends eager calls keep the initializer's own program, on the device.

The bits are those of the initializer's own program (``_tree``'s module notes
say why), so eager, jitted and vmapped calls still agree exactly.
"""

import math

import jax
import numpy as np

from . import _bits, _compat
from ._base import InitializerBase
from ._tree import _ROW, _aligned_empty, _draw_block, _plan

# Rows per block: 64 rows of 4096 float32 are 1 MiB. Small enough that a leaf's
# last, partly used block wastes little; large enough that dispatch is cheap.
_ROWS = 64

# LLVM's optimization level 1 halves the compile (0.25 s instead of
# 0.5 s for a law) and runs as fast; the tests check that the bits are the same.
_draw_block_cpu = jax.jit(
    _draw_block.__wrapped__,  # type: ignore[attr-defined]
    static_argnums=(0, 1),
    compiler_options={"xla_backend_optimization_level": 1},
)


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
    """No trace is active, nor a legacy ``with mesh:`` context (private API)."""
    try:
        from jax._src import core, mesh
    except ImportError:  # pragma: no cover - jax moved its trace state
        return False
    try:
        return bool(
            core.trace_ctx.is_top_level()
            and mesh.thread_resources.env.physical_mesh.empty
        )
    except AttributeError:  # pragma: no cover - likewise
        return False


def draw(
    init: InitializerBase,
    key: jax.Array | None,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> jax.Array | None:
    """``init(key, shape, dtype)``, bit for bit, or None when not batched.

    ``shape`` and ``dtype`` are already validated; ``key`` passed
    ``is_concrete`` (None for initializers that need no key).
    """
    size = math.prod(shape)
    if size >= 2**32:
        return None  # counters need 64 bits
    platform = _platform(key) if key is not None else jax.default_backend()
    if platform != "cpu":
        # The blocks are assembled in host memory, which is device memory only
        # on CPU; elsewhere the initializer's own program draws on the device.
        return None
    plan = _plan(init, shape, dtype)
    if plan is None:
        return None
    if plan.law == "constant":
        host = _aligned_empty(size, dtype)
        host.fill(plan.params[0])
        return _place(host.reshape(shape), key)
    if key is None:
        return None
    words = np.asarray(
        key if key.dtype == np.uint32 else jax.random.key_data(key), np.uint32
    )
    rows = -(-size // _ROW)
    key_words = np.broadcast_to(words, (_ROWS, 2))
    params = np.broadcast_to(np.asarray(plan.params, np.float32), (_ROWS, 6))
    pairs = np.arange(_ROWS, dtype=np.uint32) * np.uint32(_ROW // 2)
    laws = (plan.law,)

    def dispatch(first_row: int) -> jax.Array:
        start = np.uint32(first_row * (_ROW // 2))
        block: jax.Array = _draw_block_cpu(
            dtype, laws, np.int32(0), key_words, pairs + start, params
        )
        return block

    host = _aligned_empty(size, dtype)
    # One block in flight while the previous one is copied out.
    pending = dispatch(0)
    for first_row in range(0, rows, _ROWS):
        drawn = pending
        if first_row + _ROWS < rows:
            pending = dispatch(first_row + _ROWS)
        start = first_row * _ROW
        take = min(size - start, _ROWS * _ROW)
        host[start : start + take] = np.asarray(drawn).reshape(-1)[:take]
    return _place(host.reshape(shape), key)


def _platform(key: jax.Array) -> str:
    (device,) = key.sharding.device_set
    platform: str = getattr(device, "platform", "")
    return platform


def _place(host: np.ndarray, key: jax.Array | None) -> jax.Array:
    """On the key's device, committed as the jitted call's result would be."""
    if key is not None and key.committed:
        placed: jax.Array = jax.device_put(host, key.sharding)
        return placed
    default: jax.Array = jax.device_put(host)
    return default
