"""Property-based tests (hypothesis) of every initializer, at volume.

For random shapes (rank 0 to 5, zero-size dimensions included), layouts, dtypes
(float16, bfloat16, float32, float64 under x64) and parameters across their valid
ranges, extremes included, every initializer either

- returns an array of exactly the requested shape and dtype, every value finite and
  inside the law's support (uniform in [a, b), trunc_normal in [a, b], normal within
  the reach of its sampler, orthogonal entries within gain, sparse with exactly
  ceil(sparsity * out) zeros per torch column, exact initializers exact), or
- raises the documented exception (docs/errors.md), whose condition is re-checked
  here from first principles.

Cost. Every distinct (initializer, parameters, shape, dtype) is one XLA compile
(~0.1-0.5 s), so the bulk of the examples run op by op under ``jax.disable_jit``,
where compiled primitives are reused across parameter values, and shapes come from
a small fixed set, so random-bit programs are compiled once per shape. Bitwise
agreement of eager, ``jax.jit`` and ``jax.vmap`` (which compiles each example) runs
on a subset. ``JAXINIT_PROPERTY_EXAMPLES`` scales the example counts.
"""

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings, strategies as st

import jaxinit

EXAMPLES = int(os.environ.get("JAXINIT_PROPERTY_EXAMPLES", "200"))
BITWISE_EXAMPLES = max(2, EXAMPLES // 60)
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BITWISE_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=BITWISE_EXAMPLES)

FLOAT_DTYPES = ["float16", "bfloat16", "float32", "float64"]
# The largest |z| of a plain-normal draw (5.42 std at float32, 8.29 at float64).
NORMAL_REACH = {"float32": 5.5, "float64": 8.3}

# Shapes: a fixed set, so random-bit programs compile once per shape.
ANY_RANK = [
    (),
    (1,),
    (7,),
    (0,),
    (3, 5),
    (5, 3),
    (1, 1),
    (0, 4),
    (4, 0),
    (2, 3, 4),
    (3, 3, 2, 2),
    (1, 2, 3, 2),
    (2, 1, 3, 2, 2),
    (2, 0, 3, 1, 2),
]
MATRIX = [(3, 5), (5, 3), (1, 1), (8, 2), (0, 4), (4, 0)]
# Conv kernels; dirac's have 6 channels first and last (any groups in 1-3 divide).
DIRAC = [(6, 2, 6), (6, 3, 2, 6), (6, 1, 3, 2, 6), (6, 6, 0, 6), (3, 3, 2, 2)]
CONV = [(3, 2, 4), (3, 3, 2, 2), (1, 2, 3, 2), (2, 1, 3, 2, 2), (3, 3, 0, 2), (2, 2, 4)]


def shapes_for(valid: list[tuple[int, ...]]) -> st.SearchStrategy[tuple[int, ...]]:
    """Mostly shapes the initializer takes, sometimes any rank (may be rejected)."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(ANY_RANK))


def mixed(extremes: list[float], low: float, high: float) -> st.SearchStrategy[float]:
    """Named extremes half the time, else any float in [low, high]."""
    return st.one_of(
        st.sampled_from(extremes),
        st.floats(low, high, allow_nan=False, allow_infinity=False),
    )


GAINS = mixed([0.0, 1e-8, 1.0, math.sqrt(2), 5 / 3, 100.0, 1e4], 0.0, 10.0)
STDS = mixed([1e-8, 1e-3, 0.02, 1.0, 1e4], 1e-8, 10.0)
MEANS = mixed([0.0, -0.0, 1e-8, -1.0, 0.5, 1e4, -1e4], -100.0, 100.0)


@contextlib.contextmanager
def precision(dtype: str) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        if dtype == "float64":
            stack.enter_context(jax.enable_x64(True))
        yield


def largest(dtype: str) -> float:
    return float(jnp.finfo(jnp.dtype(dtype)).max)


def as_float64(out: jax.Array) -> np.ndarray:
    return np.asarray(
        out.astype(jnp.float64) if out.dtype == jnp.float64 else out.astype(jnp.float32)
    ).astype(np.float64)


def to_torch_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """A Flax kernel (*k, in, out) as torch's (out, in, *k)."""
    return shape if layout == "torch" else (shape[-1], shape[-2], *shape[:-2])


def torch_fans(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    torch_shape = to_torch_shape(shape, layout)
    receptive = math.prod(torch_shape[2:])
    return torch_shape[1] * receptive, torch_shape[0] * receptive


def to_torch_layout(values: np.ndarray, layout: str) -> np.ndarray:
    if layout == "torch":
        return values
    rank = values.ndim
    return values.transpose(rank - 1, rank - 2, *range(rank - 2))


def rounded(value: float, dtype: str) -> float:
    return float(np.array(value, dtype=jnp.dtype(dtype)))


def no_value_between(low: float, high: float, dtype: str, *, open_right: bool) -> bool:
    """Whether no ``dtype`` value v has low <= v <= high (v < high if open_right)."""
    dt = jnp.dtype(dtype)
    with np.errstate(over="ignore"):
        first = np.array(low, dt)
        if float(first) < low:
            first = np.nextafter(first, np.array(np.inf, dt))
    return not (float(first) < high or (float(first) == high and not open_right))


# ---------------------------------------------------------------------------------
# One example: draw, then check the output or the documented rejection.


def _density_is_flat(alpha: float, beta: float, dtype: str) -> bool:
    """Whether exp(-z**2 / 2) varies by at most half an ulp of the draw dtype on
    [alpha, beta] (exact rationals: nothing here may cancel)."""
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        return False
    nearest = (
        Fraction(0)
        if alpha <= 0 <= beta
        else min(abs(Fraction(alpha)), abs(Fraction(beta)))
    )
    farthest = max(abs(Fraction(alpha)), abs(Fraction(beta)))
    eps = Fraction(
        float(np.finfo(np.float64 if dtype == "float64" else np.float32).eps)
    )
    return (farthest**2 - nearest**2) / 2 <= eps / 2


class Example:
    """An initializer call and the checks its output must pass."""

    def __init__(
        self,
        name: str,
        params: dict[str, Any],
        layout: str,
        shape: tuple[int, ...],
        dtype: str,
    ) -> None:
        self.name, self.params, self.layout = name, params, layout
        self.shape, self.dtype = shape, dtype
        kwargs = dict(params)
        layout_free = ("uniform", "normal", "trunc_normal", "trunc_normal_tf")
        if name not in (*layout_free, "constant", "eye"):
            kwargs["layout"] = layout
        self.init = getattr(jaxinit, name)(**kwargs)

    def call(self, key: jax.Array) -> jax.Array:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self.init(key, self.shape, jnp.dtype(self.dtype))
        # Only kaiming warns, on zero-element shapes, as torch.
        warned = [w for w in caught if issubclass(w.category, UserWarning)]
        expect_warning = self.name.startswith("kaiming") and math.prod(self.shape) == 0
        assert len(warned) == int(expect_warning), [str(w.message) for w in warned]
        return out

    # -- rejections ----------------------------------------------------------------

    def rank_error(self) -> str | None:
        """The documented shape error, or None when the shape is taken."""
        rank = len(self.shape)
        if self.name in ("eye", "sparse") and rank != 2:
            return "Only tensors with 2 dimensions are supported"
        if self.name == "dirac":
            if not 3 <= rank <= 5:
                return "Only tensors with 3, 4, or 5 dimensions are supported"
            out_axis = 0 if self.layout == "torch" else -1
            kernel = self.shape[2:] if self.layout == "torch" else self.shape[:-2]
            if self.shape[out_axis] % self.params.get("groups", 1):
                return "must be divisible by groups"
            if 0 in kernel:
                return "has a zero dimension"
        if self.name == "orthogonal" and rank < 2:
            return "Only tensors with 2 or more dimensions are supported"
        fan_based = ("xavier", "kaiming", "variance_scaling", "lecun_normal")
        if self.name.startswith(fan_based) and rank < 2:
            return "Fan in and fan out can not be computed"
        return None

    def std(self) -> float:
        """The std of the fan-scaled laws, from torch's formulas."""
        fan_in, fan_out = torch_fans(self.shape, self.layout)
        if self.name in ("variance_scaling", "lecun_normal"):  # timm's formula
            fan = {"fan_in": fan_in, "fan_out": fan_out}.get(
                self.params.get("mode", "fan_in"), (fan_in + fan_out) / 2
            )
            return math.sqrt(self.params.get("scale", 1.0) / fan)
        if self.name.startswith("xavier"):
            return self.params.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
        return jaxinit.calculate_gain(
            self.params.get("nonlinearity", "leaky_relu"), self.params.get("a", 0.0)
        ) / math.sqrt(
            fan_in if self.params.get("mode", "fan_in").lower() == "fan_in" else fan_out
        )

    def distribution(self) -> str:
        """timm's variance-scaling distribution (lecun_normal: truncated)."""
        if self.name == "lecun_normal":
            return "truncated_normal"
        return str(self.params.get("distribution", "normal"))

    def trunc_law(self) -> tuple[float, float, float, float]:
        """(mean, std, a, b) of a truncated normal, the bounds absolute."""
        if self.name in ("variance_scaling", "lecun_normal"):
            cut = self.std() / 0.87962566103423978  # timm's constant
            return 0.0, cut, -2 * cut, 2 * cut
        mean, std, a, b = (self.params[k] for k in ("mean", "std", "a", "b"))
        if self.name == "trunc_normal_tf":  # a, b in units of std around the mean
            return mean, std, mean + a * std, mean + b * std
        return mean, std, a, b

    def value_error(self) -> str | None:
        """The documented call-time value error (given a valid shape), or None."""
        if math.prod(self.shape) == 0:
            return None  # nothing is drawn
        big, dtype, p = largest(self.dtype), self.dtype, self.params
        if self.name in ("variance_scaling", "lecun_normal"):
            distribution = self.distribution()
            if distribution == "truncated_normal":
                return None if self.std() == 0 else self._trunc_value_error(big)
            if distribution == "uniform":
                b = math.sqrt(3.0) * self.std()
                return "is out of range" if b > big else None
            return (
                "draws reach"
                if NORMAL_REACH.get(dtype, NORMAL_REACH["float32"]) * self.std() > big
                else None
            )
        if self.name == "trunc_normal_tf" and p["std"] == 0:
            return "is out of range" if abs(p["mean"]) > big else None
        reach = NORMAL_REACH["float64" if dtype == "float64" else "float32"]
        if self.name == "constant":
            return (
                "is out of range"
                if abs(p["val"]) > big and math.isfinite(p["val"])
                else None
            )
        if self.name == "uniform" or self.name.endswith("_uniform"):
            if self.name == "uniform":
                a, b = p["a"], p["b"]
            else:
                b = math.sqrt(3.0) * self.std()
                a = -b
            if a == b:
                return "is out of range" if abs(a) > big else None
            if max(abs(a), abs(b)) > big:
                return "is out of range"
            if no_value_between(a, b, dtype, open_right=True):
                return "no .* value lies in"
            return None
        if self.name.startswith("trunc_normal"):
            return self._trunc_value_error(big)
        if self.name in ("normal", "sparse") or self.name.endswith("_normal"):
            mean = p.get("mean", 0.0) if self.name == "normal" else 0.0
            std = (
                p.get("std", 0.01) if self.name in ("normal", "sparse") else self.std()
            )
            if abs(mean) > big:
                return "is out of range"
            if std > 0 and abs(mean) + reach * std > big:
                return "draws reach"
        return None

    def _trunc_value_error(self, big: float) -> str | None:
        mean, std, a, b = self.trunc_law()
        if a == b:
            return "is out of range" if abs(a) > big else None
        if no_value_between(a, b, self.dtype, open_right=False):
            return "no .* value lies in"
        alpha, beta = (a - mean) / std, (b - mean) / std
        if _density_is_flat(alpha, beta, self.dtype):
            # Drawn as U[a, b] (the truncated law's limit): both bounds are reached.
            return "is out of range" if max(abs(a), abs(b)) > big else None
        norm = scipy.stats.norm
        if alpha >= 0:
            mass = norm.sf(alpha) - norm.sf(beta)
        else:
            mass = norm.cdf(beta) - norm.cdf(alpha)
        if mass < (1e-290 if self.dtype == "float64" else 1e-30):
            return "lies so far in the tail"
        if math.isinf(a) or math.isinf(b):
            # The farthest quantile the inverse-CDF sampler reaches: half a step of
            # its uniform grid into the open side's tail.
            eps = float(
                jnp.finfo(jnp.float64 if self.dtype == "float64" else jnp.float32).eps
            )
            reach = NORMAL_REACH["float64" if self.dtype == "float64" else "float32"]
            z = 1.01 * max(reach, float(norm.isf(mass * eps / 2)))
            low = mean - z * std if math.isinf(a) else a
            high = mean + z * std if math.isinf(b) else b
            if max(abs(low), abs(high)) > big:
                return "draws reach"
        return None

    # -- checks --------------------------------------------------------------------

    def check(self, out: jax.Array) -> None:
        assert out.shape == self.shape, (out.shape, self.shape)
        assert out.dtype == jnp.dtype(self.dtype), (out.dtype, self.dtype)
        if math.prod(self.shape) == 0:
            return
        values = as_float64(out)
        if self.name != "constant" or math.isfinite(self.params["val"]):
            assert np.isfinite(values).all(), values
        getattr(self, f"_check_{self.name}", self._check_fan_scaled)(values)

    def _check_uniform(self, values: np.ndarray) -> None:
        a, b = self.params["a"], self.params["b"]
        if a == b:
            assert (values == rounded(a, self.dtype)).all()
            return
        assert (values >= a).all() and (values < b).all(), (values.min(), values.max())

    def _check_normal(self, values: np.ndarray) -> None:
        mean, std = self.params["mean"], self.params["std"]
        if std == 0:
            assert (values == rounded(mean, self.dtype)).all()
            return
        reach = NORMAL_REACH["float64" if self.dtype == "float64" else "float32"]
        slack = (
            2 * float(jnp.finfo(jnp.dtype(self.dtype)).eps) * (abs(mean) + reach * std)
        )
        assert (np.abs(values - mean) <= reach * std + slack).all()

    def _check_trunc_normal(self, values: np.ndarray) -> None:
        mean, std, a, b = self.trunc_law()
        if std == 0:  # trunc_normal_tf(std=0) and variance_scaling(scale=0)
            assert (values == rounded(mean, self.dtype)).all()
            return
        if a == b:
            assert (values == rounded(a, self.dtype)).all()
            return
        assert (values >= a).all() and (values <= b).all(), (values.min(), values.max())

    _check_trunc_normal_tf = _check_trunc_normal
    _check_lecun_normal = _check_trunc_normal

    def _check_variance_scaling(self, values: np.ndarray) -> None:
        if self.distribution() == "truncated_normal":
            self._check_trunc_normal(values)
        else:
            self._check_fan_scaled(values)

    def _check_constant(self, values: np.ndarray) -> None:
        assert (values == rounded(self.params["val"], self.dtype)).all()

    def _check_zeros(self, values: np.ndarray) -> None:
        assert (values == 0).all()

    def _check_ones(self, values: np.ndarray) -> None:
        assert (values == 1).all()

    def _check_eye(self, values: np.ndarray) -> None:
        np.testing.assert_array_equal(values, np.eye(*self.shape))

    def _check_dirac(self, values: np.ndarray) -> None:
        torch_weight = to_torch_layout(values, self.layout)
        out_channels, in_channels = torch_weight.shape[:2]
        groups = self.params.get("groups", 1)
        expected = np.zeros_like(torch_weight)
        per_group = out_channels // groups
        centre = tuple(k // 2 for k in torch_weight.shape[2:])
        for g in range(groups):
            for d in range(min(per_group, in_channels)):
                expected[(g * per_group + d, d, *centre)] = 1
        np.testing.assert_array_equal(torch_weight, expected)

    def _check_orthogonal(self, values: np.ndarray) -> None:
        gain = self.params["gain"]
        assert (np.abs(values) <= gain * (1 + 1e-2) + 1e-30).all()
        tiny = float(jnp.finfo(jnp.dtype(self.dtype)).tiny)
        if self.dtype in ("float32", "float64") and gain > tiny * 1e6:  # no underflow
            matrix = (
                to_torch_layout(values, self.layout).reshape(self.shape_rows(), -1)
                / gain
            )
            small = min(matrix.shape)
            gram = matrix @ matrix.T if matrix.shape[0] == small else matrix.T @ matrix
            np.testing.assert_allclose(gram, np.eye(small), atol=1e-4)

    def shape_rows(self) -> int:
        return to_torch_shape(self.shape, self.layout)[0]

    def _check_sparse(self, values: np.ndarray) -> None:
        torch_weight = to_torch_layout(values, self.layout)
        rows = torch_weight.shape[0]
        num_zeros = math.ceil(self.params["sparsity"] * rows)
        zeros_per_column = (torch_weight == 0).sum(axis=0)
        std = self.params["std"]
        tiny = float(jnp.finfo(jnp.dtype(self.dtype)).tiny)
        if std == 0:
            assert (zeros_per_column == rows).all()
        elif std * 1e-6 > tiny:  # a non-zero draw cannot round to 0
            assert (zeros_per_column == num_zeros).all(), (zeros_per_column, num_zeros)
        else:
            assert (zeros_per_column >= num_zeros).all()
        self._check_within_reach(values, std)

    def _check_within_reach(self, values: np.ndarray, std: float) -> None:
        reach = NORMAL_REACH["float64" if self.dtype == "float64" else "float32"]
        slack = 2 * float(jnp.finfo(jnp.dtype(self.dtype)).eps) * reach * std
        assert (np.abs(values) <= reach * std + slack).all()

    def _check_fan_scaled(self, values: np.ndarray) -> None:
        std = self.std()
        if self.name.endswith("_uniform") or self.distribution() == "uniform":
            bound = math.sqrt(3.0) * std
            if bound == 0:  # U[-0, 0) is the constant 0, as torch (gain 0)
                assert (values == 0).all()
                return
            assert (values >= -bound).all() and (values < bound).all()
        else:
            self._check_within_reach(values, std)


def run_example(example: Example, key: jax.Array) -> str:
    """Draws, checks, and returns 'ok' or the kind of documented rejection."""
    expected = example.rank_error() or example.value_error()
    with precision(example.dtype):
        if expected is not None:
            with pytest.raises(ValueError, match=expected):
                example.call(key)
            return "rejected"
        example.check(example.call(key))
    return "ok"


# ---------------------------------------------------------------------------------
# Strategies, one per initializer: (name, params, layout, shape).

LAYOUTS = st.sampled_from(["flax", "torch"])
KEYS = st.integers(0, 2**32 - 1)


@st.composite
def uniform_params(draw: st.DrawFn) -> dict[str, Any]:
    a = draw(mixed([0.0, -1.0, 1e-8, -1e4, 6e4, -65504.0, 1e30], -1e4, 1e4))
    width = draw(st.sampled_from([0.0, 1e-8, 1e-4, 0.1, 1.0, 2.0, 1e4, 1e5]))
    return {"a": a, "b": a + width}


@st.composite
def trunc_params(draw: st.DrawFn) -> dict[str, Any]:
    mean, std = draw(mixed([0.0, 1.0, -3.0], -10.0, 10.0)), draw(STDS)
    # Bounds in std units, far tails and one-sided intervals included.
    units = [-math.inf, -8.0, -6.0, -2.0, -0.5, 0.0, 1e-3, 0.5, 2.0, 6.0, 8.0, math.inf]
    low = draw(st.sampled_from(units[:-1]))  # a = +inf is invalid
    high = draw(st.sampled_from(units[1:]))  # b = -inf is invalid
    low, high = min(low, high), max(low, high)
    if draw(st.booleans()):  # absolute bounds, ignoring std (torch's convention)
        a, b = sorted(
            draw(st.lists(mixed([-2.0, 2.0, 0.0], -5.0, 5.0), min_size=2, max_size=2))
        )
    else:
        a, b = mean + low * std, mean + high * std
    return {"mean": mean, "std": std, "a": a, "b": b}


def kaiming_params() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "a": st.one_of(
                st.none(), mixed([0.0, math.sqrt(5), 1e-8, 1e4, -0.2], -10.0, 10.0)
            ),
            "mode": st.sampled_from(["fan_in", "fan_out", "FAN_IN", "Fan_Out"]),
            "nonlinearity": st.sampled_from(
                ["linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
            ),
        }
    )


@st.composite
def trunc_tf_params(draw: st.DrawFn) -> dict[str, Any]:
    """Bounds in std units around the mean, as timm's trunc_normal_tf takes them."""
    mean = draw(mixed([0.0, 1.0, -3.0], -10.0, 10.0))
    std = draw(st.one_of(st.just(0.0), STDS))
    units = [-math.inf, -8.0, -6.0, -2.0, -0.5, 0.0, 1e-3, 0.5, 2.0, 6.0, 8.0, math.inf]
    low = draw(st.sampled_from(units[:-1]))
    high = draw(st.sampled_from(units[1:]))
    return {"mean": mean, "std": std, "a": min(low, high), "b": max(low, high)}


SCALES = mixed([0.0, 1e-8, 1.0, 2.0, 1e4, 1e9], 0.0, 10.0)
VARIANCE_SCALING = st.fixed_dictionaries(
    {
        "scale": SCALES,
        "mode": st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
        "distribution": st.sampled_from(["truncated_normal", "normal", "uniform"]),
    }
)
SPARSITIES = mixed([0.0, 1.0, 0.5, 0.07, 1e-8, 1 - 1e-8], 0.0, 1.0)
STRATEGIES: dict[
    str, tuple[st.SearchStrategy[dict[str, Any]], list[tuple[int, ...]]]
] = {
    "uniform": (uniform_params(), ANY_RANK),
    "normal": (
        st.fixed_dictionaries(
            {"mean": MEANS, "std": st.one_of(st.just(0.0), STDS, st.just(2e4))}
        ),
        ANY_RANK,
    ),
    "trunc_normal": (trunc_params(), ANY_RANK),
    "constant": (
        st.fixed_dictionaries(
            {
                "val": mixed(
                    [0.0, -0.0, 1e-8, 65504.0, 1e30, math.inf, -math.inf], -1e4, 1e4
                )
            }
        ),
        ANY_RANK,
    ),
    "zeros": (st.just({}), ANY_RANK),
    "ones": (st.just({}), ANY_RANK),
    "eye": (st.just({}), MATRIX),
    "dirac": (st.fixed_dictionaries({"groups": st.sampled_from([1, 2, 3])}), DIRAC),
    "xavier_uniform": (st.fixed_dictionaries({"gain": GAINS}), MATRIX + CONV),
    "xavier_normal": (st.fixed_dictionaries({"gain": GAINS}), MATRIX + CONV),
    "kaiming_uniform": (kaiming_params(), MATRIX + CONV),
    "kaiming_normal": (kaiming_params(), MATRIX + CONV),
    "orthogonal": (st.fixed_dictionaries({"gain": GAINS}), MATRIX + CONV),
    "sparse": (
        st.fixed_dictionaries(
            {"sparsity": SPARSITIES, "std": st.one_of(st.just(0.0), STDS)}
        ),
        MATRIX,
    ),
    "trunc_normal_tf": (trunc_tf_params(), ANY_RANK),
    "variance_scaling": (VARIANCE_SCALING, MATRIX + CONV),
    "lecun_normal": (st.just({}), MATRIX + CONV),
}
NAMES = sorted(STRATEGIES)


def examples(name: str) -> st.SearchStrategy[Example]:
    params, valid_shapes = STRATEGIES[name]
    return st.builds(
        Example,
        st.just(name),
        params,
        LAYOUTS,
        shapes_for(valid_shapes),
        st.sampled_from(FLOAT_DTYPES),
    )


# The outcome of every example, so that a run that rejects everything fails.
OUTCOMES: dict[str, dict[str, int]] = {}


def _property_test(name: str) -> Callable[[], None]:
    @PROPERTY_SETTINGS
    @given(example=examples(name), seed=KEYS)
    def test(example: Example, seed: int) -> None:
        with jax.disable_jit():
            outcome = run_example(example, jax.random.key(seed))
        counts = OUTCOMES.setdefault(name, {"ok": 0, "rejected": 0})
        counts[outcome] += 1

    return test


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_properties(name: str):
    OUTCOMES.pop(name, None)
    _property_test(name)()
    counts = OUTCOMES[name]
    assert counts["ok"] >= EXAMPLES // 3, counts  # mostly valid draws, checked


# ---------------------------------------------------------------------------------
# Bitwise agreement: eager == jit == vmap, on a subset (each example compiles).

BITWISE_SHAPES = {"eye": [(3, 5)], "sparse": [(3, 5)], "dirac": [(3, 3, 2, 2)]}


def _bitwise_test(name: str) -> Callable[[], None]:
    params, _ = STRATEGIES[name]
    shapes = BITWISE_SHAPES.get(name, [(3, 5), (2, 3, 4)])

    @BITWISE_SETTINGS
    @given(
        params=params,
        layout=LAYOUTS,
        shape=st.sampled_from(shapes),
        dtype=st.sampled_from(FLOAT_DTYPES),
        seed=KEYS,
    )
    def test(
        params: dict[str, Any],
        layout: str,
        shape: tuple[int, ...],
        dtype: str,
        seed: int,
    ) -> None:
        example = Example(name, params, layout, shape, dtype)
        if example.rank_error() or example.value_error():
            return
        keys = jax.random.split(jax.random.key(seed), 2)
        with precision(dtype):
            eager = [np.asarray(example.call(k)) for k in keys]
            jitted = jax.jit(example.init, static_argnums=(1, 2))(
                keys[1], shape, jnp.dtype(dtype)
            )
            mapped = jax.vmap(lambda k: example.init(k, shape, jnp.dtype(dtype)))(keys)
        assert np.asarray(jitted).tobytes() == eager[1].tobytes()
        for i in range(2):
            assert np.asarray(mapped[i]).tobytes() == eager[i].tobytes()

    return test


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_eager_jit_vmap_bitwise(name: str):
    _bitwise_test(name)()
