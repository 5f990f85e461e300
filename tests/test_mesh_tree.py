"""init_tree on a mesh (8 simulated CPU devices from conftest), and leaf keys.

Sharded leaves: placement, shard shapes, per-device bytes, and values equal to
the unsharded init_tree bit for bit (elementwise laws) or to the initializer's
own ``out_sharding=`` call (structured ones); the device-side assembly path
forced on CPU; the errors. Leaf keys: 64-bit path hashes, so CRC-32's colliding
names get different keys, and the host derivation equals ``leaf_key``.
"""

import hashlib
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jaxinit
from jaxinit import _engine, _keys, _programs
from jaxinit._base import InitializerBase
from jaxinit._programs import ROW
from jaxinit._tree import init_tree, leaf_key

KEY = jax.random.key(0)

# (path, initializer, shape, dtype, spec over a (4, 2) mesh ("x", "y")).
LEAVES = [
    ("rows", jaxinit.kaiming_uniform(), (64, 48), None, P("x")),
    ("columns", jaxinit.normal(0.5, 2.0), (40, 96), None, P(None, "y")),
    ("both", jaxinit.uniform(-0.3, 0.2), (96, 64), jnp.bfloat16, P("x", "y")),
    ("swapped", jaxinit.xavier_normal(), (32, 80), None, P("y", "x")),
    ("flattened", jaxinit.trunc_normal(std=0.02), (24, 16), None, P(None, ("x", "y"))),
    ("replicated", jaxinit.normal(), (12, 10), jnp.float16, P()),
    ("half_replicated", jaxinit.uniform(), (8, 2 * ROW + 6), None, P("y")),
    ("odd_columns", jaxinit.normal(), (6, 10), None, P(None, "y")),  # runs of 5
    ("conv", jaxinit.kaiming_normal(), (3, 8, 12), None, P(None, "x", "y")),
    ("conv_outer", jaxinit.uniform(), (4, 6, 10), jnp.float16, P("x", None, "y")),
    ("conv_middle", jaxinit.normal(), (5, 8, 3), None, P(None, "x")),
    ("long_rows", jaxinit.kaiming_uniform(), (4, 3 * ROW), None, P(None, "y")),
    ("vector", jaxinit.uniform(), (64,), None, P(("x", "y"))),
    ("bias", jaxinit.zeros(), (16,), None, P("x")),
    ("scale", jaxinit.ones(), (8, 16), jnp.bfloat16, P(None, ("y", "x"))),
    ("unsharded", jaxinit.normal(), (30, 7), None, None),
]
SPEC = {path: (init, shape, dtype) for path, init, shape, dtype, _ in LEAVES}


def make_mesh(axis_type: AxisType) -> jax.sharding.Mesh:
    return jax.make_mesh((4, 2), ("x", "y"), axis_types=(axis_type, axis_type))


def shardings(mesh: jax.sharding.Mesh) -> dict[str, NamedSharding]:
    return {
        path: NamedSharding(mesh, spec) for path, *_, spec in LEAVES if spec is not None
    }


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 8 rows, so leaves and queues span many blocks cheaply."""
    monkeypatch.setattr(_programs, "BLOCK_ROWS", 8)


@pytest.fixture(scope="module")
def unsharded():
    return {path: np.asarray(value) for path, value in init_tree(KEY, SPEC).items()}


def check_leaves(params, named, unsharded):
    assert list(params) == list(SPEC)
    for path, (_, shape, _) in SPEC.items():
        value = params[path]
        np.testing.assert_array_equal(np.asarray(value), unsharded[path], err_msg=path)
        sharding = named.get(path)
        if sharding is None:
            assert value.sharding.is_fully_replicated
            assert len(value.sharding.device_set) == 1, path
            continue
        assert value.sharding.is_equivalent_to(sharding, len(shape)), path
        shard_shape = sharding.shard_shape(shape)
        shard_bytes = int(np.prod(shard_shape)) * value.dtype.itemsize
        assert len(value.addressable_shards) == 8, path
        for shard in value.addressable_shards:
            assert shard.data.shape == shard_shape, path
            assert shard.data.nbytes == shard_bytes, path
            assert shard.data.devices() == {shard.device}, path


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_sharded_leaves_on_an_auto_mesh(
    small_blocks, monkeypatch, unsharded, on_device
):
    monkeypatch.setattr(_engine, "DEVICE_ASSEMBLY", on_device)
    named = shardings(make_mesh(AxisType.Auto))
    check_leaves(init_tree(KEY, SPEC, out_shardings=named), named, unsharded)


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_sharded_leaves_on_an_explicit_mesh(
    small_blocks, monkeypatch, unsharded, on_device
):
    monkeypatch.setattr(_engine, "DEVICE_ASSEMBLY", on_device)
    mesh = make_mesh(AxisType.Explicit)
    named = shardings(mesh)
    with jax.set_mesh(mesh):
        params = init_tree(KEY, SPEC, out_shardings=named)
        check_leaves(params, named, unsharded)
        # Bare partition specs name axes of the mesh set by jax.set_mesh.
        specs = {path: spec for path, *_, spec in LEAVES}
        bare = init_tree(KEY, SPEC, out_shardings=specs)
        check_leaves(bare, named, unsharded)
    assert jax.typeof(params["both"]).sharding.spec == P("x", "y")


def test_the_real_block_size_and_the_default_placement(unsharded):
    """No monkeypatching: the blocks init_tree uses; unnamed paths as before."""
    named = {"columns": NamedSharding(make_mesh(AxisType.Auto), P(None, "y"))}
    params = init_tree(KEY, SPEC, out_shardings=named)
    check_leaves(params, named, unsharded)
    assert params["rows"].sharding == init_tree(KEY, SPEC)["rows"].sharding


def test_device_assembly_equals_host_assembly_unsharded(small_blocks, monkeypatch):
    host = init_tree(KEY, SPEC)
    monkeypatch.setattr(_engine, "DEVICE_ASSEMBLY", True)
    device = init_tree(KEY, SPEC)
    for path in SPEC:
        np.testing.assert_array_equal(
            np.asarray(device[path]), np.asarray(host[path]), err_msg=path
        )
        assert device[path].sharding == host[path].sharding


def test_the_switch_follows_the_backend(monkeypatch):
    monkeypatch.setattr(_engine, "DEVICE_ASSEMBLY", None)
    assert _engine.assemble_on_device() == (jax.default_backend() != "cpu")


def test_each_device_draws_its_own_rows_with_one_program(small_blocks):
    """One strided program for every device, shape and leaf; its per-device
    output is one block, never a leaf."""
    strided = _programs.program("strided", "cpu")
    strided.clear_cache()
    mesh = make_mesh(AxisType.Auto)
    init_tree(KEY, SPEC, out_shardings=shardings(mesh))
    # One per (law, dtype): uniform in float32, bfloat16 and float16, normal in
    # float32 and float16, clipped_normal (trunc_normal, far bounds) in float32.
    assert strided._cache_size() == 6
    rows = 8 * _programs.BLOCK_ROWS
    args = (
        np.zeros((rows, 2), np.uint32),
        np.zeros(rows, np.uint32),
        np.ones(rows, np.uint32),
        np.zeros(rows, np.uint32),
        np.zeros((rows, 6), np.float32),
    )
    lanes = NamedSharding(jax.make_mesh((8,), ("rows",)), P("rows"))
    placed = jax.device_put(args, lanes)
    compiled = strided.lower(np.dtype(np.float32), "uniform", *placed).compile()
    block_bytes = _programs.BLOCK_ROWS * ROW * 4
    assert compiled.memory_analysis().output_size_in_bytes == block_bytes


STRUCTURED = {
    "orthogonal_tall": (jaxinit.orthogonal(), (256, 16), None, P("x")),
    "orthogonal_square": (jaxinit.orthogonal(), (32, 32), None, P("x", "y")),
    "sparse": (jaxinit.sparse(0.5), (32, 16), None, P(None, "y")),
    "eye": (jaxinit.eye(), (16, 8), None, P("x", "y")),
    "dirac": (jaxinit.dirac(), (3, 3, 8, 8), None, P(None, None, "x", "y")),
    "jax_nn": (jax.nn.initializers.lecun_normal(), (16, 8), jnp.float32, P("x")),
    "empty": (jaxinit.normal(), (0, 8), None, P(None, "y")),
}


@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit])
def test_structured_leaves_are_their_own_sharded_call(axis_type):
    mesh = make_mesh(axis_type)
    spec = {path: leaf[:3] for path, leaf in STRUCTURED.items()}
    named = {path: NamedSharding(mesh, leaf[3]) for path, leaf in STRUCTURED.items()}
    with jax.set_mesh(mesh):
        params = init_tree(KEY, spec, out_shardings=named)
        for path, (init, shape, dtype, _) in STRUCTURED.items():
            if isinstance(init, InitializerBase):
                own = init(leaf_key(KEY, path), shape, dtype, out_sharding=named[path])
            else:
                own = jax.jit(
                    lambda k, init=init, shape=shape, dtype=dtype: init(
                        k, shape, dtype
                    ),
                    out_shardings=named[path],
                )(leaf_key(KEY, path))
            assert params[path].sharding.is_equivalent_to(named[path], len(shape))
            np.testing.assert_array_equal(
                np.asarray(params[path]), np.asarray(own), err_msg=path
            )


def test_under_jit_sharded_leaves_keep_their_shardings(unsharded):
    named = shardings(make_mesh(AxisType.Auto))
    spec = {path: SPEC[path] for path in ("rows", "columns", "bias")}
    some = {path: named[path] for path in spec}
    params = jax.jit(lambda key: init_tree(key, spec, out_shardings=some))(KEY)
    for path in spec:
        assert params[path].sharding.is_equivalent_to(some[path], params[path].ndim)
        np.testing.assert_array_equal(np.asarray(params[path]), unsharded[path])


def test_paths_match_by_name_and_single_device_shardings(small_blocks, unsharded):
    spec = {("enc", "w"): SPEC["rows"], "enc/b": SPEC["vector"]}
    device = jax.devices()[3]
    named = {
        "enc/w": NamedSharding(make_mesh(AxisType.Auto), P("x")),
        ("enc", "b"): jax.sharding.SingleDeviceSharding(device),
    }
    params = init_tree(KEY, spec, out_shardings=named)
    assert params[("enc", "w")].sharding.spec == P("x")
    assert params["enc/b"].devices() == {device}
    expected = init_tree(KEY, spec)
    for path in spec:
        np.testing.assert_array_equal(
            np.asarray(params[path]), np.asarray(expected[path])
        )


def test_gpt2_sized_leaves_hold_one_eighth_per_device():
    """Column- and row-sharded GPT-2 kernels: each device holds its shard."""
    mesh = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Auto,))
    spec = {
        "c_fc/kernel": (jaxinit.kaiming_uniform(), (768, 3072), None),
        "c_proj/kernel": (jaxinit.kaiming_uniform(), (3072, 768), None),
        "wte": (jaxinit.normal(), (1001, 768), None),
        "c_fc/bias": (jaxinit.zeros(), (3072,), None),
    }
    named = {
        "c_fc/kernel": NamedSharding(mesh, P(None, "model")),
        "c_proj/kernel": NamedSharding(mesh, P("model", None)),
        "wte": NamedSharding(mesh, P(None, "model")),
        "c_fc/bias": NamedSharding(mesh, P("model")),
    }
    params = init_tree(KEY, spec, out_shardings=named)
    expected = init_tree(KEY, spec)
    for path, (_, shape, _) in spec.items():
        per_device = {s.device: s.data.nbytes for s in params[path].addressable_shards}
        assert set(per_device.values()) == {int(np.prod(shape)) * 4 // 8}, path
        np.testing.assert_array_equal(
            np.asarray(params[path]), np.asarray(expected[path]), err_msg=path
        )


def test_sharding_errors_name_the_path():
    mesh = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Auto,))
    spec = {"w": (jaxinit.normal(), (64, 30), None)}
    columns = NamedSharding(mesh, P(None, "model"))
    with pytest.raises(ValueError, match=r"out_shardings\['w'\].*\(64, 30\).*30"):
        init_tree(KEY, spec, out_shardings={"w": columns})
    with pytest.raises(ValueError, match=r"out_shardings\['w'\].*rank 2"):
        init_tree(
            KEY, spec, out_shardings={"w": NamedSharding(mesh, P(None, None, "model"))}
        )
    with pytest.raises(ValueError, match=r"'v', which is not in spec"):
        init_tree(KEY, spec, out_shardings={"v": NamedSharding(mesh, P())})
    with pytest.raises(ValueError, match="no mesh is set"):
        init_tree(KEY, spec, out_shardings={"w": P("model")})
    with pytest.raises(TypeError, match=r"out_shardings\['w'\] must be a jax.sharding"):
        init_tree(KEY, spec, out_shardings={"w": "model"})
    with pytest.raises(TypeError, match="out_shardings must be a mapping"):
        init_tree(KEY, spec, out_shardings=[columns])
    # Structured leaves and other initializers are checked the same way.
    for init in (jaxinit.orthogonal(), jax.nn.initializers.lecun_normal()):
        with pytest.raises(ValueError, match=r"out_shardings\['w'\]"):
            init_tree(
                KEY, {"w": (init, (64, 30), jnp.float32)}, out_shardings={"w": columns}
            )


def test_an_indivisible_out_sharding_is_an_error_not_a_replica():
    mesh = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Auto,))
    columns = NamedSharding(mesh, P(None, "model"))
    for init in (jaxinit.normal(), jaxinit.orthogonal(), jaxinit.zeros()):
        with pytest.raises(
            ValueError, match=r"out_sharding P\(None, 'model'\).*\(64, 30\)"
        ):
            init(KEY, (64, 30), out_sharding=columns)
    with pytest.raises(ValueError, match=r"out_sharding .* rank 1"):
        jaxinit.uniform()(KEY, (64,), out_sharding=columns)
    explicit = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(explicit), pytest.raises(ValueError, match="out_sharding"):
        jaxinit.uniform()(KEY, (64, 30), out_sharding=P(None, "model"))
    # Divisible ones still work.
    fine = jaxinit.normal()(KEY, (64, 32), out_sharding=columns)
    assert fine.sharding.spec == P(None, "model")


COLLIDING = [("plumless", "buckeroo"), ("plumless/kernel", "buckeroo/kernel")]


@pytest.mark.parametrize(("a", "b"), COLLIDING)
def test_crc32_colliding_paths_get_different_keys(a, b):
    assert zlib.crc32(a.encode()) == zlib.crc32(b.encode())  # the premise
    key_a = jax.random.key_data(leaf_key(KEY, a))
    key_b = jax.random.key_data(leaf_key(KEY, b))
    assert not np.array_equal(np.asarray(key_a), np.asarray(key_b))
    spec = {a: (jaxinit.normal(), (16, 8), None), b: (jaxinit.normal(), (16, 8), None)}
    params = init_tree(KEY, spec)
    assert not np.array_equal(np.asarray(params[a]), np.asarray(params[b]))


def test_leaf_key_is_two_fold_ins_of_a_64_bit_path_hash():
    path = ("h", 3, "mlp", "c_fc", "kernel")
    digest = hashlib.blake2b(b"h/3/mlp/c_fc/kernel", digest_size=8).digest()
    high = int.from_bytes(digest[:4], "big")
    low = int.from_bytes(digest[4:], "big")
    expected = jax.random.fold_in(jax.random.fold_in(KEY, high), low)
    np.testing.assert_array_equal(
        np.asarray(jax.random.key_data(leaf_key(KEY, path))),
        np.asarray(jax.random.key_data(expected)),
    )


@pytest.mark.parametrize("key", [KEY, jax.random.key(2**31 + 5), jax.random.PRNGKey(9)])
def test_host_key_derivation_equals_leaf_key(key):
    paths = [
        "plumless",
        "buckeroo",
        ("enc", 0, "kernel"),
        "",
        "ünïcode/κ",
        *[f"layers/{i}/kernel" for i in range(40)],
    ]
    host = _keys.leaf_key_words(key, paths)
    for path, words in zip(paths, host, strict=True):
        expected = np.asarray(jax.random.key_data(leaf_key(key, path)))
        np.testing.assert_array_equal(words, expected, err_msg=str(path))
