"""The registry: one row per initializer configuration, used by every generic test.

Each case knows its factory and parameters, the torch function it mirrors, and
(for i.i.d. laws) the exact law of an entry as a scipy distribution, computed from
torch's formulas on the torch-layout shape, independently of jaxinit's code.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import scipy.stats

import jaxinit

Law = Callable[[tuple[int, ...]], Any]


def torch_fans(torch_shape: tuple[int, ...]) -> tuple[int, int]:
    """torch's _calculate_fan_in_and_fan_out, written out."""
    receptive = math.prod(torch_shape[2:])
    return torch_shape[1] * receptive, torch_shape[0] * receptive


def flax_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """(out, in, *k) -> (*k, in, out)."""
    return (*torch_shape[2:], torch_shape[1], torch_shape[0])


def to_torch_layout(flax_kernel: Any) -> Any:
    """Transposes a Flax kernel (*k, in, out) to torch's (out, in, *k)."""
    rank = flax_kernel.ndim
    return flax_kernel.transpose(rank - 1, rank - 2, *range(rank - 2))


def _uniform(low: float, high: float) -> Any:
    return scipy.stats.uniform(loc=low, scale=high - low)


def _gain(nonlinearity: str, a: float | None) -> float:
    slope = 0.01 if a is None else a
    table = {"relu": math.sqrt(2), "tanh": 5 / 3, "selu": 0.75, "linear": 1.0}
    if nonlinearity == "leaky_relu":
        return math.sqrt(2 / (1 + slope**2))
    return table[nonlinearity]


def _kaiming_std(shape: tuple[int, ...], a: float | None, mode: str, nl: str) -> float:
    fan_in, fan_out = torch_fans(shape)
    return _gain(nl, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def _xavier_std(shape: tuple[int, ...], gain: float) -> float:
    fan_in, fan_out = torch_fans(shape)
    return gain * math.sqrt(2 / (fan_in + fan_out))


def _trunc(mean: float, std: float, a: float, b: float) -> Any:
    return scipy.stats.truncnorm(
        (a - mean) / std, (b - mean) / std, loc=mean, scale=std
    )


# timm's: the std of a standard normal truncated to [-2, 2] (scipy agrees to 1e-15).
TRUNCATED_STD = 0.87962566103423978


def _variance_scaling(
    shape: tuple[int, ...], scale: float, mode: str, distribution: str
) -> Any:
    """timm's variance_scaling_ law on a torch-layout shape."""
    fan_in, fan_out = torch_fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    std = math.sqrt(scale / fan[mode])
    if distribution == "normal":
        return scipy.stats.norm(0, std)
    if distribution == "uniform":
        return _uniform(-math.sqrt(3) * std, math.sqrt(3) * std)
    cut = std / TRUNCATED_STD
    return _trunc(0, cut, -2 * cut, 2 * cut)


@dataclasses.dataclass(frozen=True)
class Case:
    """One initializer configuration."""

    id: str
    name: str  # the jaxinit factory (and torch function without "_")
    kwargs: dict[str, Any]
    torch_shape: tuple[int, ...]  # the weight, torch layout; the Flax one is derived
    law: Law | None = None  # law of one entry, given the torch shape; None: not i.i.d.
    layout_free: bool = False
    exact: bool = False  # deterministic: no key needed, any dtype

    @property
    def factory(self) -> Callable[..., jaxinit.Initializer]:
        return getattr(jaxinit, self.name)  # type: ignore[no-any-return]

    def init(self, layout: str) -> jaxinit.Initializer:
        return self.factory(**self.kwargs, layout=layout)

    def shape(self, layout: str) -> tuple[int, ...]:
        return self.torch_shape if layout == "torch" else flax_shape(self.torch_shape)

    @property
    def small_torch_shape(self) -> tuple[int, ...]:
        """A small shape of the same kind, for tests run over many variants."""
        if math.prod(self.torch_shape) <= 4096:
            return self.torch_shape
        return CONV if len(self.torch_shape) == 4 else LINEAR

    def small_shape(self, layout: str) -> tuple[int, ...]:
        shape = self.small_torch_shape
        return shape if layout == "torch" else flax_shape(shape)

    @property
    def layouts(self) -> tuple[str, ...]:
        return ("flax",) if self.layout_free else ("flax", "torch")


LINEAR = (32, 64)  # torch Linear(64, 32): weight (out=32, in=64)
CONV = (32, 16, 3, 3)  # torch Conv2d(16, 32, 3): flax kernel (3, 3, 16, 32)
GROUPED = (32, 8, 3, 3)  # Conv2d(16, 32, 3, groups=2)
STATS_CONV = (256, 128, 3, 3)  # 294,912 entries, for the statistical tests
STATS_LINEAR = (512, 576)  # 294,912 entries

CASES = [
    Case("uniform", "uniform", {}, STATS_LINEAR, lambda s: _uniform(0, 1), True),
    Case(
        "uniform_ab",
        "uniform",
        {"a": -3.0, "b": 5.0},
        STATS_LINEAR,
        lambda s: _uniform(-3, 5),
        True,
    ),
    Case("normal", "normal", {}, STATS_LINEAR, lambda s: scipy.stats.norm(0, 1), True),
    Case(
        "normal_mean_std",
        "normal",
        {"mean": 2.0, "std": 0.5},
        STATS_LINEAR,
        lambda s: scipy.stats.norm(2, 0.5),
        True,
    ),
    Case(
        "trunc_normal",
        "trunc_normal",
        {},
        STATS_LINEAR,
        lambda s: _trunc(0, 1, -2, 2),
        True,
    ),
    Case(
        "trunc_normal_std002",
        "trunc_normal",
        {"std": 0.02},
        STATS_LINEAR,
        lambda s: _trunc(0, 0.02, -2, 2),
        True,
    ),
    Case(
        "trunc_normal_narrow",
        "trunc_normal",
        {"std": 0.02, "a": -0.04, "b": 0.04},
        STATS_LINEAR,
        lambda s: _trunc(0, 0.02, -0.04, 0.04),
        True,
    ),
    Case(
        "trunc_normal_tail",
        "trunc_normal",
        {"mean": 1.0, "std": 1.0, "a": 2.0, "b": 4.0},
        STATS_LINEAR,
        lambda s: _trunc(1, 1, 2, 4),
        True,
    ),
    Case(
        "trunc_normal_one_sided",
        "trunc_normal",
        {"a": -math.inf, "b": 0.5},
        STATS_LINEAR,
        lambda s: _trunc(0, 1, -math.inf, 0.5),
        True,
    ),
    Case(
        "trunc_normal_tf",
        "trunc_normal_tf",
        {},
        STATS_LINEAR,
        lambda s: _trunc(0, 1, -2, 2),
        True,
    ),
    Case(
        "trunc_normal_tf_mean_std",
        "trunc_normal_tf",
        {"mean": 0.5, "std": 0.02, "a": -1.5, "b": 3.0},
        STATS_LINEAR,
        lambda s: _trunc(0.5, 0.02, 0.5 - 1.5 * 0.02, 0.5 + 3.0 * 0.02),
        True,
    ),
    Case(
        "trunc_normal_tf_one_sided",
        "trunc_normal_tf",
        {"std": 0.5, "a": -math.inf, "b": 1.0},
        STATS_LINEAR,
        lambda s: _trunc(0, 0.5, -math.inf, 0.5),
        True,
    ),
    Case(
        "variance_scaling",
        "variance_scaling",
        {},
        STATS_CONV,
        lambda s: _variance_scaling(s, 1.0, "fan_in", "normal"),
    ),
    Case(
        "variance_scaling_fan_out_truncated",
        "variance_scaling",
        {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
        STATS_CONV,
        lambda s: _variance_scaling(s, 2.0, "fan_out", "truncated_normal"),
    ),
    Case(
        "variance_scaling_fan_avg_uniform",
        "variance_scaling",
        {"scale": 0.5, "mode": "fan_avg", "distribution": "uniform"},
        STATS_LINEAR,
        lambda s: _variance_scaling(s, 0.5, "fan_avg", "uniform"),
    ),
    Case(
        "variance_scaling_fan_in_truncated",
        "variance_scaling",
        {"mode": "fan_in", "distribution": "truncated_normal"},
        STATS_LINEAR,
        lambda s: _variance_scaling(s, 1.0, "fan_in", "truncated_normal"),
    ),
    Case(
        "lecun_normal",
        "lecun_normal",
        {},
        STATS_CONV,
        lambda s: _variance_scaling(s, 1.0, "fan_in", "truncated_normal"),
    ),
    Case(
        "xavier_uniform",
        "xavier_uniform",
        {},
        STATS_CONV,
        lambda s: _uniform(
            -math.sqrt(3) * _xavier_std(s, 1), math.sqrt(3) * _xavier_std(s, 1)
        ),
    ),
    Case(
        "xavier_uniform_gain",
        "xavier_uniform",
        {"gain": math.sqrt(2)},
        STATS_LINEAR,
        lambda s: _uniform(
            -math.sqrt(3) * _xavier_std(s, math.sqrt(2)),
            math.sqrt(3) * _xavier_std(s, math.sqrt(2)),
        ),
    ),
    Case(
        "xavier_normal",
        "xavier_normal",
        {"gain": 2.0},
        STATS_CONV,
        lambda s: scipy.stats.norm(0, _xavier_std(s, 2.0)),
    ),
    Case(
        "kaiming_uniform_linear_default",
        "kaiming_uniform",
        {"a": math.sqrt(5)},
        STATS_LINEAR,
        lambda s: _uniform(-1 / math.sqrt(s[1]), 1 / math.sqrt(s[1])),
    ),
    Case(
        "kaiming_uniform",
        "kaiming_uniform",
        {},
        STATS_CONV,
        lambda s: _uniform(
            -math.sqrt(3) * _kaiming_std(s, 0, "fan_in", "leaky_relu"),
            math.sqrt(3) * _kaiming_std(s, 0, "fan_in", "leaky_relu"),
        ),
    ),
    Case(
        "kaiming_normal_fan_out_relu",
        "kaiming_normal",
        {"mode": "fan_out", "nonlinearity": "relu"},
        STATS_CONV,
        lambda s: scipy.stats.norm(0, _kaiming_std(s, 0, "fan_out", "relu")),
    ),
    Case(
        "kaiming_normal_leaky",
        "kaiming_normal",
        {"a": 0.2, "nonlinearity": "leaky_relu"},
        STATS_LINEAR,
        lambda s: scipy.stats.norm(0, _kaiming_std(s, 0.2, "fan_in", "leaky_relu")),
    ),
    Case(
        "kaiming_normal_tanh_fan_out",
        "kaiming_normal",
        {"mode": "FAN_OUT", "nonlinearity": "tanh"},
        STATS_LINEAR,
        lambda s: scipy.stats.norm(0, _kaiming_std(s, 0, "fan_out", "tanh")),
    ),
    Case("orthogonal", "orthogonal", {}, STATS_CONV),
    Case("orthogonal_gain", "orthogonal", {"gain": 2.0}, STATS_LINEAR),
    Case("sparse", "sparse", {"sparsity": 0.3}, STATS_LINEAR),
    Case("constant", "constant", {"val": 0.5}, CONV, layout_free=True, exact=True),
    Case("zeros", "zeros", {}, CONV, layout_free=True, exact=True),
    Case("ones", "ones", {}, CONV, layout_free=True, exact=True),
    Case("eye", "eye", {}, LINEAR, layout_free=True, exact=True),
    Case("dirac", "dirac", {}, CONV, exact=True),
    Case("dirac_groups", "dirac", {"groups": 2}, GROUPED, exact=True),
]

RANDOM_CASES = [case for case in CASES if not case.exact]
IID_CASES = [case for case in CASES if case.law is not None]
