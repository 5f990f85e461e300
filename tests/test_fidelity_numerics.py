"""Issue 11, items 3-5: bit identity by construction, trunc_normal's precision
when the density is flat across [a, b], and draws that could pass the dtype's
finite range.

Statistics follow tests/_stats.py (ALPHA = 1e-6 per assertion, fixed keys).
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from _stats import assert_ks, assert_moments, assert_same_law

import jaxinit
from jaxinit import _programs, _sampling
from jaxinit._tree import init_tree, leaf_key

KEY = jax.random.key(11)
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def _plan(init: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """The row plan the draw engine draws a leaf by (None: its own call)."""
    return _programs.row_plan(init.law(shape, dtype), dtype)


def _bits(values: jax.Array) -> np.ndarray:
    """The raw bits, so that -0.0 and 0.0 (and denormals) count as different."""
    array = np.asarray(values)
    return array.view({2: np.uint16, 4: np.uint32}[array.dtype.itemsize])


# ---------------------------------------------------------------------------------
# Item 3: every law init_tree batches gives its own call's bits, eager and jitted.

# Unit widths (b - a == 1.0, folded by XLA before), powers of two, tiny and huge
# stds, negative and positive means; kaiming_uniform(a=sqrt(5)) on fan_in 4 is
# U[-0.5, 0.5), a unit width reached through the fans.
GRID: dict[str, Any] = {
    "uniform_-0.3_0.7": jaxinit.uniform(-0.3, 0.7),
    "uniform_0.1_1.1": jaxinit.uniform(0.1, 1.1),
    "uniform_-0.01_0.99": jaxinit.uniform(-0.01, 0.99),
    "uniform_0_1": jaxinit.uniform(),
    "uniform_-2_2": jaxinit.uniform(-2.0, 2.0),
    "uniform_0.25_0.75": jaxinit.uniform(0.25, 0.75),
    "uniform_3_7": jaxinit.uniform(3.0, 7.0),
    "uniform_-1e4_1e4": jaxinit.uniform(-1e4, 1e4),
    "uniform_tiny": jaxinit.uniform(-3e-5, 1e-5),
    "normal_0_1": jaxinit.normal(),
    "normal_0_2": jaxinit.normal(0.0, 2.0),
    "normal_-3_0.5": jaxinit.normal(-3.0, 0.5),
    "normal_2_0.25": jaxinit.normal(2.0, 0.25),
    "normal_0_1e-38": jaxinit.normal(0.0, 1e-38),
    "normal_0_1e-40": jaxinit.normal(0.0, 1e-40),
    "normal_-1_1e-38": jaxinit.normal(-1.0, 1e-38),
    "normal_0_1e-5": jaxinit.normal(0.0, 1e-5),
    "normal_0_1e3": jaxinit.normal(0.0, 1e3),
    "normal_0_1e30": jaxinit.normal(0.0, 1e30),
    "trunc_far_0.02": jaxinit.trunc_normal(std=0.02),
    "trunc_far_mean": jaxinit.trunc_normal(mean=-1.0, std=1e-3, a=-2.0, b=2.0),
    "trunc_flat_1e10": jaxinit.trunc_normal(std=1e10),
    "trunc_flat_unit": jaxinit.trunc_normal(mean=0.5, std=1e30, a=-0.5, b=0.5),
    "kaiming_uniform_unit": jaxinit.kaiming_uniform(a=math.sqrt(5)),
    "kaiming_normal": jaxinit.kaiming_normal(),
    "xavier_uniform": jaxinit.xavier_uniform(gain=4.0),
    "xavier_normal_tiny": jaxinit.xavier_normal(gain=1e-38),
}
# A leaf spanning two rows of the batched programs, and a small odd one (odd
# last axis: the other bit-pairing path), taken in turn.
SHAPES = [(4, 1100), (5, 3)]


def _raises(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except ValueError as error:
        return str(error)
    return None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_init_tree_eager_and_jit_give_the_same_bits(dtype: Any) -> None:
    spec = {}
    for index, (name, init) in enumerate(GRID.items()):
        for shape in [SHAPES[index % 2]]:
            error = _raises(lambda: init(KEY, shape, dtype))  # noqa: B023
            if error is not None:
                # The batched plan raises the own call's error, word for word.
                with pytest.raises(ValueError) as caught:
                    _plan(init, shape, np.dtype(dtype))
                assert str(caught.value) == error
                continue
            assert _plan(init, shape, np.dtype(dtype)) is not None, name
            spec[(name, shape)] = (init, shape, dtype)
    assert len(spec) >= 20
    tree = init_tree(KEY, spec)

    @jax.jit
    def jitted(key: jax.Array) -> dict[Any, jax.Array]:
        return {p: init(leaf_key(key, p), s, d) for p, (init, s, d) in spec.items()}

    inside_jit = jitted(KEY)
    for path, (init, shape, leaf_dtype) in spec.items():
        eager = init(leaf_key(KEY, path), shape, leaf_dtype)
        assert np.array_equal(_bits(tree[path]), _bits(eager)), path
        assert np.array_equal(_bits(inside_jit[path]), _bits(eager)), path


def test_unit_width_uniform_keeps_every_bit_of_the_draw() -> None:
    """U[-0.3, 0.7) is -0.3 + u, rounded once: no value 1 ulp off that sum."""
    values = jaxinit.uniform(-0.3, 0.7)(KEY, (4096,))
    unit = _sampling.unit_uniform(KEY, (4096,), np.dtype(np.float32))
    expected = np.float32(-0.3) + np.asarray(unit)
    assert np.array_equal(_bits(values), _bits(expected))


def test_tiny_std_normal_zeros_are_positive_in_every_path() -> None:
    """N(0, 1e-40) underflows to zero; 0 + (-0.0) is +0.0 in both paths."""
    init = jaxinit.normal(0.0, 1e-40)
    values = init(KEY, (4096,))
    assert not np.signbit(np.asarray(values)[np.asarray(values) == 0]).any()
    tree = init_tree(KEY, {"w": (init, (4096,), None)})["w"]
    assert np.array_equal(_bits(tree), _bits(init(leaf_key(KEY, "w"), (4096,))))


# ---------------------------------------------------------------------------------
# Item 4: trunc_normal when the density is flat across [a, b].

N_DRAWS = 200_000
# (mean, std, a, b): std >> b - a, and a narrow interval at std 1.
FLAT_CASES = [
    (0.0, 1e3, -2.0, 2.0),
    (0.0, 1e5, -2.0, 2.0),
    (0.0, 1e7, -2.0, 2.0),
    (0.0, 1e10, -2.0, 2.0),
    (0.0, 1e30, -2.0, 2.0),
    (0.0, 1.0, -1e-3, 1e-3),
    (0.3, 5e3, -2.0, 2.0),  # off-centre mean, between flat and not
]
FLAT_IDS = [f"mean{m:g}_std{s:g}_[{a:g},{b:g}]" for m, s, a, b in FLAT_CASES]


class _TruncNormalLaw:
    """The exact N(mean, std**2) conditioned on [a, b], for any std.

    scipy.stats.truncnorm loses its moments from std ~1e5 and its CDF from
    ~1e10 (NaN at 1e30) on [-2, 2]; here the CDF is a ratio of erf differences
    of arguments on both sides of 0 (no cancellation in float64), and the
    moments are integrated by mpmath at 50 digits.
    """

    def __init__(self, mean: float, std: float, a: float, b: float) -> None:
        self.loc, self.scale, self.a, self.b = mean, std, a, b
        self._erf_a = scipy.special.erf((a - mean) / (std * math.sqrt(2)))
        self._erf_b = scipy.special.erf((b - mean) / (std * math.sqrt(2)))
        with mpmath.workdps(50):
            moments = [self._raw_moment(k) for k in range(5)]
        self._moments = [float(m / moments[0]) for m in moments]

    def _raw_moment(self, k: int) -> Any:
        loc, scale = mpmath.mpf(self.loc), mpmath.mpf(self.scale)
        return mpmath.quad(
            lambda x: x**k * mpmath.exp(-(((x - loc) / scale) ** 2) / 2),
            [self.a, self.b],
        )

    def cdf(self, x: np.ndarray) -> np.ndarray:
        erf_x = scipy.special.erf((x - self.loc) / (self.scale * math.sqrt(2)))
        ratio = (erf_x - self._erf_a) / (self._erf_b - self._erf_a)
        return np.clip(ratio, 0.0, 1.0)

    def mean(self) -> float:
        return self._moments[1]

    def var(self) -> float:
        return self._moments[2] - self._moments[1] ** 2

    def moment(self, k: int) -> float:
        return self._moments[k]


def test_exact_law_agrees_with_scipy_where_scipy_holds() -> None:
    for mean, std, a, b in [(0.0, 1e3, -2.0, 2.0), (0.0, 1.0, -1e-3, 1e-3)]:
        law = _TruncNormalLaw(mean, std, a, b)
        reference = scipy.stats.truncnorm((a - mean) / std, (b - mean) / std, mean, std)
        x = np.linspace(a, b, 101)
        np.testing.assert_allclose(law.cdf(x), reference.cdf(x), atol=1e-9)
        assert math.isclose(law.var(), reference.var(), rel_tol=1e-6)


def _torch_trunc_normal(mean: float, std: float, a: float, b: float) -> np.ndarray:
    generator = torch.Generator().manual_seed(11)
    tensor = torch.empty(N_DRAWS)
    torch.nn.init.trunc_normal_(tensor, mean, std, a, b, generator=generator)
    return tensor.numpy()


@pytest.mark.parametrize(("mean", "std", "a", "b"), FLAT_CASES, ids=FLAT_IDS)
def test_trunc_normal_keeps_its_law_when_flat(
    mean: float, std: float, a: float, b: float
) -> None:
    """Distinct values as torch's, the exact law's moments and shape, torch's law.

    Before: 52k distinct values of 200k at std 1e3, 536 at 1e5, 6 at 1e7, all
    zeros at 1e10, a ValueError at 1e30, 27k for [-1e-3, 1e-3] at std 1. The
    uniform draws take 2**23 values, so 200k draws repeat ~2.4k of them; torch
    (24 bits) repeats ~1.2k. At 200k draws the moment tests see a 0.6% change
    of the std and KS a CDF error of ~0.012 (D's 1e-6 quantile).
    """
    values = np.asarray(jaxinit.trunc_normal(mean, std, a, b)(KEY, (N_DRAWS,)))
    reference = _torch_trunc_normal(mean, std, a, b)
    assert values.min() >= a and values.max() <= b
    assert len(np.unique(values)) >= 0.98 * len(np.unique(reference))
    law = _TruncNormalLaw(mean, std, a, b)
    assert_moments(values, law)
    assert_ks(values, law)
    assert_same_law(values, reference)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bf16", "f16"])
def test_flat_trunc_normal_in_low_precision_as_many_values_as_torch(
    dtype: Any,
) -> None:
    """16-bit U[-2, 2]: as many distinct values as torch's trunc_normal_."""
    values = np.asarray(jaxinit.trunc_normal(std=1e10)(KEY, (N_DRAWS,), dtype))
    tensor = torch.empty(N_DRAWS, dtype=getattr(torch, np.dtype(dtype).name))
    generator = torch.Generator().manual_seed(11)
    torch.nn.init.trunc_normal_(tensor, 0.0, 1e10, -2.0, 2.0, generator=generator)
    assert len(np.unique(values)) >= 0.98 * len(torch.unique(tensor))
    assert_same_law(values, tensor.float().numpy())


def test_flat_trunc_normal_is_the_uniform_law_and_batched() -> None:
    """Flat to float32 precision: U[a, b] (closed), drawn by init_tree's programs."""
    init = jaxinit.trunc_normal(std=1e6)
    plan = _plan(init, (8,), np.dtype(np.float32))
    assert plan is not None and plan.law == "uniform"
    assert plan.params[:4] == (-2.0, 4.0, -2.0, 2.0)
    # Not flat at std 1e3 (z**2 / 2 spreads by 2e-6): the inverse CDF.
    assert _plan(jaxinit.trunc_normal(std=1e3), (8,), np.dtype(np.float32)) is None


def test_trunc_normal_tails_keep_their_precision() -> None:
    """A tail interval still draws the exact law from its near side: [6, 8] std."""
    values = np.asarray(jaxinit.trunc_normal(a=6.0, b=8.0)(KEY, (N_DRAWS,)))
    assert values.min() >= 6.0
    # Most of the mass is within 0.3 of 6, where float32 has ~600k values.
    with pytest.warns(UserWarning, match="mean is more than 2 std"):
        reference = _torch_trunc_normal(0.0, 1.0, 6.0, 8.0)
    assert len(np.unique(values)) >= 0.98 * len(np.unique(reference))
    law = scipy.stats.truncnorm(6.0, 8.0)
    assert_ks(values, law)
    assert_moments(values, law)


# ---------------------------------------------------------------------------------
# Item 5: no sampler puts mass at the dtype's largest value.

F16 = np.dtype(np.float16)
BF16 = np.dtype(jnp.bfloat16)
# (initializer, dtype, the message's start)
OVERFLOWS = [
    (jaxinit.trunc_normal(60000.0, 1e4, 0.0, 1e5), F16, "trunc_normal: b=100000.0"),
    (jaxinit.trunc_normal(0.0, 1e10, -1e5, 1e5), F16, "trunc_normal: a=-100000.0"),
    (
        jaxinit.trunc_normal(-60000.0, 1e4, -1e5, 0.0),
        F16,
        "trunc_normal: a=-100000.0",
    ),
    (
        jaxinit.trunc_normal(0.0, 2e4, -1e6, 1e6),
        F16,
        r"trunc_normal: draws reach \[-1.1e\+05, 1.1e\+05\]",
    ),
    (
        jaxinit.trunc_normal(3.3e38, 1e37, 0.0, 3.5e38),
        BF16,
        r"trunc_normal: b=3.5e\+38",
    ),
    (jaxinit.uniform(0.0, 7e4), F16, "uniform: b=70000.0"),
    (jaxinit.normal(std=1e5), F16, r"normal: draws reach"),
    (jaxinit.constant(1e5), F16, "constant: val=100000.0"),
    (jaxinit.orthogonal(gain=1e5), F16, "orthogonal: gain=100000.0"),
    (jaxinit.sparse(0.5, std=1e5), F16, r"sparse: draws reach"),
    (jaxinit.xavier_normal(gain=1e6), F16, r"xavier_normal: draws reach"),
]


@pytest.mark.parametrize(("init", "dtype", "message"), OVERFLOWS)
def test_draws_that_could_pass_the_range_raise(
    init: Callable[..., jax.Array], dtype: np.dtype, message: str
) -> None:
    """A ValueError naming the parameter and the dtype's range, in both paths."""
    shape = (4, 4)
    with pytest.raises(ValueError, match=message) as caught:
        init(KEY, shape, dtype)
    assert dtype.name in str(caught.value)
    assert "65504" in str(caught.value) or "3.389" in str(caught.value)
    with pytest.raises(ValueError) as batched:
        init_tree(KEY, {"w": (init, shape, dtype)})
    assert str(batched.value) == str(caught.value)


def test_bounds_past_the_range_but_out_of_reach_are_fine() -> None:
    """[-1e5, 1e5] at std 1 is never reached in float16: no error, no clipping."""
    values = np.asarray(
        jaxinit.trunc_normal(0.0, 1.0, -1e5, 1e5)(KEY, (N_DRAWS,), jnp.float16)
    )
    assert np.isfinite(values).all() and np.abs(values).max() < 6
    law = scipy.stats.norm()
    assert_ks(values.astype(np.float64), law)


def test_report_theory_of_a_flat_trunc_normal_is_uniform() -> None:
    """The CLI's theory used 1 - Phi - Phi: std 0 at std 1e7, a crash at 1e30."""
    from jaxinit import _report

    for std in (1e3, 1e7, 1e30):
        mean, spread = _report._trunc_moments(0.0, std, -2.0, 2.0)
        law = _TruncNormalLaw(0.0, std, -2.0, 2.0)
        assert math.isclose(spread, math.sqrt(law.var()), rel_tol=1e-7), std
        assert abs(mean) < 1e-12
