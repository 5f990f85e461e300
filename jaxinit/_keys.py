"""Paths and leaf keys: the key ``init_tree`` gives each leaf, on device and host.

A leaf's key depends on the model's key and the leaf's path name only, so its
values do not change when other leaves are added or removed. The draw engine
reads keys as words on the host: both folds of ``leaf_key`` are threefry
hashes, which numpy computes for every leaf at once (``_bits.threefry2x32``),
keeping a second hash out of the compiled programs.
"""

import hashlib
import struct
from collections.abc import Hashable, Sequence
from typing import TypeAlias, TypeVar

import jax
import numpy as np

from . import _bits, _checks

Path: TypeAlias = Hashable
PathT = TypeVar("PathT", bound=Hashable)


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
        >>> import jax, jaxinit
        >>> key = jax.random.key(0)
        >>> a = jaxinit.leaf_key(key, ("encoder", "kernel"))
        >>> b = jaxinit.leaf_key(key, "encoder/kernel")
        >>> bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
        True
    """
    key = _checks.key("init_tree", key)
    high, low = path_words(path)
    return jax.random.fold_in(jax.random.fold_in(key, np.uint32(high)), np.uint32(low))


def host_words(key: jax.Array) -> np.ndarray:
    """A concrete threefry key's two uint32 words, on the host."""
    data = key if key.dtype == np.uint32 else jax.random.key_data(key)
    return np.asarray(data, np.uint32)


def leaf_key_words(key: jax.Array, paths: Sequence[Path]) -> np.ndarray:
    """``key_data(leaf_key(key, path))`` for every path, ``(len(paths), 2)``.

    JAX's threefry ``fold_in(key, w)`` is the hash of the counter ``(0, w)``
    under ``key``; both folds are done here in numpy, for every path at once.
    """
    words = host_words(key)
    hashed = np.array([path_words(path) for path in paths], np.uint32).reshape(-1, 2)
    zeros = np.zeros(len(hashed), np.uint32)
    k0 = np.full(len(hashed), words[0], np.uint32)
    k1 = np.full(len(hashed), words[1], np.uint32)
    k0, k1 = _bits.threefry2x32(k0, k1, zeros, hashed[:, 0])
    k0, k1 = _bits.threefry2x32(k0, k1, zeros, hashed[:, 1])
    return np.stack([k0, k1], axis=-1)
