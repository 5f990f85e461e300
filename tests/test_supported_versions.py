"""What must hold on every supported jax and Flax, from the oldest declared up.

`make test-oldest` runs this file (and nothing else) in `.venv-oldest`, which
holds the minimum versions of pyproject.toml; `make test` runs it on the newest.
It is the fast subset: every initializer in both spellings and both layouts,
jit and vmap, `init_tree`, the Flax helpers, and draws pinned across versions
(docs/determinism.md, "Across jax versions").
"""

import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import CASES, CONV, LINEAR, Case, flax_shape

import jaxinit

KEY = jax.random.key(0)
DTYPES = [jnp.float32, jnp.bfloat16]


def _small(case: Case) -> tuple[int, ...]:
    """The case's torch shape, or a small one of its rank (the statistical sizes
    are not needed here)."""
    if math.prod(case.torch_shape) <= math.prod(CONV):
        return case.torch_shape
    return {2: LINEAR, 4: CONV}[len(case.torch_shape)]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: jnp.dtype(dtype).name)
def test_both_spellings_both_layouts(case: Case, dtype):
    torch_shape = _small(case)
    for layout in case.layouts:
        shape = flax_shape(torch_shape) if layout == "flax" else torch_shape
        factory = case.factory(**case.kwargs, layout=layout)
        value = factory(KEY, shape, dtype)
        spelled = getattr(jaxinit, case.name + "_")(
            KEY, shape, **case.kwargs, layout=layout, dtype=dtype
        )
        assert value.shape == tuple(shape) and value.dtype == dtype, (case.id, layout)
        assert bool(jnp.isfinite(value.astype(jnp.float32)).all()), (case.id, layout)
        np.testing.assert_array_equal(np.asarray(spelled), np.asarray(value))
        if case.law is not None:
            low, high = case.law(torch_shape).support()
            as_float = np.asarray(value, np.float64)
            assert as_float.min() >= low and as_float.max() <= high, (case.id, layout)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_eager_jit_vmap_agree(case: Case):
    init = case.factory(**case.kwargs)
    shape = flax_shape(_small(case))
    keys = jax.random.split(KEY, 2)
    eager = np.asarray(init(keys[1], shape, jnp.float32))
    jitted = jax.jit(init, static_argnums=(1, 2))(keys[1], shape, jnp.float32)
    mapped = jax.vmap(lambda key: init(key, shape, jnp.float32))(keys)
    np.testing.assert_array_equal(np.asarray(jitted), eager)
    np.testing.assert_array_equal(np.asarray(mapped[1]), eager)


def test_init_tree_equals_per_leaf_draws():
    spec = {
        "dense/kernel": (jaxinit.kaiming_uniform(a=math.sqrt(5)), (64, 32), None),
        "dense/bias": (jaxinit.zeros(), (32,), jnp.bfloat16),
        "embed": (jaxinit.normal(), (100, 16), jnp.float32),
        "q": (jaxinit.orthogonal(), (16, 16), jnp.float32),
    }
    params = jaxinit.init_tree(KEY, spec)
    for path, (init, shape, dtype) in spec.items():
        tree = np.asarray(params[path])
        leaf = np.asarray(init(jaxinit.leaf_key(KEY, path), shape, dtype or "float32"))
        # Bit for bit on every supported jax: both paths run the same law
        # functions with runtime parameters.
        np.testing.assert_array_equal(tree, leaf)


# Pinned draws, one (64, 32) float32 or bfloat16 draw each with KEY, measured on
# jax 0.4.38, 0.8.1 and 0.10.2 (and on 32768 values per initializer and dtype).
# Draws built from jaxinit's own threefry stream by exact arithmetic (the
# uniform laws, and every 16-bit draw, which rounds a float32 value to 8 or 11
# bits) keep their bits: sha256 of the array's bytes.
SHAPE = (64, 32)
STABLE = {
    "uniform": (jaxinit.uniform(-1.0, 1.0), jnp.float32, "134f391100312b10"),
    "kaiming_uniform": (
        jaxinit.kaiming_uniform(a=math.sqrt(5)),
        jnp.float32,
        "d6f29e7f69088a0b",
    ),
    "xavier_uniform": (jaxinit.xavier_uniform(), jnp.float32, "1b81f8d6f72e9550"),
    "trunc_normal_bf16": (jaxinit.trunc_normal(), jnp.bfloat16, "c7f2adaeb55a4b0c"),
    "normal_bf16": (jaxinit.normal(), jnp.bfloat16, "652286b66c1ac2f3"),
    "kaiming_normal_bf16": (jaxinit.kaiming_normal(), jnp.bfloat16, "2e053ee8be442deb"),
}
# float32 draws through erfinv or a QR, whose lowering jax may change: the first
# values to MAX_ULPS (about 0.5% of normal values moved by 1-2 ulps between
# those versions; most orthogonal entries by up to ~1e-7) and the sum to
# SUM_RTOL. orthogonal also draws with
# jax.random, whose stream is the same from jax 0.5 on (and on 0.4.38 under
# jax_threefry_partitionable=True, the later default).
ROUNDING = {
    # Its centre form goes through erf and erf_inv (jax 0.4.38 rounds a few
    # float32 values differently from 0.8.1 and 0.10.2).
    "trunc_normal": (
        jaxinit.trunc_normal(),
        [-0.1963520348072052, 0.24281686544418335, -0.7414706349372864],
        15.060464202659205,
    ),
    "normal": (
        jaxinit.normal(),
        [-0.2058422565460205, 0.2546390891075134, -0.7847659587860107],
        8.117094039916992,
    ),
    "kaiming_normal": (
        jaxinit.kaiming_normal(),
        [-0.03638811036944389, 0.04501425474882126, -0.1387283205986023],
        1.4349160194396973,
    ),
    "orthogonal": (
        jaxinit.orthogonal(),
        [0.21113479137420654, 0.08574595302343369, 0.17565134167671204],
        -7.442404747009277,
    ),
}
MAX_ULPS = 4
SUM_RTOL = 1e-5
SPARSE_MASK = "5e5d96231d55e389"  # sha256 of sparse(0.25)'s zero pattern


def _sha(value) -> str:
    return hashlib.sha256(np.asarray(value).tobytes()).hexdigest()[:16]


@pytest.fixture
def partitionable():
    """jax.random's stream of jax >= 0.5, also on 0.4.38."""
    before = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", True)
    yield
    jax.config.update("jax_threefry_partitionable", before)


@pytest.mark.parametrize("name", sorted(STABLE))
def test_stable_draws_keep_their_bits(name: str):
    init, dtype, expected = STABLE[name]
    assert _sha(init(KEY, SHAPE, dtype)) == expected


@pytest.mark.parametrize("name", sorted(ROUNDING))
def test_rounding_draws_stay_within_ulps(name: str, partitionable):
    init, first, total = ROUNDING[name]
    value = np.asarray(init(KEY, SHAPE, jnp.float32))
    np.testing.assert_array_max_ulp(
        value.ravel()[: len(first)], np.array(first, np.float32), MAX_ULPS
    )
    np.testing.assert_allclose(value.sum(dtype=np.float64), total, rtol=SUM_RTOL)


def test_sparse_mask_is_pinned(partitionable):
    value = jaxinit.sparse(0.25)(KEY, SHAPE, jnp.float32)
    assert _sha(np.asarray(value) == 0) == SPARSE_MASK


def test_flax_helpers():
    nnx = pytest.importorskip("flax.nnx")
    linen = pytest.importorskip("flax.linen")
    import jaxinit.flax
    from jaxinit import torch_defaults as td

    layer = nnx.Linear(16, 8, **td.linear(16), rngs=nnx.Rngs(0))
    assert bool((abs(layer.kernel[...]) <= 1 / 4).all())
    assert bool((layer.bias[...] != 0).all())

    model = nnx.Linear(64, 10, rngs=nnx.Rngs(0))
    jaxinit.flax.torch_init(model, KEY)
    assert bool((abs(model.kernel[...]) <= 1 / 8).all())
    jaxinit.flax.reinit(model, KEY, {nnx.Linear: {"bias": jaxinit.zeros()}})
    assert model.bias[...].tolist() == [0.0] * 10

    dense = linen.Dense(10)
    x = jnp.ones((1, 16))
    variables = dense.init(KEY, x)
    variables = jaxinit.flax.torch_init(dense, KEY, variables=variables, args=(x,))
    assert bool((abs(variables["params"]["bias"]) <= 1 / 4).all())
    assert bool((variables["params"]["bias"] != 0).all())


def test_sharding_on_this_jax():
    """An auto mesh works on every jax; explicit meshes and bare specs need 0.7."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("x",))  # Auto axes
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    init = jaxinit.kaiming_uniform()
    shape = (8 * len(jax.devices()), 4)
    value = init(KEY, shape, out_sharding=sharding)
    assert value.sharding.is_equivalent_to(sharding, 2)
    np.testing.assert_array_equal(np.asarray(value), np.asarray(init(KEY, shape)))
    if hasattr(jax.sharding, "auto_axes"):
        return
    spec = jax.sharding.PartitionSpec("x")
    with pytest.raises(NotImplementedError, match=r"needs jax >= 0\.7\.0"):
        init(KEY, shape, out_sharding=spec)
