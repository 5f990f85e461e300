"""Models and big kernels on a mesh: the block QR's memory, and reinit/torch_init
keeping every parameter's sharding (8 simulated devices, tests/conftest.py)."""

import math

import jax
import jax.numpy as jnp
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


# reinit / torch_init keep every parameter's sharding.

flax = pytest.importorskip("flax")
from flax import linen as nn, nnx  # noqa: E402

import jaxinit.flax as jflax  # noqa: E402

AXIS_TYPES = [AxisType.Auto, AxisType.Explicit]
X = jnp.ones((2, 32))
# Every parameter's partition, by path; the twin model has none.
NNX_SPECS = {
    ("embed", "embedding"): P("x", None),
    ("up", "kernel"): P(None, ("x", "y")),
    ("up", "bias"): P(("x", "y")),
    ("down", "kernel"): P("y", "x"),
    ("down", "bias"): P(),
    ("norm", "scale"): P(),
    ("norm", "bias"): P(),
}
LINEN_SPECS = {
    path: spec for path, spec in NNX_SPECS.items() if path[0] in ("up", "down")
}


def mesh42(axis_type: AxisType) -> jax.sharding.Mesh:
    return jax.make_mesh((4, 2), ("x", "y"), axis_types=(axis_type,) * 2)


def partitioned(init, path, sharded):
    """``init`` boxed with the path's partition names when ``sharded``."""
    spec = NNX_SPECS[path]
    return nnx.with_partitioning(init, tuple(spec)) if sharded and spec else init


class Net(nnx.Module):
    def __init__(self, sharded: bool, rngs: nnx.Rngs):
        normal, zeros = nnx.initializers.normal(), nnx.initializers.zeros_init()
        self.embed = nnx.Embed(
            64,
            32,
            embedding_init=partitioned(normal, ("embed", "embedding"), sharded),
            rngs=rngs,
        )
        self.up = nnx.Linear(
            32,
            128,
            kernel_init=partitioned(normal, ("up", "kernel"), sharded),
            bias_init=partitioned(zeros, ("up", "bias"), sharded),
            rngs=rngs,
        )
        self.down = nnx.Linear(
            128,
            32,
            kernel_init=partitioned(normal, ("down", "kernel"), sharded),
            rngs=rngs,
        )
        self.norm = nnx.LayerNorm(32, rngs=rngs)


class LinenNet(nn.Module):
    sharded: bool
    logical: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def boxed(init, path):
            spec = tuple(NNX_SPECS[path])
            if not self.sharded or not spec:
                return init
            if self.logical:  # "rows"/"cols" -> mesh axes by the context's rules
                names = tuple(_LOGICAL.get(name, name) for name in spec)
                return nn.with_logical_partitioning(init, names)
            return nn.with_partitioning(init, spec)

        normal, zeros = nn.initializers.normal(), nn.initializers.zeros_init()
        x = nn.Dense(
            128,
            kernel_init=boxed(normal, ("up", "kernel")),
            bias_init=boxed(zeros, ("up", "bias")),
            name="up",
        )(x)
        x = nn.Dense(32, kernel_init=boxed(normal, ("down", "kernel")), name="down")(x)
        return nn.LayerNorm(name="norm")(x)


_LOGICAL = {"x": "rows", "y": "cols", ("x", "y"): "both"}
LOGICAL_RULES = (("rows", "x"), ("cols", "y"), ("both", ("x", "y")))


def nnx_values(model: nnx.Module) -> dict:
    return {
        tuple(path): variable.get_value()
        for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


def linen_values(params) -> dict:
    flat = flax.traverse_util.flatten_dict(dict(params))
    return {tuple(path): leaf for path, leaf in flat.items()}


def assert_placed(value: jax.Array, sharding: jax.sharding.Sharding) -> None:
    """``value`` has ``sharding`` and each device holds only its shard's bytes."""
    assert value.sharding.is_equivalent_to(sharding, value.ndim), value.sharding
    shard_bytes = math.prod(sharding.shard_shape(value.shape)) * value.dtype.itemsize
    for shard in value.addressable_shards:
        assert shard.data.nbytes == shard_bytes
    if any(sharding.spec):
        assert shard_bytes < value.nbytes  # sharded, not a replica


def assert_twin(got: dict, twin: dict) -> None:
    """Every parameter equals the unsharded twin's, bit for bit."""
    assert got.keys() == twin.keys()
    for path, value in got.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(twin[path]), path)


def nnx_twin(key: jax.Array, rules=None) -> dict:
    twin = Net(False, nnx.Rngs(1))
    jflax.torch_init(twin, key, rules)
    return nnx_values(twin)


@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_torch_init_keeps_a_concrete_nnx_models_shardings(axis_type):
    mesh = mesh42(axis_type)
    with jax.set_mesh(mesh):
        model = Net(True, nnx.Rngs(0))
        before = {path: value.sharding for path, value in nnx_values(model).items()}
        jflax.torch_init(model, KEY)
    after = nnx_values(model)
    for path, spec in NNX_SPECS.items():
        assert before[path].is_equivalent_to(NamedSharding(mesh, spec), 2)
        assert_placed(after[path], before[path])
    assert_twin(after, nnx_twin(KEY))


@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_torch_init_materializes_an_abstract_nnx_model_sharded(axis_type):
    """nnx.eval_shape under the mesh gives ShapeDtypeStructs whose NamedSharding
    is on an abstract mesh; torch_init creates each on the concrete one."""
    mesh = mesh42(axis_type)
    with jax.set_mesh(mesh):
        model = nnx.eval_shape(lambda: Net(True, nnx.Rngs(0)))
        assert isinstance(model.up.kernel.get_value(), jax.ShapeDtypeStruct)
        jflax.torch_init(model, KEY)
    after = nnx_values(model)
    for path, spec in NNX_SPECS.items():
        assert isinstance(after[path], jax.Array)
        assert_placed(after[path], NamedSharding(mesh, spec))
    assert_twin(after, nnx_twin(KEY))


def test_abstract_nnx_metadata_without_a_sharding_uses_the_current_mesh():
    """An abstract value without a sharding but with ``out_sharding`` metadata
    (nnx.as_abstract's input) is placed by its names on the current mesh."""
    mesh = mesh42(AxisType.Auto)
    with jax.set_mesh(mesh):
        model = nnx.eval_shape(lambda: Net(True, nnx.Rngs(0)))
    kernel = model.up.kernel.get_value()
    model.up.kernel.set_value(jax.ShapeDtypeStruct(kernel.shape, kernel.dtype))
    with jax.set_mesh(mesh):
        jflax.torch_init(model, KEY)
    sharding = NamedSharding(mesh, NNX_SPECS["up", "kernel"])
    assert_placed(model.up.kernel.get_value(), sharding)


def test_an_abstract_sharded_nnx_model_needs_a_concrete_mesh():
    with jax.set_mesh(mesh42(AxisType.Auto)):
        model = nnx.eval_shape(lambda: Net(True, nnx.Rngs(0)))
    named = r"torch_init: the parameter '[a-z]+/[a-z]+' is sharded over a mesh"
    with pytest.raises(ValueError, match=named + r".*under jax\.set_mesh"):
        jflax.torch_init(model, KEY)
    with jax.set_mesh(jax.make_mesh((8,), ("x",))):
        with pytest.raises(ValueError, match=named + r".*the current mesh has"):
            jflax.torch_init(model, KEY)


def test_reinit_keeps_shardings_of_structured_and_untouched_parameters():
    """orthogonal on a sharded tall kernel: the initializer's own out_sharding=
    (block QR: the unsharded Q up to rounding); a parameter no rule names keeps
    its value and its sharding."""
    mesh = mesh42(AxisType.Auto)
    rules = {r"down/kernel": jaxinit.orthogonal()}
    with jax.set_mesh(mesh):
        model = Net(True, nnx.Rngs(0))
        untouched = model.up.kernel.get_value()
        jflax.reinit(model, KEY, rules)
    kernel = model.down.kernel.get_value()
    assert_placed(kernel, NamedSharding(mesh, NNX_SPECS["down", "kernel"]))
    assert model.up.kernel.get_value() is untouched
    twin = nnx_twin(KEY, rules)
    np.testing.assert_allclose(
        np.asarray(kernel), np.asarray(twin["down", "kernel"]), atol=ROUNDING_F32
    )


def test_a_parameter_on_another_device_stays_there():
    device = jax.devices()[3]
    model = Net(False, nnx.Rngs(0))
    model.up.kernel.set_value(jax.device_put(model.up.kernel.get_value(), device))
    jflax.torch_init(model, KEY)
    assert model.up.kernel.get_value().devices() == {device}
    assert model.down.kernel.get_value().devices() == {jax.devices()[0]}
    assert_twin(nnx_values(model), nnx_twin(KEY))


def test_an_unsharded_model_takes_init_trees_own_placement(monkeypatch):
    """No sharding to keep: init_tree is called as before, without shardings."""
    calls = []
    real = jaxinit._reinit.init_tree

    def spy(key, spec, **options):
        calls.append(options)
        return real(key, spec, **options)

    monkeypatch.setattr(jaxinit._reinit, "init_tree", spy)
    jflax.torch_init(Net(False, nnx.Rngs(0)), KEY)
    assert calls == [{}]


def linen_twin(key: jax.Array) -> dict:
    module = LinenNet(False)
    variables = module.init(jax.random.key(1), X)
    new = jflax.torch_init(module, key, variables=variables, args=(X,))
    return linen_values(new["params"])


@pytest.mark.parametrize("abstract", [False, True])
def test_torch_init_keeps_linen_partitioned_boxes(abstract):
    """Boxed by nn.with_partitioning: back in the same box, each value placed by
    its names on the current mesh (linen's init leaves them replicated). Auto
    axes only: linen's own init and apply fail on Explicit ones, where a box's
    sharding constraint is an assertion."""
    mesh = mesh42(AxisType.Auto)
    module = LinenNet(True)
    with jax.set_mesh(mesh):
        init = jax.eval_shape if abstract else (lambda fn, *a: fn(*a))
        variables = init(module.init, jax.random.key(1), X)
        new = jflax.torch_init(module, KEY, variables=variables, args=(X,))
    leaves = linen_values(new["params"])
    replicated = NamedSharding(mesh, P())
    for path, leaf in leaves.items():
        if path not in LINEN_SPECS or not LINEN_SPECS[path]:
            # Unboxed: as linen's init under the mesh leaves it (an abstract one
            # too), replicated on the mesh.
            assert isinstance(leaf, jax.Array)
            assert_placed(leaf, replicated)
    for path, spec in LINEN_SPECS.items():
        if not spec:
            continue
        box = leaves[path]
        assert type(box) is nn.Partitioned and box.names == tuple(spec)
        assert box.mesh is None
        assert_placed(box.value, NamedSharding(mesh, spec))
    unboxed = {path: nn.unbox(leaf) for path, leaf in leaves.items()}
    assert_twin(unboxed, linen_twin(KEY))


def test_linen_logical_partitioning_goes_through_the_axis_rules():
    mesh = mesh42(AxisType.Auto)
    module = LinenNet(True, logical=True)
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_RULES):
        variables = jax.eval_shape(module.init, jax.random.key(1), X)
        new = jflax.torch_init(module, KEY, variables=variables, args=(X,))
    leaves = linen_values(new["params"])
    box = leaves["up", "kernel"]
    assert type(box) is nn.LogicallyPartitioned and box.names == (None, "both")
    assert_placed(box.value, NamedSharding(mesh, NNX_SPECS["up", "kernel"]))


def test_linen_box_with_its_own_mesh_needs_no_context():
    mesh = mesh42(AxisType.Auto)

    class Boxed(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.with_partitioning(nn.initializers.zeros_init(), ("x", "y"), mesh)
            return nn.Dense(16, kernel_init=init, name="up")(x)

    variables = jax.eval_shape(Boxed().init, jax.random.key(1), X)
    new = jflax.torch_init(Boxed(), KEY, variables=variables, args=(X,))
    box = new["params"]["up"]["kernel"]
    assert box.mesh is mesh
    assert_placed(box.value, NamedSharding(mesh, P("x", "y")))


def test_abstract_linen_boxes_without_a_mesh_are_an_error():
    variables = jax.eval_shape(LinenNet(True).init, jax.random.key(1), X)
    with pytest.raises(ValueError, match=r"'(up|down)/kernel'.*jax\.set_mesh"):
        jflax.torch_init(LinenNet(True), KEY, variables=variables, args=(X,))


def test_concrete_linen_boxes_outside_a_mesh_stay_where_they_are():
    variables = LinenNet(True).init(jax.random.key(1), X)
    new = jflax.torch_init(LinenNet(True), KEY, variables=variables, args=(X,))
    box = new["params"]["up"]["kernel"]
    assert type(box) is nn.Partitioned
    assert box.value.devices() == {jax.devices()[0]}
    unboxed = {
        path: nn.unbox(leaf) for path, leaf in linen_values(new["params"]).items()
    }
    assert_twin(unboxed, linen_twin(KEY))


def test_linen_boxes_under_jit_keep_their_partition():
    """Traced values (the key passed in, as jit needs) have no placement, only
    their names: the new values are constrained to them, not left replicated;
    they are still the twin's."""
    mesh = mesh42(AxisType.Auto)
    module = LinenNet(True)
    with jax.set_mesh(mesh):
        variables = module.init(jax.random.key(1), X)
        new = jax.jit(
            lambda v, key: jflax.torch_init(module, key, variables=v, args=(X,))
        )(variables, KEY)
    leaves = linen_values(new["params"])
    assert type(leaves["up", "kernel"]) is nn.Partitioned
    for path, spec in LINEN_SPECS.items():
        if spec:
            assert_placed(leaves[path].value, NamedSharding(mesh, spec))
    unboxed = {path: nn.unbox(leaf) for path, leaf in leaves.items()}
    assert_twin(unboxed, linen_twin(KEY))


@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_torch_init_under_nnx_jit_keeps_the_partition(axis_type):
    """Under nnx.jit the parameters are traced: each new value is constrained to
    its partition names (with_sharding_constraint; reshard on Explicit axes), so
    the jit's outputs are sharded, not replicated."""
    mesh = mesh42(axis_type)
    with jax.set_mesh(mesh):
        model = Net(True, nnx.Rngs(0))
        nnx.jit(lambda model, key: jflax.torch_init(model, key))(model, KEY)
    after = nnx_values(model)
    for path, spec in NNX_SPECS.items():
        assert_placed(after[path], NamedSharding(mesh, spec))
    assert_twin(after, nnx_twin(KEY))


def test_nnx_partitioning_with_its_own_mesh_needs_no_context():
    mesh = mesh42(AxisType.Auto)
    kernel_init = nnx.with_partitioning(nnx.initializers.zeros_init(), ("x", "y"), mesh)
    model = nnx.eval_shape(
        lambda: nnx.Linear(32, 16, kernel_init=kernel_init, rngs=nnx.Rngs(0))
    )
    jflax.torch_init(model, KEY)
    assert_placed(model.kernel.get_value(), NamedSharding(mesh, P("x", "y")))
    assert model.bias.get_value().devices() == {jax.devices()[0]}
