"""Tall-skinny QR over row blocks: the orthonormal factor of a matrix on a mesh.

For a tall ``(m, n)`` matrix whose rows are split into ``P`` blocks, one per
device, ``A_i = Q_i R_i`` locally; the stacked ``R_i`` ``(P * n, n)`` factor as
``Q' R'``; then ``A = diag(Q_i) Q' R'``, so Q's block ``i`` is
``Q_i @ Q'[i * n:(i + 1) * n]`` and ``R = R'``. Fixing the signs by ``diag(R')``
gives the unique QR with a positive diagonal, the same Q as one QR of the whole
matrix up to floating-point rounding. Each device holds its rows and ``P``
small ``n x n`` factors, never the whole matrix.
"""

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

# Orthonormality needs full float32 products on accelerators, whose default
# float32 matmul precision is lower (bf16 passes on TPU, TF32 on GPU).
_EXACT = jax.lax.Precision.HIGHEST


def applies(devices: int, rows: int, cols: int) -> bool:
    """Whether a tall ``(rows, cols)`` matrix splits into ``devices`` tall blocks."""
    return devices > 1 and rows % devices == 0 and rows // devices >= cols


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
    cols = matrix.shape[1]
    matrix = jax.lax.with_sharding_constraint(  # type: ignore[no-untyped-call]
        matrix, NamedSharding(mesh, rows_spec)
    )

    def local(block: jax.Array) -> jax.Array:
        q_block, r_block = jnp.linalg.qr(block)
        stacked_r = jax.lax.all_gather(r_block, names, tiled=True)
        # Every device factors the same small (P * n, n) stack itself: redundant
        # O(P * n**3) work, but no second collective to hand out Q's slices.
        q_stack, r = jnp.linalg.qr(stacked_r)
        mine = jax.lax.dynamic_slice_in_dim(
            q_stack, jax.lax.axis_index(names) * cols, cols, axis=0
        )
        signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(mine.dtype)
        return jnp.matmul(q_block, mine * signs, precision=_EXACT)

    mapped = jax.shard_map(local, mesh=mesh, in_specs=rows_spec, out_specs=rows_spec)
    result: jax.Array = mapped(matrix)
    return result
