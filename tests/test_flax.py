"""jaxinit initializers in Flax layers (linen and nnx): shapes, and torch's numbers
for the same layer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_same_law
from cases import to_torch_layout

import jaxinit

flax = pytest.importorskip("flax")
torch = pytest.importorskip("torch")
from flax import linen, nnx  # noqa: E402

TORCH_DEFAULT = jaxinit.kaiming_uniform(a=math.sqrt(5))


def _bias(fan_in: int) -> jaxinit.Initializer:
    return jaxinit.uniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))


def _torch_params(module) -> tuple[np.ndarray, np.ndarray]:
    return module.weight.detach().numpy(), module.bias.detach().numpy()


def test_nnx_linear_matches_torch_linear():
    layer = nnx.Linear(
        784, 256, kernel_init=TORCH_DEFAULT, bias_init=_bias(784), rngs=nnx.Rngs(0)
    )
    kernel, bias = layer.kernel[...], layer.bias[...]
    assert kernel.shape == (784, 256) and bias.shape == (256,)
    assert (
        float(jnp.abs(kernel).max()) <= 1 / 28 and float(jnp.abs(bias).max()) <= 1 / 28
    )
    torch.manual_seed(0)
    weight, torch_bias = _torch_params(torch.nn.Linear(784, 256))
    assert_same_law(np.asarray(kernel).T, weight)
    assert_same_law(np.asarray(bias), torch_bias)


def test_nnx_grouped_conv_matches_torch_conv():
    layer = nnx.Conv(
        16,
        32,
        (3, 3),
        feature_group_count=2,
        kernel_init=TORCH_DEFAULT,
        bias_init=_bias(8 * 9),
        rngs=nnx.Rngs(1),
    )
    kernel = layer.kernel[...]
    assert kernel.shape == (3, 3, 8, 32)
    torch.manual_seed(0)
    weight, _ = _torch_params(torch.nn.Conv2d(16, 32, 3, groups=2))
    assert np.asarray(to_torch_layout(kernel)).shape == weight.shape
    assert float(jnp.abs(kernel).max()) <= 1 / math.sqrt(72)
    assert_same_law(np.asarray(to_torch_layout(kernel)), weight)


def test_linen_dense_and_conv_take_jaxinit_initializers():
    dense = linen.Dense(256, kernel_init=TORCH_DEFAULT, bias_init=_bias(784))
    params = dense.init(jax.random.key(0), jnp.ones((1, 784)))["params"]
    assert params["kernel"].shape == (784, 256)
    torch.manual_seed(0)
    weight, _ = _torch_params(torch.nn.Linear(784, 256))
    assert_same_law(np.asarray(params["kernel"]).T, weight)

    conv = linen.Conv(64, (7, 7), kernel_init=TORCH_DEFAULT, bias_init=_bias(3 * 49))
    params = conv.init(jax.random.key(1), jnp.ones((1, 16, 16, 3)))["params"]
    assert params["kernel"].shape == (7, 7, 3, 64)
    assert float(jnp.abs(params["kernel"]).max()) <= 0.08247860988423225
    torch.manual_seed(0)
    weight, _ = _torch_params(torch.nn.Conv2d(3, 64, 7))
    assert_same_law(np.asarray(to_torch_layout(params["kernel"])), weight)


def test_flax_passes_param_dtype_through():
    layer = nnx.Linear(
        8,
        4,
        kernel_init=jaxinit.orthogonal(),
        param_dtype=jnp.bfloat16,
        rngs=nnx.Rngs(0),
    )
    assert layer.kernel[...].dtype == jnp.bfloat16


def test_factory_passed_uncalled_gets_a_clear_error():
    with pytest.raises(TypeError, match=r"jaxinit\.zeros is a factory"):
        nnx.Linear(8, 4, bias_init=jaxinit.zeros, rngs=nnx.Rngs(0))
