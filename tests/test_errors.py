"""Every validation of the core issue, with its exception type and message:
parameters at factory time, shapes at call time, keys and dtypes."""

import math

import jax
import jax.numpy as jnp
import pytest

import jaxinit

KEY = jax.random.key(0)

FACTORY_ERRORS = [
    (
        lambda: jaxinit.kaiming_uniform(mode="fan_avg"),
        ValueError,
        r"Mode fan_avg not supported, please use one of \['fan_in', 'fan_out'\]",
    ),
    (lambda: jaxinit.kaiming_normal(mode=3), TypeError, "mode must be a string"),
    (
        lambda: jaxinit.kaiming_uniform(nonlinearity="gelu"),
        ValueError,
        "Unsupported nonlinearity gelu",
    ),
    (
        lambda: jaxinit.calculate_gain("ReLU"),
        ValueError,
        "Unsupported nonlinearity ReLU",
    ),
    (
        lambda: jaxinit.calculate_gain("leaky_relu", True),
        ValueError,
        "negative_slope True not a valid number",
    ),
    (
        lambda: jaxinit.calculate_gain("leaky_relu", "0.1"),
        ValueError,
        "negative_slope 0.1 not a valid number",
    ),
    (lambda: jaxinit.kaiming_uniform(a="x"), TypeError, "kaiming_uniform: a must be"),
    (lambda: jaxinit.kaiming_uniform(a=True), TypeError, "kaiming_uniform: a must be"),
    (
        lambda: jaxinit.normal(std=-1.0),
        ValueError,
        "normal: std must be a finite number >= 0, got -1.0",
    ),
    (
        lambda: jaxinit.normal(mean=math.inf),
        ValueError,
        "normal: mean must be a finite real number",
    ),
    (lambda: jaxinit.normal(std=math.nan), ValueError, "normal: std"),
    (
        lambda: jaxinit.trunc_normal(std=0.0),
        ValueError,
        "trunc_normal: std must be a finite number > 0",
    ),
    (
        lambda: jaxinit.trunc_normal(a=2.0, b=-2.0),
        ValueError,
        "trunc_normal: expects a <= b, got a=2.0 > b=-2.0",
    ),
    (lambda: jaxinit.trunc_normal(a=math.nan), ValueError, "trunc_normal: a must be"),
    (
        lambda: jaxinit.uniform(2.0, 1.0),
        ValueError,
        r"uniform: expects a \[a, b\) range with a <= b, got a=2.0 > b=1.0",
    ),
    (
        lambda: jaxinit.uniform(0.0, math.inf),
        ValueError,
        "uniform: b must be a finite real number, got inf",
    ),
    (
        lambda: jaxinit.uniform("0", 1.0),
        TypeError,
        "uniform: a must be a finite real number, got '0'",
    ),
    (
        lambda: jaxinit.sparse(1.5),
        ValueError,
        r"sparse: sparsity must be a number in \[0, 1\], got 1.5",
    ),
    (lambda: jaxinit.sparse(-0.5), ValueError, "sparse: sparsity must be"),
    (
        lambda: jaxinit.sparse(0.1, std=-1.0),
        ValueError,
        "sparse: std must be a finite number >= 0",
    ),
    (
        lambda: jaxinit.dirac(0),
        ValueError,
        "dirac: groups must be an integer >= 1, got 0",
    ),
    (lambda: jaxinit.dirac(-2), ValueError, "dirac: groups must be an integer >= 1"),
    (lambda: jaxinit.dirac(2.0), TypeError, "dirac: groups must be an integer"),
    (
        lambda: jaxinit.xavier_uniform(gain=-1.0),
        ValueError,
        "xavier_uniform: gain must be a finite number >= 0",
    ),
    (lambda: jaxinit.orthogonal(gain=math.nan), ValueError, "orthogonal: gain"),
    (lambda: jaxinit.xavier_normal(gain=math.inf), ValueError, "xavier_normal: gain"),
    (lambda: jaxinit.constant(math.nan), ValueError, "constant: val"),
    (lambda: jaxinit.constant(None), TypeError, "constant: val must be a real number"),
    (
        lambda: jaxinit.uniform(layout="tf"),
        ValueError,
        r"uniform: layout must be one of \['flax', 'torch'\]",
    ),
    (
        lambda: jaxinit.kaiming_uniform(in_axis=1.5),
        TypeError,
        "in_axis must be an int or a sequence of ints",
    ),
    (
        lambda: jaxinit.normal(dtype=jnp.int32),
        TypeError,
        "normal: dtype must be a floating dtype",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    FACTORY_ERRORS,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_factory_time_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


CALL_ERRORS = [
    (
        jaxinit.kaiming_uniform(),
        (5,),
        ValueError,
        "Fan in and fan out can not be computed for tensor with fewer than 2 dim",
    ),
    (jaxinit.xavier_normal(), (), ValueError, "fewer than 2 dimensions"),
    (
        jaxinit.orthogonal(),
        (5,),
        ValueError,
        "orthogonal: Only tensors with 2 or more dimensions are supported",
    ),
    (
        jaxinit.eye(),
        (2, 2, 2),
        ValueError,
        "eye: Only tensors with 2 dimensions are supported",
    ),
    (
        jaxinit.sparse(0.1),
        (2, 2, 2),
        ValueError,
        "sparse: Only tensors with 2 dimensions are supported",
    ),
    (
        jaxinit.dirac(),
        (3, 3),
        ValueError,
        "dirac: Only tensors with 3, 4, or 5 dimensions are supported",
    ),
    (jaxinit.dirac(3), (3, 3, 4, 8), ValueError, "must be divisible by groups=3"),
    (jaxinit.dirac(), (0, 3, 4, 8), ValueError, "zero dimension"),
    (
        jaxinit.kaiming_uniform(in_axis=5),
        (3, 4),
        ValueError,
        "in_axis 5 is out of range",
    ),
    (
        jaxinit.kaiming_uniform(in_axis=0, out_axis=0),
        (3, 4),
        ValueError,
        "must not share axes",
    ),
    (
        jaxinit.uniform(),
        (3, -1),
        ValueError,
        "shape must contain non-negative dimensions",
    ),
    (jaxinit.uniform(), (3, 2.0), TypeError, "shape must contain only ints"),
    (jaxinit.uniform(), 5, TypeError, r"write \(5,\) for a 1-D shape"),
    (
        jaxinit.uniform(0.0, 1e5),
        (3,),
        ValueError,
        "b=100000.0 is out of range for float16",
    ),
    (
        jaxinit.uniform(1.001, 1.002),
        (3,),
        ValueError,
        r"no bfloat16 value lies in \[a, b\)",
    ),
]


@pytest.mark.parametrize(
    ("initializer", "shape", "error", "message"),
    CALL_ERRORS,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_call_time_errors(initializer, shape, error, message):
    dtype = (
        jnp.bfloat16
        if "bfloat16" in message
        else jnp.float16
        if "float16" in message
        else None
    )
    with pytest.raises(error, match=message):
        initializer(KEY, shape, dtype)


def test_keys_must_be_one_prng_key():
    with pytest.raises(
        TypeError, match=r"key must be a JAX PRNG key, got 0 .*jax.random.key\(0\)"
    ):
        jaxinit.normal()(0, (3,))
    with pytest.raises(
        ValueError,
        match=r"got a batch of keys of shape \(4,\); map over keys with jax.vmap",
    ):
        jaxinit.normal()(jax.random.split(KEY, 4), (3,))
    with pytest.raises(ValueError, match="batch of raw keys"):
        jaxinit.normal()(jax.random.split(jax.random.PRNGKey(0), 4), (3,))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64, jnp.uint8])
def test_random_initializers_reject_non_float_dtypes(dtype):
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        jaxinit.kaiming_normal()(KEY, (3, 4), dtype)


def test_exact_initializers_take_any_dtype_like_torch():
    assert jaxinit.constant(-1.7)(None, (2,), jnp.int32).tolist() == [-1, -1]
    assert jaxinit.constant(0.5)(None, (2,), jnp.bool_).tolist() == [True, True]
    assert jaxinit.dirac()(None, (1, 2, 2), jnp.int8).sum() == 2
    with pytest.raises(
        ValueError, match="cannot be converted to uint8 without overflow"
    ):
        jaxinit.constant(300)(None, (2,), jnp.uint8)
    with pytest.raises(ValueError, match=r"val=100000\.0 is out of range for float16"):
        jaxinit.constant(1e5)(None, (2,), jnp.float16)


def test_float64_without_x64_is_an_error_not_a_silent_float32():
    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        jaxinit.normal()(KEY, (3,), jnp.float64)


@pytest.mark.parametrize(
    "name",
    ["zeros", "ones", "eye", "kaiming_uniform", "uniform", "orthogonal", "constant"],
)
def test_a_factory_used_as_an_initializer_says_to_call_it(name):
    factory = getattr(jaxinit, name)
    with pytest.raises(
        TypeError, match=rf"jaxinit.{name} is a factory.*kernel_init=jaxinit.{name}\(\)"
    ):
        factory(KEY, (3, 4), jnp.float32)


def test_zero_element_kaiming_warns_like_torch_others_do_not(recwarn):
    with pytest.warns(
        UserWarning, match="Initializing zero-element tensors is a no-op"
    ):
        assert jaxinit.kaiming_normal()(KEY, (0, 5)).shape == (0, 5)
    assert jaxinit.xavier_uniform()(KEY, (0, 0)).shape == (
        0,
        0,
    )  # torch: ZeroDivisionError
    assert jaxinit.orthogonal()(KEY, (3, 0)).shape == (3, 0)
    assert not recwarn.list
