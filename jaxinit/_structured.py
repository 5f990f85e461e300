"""Structured initializers: orthogonal, dirac and sparse.

Each builds the weight in torch order ``(batch..., out..., in..., spatial...)``,
exactly as torch lays it out, then transposes it to the requested layout, so a
Flax kernel is distributed exactly as the transposed torch weight.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from . import _checks, _fans, _sampling, _tsqr
from ._base import (
    LayoutInitializer,
    dtype_field,
    factory,
    layout_fields,
    on_auto_mesh,
    place,
)
from ._typing import Axes, Initializer, OutSharding


def _core_rank(shape: tuple[int, ...], batch_axis: tuple[int, ...]) -> int:
    return len(shape) - len(batch_axis)


def _from_torch_order(weight: jax.Array, axes: _fans.ResolvedAxes) -> jax.Array:
    """Transposes a weight built in torch order back to the caller's axis order."""
    inverse = tuple(int(axis) for axis in np.argsort(axes.torch_order))
    return jnp.transpose(weight, inverse)


def _orthonormal(matrix: jax.Array) -> jax.Array:
    """Q of the QR of a (..., rows, cols) Gaussian matrix, signs fixed by diag(R).

    The sign fix makes Q Haar-distributed. Wide matrices are factored transposed,
    so the result has orthonormal rows when rows < cols, columns otherwise.
    """
    wide = matrix.shape[-2] < matrix.shape[-1]
    if wide:
        matrix = jnp.swapaxes(matrix, -1, -2)
    q, r = jnp.linalg.qr(matrix)
    signs = jnp.where(jnp.diagonal(r, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    q = q * signs[..., None, :].astype(q.dtype)
    return jnp.swapaxes(q, -1, -2) if wide else q


@dataclasses.dataclass(frozen=True, repr=False)
class _Orthogonal(LayoutInitializer):
    name = "orthogonal"
    gain: float = 1.0
    dtype: str | None = None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if _core_rank(shape, self.batch_axis) < 2:
            raise ValueError(
                "orthogonal: Only tensors with 2 or more dimensions are supported; got "
                f"shape {shape}"
            )
        self.axes(shape)

    def _matrix(
        self, shape: tuple[int, ...]
    ) -> tuple[_fans.ResolvedAxes, tuple[int, ...], tuple[int, ...], int, int]:
        """The axes, torch-order shape, batch dims and matrix ``(rows, cols)``."""
        axes = self.axes(shape)
        torch_shape = tuple(shape[axis] for axis in axes.torch_order)
        batch = torch_shape[: len(axes.batch_axes)]
        rows = math.prod(shape[axis] for axis in axes.out_axes)
        cols = math.prod(torch_shape) // (math.prod(batch) * rows)
        return axes, torch_shape, batch, rows, cols

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        # An entry of a Haar matrix can be +-1 (always, on a 1-wide side).
        _sampling.check_representable(self.name, "gain", self.gain, dtype)
        axes, torch_shape, batch, rows, cols = self._matrix(shape)
        # QR runs at float32 at least: LAPACK (and torch) have no half-precision QR.
        draw = jax.random.normal(
            key, (*batch, rows, cols), _sampling.compute_dtype(dtype)
        )
        weight = (self.gain * _orthonormal(draw)).astype(dtype).reshape(torch_shape)
        return _from_torch_order(weight, axes)

    def _generate_sharded(
        self,
        key: Any,
        shape: tuple[int, ...],
        dtype: np.dtype,
        out_sharding: OutSharding,
    ) -> jax.Array:
        # A tall-skinny QR over row blocks when every device gets a tall block;
        # otherwise (batch axes, one device, uneven or too short blocks) the full
        # QR of the base class, which every device runs whole.
        _sampling.check_representable(self.name, "gain", self.gain, dtype)
        axes, torch_shape, batch, rows, cols = self._matrix(shape)
        mesh = _mesh_of(out_sharding)
        wide = rows < cols
        tall, skinny = (cols, rows) if wide else (rows, cols)
        if batch or mesh is None or not _tsqr.applies(mesh.size, tall, skinny):
            return super()._generate_sharded(key, shape, dtype, out_sharding)

        def build(key: Any) -> jax.Array:
            # Drawn whole, as _generate does, so the Gaussian bits are the
            # unsharded ones; the row constraint inside makes each device draw
            # only its rows.
            draw = jax.random.normal(key, (rows, cols), _sampling.compute_dtype(dtype))
            blocks_mesh = _mesh_inside(out_sharding, mesh)
            if wide:
                q = _tsqr.orthonormal_columns(draw.T, blocks_mesh).T
            else:
                q = _tsqr.orthonormal_columns(draw, blocks_mesh)
            weight = (self.gain * q).astype(dtype).reshape(torch_shape)
            return _from_torch_order(weight, axes)

        return place(build, key, out_sharding)


def _mesh_inside(
    out_sharding: OutSharding, mesh: jax.sharding.Mesh | jax.sharding.AbstractMesh
) -> jax.sharding.Mesh | jax.sharding.AbstractMesh:
    """The mesh to constrain to while ``place`` traces a build.

    The sharding's own on an auto mesh; under ``auto_axes`` (explicit meshes)
    the context mesh, whose axes are Auto there.
    """
    return mesh if on_auto_mesh(out_sharding) else jax.sharding.get_abstract_mesh()


def _mesh_of(
    out_sharding: OutSharding,
) -> jax.sharding.Mesh | jax.sharding.AbstractMesh | None:
    """The mesh a NamedSharding, or a bare spec under ``jax.set_mesh``, lays out."""
    if isinstance(out_sharding, jax.sharding.NamedSharding):
        return out_sharding.mesh
    if isinstance(out_sharding, jax.sharding.PartitionSpec):
        context = jax.sharding.get_abstract_mesh()
        return None if context.empty else context
    return None


@factory
def orthogonal(
    gain: float = 1.0,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer of a (semi-)orthogonal matrix times ``gain``.

    As ``torch.nn.init.orthogonal_``: the weight is viewed as a matrix
    ``(rows, cols)`` with ``rows`` = the output size (torch's dim 0) and ``cols``
    everything else; a Gaussian matrix is QR-factored and its Q, with signs fixed
    by ``diag(R)``, is Haar-distributed. Rows are orthonormal when
    ``rows <= cols`` (``W W^T = gain**2 I``), columns otherwise. In Flax layout
    ``(*spatial, in, out)`` the output axis is -1; the kernel is distributed as
    the transposed torch weight. Works in bfloat16 and float16 (QR runs at
    float32, then the result is rounded), where torch and JAX both fail. Batch
    axes hold independent matrices.

    Sharded: with ``out_sharding=`` on a mesh of ``P > 1`` devices, when the
    matrix's long side splits into ``P`` blocks at least as long as its short side
    (and there are no batch axes), a tall-skinny QR over row blocks replaces the
    full QR: each device draws and factors its block, and the ``P`` small ``R``
    factors are merged pairwise in ``ceil(log2 P)`` levels of collective
    permutes, so per-device memory is O(shard + short**2), never the whole
    matrix. The Q is the unsharded one up to rounding (the QR with a positive
    diag(R) is unique), so the law is the same and orthonormality holds; the
    bits depend on ``P`` only (which rows form a block and the shape of the
    tree), not on the mesh's shape or the spec. Other shapes run the full QR
    on every device and give the unsharded bits. Under an outer
    ``jax.jit(..., out_shardings=...)`` without ``out_sharding=``, the initializer
    cannot see the sharding and also runs the full QR on every device.

    Differs from ``jax.nn.initializers.orthogonal(scale, column_axis)``: torch's
    ``gain`` name, layout-aware output axis, low-precision support, and a sharded
    construction (jax's raises NotImplementedError for ``out_sharding``).

    Args:
        gain: scaling factor, finite and ``>= 0``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes (the rows), overriding the layout.
        batch_axis: axes of independent matrices.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``gain`` is not a real number.
        ValueError: ``gain`` NaN, infinite or negative; at call time, rank < 2.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit
        >>> w = jaxinit.orthogonal()(jax.random.key(0), (64, 32))  # Dense (in, out)
        >>> bool(jnp.allclose(w.T @ w, jnp.eye(32), atol=1e-5))
        True
        >>> jaxinit.orthogonal()(jax.random.key(0), (64, 32), jnp.bfloat16).dtype
        dtype(bfloat16)

    References:
        Saxe et al., `Exact solutions to the nonlinear dynamics of learning in deep
        linear neural networks <https://arxiv.org/abs/1312.6120>`_, 2014.
        ``torch.nn.init.orthogonal_``.
    """
    owner = "orthogonal"
    return _Orthogonal(
        gain=_checks.real(
            owner, "gain", gain, minimum=0.0, allowed="a finite number >= 0"
        ),
        dtype=dtype_field(owner, dtype, exact_ok=False),
        **layout_fields(owner, layout, in_axis, out_axis, batch_axis),
    )


@dataclasses.dataclass(frozen=True, repr=False)
class _Sparse(LayoutInitializer):
    name = "sparse"
    sparsity: float = 0.0
    std: float = 0.01
    dtype: str | None = None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if _core_rank(shape, self.batch_axis) != 2:
            raise ValueError(
                "sparse: Only tensors with 2 dimensions are supported; got shape "
                f"{shape}"
            )
        self.axes(shape)

    def _generate(
        self,
        key: Any,
        shape: tuple[int, ...],
        dtype: np.dtype,
        by_columns: jax.sharding.NamedSharding | None = None,
    ) -> jax.Array:
        axes = self.axes(shape)
        torch_shape = tuple(shape[axis] for axis in axes.torch_order)
        rows = torch_shape[-2]
        num_zeros = math.ceil(self.sparsity * rows)  # torch's float arithmetic
        values_key, mask_key = jax.random.split(key)
        values = _sampling.normal(
            self.name, values_key, torch_shape, dtype, 0.0, self.std
        )
        zero_mask = _exact_count_mask(mask_key, torch_shape, num_zeros, by_columns)
        weight = jnp.where(zero_mask, jnp.zeros((), dtype), values)
        return _from_torch_order(weight, axes)

    def _generate_sharded(
        self,
        key: Any,
        shape: tuple[int, ...],
        dtype: np.dtype,
        out_sharding: OutSharding,
    ) -> jax.Array:
        # The mask walks down each column: with the columns split over the
        # devices, each device walks only its own. Uneven splits and batch axes
        # take the base class's path, where every device builds the whole mask.
        cols = shape[self.axes(shape).torch_order[-1]]  # torch's (rows, cols)
        mesh = _mesh_of(out_sharding)
        if self.batch_axis or mesh is None or mesh.size == 1 or cols % mesh.size:
            return super()._generate_sharded(key, shape, dtype, out_sharding)

        def build(key: Any) -> jax.Array:
            columns_mesh = _mesh_inside(out_sharding, mesh)
            names = tuple(columns_mesh.axis_names)
            by_columns = jax.sharding.NamedSharding(
                columns_mesh,
                jax.sharding.PartitionSpec(None, names),  # type: ignore[no-untyped-call]
            )
            return self._generate(key, shape, dtype, by_columns)

        return place(build, key, out_sharding)


def _exact_count_mask(
    key: Any,
    shape: tuple[int, ...],
    count: int,
    by_columns: jax.sharding.NamedSharding | None = None,
) -> jax.Array:
    """A boolean mask with exactly ``count`` True per column (axis -2).

    Selection sampling (Knuth's Algorithm S), all columns at once: walking down
    the rows, row ``i`` is taken with probability needed / remaining, so every
    ``count``-subset of rows is equally likely, as torch's ``randperm`` prefix.
    The walk is a scan over rows, linear in the size; two argsorts of random
    scores (the obvious vectorization) cost ~50x more on CPU. ``by_columns``
    (for a 2-D shape) splits the walk's columns over a mesh's devices.
    """
    rows = shape[-2]
    # Rows first, so the scan walks them; one uniform per entry.
    uniforms = jnp.moveaxis(jax.random.uniform(key, shape, jnp.float32), -2, 0)
    if by_columns is not None:
        # (rows, cols) split by columns: the partitioner keeps the walk local.
        uniforms = jax.lax.with_sharding_constraint(uniforms, by_columns)  # type: ignore[no-untyped-call]

    def take_row(
        taken: jax.Array, row: tuple[jax.Array, jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        index, uniform = row
        needed = count - taken
        remaining = rows - index
        # needed == remaining forces the take, so the count is exact whatever
        # the float rounding of the comparison.
        scaled = uniform * remaining.astype(uniform.dtype)
        take = (needed == remaining) | (scaled < needed.astype(uniform.dtype))
        return taken + take.astype(taken.dtype), take

    start = jnp.zeros(uniforms.shape[1:], jnp.int32)
    _, mask = jax.lax.scan(
        take_row, start, (jnp.arange(rows, dtype=jnp.int32), uniforms)
    )
    return jnp.moveaxis(mask, 0, -2)


@factory
def sparse(
    sparsity: float,
    std: float = 0.01,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer of a sparse matrix with ``N(0, std**2)`` non-zeros.

    As ``torch.nn.init.sparse_`` (Martens 2010): for a torch weight ``(out, in)``,
    each column (one input feature) gets exactly ``ceil(sparsity * out)`` zeros at
    random rows. On a Flax kernel ``(in, out)`` that is each *row*. Unlike torch,
    whose zero pattern ignores its generator, the pattern comes from the key. The
    mask is drawn for all columns at once (selection sampling, linear time), so
    the traced program does not grow with the number of columns. 2-D only (plus
    batch axes).

    Args:
        sparsity: fraction of each column set to zero, in ``[0, 1]``.
        std: standard deviation of the non-zero values, finite and ``>= 0``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis, overriding the layout.
        out_axis: output axis, overriding the layout.
        batch_axis: axes of independent matrices.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: a parameter is not a real number.
        ValueError: ``sparsity`` outside ``[0, 1]``, ``std`` negative or not finite;
            at call time, a shape that is not 2-D.

    Examples:
        >>> import jax, jaxinit
        >>> w = jaxinit.sparse(sparsity=0.25)(jax.random.key(0), (10, 8))  # (in, out)
        >>> (w == 0).sum(axis=1).tolist()  # ceil(0.25 * 8) = 2 zeros per input
        [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]

    References:
        Martens, `Deep learning via Hessian-free optimization
        <https://www.cs.toronto.edu/~jmartens/docs/Deep_HessianFree.pdf>`_, 2010.
        ``torch.nn.init.sparse_``.
    """
    owner = "sparse"
    fraction = _checks.real(owner, "sparsity", sparsity, allowed="a number in [0, 1]")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"sparse: sparsity must be a number in [0, 1], got {fraction}")
    return _Sparse(
        sparsity=fraction,
        std=_checks.real(
            owner, "std", std, minimum=0.0, allowed="a finite number >= 0"
        ),
        dtype=dtype_field(owner, dtype, exact_ok=False),
        **layout_fields(owner, layout, in_axis, out_axis, batch_axis),
    )


@dataclasses.dataclass(frozen=True, repr=False)
class _Dirac(LayoutInitializer):
    name = "dirac"
    needs_key = False
    groups: int = 1
    dtype: str | None = None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if not 3 <= _core_rank(shape, self.batch_axis) <= 5:
            raise ValueError(
                "dirac: Only tensors with 3, 4, or 5 dimensions are supported; got "
                f"shape {shape}"
            )
        axes = self.axes(shape)
        if len(axes.in_axes) != 1 or len(axes.out_axes) != 1:
            raise ValueError("dirac: needs exactly one in_axis and one out_axis")
        out_channels = shape[axes.out_axes[0]]
        if out_channels % self.groups:
            raise ValueError(
                f"dirac: the output channels ({out_channels}, axis {axes.out_axes[0]}) "
                f"must be divisible by groups={self.groups} (torch: dim 0 must be "
                "divisible by groups)"
            )
        kernel = tuple(shape[axis] for axis in axes.spatial_axes)
        if 0 in kernel:
            raise ValueError(f"dirac: the kernel size {kernel} has a zero dimension")

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        axes = self.axes(shape)
        out_channels, in_channels = shape[axes.out_axes[0]], shape[axes.in_axes[0]]
        kernel = tuple(shape[axis] for axis in axes.spatial_axes)
        weight = np.zeros(tuple(shape[axis] for axis in axes.torch_order), dtype)
        per_group = out_channels // self.groups
        diagonal = np.arange(min(per_group, in_channels))
        outs = (np.arange(self.groups)[:, None] * per_group + diagonal).ravel()
        ins = np.tile(diagonal, self.groups)
        centre = tuple(k // 2 for k in kernel)
        index: tuple[Any, ...] = (..., outs, ins, *centre)
        weight[index] = 1
        return _from_torch_order(jnp.asarray(weight), axes)


@factory
def dirac(
    groups: int = 1,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer of the identity convolution, as ``torch.nn.init.dirac_``.

    For each group ``g`` and ``d < min(out // groups, in)``, the kernel is 1
    between input channel ``d`` and output channel ``g * (out // groups) + d`` at
    the centre tap ``k // 2`` of every spatial axis (the tap after the centre
    for even ``k``), 0 elsewhere. A convolution with this kernel, padding ``k // 2``
    and ``feature_group_count=groups`` returns its input. Flax Conv kernels are
    ``(*spatial, in // groups, out)``; ``layout="torch"`` reads ``(out, in, *k)``.
    Any dtype works; the key is ignored.

    Args:
        groups: the number of convolution groups, an integer ``>= 1``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: the input-channel axis, overriding the layout.
        out_axis: the output-channel axis, overriding the layout.
        batch_axis: axes of independent copies.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``groups`` is not an integer.
        ValueError: ``groups < 1``; at call time, a shape not 3- to 5-D, output
            channels not divisible by ``groups``, or a zero kernel size.

    Examples:
        >>> import jaxinit
        >>> w = jaxinit.dirac()(None, (3, 3, 4, 4))  # Flax Conv kernel
        >>> w[1, 1].tolist() == [[float(i == o) for o in range(4)] for i in range(4)]
        True
        >>> float(w.sum())
        4.0
    """
    owner = "dirac"
    return _Dirac(
        groups=_checks.integer(owner, "groups", groups, minimum=1),
        dtype=dtype_field(owner, dtype, exact_ok=True),
        **layout_fields(owner, layout, in_axis, out_axis, batch_axis),
    )
