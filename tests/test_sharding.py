"""Sharded initialization on simulated CPU devices (conftest sets 8).

Elementwise initializers draw each shard where it lives: the values are
bit-identical to the single-device result on any mesh and partition spec, and
each device's compiled temporaries are O(its shard). Structured initializers
(orthogonal, sparse, eye, dirac) honour the sharding with the same values. With
out_sharding=, sparse walks its mask by columns per device (a few shards per
device); eye and dirac compute the full matrix first. The orthogonal shape here
takes the full-QR path; shapes that split into tall row blocks take a block QR
instead (tests/test_sharded_orthogonal.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jaxinit

KEY = jax.random.key(0)
SHAPE = (256, 128)

ELEMENTWISE = {
    "uniform": jaxinit.uniform(-0.5, 0.5),
    "normal": jaxinit.normal(0.1, 2.0),
    "trunc_normal_near": jaxinit.trunc_normal(std=1.0),  # inverse-CDF path
    "trunc_normal_far": jaxinit.trunc_normal(std=0.02),  # normal + clip path
    "kaiming_uniform": jaxinit.kaiming_uniform(),
    "constant": jaxinit.constant(0.25),
}


def mesh(devices: int, axis_type: AxisType = AxisType.Auto) -> jax.sharding.Mesh:
    shape, names = (
        ((devices,), ("x",)) if devices < 4 else ((devices // 2, 2), ("x", "y"))
    )
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


def shard_bytes(sharding: NamedSharding, shape: tuple[int, ...], itemsize: int) -> int:
    return int(np.prod(sharding.shard_shape(shape))) * itemsize


@pytest.mark.parametrize(
    ("devices", "spec"),
    [
        (1, P("x")),
        (2, P(None, "x")),
        (4, P(("x", "y"))),
        (8, P("x", "y")),
        (8, P("y", "x")),
        (8, P(None, ("x", "y"))),
    ],
)
def test_bits_do_not_depend_on_the_mesh(devices: int, spec: P):
    sharding = NamedSharding(mesh(devices), spec)
    init = jaxinit.kaiming_uniform()
    sharded = init(KEY, SHAPE, out_sharding=sharding)
    assert sharded.sharding.is_equivalent_to(sharding, len(SHAPE))
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(init(KEY, SHAPE)))


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_out_sharding_and_jit_out_shardings(name: str):
    init = ELEMENTWISE[name]
    sharding = NamedSharding(mesh(8), P("x", "y"))
    expected = np.asarray(init(KEY, SHAPE))
    eager = init(KEY, SHAPE, out_sharding=sharding)
    jitted = jax.jit(lambda key: init(key, SHAPE), out_shardings=sharding)(KEY)
    for result in (eager, jitted):
        assert result.sharding.is_equivalent_to(sharding, len(SHAPE))
        np.testing.assert_array_equal(np.asarray(result), expected)


@pytest.mark.parametrize("name", ["normal", "trunc_normal_near"])
def test_per_device_temporaries_are_o_of_the_shard(name: str):
    init = ELEMENTWISE[name]
    sharding = NamedSharding(mesh(8), P("x", "y"))
    fn = jax.jit(lambda key: init(key, SHAPE), out_shardings=sharding)
    memory = fn.lower(KEY).compile().memory_analysis()
    shard = shard_bytes(sharding, SHAPE, 4)
    full = int(np.prod(SHAPE)) * 4
    assert memory.output_size_in_bytes == shard
    # threefry's counters and outputs: a few shard-sized buffers, never the full
    # array (8 shards here).
    assert memory.temp_size_in_bytes <= 4 * shard + 1024 < full


@pytest.mark.parametrize(
    ("name", "init", "shape"),
    [
        ("orthogonal", jaxinit.orthogonal(), SHAPE),
        ("sparse", jaxinit.sparse(0.3), SHAPE),
        ("eye", jaxinit.eye(), SHAPE),
        ("dirac", jaxinit.dirac(), (3, 3, 16, 16)),
    ],
)
def test_structured_initializers_honour_out_sharding(name: str, init, shape):
    sharding = NamedSharding(mesh(8), P(*([None] * (len(shape) - 2)), "x", "y"))
    result = init(KEY, shape, out_sharding=sharding)
    assert result.sharding.is_equivalent_to(sharding, len(shape))
    np.testing.assert_array_equal(np.asarray(result), np.asarray(init(KEY, shape)))


def test_explicit_mesh_under_set_mesh():
    explicit = mesh(8, AxisType.Explicit)
    sharding = NamedSharding(explicit, P("x", "y"))
    with jax.set_mesh(explicit):
        for init in (jaxinit.normal(), jaxinit.orthogonal(), jaxinit.zeros()):
            result = init(KEY, SHAPE, out_sharding=sharding)
            assert result.sharding.is_equivalent_to(sharding, len(SHAPE))
            np.testing.assert_array_equal(
                np.asarray(result), np.asarray(init(KEY, SHAPE))
            )
        spec_only = jaxinit.uniform()(KEY, SHAPE, out_sharding=P("x", "y"))
        assert spec_only.sharding.spec == P("x", "y")


def test_empty_shape_on_an_auto_mesh():
    sharding = NamedSharding(mesh(2), P("x"))
    result = jaxinit.uniform()(KEY, (0, 4), jnp.float32, out_sharding=sharding)
    assert result.shape == (0, 4)


def test_nnx_transformer_initialized_sharded_over_8_devices():
    """docs/scale.md's recipe: jaxinit initializers with partition names, created
    inside nnx.jit under the mesh; each device holds 1/8 of the weights."""
    nnx = pytest.importorskip("flax.nnx")
    width, hidden, vocab = 64, 256, 512

    def sharded(init, names):
        return nnx.with_partitioning(init, names)

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.norm = nnx.LayerNorm(width, rngs=rngs)
            self.qkv = nnx.Linear(
                width,
                3 * width,
                kernel_init=sharded(jaxinit.xavier_uniform(), (None, "model")),
                bias_init=sharded(jaxinit.zeros(), ("model",)),
                rngs=rngs,
            )
            self.out = nnx.Linear(
                width,
                width,
                kernel_init=sharded(jaxinit.xavier_uniform(), ("model", None)),
                bias_init=sharded(jaxinit.zeros(), (None,)),
                rngs=rngs,
            )
            self.fc1 = nnx.Linear(
                width,
                hidden,
                kernel_init=sharded(jaxinit.kaiming_uniform(), (None, "model")),
                bias_init=sharded(jaxinit.zeros(), ("model",)),
                rngs=rngs,
            )
            self.fc2 = nnx.Linear(
                hidden,
                width,
                kernel_init=sharded(jaxinit.kaiming_uniform(), ("model", None)),
                bias_init=sharded(jaxinit.zeros(), (None,)),
                rngs=rngs,
            )

    class Transformer(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(
                vocab,
                width,
                embedding_init=sharded(jaxinit.normal(std=0.02), ("model", None)),
                rngs=rngs,
            )
            self.blocks = nnx.List([Block(rngs) for _ in range(2)])

    @nnx.jit
    def create():
        return Transformer(nnx.Rngs(0))

    eight = jax.make_mesh((8,), ("model",))
    with jax.set_mesh(eight):
        model = create()
    with jax.set_mesh(jax.make_mesh((1,), ("model",), devices=jax.devices()[:1])):
        reference = Transformer(nnx.Rngs(0))
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    expected = jax.tree.leaves(nnx.state(reference, nnx.Param))
    for got, want in zip(params, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    total = sum(leaf.nbytes for leaf in expected)
    per_device = {device: 0 for device in eight.devices.flat}
    for leaf in params:
        for shard in leaf.addressable_shards:
            per_device[shard.device] += shard.data.nbytes
    # Replicated: LayerNorm scales/biases and the out/fc2 biases (small).
    replicated = sum(
        leaf.nbytes for leaf in params if leaf.sharding.is_fully_replicated
    )
    for used in per_device.values():
        assert used == (total - replicated) // 8 + replicated
    assert replicated < 0.05 * total


def test_sparse_mask_walk_is_split_by_columns():
    """sparse's mask walks down each column; with out_sharding= the columns are
    split over the devices, so no device builds the whole mask (the same bits)."""
    init, shape = jaxinit.sparse(0.1), (1024, 512)
    sharding = NamedSharding(mesh(8), P("x", "y"))
    shard = shard_bytes(sharding, shape, 4)
    full = int(np.prod(shape)) * 4
    sharded = jax.jit(lambda key: init(key, shape, out_sharding=sharding))
    memory = sharded.lower(KEY).compile().memory_analysis()
    # The column-split draw, mask and values, and the reshard to the spec.
    assert memory.temp_size_in_bytes <= 4 * shard + 64 * 1024 < full
    # Under an outer jit the initializer cannot see the sharding: whole mask.
    whole = jax.jit(lambda key: init(key, shape), out_shardings=sharding)
    assert whole.lower(KEY).compile().memory_analysis().temp_size_in_bytes >= full
    np.testing.assert_array_equal(
        np.asarray(sharded(KEY)), np.asarray(init(KEY, shape))
    )
