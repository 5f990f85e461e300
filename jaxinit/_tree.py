"""Whole-model initialization: ``init_tree(key, {path: (initializer, shape, dtype)})``.

Why not one ``jax.jit`` over the model: XLA compiles the random-number code once
per parameter (~80 ms a leaf on CPU), and one compiled program per distinct
(initializer, shape) still costs ~0.5 s each. Here the compiled programs do not
depend on any shape: leaves drawn from a uniform or a normal law (uniform,
normal, xavier_*, kaiming_*, trunc_normal with far bounds) are cut into rows of
``_ROW`` values, and one program per output dtype draws ``_BLOCK_ROWS`` rows at
a time, each row with its own leaf key words, position and law parameters; the
laws a model uses are branches of a runtime switch. The leaf keys are derived
on the host (threefry in numpy), which keeps a second hash out of the programs.
Rows are copied into one aligned host buffer per leaf, which the device then
uses in place, with the next block drawn meanwhile, so peak memory is the
parameters plus two blocks. Constant leaves are filled on the host. Any other
leaf (orthogonal, sparse, eye, dirac, a non-jaxinit initializer, float64, a
non-threefry key, a traced key) is drawn by its own call.

Every leaf equals ``initializer(leaf_key(key, path), shape, dtype)`` bit for
bit: jaxinit's 32-bit draws give element ``i`` of any shape word ``i % 2`` of
the threefry hash of counter ``i // 2`` (``_bits.random_bits32``), so a row
is a stretch of its leaf's own stream, and batching changes no value and no law.

Sharded leaves (``out_shardings=``): a shard is a grid of runs of consecutive
values, so each device's shards become rows too, short runs packed several to
a row with a stride (``_draw_strided``). Every device gets a queue of rows; one
program over a 1-D mesh of the devices draws a block of every queue at once,
each device its own rows, and each shard is assembled where it lives and
joined by ``jax.make_array_from_single_device_arrays``. Nothing holds a whole
sharded leaf. On the CPU backend rows are assembled on the host (host memory
is device memory there); on other backends on the device (``_assemble``), so
that parameters do not cross to the host and back.
"""

import dataclasses
import functools
import hashlib
import itertools
import math
import struct
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec
from jax.typing import DTypeLike

from . import _bits, _checks, _compat, _sampling
from ._base import InitializerBase
from ._basic import _Constant, _Normal, _TruncNormal, _Uniform
from ._scaled import _FanScaled

Path: TypeAlias = Hashable
PathT = TypeVar("PathT", bound=Hashable)
LeafSpec: TypeAlias = tuple[Callable[..., jax.Array], Sequence[int], DTypeLike | None]

# One row holds this many values of one leaf; a block of rows is one dispatch.
# Small rows waste little on biases; 1024 rows of 4096 float32 are 16 MiB.
_ROW = 4096
_BLOCK_ROWS = 1024
# Law parameters per row: uniform (a, width, lo, hi); normal (mean, std, lo, hi,
# z_lo, z_hi).
_PARAMS = 6
# Host buffers aligned to this many bytes are placed on the CPU without a copy.
_ALIGN = 64


def path_name(path: Path) -> str:
    """The string a path is hashed from: a tuple joins its parts with ``/``."""
    if isinstance(path, tuple):
        return "/".join(str(part) for part in path)
    return str(path)


def path_words(path: Path) -> tuple[int, int]:
    """A stable 64-bit hash of a path as two uint32 words.

    BLAKE2b of the path's UTF-8 name, 8 bytes, read as two big-endian words. 64
    bits, not CRC-32's 32: CRC-32 collides on short names ("plumless" and
    "buckeroo"), and its collisions survive any common suffix.
    """
    digest = hashlib.blake2b(path_name(path).encode(), digest_size=8).digest()
    high, low = struct.unpack(">II", digest)
    return high, low


def leaf_key(key: jax.Array, path: Path) -> jax.Array:
    """The key ``init_tree`` gives the leaf at ``path``.

    ``fold_in(fold_in(key, w0), w1)``, where ``(w0, w1)`` is a 64-bit BLAKE2b
    hash of the path name (:func:`path_words`).

    Args:
        key: the key passed to ``init_tree``.
        path: the leaf's path (a string or a tuple of parts).

    Returns:
        A key derived from ``key`` and the path name only, so a leaf's values do
        not change when other leaves are added or removed.

    Examples:
        >>> import jax
        >>> from jaxinit._tree import leaf_key
        >>> key = jax.random.key(0)
        >>> a = leaf_key(key, ("encoder", "kernel"))
        >>> b = leaf_key(key, "encoder/kernel")
        >>> bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
        True
    """
    key = _checks.key("init_tree", key)
    high, low = path_words(path)
    return jax.random.fold_in(jax.random.fold_in(key, np.uint32(high)), np.uint32(low))


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one leaf is drawn by the batched programs."""

    law: str  # "uniform", "normal" or "constant"
    params: tuple[float, ...]


def _plan(
    init: InitializerBase, shape: tuple[int, ...], dtype: np.dtype
) -> _Plan | None:
    """The batched law of a leaf, or None when it must be drawn by its own call.

    The plan is the one the initializer's own call draws by (the same
    ``_sampling`` planner, so the same parameters and the same errors, raised
    here).
    """
    if dtype not in (np.float32, jnp.bfloat16, np.float16):
        return None  # float64 draws 64-bit bits; integers only for constants
    if isinstance(init, _Constant):
        return _batched(_sampling.constant_plan(init.name, dtype, init.val))
    if isinstance(init, _Uniform):
        return _batched(_sampling.uniform_plan(init.name, dtype, init.a, init.b))
    if isinstance(init, _Normal):
        return _batched(_sampling.normal_plan(init.name, dtype, init.mean, init.std))
    if isinstance(init, _TruncNormal):
        law = (init.mean, init.std, init.a, init.b)
        return _batched(_sampling.trunc_normal_plan(init.name, dtype, *law))
    if isinstance(init, _FanScaled):
        return _batched(init.plan(shape, dtype))
    return None


def _batched(plan: _sampling.Plan) -> _Plan | None:
    """A sampler's plan padded to ``_PARAMS``; None for laws drawn per leaf."""
    law, params = plan
    if law != "constant" and law not in _LAWS:
        return None
    return _Plan(law, params + (0.0,) * (_PARAMS - len(params)))


def _leaf_key_words(key: jax.Array, paths: Sequence[Path]) -> np.ndarray:
    """``key_data(leaf_key(key, path))`` for every path, computed on the host.

    JAX's threefry ``fold_in(key, w)`` is the hash of the counter ``(0, w)``
    under ``key``; doing both folds in numpy keeps them out of the compiled
    programs.
    """
    words = np.asarray(jax.random.key_data(key), np.uint32)
    hashed = np.array([path_words(path) for path in paths], np.uint32).reshape(-1, 2)
    zeros = np.zeros(len(hashed), np.uint32)
    k0 = np.full(len(hashed), words[0], np.uint32)
    k1 = np.full(len(hashed), words[1], np.uint32)
    k0, k1 = _bits.threefry2x32(k0, k1, zeros, hashed[:, 0])
    k0, k1 = _bits.threefry2x32(k0, k1, zeros, hashed[:, 1])
    return np.stack([k0, k1], axis=-1)


_LAWS = ("uniform", "normal", "clipped_normal")
# The samplers' own law functions: each leaf runs its own call's arithmetic.
_LAW_FNS = {name: _sampling.LAWS[name] for name in _LAWS}


def _apply_law(
    dtype: np.dtype,
    laws: tuple[str, ...],
    law: jax.Array,
    bits: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """Row r of ``bits`` through the law ``laws[law]`` with parameters ``params[r]``."""
    unit = _bits.unit_floats(bits)
    p = [params[:, i : i + 1] for i in range(_PARAMS)]
    branches = [functools.partial(_LAW_FNS[name], dtype=dtype) for name in laws]
    block: jax.Array = lax.switch(law, branches, unit, p)
    return block


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw_block(
    dtype: np.dtype,
    laws: tuple[str, ...],
    law: jax.Array,
    key_words: jax.Array,
    first_pairs: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """``_BLOCK_ROWS`` rows of ``_ROW`` values of the law ``laws[law]``.

    Row r holds values ``2 * first_pairs[r]...`` of the leaf whose key words
    are ``key_words[r]``, with that leaf's law parameters ``params[r]``. One
    compiled program per (dtype, laws) serves every shape; the law is a runtime
    switch because one program with two branches compiles faster than two.
    """
    bits = _bits.paired_rows(key_words, first_pairs, _ROW // 2)
    return _apply_law(dtype, laws, law, bits, params)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw_strided(
    dtype: np.dtype,
    laws: tuple[str, ...],
    law: jax.Array,
    key_words: jax.Array,
    first_pairs: jax.Array,
    run_pairs: jax.Array,
    strides: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """Rows as in ``_draw_block``, each holding runs of a shard.

    Pair ``j`` of row r is the pair ``first + (j // run) * stride + j % run``
    of its leaf's stream (``first``, ``run``, ``stride`` that row's values), so
    one row holds several short runs of a column shard. Called on rows sharded
    over a 1-D mesh of the devices, it draws each device's rows on that device
    with one compiled program for all devices and shapes.
    """
    rows = first_pairs.shape[0]
    j = lax.broadcasted_iota(jnp.uint32, (rows, _ROW // 2), 1)
    run = run_pairs[:, None]
    # j // run in float32, exact here (j < 2**11: the quotient is at least
    # 0.5 / run away from an integer, its rounding error below 2**-12 / run);
    # XLA's vector integer division took 3x the whole draw on CPU.
    ratio = (j.astype(jnp.float32) + 0.5) / run.astype(jnp.float32)
    runs = ratio.astype(jnp.uint32)
    counters = first_pairs[:, None] + runs * strides[:, None] + (j - runs * run)
    bits = _bits.paired_counters(key_words, counters)
    return _apply_law(dtype, laws, law, bits, params)


@dataclasses.dataclass
class _Leaf:
    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    plan: _Plan


def _can_batch(key: jax.Array) -> bool:
    """Whether the batched programs apply: a concrete threefry key, outside a trace.

    Under an outer ``jax.jit`` (or ``eval_shape``) every leaf is drawn by its own
    call, inside the caller's program: the batched path reads the key and the
    draws on the host. A key captured from outside the trace is concrete, but
    any operation on it is staged into the trace, so its key data come out
    traced.
    """
    if isinstance(key, jax.core.Tracer):
        return False
    if isinstance(jax.random.key_data(key), jax.core.Tracer):
        return False
    return _bits.is_threefry(key)


# None: assemble on the host on the CPU backend, on the device elsewhere. Tests
# set it to force one path.
_DEVICE_ASSEMBLY: bool | None = None


def _assemble_on_device() -> bool:
    """Whether drawn rows are assembled into leaves on the device.

    On the CPU backend host memory is device memory, and numpy's copies into
    one buffer per leaf measured fastest. Elsewhere a round trip through the
    host would cross PCIe twice and need the whole model in host RAM.
    """
    if _DEVICE_ASSEMBLY is not None:
        return _DEVICE_ASSEMBLY
    return jax.default_backend() != "cpu"


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
        >>> from jaxinit._tree import init_tree, leaf_key
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
    by_law: dict[tuple[np.dtype, str], list[_Leaf]] = defaultdict(list)
    constants: dict[Path, np.ndarray] = {}
    for path, (init, shape, dtype) in spec.items():
        sharding = shardings.get(path)
        leaf = _prepare(path, init, shape, dtype) if batched else None
        if sharding is not None:
            dims = leaf.shape if leaf is not None else _checks.shape("init_tree", shape)
            name = f"out_shardings[{path!r}]"
            _checks.sharding_fits("init_tree", name, dims, sharding)
        if leaf is None:
            out[path] = _own_call(init, leaf_key(key, path), shape, dtype, sharding)
        elif leaf.plan.law == "constant" and sharding is not None:
            out[path] = _constant_sharded(leaf, sharding)
        elif leaf.plan.law == "constant":
            value = _aligned_empty(math.prod(leaf.shape), leaf.dtype)
            value.fill(leaf.plan.params[0])
            constants[path] = value.reshape(leaf.shape)
        else:
            by_law[(leaf.dtype, leaf.plan.law)].append(leaf)
    out.update(zip(constants, jax.device_put(list(constants.values())), strict=True))
    on_device = _assemble_on_device()
    for dtype in dict.fromkeys(dtype for dtype, _ in by_law):
        laws = tuple(law for law in _LAWS if (dtype, law) in by_law)
        for law in laws:
            leaves = by_law[(dtype, law)]
            _draw_leaves(key, dtype, laws, law, leaves, shardings, out, on_device)
    return {path: out[path] for path in spec}


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
    path: Path,
    init: Callable[..., jax.Array],
    shape: Sequence[int],
    dtype: DTypeLike | None,
) -> _Leaf | None:
    """Validates a leaf as ``init.__call__`` would; None if it is not batched."""
    if not isinstance(init, InitializerBase):
        return None
    dims = _checks.shape(init.name, shape)
    requested = dtype if dtype is not None else getattr(init, "dtype", None)
    resolved = _checks.dtype(init.name, requested, exact_ok=not init.needs_key)
    init.check_shape(dims)
    if math.prod(dims) == 0 or math.prod(dims) >= 2**32:
        return None  # the initializer's call warns, or counters need 64 bits
    plan = _plan(init, dims, resolved)
    return None if plan is None else _Leaf(path, dims, resolved, plan)


def _aligned_empty(size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialized host array whose data is 64-byte aligned.

    jax.device_put uses such an array in place on CPU; numpy's own large
    allocations are 16-byte aligned, which jax copies.
    """
    nbytes = size * dtype.itemsize
    raw = np.empty(nbytes + _ALIGN, np.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip : skip + nbytes].view(dtype)


def _constant_sharded(leaf: _Leaf, sharding: jax.sharding.Sharding) -> jax.Array:
    """A constant leaf placed shard by shard: one shard-sized host fill."""
    shard_shape = sharding.shard_shape(leaf.shape)
    value = _aligned_empty(math.prod(shard_shape), leaf.dtype)
    value.fill(leaf.plan.params[0])
    devices = list(sharding.addressable_devices_indices_map(leaf.shape))
    shards = jax.device_put([value.reshape(shard_shape)] * len(devices), devices)
    return jax.make_array_from_single_device_arrays(leaf.shape, sharding, shards)


@dataclasses.dataclass
class _Rows:
    """The rows that draw one shard of a leaf, in ``_draw_strided``'s terms.

    The shard's values, flat in row-major order, are the concatenation of
    ``row[skip[r] : skip[r] + take[r]]`` over its rows.
    """

    first: np.ndarray
    run: np.ndarray
    stride: np.ndarray
    skip: np.ndarray
    take: np.ndarray


def _shard_rows(shape: tuple[int, ...], index: tuple[slice, ...]) -> _Rows:
    """The rows drawing the block ``index`` of a leaf of ``shape``.

    A shard is a grid of runs of contiguous values: the last axis it does not
    span whole, times the axes after it. Runs whose starts and lengths are even
    and that are short are packed several to a row (one pair stream, strided);
    others get rows of their own, starting at the pair that holds their first
    value, which is skipped when odd.
    """
    index = (*index, *[slice(None)] * (len(shape) - len(index)))
    bounds = [part.indices(dim)[:2] for part, dim in zip(index, shape, strict=True)]
    lo = [start for start, _ in bounds]
    n = [stop - start for start, stop in bounds]
    elem_strides = [math.prod(shape[axis + 1 :]) for axis in range(len(shape))]
    split = [axis for axis in range(len(shape)) if n[axis] != shape[axis]]
    if not split:
        starts, count, length, stride = np.zeros(1, np.int64), 1, math.prod(shape), 0
    else:
        last = split[-1]
        length = n[last] * elem_strides[last]
        starts = np.array([lo[last] * elem_strides[last]], np.int64)
        count, stride = 1, 0
        if last > 0:
            group = last - 1
            count, stride = n[group], elem_strides[group]
            starts += lo[group] * stride
            # Outer axes last, so that they vary slowest: row-major order.
            for axis in reversed(range(group)):
                offsets = (lo[axis] + np.arange(n[axis])) * elem_strides[axis]
                starts = (offsets[:, None] + starts[None, :]).reshape(-1)
    pairs = _ROW // 2
    packed = (
        count >= 2
        and length % 2 == 0
        and stride % 2 == 0
        and 2 * length <= _ROW
        and not (starts % 2).any()
    )
    if packed:
        per_row = _ROW // length
        index_in_group = np.arange(-(-count // per_row))
        first = (starts[:, None] + index_in_group * per_row * stride) // 2
        runs = np.minimum(per_row, count - index_in_group * per_row)
        take = np.broadcast_to(runs * length, first.shape).reshape(-1)
        rows = take.size
        return _Rows(
            first.reshape(-1).astype(np.uint32),
            np.full(rows, length // 2, np.uint32),
            np.full(rows, stride // 2, np.uint32),
            np.zeros(rows, np.int64),
            take.astype(np.int64),
        )
    run_starts = (starts[:, None] + np.arange(count) * stride).reshape(-1)
    odd = run_starts % 2
    per_run = -(-(odd + length) // _ROW)
    of_row = np.repeat(np.arange(run_starts.size), per_run)
    piece = np.arange(of_row.size) - np.repeat(np.cumsum(per_run) - per_run, per_run)
    skip = np.where(piece == 0, odd[of_row], 0)
    before = np.where(piece == 0, 0, piece * _ROW - odd[of_row])
    return _Rows(
        (run_starts[of_row] // 2 + piece * pairs).astype(np.uint32),
        np.full(of_row.size, pairs, np.uint32),
        np.zeros(of_row.size, np.uint32),
        skip.astype(np.int64),
        np.minimum(_ROW - skip, length - before).astype(np.int64),
    )


Segment: TypeAlias = tuple[int, int, int, int, int]


@dataclasses.dataclass
class _Job:
    """One shard of a leaf, drawn on one device and placed on ``devices``."""

    leaf: _Leaf
    shape: tuple[int, ...]
    rows: _Rows
    devices: tuple[jax.Device, ...]  # () for the default placement
    start: int = 0  # its first row in its device's queue
    # Consecutive rows with the same (skip, take): (first, end, skip, take,
    # offset of their first value in the shard).
    segments: tuple[Segment, ...] = ()
    # On the device path, the jobs of one leaf that sit at the same rows of
    # every device's queue and are cut by one program for all devices.
    lockstep: "tuple[_Job, ...] | None" = None


def _segments(rows: _Rows) -> tuple[Segment, ...]:
    change = np.flatnonzero((np.diff(rows.skip) != 0) | (np.diff(rows.take) != 0))
    bounds = [0, *(change + 1).tolist(), rows.take.size]
    offsets = np.concatenate([[0], np.cumsum(rows.take)]).tolist()
    return tuple(
        (a, b, int(rows.skip[a]), int(rows.take[a]), int(offsets[a]))
        for a, b in itertools.pairwise(bounds)
    )


def _draw_leaves(
    key: jax.Array,
    dtype: np.dtype,
    laws: tuple[str, ...],
    law: str,
    leaves: list[_Leaf],
    shardings: Mapping[Path, jax.sharding.Sharding],
    out: dict[Path, jax.Array],
    on_device: bool,
) -> None:
    """Draws leaves of one law.

    Unsharded leaves are drawn on the default device; a sharded leaf's shards
    are drawn on the devices that hold them: on the host path once per distinct
    shard, by its least loaded holder, then copied to each holder; on the
    device path by every holder, at the same rows of every holder's queue when
    the shards are cut alike, so that one program cuts them all.
    """
    words = dict(
        zip(
            (leaf.path for leaf in leaves),
            _leaf_key_words(key, [leaf.path for leaf in leaves]),
            strict=True,
        )
    )
    default: list[_Job] = []
    # Every device of the call's shardings draws in every law's program, so
    # that one program (one mesh of lanes) serves the whole call.
    lanes = {d for sharding in shardings.values() for d in sharding.addressable_devices}
    queues: dict[jax.Device, list[_Job]] = {
        device: []
        for device in sorted(lanes, key=lambda device: device.id)  # type: ignore[attr-defined]
    }
    totals: dict[jax.Device | None, int] = defaultdict(int)  # rows of each queue

    def enqueue(lane: jax.Device | None, job: _Job, start: int) -> None:
        job.start, job.segments = start, _segments(job.rows)
        totals[lane] = start + job.rows.take.size
        (default if lane is None else queues[lane]).append(job)

    for leaf in leaves:
        full = tuple(slice(None) for _ in leaf.shape)
        sharding = shardings.get(leaf.path)
        if sharding is None:
            job = _Job(leaf, leaf.shape, _shard_rows(leaf.shape, full), ())
            enqueue(None, job, totals[None])
            continue
        indices = {
            device: tuple(index or full)
            for device, index in sharding.addressable_devices_indices_map(
                leaf.shape
            ).items()
        }
        shard_shape = sharding.shard_shape(leaf.shape)
        if on_device:
            jobs = [
                _Job(leaf, shard_shape, _shard_rows(leaf.shape, index), (device,))
                for device, index in indices.items()
            ]
            if shard_shape and all(_same_cut(jobs[0].rows, j.rows) for j in jobs):
                start = max(totals[device] for device in indices)
                for job in jobs:
                    job.lockstep = tuple(jobs)
                    enqueue(job.devices[0], job, start)
            else:
                for job in jobs:
                    enqueue(job.devices[0], job, totals[job.devices[0]])
            continue
        holders: dict[tuple[tuple[int, int], ...], list[jax.Device]] = {}
        for device, index in indices.items():
            bounds = tuple(
                part.indices(dim)[:2]
                for part, dim in zip(index, leaf.shape, strict=False)
            )
            holders.setdefault(bounds, []).append(device)
        for group in holders.values():
            lane = min(group, key=lambda device: totals[device])
            rows = _shard_rows(leaf.shape, indices[group[0]])
            enqueue(lane, _Job(leaf, shard_shape, rows, tuple(group)), totals[lane])
    results: dict[tuple[Path, jax.Device | None], jax.Array] = {}
    if default:
        _draw_jobs(dtype, laws, law, words, {None: default}, results, on_device)
    if any(queues.values()):
        _draw_jobs(dtype, laws, law, words, queues, results, on_device)
    for leaf in leaves:
        sharding = shardings.get(leaf.path)
        if sharding is None:
            out[leaf.path] = results[(leaf.path, None)]
        else:
            devices = sharding.addressable_devices_indices_map(leaf.shape)
            shards = [results[(leaf.path, device)] for device in devices]
            out[leaf.path] = jax.make_array_from_single_device_arrays(
                leaf.shape, sharding, shards
            )


def _same_cut(a: _Rows, b: _Rows) -> bool:
    """Whether two shards' rows are cut alike (the same skips and takes)."""
    return bool(np.array_equal(a.skip, b.skip) and np.array_equal(a.take, b.take))


def _draw_jobs(
    dtype: np.dtype,
    laws: tuple[str, ...],
    law: str,
    words: Mapping[Path, np.ndarray],
    queues: Mapping[jax.Device | None, list[_Job]],
    results: dict[tuple[Path, jax.Device | None], jax.Array],
    on_device: bool,
) -> None:
    """Draws every queue's jobs, block by block, and places each shard.

    The queue ``None`` (unsharded leaves) is drawn by ``_draw_block`` on the
    default device; the others by one ``_draw_strided`` call per block over a
    1-D mesh of their devices, each device drawing its own queue's rows.
    """
    lanes = list(queues)
    counts = [
        max((j.start + j.rows.take.size for j in q), default=0) for q in queues.values()
    ]
    padded = -(-max(counts) // _BLOCK_ROWS) * _BLOCK_ROWS
    fields = ("key_words", "first", "run", "stride", "params")
    host = {name: [] for name in fields}  # type: dict[str, list[np.ndarray]]
    for jobs in queues.values():
        key_words = np.zeros((padded, 2), np.uint32)
        first = np.zeros(padded, np.uint32)
        run = np.full(padded, _ROW // 2, np.uint32)
        stride = np.zeros(padded, np.uint32)
        params = np.zeros((padded, _PARAMS), np.float32)
        for job in jobs:
            span = slice(job.start, job.start + job.rows.take.size)
            key_words[span] = words[job.leaf.path]
            first[span] = job.rows.first
            run[span] = job.rows.run
            stride[span] = job.rows.stride
            params[span] = job.leaf.plan.params
        for name, array in zip(
            fields, (key_words, first, run, stride, params), strict=True
        ):
            host[name].append(array)
    law_index = np.int32(laws.index(law))
    mesh = None
    if lanes != [None]:
        mesh = jax.sharding.Mesh(np.array(lanes), ("rows",))
        rows_sharding = NamedSharding(mesh, PartitionSpec("rows"))  # type: ignore[no-untyped-call]

    def dispatch(block_start: int) -> jax.Array:
        span = slice(block_start, block_start + _BLOCK_ROWS)
        if mesh is None:
            # On the default device, also under a caller's jax.set_mesh(mesh)
            # (which would replicate the block over that mesh).
            with _compat.mesh_context(None):
                block: jax.Array = _draw_block(
                    dtype,
                    laws,
                    law_index,
                    host["key_words"][0][span],
                    host["first"][0][span],
                    host["params"][0][span],
                )
            return block
        args = jax.device_put(
            [np.concatenate([a[span] for a in host[name]]) for name in fields],
            rows_sharding,
        )
        # The rows' own mesh, also under a caller's jax.set_mesh(other mesh).
        with _compat.mesh_context(mesh):
            drawn: jax.Array = _draw_strided(dtype, laws, law_index, *args)
        return drawn

    cursors = dict.fromkeys(lanes, 0)  # the next job of each queue
    current: dict[jax.Device | None, _Shard | None] = dict.fromkeys(lanes)
    # Drawn blocks that a lockstep leaf still needs, by index.
    kept: dict[int, jax.Array] = {}
    waiting: list[tuple[_Job, ...]] = []
    next_drawn = dispatch(0)
    for block_start in range(0, padded, _BLOCK_ROWS):
        drawn = next_drawn
        if block_start + _BLOCK_ROWS < padded:
            next_drawn = dispatch(block_start + _BLOCK_ROWS)
        block_end = block_start + _BLOCK_ROWS
        if mesh is None:
            blocks: dict[jax.Device | None, jax.Array] = {None: drawn}
        else:
            blocks = {shard.device: shard.data for shard in drawn.addressable_shards}
        kept[block_start // _BLOCK_ROWS] = drawn
        done: list[_Shard] = []
        for lane in lanes:
            jobs = queues[lane]
            block = blocks[lane]
            values = None if on_device else np.asarray(block)
            while cursors[lane] < len(jobs):
                job = jobs[cursors[lane]]
                if job.start >= block_end:
                    break
                if job.lockstep is not None:
                    if job is job.lockstep[0]:
                        waiting.append(job.lockstep)
                    cursors[lane] += 1
                    continue
                shard = current[lane] or _Shard(job, dtype, on_device)
                shard.add(block, block_start, values)
                if job.start + job.rows.take.size > block_end:
                    current[lane] = shard
                    break
                done.append(shard)
                current[lane] = None
                cursors[lane] += 1
        _place(done, results)
        finished = [j for j in waiting if j[0].start + j[0].rows.take.size <= block_end]
        for group in finished:
            waiting.remove(group)
            _cut_lockstep(group, kept, mesh, results)  # type: ignore[arg-type]
        needed = min(
            [job[0].start // _BLOCK_ROWS for job in waiting]
            + [block_end // _BLOCK_ROWS]
        )
        for index in [i for i in kept if i < needed]:
            del kept[index]


class _Shard:
    """One job's values as its rows arrive: a host buffer, or device blocks."""

    def __init__(self, job: _Job, dtype: np.dtype, on_device: bool) -> None:
        self.job = job
        size = math.prod(job.shape)
        self.buffer = None if on_device else _aligned_empty(size, dtype)
        self.blocks: list[jax.Array] = []  # the device path's drawn blocks
        self.offset = 0  # its first row in the first of them

    def add(
        self, block: jax.Array, block_start: int, values: np.ndarray | None
    ) -> None:
        """Takes its rows from a drawn block (``values``: on the host)."""
        job = self.job
        if self.buffer is None or values is None:
            if not self.blocks:
                self.offset = job.start - block_start
            self.blocks.append(block)
            return
        block_end = block_start + values.shape[0]
        for row, end, skip, take, offset in job.segments:
            lo = max(job.start + row, block_start)
            hi = min(job.start + end, block_end)
            if lo < hi:
                dest = offset + (lo - job.start - row) * take
                target = self.buffer[dest : dest + (hi - lo) * take]
                np.copyto(
                    target.reshape(hi - lo, take),
                    values[lo - block_start : hi - block_start, skip : skip + take],
                )

    def value(self) -> np.ndarray | jax.Array:
        """The shard: a host array, or an array on the blocks' device."""
        if self.buffer is not None:
            return self.buffer.reshape(self.job.shape)
        job = self.job
        # On its blocks' device, also under a caller's jax.set_mesh(mesh).
        with _compat.mesh_context(None):
            shard: jax.Array = _assemble(
                job.segments,
                job.rows.take.size,
                job.shape,
                tuple(self.blocks),
                np.int32(self.offset),
            )
        return shard


def _place(
    done: list[_Shard], results: dict[tuple[Path, jax.Device | None], jax.Array]
) -> None:
    """Puts finished shards where they go: one placement call for the host's."""
    host: list[np.ndarray] = []
    targets: list[tuple[Path, jax.Device | None]] = []
    devices: list[jax.Device | None] = []
    for shard in done:
        value = shard.value()
        for device in shard.job.devices or (None,):
            target = (shard.job.leaf.path, device)
            if isinstance(value, jax.Array):
                results[target] = value  # drawn where it goes
            else:
                host.append(value)
                targets.append(target)
                devices.append(device)
    if not host:
        return
    # One placement call per block: per-array calls cost ~0.4 ms each.
    if devices[0] is None:
        placed = jax.device_put(host)
    else:
        placed = jax.device_put(host, devices)
    results.update(zip(targets, placed, strict=True))


def _cut_lockstep(
    jobs: tuple[_Job, ...],
    kept: Mapping[int, jax.Array],
    mesh: jax.sharding.Mesh,
    results: dict[tuple[Path, jax.Device | None], jax.Array],
) -> None:
    """Cuts a leaf's shards, at the same rows on every device, in one call."""
    job = jobs[0]
    first = job.start // _BLOCK_ROWS
    last = (job.start + job.rows.take.size - 1) // _BLOCK_ROWS
    blocks = tuple(kept[i] for i in range(first, last + 1))
    offset = np.int32(job.start - first * _BLOCK_ROWS)
    with _compat.mesh_context(mesh):
        cut = _assemble_lanes(
            mesh, job.segments, job.rows.take.size, job.shape, blocks, offset
        )
    shards = {shard.device: shard.data for shard in cut.addressable_shards}
    for each in jobs:
        results[(each.leaf.path, each.devices[0])] = shards[each.devices[0]]


def _cut(
    segments: tuple[Segment, ...],
    rows: int,
    shape: tuple[int, ...],
    blocks: tuple[jax.Array, ...],
    offset: jax.Array,
) -> jax.Array:
    """The shard whose ``rows`` rows start at row ``offset`` of ``blocks``."""
    stacked = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks)
    window = lax.dynamic_slice_in_dim(stacked, offset, rows, axis=0)
    parts = [
        window[first:end, skip : skip + take].reshape(-1)
        for first, end, skip, take, _ in segments
    ]
    flat = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    shard: jax.Array = flat.reshape(shape)
    return shard


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _assemble(
    segments: tuple[Segment, ...],
    rows: int,
    shape: tuple[int, ...],
    blocks: tuple[jax.Array, ...],
    offset: jax.Array,
) -> jax.Array:
    """One shard from the drawn blocks it spans, on their device.

    Its position is a runtime value: one program serves every shard cut alike
    (the same shape, rows and segments), wherever it lies in the blocks.
    """
    return _cut(segments, rows, shape, blocks, offset)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _assemble_lanes(
    mesh: jax.sharding.Mesh,
    segments: tuple[Segment, ...],
    rows: int,
    shape: tuple[int, ...],
    blocks: tuple[jax.Array, ...],
    offset: jax.Array,
) -> jax.Array:
    """``_assemble`` on every device of ``mesh`` at once, each on its own rows.

    The result stacks the devices' shards along the first axis; each device's
    piece is its shard.
    """

    def local(blocks: tuple[jax.Array, ...], offset: jax.Array) -> jax.Array:
        return _cut(segments, rows, shape, blocks, offset)

    rows_spec = PartitionSpec("rows")  # type: ignore[no-untyped-call]
    cut: jax.Array = _compat.shard_map(
        local,
        mesh=mesh,
        in_specs=(rows_spec, PartitionSpec()),  # type: ignore[no-untyped-call]
        out_specs=rows_spec,
    )(blocks, offset)
    return cut
