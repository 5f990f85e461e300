"""Structure of the non-i.i.d. initializers: orthogonality, eye, dirac as an
identity convolution, sparse zero counts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from _stats import ALPHA, assert_ks, assert_moments
from cases import to_torch_layout

import jaxinit

ORTHO_TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "bfloat16": 3e-2, "float16": 3e-3}


def _as_torch_matrix(weight: jax.Array, layout: str) -> np.ndarray:
    """The (rows, cols) matrix torch's orthogonal_ makes orthonormal."""
    torch_weight = weight if layout == "torch" else to_torch_layout(weight)
    matrix = np.asarray(
        torch_weight.astype(jnp.float64 if weight.dtype == jnp.float64 else jnp.float32)
    )
    return matrix.reshape(matrix.shape[0], -1).astype(np.float64)


def _assert_orthonormal(matrix: np.ndarray, gain: float, tolerance: float) -> None:
    rows, cols = matrix.shape
    gram = matrix @ matrix.T if rows <= cols else matrix.T @ matrix
    np.testing.assert_allclose(
        gram, gain**2 * np.eye(min(rows, cols)), atol=tolerance * max(gain**2, 1)
    )


ORTHO_SHAPES = [
    (3, 5),
    (5, 3),
    (4, 4),
    (4, 2, 3, 3),
    (16, 2, 3),
    (1, 7),
    (7, 1),
    (64, 32, 3, 3),
]


@pytest.mark.parametrize("torch_shape", ORTHO_SHAPES, ids=str)
@pytest.mark.parametrize("layout", ["flax", "torch"])
@pytest.mark.parametrize(
    ("gain", "dtype"),
    [
        (1.0, "float32"),
        (2.5, "float32"),
        (1.0, "bfloat16"),
        (0.5, "float16"),
        (1.0, "float64"),
    ],
)
def test_orthogonal_is_orthonormal(torch_shape, layout, gain, dtype):
    shape = (
        torch_shape
        if layout == "torch"
        else (*torch_shape[2:], torch_shape[1], torch_shape[0])
    )
    with jax.enable_x64(dtype == "float64"):
        weight = jaxinit.orthogonal(gain, layout=layout)(
            jax.random.key(3), shape, jnp.dtype(dtype)
        )
        assert weight.dtype == jnp.dtype(dtype) and weight.shape == shape
        _assert_orthonormal(
            _as_torch_matrix(weight, layout), gain, ORTHO_TOLERANCE[dtype]
        )


def test_orthogonal_batch_axis_gives_independent_matrices():
    weight = jaxinit.orthogonal(batch_axis=0)(jax.random.key(0), (4, 8, 8))
    for matrix in np.asarray(weight):
        _assert_orthonormal(matrix.T, 1.0, 1e-5)
    assert not np.allclose(weight[0], weight[1])


def test_orthogonal_is_haar():
    """Haar on O(2): the rotation angle is uniform and det = +-1 equally often."""
    draws = jax.vmap(lambda k: jaxinit.orthogonal()(k, (2, 2)))(
        jax.random.split(jax.random.key(11), 20000)
    )
    q = np.asarray(draws, dtype=np.float64)
    angles = np.arctan2(q[:, 1, 0], q[:, 0, 0])
    assert_ks(angles, scipy.stats.uniform(-np.pi, 2 * np.pi))
    dets = np.linalg.det(q)
    np.testing.assert_allclose(np.abs(dets), 1, atol=1e-5)
    # Binomial(20000, 1/2) count of det = +1: mean 10000, std 70.7.
    assert abs((dets > 0).sum() - 10000) < 4.9 * 70.7


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (0, 3)])
def test_eye(shape):
    np.testing.assert_array_equal(jaxinit.eye()(None, shape), np.eye(*shape))
    assert jaxinit.eye_(None, shape, dtype=jnp.int32).dtype == jnp.int32


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("kernel", [(3,), (3, 3), (3, 5, 3)])
def test_dirac_is_an_identity_convolution(groups, kernel):
    channels = 8
    ndim = len(kernel)
    weight = jaxinit.dirac(groups)(None, (*kernel, channels // groups, channels))
    x = jax.random.normal(jax.random.key(0), (2, *([7] * ndim), channels))
    spatial = "DHW"[-ndim:]
    dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    y = jax.lax.conv_general_dilated(
        x,
        weight,
        window_strides=(1,) * ndim,
        padding=[(k // 2, k // 2) for k in kernel],
        dimension_numbers=dims,
        feature_group_count=groups,
    )
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_dirac_places_ones_like_torch():
    # Spec 3.6: (6, 2, 3) with groups=2 has ones at [0,0,1], [1,1,1], [3,0,1], [4,1,1].
    weight = np.asarray(jaxinit.dirac_(None, (6, 2, 3), groups=2))
    assert sorted(zip(*np.nonzero(weight), strict=True)) == [
        (0, 0, 1),
        (1, 1, 1),
        (3, 0, 1),
        (4, 1, 1),
    ]
    even = np.asarray(jaxinit.dirac_(None, (4, 3, 4, 4)))
    assert [tuple(i) for i in np.argwhere(even)] == [(d, d, 2, 2) for d in range(3)]


@pytest.mark.parametrize(
    ("rows", "sparsity", "zeros"),
    [(100, 0.07, 8), (100, 0.14, 15), (10, 0.0, 0), (10, 1.0, 10), (7, 0.5, 4)],
)
def test_sparse_zero_count_per_torch_column(rows, sparsity, zeros):
    cols = 12
    torch_weight = jaxinit.sparse_(jax.random.key(0), (rows, cols), sparsity)
    assert ((np.asarray(torch_weight) == 0).sum(axis=0) == zeros).all()
    kernel = jaxinit.sparse(sparsity)(jax.random.key(0), (cols, rows))  # Flax (in, out)
    assert ((np.asarray(kernel) == 0).sum(axis=1) == zeros).all()


def test_sparse_nonzeros_are_normal_and_pattern_is_random():
    weight = np.asarray(jaxinit.sparse(0.25, std=0.05)(jax.random.key(5), (512, 1024)))
    nonzero = weight[weight != 0]
    assert nonzero.size == 512 * (1024 - math.ceil(0.25 * 1024))
    law = scipy.stats.norm(0, 0.05)
    assert_moments(nonzero, law)
    assert_ks(nonzero, law)
    # Each output is zeroed for ~25% of the inputs, not in a fixed pattern. The
    # 512 input columns pick their 256 of 1024 rows independently, so an output's
    # zero count is exactly Binomial(512, 1/4); the band holds all 1024 counts with
    # probability >= 1 - ALPHA (Bonferroni over the outputs).
    counts = (weight == 0).sum(axis=0)
    count_law = scipy.stats.binom(512, 256 / 1024)
    tail = ALPHA / (2 * counts.size)
    low, high = (
        count_law.ppf(tail),
        count_law.isf(tail),
    )  # P(X < low), P(X > high) <= tail
    assert low <= counts.min() and counts.max() <= high, (counts.min(), counts.max())


def test_sparse_program_does_not_grow_with_columns():
    def equations(jaxpr) -> int:
        inner = [
            p.jaxpr
            for e in jaxpr.eqns
            for p in e.params.values()
            if hasattr(p, "jaxpr")
        ]
        return len(jaxpr.eqns) + sum(equations(j) for j in inner)

    def count(cols):
        closed = jax.make_jaxpr(lambda k: jaxinit.sparse(0.5)(k, (cols, 16)))(
            jax.random.key(0)
        )
        return equations(closed.jaxpr)

    assert count(8) == count(4096)
