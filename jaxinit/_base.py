"""The initializer value type shared by every factory, and the factory guard."""

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from . import _checks, _eager, _fans, _sampling
from ._typing import OutSharding

_LAYOUT_FIELDS = ("layout", "in_axis", "out_axis", "batch_axis")
P = ParamSpec("P")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True, repr=False)
class InitializerBase:
    """A frozen, hashable, picklable initializer: ``init(key, shape, dtype)``.

    Subclasses are frozen dataclasses whose fields are the factory's parameters
    (the last one being ``dtype``, the default output dtype as a name or None) and
    which implement ``_generate``.
    """

    name: ClassVar[str]
    needs_key: ClassVar[bool] = True

    def __call__(
        self,
        key: jax.Array | None,
        shape: Sequence[int],
        dtype: DTypeLike | None = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array:
        """Draws an array of ``shape`` and ``dtype`` (float32 by default)."""
        dims = _checks.shape(self.name, shape)
        requested = dtype if dtype is not None else getattr(self, "dtype", None)
        resolved = _checks.dtype(self.name, requested, exact_ok=not self.needs_key)
        if self.needs_key:
            key = _checks.key(self.name, key)
        else:
            key = None  # exact initializers ignore their key, whatever it is
        self.check_shape(dims)
        _checks.sharding_fits(self.name, "out_sharding", dims, out_sharding)
        if out_sharding is not None and not on_auto_mesh(out_sharding):
            _needs_explicit_sharding(self.name, out_sharding)
        if math.prod(dims) == 0:
            self.warn_empty()
            # jnp.zeros(out_sharding=) on an explicit mesh gives empty arrays
            # whose shards have the full shape (jax 0.10), which break np.asarray;
            # old jax takes no out_sharding= there at all.
            if out_sharding is None or isinstance(out_sharding, jax.sharding.Sharding):
                empty: jax.Array = jax.device_put(
                    jnp.zeros(dims, resolved), out_sharding
                )
                return empty
            return jnp.zeros(dims, resolved, out_sharding=out_sharding)
        if out_sharding is None and _eager.is_concrete(key):
            # Outside any trace, the shape-independent programs draw the laws
            # they can, with the same bits (see _eager).
            drawn = _eager.draw(self.law(dims, resolved), key, dims, resolved)
            if drawn is not None:
                return drawn
        # One compiled program per (initializer, shape, dtype): eager calls run the
        # same XLA code as jitted ones, so both give the same bits.
        result: jax.Array = _generate_jit(self, key, dims, resolved, out_sharding)
        return result

    def law(self, shape: tuple[int, ...], dtype: np.dtype) -> _sampling.Plan | None:
        """The law the shared shape-independent programs draw this leaf by.

        A ``_sampling`` plan: the law and its parameters, or None (the leaf is
        drawn by its own program). ``shape`` and ``dtype`` are validated;
        planning raises the errors the initializer's own call raises for them.
        The draw engine decides which laws and dtypes it draws
        (``_programs.row_plan``).
        """
        return None

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raises ValueError for shapes this initializer does not take."""

    def warn_empty(self) -> None:
        """Called on zero-element shapes (torch's kaiming_* warns there)."""

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        raise NotImplementedError

    def _generate_sharded(
        self,
        key: Any,
        shape: tuple[int, ...],
        dtype: np.dtype,
        out_sharding: OutSharding,
    ) -> jax.Array:
        """Draws the array placed on ``out_sharding`` (traced, inside a jit).

        Draws as if unsharded and lets the partitioner place each shard: the
        samplers hash each element's own index, so every device draws only its
        shard, with the unsharded array's bits. (jax.random's own
        out_sharding= puts explicit shardings on every intermediate, and some jax
        ops, such as the selects inside ndtri, reject them.)
        """

        def draw(key: Any) -> jax.Array:
            return self._generate(key, shape, dtype)

        return place(draw, key, out_sharding)

    def __repr__(self) -> str:
        names = [field.name for field in dataclasses.fields(self) if field.repr]
        ordered = [n for n in names if n not in (*_LAYOUT_FIELDS, "dtype")] + [
            n for n in (*_LAYOUT_FIELDS, "dtype") if n in names
        ]
        args = ", ".join(f"{n}={_literal(getattr(self, n))}" for n in ordered)
        return f"jaxinit.{self.name}({args})"


def _literal(value: object) -> str:
    """Repr that evaluates back, also for infinite floats."""
    if isinstance(value, float) and math.isinf(value):
        return f"float('{value}')"
    return repr(value)


@dataclasses.dataclass(frozen=True, repr=False)
class LayoutInitializer(InitializerBase):
    """An initializer whose law depends on which axes are in, out and batch."""

    layout: str = "flax"
    in_axis: tuple[int, ...] | None = None
    out_axis: tuple[int, ...] | None = None
    batch_axis: tuple[int, ...] = ()

    def check_shape(self, shape: tuple[int, ...]) -> None:
        self.axes(shape)

    def axes(self, shape: tuple[int, ...]) -> _fans.ResolvedAxes:
        """Resolves this initializer's axes for ``shape`` (rank >= 2)."""
        spec = _fans.LayoutSpec(
            self.layout,  # type: ignore[arg-type]
            self.in_axis,
            self.out_axis,
            self.batch_axis,
        )
        return spec.resolve(self.name, shape)


def stacked(init: Any, count: int) -> Any:
    """``init`` for ``count`` leading copies of the array it was written for.

    Layers stacked by ``nnx.vmap``, ``nn.scan`` or ``nn.vmap`` hold one array
    with the copies on leading axes. A layout initializer gets them as batch
    axes (its non-negative axes shift past them), so no fan counts them; the
    other jaxinit laws draw element by element or read their shape from the
    trailing axes, and are returned unchanged.
    """
    if count == 0 or not isinstance(init, LayoutInitializer):
        return init

    def shift(axes: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(axis + count if axis >= 0 else axis for axis in axes)

    def explicit(axes: tuple[int, ...] | None, default: int) -> tuple[int, ...] | None:
        if axes is None and default < 0:
            return None  # the layout's default counts from the end: still right
        return shift(axes if axes is not None else (default,))

    default_in, default_out = _fans.LAYOUT_AXES[init.layout]
    return dataclasses.replace(
        init,
        in_axis=explicit(init.in_axis, default_in),
        out_axis=explicit(init.out_axis, default_out),
        batch_axis=tuple(range(count)) + shift(init.batch_axis),
    )


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def _generate_jit(
    init: InitializerBase,
    key: Any,
    shape: tuple[int, ...],
    dtype: np.dtype,
    out_sharding: OutSharding,
) -> jax.Array:
    if out_sharding is None:
        return init._generate(key, shape, dtype)
    return init._generate_sharded(key, shape, dtype, out_sharding)


def place(
    build: Callable[[Any], jax.Array], key: Any, out_sharding: OutSharding
) -> jax.Array:
    """``build(key)``, traced, placed on ``out_sharding`` (auto or explicit mesh)."""
    if on_auto_mesh(out_sharding):
        constrained: jax.Array = jax.lax.with_sharding_constraint(  # type: ignore[no-untyped-call]
            build(key), out_sharding
        )
        return constrained
    placed: jax.Array = jax.sharding.auto_axes(build, out_sharding=out_sharding)(key)
    return placed


def on_auto_mesh(sharding: OutSharding) -> bool:
    """Whether ``sharding`` is a NamedSharding over a mesh with non-explicit axes."""
    if not isinstance(sharding, jax.sharding.NamedSharding):
        return False
    axis_types = getattr(jax.sharding, "AxisType", None)
    if axis_types is None:  # jax < 0.5: every mesh is an auto mesh
        return True
    explicit = axis_types.Explicit
    return any(axis_type != explicit for axis_type in sharding.mesh.axis_types)


def _needs_explicit_sharding(owner: str, out_sharding: OutSharding) -> None:
    """Raises on jax < 0.7 for shardings that ``place`` draws through ``auto_axes``."""
    if hasattr(jax.sharding, "auto_axes"):
        return
    raise NotImplementedError(
        f"{owner}: out_sharding={out_sharding!r} (a bare PartitionSpec, or a mesh "
        "with Explicit axes) needs jax >= 0.7.0 (jax.sharding.auto_axes and "
        f"jax.sharding.set_mesh); this is jax {jax.__version__}. Pass a "
        "NamedSharding over a mesh with Auto axes, or upgrade jax"
    )


def layout_fields(
    owner: str,
    layout: str,
    in_axis: object,
    out_axis: object,
    batch_axis: object,
) -> dict[str, Any]:
    """Validates a factory's layout arguments into LayoutInitializer fields."""
    spec = _fans.LayoutSpec.build(owner, layout, in_axis, out_axis, batch_axis)  # type: ignore[arg-type]
    return dataclasses.asdict(spec)


def dtype_field(owner: str, dtype: DTypeLike | None, *, exact_ok: bool) -> str | None:
    """Validates a factory's default dtype and stores it by name."""
    if dtype is None:
        return None
    return _checks.dtype(owner, dtype, exact_ok=exact_ok, check_x64=False).name


def _looks_like_key(value: object) -> bool:
    if not isinstance(value, jax.Array):
        return False
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        return True
    return bool(value.dtype == np.uint32 and value.ndim == 1)


def factory(fn: Callable[P, R]) -> Callable[P, R]:
    """Guards a public factory against use as an initializer.

    Calling a factory with a key, as Flax calls an initializer, raises a TypeError
    that says to call the factory first.
    """

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        if args and _looks_like_key(args[0]):
            raise TypeError(
                f"jaxinit.{fn.__name__} is a factory, not an initializer: it was "
                "called "
                f"with a PRNG key. Call it first and pass the result, e.g. "
                f"kernel_init=jaxinit.{fn.__name__}() instead of "
                f"kernel_init=jaxinit.{fn.__name__}"
            )
        return fn(*args, **kwargs)

    return guarded
