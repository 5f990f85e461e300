"""Static checks (mypy --strict), never run: jaxinit initializers are
jax.nn.initializers.Initializer values wherever JAX or Flax expects one."""

import jax
import jax.numpy as jnp

import jaxinit


def initializers_are_jax_initializers() -> None:
    init: jax.nn.initializers.Initializer = jaxinit.kaiming_uniform(a=5**0.5)
    init(jax.random.key(0), (3, 4))
    init(jax.random.key(0), (3, 4), jnp.bfloat16)
    init(jax.random.key(0), (3, 4), jnp.float32, out_sharding=None)
    bias: jaxinit.Initializer = jaxinit.zeros()
    bias(jax.random.key(0), (4,))


def torch_style_calls_return_arrays() -> None:
    weight: jax.Array = jaxinit.kaiming_normal_(
        jax.random.key(0), (4, 3), mode="fan_out"
    )
    del weight


def fans_and_gain_are_numbers() -> None:
    fan_in, fan_out = jaxinit.calculate_fan_in_and_fan_out((3, 4))
    gain: float = jaxinit.calculate_gain("relu")
    del fan_in, fan_out, gain
