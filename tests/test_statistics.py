"""Moment and Kolmogorov-Smirnov tests of every i.i.d. initializer against its
exact law (scipy), in both layouts and every dtype."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_ks, assert_moments
from cases import IID_CASES, Case
from test_common import DTYPES, dtype_mode

PARAMS = [
    pytest.param(case, layout, id=f"{case.id}-{layout}")
    for case in IID_CASES
    for layout in case.layouts
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("case", "layout"), PARAMS)
def test_law(case: Case, layout: str, dtype: str):
    assert case.law is not None
    law = case.law(case.torch_shape)
    with dtype_mode(dtype):
        w = case.init(layout)(
            jax.random.key(2024), case.shape(layout), jnp.dtype(dtype)
        )
        x = np.asarray(w.astype(jnp.float64 if dtype == "float64" else jnp.float32))
    assert_moments(x, law)
    # KS needs a continuous sample: 16-bit rounding alone fails it at this size.
    if dtype in ("float32", "float64"):
        assert_ks(x, law)


def test_scale_test_has_power():
    """The moment test rejects a 1% error in std, which KS alone would miss."""
    import scipy.stats

    x = np.asarray(jax.random.normal(jax.random.key(0), (2**18,))) * 1.01
    with pytest.raises(AssertionError, match="E\\[x\\^2\\]"):
        assert_moments(x, scipy.stats.norm(0, 1))
