"""The shape-independent programs: rows of a leaf's own stream through its law.

Why: XLA compiles the random-number code of every (initializer, shape, dtype)
anew, 0.2-0.5 s each on CPU. These programs depend on no shape. A leaf is cut
into rows of ``ROW`` values; one program per (law, dtype) draws ``BLOCK_ROWS``
rows at a time, each row with its own key words, starting pair and law
parameters, so one compile serves every leaf, model and caller (eager calls
and ``init_tree`` alike).

A row is a stretch of its leaf's own stream: jaxinit's 32-bit draws give
element ``i`` of any shape word ``i % 2`` of the threefry hash of counter
``i // 2`` (``_bits``), and the law functions are the samplers' own
(``_sampling.LAWS``) with the parameters as runtime values in both programs, so
every value equals the initializer's own call bit for bit.

A block leaves the program packed: values ``2c`` and ``2c + 1`` of a row, both
from the hash of counter ``c``, share one element (a complex64 for float32, a
uint32 for the 16-bit dtypes), whose bytes are the two values in stream order.
XLA's fused loop then hashes each counter once; emitting the values
interleaved, it hashed each counter twice, once per value (1.7x the time of a
uniform block). ``host_rows`` reads a block as rows of values in place,
``device_rows`` unpacks it inside a program.

The programs compile ahead in worker threads (``compile_ahead``), several laws
at once while the caller prepares its rows; ``draw`` waits for its own. On CPU
each block is written over one read already (``release``), whose pages are in
place: fresh 2 MiB blocks cost a page fault per 4 KiB.
"""

import concurrent.futures
import dataclasses
import functools
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from . import _bits, _compat, _sampling

# One row holds this many values of one leaf; a block of rows is one dispatch:
# 2 MiB of float32, small enough that an eager leaf's last, partly used block
# wastes little, large enough that dispatches cost little.
ROW = 4096
BLOCK_ROWS = 128
# Law parameters per row: uniform (a, width, lo, hi); normal (mean, scale);
# clipped_normal (mean, std, lo, hi, z_lo, z_hi).
PARAMS = 6
# The laws drawn by rows: the others ("truncated") are drawn by their own call.
LAWS = ("uniform", "normal", "clipped_normal")
# Output dtypes drawn by rows: 32-bit draws rounded (float64 draws 64 bits).
DTYPES = (np.dtype(np.float32), np.dtype(jnp.bfloat16), np.dtype(np.float16))
# Compiler options by platform. On CPU, LLVM's level 1 is the fastest to compile
# with the initializer's own bits (tests/test_engine.py checks them): level 0
# compiles a fifth faster but changes the normal law's bits and runs 5x slower;
# levels 1 to 3 compile these packed programs alike (0.11 s uniform, 0.13 s
# normal, CPU time here) and run alike.
_OPTIONS: dict[str, dict[str, Any]] = {"cpu": {"xla_backend_optimization_level": 1}}


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """How the programs draw one leaf: a law of ``LAWS`` or "constant"."""

    law: str
    params: tuple[float, ...]  # padded to PARAMS


def row_plan(plan: _sampling.Plan | None, dtype: np.dtype) -> RowPlan | None:
    """An initializer's law as the programs draw it; None: its own call draws it."""
    if plan is None or dtype not in DTYPES:
        return None
    law, params = plan
    if law != "constant" and law not in LAWS:
        return None
    return RowPlan(law, params + (0.0,) * (PARAMS - len(params)))


def _apply_law(
    dtype: np.dtype,
    law: str,
    words: tuple[jax.Array, jax.Array],
    params: jax.Array,
) -> jax.Array:
    """Both words of each row's hashes through ``law`` with ``params[r]``, packed."""
    p = [params[:, i : i + 1] for i in range(PARAMS)]
    even, odd = (_sampling.LAWS[law](_bits.unit_floats(w), p, dtype) for w in words)
    if dtype.itemsize == 4:
        packed: jax.Array = lax.complex(even, odd)
        return packed

    def half(values: jax.Array) -> jax.Array:
        bits = lax.bitcast_convert_type(values, jnp.uint16)
        return lax.convert_element_type(bits, jnp.uint32)

    return half(even) | (half(odd) << np.uint32(16))


def host_rows(block: jax.Array, dtype: np.dtype) -> np.ndarray:
    """A drawn block as ``(rows, ROW)`` values of ``dtype``, on the host, in place.

    Byte order: jax runs on little-endian hosts, where a complex64's real part
    and a uint32's low half come first.
    """
    rows: np.ndarray = np.asarray(block).view(dtype)
    return rows


def device_rows(block: jax.Array, dtype: np.dtype) -> jax.Array:
    """A drawn block as ``(rows, ROW)`` values of ``dtype``, inside a program."""
    if dtype.itemsize == 4:
        pairs = [lax.real(block), lax.imag(block)]
    else:
        halves = (block & np.uint32(0xFFFF), block >> np.uint32(16))
        pairs = [lax.bitcast_convert_type(h.astype(jnp.uint16), dtype) for h in halves]
    rows: jax.Array = jnp.stack(pairs, axis=-1).reshape(block.shape[0], ROW)
    return rows


def _block(
    dtype: np.dtype,
    law: str,
    key_words: jax.Array,
    first_pairs: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """Rows of ``ROW`` values of the leaves' own streams, through ``law``.

    Row r holds values ``2 * first_pairs[r]...`` of the stream of the key
    ``key_words[r]``, through ``law`` with the parameters ``params[r]``.
    """
    rows = first_pairs.shape[0]
    pairs = lax.broadcasted_iota(jnp.uint32, (rows, ROW // 2), 1)
    words = _bits.pair_words(key_words, first_pairs[:, None] + pairs)
    return _apply_law(dtype, law, words, params)


def _strided(
    dtype: np.dtype,
    law: str,
    key_words: jax.Array,
    first_pairs: jax.Array,
    run_pairs: jax.Array,
    strides: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """Rows as ``_block``'s, each holding runs of a shard.

    Pair ``j`` of row r is the pair ``first + (j // run) * stride + j % run``
    of its leaf's stream (``first``, ``run``, ``stride`` that row's values), so
    one row holds several short runs of a column shard. Called on rows sharded
    over a 1-D mesh of the devices, it draws each device's rows on that device
    with one compiled program for all devices and shapes.
    """
    rows = first_pairs.shape[0]
    j = lax.broadcasted_iota(jnp.uint32, (rows, ROW // 2), 1)
    run = run_pairs[:, None]
    # j // run in float32, exact here (j < 2**11: the quotient is at least
    # 0.5 / run away from an integer, its rounding error below 2**-12 / run);
    # XLA's vector integer division took 3x the whole draw on CPU.
    ratio = (j.astype(jnp.float32) + 0.5) / run.astype(jnp.float32)
    runs = ratio.astype(jnp.uint32)
    counters = first_pairs[:, None] + runs * strides[:, None] + (j - runs * run)
    words = _bits.pair_words(key_words, counters)
    return _apply_law(dtype, law, words, params)


def _block_into(
    dtype: np.dtype, law: str, spare: jax.Array, *rows: jax.Array
) -> jax.Array:
    """``_block``, written over ``spare``: a block read already, donated.

    On CPU each new block would otherwise be fresh memory, its pages faulted
    in one by one; a block's worth of reused buffers keeps them in place.
    """
    del spare
    return _block(dtype, law, *rows)


@functools.cache
def program(kind: str, platform: str) -> Callable[..., jax.Array]:
    """The jitted ``_block`` or ``_strided`` with ``platform``'s compiler options.

    On CPU the block program takes a spare block first (``_block_into``).
    """
    options = _OPTIONS.get(platform)
    if kind == "block" and platform == "cpu":
        into: Callable[..., jax.Array] = jax.jit(
            _block_into,
            static_argnums=(0, 1),
            donate_argnums=(2,),
            keep_unused=True,  # or jit drops the unread spare, and the donation
            compiler_options=options,
        )
        return into
    fn: Callable[..., jax.Array] = _block if kind == "block" else _strided
    jitted: Callable[..., jax.Array] = jax.jit(
        fn, static_argnums=(0, 1), compiler_options=options
    )
    return jitted


def _packed(dtype: np.dtype) -> np.dtype:
    """The element a block holds two values of ``dtype`` in."""
    return np.dtype(np.complex64 if dtype.itemsize == 4 else np.uint32)


# Blocks read already, by (shape, packed dtype): the next blocks' buffers.
_SPARES: dict[tuple[tuple[int, ...], np.dtype], list[jax.Array]] = {}
_KEEP_SPARES = 2


def release(block: jax.Array) -> None:
    """Hands back a block read already (and no longer viewed on the host).

    Kept only on CPU, where the block program writes over it.
    """
    if _platform(None) != "cpu":
        return
    with _LOCK:
        spares = _SPARES.setdefault((block.shape, block.dtype), [])
        if len(spares) < _KEEP_SPARES:
            spares.append(block)


def _spare(rows: int, dtype: np.dtype) -> jax.Array:
    shape, packed = (rows, ROW // 2), _packed(dtype)
    with _LOCK:
        spares = _SPARES.get((shape, packed))
        if spares:
            return spares.pop()
    # None yet: a host buffer, which XLA does not write over (it allocates).
    fresh: jax.Array = jax.device_put(np.empty(shape, packed))
    return fresh


# The row arrays each program reads: (name, trailing shape, dtype).
_Field = tuple[str, tuple[int, ...], Any]
_KEY_WORDS: _Field = ("key_words", (2,), np.uint32)
_FIRST: _Field = ("first", (), np.uint32)
_PARAMS: _Field = ("params", (PARAMS,), np.float32)
_FIELDS: dict[str, tuple[_Field, ...]] = {
    "block": (_KEY_WORDS, _FIRST, _PARAMS),
    "strided": (
        _KEY_WORDS,
        _FIRST,
        ("run", (), np.uint32),
        ("stride", (), np.uint32),
        _PARAMS,
    ),
}
# Programs a worker thread is compiling, and those compiled, by _key.
_COMPILING: dict[Hashable, concurrent.futures.Future[Any]] = {}
_COMPILED: set[Hashable] = set()
_LOCK = threading.Lock()


def fields(kind: str) -> tuple[str, ...]:
    """The names of the row arrays ``kind``'s program takes, in order."""
    return tuple(name for name, _, _ in _FIELDS[kind])


def _key(mesh: jax.sharding.Mesh | None, dtype: np.dtype, law: str) -> Hashable:
    return (mesh or jax.default_backend(), dtype, law, BLOCK_ROWS)


@functools.cache
def workers() -> concurrent.futures.ThreadPoolExecutor:
    """The engine's worker threads: compiles, and host buffers mapped ahead."""
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="jaxinit"
    )


def compile_ahead(
    programs: Sequence[tuple[jax.sharding.Mesh | None, np.dtype, str]],
) -> None:
    """Starts compiling programs in worker threads, unless compiled or compiling.

    Each program is (the 1-D mesh of the lanes, or None for the default
    device; dtype; law). Each is traced and lowered here, where it holds the
    GIL; XLA then compiles it without the GIL in a worker thread, several laws
    at once on several cores, while the caller prepares its rows. ``draw``
    waits for them.
    """
    for mesh, dtype, law in programs:
        key = _key(mesh, dtype, law)
        with _LOCK:
            if key in _COMPILED or key in _COMPILING:
                continue
            compiled: concurrent.futures.Future[Any] = concurrent.futures.Future()
            _COMPILING[key] = compiled
        try:
            lowered = _lower(mesh, dtype, law)
        except BaseException as error:
            compiled.set_exception(error)  # draw raises it in its place
            if not isinstance(error, Exception):
                raise
            continue
        workers().submit(_compile, lowered, compiled)


def _compile(lowered: Any, compiled: concurrent.futures.Future[Any]) -> None:
    try:
        compiled.set_result(lowered.compile())
    except BaseException as error:
        compiled.set_exception(error)


def _lower(mesh: jax.sharding.Mesh | None, dtype: np.dtype, law: str) -> Any:
    kind = "block" if mesh is None else "strided"
    rows = BLOCK_ROWS if mesh is None else BLOCK_ROWS * mesh.devices.size
    sharding = None if mesh is None else _rows_sharding(mesh)
    fields = _FIELDS[kind]
    if kind == "block" and _platform(mesh) == "cpu":
        fields = (("spare", (ROW // 2,), _packed(dtype)), *fields)
    specs = [
        jax.ShapeDtypeStruct((rows, *trailing), field_dtype, sharding=sharding)  # type: ignore[no-untyped-call]
        for _, trailing, field_dtype in fields
    ]
    with _compat.mesh_context(mesh):
        return program(kind, _platform(mesh)).lower(dtype, law, *specs)  # type: ignore[attr-defined]


def _platform(mesh: jax.sharding.Mesh | None) -> str:
    if mesh is None:
        return jax.default_backend()
    platform: str = mesh.devices.flat[0].platform
    return platform


def _rows_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("rows"))  # type: ignore[no-untyped-call]


def draw(
    mesh: jax.sharding.Mesh | None,
    dtype: np.dtype,
    law: str,
    rows: Sequence[np.ndarray],
) -> jax.Array:
    """One block: the host row arrays (``fields``) through the program.

    ``mesh`` None: ``_block`` on the default device, also under a caller's
    ``jax.set_mesh`` (which would replicate the block over that mesh).
    Otherwise ``_strided`` on the 1-D mesh of the lanes, each device drawing
    its rows, also under a caller's ``jax.set_mesh(other mesh)``. A CPU
    block goes back to ``release`` once read, to be written over.
    """
    key = _key(mesh, dtype, law)
    if key not in _COMPILED:
        with _LOCK:
            compiling = _COMPILING.pop(key, None)
            _COMPILED.add(key)
        if compiling is not None:
            compiling.result()
    kind = "block" if mesh is None else "strided"
    platform = _platform(mesh)
    args: Sequence[Any] = rows
    if mesh is not None:
        args = jax.device_put(list(rows), _rows_sharding(mesh))
    elif platform == "cpu":
        args = [_spare(len(rows[0]), dtype), *rows]
    with _compat.mesh_context(mesh):
        return program(kind, platform)(dtype, law, *args)
