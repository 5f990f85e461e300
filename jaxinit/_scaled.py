"""Fan-scaled initializers: Xavier/Glorot and Kaiming/He, with torch's semantics.

One engine, ``_FanScaled``: the std is ``gain * sqrt(k / fan)`` from the weight's
fans, drawn uniform (bound ``sqrt(3) * std``), normal (untruncated) or, for timm's
``variance_scaling`` (``_timm``), a normal cut at +-2 of its own std and rescaled.
"""

import dataclasses
import math
import warnings
from typing import Any, ClassVar

import jax
import numpy as np
from jax.typing import DTypeLike

from . import _checks, _sampling
from ._base import LayoutInitializer, dtype_field, factory, layout_fields
from ._gain import NONLINEARITIES, calculate_gain
from ._typing import Axes, Initializer

_DISTRIBUTIONS = ("uniform", "normal")
_MODES = ("fan_in", "fan_out")
# The std of a standard normal truncated to [-2, 2] (timm's and jax's constant).
TRUNCATED_STD = 0.87962566103423978


@dataclasses.dataclass(frozen=True, repr=False)
class _FanScaled(LayoutInitializer):
    """Draws with std computed from the fans of the shape."""

    family: ClassVar[str]
    distribution: str = dataclasses.field(default="uniform", repr=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.family}_{self.distribution}"

    def std(self, fan_in: int, fan_out: int) -> float:
        """The target standard deviation for the given fans."""
        raise NotImplementedError

    def law(self, shape: tuple[int, ...], dtype: np.dtype) -> _sampling.Plan:
        """The sampler's plan for ``shape``: the law of every entry, with ``std``."""
        fan_in, fan_out = self.axes(shape).fans(shape)
        std = self.std(fan_in, fan_out)
        if self.distribution == "normal":
            return _sampling.normal_plan(self.name, dtype, 0.0, std)
        if self.distribution == "truncated_normal":
            # N(0, s**2) cut at +-2 s, where s makes the cut law's std ``std``.
            scale = std / TRUNCATED_STD
            if scale == 0:
                return _sampling.constant_plan(self.name, dtype, 0.0)
            low, high = -2.0 * scale, 2.0 * scale
            return _sampling.trunc_normal_plan(self.name, dtype, 0.0, scale, low, high)
        bound = math.sqrt(3.0) * std
        return _sampling.uniform_plan(self.name, dtype, -bound, bound)

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        return _sampling.draw(key, shape, dtype, self.law(shape, dtype))


@dataclasses.dataclass(frozen=True, repr=False)
class _Xavier(_FanScaled):
    family = "xavier"
    gain: float = 1.0
    dtype: str | None = None

    def std(self, fan_in: int, fan_out: int) -> float:
        return self.gain * math.sqrt(2.0 / (fan_in + fan_out))


@dataclasses.dataclass(frozen=True, repr=False)
class _Kaiming(_FanScaled):
    family = "kaiming"
    a: float | None = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    dtype: str | None = None

    def std(self, fan_in: int, fan_out: int) -> float:
        fan = fan_in if self.mode == "fan_in" else fan_out
        return calculate_gain(self.nonlinearity, self.a) / math.sqrt(fan)

    def warn_empty(self) -> None:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=4)


def _gain(owner: str, gain: object) -> float:
    return _checks.real(
        owner, "gain", gain, minimum=0.0, allowed="a finite number >= 0"
    )


def _xavier(
    distribution: str,
    gain: float,
    layout: str,
    in_axis: Axes | None,
    out_axis: Axes | None,
    batch_axis: Axes,
    dtype: DTypeLike | None,
) -> Initializer:
    owner = f"xavier_{distribution}"
    return _Xavier(
        distribution=distribution,
        gain=_gain(owner, gain),
        dtype=dtype_field(owner, dtype, exact_ok=False),
        **layout_fields(owner, layout, in_axis, out_axis, batch_axis),
    )


def _kaiming(
    distribution: str,
    a: float | None,
    mode: str,
    nonlinearity: str,
    layout: str,
    in_axis: Axes | None,
    out_axis: Axes | None,
    batch_axis: Axes,
    dtype: DTypeLike | None,
) -> Initializer:
    owner = f"kaiming_{distribution}"
    if a is not None:
        a = _checks.real(owner, "a", a, allowed="a finite number (the negative slope)")
    if not isinstance(mode, str):
        raise TypeError(
            f"{owner}: mode must be a string, one of {list(_MODES)}, got {mode!r}"
        )
    if mode.lower() not in _MODES:
        raise ValueError(
            f"{owner}: Mode {mode.lower()} not supported, please use one of "
            f"{list(_MODES)}"
        )
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"{owner}: Unsupported nonlinearity {nonlinearity}; nonlinearity must be "
            f"one of {', '.join(NONLINEARITIES)}"
        )
    calculate_gain(nonlinearity, a)  # validates the slope as torch does
    return _Kaiming(
        distribution=distribution,
        a=a,
        mode=mode.lower(),
        nonlinearity=nonlinearity,
        dtype=dtype_field(owner, dtype, exact_ok=False),
        **layout_fields(owner, layout, in_axis, out_axis, batch_axis),
    )


@factory
def xavier_uniform(
    gain: float = 1.0,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws Glorot's uniform law ``U[-bound, bound)``.

    ``bound = gain * sqrt(6 / (fan_in + fan_out))``, as
    ``torch.nn.init.xavier_uniform_``. A zero-element shape gives an empty array.

    Layout: ``layout="flax"`` (default) reads a kernel ``(*spatial, in, out)``:
    ``fan_in = in * prod(spatial)``, ``fan_out = out * prod(spatial)``.
    ``layout="torch"`` reads a weight ``(out, in, *spatial)``. ``in_axis``,
    ``out_axis`` and ``batch_axis`` override the layout for other kernels.

    Differs from ``jax.nn.initializers.xavier_uniform()``/``glorot_uniform()``:
    those take no ``gain`` (the same law when ``gain=1``).

    Args:
        gain: scaling factor, finite and ``>= 0``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes, overriding the layout.
        batch_axis: axes of independent copies, left out of the fans.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``gain`` is not a real number.
        ValueError: ``gain`` NaN, infinite or negative; at call time, rank < 2.

    Examples:
        >>> import math, jax, jaxinit
        >>> w = jaxinit.xavier_uniform()(jax.random.key(0), (64, 32))
        >>> bound = math.sqrt(6 / (64 + 32))
        >>> bool((abs(w) <= bound).all())
        True

    References:
        Glorot & Bengio, `Understanding the difficulty of training deep
        feedforward neural networks <http://proceedings.mlr.press/v9/glorot10a.html>`_,
        2010. ``torch.nn.init.xavier_uniform_``.
    """
    return _xavier("uniform", gain, layout, in_axis, out_axis, batch_axis, dtype)


@factory
def xavier_normal(
    gain: float = 1.0,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws Glorot's normal law ``N(0, std**2)``.

    ``std = gain * sqrt(2 / (fan_in + fan_out))``, untruncated, as
    ``torch.nn.init.xavier_normal_``. A zero-element shape gives an empty array.

    Layout: ``layout="flax"`` (default) reads a kernel ``(*spatial, in, out)``:
    ``fan_in = in * prod(spatial)``, ``fan_out = out * prod(spatial)``.
    ``layout="torch"`` reads a weight ``(out, in, *spatial)``. ``in_axis``,
    ``out_axis`` and ``batch_axis`` override the layout for other kernels.

    Differs from ``jax.nn.initializers.xavier_normal()``/``glorot_normal()``,
    which draw a *truncated* normal (cut at 2 std, rescaled) and take no gain.

    Args:
        gain: scaling factor, finite and ``>= 0``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes, overriding the layout.
        batch_axis: axes of independent copies, left out of the fans.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``gain`` is not a real number.
        ValueError: ``gain`` NaN, infinite or negative; at call time, rank < 2.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit
        >>> init = jaxinit.xavier_normal(gain=2.0)
        >>> w = init(jax.random.key(0), (3, 3, 16, 32), jnp.float16)
        >>> w.shape, w.dtype
        ((3, 3, 16, 32), dtype('float16'))

    References:
        Glorot & Bengio 2010. ``torch.nn.init.xavier_normal_``.
    """
    return _xavier("normal", gain, layout, in_axis, out_axis, batch_axis, dtype)


@factory
def kaiming_uniform(
    a: float | None = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws He's uniform law ``U[-bound, bound)``.

    ``bound = gain * sqrt(3 / fan_mode)`` with ``gain = calculate_gain(nonlinearity,
    a)``, as ``torch.nn.init.kaiming_uniform_``. The defaults (``a=0``,
    ``leaky_relu``) give gain ``sqrt(2)``. torch's ``Linear``/``Conv`` default is
    ``kaiming_uniform(a=math.sqrt(5))``, i.e. ``U(+-1/sqrt(fan_in))``. A
    zero-element shape warns (``Initializing zero-element tensors is a no-op``, as
    torch) and gives an empty array.

    Layout: ``layout="flax"`` (default) reads a kernel ``(*spatial, in, out)``:
    ``fan_in = in * prod(spatial)``, ``fan_out = out * prod(spatial)``.
    ``layout="torch"`` reads a weight ``(out, in, *spatial)``. ``in_axis``,
    ``out_axis`` and ``batch_axis`` override the layout for other kernels.

    Differs from ``jax.nn.initializers.kaiming_uniform()``/``he_uniform()``: those
    fix ``fan_in`` and gain ``sqrt(2)``; no slope, mode or nonlinearity.

    Args:
        a: the negative slope of the rectifier after this layer (only read by
            ``leaky_relu``; None means 0.01).
        mode: ``"fan_in"`` (preserve forward variance) or ``"fan_out"``
            (backward); case-insensitive, as torch.
        nonlinearity: a name accepted by ``calculate_gain``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes, overriding the layout.
        batch_axis: axes of independent copies, left out of the fans.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``a`` is not a real number or ``mode`` not a string.
        ValueError: unknown ``mode`` or ``nonlinearity``, non-finite ``a``; at call
            time, rank < 2.

    Examples:
        >>> import math, jax, jaxinit
        >>> init = jaxinit.kaiming_uniform(a=math.sqrt(5))  # torch's nn.Linear default
        >>> w = init(jax.random.key(0), (784, 256))  # Flax Dense kernel (in, out)
        >>> bool((abs(w) <= 1 / 28).all())  # bound 1/sqrt(fan_in) = 1/28
        True

    References:
        He et al., `Delving Deep into Rectifiers <https://arxiv.org/abs/1502.01852>`_,
        2015. ``torch.nn.init.kaiming_uniform_``.
    """
    return _kaiming(
        "uniform", a, mode, nonlinearity, layout, in_axis, out_axis, batch_axis, dtype
    )


@factory
def kaiming_normal(
    a: float | None = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws He's normal law ``N(0, std**2)``.

    ``std = gain / sqrt(fan_mode)`` with ``gain = calculate_gain(nonlinearity, a)``,
    untruncated, as ``torch.nn.init.kaiming_normal_``. A zero-element shape warns
    as torch does and gives an empty array.

    Layout: ``layout="flax"`` (default) reads a kernel ``(*spatial, in, out)``:
    ``fan_in = in * prod(spatial)``, ``fan_out = out * prod(spatial)``.
    ``layout="torch"`` reads a weight ``(out, in, *spatial)``. ``in_axis``,
    ``out_axis`` and ``batch_axis`` override the layout for other kernels.

    Differs from ``jax.nn.initializers.kaiming_normal()``/``he_normal()``, which
    draw a *truncated* normal and fix ``fan_in`` and gain ``sqrt(2)``.

    Args:
        a: the negative slope of the rectifier after this layer (only read by
            ``leaky_relu``; None means 0.01).
        mode: ``"fan_in"`` or ``"fan_out"``; case-insensitive, as torch.
        nonlinearity: a name accepted by ``calculate_gain``.
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes, overriding the layout.
        out_axis: output axis or axes, overriding the layout.
        batch_axis: axes of independent copies, left out of the fans.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``a`` is not a real number or ``mode`` not a string.
        ValueError: unknown ``mode`` or ``nonlinearity``, non-finite ``a``; at call
            time, rank < 2.

    Examples:
        >>> import jax, jaxinit
        >>> init = jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu")
        >>> init(jax.random.key(0), (3, 3, 64, 128)).shape  # Flax Conv kernel
        (3, 3, 64, 128)

    References:
        He et al. 2015. ``torch.nn.init.kaiming_normal_``.
    """
    return _kaiming(
        "normal", a, mode, nonlinearity, layout, in_axis, out_axis, batch_axis, dtype
    )
