"""init_tree: every leaf bit-identical to its own initializer call with leaf_key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from jaxinit._programs import BLOCK_ROWS as _BLOCK_ROWS, ROW as _ROW
from jaxinit._tree import init_tree, leaf_key

KEY = jax.random.key(0)

SPEC = {
    "kaiming_uniform": (jaxinit.kaiming_uniform(), (100, 50), None),
    "uniform_bf16": (jaxinit.uniform(-0.3, 0.2), (2 * _ROW + 5,), jnp.bfloat16),
    "normal_bf16": (jaxinit.normal(0.5, 2.0), (3, _ROW + 4), jnp.bfloat16),
    "trunc_normal_far": (jaxinit.trunc_normal(std=0.02), (300, 30), None),
    "trunc_normal_near": (jaxinit.trunc_normal(std=1.0), (50,), None),
    "xavier_normal_conv": (jaxinit.xavier_normal(), (5, 3, 16, 8), None),
    "kaiming_normal_torch": (jaxinit.kaiming_normal(layout="torch"), (6, 4), None),
    ("block", 0, "bias"): (jaxinit.zeros(), (17,), None),
    "ones_bf16": (jaxinit.ones(), (3,), jnp.bfloat16),
    "constant": (jaxinit.constant(0.1), (3, 2), None),
    "orthogonal": (jaxinit.orthogonal(), (8, 8), None),
    "jax_nn": (jax.nn.initializers.lecun_normal(), (4, 4), jnp.float32),
}


def test_every_leaf_equals_its_own_call():
    params = init_tree(KEY, SPEC)
    assert list(params) == list(SPEC)
    for path, (init, shape, dtype) in SPEC.items():
        expected = init(leaf_key(KEY, path), shape, dtype)
        assert params[path].shape == tuple(shape), path
        assert params[path].dtype == expected.dtype, path
        np.testing.assert_array_equal(
            np.asarray(params[path]), np.asarray(expected), err_msg=str(path)
        )


def test_leaf_values_depend_on_key_and_path_only():
    shape = (64, 32)
    alone = init_tree(KEY, {"w": (jaxinit.normal(), shape, None)})["w"]
    more = {"x": (jaxinit.normal(), shape, None), "w": (jaxinit.normal(), shape, None)}
    together = init_tree(KEY, more)
    np.testing.assert_array_equal(np.asarray(alone), np.asarray(together["w"]))
    assert not np.array_equal(np.asarray(together["x"]), np.asarray(together["w"]))
    other_key = init_tree(jax.random.key(1), {"w": (jaxinit.normal(), shape, None)})
    assert not np.array_equal(np.asarray(alone), np.asarray(other_key["w"]))


def test_tuple_and_string_paths_share_a_key():
    a = jax.random.key_data(leaf_key(KEY, ("enc", 0, "kernel")))
    b = jax.random.key_data(leaf_key(KEY, "enc/0/kernel"))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rbg_keys_fall_back_to_per_leaf_calls():
    key = jax.random.key(0, impl="rbg")
    spec = {"w": (jaxinit.uniform(), (10, 3), None)}
    got = init_tree(key, spec)["w"]
    expected = jaxinit.uniform()(leaf_key(key, "w"), (10, 3))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_bad_leaves_raise_the_initializers_errors():
    with pytest.raises(ValueError, match="kaiming_uniform"):
        init_tree(KEY, {"w": (jaxinit.kaiming_uniform(), (3,), None)})
    with pytest.raises(TypeError):
        init_tree(KEY, {"w": (jaxinit.normal(), (3,), jnp.int32)})


def test_leaves_spanning_blocks_and_raw_keys():
    """A leaf larger than a block (assembled from several) and a raw uint32 key."""
    raw = jax.random.PRNGKey(7)
    spec = {
        "big": (jaxinit.kaiming_uniform(), (_BLOCK_ROWS * _ROW // 64 + 1, 64), None),
        "odd": (jaxinit.normal(), (3, 7, 5), jnp.float16),
    }
    params = init_tree(raw, spec)
    for path, (init, shape, dtype) in spec.items():
        expected = init(leaf_key(raw, path), shape, dtype)
        np.testing.assert_array_equal(np.asarray(params[path]), np.asarray(expected))


def test_under_jit_leaves_are_drawn_in_the_callers_program():
    spec = {path: SPEC[path] for path in ("kaiming_uniform", "normal_bf16", "constant")}
    jitted = jax.jit(lambda key: init_tree(key, spec))(KEY)
    eager = init_tree(KEY, spec)
    for path in spec:
        np.testing.assert_array_equal(np.asarray(jitted[path]), np.asarray(eager[path]))


def test_values_the_sampler_rejects_raise_its_error():
    with pytest.raises(ValueError, match="out of range for float16"):
        init_tree(KEY, {"w": (jaxinit.constant(1e5), (3,), jnp.float16)})
    with pytest.raises(ValueError, match="float16"):
        init_tree(KEY, {"w": (jaxinit.normal(std=2e4), (3,), jnp.float16)})
