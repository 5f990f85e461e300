"""Validation of parameters, keys, shapes and dtypes, with torch's error types.

Every message names the initializer and the parameter, and says what is allowed.
"""

import functools
import math
import numbers
import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from . import _compat

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _is_real_number(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, numbers.Real):
        return True
    if getattr(value, "ndim", None) != 0 or isinstance(value, jax.core.Tracer):
        return False
    try:
        dtype = np.dtype(getattr(value, "dtype", None))
    except TypeError:
        return False
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))


def real(
    owner: str,
    name: str,
    value: object,
    *,
    allow_inf: bool = False,
    minimum: float | None = None,
    allowed: str = "a finite real number",
) -> float:
    """Returns ``value`` as a float, or raises TypeError/ValueError naming it."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{owner}: {name} must be a concrete Python number, not a traced value; "
            "hyperparameters are static, pass them outside jit"
        )
    if not _is_real_number(value):
        raise TypeError(
            f"{owner}: {name} must be {allowed}, got {value!r} "
            f"of type {type(value).__name__}"
        )
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond the float range, such as 10**400
        raise ValueError(f"{owner}: {name} must be {allowed}, got {value}") from None
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{owner}: {name} must be {allowed}, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{owner}: {name} must be {allowed}, got {number}")
    return number


def as_index(value: object) -> int | None:
    """``value`` as an int if ``operator.index`` takes it (numpy integers too).

    None for anything else, bools included (torch and jax reject them as sizes).
    """
    if isinstance(value, bool | np.bool_):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def integer(owner: str, name: str, value: object, *, minimum: int) -> int:
    """Returns ``value`` as an int >= minimum, or raises TypeError/ValueError."""
    number = as_index(value)
    if number is None:
        raise TypeError(
            f"{owner}: {name} must be an integer >= {minimum}, got {value!r} "
            f"of type {type(value).__name__}"
        )
    if number < minimum:
        raise ValueError(
            f"{owner}: {name} must be an integer >= {minimum}, got {value}"
        )
    return number


def choice(owner: str, name: str, value: object, options: Sequence[str]) -> str:
    """Returns ``value`` if it is one of ``options``, else raises."""
    if not isinstance(value, str):
        raise TypeError(
            f"{owner}: {name} must be a string, one of {list(options)}, got {value!r}"
        )
    if value not in options:
        raise ValueError(
            f"{owner}: {name} must be one of {list(options)}, got {value!r}"
        )
    return value


def key(owner: str, value: object) -> jax.Array:
    """Checks that ``value`` is one PRNG key (typed or raw) and returns it."""
    hint = "make one with jax.random.key(0), or split one with jax.random.split"
    if not isinstance(value, jax.Array):
        raise TypeError(
            f"{owner}: key must be a JAX PRNG key, got {value!r} of type "
            f"{type(value).__name__}; {hint}"
        )
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        if value.shape != ():
            raise ValueError(
                f"{owner}: key must be a single PRNG key, got a batch of keys of shape "
                f"{value.shape}; map over keys with jax.vmap"
            )
        return value
    if value.dtype == jnp.uint32 and value.ndim == 1 and not _raw_key_fits(value.shape):
        raise TypeError(
            f"{owner}: key must be a JAX PRNG key, got a uint32 array of shape "
            f"{value.shape}, which is not a raw key of the default PRNG "
            f"({_prng_impl()}); {hint}"
        )
    if value.dtype != jnp.uint32 or value.ndim != 1:
        if value.dtype == jnp.uint32 and value.ndim > 1:
            raise ValueError(
                f"{owner}: key must be a single PRNG key, got a batch of raw keys of "
                f"shape {value.shape}; map over keys with jax.vmap"
            )
        raise TypeError(
            f"{owner}: key must be a JAX PRNG key, got an array of dtype "
            f"{value.dtype} and shape {value.shape}; {hint}"
        )
    return value


def _raw_key_fits(key_shape: tuple[int, ...]) -> bool:
    return _raw_key_fits_impl(key_shape, _prng_impl())


def _prng_impl() -> str:
    return str(jax.config.jax_default_prng_impl)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=32)
def _raw_key_fits_impl(key_shape: tuple[int, ...], impl: str) -> bool:
    """Whether uint32 data of ``key_shape`` is one raw key of the default PRNG."""
    try:
        jax.eval_shape(
            lambda: jax.random.wrap_key_data(jnp.zeros(key_shape, jnp.uint32))
        )
    except TypeError:
        return False
    return True


def shape(owner: str, value: object) -> tuple[int, ...]:
    """Returns ``value`` as a tuple of non-negative Python ints, or raises."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        raise TypeError(
            f"{owner}: shape must be a sequence of ints such as (3, 5), got the int "
            f"{value}; write ({value},) for a 1-D shape"
        )
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{owner}: shape must be a sequence of ints such as (3, 5), got {value!r}"
        )
    dims = []
    for item in value:
        dim = as_index(item)
        if dim is None:
            raise TypeError(
                f"{owner}: shape must contain only ints, got {item!r} in {value!r}"
            )
        if dim < 0:
            raise ValueError(
                f"{owner}: shape must contain non-negative dimensions, got "
                f"{tuple(value)}"
            )
        dims.append(dim)
    # XLA multiplies the dimensions in int64 even when one is 0 (and aborts the
    # process on overflow), so the product of the non-zero ones must fit too.
    extent = math.prod(dim for dim in dims if dim)
    if extent > np.iinfo(np.int64).max:
        raise ValueError(
            f"{owner}: shape {tuple(dims)} has dimensions whose product {extent} is "
            "more than an array can hold (2**63 - 1)"
        )
    return tuple(dims)


def dtype(
    owner: str, value: DTypeLike | None, *, exact_ok: bool, check_x64: bool = True
) -> np.dtype:
    """Resolves ``value`` (None means float32) to a supported numpy dtype.

    Random initializers take float16, bfloat16, float32 and float64. The exact ones
    (constant, zeros, ones, eye, dirac) also take integer, bool and complex dtypes,
    as torch does.
    """
    if value is None:
        return np.dtype(np.float32)
    try:
        resolved = jnp.dtype(value)
    except TypeError as error:
        raise TypeError(f"{owner}: dtype {value!r} is not a dtype") from error
    numeric = jnp.issubdtype(resolved, jnp.number) or resolved == np.bool_
    if exact_ok and not numeric:
        raise TypeError(
            f"{owner}: dtype must be a numeric or bool dtype (floating, integer, "
            f"complex or bool), got {resolved.name}"
        )
    if not exact_ok and resolved.name not in FLOAT_DTYPES:
        raise TypeError(
            f"{owner}: dtype must be a floating dtype, one of {list(FLOAT_DTYPES)}, "
            f"got {resolved.name}; random initializers do not draw integer, bool or "
            "complex values"
        )
    if check_x64 and np.dtype(jax.dtypes.canonicalize_dtype(resolved)) != resolved:
        raise ValueError(
            f"{owner}: dtype {resolved.name} needs 64-bit mode, which is off, so jax "
            "would silently return a 32-bit array; enable it with "
            "jax.config.update('jax_enable_x64', True) or ask for a 32-bit dtype"
        )
    return np.dtype(resolved)


def sharding_fits(
    owner: str,
    name: str,
    shape: tuple[int, ...],
    sharding: object,
) -> None:
    """Raises ValueError when ``sharding`` cannot hold an array of ``shape``.

    A partition spec longer than the rank, or an axis whose size the mesh axes
    it is split over do not divide, would otherwise be padded or replicated
    silently. ``sharding`` is a ``NamedSharding``, a ``PartitionSpec`` (on the
    current mesh) or any other ``jax.sharding.Sharding``.
    """
    if sharding is None:
        return
    if isinstance(sharding, jax.sharding.PartitionSpec):
        spec, axis_sizes = sharding, _compat.context_mesh_axes()
    elif isinstance(sharding, jax.sharding.NamedSharding):
        spec, axis_sizes = sharding.spec, dict(sharding.mesh.shape)
    elif isinstance(sharding, jax.sharding.Sharding):
        try:
            sharding.shard_shape(shape)
        except (ValueError, IndexError, TypeError) as error:
            raise ValueError(
                f"{owner}: {name} {sharding} cannot hold an array of shape "
                f"{shape}: {error}"
            ) from None
        return
    else:
        raise TypeError(
            f"{owner}: {name} must be a jax.sharding.Sharding or a "
            f"PartitionSpec, got {sharding!r} of type {type(sharding).__name__}"
        )
    if len(spec) > len(shape):
        raise ValueError(
            f"{owner}: {name} {spec} has {len(spec)} entries but the shape "
            f"{shape} has rank {len(shape)}; give at most one entry per axis"
        )
    for axis, entry in enumerate(spec):
        names = entry if isinstance(entry, tuple) else (entry,)
        names = tuple(n for n in names if isinstance(n, str))
        if any(n not in axis_sizes for n in names):
            continue  # jax names the unknown mesh axis itself
        parts = math.prod(axis_sizes[n] for n in names)
        if shape[axis] % parts:
            raise ValueError(
                f"{owner}: {name} {spec} splits axis {axis} of shape {shape} "
                f"into {parts} parts, which do not divide its size "
                f"{shape[axis]}; use a spec whose mesh axes divide every "
                "sharded axis, or None for that axis"
            )
