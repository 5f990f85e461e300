"""jaxinit's random bits: both words of each threefry-2x32 hash.

Element ``i`` (row-major flat index) of a draw takes word ``i % 2`` of
threefry2x32 of the counter ``(0, i // 2)`` under the key. ``jax.random.bits``
xors the two words into one value, one hash per value; using both halves the
hashing. The bits depend only on the index, so a sharded array draws each shard
where it lives with the unsharded bits, and ``init_tree`` can draw any stretch
of a leaf on its own.
"""

import math
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def is_threefry(key: jax.Array) -> bool:
    """Whether a typed or raw key belongs to the threefry PRNG."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)) == "threefry2x32"
    return str(jax.config.jax_default_prng_impl) == "threefry2x32"  # type: ignore[attr-defined]


def threefry_words(key: jax.Array) -> tuple[jax.Array, jax.Array] | None:
    """The two uint32 words of a threefry key, or None for other PRNGs."""
    if not is_threefry(key):
        return None
    data = jax.random.key_data(key) if key.dtype != jnp.uint32 else key
    return data[0], data[1]


Words = TypeVar("Words", jax.Array, np.ndarray)

# Threefry-2x32's rotation distances, alternating by group of four rounds.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0: Words, k1: Words, x0: Words, x1: Words) -> tuple[Words, Words]:
    """Threefry-2x32 (20 rounds), as JAX's primitive, on jax or numpy uint32.

    Written out round by round, XLA fuses it into one loop; JAX's own CPU
    lowering rolls the rounds into a while loop over whole arrays, which was
    slower both to compile and to run here (``benchmarks/bench_prng.py``
    measures the draw). Inputs broadcast. On jax arrays the rounds are lax
    primitives: ``jnp``'s operators trace a nested program each, which was a
    third of a fresh process's first block program.
    """
    if isinstance(x0, np.ndarray) and isinstance(x1, np.ndarray):
        add, xor, rotate = np.add, np.bitwise_xor, _rotate_numpy
    else:
        add, xor, rotate = lax.add, lax.bitwise_xor, _rotate_lax
    schedule = (k0, k1, xor(xor(k0, k1), np.uint32(0x1BD11BDA)))
    x0, x1 = add(x0, k0), add(x1, k1)
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = add(x0, x1)
            x1 = xor(x0, rotate(x1, r))
        x0 = add(x0, schedule[(group + 1) % 3])
        x1 = add(add(x1, schedule[(group + 2) % 3]), np.uint32(group + 1))
    return x0, x1


def _rotate_numpy(x: np.ndarray, r: int) -> np.ndarray:
    rotated: np.ndarray = (x << np.uint32(r)) | (x >> np.uint32(32 - r))
    return rotated


def _rotate_lax(x: jax.Array, r: int) -> jax.Array:
    left = lax.shift_left(x, np.uint32(r))
    return lax.bitwise_or(left, lax.shift_right_logical(x, np.uint32(32 - r)))


def pair_words(
    key_words: jax.Array, counters: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Both words of the hash of each pair counter, row r under ``key_words[r]``.

    ``counters`` is ``(rows, pairs)``; word 0 of counter ``c`` is value ``2 * c``
    of the stream, word 1 value ``2 * c + 1``. Kept apart: interleaved in the
    same program, XLA's fused loop hashes every counter twice, once per word.
    """
    return threefry2x32(
        key_words[:, 0:1], key_words[:, 1:2], jnp.zeros_like(counters), counters
    )


def random_bits32(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """32 random bits per element of ``shape``: the paired stream above.

    Keys of other PRNGs, and arrays of ``2**32`` values or more, use
    ``jax.random.bits``.
    """
    size = math.prod(shape)
    words = threefry_words(key)
    if words is None or size >= 2**32:
        return jax.random.bits(key, shape, jnp.uint32)
    k0, k1 = words
    if shape and shape[-1] % 2 == 0:
        # Pairs run along the last axis: hash a half-width array and interleave
        # its two words, so a shard of the last axis needs only its own pairs.
        half = (*shape[:-1], shape[-1] // 2)
        pair = _flat_index(half)
        hashed = threefry2x32(k0, k1, jnp.zeros_like(pair), pair)
        bits: jax.Array = jnp.stack(hashed, axis=-1).reshape(shape)
        return bits
    index = _flat_index(shape)
    pair = lax.shift_right_logical(index, jnp.uint32(1))
    even, odd = threefry2x32(k0, k1, jnp.zeros_like(pair), pair)
    selected: jax.Array = jnp.where((index & 1) == 0, even, odd)
    return selected


def _flat_index(shape: tuple[int, ...]) -> jax.Array:
    """Row-major flat index of every element, as uint32 (size < 2**32)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        iota = lax.broadcasted_iota(jnp.uint32, shape, axis)
        index = index + iota * jnp.uint32(stride)
        stride *= shape[axis]
    return index


def unit_floats(bits: jax.Array) -> jax.Array:
    """float32 in [0, 1) from 32 random bits (the top 23 as the mantissa)."""
    mantissa = lax.shift_right_logical(bits, jnp.uint32(32 - 23))
    one = jnp.uint32(np.array(1.0, np.float32).view(np.uint32))
    floats = lax.bitcast_convert_type(mantissa | one, jnp.float32)
    unit: jax.Array = floats - jnp.float32(1.0)
    return unit
