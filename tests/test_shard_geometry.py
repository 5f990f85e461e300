"""Shard row geometry against a position oracle.

A shard of a leaf is drawn as rows of its leaf's value stream; each row holds
the values at known flat positions. The oracle is numpy indexing of
``arange(size).reshape(shape)``: the rows of a shard, concatenated, must name
exactly the positions of that shard in row-major order. Shapes of rank 1 to 5,
every axis split, odd offsets and runs that cross row boundaries; then the
same leaves through ``init_tree`` on 8 devices, host and device assembly, with
blocks small enough that shards cross block boundaries.
"""

import itertools

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import jaxinit
from jaxinit import _engine, _programs
from jaxinit._geometry import shard_rows
from jaxinit._programs import ROW
from jaxinit._tree import init_tree

# (shape, axis, parts): the shard grid splits ``axis`` into ``parts`` pieces.
SPLITS = [
    ((4, 4097), 0, 4),  # odd rows: shards start at odd positions, span 2 rows
    ((4, 4097), 1, 1),
    ((3, 3, 64, 128), 3, 8),
    ((3, 3, 64, 128), 0, 3),
    ((3, 3, 64, 128), 1, 3),
    ((3, 3, 64, 128), 2, 8),
    ((2, 3, 5, 6, 8), 4, 4),
    ((2, 3, 5, 6, 8), 3, 2),
    ((2, 3, 5, 6, 8), 2, 5),
    ((2, 3, 5, 6, 8), 1, 3),
    ((2, 3, 5, 6, 8), 0, 2),
    ((4, 2, 3, 3), 1, 2),  # odd runs of 9 after the split axis
    ((8, 3, 2 * ROW + 6), 2, 2),  # runs longer than a row, odd starts
    ((6, 10), 1, 2),  # runs of 5
    ((24, 16), 1, 8),  # short even runs, packed several to a row
    ((64,), 0, 8),
    ((5, ROW), 0, 5),  # one row per shard, exactly
]


def rows_positions(rows, size):
    """The flat positions the rows of a shard hold, in order."""
    pairs = ROW // 2
    j = np.arange(pairs)
    out = []
    for first, run, stride, skip, take in zip(
        rows.first, rows.run, rows.stride, rows.skip, rows.take, strict=True
    ):
        counters = int(first) + (j // int(run)) * int(stride) + j % int(run)
        values = np.stack([2 * counters, 2 * counters + 1], axis=-1).reshape(-1)
        out.append(values[int(skip) : int(skip) + int(take)])
    positions = np.concatenate(out)
    assert positions.max() < size
    return positions


def shard_indices(shape, axis, parts):
    """Every shard's index when ``axis`` is split ``parts`` ways, and a block
    split of two axes when there is a second one."""
    size = shape[axis] // parts
    for part in range(parts):
        index = [slice(None)] * len(shape)
        index[axis] = slice(part * size, (part + 1) * size)
        yield tuple(index)


@pytest.mark.parametrize(("shape", "axis", "parts"), SPLITS)
def test_shard_rows_name_the_shard_positions(shape, axis, parts):
    oracle = np.arange(np.prod(shape)).reshape(shape)
    for index in shard_indices(shape, axis, parts):
        rows = shard_rows(shape, index)
        expected = oracle[index].reshape(-1)
        np.testing.assert_array_equal(
            rows_positions(rows, oracle.size), expected, err_msg=str(index)
        )


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
def test_two_split_axes_name_the_shard_positions(rank):
    shape = (2, 6, 4, 10, 6)[-rank:]
    oracle = np.arange(np.prod(shape)).reshape(shape)
    for a, b in itertools.combinations(range(rank), 2):
        for i, k in itertools.product(range(2), repeat=2):
            index = [slice(None)] * rank
            half_a, half_b = shape[a] // 2, shape[b] // 2
            index[a] = slice(i * half_a, (i + 1) * half_a)
            index[b] = slice(k * half_b, (k + 1) * half_b)
            rows = shard_rows(shape, tuple(index))
            np.testing.assert_array_equal(
                rows_positions(rows, oracle.size),
                oracle[tuple(index)].reshape(-1),
                err_msg=f"{a}, {b}, {index}",
            )


SHARDED = [
    (shape, axis, parts)
    for shape, axis, parts in SPLITS
    if parts in (1, 2, 4, 8) and np.prod(shape) < 2**18
]


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
@pytest.mark.parametrize(("shape", "axis", "parts"), SHARDED)
def test_sharded_init_tree_equals_unsharded(monkeypatch, on_device, shape, axis, parts):
    monkeypatch.setattr(_engine, "DEVICE_ASSEMBLY", on_device)
    monkeypatch.setattr(_programs, "BLOCK_ROWS", 2)
    mesh = jax.make_mesh((parts,), ("model",), devices=jax.devices()[:parts])
    spec = [None] * len(shape)
    spec[axis] = "model"
    sharding = NamedSharding(mesh, P(*spec))
    key = jax.random.key(3)
    leaves = {
        "normal": (jaxinit.normal(), shape, None),
        "uniform": (jaxinit.uniform(-1.0, 2.0), shape, np.dtype("float16")),
    }
    unsharded = init_tree(key, leaves)
    sharded = init_tree(key, leaves, out_shardings=dict.fromkeys(leaves, sharding))
    for path in leaves:
        np.testing.assert_array_equal(
            np.asarray(sharded[path]), np.asarray(unsharded[path]), err_msg=path
        )
