"""timm's initializers written with torch's own primitives, for parity tests.

timm (``timm/layers/weight_init.py``) defines ``trunc_normal_tf_`` as torch's
``trunc_normal_(t, 0, 1, a, b)`` scaled by ``std`` and shifted by ``mean``, and
``variance_scaling_`` from torch's ``_calculate_fan_in_and_fan_out``,
``normal_`` and ``uniform_``; so torch stays the oracle where timm is not
installed (``test_timm.py`` compares with timm itself where it is).
"""

import math
from collections.abc import Callable
from typing import Any

import torch

TRUNCATED_STD = 0.87962566103423978  # timm's constant


def trunc_normal_tf_(
    tensor: Any, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> Any:
    with torch.no_grad():
        torch.nn.init.trunc_normal_(tensor, 0.0, 1.0, a, b)
        return tensor.mul_(std).add_(mean)


def variance_scaling_(
    tensor: Any, scale: float = 1.0, mode: str = "fan_in", distribution: str = "normal"
) -> Any:
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(tensor)
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    variance = scale / fans[mode]
    if distribution == "truncated_normal":
        return trunc_normal_tf_(tensor, std=math.sqrt(variance) / TRUNCATED_STD)
    if distribution == "normal":
        return torch.nn.init.normal_(tensor, std=math.sqrt(variance))
    bound = math.sqrt(3 * variance)
    return torch.nn.init.uniform_(tensor, -bound, bound)


def lecun_normal_(tensor: Any) -> Any:
    return variance_scaling_(tensor, mode="fan_in", distribution="truncated_normal")


ORACLES: dict[str, Callable[..., Any]] = {
    "trunc_normal_tf": trunc_normal_tf_,
    "variance_scaling": variance_scaling_,
    "lecun_normal": lecun_normal_,
}


def torch_fill(name: str) -> Callable[..., Any]:
    """``torch.nn.init.NAME_``, or timm's ``NAME_`` written with torch's primitives."""
    return getattr(torch.nn.init, f"{name}_", None) or ORACLES[name]
