"""Shard geometry: which rows of a leaf's stream draw one shard of it.

A shard of a leaf is a grid of runs of consecutive values (its flat row-major
positions): the last axis the shard does not span whole, times the axes after
it, repeated over the axes before. Each run becomes rows of the programs
(``_programs``): short even runs packed several to a row with a stride, others
one or more rows of their own. ``tests/test_shard_geometry.py`` checks the rows
against a position oracle, ``arange(size).reshape(shape)[index]``.
"""

import dataclasses
import itertools
import math
from typing import TypeAlias

import numpy as np

from ._programs import ROW

# Consecutive rows with the same (skip, take): (first, end, skip, take, offset
# of their first value in the shard).
Segment: TypeAlias = tuple[int, int, int, int, int]


@dataclasses.dataclass
class Rows:
    """The rows that draw one shard of a leaf, in ``_programs._strided``'s terms.

    The shard's values, flat in row-major order, are the concatenation of
    ``row[skip[r] : skip[r] + take[r]]`` over its rows.
    """

    first: np.ndarray
    run: np.ndarray
    stride: np.ndarray
    skip: np.ndarray
    take: np.ndarray


def shard_rows(shape: tuple[int, ...], index: tuple[slice, ...]) -> Rows:
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
    pairs = ROW // 2
    packed = (
        count >= 2
        and length % 2 == 0
        and stride % 2 == 0
        and 2 * length <= ROW
        and not (starts % 2).any()
    )
    if packed:
        per_row = ROW // length
        index_in_group = np.arange(-(-count // per_row))
        first = (starts[:, None] + index_in_group * per_row * stride) // 2
        runs = np.minimum(per_row, count - index_in_group * per_row)
        take = np.broadcast_to(runs * length, first.shape).reshape(-1)
        rows = take.size
        return Rows(
            first.reshape(-1).astype(np.uint32),
            np.full(rows, length // 2, np.uint32),
            np.full(rows, stride // 2, np.uint32),
            np.zeros(rows, np.int64),
            take.astype(np.int64),
        )
    run_starts = (starts[:, None] + np.arange(count) * stride).reshape(-1)
    odd = run_starts % 2
    per_run = -(-(odd + length) // ROW)
    of_row = np.repeat(np.arange(run_starts.size), per_run)
    piece = np.arange(of_row.size) - np.repeat(np.cumsum(per_run) - per_run, per_run)
    skip = np.where(piece == 0, odd[of_row], 0)
    before = np.where(piece == 0, 0, piece * ROW - odd[of_row])
    return Rows(
        (run_starts[of_row] // 2 + piece * pairs).astype(np.uint32),
        np.full(of_row.size, pairs, np.uint32),
        np.zeros(of_row.size, np.uint32),
        skip.astype(np.int64),
        np.minimum(ROW - skip, length - before).astype(np.int64),
    )


def segments(rows: Rows) -> tuple[Segment, ...]:
    """The runs of rows cut alike, with where their values start in the shard."""
    change = np.flatnonzero((np.diff(rows.skip) != 0) | (np.diff(rows.take) != 0))
    bounds = [0, *(change + 1).tolist(), rows.take.size]
    offsets = np.concatenate([[0], np.cumsum(rows.take)]).tolist()
    return tuple(
        (a, b, int(rows.skip[a]), int(rows.take[a]), int(offsets[a]))
        for a, b in itertools.pairwise(bounds)
    )


def same_cut(a: Rows, b: Rows) -> bool:
    """Whether two shards' rows are cut alike (the same skips and takes)."""
    return bool(np.array_equal(a.skip, b.skip) and np.array_equal(a.take, b.take))
