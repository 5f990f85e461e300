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
"""

import dataclasses
import functools
import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import DTypeLike

from . import _bits, _checks, _sampling
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
        fan_in, fan_out = init.axes(shape).fans(shape)
        std = init.std(fan_in, fan_out)
        if init.distribution == "normal":
            return _batched(_sampling.normal_plan(init.name, dtype, 0.0, std))
        bound = math.sqrt(3.0) * std
        return _batched(_sampling.uniform_plan(init.name, dtype, -bound, bound))
    return None


def _batched(plan: _sampling.Plan) -> _Plan | None:
    """A sampler's plan padded to ``_PARAMS``; None for laws drawn per leaf."""
    law, params = plan
    if law != "constant" and law not in _LAWS:
        return None
    return _Plan(law, params + (0.0,) * (_PARAMS - len(params)))


def _leaf_key_words(key: jax.Array, hashes: np.ndarray) -> np.ndarray:
    """``key_data(fold_in(key, h))`` for every hash, computed on the host.

    JAX's threefry ``fold_in(key, h)`` is the hash of the counter ``(0, h)``
    under ``key``; doing it in numpy keeps it out of the compiled programs.
    """
    words = np.asarray(jax.random.key_data(key), np.uint32)
    k0 = np.full(hashes.shape, words[0], np.uint32)
    k1 = np.full(hashes.shape, words[1], np.uint32)
    high, low = _bits.threefry2x32(k0, k1, np.zeros_like(hashes), hashes)
    return np.stack([high, low], axis=-1)


_LAWS = ("uniform", "normal", "clipped_normal")
# The samplers' own law functions: each leaf runs its own call's arithmetic.
_LAW_FNS = {name: _sampling.LAWS[name] for name in _LAWS}


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
    unit = _bits.unit_floats(bits)
    p = [params[:, i : i + 1] for i in range(_PARAMS)]
    branches = [functools.partial(_LAW_FNS[name], dtype=dtype) for name in laws]
    block: jax.Array = lax.switch(law, branches, unit, p)
    return block


@dataclasses.dataclass
class _Leaf:
    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    plan: _Plan


def _can_batch(key: jax.Array) -> bool:
    """Whether the batched programs apply: a concrete threefry key.

    Under an outer ``jax.jit`` the key is traced and every leaf is drawn by its
    own call, inside the caller's program.
    """
    if isinstance(key, jax.core.Tracer):
        return False
    return _bits.is_threefry(key)


def init_tree(key: jax.Array, spec: Mapping[PathT, LeafSpec]) -> dict[PathT, jax.Array]:
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
    batched = _can_batch(key)
    out: dict[Path, jax.Array] = {}
    by_law: dict[tuple[np.dtype, str], list[_Leaf]] = defaultdict(list)
    constants: dict[Path, np.ndarray] = {}
    for path, (init, shape, dtype) in spec.items():
        leaf = _prepare(path, init, shape, dtype) if batched else None
        if leaf is None:
            out[path] = init(leaf_key(key, path), shape, dtype)
        elif leaf.plan.law == "constant":
            value = _aligned_empty(math.prod(leaf.shape), leaf.dtype)
            value.fill(leaf.plan.params[0])
            constants[path] = value.reshape(leaf.shape)
        else:
            by_law[(leaf.dtype, leaf.plan.law)].append(leaf)
    out.update(zip(constants, jax.device_put(list(constants.values())), strict=True))
    for dtype in dict.fromkeys(dtype for dtype, _ in by_law):
        laws = tuple(law for law in _LAWS if (dtype, law) in by_law)
        for law in laws:
            _draw_leaves(key, dtype, laws, law, by_law[(dtype, law)], out)
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


def _aligned_empty(size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialized host array whose data is 64-byte aligned.

    jax.device_put uses such an array in place on CPU; numpy's own large
    allocations are 16-byte aligned, which jax copies.
    """
    nbytes = size * dtype.itemsize
    raw = np.empty(nbytes + _ALIGN, np.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip : skip + nbytes].view(dtype)


def _draw_leaves(
    key: jax.Array,
    dtype: np.dtype,
    laws: tuple[str, ...],
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
    key_words = np.zeros((padded, 2), np.uint32)
    first_pairs = np.zeros(padded, np.uint32)
    params = np.zeros((padded, _PARAMS), np.float32)
    hashes = np.array([path_hash(leaf.path) for leaf in leaves], np.uint32)
    leaf_words = _leaf_key_words(key, hashes)
    first_row = 0
    for words, leaf, rows in zip(leaf_words, leaves, row_counts, strict=True):
        span = slice(first_row, first_row + rows)
        key_words[span] = words
        first_pairs[span] = np.arange(rows, dtype=np.uint32) * (_ROW // 2)
        params[span] = leaf.plan.params
        first_row += rows
    law_index = np.int32(laws.index(law))
    pending = list(zip(leaves, sizes, strict=True))
    buffer: np.ndarray | None = None
    filled = 0

    def dispatch(block_start: int) -> jax.Array:
        span = slice(block_start, block_start + _BLOCK_ROWS)
        block: jax.Array = _draw_block(
            dtype, laws, law_index, key_words[span], first_pairs[span], params[span]
        )
        return block

    # One block in flight while the previous one is copied out: the copies
    # overlap the drawing, and at most two blocks are alive. Each leaf is
    # copied once, into its own aligned buffer, which the device then uses in
    # place, so no leaf holds on to a block.
    next_block = dispatch(0)
    for block_start in range(0, padded, _BLOCK_ROWS):
        drawn = next_block
        if block_start + _BLOCK_ROWS < padded:
            next_block = dispatch(block_start + _BLOCK_ROWS)
        block = np.asarray(drawn).reshape(-1)
        offset = 0
        done: dict[Path, np.ndarray] = {}
        while pending and offset < block.size:
            leaf, size = pending[0]
            if buffer is None:
                buffer, filled = _aligned_empty(size, dtype), 0
            take = min(size - filled, block.size - offset)
            buffer[filled : filled + take] = block[offset : offset + take]
            filled += take
            # A leaf's last row is padded to _ROW values: skip the padding.
            offset += -(-take // _ROW) * _ROW if filled == size else take
            if filled == size:
                done[leaf.path] = buffer.reshape(leaf.shape)
                buffer = None
                pending.pop(0)
        # One placement call per block: per-array calls cost ~0.4 ms each.
        out.update(zip(done, jax.device_put(list(done.values())), strict=True))
