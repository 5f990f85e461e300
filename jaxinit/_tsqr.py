"""Tall-skinny QR over row blocks: the orthonormal factor of a matrix on a mesh.

For a tall ``(m, n)`` matrix whose rows are split into ``P`` blocks, one per
device, ``A_i = Q_i R_i`` locally. The ``R_i`` are then merged by a binary tree:
at level ``l`` each group of ``2**l`` consecutive devices swaps its ``R`` with
the neighbouring group (a collective permute) and both sides factor the same
stack ``[R_low; R_high] = Q' R'`` (``2n x n``), keeping the half of ``Q'`` that
multiplies their own ``R``. After ``ceil(log2 P)`` levels every device holds the
final ``R`` and the product ``S_i`` of its halves, and Q's block ``i`` is
``Q_i @ S_i``. Fixing the signs by ``diag(R)`` gives the unique QR with a
positive diagonal: the same Q as one QR of the whole matrix up to rounding.
Each device holds its rows and a few ``n x n`` factors, never the whole matrix
nor all ``P`` factors. The rounding, hence the bits, depends on ``P`` only.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

from . import _compat

# Orthonormality needs full float32 products on accelerators, whose default
# float32 matmul precision is lower (bf16 passes on TPU, TF32 on GPU).
_EXACT = jax.lax.Precision.HIGHEST


def applies(devices: int, rows: int, cols: int) -> bool:
    """Whether a tall ``(rows, cols)`` matrix splits into ``devices`` tall blocks."""
    return devices > 1 and rows % devices == 0 and rows // devices >= cols


def _level(devices: int, width: int) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """One level of the tree, groups of ``width`` devices merging pairwise.

    Returns each device's side (1: the low group, 0: the high group, -1: its
    group has no neighbour yet, when ``devices`` is not a power of two) and the
    ``(source, destination)`` pairs that bring each device the neighbouring
    group's ``R``, split into rounds in which no device sends twice (a partial
    high group serves several devices of its full low neighbour).
    """
    side = np.full(devices, -1, np.int32)
    rounds: list[list[tuple[int, int]]] = []
    for device in range(devices):
        group = device // width
        start = (group ^ 1) * width
        if start >= devices:
            continue
        size = min(start + width, devices) - start
        side[device] = 1 - group % 2
        source = start + device % width % size
        for pairs in rounds:
            if all(source != sent for sent, _ in pairs):
                pairs.append((source, device))
                break
        else:
            rounds.append([(source, device)])
    return side, rounds


def orthonormal_columns(matrix: jax.Array, mesh: Mesh | AbstractMesh) -> jax.Array:
    """Q of the QR of a tall ``(m, n)`` matrix, signs fixed by diag(R), on ``mesh``.

    The rows are split over all the mesh's devices, in the order of
    ``mesh.axis_names`` (``applies(mesh.size, m, n)`` must hold), and the result
    keeps that row sharding. ``matrix`` is constrained to it first, so a matrix
    drawn by ``jax.random`` just before is drawn block by block where it lives.

    Args:
        matrix: a tall ``(m, n)`` float matrix, ``m >= n``.
        mesh: the devices; all its axes must be Auto in the current context.

    Returns:
        The ``(m, n)`` matrix Q with orthonormal columns, row-sharded over ``mesh``.
    """
    names = tuple(mesh.axis_names)
    rows_spec = PartitionSpec(names)  # type: ignore[no-untyped-call]
    devices, cols = mesh.size, matrix.shape[1]
    matrix = jax.lax.with_sharding_constraint(  # type: ignore[no-untyped-call]
        matrix, NamedSharding(mesh, rows_spec)
    )

    def local(block: jax.Array) -> jax.Array:
        q_block, r = jnp.linalg.qr(block)
        me = jax.lax.axis_index(names)
        product: jax.Array | None = None
        width = 1
        while width < devices:
            sides, rounds = _level(devices, width)
            side = jnp.asarray(sides)[me]
            other = jnp.zeros_like(r)
            for pairs in rounds:
                received = jax.lax.ppermute(r, names, pairs)  # type: ignore[no-untyped-call]
                takes = np.zeros(devices, bool)
                takes[[destination for _, destination in pairs]] = True
                other = jnp.where(jnp.asarray(takes)[me], received, other)
            low = side == 1
            # Both groups factor the same stack, low group's R on top, so every
            # device of the merged group gets the same R.
            stack = jnp.concatenate(
                [jnp.where(low, r, other), jnp.where(low, other, r)]
            )
            q_stack, merged = jnp.linalg.qr(stack)
            half = jnp.where(low, q_stack[:cols], q_stack[cols:])
            step = (
                half if product is None else jnp.matmul(product, half, precision=_EXACT)
            )
            if (sides >= 0).all():
                product, r = step, merged
            else:  # a group without a neighbour at this level keeps its factors
                merging = side >= 0
                kept = jnp.eye(cols, dtype=half.dtype) if product is None else product
                product = jnp.where(merging, step, kept)
                r = jnp.where(merging, merged, r)
            width *= 2
        assert product is not None  # devices > 1: at least one level
        signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(product.dtype)
        return jnp.matmul(q_block, product * signs, precision=_EXACT)

    mapped = _compat.shard_map(
        local, mesh=mesh, in_specs=rows_spec, out_specs=rows_spec
    )
    result: jax.Array = mapped(matrix)
    return result
