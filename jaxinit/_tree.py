"""Whole-model initialization: ``init_tree(key, {path: (initializer, shape, dtype)})``.

Why not one ``jax.jit`` over the model: XLA compiles the random-number code once
per parameter (~80 ms a leaf on CPU), and one compiled program per distinct
(initializer, shape) still costs ~0.5 s each. Here the compiled programs do not
depend on any shape: leaves drawn from a uniform or a normal law (uniform,
normal, xavier_*, kaiming_*, trunc_normal with far bounds) are cut into rows of
``_ROW`` values, and one program per output dtype (the law is a runtime switch)
draws ``_BLOCK_ROWS`` rows at a time, each row with its own leaf key, position
and law parameters. The rows are assembled into leaves in host memory and
placed on the device one leaf at a time, with the next block drawn meanwhile,
so peak memory is the parameters plus two blocks and one leaf. Constant leaves
are filled on the host. Any other leaf (orthogonal, sparse, eye, dirac, a
non-jaxinit initializer, float64, a non-threefry key) is drawn by its own call.

Every leaf equals ``initializer(leaf_key(key, path), shape, dtype)`` bit for
bit: rows use the counters of the leaf's own threefry stream (JAX's
partitionable threefry draws element ``i`` of any shape from counter ``i``), so
batching changes no value and no law.
"""

import dataclasses
import functools
import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p
from jax.typing import DTypeLike

from . import _checks, _sampling
from ._base import InitializerBase
from ._basic import _Constant, _Normal, _TruncNormal, _Uniform
from ._scaled import _FanScaled

Path: TypeAlias = Hashable
LeafSpec: TypeAlias = tuple[Callable[..., jax.Array], Sequence[int], DTypeLike | None]

# One row holds this many values of one leaf; a block of rows is one dispatch.
# Small rows waste little on biases; 1024 rows of 4096 float32 are 16 MiB.
_ROW = 4096
_BLOCK_ROWS = 1024
# Law parameters per row: uniform (a, width, lo, hi); normal (mean, std, lo, hi,
# z_lo, z_hi).
_PARAMS = 6


def path_name(path: Path) -> str:
    """The string a path is hashed from: a tuple joins its parts with ``/``."""
    if isinstance(path, tuple):
        return "/".join(str(part) for part in path)
    return str(path)


def path_hash(path: Path) -> int:
    """A stable 32-bit hash of a path (CRC-32 of its UTF-8 name)."""
    return zlib.crc32(path_name(path).encode())


def leaf_key(key: jax.Array, path: Path) -> jax.Array:
    """The key ``init_tree`` gives the leaf at ``path``: ``fold_in(key, hash)``.

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
    return jax.random.fold_in(key, np.uint32(path_hash(path)))


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one leaf is drawn by the batched programs."""

    law: str  # "uniform", "normal" or "constant"
    params: tuple[float, ...]


def _plan(
    init: InitializerBase, shape: tuple[int, ...], dtype: np.dtype
) -> _Plan | None:
    """The batched law of a leaf, or None when it must be drawn by its own call.

    The parameters are exactly those the initializer's own ``_generate`` uses.
    """
    if dtype not in (np.float32, jnp.bfloat16, np.float16):
        return None  # float64 draws 64-bit bits; integers only for constants
    if isinstance(init, _Constant):
        return _Plan("constant", (init.val,))
    if isinstance(init, _Uniform):
        return _uniform_plan(init.name, dtype, init.a, init.b)
    if isinstance(init, _Normal):
        return _normal_plan(init.name, dtype, init.mean, init.std)
    if isinstance(init, _TruncNormal):
        alpha = (init.a - init.mean) / init.std if init.std else 0.0
        beta = (init.b - init.mean) / init.std if init.std else 0.0
        if (
            init.std == 0
            or init.a == init.b
            or not _sampling.is_unreachable(alpha, beta)
        ):
            return None
        law = (init.mean, init.std, init.a, init.b)
        if not _sampler_accepts(_sampling.trunc_normal, init.name, dtype, *law):
            return None
        lo, hi = _sampling.round_up(init.a, dtype), _sampling.round_down(init.b, dtype)
        clipped = (init.mean, init.std, float(lo), float(hi), alpha, beta)
        return _Plan("clipped_normal", clipped)
    if isinstance(init, _FanScaled):
        fan_in, fan_out = init.axes(shape).fans(shape)
        std = init.std(fan_in, fan_out)
        if init.distribution == "normal":
            return _normal_plan(init.name, dtype, 0.0, std)
        bound = math.sqrt(3.0) * std
        return _uniform_plan(init.name, dtype, -bound, bound)
    return None


def _uniform_plan(owner: str, dtype: np.dtype, a: float, b: float) -> _Plan | None:
    if a == b:
        return _Plan("constant", (a,))
    if not _sampler_accepts(_sampling.uniform, owner, dtype, a, b):
        return None  # the initializer's own call raises the error
    a, width, lo, hi = _sampling.uniform_params(owner, dtype, a, b)
    return _Plan("uniform", (a, width, lo, hi, 0.0, 0.0))


def _normal_plan(owner: str, dtype: np.dtype, mean: float, std: float) -> _Plan | None:
    if std == 0:
        return _Plan("constant", (mean,))
    if not _sampler_accepts(_sampling.normal, owner, dtype, mean, std):
        return None
    folded = float(np.float32(std) * np.float32(np.sqrt(2)))
    return _Plan("normal", (mean, folded, 0.0, 0.0, 0.0, 0.0))


@functools.lru_cache(maxsize=4096)
def _sampler_accepts(
    sampler: Callable[..., jax.Array], owner: str, dtype: np.dtype, *law: float
) -> bool:
    """Whether the sampler's own checks pass (traced only: nothing is compiled)."""
    try:
        jax.eval_shape(
            lambda key: sampler(owner, key, (1,), dtype, *law), jax.random.key(0)
        )
    except ValueError:
        return False
    return True


def _threefry_bits(key_data: jax.Array, starts: jax.Array) -> jax.Array:
    """Bits ``starts[r] + j`` of row r's threefry stream, as jax.random.bits.

    JAX's partitionable threefry gives element ``i`` of a draw the 64-bit
    counter ``i`` (high word, low word) and returns the xor of both outputs.
    Rows are vmapped so each hash sees scalar keys: full-size key arrays would
    ride in the CPU lowering's loop state and cost ~2.5x.
    """

    def row(key_pair: jax.Array, start: jax.Array) -> jax.Array:
        low = start + lax.iota(jnp.uint32, _ROW)
        high = jnp.zeros((_ROW,), jnp.uint32)
        bits1, bits2 = threefry2x32_p.bind(  # type: ignore[no-untyped-call]
            key_pair[0], key_pair[1], high, low
        )
        bits: jax.Array = bits1 ^ bits2
        return bits

    rows: jax.Array = jax.vmap(row)(key_data, starts)
    return rows


def _unit_floats(bits: jax.Array) -> jax.Array:
    """float32 in [0, 1) from 32 random bits, as jax.random.uniform."""
    mantissa = lax.shift_right_logical(bits, jnp.uint32(32 - 23))
    one = jnp.uint32(np.array(1.0, np.float32).view(np.uint32))
    floats = lax.bitcast_convert_type(mantissa | one, jnp.float32)
    unit: jax.Array = floats - jnp.float32(1.0)
    return unit


_LAWS = ("uniform", "normal", "clipped_normal")


def _uniform_law(floats: jax.Array, p: list[jax.Array], dtype: np.dtype) -> jax.Array:
    # jax.random.uniform's [0, 1) scaling, then _sampling.uniform.
    a, width, lo, hi = p[:4]
    u = lax.max(jnp.float32(0.0), floats * jnp.float32(1.0) + jnp.float32(0.0))
    return jnp.clip((a + width * u).astype(dtype), lo.astype(dtype), hi.astype(dtype))


def _normal_uniforms(floats: jax.Array) -> jax.Array:
    # jax.random.normal's uniform on (-1, 1).
    minval = jnp.float32(np.nextafter(np.float32(-1.0), np.float32(0.0)))
    maxval = jnp.float32(1.0)
    return lax.max(minval, floats * (maxval - minval) + minval)


def _normal_law(floats: jax.Array, p: list[jax.Array], dtype: np.dtype) -> jax.Array:
    # XLA folds the constants of the initializer's own program
    # mean + std * (sqrt(2) * erf_inv(u)) into mean + (std * sqrt(2)) * erf_inv(u);
    # the plan passes std * sqrt(2), rounded to float32, to give the same bits.
    mean, folded_std = p[:2]
    return (mean + folded_std * lax.erf_inv(_normal_uniforms(floats))).astype(dtype)


def _clipped_normal_law(
    floats: jax.Array, p: list[jax.Array], dtype: np.dtype
) -> jax.Array:
    # _sampling.trunc_normal when both bounds are beyond the normal's reach.
    mean, std, lo, hi, z_lo, z_hi = p
    z = jnp.float32(np.sqrt(2)) * lax.erf_inv(_normal_uniforms(floats))
    z = jnp.clip(z, z_lo, z_hi)
    return jnp.clip((mean + std * z).astype(dtype), lo.astype(dtype), hi.astype(dtype))


@functools.partial(jax.jit, static_argnums=0)
def _draw_block(
    dtype: np.dtype,
    law: jax.Array,
    key: jax.Array,
    hashes: jax.Array,
    starts: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """``_BLOCK_ROWS`` rows of ``_ROW`` values of one law (an index in _LAWS).

    Row r holds values ``starts[r]...`` of the leaf whose path hash is
    ``hashes[r]``, with that leaf's law parameters ``params[r]``. One compiled
    program per output dtype serves every law and every shape.
    """
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, hashes)
    floats = _unit_floats(_threefry_bits(jax.random.key_data(keys), starts))
    p = [params[:, i : i + 1] for i in range(_PARAMS)]
    branches = [
        functools.partial(law_fn, dtype=dtype)
        for law_fn in (_uniform_law, _normal_law, _clipped_normal_law)
    ]
    block: jax.Array = lax.switch(law, branches, floats, p)
    return block


@dataclasses.dataclass
class _Leaf:
    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    plan: _Plan


def _is_threefry(key: jax.Array) -> bool:
    return str(jax.random.key_impl(key)) == "threefry2x32" and bool(
        jax.config.jax_threefry_partitionable  # type: ignore[attr-defined]
    )


def init_tree(key: jax.Array, spec: Mapping[Path, LeafSpec]) -> dict[Path, jax.Array]:
    """Initializes every leaf of a model at once: ``{path: array}``.

    A framework-free whole-model entry point. Each leaf is drawn with its own
    key, ``leaf_key(key, path)``, so its values depend only on the key, its path,
    its initializer, shape and dtype: ``init_tree(key, spec)[path]`` equals
    ``initializer(leaf_key(key, path), shape, dtype)`` bit for bit. The
    difference is speed: leaves that share a law are drawn together by compiled
    programs that do not depend on the shapes, so the first call compiles a
    handful of small programs instead of one per parameter.

    Args:
        key: a JAX PRNG key.
        spec: ``{path: (initializer, shape, dtype)}``; a path is a string or a
            tuple of parts (hashed by name); ``dtype`` None means float32 (or
            the initializer's default dtype).

    Returns:
        A dict with the same paths, each mapped to an array on the default
        device.

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
    """
    key = _checks.key("init_tree", key)
    batched = _is_threefry(key)
    out: dict[Path, jax.Array] = {}
    by_law: dict[tuple[np.dtype, str], list[_Leaf]] = defaultdict(list)
    for path, (init, shape, dtype) in spec.items():
        leaf = _prepare(path, init, shape, dtype) if batched else None
        if leaf is None:
            out[path] = init(leaf_key(key, path), shape, dtype)
        elif leaf.plan.law == "constant":
            value = np.full(leaf.shape, leaf.plan.params[0], leaf.dtype)
            out[path] = jax.device_put(value)
        else:
            by_law[(leaf.dtype, leaf.plan.law)].append(leaf)
    for (dtype, law), leaves in by_law.items():
        _draw_leaves(key, dtype, law, leaves, out)
    return {path: out[path] for path in spec}


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


def _draw_leaves(
    key: jax.Array,
    dtype: np.dtype,
    law: str,
    leaves: list[_Leaf],
    out: dict[Path, jax.Array],
) -> None:
    """Draws leaves of one law, block by block.

    Each leaf goes to the device as soon as its last row is drawn, so host
    memory holds one leaf at a time besides the parameters already placed.
    """
    sizes = [math.prod(leaf.shape) for leaf in leaves]
    row_counts = [-(-size // _ROW) for size in sizes]
    total = sum(row_counts)
    padded = -(-total // _BLOCK_ROWS) * _BLOCK_ROWS
    hashes = np.zeros(padded, np.uint32)
    starts = np.zeros(padded, np.uint32)
    params = np.zeros((padded, _PARAMS), np.float32)
    first_row = 0
    for leaf, rows in zip(leaves, row_counts, strict=True):
        span = slice(first_row, first_row + rows)
        hashes[span] = path_hash(leaf.path)
        starts[span] = np.arange(rows, dtype=np.uint32) * _ROW
        params[span] = leaf.plan.params
        first_row += rows
    law_index = np.int32(_LAWS.index(law))
    pending = list(zip(leaves, sizes, row_counts, strict=True))
    buffer: np.ndarray | None = None
    filled = 0

    def dispatch(block_start: int) -> jax.Array:
        span = slice(block_start, block_start + _BLOCK_ROWS)
        block: jax.Array = _draw_block(
            dtype, law_index, key, hashes[span], starts[span], params[span]
        )
        return block

    # One block in flight while the previous one is copied out: the copies
    # overlap the drawing, and at most two blocks are alive.
    next_block = dispatch(0)
    for block_start in range(0, padded, _BLOCK_ROWS):
        drawn = next_block
        if block_start + _BLOCK_ROWS < padded:
            next_block = dispatch(block_start + _BLOCK_ROWS)
        block = np.asarray(drawn).reshape(-1)
        offset = 0
        while pending and offset < block.size:
            leaf, size, _ = pending[0]
            if buffer is None and size <= block.size - offset:
                # The whole leaf is in this block: one copy, straight to the device.
                values = block[offset : offset + size].reshape(leaf.shape)
                out[leaf.path] = jax.device_put(values)
                offset += -(-size // _ROW) * _ROW
                pending.pop(0)
                continue
            if buffer is None:
                buffer, filled = np.empty(size, dtype), 0
            take = min(size - filled, block.size - offset)
            buffer[filled : filled + take] = block[offset : offset + take]
            filled += take
            # A leaf's last row is padded to _ROW values: skip the padding.
            offset += -(-take // _ROW) * _ROW if filled == size else take
            if filled == size:
                out[leaf.path] = jax.device_put(buffer.reshape(leaf.shape))
                buffer = None
                pending.pop(0)
