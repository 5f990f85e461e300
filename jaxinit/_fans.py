"""Fan computation for torch and Flax layouts, and for explicit axes."""

import dataclasses
import math
from collections.abc import Sequence

from . import _checks
from ._typing import Axes, Layout

LAYOUTS = ("flax", "torch")
# (in_axis, out_axis) of each layout: Flax kernels are (*spatial, in, out), torch
# weights (out, in, *spatial).
LAYOUT_AXES = {"flax": (-2, -1), "torch": (1, 0)}


def canonical_axes(owner: str, name: str, value: Axes | None) -> tuple[int, ...] | None:
    """Returns ``value`` as a tuple of ints (None stays None), validating types."""
    if value is None:
        return None
    items = (value,) if not isinstance(value, Sequence) else tuple(value)
    axes = tuple(_checks.as_index(item) for item in items)
    if None in axes:
        raise TypeError(
            f"{owner}: {name} must be an int or a sequence of ints, got {value!r}"
        )
    return axes  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class LayoutSpec:
    """Which axes of a weight are inputs, outputs and batch; hashable and static."""

    layout: Layout = "flax"
    in_axis: tuple[int, ...] | None = None
    out_axis: tuple[int, ...] | None = None
    batch_axis: tuple[int, ...] = ()

    @classmethod
    def build(
        cls,
        owner: str,
        layout: str,
        in_axis: Axes | None,
        out_axis: Axes | None,
        batch_axis: Axes,
    ) -> "LayoutSpec":
        """Validates the layout arguments of a factory."""
        checked = _checks.choice(owner, "layout", layout, LAYOUTS)
        return cls(
            layout=checked,  # type: ignore[arg-type]
            in_axis=canonical_axes(owner, "in_axis", in_axis),
            out_axis=canonical_axes(owner, "out_axis", out_axis),
            batch_axis=canonical_axes(owner, "batch_axis", batch_axis) or (),
        )

    def resolve(self, owner: str, shape: Sequence[int]) -> "ResolvedAxes":
        """Resolves the axes against a concrete shape (rank >= 2 required)."""
        rank = len(shape)

        def normalize(name: str, axes: tuple[int, ...]) -> tuple[int, ...]:
            for axis in axes:
                if not -rank <= axis < rank:
                    raise ValueError(
                        f"{owner}: {name} {axis} is out of range for shape "
                        f"{tuple(shape)} of rank {rank}"
                    )
            return tuple(axis % rank for axis in axes)

        # Batch axes first: the rank that counts is the one they leave.
        batch = normalize("batch_axis", self.batch_axis)
        left = rank - len(set(batch))
        if left < 2:
            batched = (
                f" with batch_axis {self.batch_axis}, which leaves {left}"
                if batch
                else ""
            )
            raise ValueError(
                f"{owner}: Fan in and fan out can not be computed for tensor with "
                f"fewer than 2 dimensions; got shape {tuple(shape)}{batched}. "
                "Fan-based initializers need a weight of rank >= 2"
                f"{' besides its batch axes' if batch else ''} (for a bias, pass the "
                "weight's fan explicitly)"
            )
        default_in, default_out = LAYOUT_AXES[self.layout]
        in_axes = self.in_axis if self.in_axis is not None else (default_in,)
        out_axes = self.out_axis if self.out_axis is not None else (default_out,)
        normalized = {
            "in_axis": normalize("in_axis", in_axes),
            "out_axis": normalize("out_axis", out_axes),
            "batch_axis": batch,
        }
        used = [axis for axes in normalized.values() for axis in axes]
        if (
            len(set(used)) != len(used)
            or not normalized["in_axis"]
            or not normalized["out_axis"]
        ):
            raise ValueError(
                f"{owner}: in_axis {in_axes}, out_axis {out_axes} and batch_axis "
                f"{self.batch_axis} must be non-empty (in, out) and must not share "
                f"axes, for shape {tuple(shape)}"
            )
        spatial = tuple(axis for axis in range(rank) if axis not in used)
        return ResolvedAxes(
            normalized["in_axis"],
            normalized["out_axis"],
            normalized["batch_axis"],
            spatial,
        )


@dataclasses.dataclass(frozen=True)
class ResolvedAxes:
    """Non-negative axes of one concrete shape."""

    in_axes: tuple[int, ...]
    out_axes: tuple[int, ...]
    batch_axes: tuple[int, ...]
    spatial_axes: tuple[int, ...]

    def fans(self, shape: Sequence[int]) -> tuple[int, int]:
        """(fan_in, fan_out): in/out sizes times the receptive field, as torch."""
        receptive_field = math.prod(shape[axis] for axis in self.spatial_axes)
        fan_in = math.prod(shape[axis] for axis in self.in_axes) * receptive_field
        fan_out = math.prod(shape[axis] for axis in self.out_axes) * receptive_field
        return fan_in, fan_out

    @property
    def torch_order(self) -> tuple[int, ...]:
        """The permutation that puts a weight in torch order (batch, out, in, k)."""
        return self.batch_axes + self.out_axes + self.in_axes + self.spatial_axes


def calculate_fan_in_and_fan_out(
    shape: Sequence[int],
    *,
    layout: Layout = "flax",
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> tuple[int, int]:
    """Computes ``(fan_in, fan_out)`` of a weight shape, in Flax or torch layout.

    ``fan_in = in * receptive_field`` and ``fan_out = out * receptive_field``, where
    the receptive field is the product of the axes that are neither in, out nor
    batch. In Flax layout ``(*spatial, in, out)`` the in axis is -2 and the out
    axis -1; in torch layout ``(out, in, *spatial)`` they are 1 and 0, which gives
    exactly ``torch.nn.init._calculate_fan_in_and_fan_out``. ``in_axis``,
    ``out_axis`` (ints or tuples) and ``batch_axis`` override the layout.

    Args:
        shape: the weight's shape, rank >= 2 (not counting batch axes).
        layout: ``"flax"`` or ``"torch"``.
        in_axis: input axis or axes; overrides the layout's.
        out_axis: output axis or axes; overrides the layout's.
        batch_axis: axes of independent copies, left out of both fans.

    Returns:
        ``(fan_in, fan_out)`` as Python ints.

    Raises:
        ValueError: rank below 2, or axes out of range or overlapping.

    Examples:
        >>> import jaxinit
        >>> jaxinit.calculate_fan_in_and_fan_out((3, 3, 16, 32))  # Flax Conv kernel
        (144, 288)
        >>> jaxinit.calculate_fan_in_and_fan_out((32, 16, 3, 3), layout="torch")
        (144, 288)
        >>> attention = (512, 8, 64)  # (features, heads, head_dim)
        >>> jaxinit.calculate_fan_in_and_fan_out(attention, in_axis=0, out_axis=(1, 2))
        (512, 512)
    """
    owner = "calculate_fan_in_and_fan_out"
    dims = _checks.shape(owner, shape)
    spec = LayoutSpec.build(owner, layout, in_axis, out_axis, batch_axis)
    return spec.resolve(owner, dims).fans(dims)
