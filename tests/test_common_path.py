"""The common path: eager initializer calls and ``jaxinit.flax.init``.

Eager calls outside any trace draw the laws ``init_tree`` batches with its
shape-independent programs (``jaxinit._eager``): no compile per new shape, and
the same bits as the jitted and vmapped calls.
"""

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import CASES

import jaxinit
from jaxinit import _eager

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles() -> Iterator[list[str]]:
    """Records one entry per XLA compile inside the block."""
    seen: list[str] = []

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        if event == _COMPILE_EVENT:
            seen.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@contextlib.contextmanager
def spy_eager() -> Iterator[list[tuple[int, ...]]]:
    """Records the shapes the eager path drew (not those it passed on)."""
    drawn: list[tuple[int, ...]] = []
    original = _eager.draw

    def spy(init: Any, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        out = original(init, key, shape, dtype)
        if out is not None:
            drawn.append(shape)
        return out

    _eager.draw = spy  # type: ignore[assignment]
    try:
        yield drawn
    finally:
        _eager.draw = original  # type: ignore[assignment]


# --- no compile per shape ----------------------------------------------------------

BATCHED = [
    jaxinit.uniform(-0.5, 0.25),
    jaxinit.normal(std=0.02),
    jaxinit.trunc_normal(std=0.02, a=-1.0, b=1.0),  # bounds out of reach: batched
    jaxinit.xavier_uniform(),
    jaxinit.xavier_normal(gain=2.0),
    jaxinit.kaiming_uniform(a=math.sqrt(5)),
    jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu"),
    jaxinit.zeros(),
    jaxinit.constant(0.5),
]
# Shapes nothing else in the suite draws, several spanning more than one block.
NEW_SHAPES = [(37, 53), (3, 3, 29, 31), (611, 517), (1031, 263), (5, 7, 11, 13)]


@pytest.mark.parametrize("init", BATCHED, ids=repr)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_new_shapes_compile_nothing(init: Any, dtype: Any) -> None:
    keys = [jax.random.key(i) for i in range(len(NEW_SHAPES) + 1)]
    jax.block_until_ready(init(keys[-1], (64, 48), dtype))  # first call of the law
    with count_compiles() as compiles, spy_eager() as drawn:
        for key, shape in zip(keys, NEW_SHAPES, strict=False):
            jax.block_until_ready(init(key, shape, dtype))
    assert drawn == NEW_SHAPES
    assert compiles == []


def test_old_path_compiles_per_shape() -> None:
    # The counter sees compiles: under jit every new shape is one.
    init = jaxinit.normal(std=0.02)
    key = jax.random.key(0)
    with count_compiles() as compiles:
        jax.jit(lambda k: init(k, (41, 43)))(key)
    assert len(compiles) == 1


# --- eager == jit == vmap, bit for bit ---------------------------------------------

# Beside each case's own small shape in float32: the half dtypes and two more
# shapes (an odd last axis, a multi-block leaf) for one case of each law.
_HALF = (jnp.bfloat16, jnp.float16)
_EXTRA_SHAPES = ((3, 5, 7), (389, 1231))
_WIDE = ("uniform_ab", "normal_mean_std", "trunc_normal_std002", "xavier_normal")
_WIDE += ("kaiming_uniform_linear_default", "constant")
_OWN_PATH = ("orthogonal", "sparse", "eye", "dirac")


def _variants(case: Any, layout: str) -> list[tuple[tuple[int, ...], Any]]:
    shape = case.small_shape(layout)
    out = [(shape, jnp.float32)]
    if case.id in _WIDE:
        out += [(shape, dtype) for dtype in _HALF]
        out += [(extra, jnp.float32) for extra in _EXTRA_SHAPES]
    return out


def _bits(array: Any) -> np.ndarray:
    host = np.asarray(array)
    return host.view(np.dtype(f"u{host.dtype.itemsize}"))


@pytest.mark.parametrize("layout", ["flax", "torch"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_eager_equals_jit_and_vmap(case: Any, layout: str) -> None:
    if layout not in case.layouts:
        pytest.skip("layout-free initializer")
    if layout == "torch" and case.name in _OWN_PATH:
        pytest.skip("not batched: eager and jitted calls run the same program")
    init = case.init(layout)
    variants = _variants(case, layout)
    keys = jax.random.split(jax.random.key(7), 2)

    @jax.jit
    def traced(keys: Any) -> Any:
        direct = [init(keys[1], shape, dtype) for shape, dtype in variants]
        shape, dtype = variants[0]
        mapped = jax.vmap(lambda k: init(k, shape, dtype))(keys)[1]
        return direct, mapped

    direct, mapped = traced(keys)
    with spy_eager() as drawn:
        eager = [init(keys[1], shape, dtype) for shape, dtype in variants]
    if case.name in ("uniform", "normal", "xavier_uniform", "xavier_normal"):
        assert len(drawn) == len(variants)  # the eager path served them all
    for (shape, dtype), e, d in zip(variants, eager, direct, strict=True):
        where = f"{case.id} {layout} {shape} {np.dtype(dtype).name}"
        assert e.shape == shape and e.dtype == dtype, where
        np.testing.assert_array_equal(_bits(e), _bits(d), err_msg=where)
    np.testing.assert_array_equal(_bits(eager[0]), _bits(mapped))


def test_raw_key_same_bits() -> None:
    init = jaxinit.kaiming_normal()
    raw = jax.random.PRNGKey(3)
    with spy_eager() as drawn:
        eager = init(raw, (300, 900))
    assert drawn == [(300, 900)]
    jitted = jax.jit(lambda k: init(k, (300, 900)))(raw)
    np.testing.assert_array_equal(_bits(eager), _bits(jitted))


# --- under a trace, today's path -----------------------------------------------------


def test_captured_concrete_key_stays_traced() -> None:
    init = jaxinit.normal(std=0.02)
    key = jax.random.key(0)  # concrete, captured from outside the jit
    with spy_eager() as drawn:
        jaxpr = jax.make_jaxpr(lambda: init(key, (64, 32)))()
        jitted = jax.jit(lambda: init(key, (64, 32)))()
        shape = jax.eval_shape(lambda: init(key, (64, 32)))
        mapped = jax.vmap(lambda x: init(key, (64, 32)) + x)(jnp.zeros((2, 1, 1)))
    assert drawn == []  # the draw is in the traced program, not a constant
    assert jaxpr.jaxpr.eqns and all(c.shape == () for c in jaxpr.consts)
    assert shape.shape == (64, 32)
    eager = init(key, (64, 32))
    np.testing.assert_array_equal(_bits(eager), _bits(jitted))
    np.testing.assert_array_equal(_bits(eager), _bits(mapped[1]))


def test_nnx_jit_stays_traced() -> None:
    nnx = pytest.importorskip("flax.nnx")
    with spy_eager() as drawn:
        layer = nnx.jit(
            lambda: nnx.Linear(
                16, 8, kernel_init=jaxinit.normal(std=0.1), rngs=nnx.Rngs(0)
            )
        )()
    assert drawn == []
    eager = nnx.Linear(16, 8, kernel_init=jaxinit.normal(std=0.1), rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(_bits(layer.kernel[...]), _bits(eager.kernel[...]))


def test_out_sharding_keeps_its_path() -> None:
    init = jaxinit.uniform()
    key = jax.random.key(0)
    auto = (jax.sharding.AxisType.Auto,)
    mesh = jax.make_mesh((2,), ("x",), axis_types=auto, devices=jax.devices()[:2])
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    with spy_eager() as drawn:
        placed = init(key, (32, 16), out_sharding=sharding)
    assert drawn == []
    assert placed.sharding.is_equivalent_to(sharding, 2)
    np.testing.assert_array_equal(_bits(placed), _bits(init(key, (32, 16))))


def test_placement_follows_the_key() -> None:
    init = jaxinit.normal()
    uncommitted = init(jax.random.key(0), (8, 8))
    assert not uncommitted.committed
    device = jax.devices()[2]
    key = jax.device_put(jax.random.key(0), device)
    with spy_eager() as drawn:
        placed = init(key, (8, 8))
        constant = jaxinit.ones()(key, (8, 8))
    assert drawn == [(8, 8), (8, 8)]
    assert placed.committed and placed.devices() == {device}
    assert constant.devices() == {jax.devices()[0]}  # exact: the key is ignored
    np.testing.assert_array_equal(_bits(placed), _bits(uncommitted))


def test_not_batched_laws_keep_their_path() -> None:
    key = jax.random.key(0)
    with spy_eager() as drawn:
        jaxinit.orthogonal()(key, (16, 16))
        jaxinit.trunc_normal(std=1.0, a=-0.5, b=0.5)(key, (16, 16))  # bounds in reach
        jaxinit.eye()(key, (4, 4))
    assert drawn == []


# --- jaxinit.flax.init ----------------------------------------------------------------

flax = pytest.importorskip("flax")
from _porting_models import CASES as PORTING, Case, check_against_torch, flat  # noqa: E402
from _stats import assert_ks, assert_same_law  # noqa: E402
from flax import linen as nn, traverse_util  # noqa: E402

import jaxinit.flax as jflax  # noqa: E402
from jaxinit._tree import leaf_key  # noqa: E402

KEY = jax.random.key(0)


def _structure(variables: Any) -> dict[Any, tuple[tuple[int, ...], Any]]:
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    return {path: (leaf.shape, leaf.dtype) for path, leaf in leaves}


def _same_structure(ours: Any, theirs: Any) -> None:
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    assert _structure(ours) == _structure(theirs)


@pytest.mark.parametrize("case", PORTING, ids=lambda case: case.name)
def test_porting_models_torch_defaults(case: Case) -> None:
    # jaxinit initializers (torch's defaults): torch's exact law per parameter.
    module = case.linen_module(True)
    x = jnp.asarray(case.flax_input())
    ours = jflax.init(module, KEY, x)
    _same_structure(ours, module.init(KEY, x))

    def draw(index: int) -> dict[Any, np.ndarray]:
        key = jax.random.fold_in(KEY, index)
        return flat(jflax.init(module, key, x)["params"])

    check_against_torch(case, "linen", draw, exact=False)


@pytest.mark.parametrize("case", PORTING, ids=lambda case: case.name)
def test_porting_models_flax_defaults(case: Case) -> None:
    # Flax's own initializers (lecun_normal, zeros, ones, orthogonal): honoured.
    module = case.linen_module(False)
    x = jnp.asarray(case.flax_input())
    ours = jflax.init(module, KEY, x)
    theirs = module.init(KEY, x)
    _same_structure(ours, theirs)
    ours_flat, theirs_flat = flat(ours["params"]), flat(theirs["params"])
    for path, value in ours_flat.items():
        reference = theirs_flat[path]
        if np.all(reference == reference.flat[0]):  # a constant: the same one
            np.testing.assert_array_equal(value, reference, err_msg=str(path))
        else:
            assert_same_law(value, reference)
            assert not np.array_equal(value, reference)  # drawn from leaf keys


class _Mixed(nn.Module):
    """jaxinit, Flax and jax initializers side by side, sizes with power."""

    @nn.compact
    def __call__(self, x: Any) -> Any:
        x = nn.Dense(512, kernel_init=jaxinit.normal(std=0.02), name="a")(x)
        x = nn.LayerNorm(name="norm")(x)
        x = nn.Dense(
            256,
            kernel_init=nn.initializers.lecun_normal(),
            bias_init=jaxinit.uniform(-0.1, 0.1),
            name="b",
        )(x)
        boxed = nn.with_partitioning(jaxinit.kaiming_uniform(), ("in", "out"))
        return nn.Dense(64, kernel_init=boxed, use_bias=False, name="c")(x)


def test_each_parameter_is_its_initializer_at_its_leaf_key() -> None:
    module = _Mixed()
    x = jnp.ones((2, 1024))
    ours = jflax.init(module, KEY, x)
    _same_structure(ours, module.init(KEY, x))
    params = ours["params"]
    assert isinstance(params["c"]["kernel"], nn.Partitioned)  # boxed, as module.init
    assert params["c"]["kernel"].names == ("in", "out")
    inits = {
        ("a", "kernel"): jaxinit.normal(std=0.02),
        ("a", "bias"): nn.initializers.zeros_init(),
        ("norm", "scale"): nn.initializers.ones_init(),
        ("norm", "bias"): nn.initializers.zeros_init(),
        ("b", "kernel"): nn.initializers.lecun_normal(),
        ("b", "bias"): jaxinit.uniform(-0.1, 0.1),
        ("c", "kernel"): jaxinit.kaiming_uniform(),
    }
    values = traverse_util.flatten_dict(nn.unbox(params))
    assert values.keys() == inits.keys()
    for path, init in inits.items():
        value = values[path]
        expected = init(leaf_key(KEY, path), value.shape, value.dtype)
        np.testing.assert_array_equal(_bits(value), _bits(expected), err_msg=str(path))
    # The law itself, on 524,288 values: a 2% std change fails this KS test.
    assert_ks(values[("a", "kernel")], scipy_norm(0.0, 0.02))


def scipy_norm(mean: float, std: float) -> Any:
    import scipy.stats

    return scipy.stats.norm(mean, std)


class _WithStats(nn.Module):
    @nn.compact
    def __call__(self, x: Any, train: bool = True, extra: bool = False) -> Any:
        x = nn.Dense(32, kernel_init=jaxinit.xavier_uniform(), name="dense")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        if extra:
            x = nn.Dense(8, kernel_init=jaxinit.orthogonal(), name="extra")(x)
        return x


class _TwoHeads(nn.Module):
    width: int = 16

    def setup(self) -> None:
        self.encoder = nn.Dense(self.width, kernel_init=jaxinit.normal())
        self.decoder = nn.Dense(4, kernel_init=jaxinit.normal())

    def __call__(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))

    def encode(self, x: Any, scale: float = 1.0) -> Any:
        return self.encoder(x) * scale


def test_batch_stats_method_and_kwargs() -> None:
    module = _WithStats()
    x = jnp.ones((4, 24))
    for kwargs in ({}, {"extra": True}, {"train": False, "extra": True}):
        ours = jflax.init(module, KEY, x, **kwargs)
        theirs = module.init(KEY, x, **kwargs)
        _same_structure(ours, theirs)
        for name, value in flat(ours["batch_stats"]).items():
            np.testing.assert_array_equal(value, flat(theirs["batch_stats"])[name])
        kernel = ours["params"]["dense"]["kernel"]
        expected = jaxinit.xavier_uniform()(
            leaf_key(KEY, ("dense", "kernel")), (24, 32)
        )
        np.testing.assert_array_equal(_bits(kernel), _bits(expected))
    heads = _TwoHeads(12)
    encoded = jflax.init(heads, KEY, x, method=heads.encode, scale=2.0)
    _same_structure(encoded, heads.init(KEY, x, method=heads.encode, scale=2.0))
    assert set(encoded["params"]) == {"encoder"}  # only what encode() creates
    assert encoded["params"]["encoder"]["kernel"].shape == (24, 12)
    with pytest.raises(TypeError, match="unexpected keyword"):
        jflax.init(heads, KEY, x, method=heads.encode, width=3)


def test_scanned_layers_fall_back_to_the_module() -> None:
    class Layer(nn.Module):
        @nn.compact
        def __call__(self, x: Any, _: Any) -> Any:
            dense = nn.Dense(16, kernel_init=jaxinit.normal(std=0.5), name="dense")
            return dense(x), None

    scanned = nn.scan(
        Layer, variable_axes={"params": 0}, split_rngs={"params": True}, length=3
    )

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return scanned(name="layers")(x, None)[0]

    module, x = Stack(), jnp.ones((2, 16))
    ours = jflax.init(module, KEY, x)
    _same_structure(ours, module.init(KEY, x))
    kernels = np.asarray(ours["params"]["layers"]["dense"]["kernel"])
    assert kernels.shape == (3, 16, 16)
    assert not np.array_equal(kernels[0], kernels[1])  # each layer its own key
    assert_same_law(
        kernels, np.asarray(module.init(KEY, x)["params"]["layers"]["dense"]["kernel"])
    )


def test_mesh_context_keeps_its_path() -> None:
    # Under jax.set_mesh, XLA compiles the initializer's own program differently;
    # eager calls there keep it, so they still equal the jitted calls there.
    init = jaxinit.normal(std=0.02)
    key = jax.random.key(0)
    mesh = jax.make_mesh((1,), ("model",), devices=jax.devices()[:1])
    with jax.set_mesh(mesh), spy_eager() as drawn:
        eager = init(key, (512, 64))
        jitted = jax.jit(lambda k: init(k, (512, 64)))(key)
    assert drawn == []
    np.testing.assert_array_equal(_bits(eager), _bits(jitted))


def test_flax_init_places_boxed_parameters_by_their_names_under_a_mesh():
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    # linen's own init fails on Explicit axes (flax's with_sharding_constraint).
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    module = nn.Dense(
        64,
        kernel_init=nn.with_partitioning(jaxinit.normal(std=0.02), ("data", "model")),
        bias_init=nn.with_partitioning(jaxinit.zeros(), ("model",)),
    )
    x = jnp.ones((2, 32))
    with jax.set_mesh(mesh):
        variables = jaxinit.flax.init(module, KEY, x)
    kernel_box = variables["params"]["kernel"]
    assert isinstance(kernel_box, nn.Partitioned)
    kernel = kernel_box.value
    assert kernel.sharding == NamedSharding(mesh, P("data", "model"))
    assert {shard.data.shape for shard in kernel.addressable_shards} == {(8, 32)}
    unsharded = jaxinit.flax.init(module, KEY, x)["params"]["kernel"].value
    np.testing.assert_array_equal(np.asarray(kernel), np.asarray(unsharded))
