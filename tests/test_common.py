"""Registry-driven tests of every initializer: shape, dtype, support, determinism,
eager/jit/vmap agreement, over float32, bfloat16, float16 and float64 (x64)."""

import contextlib
import math
from collections.abc import Iterator

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import CASES, RANDOM_CASES, Case

import jaxinit

DTYPES = ["float32", "bfloat16", "float16", "float64"]
UNIFORM_FAMILY = ("uniform", "xavier_uniform", "kaiming_uniform")


@contextlib.contextmanager
def dtype_mode(dtype: str) -> Iterator[None]:
    """float64 needs x64; every run is also under strict dtype promotion."""
    with contextlib.ExitStack() as stack:
        if dtype == "float64":
            stack.enter_context(jax.enable_x64(True))
        stack.enter_context(jax.numpy_dtype_promotion("strict"))
        yield


def support(case: Case, shape: tuple[int, ...]) -> tuple[float, float] | None:
    if case.law is None:
        return None
    low, high = case.law(case.small_torch_shape).support()
    return float(low), float(high)


PARAMS = [
    pytest.param(case, layout, id=f"{case.id}-{layout}")
    for case in CASES
    for layout in case.layouts
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("case", "layout"), PARAMS)
def test_shape_dtype_and_support(case: Case, layout: str, dtype: str):
    """Eager calls; jit and vmap give the same bits (test_eager_jit_and_vmap_agree)."""
    shape = case.small_shape(layout)
    key = jax.random.key(0)
    init = case.init(layout)
    with dtype_mode(dtype):
        out = init(key, shape, jnp.dtype(dtype))
        chex.assert_shape(out, shape)
        assert out.dtype == jnp.dtype(dtype)
        values = np.asarray(
            out.astype(jnp.float64 if dtype == "float64" else jnp.float32)
        )
        assert np.isfinite(values).all()
        bounds = support(case, shape)
        if bounds is not None:
            low, high = bounds
            assert (values >= low).all(), values.min()
            if case.name in UNIFORM_FAMILY:
                assert (values < high).all(), values.max()
            else:
                assert (values <= high).all(), values.max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("case", "layout"), PARAMS)
def test_eager_jit_and_vmap_agree(case: Case, layout: str, dtype: str):
    """The same key gives the same bits eagerly, under jit and under vmap.

    Each variant is a separate computation (an eager call, a fresh jit of a new
    function, a vmap over three keys) compared with the others bit for bit.
    """
    shape = case.small_shape(layout)
    keys = jax.random.split(jax.random.key(0), 3)
    init = case.init(layout)
    with dtype_mode(dtype):
        dt = jnp.dtype(dtype)
        eager = [np.asarray(init(key, shape, dt)) for key in keys]
        jitted = jax.jit(lambda key: init(key, shape, dt))
        batched = jax.vmap(lambda key: init(key, shape, dt))(keys)
        assert batched.dtype == dt and batched.shape == (3, *shape)
        for index, key in enumerate(keys):
            where = f"key {index}"
            once = jitted(key)
            assert once.dtype == dt
            np.testing.assert_array_equal(np.asarray(once), eager[index], where)
            np.testing.assert_array_equal(
                np.asarray(batched[index]), eager[index], where
            )
        if not case.exact:
            assert not np.array_equal(eager[0], eager[1])


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: c.id)
def test_keys_matter_and_raw_keys_work(case: Case):
    init = case.init("flax")
    shape = case.small_shape("flax")
    first = init(jax.random.key(0), shape)
    second = init(jax.random.key(1), shape)
    assert not np.array_equal(np.asarray(first), np.asarray(second))
    raw = init(jax.random.PRNGKey(0), shape)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(raw))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_factory_dtype_is_the_default(case: Case):
    init = case.factory(**case.kwargs, dtype=jnp.bfloat16)
    shape = case.small_shape("flax")
    assert init(jax.random.key(0), shape).dtype == jnp.bfloat16
    assert init(jax.random.key(0), shape, jnp.float16).dtype == jnp.float16


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_zero_element_shapes_give_empty_arrays(case: Case):
    shape = list(case.small_shape("flax"))
    shape[-1] = 0  # no output features
    init = case.init("flax")
    if case.name.startswith("kaiming"):
        with pytest.warns(
            UserWarning, match="Initializing zero-element tensors is a no-op"
        ):
            out = init(jax.random.key(0), tuple(shape))
    else:
        out = init(jax.random.key(0), tuple(shape))
    assert out.shape == tuple(shape) and math.prod(out.shape) == 0


def test_equal_initializers_share_one_trace():
    @chex.assert_max_traces(n=1)
    def draw_with(init, key):
        return init(key, (4, 4))

    jitted = jax.jit(draw_with, static_argnums=0)
    jitted(jaxinit.kaiming_uniform(a=math.sqrt(5)), jax.random.key(0))
    jitted(jaxinit.kaiming_uniform(a=math.sqrt(5)), jax.random.key(1))
    with pytest.raises(AssertionError):  # a different initializer is a new trace
        jitted(jaxinit.kaiming_uniform(a=0.0), jax.random.key(1))
