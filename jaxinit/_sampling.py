"""Samplers shared by the initializers.

Draws are made at float32 (float64 for float64 outputs) and rounded to the output
dtype, then clipped to the dtype values that lie inside the law's support. So a
bfloat16 uniform keeps torch's resolution (jax.random draws bfloat16 from 128
values in [0, 1)), and the bounds hold for the exact Python numbers the user gave.
"""

import math
import statistics
from collections.abc import Sequence
from typing import Protocol

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
    """U[0, 1) moved to (-1, 1), as jax.random.normal does (float32 or float64)."""
    dtype = unit.dtype
    low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    return lax.max(low, unit * (np.array(1.0, dtype) - low) + low)


def normal_from_unit(unit: jax.Array) -> jax.Array:
    """A standard normal ``sqrt(2) * erfinv(u)``, u from centred_unit."""
    return jnp.multiply(
        np.array(np.sqrt(2), unit.dtype), lax.erf_inv(centred_unit(unit))
    )


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
    a: float = -math.inf,
    b: float = math.inf,
) -> None:
    """Raises ValueError if draws can leave ``dtype``'s finite range.

    The draws lie within ``mean +- z * std`` and within ``[a, b]``. A bound they
    can reach must itself fit the dtype (the check ``uniform`` makes on its
    bounds): past it, values would be clipped onto the dtype's largest value.
    Elsewhere it is ``mean +- z * std`` that must fit, or values would be inf.
    """
    low, high = mean - z * std, mean + z * std
    if a >= low:
        check_representable(owner, "a", a, dtype)
        low = a
    if b <= high:
        check_representable(owner, "b", b, dtype)
        high = b
    largest = largest_finite(dtype)
    if max(-low, high) > largest:
        raise ValueError(
            f"{owner}: draws reach [{low:.4g}, {high:.4g}] (mean {mean:g} +- {z:.3g} "
            f"std, std={std:g}), beyond the largest {dtype.name} ({largest:g}), where "
            f"they would be inf; use a wider dtype, a smaller std or bounds within "
            f"[-{largest:g}, {largest:g}]"
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


# The laws. A law maps U[0, 1) draws at the draw dtype (``compute_dtype``) and
# its parameters, given as arrays, to values of the output dtype. The samplers
# below and init_tree's batched programs call the same law functions with the
# parameters as runtime values in both (``runtime``), so both run the same
# arithmetic: were the parameters constants, XLA would rewrite it differently
# in each program (it folds ``(u - 1) * 1 + a`` into ``u + (a - 1)``, drops
# ``0 + x``) and the bits would differ.
class Law(Protocol):
    """``law(unit, params, dtype)``: values of ``dtype`` from U[0, 1) draws."""

    def __call__(
        self, unit: jax.Array, p: Sequence[jax.Array], dtype: np.dtype
    ) -> jax.Array: ...


# A plan: the name of a law (or "constant", or "truncated") and its parameters.
Plan = tuple[str, tuple[float, ...]]


def uniform_law(unit: jax.Array, p: Sequence[jax.Array], dtype: np.dtype) -> jax.Array:
    """``a + width * u`` rounded to ``dtype``, clipped to ``[lo, hi]``."""
    a, width, lo, hi = p[:4]
    return jnp.clip(
        (a + width * unit).astype(dtype), lo.astype(dtype), hi.astype(dtype)
    )


def normal_law(unit: jax.Array, p: Sequence[jax.Array], dtype: np.dtype) -> jax.Array:
    """``mean + scale * erfinv(2u - 1)``, with ``scale = std * sqrt(2)``."""
    mean, scale = p[:2]
    return (mean + scale * lax.erf_inv(centred_unit(unit))).astype(dtype)


def clipped_normal_law(
    unit: jax.Array, p: Sequence[jax.Array], dtype: np.dtype
) -> jax.Array:
    """A normal clipped to standardized ``[z_lo, z_hi]``, then to ``[lo, hi]``."""
    mean, std, lo, hi, z_lo, z_hi = p[:6]
    z = jnp.clip(normal_from_unit(unit), z_lo, z_hi)
    return jnp.clip((mean + std * z).astype(dtype), lo.astype(dtype), hi.astype(dtype))


LAWS: dict[str, Law] = {
    "uniform": uniform_law,
    "normal": normal_law,
    "clipped_normal": clipped_normal_law,
}


def runtime(params: Sequence[float], dtype: np.dtype) -> list[jax.Array]:
    """Law parameters as ``dtype`` scalars that XLA cannot constant-fold."""
    values = lax.optimization_barrier(jnp.asarray(params, dtype))  # type: ignore[no-untyped-call]
    return [values[i] for i in range(len(params))]


def draw(
    key: jax.Array, shape: tuple[int, ...], dtype: np.dtype, plan: Plan
) -> jax.Array:
    """Draws ``shape`` values of ``dtype`` by a plan from the ``*_plan`` functions."""
    law, params = plan
    if law == "constant":
        return jnp.full(shape, params[0], dtype)
    draw_dtype = compute_dtype(dtype)
    unit = unit_uniform(key, shape, draw_dtype)
    if law == "truncated":
        return _truncated_law(unit, params, dtype)
    return LAWS[law](unit, runtime(params, draw_dtype), dtype)


def constant_plan(owner: str, dtype: np.dtype, value: float) -> Plan:
    """The constant ``value`` of a floating ``dtype``; errors if it overflows."""
    check_representable(owner, "val", value, dtype)
    return "constant", (value,)


def uniform_plan(owner: str, dtype: np.dtype, a: float, b: float) -> Plan:
    """The plan of ``U[a, b)`` drawn in ``dtype``: ``uniform_law``'s parameters.

    Every value v satisfies a <= v < b for the Python floats a, b: values are
    clipped to [lo, hi], the dtype values inside [a, b); ValueError
    if a bound overflows the dtype, if there is no such value or if the interval
    is too wide for the draw dtype.
    """
    if a == b:
        return constant_plan(owner, dtype, a)
    check_representable(owner, "a", a, dtype)
    check_representable(owner, "b", b, dtype)
    lo, hi = round_up(a, dtype), round_down(b, dtype, strict=True)
    if lo > hi:
        raise ValueError(
            f"{owner}: no {dtype.name} value lies in [a, b) = [{a}, {b}); widen the "
            "interval or use a wider dtype"
        )
    return "uniform", (a, _width(owner, dtype, a, b), float(lo), float(hi))


def _width(owner: str, dtype: np.dtype, a: float, b: float) -> float:
    """``b - a``; ValueError if the draw dtype cannot hold it."""
    draw_dtype = compute_dtype(dtype)
    width = b - a
    largest = float(np.finfo(draw_dtype).max)  # float32 or float64: numpy knows both
    if width > largest:
        raise ValueError(
            f"{owner}: b - a = {width} exceeds the largest {draw_dtype.name} "
            f"({largest}); narrow the interval"
        )
    return width


def normal(
    owner: str,
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: np.dtype,
    mean: float,
    std: float,
) -> jax.Array:
    """N(mean, std**2), untruncated, drawn at float32 and rounded."""
    return draw(key, shape, dtype, normal_plan(owner, dtype, mean, std))


def normal_plan(owner: str, dtype: np.dtype, mean: float, std: float) -> Plan:
    """The plan of N(mean, std**2) in ``dtype``; errors if it cannot be drawn.

    ``normal_law`` takes ``std * sqrt(2)`` rounded to the draw dtype, the
    product XLA used to fold from constants, so the values are those of
    ``mean + std * jax.random.normal``.
    """
    check_normal(owner, dtype, mean, std)
    if std == 0:
        return constant_plan(owner, dtype, mean)
    draw_type = compute_dtype(dtype).type
    with np.errstate(over="ignore", under="ignore"):
        scale = float(draw_type(std) * draw_type(math.sqrt(2.0)))
    return "normal", (mean, scale)


def check_normal(owner: str, dtype: np.dtype, mean: float, std: float) -> None:
    """Raises ValueError if N(mean, std**2) cannot be drawn in ``dtype``."""
    check_representable(owner, "mean", mean, dtype)
    _check_reach(owner, dtype, mean, std, _NORMAL_REACH[compute_dtype(dtype)])


def _phi(x: float) -> float:
    """Standard normal CDF in float64, accurate in the lower tail."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _erf(z: float) -> float:
    """``erf(z / sqrt(2)) = 2 Phi(z) - 1``, accurate near 0."""
    return math.erf(z / math.sqrt(2.0))


def interval_mass(alpha: float, beta: float) -> float:
    """``Phi(beta) - Phi(alpha)`` without cancellation.

    Tail differences on one side of 0, half a sum of two erfs across it.
    """
    if alpha >= 0:
        return _phi(-alpha) - _phi(-beta)
    if beta <= 0:
        return _phi(beta) - _phi(alpha)
    return (_erf(beta) - _erf(alpha)) / 2


def is_unreachable(alpha: float, beta: float) -> bool:
    """Whether a plain normal never reaches the standardized bounds (clip only)."""
    return alpha <= -_UNREACHABLE_STD and beta >= _UNREACHABLE_STD


def is_flat(alpha: float, beta: float, width: float, draw_dtype: np.dtype) -> bool:
    """Whether the density is flat across ``[alpha, beta]`` for the draw dtype.

    Flat: ``z**2 / 2`` varies by at most half the draw dtype's epsilon over the
    interval (``width = beta - alpha``, computed unrounded). The law is then
    ``U[a, b]``: its CDF differs from the truncated normal's by less than a
    quarter of that, below the resolution of the uniform draws.
    """
    nearest = 0.0 if alpha <= 0 <= beta else min(abs(alpha), abs(beta))
    farthest = max(abs(alpha), abs(beta))
    # The spread of z**2 / 2 over the interval, written to not cancel.
    spread = farthest**2 / 2 if nearest == 0 else width * (farthest + nearest) / 2
    return spread <= float(np.finfo(draw_dtype).eps) / 2


# Where the truncated sampler switches from the quantile of 2 Phi(z) - 1 around
# the mean to the tail quantiles: |2 Phi(z) - 1| = 1/2, |z| = 0.674.
_CENTRE = 0.5


def trunc_normal_plan(
    owner: str, dtype: np.dtype, mean: float, std: float, a: float, b: float
) -> Plan:
    """The plan of N(mean, std**2) conditioned on [a, b] (``a <= b``) in ``dtype``.

    Every value v satisfies a <= v <= b. A constant when ``a == b``;
    ``U[a, b]`` (the ``uniform`` law, clipped to the dtype values in [a, b])
    when the density is flat across the interval; a clipped normal when both
    bounds are beyond 9 std; the inverse CDF otherwise.
    ValueError if ``mean`` or a bound the draws reach overflows ``dtype``, if no
    ``dtype`` value lies in [a, b], if the draw dtype cannot resolve the
    interval's probability, or if draws on an unbounded side can overflow.
    """
    check_representable(owner, "mean", mean, dtype)
    if a == b:
        return constant_plan(owner, dtype, a)
    lo, hi = round_up(a, dtype), round_down(b, dtype)
    if lo > hi:
        raise ValueError(
            f"{owner}: no {dtype.name} value lies in [a, b] = [{a}, {b}]; widen the "
            "interval or use a wider dtype"
        )
    alpha, beta = (a - mean) / std, (b - mean) / std
    draw_dtype = compute_dtype(dtype)
    clip = (float(lo), float(hi))
    if is_flat(alpha, beta, (b - a) / std, draw_dtype):
        _check_reach(owner, dtype, mean, std, math.inf, a, b)
        return "uniform", (a, _width(owner, dtype, a, b), *clip)
    if std > float(np.finfo(draw_dtype).max):
        raise ValueError(
            f"{owner}: std={std:g} exceeds the largest {draw_dtype.name}, in which "
            f"the law (not flat across [a, b] = [{a}, {b}]) is drawn; enable "
            "jax_enable_x64 and ask for float64"
        )
    if is_unreachable(alpha, beta):
        _check_reach(owner, dtype, mean, std, _NORMAL_REACH[draw_dtype], a, b)
        return "clipped_normal", (mean, std, *clip, alpha, beta)
    mass = interval_mass(alpha, beta)
    if mass < _MIN_MASS[draw_dtype]:
        raise ValueError(
            f"{owner}: [a, b] = [{a}, {b}] lies so far in the tail of N({mean}, "
            f"{std}**2) (standardized [{alpha:.4g}, {beta:.4g}]) that "
            f"{draw_dtype.name} "
            "cannot resolve its probability; enable jax_enable_x64 and ask for "
            "float64, or move mean closer to the interval"
        )
    # The farthest quantile the sampler reaches (u is at least eps / 2 from 0, 1).
    far = mass * float(np.finfo(draw_dtype).eps) / 2
    reach = 1.01 * max(_NORMAL_REACH[draw_dtype], -statistics.NormalDist().inv_cdf(far))
    _check_reach(owner, dtype, mean, std, reach, a, b)
    # The centre form anchors 2 Phi(z) - 1 at the bound nearer the mean.
    erf_alpha, erf_beta = _erf(alpha), _erf(beta)
    upper_anchor = abs(erf_beta) < abs(erf_alpha)
    forms = (
        erf_alpha < -_CENTRE,
        erf_alpha < _CENTRE and erf_beta > -_CENTRE,
        erf_beta > _CENTRE,
    )
    return "truncated", (
        mean, std, *clip, alpha, beta,
        _phi(alpha), _phi(-beta), mass,
        erf_beta if upper_anchor else erf_alpha, float(upper_anchor),
        *(float(form) for form in forms),
    )  # fmt: skip


def _truncated_law(
    unit: jax.Array, params: tuple[float, ...], dtype: np.dtype
) -> jax.Array:
    """The inverse CDF of the standard normal truncated to [alpha, beta].

    ``u`` is taken at the midpoints of the uniform grid, in (0, 1): ``u == 0``
    would give ``ndtri(0) = -inf`` for ``alpha = -inf``. Each quantile is formed
    where it keeps its precision: ``Phi(alpha) + mass * u`` in the lower tail,
    ``Phi(-beta) + mass * (1 - u)`` in the upper (no ``1 - q`` rounding, the
    cause of jax.random.truncated_normal's values at the bound), and
    ``t = 2 Phi(z) - 1``, anchored at the bound nearer the mean, around the
    mean, where ``Phi`` itself is near 1/2 and a small mass would cancel.
    """
    upper_anchor, *forms = (bool(flag) for flag in params[10:])
    lower, centre, upper = forms
    p = runtime(params[:10], unit.dtype)
    mean, std, lo, hi, alpha, beta, phi_alpha, phi_minus_beta, mass, anchor = p
    u = unit + float(np.finfo(unit.dtype).eps) / 2
    # Without the centre form the interval lies in one tail: one form only.
    if lower and not centre:
        z = ndtri(phi_alpha + mass * u)
    elif upper and not centre:
        z = -ndtri(phi_minus_beta + mass * (1 - u))
    else:
        t = anchor - 2 * mass * (1 - u) if upper_anchor else anchor + 2 * mass * u
        z = jnp.multiply(np.array(np.sqrt(2), unit.dtype), lax.erf_inv(t))
        if lower and upper:  # one ndtri for both tails
            in_lower = t < 0
            tail = ndtri(
                jnp.where(
                    in_lower, phi_alpha + mass * u, phi_minus_beta + mass * (1 - u)
                )
            )
            z = jnp.where(abs(t) > _CENTRE, jnp.where(in_lower, tail, -tail), z)
        elif lower:
            z = jnp.where(t < -_CENTRE, ndtri(phi_alpha + mass * u), z)
        elif upper:
            z = jnp.where(t > _CENTRE, -ndtri(phi_minus_beta + mass * (1 - u)), z)
    z = jnp.clip(z, alpha, beta)
    return jnp.clip((mean + std * z).astype(dtype), lo.astype(dtype), hi.astype(dtype))
