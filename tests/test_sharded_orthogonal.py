"""Sharded orthogonal: a tall-skinny QR over row blocks (jaxinit/_tsqr.py).

With ``out_sharding=`` on a mesh of P > 1 devices, a matrix whose tall side splits
into P tall blocks is factored block by block: each device draws and factors its
rows, and the P small R factors are merged pairwise by a tree of collective
permutes. The result is the unsharded Q up to rounding (the QR with a positive
diag(R) is unique), so it stays Haar; its bits depend on P only. Other shapes keep
the full QR and the unsharded bits exactly.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from _stats import assert_ks, assert_same_law
from cases import to_torch_layout
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jaxinit

KEY = jax.random.key(0)

# Q^T Q = gain^2 I, as tests/test_structured.py checks the unsharded path.
ORTHO_TOLERANCE = {"float32": 1e-5, "bfloat16": 3e-2}
# TSQR and the full QR are both backward-stable factorizations of the same
# well-conditioned Gaussian matrix with the same sign convention, so their Qs
# differ by rounding only: measured <= 1.4e-7 up to (16384, 512), about one
# float32 ulp of 1. A wrong block, order or sign is off by ~ the entries, 1/sqrt(m).
ROUNDING_F32 = 1e-6
# bfloat16 outputs are the float32 results rounded: a rounding difference can move
# an entry to the neighbouring bfloat16 value, one ulp <= 2^-7 relative.
ROUNDING_BF16_RELATIVE = 2.0**-7


def mesh(devices: int, axis_type: AxisType = AxisType.Auto) -> jax.sharding.Mesh:
    """tests/test_sharding.py's meshes: (2,) "x"; (2, 2) and (4, 2) "x", "y"."""
    shape, names = (
        ((devices,), ("x",)) if devices < 4 else ((devices // 2, 2), ("x", "y"))
    )
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


def torch_matrix(weight: jax.Array, layout: str) -> np.ndarray:
    """The (rows, cols) matrix torch's orthogonal_ makes orthonormal, float64."""
    torch_weight = weight if layout == "torch" else to_torch_layout(weight)
    matrix = np.asarray(torch_weight.astype(jnp.float32), dtype=np.float64)
    return matrix.reshape(matrix.shape[0], -1)


def assert_orthonormal(matrix: np.ndarray, gain: float, tolerance: float) -> None:
    rows, cols = matrix.shape
    gram = matrix @ matrix.T if rows <= cols else matrix.T @ matrix
    np.testing.assert_allclose(
        gram, gain**2 * np.eye(min(rows, cols)), atol=tolerance * max(gain**2, 1)
    )


def uses_tsqr(fn, *args) -> bool:
    """Whether ``fn`` lowers to the block QR: only its tree has explicit
    collective permutes before partitioning (the full-QR path has none)."""
    return "collective_permute" in jax.jit(fn).lower(*args).as_text()


# (layout, shape, gain, devices, spec, axis type, dtype); each shape's tall side
# splits into tall blocks on its mesh. A Flax Dense kernel (in, out) with in > out
# is tall in Flax order but a wide torch weight, factored transposed.
CASES = [
    ("flax", (256, 16), 1.0, 8, P("x"), AxisType.Auto, "float32"),
    ("flax", (16, 256), 2.0, 2, P(None, "x"), AxisType.Auto, "float32"),
    ("torch", (256, 16), 1.0, 8, P("x", "y"), AxisType.Explicit, "float32"),
    ("torch", (16, 256), 1.0, 4, P(None, ("x", "y")), AxisType.Auto, "bfloat16"),
    # Conv kernels: Flax (3, 3, 64, 16) is torch (16, 64 * 9), wide; the output
    # (column) axis is the sharded one. Torch (256, 4, 3, 3) is tall.
    (
        "flax",
        (3, 3, 64, 16),
        0.5,
        8,
        P(None, None, None, "x"),
        AxisType.Auto,
        "float32",
    ),
    ("torch", (256, 4, 3, 3), 1.0, 4, P("x"), AxisType.Explicit, "bfloat16"),
    ("flax", (512, 32), 1.0, 8, P("x", "y"), AxisType.Auto, "bfloat16"),
]


@pytest.mark.parametrize(
    ("layout", "shape", "gain", "devices", "spec", "axis_type", "dtype"), CASES
)
def test_sharded_orthogonal_is_orthonormal_and_the_unsharded_q(
    layout, shape, gain, devices, spec, axis_type, dtype
):
    init = jaxinit.orthogonal(gain, layout=layout)
    the_mesh = mesh(devices, axis_type)
    sharding = NamedSharding(the_mesh, spec)
    expected = np.asarray(init(KEY, shape, jnp.dtype(dtype)).astype(jnp.float32))
    with jax.set_mesh(the_mesh):
        result = init(KEY, shape, jnp.dtype(dtype), out_sharding=sharding)
        assert uses_tsqr(
            lambda key: init(key, shape, jnp.dtype(dtype), out_sharding=sharding), KEY
        )
    assert result.dtype == jnp.dtype(dtype) and result.shape == shape
    assert result.sharding.is_equivalent_to(sharding, len(shape))
    assert_orthonormal(torch_matrix(result, layout), gain, ORTHO_TOLERANCE[dtype])
    got = np.asarray(result.astype(jnp.float32))
    if dtype == "float32":
        np.testing.assert_allclose(got, expected, rtol=0, atol=ROUNDING_F32 * gain)
    else:
        np.testing.assert_allclose(
            got, expected, rtol=ROUNDING_BF16_RELATIVE, atol=ROUNDING_F32 * gain
        )


def test_bare_partition_spec_under_set_mesh():
    explicit = mesh(8, AxisType.Explicit)
    init = jaxinit.orthogonal()
    shape = (256, 16)
    with jax.set_mesh(explicit):
        result = init(KEY, shape, out_sharding=P(("x", "y")))
        assert uses_tsqr(lambda key: init(key, shape, out_sharding=P(("x", "y"))), KEY)
    requested = NamedSharding(explicit, P(("x", "y")))
    assert result.sharding.is_equivalent_to(requested, len(shape))
    np.testing.assert_allclose(
        np.asarray(result), np.asarray(init(KEY, shape)), rtol=0, atol=ROUNDING_F32
    )


def test_bits_depend_on_the_device_count_only():
    """Blocks are contiguous rows in device order, whatever the mesh's shape, axis
    types and the requested output spec: the same P gives the same bits."""
    init = jaxinit.orthogonal()
    shape = (256, 16)
    flat = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Auto,))
    results = [
        init(KEY, shape, out_sharding=NamedSharding(flat, P("d"))),
        init(KEY, shape, out_sharding=NamedSharding(mesh(8), P("x", "y"))),
        init(KEY, shape, out_sharding=NamedSharding(mesh(8), P(None, ("y", "x")))),
    ]
    explicit = mesh(8, AxisType.Explicit)
    with jax.set_mesh(explicit):
        results.append(init(KEY, shape, out_sharding=P("y")))
    for result in results[1:]:
        np.testing.assert_array_equal(np.asarray(result), np.asarray(results[0]))


def test_sharded_orthogonal_is_haar():
    """Each column of a Haar (m, n) Q is a uniform unit vector of R^m: an entry's
    square is Beta(1/2, (m - 1)/2). Checked on the entries of one (4096, 64)
    matrix drawn over 8 devices, and against torch's orthogonal_ on that shape."""
    torch = pytest.importorskip("torch")
    rows, cols = 4096, 64
    sharding = NamedSharding(mesh(8), P("x", "y"))
    init = jaxinit.orthogonal(layout="torch")
    weight = init(KEY, (rows, cols), out_sharding=sharding)
    assert uses_tsqr(lambda key: init(key, (rows, cols), out_sharding=sharding), KEY)
    # The construction's own certificate: Q = A R^-1 for the Gaussian A and an
    # upper-triangular R with a positive diagonal, the QR that makes Q Haar.
    gaussian = np.asarray(jax.random.normal(KEY, (rows, cols)), dtype=np.float64)
    r = np.asarray(weight, dtype=np.float64).T @ gaussian
    assert (np.diagonal(r) > 0).all()
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-4)
    entries = np.asarray(weight, dtype=np.float64).ravel()
    assert_ks(entries**2, scipy.stats.beta(0.5, (rows - 1) / 2))
    torch.manual_seed(0)
    reference = torch.nn.init.orthogonal_(torch.empty(rows, cols)).numpy()
    assert_same_law(entries, reference)


@pytest.mark.parametrize(
    ("layout", "out_spec"),
    [("torch", P(("x", "y"))), ("flax", P(("x", "y"), None))],
)
def test_per_device_temporaries_are_o_of_the_shard(layout, out_spec):
    """Torch (8192, 128), or the Flax kernel (8192, 128) = torch (128, 8192), f32
    on 8 devices: each holds 1/8 of the rows (512 KiB) and a few 128 x 128
    factors of the R tree (64 KiB each), never the 4 MiB matrix nor the 8 R
    factors together; the full QR needs 4x the matrix."""
    shape, itemsize, devices = (8192, 128), 4, 8
    sharding = NamedSharding(mesh(devices), out_spec)
    init = jaxinit.orthogonal(layout=layout)
    full = math.prod(shape) * itemsize
    shard = full // devices
    small = min(shape)
    factor = small * small * itemsize
    # Rows, their local Q and the product, plus one level's R stack, its Q and
    # the product of the halves (measured 3 * 512 KiB + 1 KB: the small
    # factors fit in buffers freed by then).
    bound = 3 * shard + 4 * factor + 64 * 1024
    sharded = jax.jit(lambda key: init(key, shape, out_sharding=sharding))
    memory = sharded.lower(KEY).compile().memory_analysis()
    assert memory.output_size_in_bytes == shard
    assert memory.temp_size_in_bytes <= bound < full
    # The same matrix under an outer jit's out_shardings: the initializer cannot
    # see the sharding, so every device runs the whole QR.
    whole = jax.jit(lambda key: init(key, shape), out_shardings=sharding)
    assert whole.lower(KEY).compile().memory_analysis().temp_size_in_bytes > full


@pytest.mark.parametrize(
    ("shape", "batch_axis", "devices", "spec"),
    [
        ((64, 64), (), 8, P("x")),  # square: 8-row blocks are not tall
        ((100, 8), (), 8, P(None, "x")),  # 100 rows do not split in 8
        ((4, 128, 16), (0,), 4, P(None, "x")),  # batch axes keep the full QR
        ((256, 16), (), 1, P("x")),  # one device
    ],
)
def test_other_shapes_keep_the_unsharded_bits(shape, batch_axis, devices, spec):
    init = jaxinit.orthogonal(batch_axis=batch_axis)
    sharding = NamedSharding(mesh(devices), spec)
    result = init(KEY, shape, out_sharding=sharding)
    assert result.sharding.is_equivalent_to(sharding, len(shape))
    np.testing.assert_array_equal(np.asarray(result), np.asarray(init(KEY, shape)))
    assert not uses_tsqr(lambda key: init(key, shape, out_sharding=sharding), KEY)
