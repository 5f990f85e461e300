"""Samplers shared by the initializers.

Draws are made at float32 (float64 for float64 outputs) and rounded to the output
dtype, then clipped to the dtype values that lie inside the law's support. So a
bfloat16 uniform keeps torch's resolution (jax.random draws bfloat16 from 128
values in [0, 1)), and the bounds hold for the exact Python numbers the user gave.
"""

import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtri

from ._bits import random_bits32, unit_floats

# A truncated normal whose standardized bounds both lie beyond this many std is
# drawn as a plain normal and clipped: jax.random.normal cannot reach 9 std
# (float64 uniforms resolve ~8.2 std), so the clip never moves a value.
_UNREACHABLE_STD = 9.0
# Smallest interval probability each compute dtype resolves without denormals.
_MIN_MASS = {np.dtype(np.float32): 1e-30, np.dtype(np.float64): 1e-290}
# The largest |z| jax.random.normal returns, rounded up (5.42 at float32, 8.29 at
# float64): no draw lies beyond mean +- _NORMAL_REACH * std.
_NORMAL_REACH = {np.dtype(np.float32): 5.5, np.dtype(np.float64): 8.3}
# Largest finite float16 and bfloat16 (np.finfo does not know bfloat16).
_LOW_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38}


def largest_finite(dtype: np.dtype) -> float:
    """The largest finite value of a floating (or complex) dtype."""
    return _LOW_MAX.get(dtype.name) or float(np.finfo(dtype).max)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype draws are made in: float64 for float64 outputs, else float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def unit_uniform(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """U[0, 1) at ``dtype`` (float32 or float64), as jax.random.uniform's grid."""
    if dtype != np.float32:
        return jax.random.uniform(key, shape, dtype)
    return unit_floats(random_bits32(key, shape))


def centred_unit(unit: jax.Array) -> jax.Array:
    """U[0, 1) float32 moved to (-1, 1), as jax.random.normal does."""
    low = jnp.float32(np.nextafter(np.float32(-1.0), np.float32(0.0)))
    return lax.max(low, unit * (jnp.float32(1.0) - low) + low)


def normal_from_unit(unit: jax.Array) -> jax.Array:
    """A float32 standard normal ``sqrt(2) * erfinv(u)``, u from centred_unit."""
    z: jax.Array = jnp.float32(np.sqrt(2)) * lax.erf_inv(centred_unit(unit))
    return z


def standard_normal(
    key: jax.Array, shape: tuple[int, ...], dtype: np.dtype
) -> jax.Array:
    """N(0, 1) at ``dtype`` (float32 or float64)."""
    if dtype != np.float32:
        return jax.random.normal(key, shape, dtype)
    return normal_from_unit(unit_uniform(key, shape, dtype))


def _as_dtype(value: float, dtype: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.array(value, dtype=dtype)


def round_up(value: float, dtype: np.dtype) -> np.ndarray:
    """The smallest ``dtype`` value >= ``value`` (-inf stays -inf)."""
    rounded = _as_dtype(value, dtype)
    if float(rounded) < value:
        rounded = np.nextafter(rounded, _as_dtype(math.inf, dtype))
    return rounded


def round_down(value: float, dtype: np.dtype, *, strict: bool = False) -> np.ndarray:
    """The largest ``dtype`` value <= ``value`` (< ``value`` when strict)."""
    rounded = _as_dtype(value, dtype)
    if float(rounded) > value or (strict and float(rounded) == value):
        rounded = np.nextafter(rounded, _as_dtype(-math.inf, dtype))
    return rounded


def check_representable(owner: str, name: str, value: float, dtype: np.dtype) -> None:
    """Raises ValueError if a finite ``value`` overflows ``dtype``."""
    if math.isfinite(value) and not np.isfinite(_as_dtype(value, dtype)).all():
        raise ValueError(
            f"{owner}: {name}={value} is out of range for {dtype.name} (largest "
            f"finite value {largest_finite(dtype)})"
        )


def _check_reach(
    owner: str,
    dtype: np.dtype,
    mean: float,
    std: float,
    z: float,
    low: float,
    high: float,
) -> None:
    """Raises ValueError if draws in [low, high] can overflow ``dtype`` to inf."""
    largest = largest_finite(dtype)
    if max(abs(low), abs(high)) > largest:
        raise ValueError(
            f"{owner}: draws reach [{low:.4g}, {high:.4g}] (mean {mean:g} +- {z:.3g} "
            f"std, std={std:g}), beyond the largest {dtype.name} ({largest:g}), where "
            "they would be inf; use a wider dtype, a smaller std or finite bounds"
        )


def constant(
    owner: str,
    value: float,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> jax.Array:
    """``value`` everywhere, rounded to ``dtype``; errors if it overflows."""
    if jnp.issubdtype(dtype, jnp.inexact):
        check_representable(owner, "val", value, dtype)
    elif jnp.issubdtype(dtype, jnp.integer):
        info = np.iinfo(dtype)
        if not math.isfinite(value) or not info.min <= int(value) <= info.max:
            raise ValueError(
                f"{owner}: val={value} cannot be converted to {dtype.name} without "
                f"overflow (range [{info.min}, {info.max}])"
            )
        value = int(value)  # torch truncates toward zero
    return jnp.full(shape, value, dtype)


def uniform(
    owner: str,
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: np.dtype,
    a: float,
    b: float,
) -> jax.Array:
    """U[a, b): every value v satisfies a <= v < b for the Python floats a, b."""
    if a == b:
        return constant(owner, a, shape, dtype)
    a, width, lo, hi = uniform_params(owner, dtype, a, b)
    u = unit_uniform(key, shape, compute_dtype(dtype))
    return jnp.clip((a + width * u).astype(dtype), lo, hi)


def uniform_params(
    owner: str, dtype: np.dtype, a: float, b: float
) -> tuple[float, float, float, float]:
    """The parameters ``(a, b - a, lo, hi)`` of ``U[a, b)`` drawn in ``dtype``.

    Values are clipped to [lo, hi], the dtype values inside [a, b); ValueError
    if there are none or the interval is too wide for the draw dtype.
    """
    check_representable(owner, "a", a, dtype)
    check_representable(owner, "b", b, dtype)
    lo, hi = round_up(a, dtype), round_down(b, dtype, strict=True)
    if lo > hi:
        raise ValueError(
            f"{owner}: no {dtype.name} value lies in [a, b) = [{a}, {b}); widen the "
            "interval or use a wider dtype"
        )
    draw_dtype = compute_dtype(dtype)
    width = b - a
    largest = float(np.finfo(draw_dtype).max)  # float32 or float64: numpy knows both
    if width > largest:
        raise ValueError(
            f"{owner}: b - a = {width} exceeds the largest {draw_dtype.name} "
            f"({largest}); narrow the interval"
        )
    return a, width, float(lo), float(hi)


def normal(
    owner: str,
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: np.dtype,
    mean: float,
    std: float,
) -> jax.Array:
    """N(mean, std**2), untruncated, drawn at float32 and rounded."""
    check_normal(owner, dtype, mean, std)
    if std == 0:
        return constant(owner, mean, shape, dtype)
    z = standard_normal(key, shape, compute_dtype(dtype))
    return (mean + std * z).astype(dtype)


def check_normal(owner: str, dtype: np.dtype, mean: float, std: float) -> None:
    """Raises ValueError if N(mean, std**2) cannot be drawn in ``dtype``."""
    check_representable(owner, "mean", mean, dtype)
    reach = _NORMAL_REACH[compute_dtype(dtype)]
    _check_reach(owner, dtype, mean, std, reach, mean - reach * std, mean + reach * std)


def _phi(x: float) -> float:
    """Standard normal CDF in float64, accurate in the lower tail."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _interval_mass(alpha: float, beta: float) -> float:
    if alpha >= 0:
        return _phi(-alpha) - _phi(-beta)
    if beta <= 0:
        return _phi(beta) - _phi(alpha)
    return 1.0 - _phi(alpha) - _phi(-beta)


def is_unreachable(alpha: float, beta: float) -> bool:
    """Whether a plain normal never reaches the standardized bounds (clip only)."""
    return alpha <= -_UNREACHABLE_STD and beta >= _UNREACHABLE_STD


def truncated_standard_normal(
    key: jax.Array,
    shape: tuple[int, ...],
    draw_dtype: np.dtype,
    alpha: float,
    beta: float,
) -> jax.Array:
    """Standard normal truncated to [alpha, beta], by the inverse CDF.

    One uniform u picks the quantile ``Phi(alpha) + p * u``. Quantiles below 1/2
    go through ``ndtri`` directly; the others through the upper tail
    ``Phi(-beta) + p * (1 - u)``, so neither tail loses precision to 1 - q
    rounding (the cause of jax.random.truncated_normal's values at the bound).
    """
    if is_unreachable(alpha, beta):
        z = standard_normal(key, shape, draw_dtype)
        return jnp.clip(z, alpha, beta)
    mass = _interval_mass(alpha, beta)
    # Midpoints of jax's uniform grid, so u lies in (0, 1): u == 0 (one float32
    # draw in 2**23) would give ndtri(0) = -inf when alpha = -inf.
    half_step = float(np.finfo(draw_dtype).eps) / 2
    u = unit_uniform(key, shape, draw_dtype) + half_step
    lower = _phi(alpha) + mass * u
    upper_tail = _phi(-beta) + mass * (1 - u)
    use_lower = lower <= 0.5
    quantile = ndtri(jnp.where(use_lower, lower, upper_tail))
    return jnp.clip(jnp.where(use_lower, quantile, -quantile), alpha, beta)


def trunc_normal_params(
    owner: str, dtype: np.dtype, mean: float, std: float, a: float, b: float
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The clip bounds ``(lo, hi)`` in ``dtype`` and standardized ``(alpha, beta)``.

    ValueError if no ``dtype`` value lies in [a, b], if the draw dtype cannot
    resolve the interval's probability, or if draws on an unbounded side can
    overflow ``dtype`` (``a < b`` assumed).
    """
    lo, hi = round_up(a, dtype), round_down(b, dtype)
    if lo > hi:
        raise ValueError(
            f"{owner}: no {dtype.name} value lies in [a, b] = [{a}, {b}]; widen the "
            "interval or use a wider dtype"
        )
    alpha, beta = (a - mean) / std, (b - mean) / std
    draw_dtype = compute_dtype(dtype)
    if _interval_mass(alpha, beta) < _MIN_MASS[draw_dtype]:
        raise ValueError(
            f"{owner}: [a, b] = [{a}, {b}] lies so far in the tail of N({mean}, "
            f"{std}**2) (standardized [{alpha:.4g}, {beta:.4g}]) that "
            f"{draw_dtype.name} "
            "cannot resolve its probability; enable jax_enable_x64 and ask for "
            "float64, or move mean closer to the interval"
        )
    if math.isinf(a) or math.isinf(b):
        # The farthest quantile the sampler reaches on an unbounded side.
        far = _interval_mass(alpha, beta) * float(np.finfo(draw_dtype).eps) / 2
        reach = 1.01 * max(
            _NORMAL_REACH[draw_dtype], -statistics.NormalDist().inv_cdf(far)
        )
        low = mean - reach * std if math.isinf(a) else a
        high = mean + reach * std if math.isinf(b) else b
        _check_reach(owner, dtype, mean, std, reach, low, high)
    return lo, hi, alpha, beta


def trunc_normal(
    owner: str,
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: np.dtype,
    mean: float,
    std: float,
    a: float,
    b: float,
) -> jax.Array:
    """N(mean, std**2) conditioned on [a, b]; every value satisfies a <= v <= b."""
    check_representable(owner, "mean", mean, dtype)
    if a == b:
        return constant(owner, a, shape, dtype)
    lo, hi, alpha, beta = trunc_normal_params(owner, dtype, mean, std, a, b)
    draw_dtype = compute_dtype(dtype)
    z = truncated_standard_normal(key, shape, draw_dtype, alpha, beta)
    return jnp.clip((mean + std * z).astype(dtype), lo, hi)
