"""timm's initializers (``timm.layers.weight_init``) with timm's semantics.

``trunc_normal_tf`` is ``trunc_normal`` with its bounds given in units of ``std``;
``variance_scaling`` and ``lecun_normal`` are the fan-scaled engine
(``_scaled._FanScaled``) with timm's modes and distributions.
"""

import dataclasses
import math

from jax.typing import DTypeLike

from . import _checks
from ._base import dtype_field, factory, layout_fields
from ._basic import _Normal, _TruncNormal, trunc_bounds
from ._scaled import _FanScaled
from ._typing import Axes, Initializer

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


@dataclasses.dataclass(frozen=True, repr=False)
class _VarianceScaling(_FanScaled):
    distribution: str = "normal"
    scale: float = 1.0
    mode: str = "fan_in"
    dtype: str | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return "variance_scaling"

    def std(self, fan_in: int, fan_out: int) -> float:
        if self.mode == "fan_in":
            denominator: float = fan_in
        elif self.mode == "fan_out":
            denominator = fan_out
        else:
            denominator = (fan_in + fan_out) / 2
        return math.sqrt(self.scale / denominator)


def _variance_scaling(
    owner: str,
    scale: float,
    mode: str,
    distribution: str,
    layout: str,
    in_axis: Axes | None,
    out_axis: Axes | None,
    batch_axis: Axes,
    dtype: DTypeLike | None,
) -> Initializer:
    return _VarianceScaling(
        scale=_checks.real(
            owner, "scale", scale, minimum=0.0, allowed="a finite number >= 0"
        ),
        mode=_checks.choice(owner, "mode", mode, _MODES),
        distribution=_checks.choice(
            owner, "distribution", distribution, _DISTRIBUTIONS
        ),
        dtype=dtype_field(owner, dtype, exact_ok=False),
        **layout_fields(owner, layout, in_axis, out_axis, batch_axis),
    )


@factory
def trunc_normal_tf(
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws timm's ``trunc_normal_tf_``.

    A standard normal truncated to ``[a, b]``, then scaled by ``std`` and shifted
    by ``mean``: ``N(mean, std**2)`` truncated to ``[mean + a * std, mean + b *
    std]``. The bounds are in units of ``std`` around ``mean``, as in TensorFlow
    and JAX; torch's and timm's ``trunc_normal_`` (:func:`trunc_normal`) take
    absolute bounds. The result *is* that ``trunc_normal``, with the bounds
    converted (its ``repr`` shows them); ``std=0`` gives the constant ``mean``,
    as timm, and is ``normal(mean, 0.0)``.

    Differs from ``jax.nn.initializers.truncated_normal(stddev, lower, upper)``
    (the same bounds in units of ``stddev``): torch's defaults (``std=1``), a
    ``mean``, and an exact law with values never piled at a bound.

    Args:
        mean: the mean of the untruncated normal, finite.
        std: its standard deviation, finite and ``>= 0``.
        a: lower bound in units of ``std`` from ``mean``; may be ``-inf``.
        b: upper bound in units of ``std`` from ``mean``, ``>= a``; may be ``inf``.
        layout: accepted for a uniform signature; the law is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: a parameter is not a real number.
        ValueError: NaN, infinite ``mean``/``std``, ``std < 0``, ``a > b``, or
            bounds ``mean + a * std``, ``mean + b * std`` beyond the float range;
            at call time, as :func:`trunc_normal`.

    Examples:
        >>> import jax, jaxinit
        >>> init = jaxinit.trunc_normal_tf(std=0.02)  # cut at 2 std: +-0.04
        >>> init
        jaxinit.trunc_normal(mean=0.0, std=0.02, a=-0.04, b=0.04, dtype=None)
        >>> w = init(jax.random.key(0), (256, 256))
        >>> bool((abs(w) <= 0.04).all())
        True

    References:
        timm's ``timm.layers.weight_init.trunc_normal_tf_``.
    """
    owner = "trunc_normal_tf"
    layout_fields(owner, layout, in_axis, out_axis, batch_axis)
    center = _checks.real(owner, "mean", mean)
    spread = _checks.real(
        owner, "std", std, minimum=0.0, allowed="a finite number >= 0"
    )
    low, high = trunc_bounds(owner, a, b)
    dtype_name = dtype_field(owner, dtype, exact_ok=False)
    if spread == 0:
        return _Normal(mean=center, std=0.0, dtype=dtype_name)
    lower, upper = center + low * spread, center + high * spread
    if math.isinf(lower) > math.isinf(low) or math.isinf(upper) > math.isinf(high):
        raise ValueError(
            f"{owner}: the bounds mean + a * std, mean + b * std must be finite "
            f"for finite a, b, got [{lower}, {upper}] (mean={center}, std={spread}, "
            f"a={low}, b={high})"
        )
    return _TruncNormal(mean=center, std=spread, a=lower, b=upper, dtype=dtype_name)


@factory
def variance_scaling(
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "normal",
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws timm's ``variance_scaling_``.

    ``variance = scale / n`` with ``n`` the weight's ``fan_in``, ``fan_out`` or
    their mean (``mode="fan_avg"``), from torch's fans. Every distribution has
    std ``sqrt(variance)``:

    - ``"normal"`` (timm's default): ``N(0, variance)``, untruncated;
    - ``"truncated_normal"``: ``N(0, s**2)`` truncated to ``[-2 s, 2 s]`` with
      ``s = sqrt(variance) / 0.87962566103423978`` (the std of a standard normal
      cut at +-2), i.e. ``trunc_normal_tf(std=s)``;
    - ``"uniform"``: ``U[-bound, bound)`` with ``bound = sqrt(3 * variance)``.

    A zero-element shape gives an empty array (timm divides by a zero fan).

    Layout: ``layout="flax"`` (default) reads a kernel ``(*spatial, in, out)``:
    ``fan_in = in * prod(spatial)``, ``fan_out = out * prod(spatial)``.
    ``layout="torch"`` reads a weight ``(out, in, *spatial)``. ``in_axis``,
    ``out_axis`` and ``batch_axis`` override the layout for other kernels.

    Differs from ``jax.nn.initializers.variance_scaling(scale, mode,
    distribution)``: the same laws (the same 0.8796 constant) and, in Flax
    layout, the same fans, but timm's defaults (jax has none), no
    ``"fan_geo_avg"`` mode and no complex dtypes; a bad ``mode`` or
    ``distribution`` raises here, at factory time, not when called.

    Args:
        scale: the variance scale, finite and ``>= 0``.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"`` (case-sensitive, as
            timm).
        distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes, overriding the layout.
        batch_axis: axes of independent copies, left out of the fans.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``scale`` is not a real number, or ``mode`` or
            ``distribution`` not a string.
        ValueError: ``scale`` NaN, infinite or negative, an unknown ``mode`` or
            ``distribution``; at call time, rank < 2.

    Examples:
        >>> import math, jax, jaxinit
        >>> init = jaxinit.variance_scaling(2.0, "fan_out", "uniform")
        >>> w = init(jax.random.key(0), (3, 3, 16, 32))  # fan_out 32 * 9 = 288
        >>> bool((abs(w) < math.sqrt(3 * 2.0 / 288)).all())
        True

    References:
        timm's ``timm.layers.weight_init.variance_scaling_``.
    """
    return _variance_scaling(
        "variance_scaling",
        scale,
        mode,
        distribution,
        layout,
        in_axis,
        out_axis,
        batch_axis,
        dtype,
    )


@factory
def lecun_normal(
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws timm's ``lecun_normal_``.

    ``variance_scaling(1.0, "fan_in", "truncated_normal")``, which it returns:
    a normal cut at +-2 of its own std and rescaled to std ``1 / sqrt(fan_in)``,
    so every value lies within ``+-2.27 / sqrt(fan_in)``. timm uses it for the
    convolutions of its JAX-style ViT init (``init_weight_jax``).

    Layout: ``layout="flax"`` (default) reads a kernel ``(*spatial, in, out)``:
    ``fan_in = in * prod(spatial)``. ``layout="torch"`` reads a weight ``(out, in,
    *spatial)``. ``in_axis``, ``out_axis`` and ``batch_axis`` override the layout.

    Differs from ``jax.nn.initializers.lecun_normal()`` (Flax's default kernel
    init) only in its signature: the same law and, in Flax layout, the same fans;
    ``layout="torch"`` reads torch weights, and the axes are keyword-only.

    Args:
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes, overriding the layout.
        batch_axis: axes of independent copies, left out of the fans.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer`` equal to
        ``variance_scaling(1.0, "fan_in", "truncated_normal")``.

    Raises:
        ValueError: at call time, rank < 2.

    Examples:
        >>> import jax, jaxinit
        >>> w = jaxinit.lecun_normal()(jax.random.key(0), (3, 3, 16, 32))
        >>> bool((abs(w) <= 2 / 0.87962566103423978 / 144**0.5).all())  # fan_in 144
        True

    References:
        LeCun et al., Efficient BackProp, 1998. timm's
        ``timm.layers.weight_init.lecun_normal_``.
    """
    return _variance_scaling(
        "lecun_normal",
        1.0,
        "fan_in",
        "truncated_normal",
        layout,
        in_axis,
        out_axis,
        batch_axis,
        dtype,
    )
