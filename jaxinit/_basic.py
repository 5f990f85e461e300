"""Layout-free initializers: uniform, normal, trunc_normal, constant and eye."""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from . import _checks, _sampling
from ._base import InitializerBase, dtype_field, factory, layout_fields
from ._typing import Axes, Initializer


def _check_layout_args(
    owner: str, layout: str, in_axis: object, out_axis: object, batch_axis: object
) -> None:
    # These laws are the same in every layout; the arguments are accepted (and
    # validated) so that every factory has the same signature.
    layout_fields(owner, layout, in_axis, out_axis, batch_axis)


@dataclasses.dataclass(frozen=True, repr=False)
class _Constant(InitializerBase):
    name = "constant"
    needs_key = False
    val: float
    dtype: str | None = None

    def law(self, shape: tuple[int, ...], dtype: np.dtype) -> _sampling.Plan | None:
        if not jnp.issubdtype(dtype, jnp.floating):
            return None  # integers truncate toward zero: its own call fills them
        return _sampling.constant_plan(self.name, dtype, self.val)

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        return _sampling.constant(self.name, self.val, shape, dtype)


@factory
def constant(
    val: float,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that fills the array with ``val``.

    As ``torch.nn.init.constant_``: any dtype works, including integer, bool and
    complex; a float ``val`` written to an integer dtype is truncated toward zero.
    ``val`` must fit the dtype (ValueError otherwise). The key is ignored and may
    be None.

    Args:
        val: the fill value, a real number (NaN is rejected; +-inf is allowed).
        layout: accepted for a uniform signature; the result is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: ``val`` is not a real number (bools included).
        ValueError: ``val`` is NaN.

    Examples:
        >>> import jax, jaxinit
        >>> jaxinit.constant(0.25)(jax.random.key(0), (2, 3))
        Array([[0.25, 0.25, 0.25],
               [0.25, 0.25, 0.25]], dtype=float32)
        >>> jaxinit.constant(0.25)
        jaxinit.constant(val=0.25, dtype=None)
    """
    owner = "constant"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    value = _checks.real(owner, "val", val, allow_inf=True, allowed="a real number")
    return _Constant(val=value, dtype=dtype_field(owner, dtype, exact_ok=True))


@factory
def zeros(
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer of zeros, as ``torch.nn.init.zeros_``.

    Unlike ``jax.nn.initializers.zeros``, which is itself an initializer, this is a
    factory like every jaxinit name: write ``bias_init=jaxinit.zeros()``.

    Args:
        layout: accepted for a uniform signature; the result is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None); any dtype works.

    Returns:
        An ``Initializer`` equal to ``constant(0.0)``.

    Examples:
        >>> import jax, jaxinit
        >>> jaxinit.zeros()(jax.random.key(0), (3,))
        Array([0., 0., 0.], dtype=float32)
    """
    owner = "zeros"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    return _Constant(val=0.0, dtype=dtype_field(owner, dtype, exact_ok=True))


@factory
def ones(
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer of ones, as ``torch.nn.init.ones_``.

    Unlike ``jax.nn.initializers.ones``, this is a factory: ``jaxinit.ones()``.

    Args:
        layout: accepted for a uniform signature; the result is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None); any dtype works.

    Returns:
        An ``Initializer`` equal to ``constant(1.0)``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit
        >>> jaxinit.ones()(None, (2,), jnp.int32)
        Array([1, 1], dtype=int32)
    """
    owner = "ones"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    return _Constant(val=1.0, dtype=dtype_field(owner, dtype, exact_ok=True))


@dataclasses.dataclass(frozen=True, repr=False)
class _Uniform(InitializerBase):
    name = "uniform"
    a: float = 0.0
    b: float = 1.0
    dtype: str | None = None

    def law(self, shape: tuple[int, ...], dtype: np.dtype) -> _sampling.Plan:
        return _sampling.uniform_plan(self.name, dtype, self.a, self.b)

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        return _sampling.draw(key, shape, dtype, self.law(shape, dtype))


@factory
def uniform(
    a: float = 0.0,
    b: float = 1.0,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws from the uniform law ``U[a, b)``.

    As ``torch.nn.init.uniform_``: the interval is half-open, and ``a == b`` gives
    the constant ``a``. Every value satisfies ``a <= v < b`` for the exact Python
    numbers given, in every dtype: float16/bfloat16 are drawn at float32 and
    rounded, so bfloat16 ``U[0, 1)`` has thousands of distinct values (torch has
    ~1800, ``jax.random.uniform`` 128).

    Differs from ``jax.nn.initializers.uniform(scale)``, which draws ``U[0, scale)``
    and cannot set a lower bound.

    Args:
        a: lower bound (inclusive), finite.
        b: upper bound (exclusive), finite, ``>= a``.
        layout: accepted for a uniform signature; the law is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: a bound is not a real number.
        ValueError: a bound is NaN or infinite, or ``a > b``; at call time, a bound
            outside the dtype's range or no dtype value inside ``[a, b)``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit
        >>> w = jaxinit.uniform(-0.5, 0.5)(jax.random.key(0), (64, 32), jnp.bfloat16)
        >>> w.shape, w.dtype
        ((64, 32), dtype(bfloat16))
        >>> bool((w >= -0.5).all() and (w < 0.5).all())
        True

    References:
        ``torch.nn.init.uniform_``.
    """
    owner = "uniform"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    low = _checks.real(owner, "a", a)
    high = _checks.real(owner, "b", b)
    if low > high:
        raise ValueError(
            f"uniform: expects a [a, b) range with a <= b, got a={low} > b={high}"
        )
    return _Uniform(a=low, b=high, dtype=dtype_field(owner, dtype, exact_ok=False))


@dataclasses.dataclass(frozen=True, repr=False)
class _Normal(InitializerBase):
    name = "normal"
    mean: float = 0.0
    std: float = 1.0
    dtype: str | None = None

    def law(self, shape: tuple[int, ...], dtype: np.dtype) -> _sampling.Plan:
        return _sampling.normal_plan(self.name, dtype, self.mean, self.std)

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        return _sampling.draw(key, shape, dtype, self.law(shape, dtype))


@factory
def normal(
    mean: float = 0.0,
    std: float = 1.0,
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer that draws from ``N(mean, std**2)``, untruncated.

    As ``torch.nn.init.normal_``. ``std == 0`` gives the constant ``mean``.
    Low-precision outputs are drawn at float32 and rounded (``jax.random.normal``
    drawn directly in bfloat16 has a variance about 0.6% low).

    Differs from ``jax.nn.initializers.normal(stddev=1e-2)``: torch's defaults
    (mean 0, std 1) and a ``mean`` parameter.

    Args:
        mean: the mean, finite.
        std: the standard deviation, finite and ``>= 0``.
        layout: accepted for a uniform signature; the law is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: a parameter is not a real number.
        ValueError: NaN or infinite parameters, or ``std < 0``.

    Examples:
        >>> import jax, jaxinit
        >>> w = jaxinit.normal(std=0.02)(jax.random.key(0), (256, 256))
        >>> w.shape, w.dtype
        ((256, 256), dtype('float32'))
        >>> bool(abs(float(w.std()) - 0.02) < 0.001)
        True

    References:
        ``torch.nn.init.normal_``.
    """
    owner = "normal"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    return _Normal(
        mean=_checks.real(owner, "mean", mean),
        std=_checks.real(
            owner, "std", std, minimum=0.0, allowed="a finite number >= 0"
        ),
        dtype=dtype_field(owner, dtype, exact_ok=False),
    )


@dataclasses.dataclass(frozen=True, repr=False)
class _TruncNormal(InitializerBase):
    name = "trunc_normal"
    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0
    dtype: str | None = None

    def law(self, shape: tuple[int, ...], dtype: np.dtype) -> _sampling.Plan:
        law = (self.mean, self.std, self.a, self.b)
        return _sampling.trunc_normal_plan(self.name, dtype, *law)

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        return _sampling.draw(key, shape, dtype, self.law(shape, dtype))


def trunc_bounds(owner: str, a: object, b: object) -> tuple[float, float]:
    """Validates truncation bounds: ``a <= b``, ``a`` may be -inf and ``b`` inf."""
    low = _checks.real(owner, "a", a, allow_inf=True, allowed="a real number or -inf")
    high = _checks.real(owner, "b", b, allow_inf=True, allowed="a real number or inf")
    # Only the open side may be infinite: a = +inf or b = -inf leaves no finite value.
    if low == math.inf:
        raise ValueError(f"{owner}: a must be a real number or -inf, got inf")
    if high == -math.inf:
        raise ValueError(f"{owner}: b must be a real number or inf, got -inf")
    if low > high:
        raise ValueError(f"{owner}: expects a <= b, got a={low} > b={high}")
    return low, high


@factory
def trunc_normal(
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
    """Builds an initializer that draws ``N(mean, std**2)`` truncated to ``[a, b]``.

    As ``torch.nn.init.trunc_normal_``: ``a`` and ``b`` are **absolute** values,
    not multiples of ``std``, so ``trunc_normal(std=0.02)`` (bounds +-2, 100 std)
    is in effect untruncated. The law is exact (no mass piled at the bounds) and
    every value satisfies ``a <= v <= b`` in every dtype. ``a = -inf`` or
    ``b = inf`` truncates one side only; ``a == b`` gives the constant ``a``.

    Sampling is by the inverse CDF, computed from whichever tail keeps precision,
    so values never sit at a far bound: ``jax.random.truncated_normal`` with bounds
    at +-100 std puts about one value per 10**7 at the bound. When both bounds are
    beyond 9 std a plain normal is drawn (it cannot reach them).

    Differs from ``jax.nn.initializers.truncated_normal(stddev, lower, upper)``,
    whose bounds are in units of ``stddev``: ``trunc_normal(std=s, a=-2*s, b=2*s)``
    is JAX's ``truncated_normal(s)``.

    Args:
        mean: the mean of the untruncated normal, finite.
        std: its standard deviation, finite and ``> 0``.
        a: lower bound, absolute; may be ``-inf``.
        b: upper bound, absolute, ``>= a``; may be ``inf``.
        layout: accepted for a uniform signature; the law is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        TypeError: a parameter is not a real number.
        ValueError: NaN, infinite ``mean``/``std``, ``std <= 0`` or ``a > b``; at
            call time, no dtype value in ``[a, b]`` or an interval too far in the
            tail for the draw precision.

    Examples:
        >>> import jax, jaxinit
        >>> w = jaxinit.trunc_normal(std=0.02)(jax.random.key(0), (512, 512))
        >>> bool(abs(w).max() < 7 * 0.02)  # bounds +-2 are 100 std away
        True
        >>> w = jaxinit.trunc_normal(a=-0.5, b=1.0)(jax.random.key(1), (1000,))
        >>> bool((w >= -0.5).all() and (w <= 1.0).all())
        True

    References:
        ``torch.nn.init.trunc_normal_``.
    """
    owner = "trunc_normal"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    low, high = trunc_bounds(owner, a, b)
    std_value = _checks.real(owner, "std", std, allowed="a finite number > 0")
    if std_value <= 0:
        raise ValueError(
            f"trunc_normal: std must be a finite number > 0, got {std_value}"
        )
    return _TruncNormal(
        mean=_checks.real(owner, "mean", mean),
        std=std_value,
        a=low,
        b=high,
        dtype=dtype_field(owner, dtype, exact_ok=False),
    )


@dataclasses.dataclass(frozen=True, repr=False)
class _Eye(InitializerBase):
    name = "eye"
    needs_key = False
    dtype: str | None = None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 2:
            raise ValueError(
                f"eye: Only tensors with 2 dimensions are supported; got shape {shape}"
            )

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        return jnp.eye(shape[0], shape[1], dtype=dtype)


@factory
def eye(
    *,
    layout: str = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Builds an initializer of the identity matrix, as ``torch.nn.init.eye_``.

    Ones at ``(i, i)`` for ``i < min(rows, cols)``, zeros elsewhere; 2-D shapes only.
    The same in both layouts: the Flax ``(in, out)`` kernel ``eye(in, out)`` is the
    transposed torch ``(out, in)`` weight ``eye(out, in)``, so a Dense layer keeps
    its first ``min(in, out)`` inputs. Any dtype works; the key is ignored.

    Args:
        layout: accepted for a uniform signature; the result is layout-free.
        in_axis: as ``layout``.
        out_axis: as ``layout``.
        batch_axis: as ``layout``.
        dtype: default output dtype (float32 when None).

    Returns:
        An ``Initializer``.

    Raises:
        ValueError: at call time, a shape that is not 2-D.

    Examples:
        >>> import jaxinit
        >>> jaxinit.eye()(None, (2, 3))
        Array([[1., 0., 0.],
               [0., 1., 0.]], dtype=float32)
    """
    owner = "eye"
    _check_layout_args(owner, layout, in_axis, out_axis, batch_axis)
    return _Eye(dtype=dtype_field(owner, dtype, exact_ok=True))
