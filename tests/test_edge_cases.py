"""Numerical edge cases, each with a documented behaviour (docs/numerics.md).

Far tails, one-sided and narrow truncation, intervals that round to one value (or
none) in low precision, degenerate laws (a == b, std == 0, gain == 0), tiny and
huge fans, and low-precision rounding at the bounds. Each test states what jaxinit
does and, where torch 2.13 does it too, checks torch does the same; where torch is
wrong (values outside [a, b], inf, a crash), the test shows it and checks that
jaxinit is right. Statistical checks use tests/_stats.py (ALPHA per assertion,
fixed keys).
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from _stats import assert_ks, assert_same_law

import jaxinit
from jaxinit._sampling import unit_uniform

torch = pytest.importorskip("torch")
KEY = jax.random.key(0)
N = 100_000  # draws per statistical check


def torch_draw(fill, *shape: int, dtype=None) -> np.ndarray:
    """torch's draw, seeded, as float64 numpy."""
    torch.manual_seed(0)
    tensor = torch.empty(*shape, dtype=dtype or torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about its own far-tail sampler
        fill(tensor)
    return tensor.double().numpy()


def values(array: jax.Array) -> np.ndarray:
    return np.asarray(array.astype(jnp.float32)).astype(np.float64)


def truncnorm(mean: float, std: float, a: float, b: float) -> object:
    return scipy.stats.truncnorm(
        (a - mean) / std, (b - mean) / std, loc=mean, scale=std
    )


# -- truncated normal: far tails, one-sided, narrow ------------------------------


@pytest.mark.parametrize(("a", "b"), [(6.0, 8.0), (-8.0, -6.0), (10.0, 11.0)])
def test_trunc_normal_far_tail_is_exact(a: float, b: float):
    """[6, 8] std holds 1e-9 of the mass: the inverse CDF from the near tail is
    exact there (no mass piled at the bounds), like torch's."""
    out = values(jaxinit.trunc_normal(a=a, b=b)(KEY, (N,)))
    assert (out >= a).all() and (out <= b).all()
    assert (out == a).sum() <= 1 and (out == b).sum() == 0
    assert_ks(out, truncnorm(0.0, 1.0, a, b))
    # torch's far-tail sampler is slow (4 s per 1e5 draws): a smaller reference.
    reference = torch_draw(lambda t: torch.nn.init.trunc_normal_(t, a=a, b=b), N // 5)
    assert_same_law(out, reference)


def test_trunc_normal_beyond_float32_needs_float64():
    """[30, 31] std has mass 5e-198: float32 cannot resolve it (ValueError, saying
    to use float64); float64 can, and is exact. torch piles values on 30."""
    init = jaxinit.trunc_normal(a=30.0, b=31.0)
    with pytest.raises(ValueError, match="enable jax_enable_x64 and ask for float64"):
        init(KEY, (8,))
    with jax.enable_x64(True):
        out = np.asarray(init(KEY, (N,), jnp.float64))
    assert (out >= 30).all() and (out <= 31).all() and (out == 30).sum() == 0
    assert_ks(out, truncnorm(0.0, 1.0, 30.0, 31.0))
    reference = torch_draw(
        lambda t: torch.nn.init.trunc_normal_(t, a=30.0, b=31.0), N // 5
    )
    assert (reference == 30.0).sum() > 0  # torch: an atom at the bound


@pytest.mark.parametrize(
    ("a", "b"), [(-math.inf, 0.5), (0.5, math.inf), (-math.inf, math.inf)]
)
def test_trunc_normal_one_sided_matches_torch(a: float, b: float):
    out = values(jaxinit.trunc_normal(a=a, b=b)(KEY, (N,)))
    assert np.isfinite(out).all() and (out >= a).all() and (out <= b).all()
    assert_ks(out, truncnorm(0.0, 1.0, a, b))
    reference = torch_draw(lambda t: torch.nn.init.trunc_normal_(t, a=a, b=b), N)
    assert_same_law(out, reference)


@pytest.mark.parametrize(("a", "b"), [(-math.inf, -3.0), (3.0, math.inf)])
def test_trunc_normal_one_sided_tail_where_torch_fails(a: float, b: float):
    """One-sided with little mass: torch's inverse-CDF branch passes the infinite
    bound to uniform_ and raises; jaxinit samples it exactly."""
    out = values(jaxinit.trunc_normal(a=a, b=b)(KEY, (N,)))
    assert np.isfinite(out).all() and (out >= a).all() and (out <= b).all()
    assert_ks(out, truncnorm(0.0, 1.0, a, b))
    with pytest.raises(RuntimeError, match="out of bounds for float"):
        torch_draw(lambda t: torch.nn.init.trunc_normal_(t, a=a, b=b), 16)


def test_trunc_normal_open_lower_side_never_gives_minus_inf():
    """Regression: the uniform draw u == 0 (one float32 draw in 2**23) gave
    ndtri(0) = -inf with a = -inf. key(0) draws u == 0 at index 2997493 of 2**22."""
    u = unit_uniform(jax.random.key(0), (2**22,), np.dtype(np.float32))
    assert float(u[2997493]) == 0.0
    out = jaxinit.trunc_normal(a=-math.inf, b=0.5)(jax.random.key(0), (2**22,))
    assert bool(jnp.isfinite(out).all())
    assert float(out.min()) > -6.0  # ndtri(2**-24 * 0.69): about -5.4


def test_trunc_normal_narrow_interval():
    """A width-1e-6 interval: every value inside, as torch."""
    a, b = 0.5, 0.5 + 1e-6
    out = values(jaxinit.trunc_normal(a=a, b=b)(KEY, (N,)))
    assert (out >= a).all() and (out <= b).all()
    assert len(np.unique(out)) > 5  # float32 has 17 values in there
    reference = torch_draw(lambda t: torch.nn.init.trunc_normal_(t, a=a, b=b), N)
    assert (reference >= np.float32(a)).all() and (reference <= np.float32(b)).all()


def test_interval_rounding_to_one_low_precision_value():
    """[1.0, 1.002] holds one bfloat16 value, 1.0: every draw is 1.0, as torch."""
    out = values(jaxinit.trunc_normal(a=1.0, b=1.002)(KEY, (1000,), jnp.bfloat16))
    assert (out == 1.0).all()
    reference = torch_draw(
        lambda t: torch.nn.init.trunc_normal_(t, a=1.0, b=1.002),
        1000,
        dtype=torch.bfloat16,
    )
    assert (reference == 1.0).all()
    out = values(jaxinit.uniform(1.0, 1.002)(KEY, (1000,), jnp.bfloat16))
    assert (out == 1.0).all()


@pytest.mark.parametrize("name", ["uniform", "trunc_normal"])
def test_interval_holding_no_low_precision_value(name: str):
    """[1.001, 1.002] holds no bfloat16 value: jaxinit raises; torch returns 1.0,
    which is outside [a, b]."""
    init = getattr(jaxinit, name)(a=1.001, b=1.002)
    with pytest.raises(ValueError, match=r"no bfloat16 value lies in \[a, b"):
        init(KEY, (8,), jnp.bfloat16)
    assert (values(init(KEY, (8,), jnp.float32)) >= 1.001).all()
    fill = getattr(torch.nn.init, f"{name}_")
    reference = torch_draw(lambda t: fill(t, a=1.001, b=1.002), 8, dtype=torch.bfloat16)
    assert (reference < 1.001).all()


# -- degenerate laws ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_uniform_a_equals_b_is_constant(dtype: str):
    """U[a, a) is empty, but torch fills a (rounded to the dtype); so does jaxinit."""
    out = jaxinit.uniform(0.3, 0.3)(KEY, (5,), jnp.dtype(dtype))
    reference = torch_draw(
        lambda t: torch.nn.init.uniform_(t, 0.3, 0.3), 5, dtype=getattr(torch, dtype)
    )
    np.testing.assert_array_equal(values(out), reference)
    np.testing.assert_array_equal(values(out), float(np.array(0.3, jnp.dtype(dtype))))


def test_std_zero():
    """normal(std=0) is the constant mean, as torch; trunc_normal(std=0) is a
    ValueError (torch: ZeroDivisionError); trunc_normal(a=b) is the constant a."""
    np.testing.assert_array_equal(values(jaxinit.normal(2.0, 0.0)(KEY, (5,))), 2.0)
    reference = torch_draw(lambda t: torch.nn.init.normal_(t, 2.0, 0.0), 5)
    np.testing.assert_array_equal(reference, 2.0)
    with pytest.raises(ValueError, match="std must be a finite number > 0"):
        jaxinit.trunc_normal(std=0.0)
    with pytest.raises(ZeroDivisionError):
        torch_draw(lambda t: torch.nn.init.trunc_normal_(t, std=0.0), 5)
    np.testing.assert_array_equal(
        values(jaxinit.trunc_normal(a=0.25, b=0.25)(KEY, (5,))), 0.25
    )


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "orthogonal"])
def test_gain_zero_gives_zeros(name: str):
    out = values(getattr(jaxinit, name)(gain=0.0)(KEY, (4, 6)))
    np.testing.assert_array_equal(out, 0.0)
    fill = getattr(torch.nn.init, f"{name}_")
    np.testing.assert_array_equal(torch_draw(lambda t: fill(t, gain=0.0), 6, 4), 0.0)


def test_sparsity_zero_and_one():
    """sparsity 0: no zeros; sparsity 1: all zeros (ceil(1 * rows) per column)."""
    dense = values(jaxinit.sparse(0.0)(KEY, (16, 8)))
    assert (dense != 0).all()
    empty = values(jaxinit.sparse(1.0)(KEY, (16, 8)))
    np.testing.assert_array_equal(empty, 0.0)
    np.testing.assert_array_equal(
        torch_draw(lambda t: torch.nn.init.sparse_(t, 1.0), 8, 16), 0.0
    )


# -- fans ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "dtype"),
    [
        ("kaiming_uniform", (1, 1), "float32"),  # fan 1: bound sqrt(6)
        ("xavier_uniform", (1, 1), "float32"),
        ("kaiming_uniform", (1, 2**22), "float16"),  # fan 2**22: bound 1.2e-3
        ("xavier_uniform", (2**22, 1), "bfloat16"),
        ("kaiming_normal", (1, 2**22), "float16"),
        ("xavier_normal", (2**22, 1), "float16"),
    ],
)
def test_tiny_and_huge_fans(name: str, shape: tuple[int, int], dtype: str):
    """torch-layout weights (out, in): the std is torch's formula at every fan,
    bounds hold in low precision, and the law matches torch's."""
    out = values(getattr(jaxinit, f"{name}_")(KEY, shape, dtype=jnp.dtype(dtype)))
    fan_in, fan_out = shape[1], shape[0]
    if name.startswith("kaiming"):
        std = math.sqrt(2.0) / math.sqrt(fan_in)
    else:
        std = math.sqrt(2.0 / (fan_in + fan_out))
    if name.endswith("uniform"):
        bound = math.sqrt(3.0) * std
        assert (out >= -bound).all() and (out < bound).all()
    else:
        assert (np.abs(out) <= 5.5 * std * (1 + 2**-8)).all()
    if out.size > 1000:
        fill = getattr(torch.nn.init, f"{name}_")
        reference = torch_draw(fill, *shape, dtype=getattr(torch, dtype))
        assert_same_law(out, reference)


def test_zero_fan_shapes():
    """(0, 0) has fan_in + fan_out == 0: torch's xavier divides by zero; jaxinit
    returns the empty array (kaiming warns, as torch)."""
    assert jaxinit.xavier_uniform_(KEY, (0, 0)).shape == (0, 0)
    with pytest.raises(ZeroDivisionError):
        torch_draw(torch.nn.init.xavier_uniform_, 0, 0)
    with pytest.warns(
        UserWarning, match="Initializing zero-element tensors is a no-op"
    ):
        assert jaxinit.kaiming_normal_(KEY, (0, 5)).shape == (0, 5)


# -- low precision at the bounds --------------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_uniform_bounds_hold_after_rounding(dtype: str):
    """U[-0.01, 0.01) in bfloat16: -0.01 is not a bfloat16 value and torch rounds
    draws to the nearest, below a (about 2 in 1000 bfloat16 values); jaxinit
    rounds a up and b down, so a <= v < b for the Python floats."""
    a, b = -0.01, 0.01
    out = values(jaxinit.uniform(a, b)(KEY, (N,), jnp.dtype(dtype)))
    assert (out >= a).all() and (out < b).all()
    assert len(np.unique(out)) > 100
    reference = torch_draw(
        lambda t: torch.nn.init.uniform_(t, a, b), N, dtype=getattr(torch, dtype)
    )
    if dtype == "bfloat16":
        assert (reference < a).sum() > 0  # torch's flaw this guards against


def test_uniform_never_returns_b_in_low_precision():
    """Rounding a float32 draw just below 1 up to bfloat16 would give 1.0: clipped
    to the largest bfloat16 value below b."""
    for dtype in (jnp.bfloat16, jnp.float16):
        out = values(jaxinit.uniform()(KEY, (N,), dtype))
        assert out.max() < 1.0 and out.min() >= 0.0
        assert out.max() == float(
            np.nextafter(np.array(1.0, dtype), np.array(0, dtype))
        )


def test_trunc_normal_bounds_hold_after_rounding():
    """trunc_normal(a=-0.01, b=0.01) in bfloat16: torch's values go below -0.01
    (it rounds the bounds to nearest); jaxinit's stay inside."""
    out = values(jaxinit.trunc_normal(a=-0.01, b=0.01)(KEY, (N,), jnp.bfloat16))
    assert (out >= -0.01).all() and (out <= 0.01).all()
    reference = torch_draw(
        lambda t: torch.nn.init.trunc_normal_(t, a=-0.01, b=0.01),
        N,
        dtype=torch.bfloat16,
    )
    assert (reference < -0.01).sum() > 0


def test_overflow_to_inf_is_an_error():
    """torch fills normal_(std=1e5) in float16 with inf (half the values); jaxinit
    raises, and takes std up to the reach of its draws (5.5 std <= 65504)."""
    with pytest.raises(ValueError, match="beyond the largest float16"):
        jaxinit.normal(std=1e5)(KEY, (8,), jnp.float16)
    reference = torch_draw(
        lambda t: torch.nn.init.normal_(t, std=1e5), N, dtype=torch.float16
    )
    assert np.isinf(reference).sum() > 0
    out = values(jaxinit.normal(std=11_000.0)(KEY, (N,), jnp.float16))
    assert np.isfinite(out).all()
