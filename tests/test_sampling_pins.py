"""Sampler details that no statistical test sees, pinned (issue 17, item 11).

Each test would fail on a one-line change to ``jaxinit._sampling``: the float16
reach check on the negative side, the anchor of ``trunc_normal``'s centre form
near a bound (exact quantiles at known uniforms), the choice between a true
truncated normal and a clipped one on [-5, 5], and ``normal``'s float32 scale
product. The laws are evaluated at chosen points of the uniform grid the draws
come from (``unit_floats``: multiples of 2**-23, taken at their midpoints).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

import jaxinit
from jaxinit import _sampling

KEY = jax.random.key(0)
F32 = np.dtype(np.float32)
GRID = 2.0**-23  # spacing of the float32 uniforms
TOP = 2**23 - 1  # the largest grid index: unit 1 - 2**-23
ULPS = 2.0  # measured: at most 1.2 float32 ulps from the float64 quantile


def _ulp_error(got: np.ndarray, expected: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """|got - expected| in float32 ulps of max(|expected|, floor)."""
    scale = np.maximum(np.abs(expected), floor).astype(np.float32)
    ulp = np.spacing(scale).astype(np.float64)
    return np.abs(np.asarray(got, np.float64) - expected) / ulp


def _at_grid(plan: _sampling.Plan, steps: list[int]) -> np.ndarray:
    """The plan's law at the uniforms ``step * 2**-23``, as the draws see them."""
    law, params = plan
    unit = jnp.asarray(np.array(steps, np.float64) * GRID, jnp.float32)
    if law == "truncated":
        return np.asarray(_sampling._truncated_law(unit, params, F32))
    return np.asarray(_sampling.LAWS[law](unit, _sampling.runtime(params, F32), F32))


def _truncated_quantiles(a: float, b: float, steps: list[int]) -> np.ndarray:
    """The float64 quantiles of N(0, 1) on [a, b] at the grid's midpoints."""
    u = np.array(steps, np.float64) * GRID + GRID / 2
    lower = scipy.stats.norm.cdf(a)
    mass = scipy.stats.norm.cdf(b) - lower
    upper = scipy.stats.norm.sf(b)
    # Each side from its own tail, so float64 keeps every digit float32 shows.
    below = scipy.special.ndtri(lower + mass * u)
    above = -scipy.special.ndtri(upper + mass * (1 - u))
    return np.where(u < 0.5, below, above)


# --- normal: float16 overflow, both sides --------------------------------------------


@pytest.mark.parametrize("sign", [-1.0, 1.0], ids=["negative", "positive"])
def test_float16_normal_reach_is_checked_on_both_sides(sign: float) -> None:
    # Draws reach mean +- 5.5 std at float32; float16's largest value is 65504.
    inside = jaxinit.normal(mean=sign * 64950.0, std=100.0)(KEY, (64,), jnp.float16)
    assert bool(jnp.isfinite(inside).all())
    with pytest.raises(ValueError, match=r"normal: draws reach .* beyond the largest"):
        jaxinit.normal(mean=sign * 64960.0, std=100.0)(KEY, (64,), jnp.float16)


# --- trunc_normal: quantiles near a bound, and no mass on the bounds -----------------

STEPS = [0, 1, 2, 5, 100, 10**4, 10**6, 2**22, TOP]


def test_trunc_normal_near_the_lower_bound_is_the_exact_quantile() -> None:
    # [-1e-3, 5]: the centre form, anchored at the bound nearer the mean (-1e-3).
    # Anchored at 5 instead, the values within 1e-4 of the bound are ~800 ulps off.
    a, b = -1e-3, 5.0
    plan = _sampling.trunc_normal_plan("trunc_normal", F32, 0.0, 1.0, a, b)
    assert plan[0] == "truncated"
    expected = _truncated_quantiles(a, b, STEPS)
    # In ulps of the bound's magnitude: around 0 (u ~ 1e-3) the values are
    # smaller than the bound, and the error of t = 2 Phi(z) - 1 is absolute.
    errors = _ulp_error(_at_grid(plan, STEPS), expected, floor=abs(a))
    assert errors.max() <= ULPS, dict(zip(STEPS, errors.round(2), strict=True))
    # The public call draws by this plan: its smallest values sit on the bound.
    values = np.asarray(jaxinit.trunc_normal(a=a, b=b)(KEY, (1 << 20,)))
    assert values.min() >= a
    # Density 0.8 at the bound: P(no value within 1e-4) = (1 - 8e-5)**(2**20) < 1e-36.
    assert values.min() < a + 1e-4


def test_trunc_normal_minus_5_to_5_is_truncated_not_clipped() -> None:
    # A plain normal clipped to [-5, 5] would put its tails (5.7e-7) on +-5: the
    # grid's extreme uniforms would give exactly -5 and 5.
    a, b = -5.0, 5.0
    plan = _sampling.trunc_normal_plan("trunc_normal", F32, 0.0, 1.0, a, b)
    assert plan[0] == "truncated"
    ends = [0, TOP]
    got = _at_grid(plan, ends)
    errors = _ulp_error(got, _truncated_quantiles(a, b, ends))
    assert errors.max() <= ULPS, errors
    assert np.abs(got).max() < 4.97  # the midpoint quantiles stop short of +-5


def test_trunc_normal_far_bounds_are_clipped_normals() -> None:
    # The other side of the switch: beyond 9 std a plain normal never reaches.
    plan = _sampling.trunc_normal_plan("trunc_normal", F32, 0.0, 1.0, -9.0, 9.0)
    assert plan[0] == "clipped_normal"
    assert np.abs(_at_grid(plan, [0, TOP])).max() < 5.5


# --- normal: the scale is std * sqrt(2) rounded in float32 ---------------------------


def test_normal_scale_is_the_float32_product() -> None:
    # For std = 1.3 the float32 product of float32(std) and float32(sqrt(2))
    # differs from float32(std * sqrt(2)); the draws use the former.
    std = 1.3
    product = float(np.float32(std) * np.float32(math.sqrt(2.0)))
    rounded = float(np.float32(std * math.sqrt(2.0)))
    assert product != rounded
    plan = _sampling.normal_plan("normal", F32, 0.0, std)
    assert plan == ("normal", (0.0, product))
    shape = (256, 256)
    values = np.asarray(jaxinit.normal(std=std)(KEY, shape))

    def by_scale(scale: float) -> np.ndarray:
        def draw(key: jax.Array) -> jax.Array:
            unit = _sampling.unit_uniform(key, shape, F32)
            return _sampling.normal_law(unit, _sampling.runtime((0.0, scale), F32), F32)

        return np.asarray(jax.jit(draw)(KEY))

    np.testing.assert_array_equal(values, by_scale(product))
    assert (values != by_scale(rounded)).any()
