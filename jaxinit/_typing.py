"""Type aliases shared by the jaxinit modules."""

from collections.abc import Sequence
from typing import Literal, TypeAlias

import jax
from jax.sharding import NamedSharding, PartitionSpec

Initializer: TypeAlias = jax.nn.initializers.Initializer
Shape: TypeAlias = Sequence[int]
OutSharding: TypeAlias = NamedSharding | PartitionSpec | None
Layout: TypeAlias = Literal["flax", "torch"]
Axes: TypeAlias = int | Sequence[int]
FanMode: TypeAlias = Literal["fan_in", "fan_out"]
