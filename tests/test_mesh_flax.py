"""Models and big kernels on a mesh: the block QR's memory, and reinit/torch_init
keeping every parameter's sharding (8 simulated devices, tests/conftest.py)."""

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jaxinit
from jaxinit import _tsqr

KEY = jax.random.key(0)
# The block QR and the full QR of one well-conditioned Gaussian matrix differ by
# rounding (tests/test_sharded_orthogonal.py); a wrong block is off by ~1/sqrt(m).
ROUNDING_F32 = 1e-6


# Block QR: the R factors merge by a tree, never all on one device.


@pytest.mark.parametrize(
    ("shape", "layout"), [((8192, 512), "flax"), ((16384, 512), "torch")]
)
def test_block_qr_temporaries_stay_below_the_matrix(shape, layout):
    """Flax Dense kernels (8192, 512) and torch (16384, 512) float32 on 8 devices:
    per device, 2-3 row shards and a few 512 x 512 factors (1 MiB each). Gathering
    the 8 R factors and factoring their stack took 18.9 MB and 21.0 MB, more than
    the (8192, 512) matrix; the tree takes 7.3 MB and 12.6 MB."""
    devices, itemsize = 8, 4
    mesh = jax.make_mesh((4, 2), ("x", "y"), axis_types=(AxisType.Auto,) * 2)
    # Rows sharded either way: the Flax kernel is the torch weight transposed.
    spec = P(("x", "y"), None)
    init = jaxinit.orthogonal(layout=layout)
    full = shape[0] * shape[1] * itemsize
    shard, factor = full // devices, min(shape) ** 2 * itemsize
    sharding = NamedSharding(mesh, spec)
    program = jax.jit(lambda key: init(key, shape, out_sharding=sharding))
    memory = program.lower(KEY).compile().memory_analysis()
    assert memory.output_size_in_bytes == shard
    # The gathered stack alone would be devices * factor, and its Q as much again.
    assert memory.temp_size_in_bytes <= 3 * shard + 4 * factor + 64 * 1024
    assert memory.temp_size_in_bytes < min(full, 2 * devices * factor)


@pytest.mark.parametrize("devices", [3, 6, 7])
def test_block_qr_on_a_device_count_that_is_not_a_power_of_two(devices):
    """A group without a neighbour waits a level; a partial group serves its full
    neighbour over several permutes. Still the unsharded Q up to rounding."""
    mesh = jax.make_mesh(
        (devices,), ("d",), axis_types=(AxisType.Auto,), devices=jax.devices()[:devices]
    )
    shape = (devices * 32, 24)
    init = jaxinit.orthogonal(layout="torch")
    sharding = NamedSharding(mesh, P("d"))
    result = init(KEY, shape, out_sharding=sharding)
    assert (
        "collective_permute"
        in jax.jit(lambda key: init(key, shape, out_sharding=sharding))
        .lower(KEY)
        .as_text()
    )
    assert result.sharding.is_equivalent_to(sharding, 2)
    np.testing.assert_allclose(
        np.asarray(result), np.asarray(init(KEY, shape)), rtol=0, atol=ROUNDING_F32
    )


def test_tree_levels_pair_every_device_once_per_round():
    sides, rounds = _tsqr._level(6, 2)  # groups {0,1} {2,3} merge; {4,5} waits
    assert sides.tolist() == [1, 1, 0, 0, -1, -1]
    assert rounds == [[(2, 0), (3, 1), (0, 2), (1, 3)]]
    sides, rounds = _tsqr._level(6, 4)  # {0..3} merges with the partial {4,5}
    assert sides.tolist() == [1, 1, 1, 1, 0, 0]
    assert rounds == [[(4, 0), (5, 1), (0, 4), (1, 5)], [(4, 2), (5, 3)]]
