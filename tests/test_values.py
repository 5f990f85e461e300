"""Initializers are values: repr shows every parameter and evaluates back, equality
and hashing follow the parameters, and they pickle."""

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import CASES, Case

import jaxinit


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("layout", ["flax", "torch"])
def test_repr_round_trips_and_pickles(case: Case, layout: str):
    init = case.factory(**case.kwargs, layout=layout, dtype=jnp.bfloat16)
    again = eval(repr(init), {"jaxinit": jaxinit})
    assert again == init and hash(again) == hash(init)
    assert pickle.loads(pickle.dumps(init)) == init
    shape = case.small_shape(layout)
    np.testing.assert_array_equal(
        np.asarray(again(jax.random.key(0), shape)),
        np.asarray(init(jax.random.key(0), shape)),
    )


def test_repr_shows_every_parameter():
    assert repr(jaxinit.kaiming_uniform(a=math.sqrt(5))) == (
        "jaxinit.kaiming_uniform(a=2.23606797749979, mode='fan_in', "
        "nonlinearity='leaky_relu', layout='flax', in_axis=None, out_axis=None, "
        "batch_axis=(), dtype=None)"
    )
    assert repr(jaxinit.trunc_normal(std=0.02, dtype=jnp.bfloat16)) == (
        "jaxinit.trunc_normal(mean=0.0, std=0.02, a=-2.0, b=2.0, dtype='bfloat16')"
    )


def test_equality_follows_parameters():
    assert jaxinit.kaiming_normal(mode="FAN_OUT") == jaxinit.kaiming_normal(
        mode="fan_out"
    )
    assert jaxinit.uniform(0, 1) == jaxinit.uniform(0.0, 1.0)
    assert (
        jaxinit.uniform(layout="torch") == jaxinit.uniform()
    )  # the law is layout-free
    assert jaxinit.kaiming_normal(layout="torch") != jaxinit.kaiming_normal()
    assert jaxinit.xavier_uniform() != jaxinit.xavier_normal()
    assert (
        len({jaxinit.orthogonal(), jaxinit.orthogonal(), jaxinit.orthogonal(2.0)}) == 2
    )
