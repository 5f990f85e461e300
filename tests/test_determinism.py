"""The reproducibility contract (docs/determinism.md).

Same key + shape + dtype + parameters -> the same bits, on one jax version:
repeated calls, equal initializers built twice, pickled initializers, eager,
jax.jit, jax.vmap over keys, and any sharding of the output (each value's bits
hash its own index). Different keys give different bits. What depends on
jax's configuration (the threefry flag) is shown, not assumed.
"""

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry2x32_p
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jaxinit
from jaxinit._bits import random_bits32, threefry2x32

KEY = jax.random.key(42)
SHAPE = (16, 8)

# Elementwise laws: each value depends on its own counter only.
ELEMENTWISE = {
    "uniform": jaxinit.uniform(-1.0, 3.0),
    "normal": jaxinit.normal(0.5, 2.0),
    "trunc_normal": jaxinit.trunc_normal(std=1.0, a=-0.5, b=2.0),
    "trunc_normal_one_sided": jaxinit.trunc_normal(a=-math.inf, b=0.5),
    "xavier_uniform": jaxinit.xavier_uniform(gain=2.0),
    "xavier_normal": jaxinit.xavier_normal(),
    "kaiming_uniform": jaxinit.kaiming_uniform(a=math.sqrt(5)),
    "kaiming_normal": jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu"),
}
STRUCTURED = {
    "orthogonal": jaxinit.orthogonal(gain=1.5),
    "sparse": jaxinit.sparse(0.25),
    "eye": jaxinit.eye(),
    "constant": jaxinit.constant(0.125),
}
ALL = {**ELEMENTWISE, **STRUCTURED}
DTYPES = ["float32", "bfloat16"]  # float16 and float64: tests/test_properties.py


def bits(array: jax.Array) -> bytes:
    return np.asarray(array).tobytes()


@pytest.mark.parametrize("name", sorted(ALL))
def test_same_inputs_same_bits(name: str):
    """Repeated calls, an equal initializer built again, and a pickled copy."""
    init = ALL[name]
    first = init(KEY, SHAPE)
    assert bits(init(KEY, SHAPE)) == bits(first)
    rebuilt = pickle.loads(pickle.dumps(init))
    assert rebuilt == init and hash(rebuilt) == hash(init)
    assert bits(rebuilt(KEY, SHAPE)) == bits(first)
    # The same key as data (raw uint32 and re-wrapped typed) gives the same bits.
    raw = jax.random.key_data(KEY)
    assert bits(init(raw, SHAPE)) == bits(first)
    assert bits(init(jax.random.wrap_key_data(raw), SHAPE)) == bits(first)


@pytest.mark.parametrize("name", [*sorted(ELEMENTWISE), "orthogonal", "sparse"])
def test_different_keys_different_bits(name: str):
    init = ALL[name]
    draws = {bits(init(key, SHAPE)) for key in jax.random.split(KEY, 4)}
    draws.add(bits(init(jax.random.fold_in(KEY, 100), SHAPE)))
    assert len(draws) == 5


def test_split_and_fold_in_coincide():
    """Under partitionable threefry split(key, n)[i] is fold_in(key, i): the same
    key, so the same weights. Derive a model's keys one way, not both."""
    split = jax.random.key_data(jax.random.split(KEY, 4))
    np.testing.assert_array_equal(
        split[1], jax.random.key_data(jax.random.fold_in(KEY, 1))
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ALL))
def test_eager_jit_vmap_same_bits(name: str, dtype: str):
    init = ALL[name]
    keys = jax.random.split(KEY, 3)
    eager = [bits(init(key, SHAPE, jnp.dtype(dtype))) for key in keys]
    jitted = jax.jit(init, static_argnums=(1, 2))
    assert [bits(jitted(key, SHAPE, jnp.dtype(dtype))) for key in keys] == eager
    mapped = jax.vmap(lambda key: init(key, SHAPE, jnp.dtype(dtype)))(keys)
    assert [bits(row) for row in mapped] == eager
    # Inside a larger jitted program (as in a model's init), unchanged.
    nested = jax.jit(lambda key: init(key, SHAPE, jnp.dtype(dtype)) * 1)(keys[0])
    assert bits(nested) == eager[0]


def test_float64_bits_are_reproducible():
    with jax.enable_x64(True):
        for name, init in ALL.items():
            eager = bits(init(KEY, SHAPE, jnp.float64))
            jitted = jax.jit(init, static_argnums=(1, 2))(KEY, SHAPE, jnp.float64)
            assert bits(jitted) == eager, name


MESHES = [
    ((8,), ("x",), P(None, "x")),
    ((2, 4), ("x", "y"), P("x", "y")),
    ((4, 2), ("x", "y"), P(("x", "y"))),
]


@pytest.mark.parametrize(("mesh_shape", "names", "spec"), MESHES, ids=str)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_sharded_bits_equal_unsharded(name: str, mesh_shape, names, spec: P):
    """Each value's bits hash its own index: every shard draws its own values,
    the same as the unsharded array's, whatever the mesh and spec: through
    jax.jit(out_shardings=) on jax.make_mesh's (Explicit) mesh, and through
    out_sharding= on an Auto mesh."""
    init = ELEMENTWISE[name]
    expected = bits(init(KEY, SHAPE))
    sharding = NamedSharding(jax.make_mesh(mesh_shape, names), spec)
    jitted = jax.jit(init, static_argnums=1, out_shardings=sharding)(KEY, SHAPE)
    assert jitted.sharding.is_equivalent_to(sharding, len(SHAPE))
    assert bits(jitted) == expected
    auto = jax.make_mesh(mesh_shape, names, axis_types=(AxisType.Auto,) * len(names))
    auto_sharding = NamedSharding(auto, spec)
    out = init(KEY, SHAPE, out_sharding=auto_sharding)
    assert out.sharding.is_equivalent_to(auto_sharding, len(SHAPE))
    assert bits(out) == expected


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_explicit_mesh_out_sharding_bits(name: str):
    """out_sharding= with jax.make_mesh's Explicit axes, under jax.set_mesh (jax
    requires the mesh in context for eager calls)."""
    init = ELEMENTWISE[name]
    expected = bits(init(KEY, SHAPE))
    for mesh_shape, names, spec in MESHES:
        mesh = jax.make_mesh(mesh_shape, names)
        sharding = NamedSharding(mesh, spec)
        with jax.set_mesh(mesh):
            out = init(KEY, SHAPE, out_sharding=sharding)
        assert out.sharding.is_equivalent_to(sharding, len(SHAPE))
        assert bits(out) == expected, (mesh_shape, spec)


@pytest.mark.parametrize("name", ["sparse", "eye", "constant"])
def test_structured_sharded_bits_equal_unsharded(name: str):
    init = STRUCTURED[name]
    expected = bits(init(KEY, SHAPE))
    sharding = NamedSharding(jax.make_mesh((2, 4), ("x", "y")), P("x", "y"))
    jitted = jax.jit(init, static_argnums=1, out_shardings=sharding)(KEY, SHAPE)
    assert bits(jitted) == expected


def test_threefry_flag_changes_only_float64_bits():
    """float32 and 16-bit draws hash each element's index themselves
    (jaxinit._bits.random_bits32), so jax_threefry_partitionable does not
    change them; float64 draws use jax.random, whose counter layout it changes."""
    init = ELEMENTWISE["uniform"]
    default = bits(init(KEY, SHAPE))
    with jax.threefry_partitionable(False):
        assert bits(jaxinit.uniform(-1.0, 3.0)(KEY, SHAPE)) == default
    with jax.enable_x64(True):
        wide = bits(init(KEY, SHAPE, jnp.float64))
        with jax.threefry_partitionable(False):
            legacy = bits(jaxinit.uniform(-1.0, 3.0)(KEY, SHAPE, jnp.float64))
            assert bits(jaxinit.uniform(-1.0, 3.0)(KEY, SHAPE, jnp.float64)) == legacy
        assert legacy != wide


@pytest.mark.parametrize("shape", [(7,), (6,), (3, 5), (4, 6), (2, 3, 4), (2, 2, 3)])
def test_bits_are_both_words_of_threefry_per_pair_of_indices(shape):
    """The documented stream: element i (row-major) takes word i % 2 of
    threefry2x32(key, counter (0, i // 2)), whatever the shape's parity; checked
    against jax's own threefry primitive."""
    size = int(np.prod(shape))
    pairs = jnp.arange((size + 1) // 2, dtype=jnp.uint32)
    k0, k1 = jax.random.key_data(KEY)
    even, odd = threefry2x32_p.bind(k0, k1, jnp.zeros_like(pairs), pairs)
    interleaved = np.stack([np.asarray(even), np.asarray(odd)], axis=-1).reshape(-1)
    expected = interleaved[:size].reshape(shape)
    got = np.asarray(jax.jit(random_bits32, static_argnums=1)(KEY, shape))
    np.testing.assert_array_equal(got, expected)
    mantissa = (expected >> 9) | np.uint32(0x3F800000)
    unit = mantissa.view(np.float32) - np.float32(1.0)
    uniform = jaxinit.uniform(0.0, 1.0)(KEY, shape)
    np.testing.assert_array_equal(np.asarray(uniform), unit)


def test_threefry_rounds_equal_jax_primitive_on_numpy_and_jax():
    words = np.random.default_rng(0).integers(0, 2**32, (4, 1000), dtype=np.uint32)
    expected = [np.asarray(w) for w in threefry2x32_p.bind(*map(jnp.asarray, words))]
    on_host = threefry2x32(*words)
    on_device = jax.jit(threefry2x32)(*map(jnp.asarray, words))
    for got in (on_host, on_device):
        for word, want in zip(got, expected, strict=True):
            np.testing.assert_array_equal(np.asarray(word), want)
