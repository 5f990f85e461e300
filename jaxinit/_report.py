"""The report behind ``python -m jaxinit``: theory, measurements and figures.

For an initializer on a shape this computes the fans, gain and theoretical law
(from torch's and timm's formulas), draws a sample and measures it, draws the
same initializer with ``torch.nn.init`` (timm's with ``timm.layers``) when
installed, and plots the classic view (the values of a flattened draw, and their
histogram with the theoretical density). torch, timm, scipy and matplotlib are
imported lazily, only here, so the initializers never depend on them.
"""

import dataclasses
import importlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from . import _basic, _sampling, _scaled, _structured, _timm
from ._fans import calculate_fan_in_and_fan_out
from ._gain import calculate_gain
from ._typing import Initializer

Values = npt.NDArray[np.float64]
Density = Callable[[Values], Values]
Params = Mapping[str, Any]

FACTORIES: dict[str, Callable[..., Initializer]] = {
    "uniform": _basic.uniform,
    "normal": _basic.normal,
    "trunc_normal": _basic.trunc_normal,
    "constant": _basic.constant,
    "zeros": _basic.zeros,
    "ones": _basic.ones,
    "eye": _basic.eye,
    "dirac": _structured.dirac,
    "xavier_uniform": _scaled.xavier_uniform,
    "xavier_normal": _scaled.xavier_normal,
    "kaiming_uniform": _scaled.kaiming_uniform,
    "kaiming_normal": _scaled.kaiming_normal,
    "orthogonal": _structured.orthogonal,
    "sparse": _structured.sparse,
    "trunc_normal_tf": _timm.trunc_normal_tf,
    "variance_scaling": _timm.variance_scaling,
    "lecun_normal": _timm.lecun_normal,
}
# timm's initializers: compared with timm.layers, not torch.nn.init.
TIMM = frozenset({"trunc_normal_tf", "variance_scaling", "lecun_normal"})
LAYOUTS = ("flax", "torch")
# Deterministic initializers: no key, no law to overlay.
DETERMINISTIC = frozenset({"constant", "zeros", "ones", "eye", "dirac"})
DTYPES = ("float32", "bfloat16", "float16", "float64")
# How many values of a flattened draw the values plot shows (the tutorial's view).
_VALUES_SHOWN = 1000
_HIST_BINS = 60

_CONV = (64, 32, 3, 3)  # torch Conv2d(32, 64, 3): fan_in 288, fan_out 576
_LINEAR = (128, 256)  # torch Linear(256, 128): fan_in 256, fan_out 128

# The demo: every initializer with typical parameters, on a torch-layout shape.
DEMO: tuple[tuple[str, dict[str, Any], tuple[int, ...]], ...] = (
    ("uniform", {}, _CONV),
    ("normal", {}, _CONV),
    ("trunc_normal", {}, _CONV),
    ("constant", {"val": 0.5}, _CONV),
    ("zeros", {}, _CONV),
    ("ones", {}, _CONV),
    ("eye", {}, _LINEAR),
    ("dirac", {}, _CONV),
    ("xavier_uniform", {}, _CONV),
    ("xavier_normal", {}, _CONV),
    ("kaiming_uniform", {"a": math.sqrt(5)}, _CONV),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}, _CONV),
    ("orthogonal", {}, _CONV),
    ("sparse", {"sparsity": 0.1}, _LINEAR),
    ("trunc_normal_tf", {"std": 0.02}, _CONV),
    ("variance_scaling", {"mode": "fan_avg", "distribution": "uniform"}, _CONV),
    ("lecun_normal", {}, _CONV),
)


def flax_to_torch_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """A Flax kernel shape ``(*k, in, out)`` as torch's ``(out, in, *k)``.

    Examples:
        >>> flax_to_torch_shape((3, 3, 16, 32))
        (32, 16, 3, 3)
    """
    dims = tuple(shape)
    if len(dims) < 2:
        return dims
    return (dims[-1], dims[-2], *dims[:-2])


def torch_to_flax_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """A torch weight shape ``(out, in, *k)`` as Flax's ``(*k, in, out)``.

    Examples:
        >>> torch_to_flax_shape((32, 16, 3, 3))
        (3, 3, 16, 32)
    """
    dims = tuple(shape)
    if len(dims) < 2:
        return dims
    return (*dims[2:], dims[1], dims[0])


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _normal_density(mean: float, std: float, weight: float = 1.0) -> Density:
    def density(x: Values) -> Values:
        z = (x - mean) / std
        return weight * np.exp(-0.5 * z * z) / (std * math.sqrt(2 * math.pi))

    return density


def _uniform_density(low: float, high: float) -> Density:
    def density(x: Values) -> Values:
        return np.where((x >= low) & (x < high), 1.0 / (high - low), 0.0)

    return density


def _is_flat(mean: float, std: float, low: float, high: float) -> bool:
    """Whether the truncated normal is U[low, high] (the sampler's float32 test)."""
    alpha, beta = (low - mean) / std, (high - mean) / std
    return _sampling.is_flat(alpha, beta, (high - low) / std, np.dtype(np.float32))


def _closed_uniform_density(low: float, high: float) -> Density:
    def density(x: Values) -> Values:
        return np.where((x >= low) & (x <= high), 1.0 / (high - low), 0.0)

    return density


def _trunc_density(mean: float, std: float, low: float, high: float) -> Density:
    if _is_flat(mean, std, low, high):
        return _closed_uniform_density(low, high)
    # Phi differences that do not cancel when the interval is near the mean.
    mass = _sampling.interval_mass((low - mean) / std, (high - mean) / std)
    normal = _normal_density(mean, std, 1.0 / mass)

    def density(x: Values) -> Values:
        return np.where((x >= low) & (x <= high), normal(x), 0.0)

    return density


def _trunc_moments(
    mean: float, std: float, low: float, high: float
) -> tuple[float, float]:
    if _is_flat(mean, std, low, high):
        return (low + high) / 2, (high - low) / math.sqrt(12.0)
    alpha, beta = (low - mean) / std, (high - mean) / std
    mass = _sampling.interval_mass(alpha, beta)
    shift = (_phi(alpha) - _phi(beta)) / mass
    # x * phi(x) -> 0 at +-inf.
    tails = (alpha * _phi(alpha) if math.isfinite(alpha) else 0.0) - (
        beta * _phi(beta) if math.isfinite(beta) else 0.0
    )
    variance = std**2 * (1.0 + tails / mass - shift**2)
    return mean + std * shift, math.sqrt(max(variance, 0.0))


@dataclasses.dataclass(frozen=True)
class Theory:
    """What torch's formulas say about one initializer on one shape."""

    fan_in: int | None
    fan_out: int | None
    gain: float | None
    law: str  # a short description, e.g. "U[-b, b)"
    mean: float
    std: float
    bound: tuple[float, float] | None  # the support, when bounded
    density: Density | None  # the density of one entry, when it has one

    def describe(self) -> str:
        """One line: the law, its mean, std and support."""
        parts = [f"law {self.law}", f"mean {self.mean:.5g}", f"std {self.std:.5g}"]
        if self.bound is not None:
            parts.append(f"support [{self.bound[0]:.5g}, {self.bound[1]:.5g}]")
        return ", ".join(parts)


def fans(shape: tuple[int, ...], layout: str) -> tuple[int | None, int | None]:
    """(fan_in, fan_out) of ``shape`` in ``layout``; (None, None) below rank 2."""
    if len(shape) < 2:
        return None, None
    return calculate_fan_in_and_fan_out(shape, layout=layout)  # type: ignore[arg-type]


def theory(name: str, params: Params, shape: Sequence[int], layout: str) -> Theory:
    """Computes fans, gain and the law of one entry from torch's formulas.

    Args:
        name: an initializer name, e.g. ``"kaiming_uniform"``.
        params: its torch parameters, as given to the factory.
        shape: the shape, in ``layout``.
        layout: ``"flax"`` or ``"torch"``.

    Returns:
        A ``Theory``.

    Examples:
        >>> t = theory("kaiming_uniform", {"a": 5**0.5}, (3, 3, 32, 64), "flax")
        >>> t.fan_in, t.fan_out, round(t.bound[1] * 288**0.5, 6)
        (288, 576, 1.0)
    """
    dims = tuple(shape)
    fan_in, fan_out = fans(dims, layout)
    size = math.prod(dims)
    get = params.get
    if name in ("uniform",):
        low, high = float(get("a", 0.0)), float(get("b", 1.0))
        density = _uniform_density(low, high) if high > low else None
        return Theory(
            fan_in,
            fan_out,
            None,
            "U[a, b)",
            (low + high) / 2,
            (high - low) / math.sqrt(12),
            (low, high),
            density,
        )
    if name == "normal":
        mean, std = float(get("mean", 0.0)), float(get("std", 1.0))
        density = _normal_density(mean, std) if std > 0 else None
        return Theory(fan_in, fan_out, None, "N(mean, std^2)", mean, std, None, density)
    if name in ("trunc_normal", "trunc_normal_tf"):
        mean, std = float(get("mean", 0.0)), float(get("std", 1.0))
        low, high = float(get("a", -2.0)), float(get("b", 2.0))
        label = "N(mean, std^2) truncated to [a, b]"
        if name == "trunc_normal_tf":  # bounds in units of std around the mean
            if std == 0:
                return Theory(
                    fan_in, fan_out, None, "constant mean", mean, 0.0, None, None
                )
            low, high = mean + low * std, mean + high * std
            label = "N(mean, std^2) truncated to mean + [a, b] * std"
        t_mean, t_std = _trunc_moments(mean, std, low, high)
        return Theory(
            fan_in,
            fan_out,
            None,
            label,
            t_mean,
            t_std,
            (low, high),
            _trunc_density(mean, std, low, high),
        )
    if name in ("constant", "zeros", "ones"):
        value = {"zeros": 0.0, "ones": 1.0}.get(name, float(get("val", 0.0)))
        return Theory(
            fan_in, fan_out, None, f"constant {value:g}", value, 0.0, None, None
        )
    if name in ("eye", "dirac"):
        if name == "eye":
            ones = min(dims[:2]) if len(dims) == 2 else 0
        else:
            torch_shape = dims if layout == "torch" else flax_to_torch_shape(dims)
            groups = int(get("groups", 1))
            ones = groups * min(torch_shape[0] // groups, torch_shape[1])
        fraction = ones / size if size else 0.0
        return Theory(
            fan_in,
            fan_out,
            None,
            f"{ones} ones, zeros elsewhere",
            fraction,
            math.sqrt(fraction * (1 - fraction)),
            (0.0, 1.0),
            None,
        )
    if fan_in is None or fan_out is None:
        raise ValueError(f"{name} needs a shape of rank >= 2, got {dims}")
    if name.startswith("xavier"):
        gain = float(get("gain", 1.0))
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return _scaled_theory(name, fan_in, fan_out, gain, std)
    if name.startswith("kaiming"):
        a = get("a", 0.0)
        mode = str(get("mode", "fan_in")).lower()
        gain = float(calculate_gain(str(get("nonlinearity", "leaky_relu")), a))
        std = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
        return _scaled_theory(name, fan_in, fan_out, gain, std)
    if name in ("variance_scaling", "lecun_normal"):
        scale = float(get("scale", 1.0))
        mode = str(get("mode", "fan_in"))
        distribution = str(get("distribution", "normal"))
        if name == "lecun_normal":
            distribution = "truncated_normal"
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2)
        std = math.sqrt(scale / fan)
        if distribution != "truncated_normal":
            return _scaled_theory(distribution, fan_in, fan_out, None, std)
        cut = std / _scaled.TRUNCATED_STD
        return Theory(
            fan_in,
            fan_out,
            None,
            "N(0, s^2) truncated to [-2s, 2s], s = std / 0.8796",
            0.0,
            std,
            (-2 * cut, 2 * cut),
            _trunc_density(0.0, cut, -2 * cut, 2 * cut) if cut > 0 else None,
        )
    if name == "orthogonal":
        gain = float(get("gain", 1.0))
        torch_shape = dims if layout == "torch" else flax_to_torch_shape(dims)
        rows = torch_shape[0]
        cols = size // rows
        # Orthonormal rows (or columns): the mean square is gain^2 * min / (rows*cols);
        # for large matrices an entry is close to normal with that variance.
        std = gain * math.sqrt(min(rows, cols) / (rows * cols))
        return Theory(
            fan_in,
            fan_out,
            gain,
            "orthogonal x gain (entries ~ normal)",
            0.0,
            std,
            None,
            _normal_density(0.0, std) if std > 0 else None,
        )
    if name == "sparse":
        torch_shape = dims if layout == "torch" else flax_to_torch_shape(dims)
        rows = torch_shape[0]
        zeros = math.ceil(float(get("sparsity", 0.0)) * rows)
        keep = 1.0 - zeros / rows
        std = float(get("std", 0.01))
        density = _normal_density(0.0, std, keep) if std > 0 else None
        return Theory(
            fan_in,
            fan_out,
            None,
            f"{zeros} zeros per column, else N(0, std^2)",
            0.0,
            std * math.sqrt(keep),
            None,
            density,
        )
    raise ValueError(
        f"unknown initializer {name!r}; choose one of {', '.join(FACTORIES)}"
    )


def _scaled_theory(
    name: str, fan_in: int, fan_out: int, gain: float | None, std: float
) -> Theory:
    if name.endswith("uniform"):
        bound = math.sqrt(3.0) * std
        density = _uniform_density(-bound, bound) if bound > 0 else None
        return Theory(
            fan_in,
            fan_out,
            gain,
            "U[-bound, bound)",
            0.0,
            std,
            (-bound, bound),
            density,
        )
    density = _normal_density(0.0, std) if std > 0 else None
    return Theory(fan_in, fan_out, gain, "N(0, std^2)", 0.0, std, None, density)


@dataclasses.dataclass(frozen=True)
class Summary:
    """Measured statistics of a sample."""

    size: int
    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Values) -> "Summary":
        """Summarizes ``values`` (flattened)."""
        if values.size == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan)
        return cls(
            int(values.size),
            float(values.mean()),
            float(values.std()),
            float(values.min()),
            float(values.max()),
        )

    def describe(self) -> str:
        """One line: n, mean, std, min and max."""
        return (
            f"n {self.size}, mean {self.mean:.5g}, std {self.std:.5g}, "
            f"min {self.min:.5g}, max {self.max:.5g}"
        )


def build(name: str, params: Params, layout: str) -> Initializer:
    """Calls the factory ``name`` with ``params`` and ``layout``."""
    if name not in FACTORIES:
        raise ValueError(
            f"unknown initializer {name!r}; choose one of {', '.join(FACTORIES)}"
        )
    return FACTORIES[name](**params, layout=layout)


def draw(
    init: Initializer, shape: Sequence[int], dtype: str, seed: int, draws: int = 1
) -> Values:
    """``draws`` independent arrays of ``shape`` (keys split from ``seed``), float64."""
    keys = jax.random.split(jax.random.key(seed), draws)
    samples = [init(key, tuple(shape), jnp.dtype(dtype)) for key in keys]
    return np.stack([np.asarray(s.astype(jnp.float32), np.float64) for s in samples])


def optional_module(name: str) -> ModuleType | None:
    """Imports ``name`` if it is installed (torch, scipy), else returns None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def reference(name: str) -> str:
    """The function jaxinit's ``name`` is compared with: torch's, or timm's."""
    return f"timm.layers.{name}_" if name in TIMM else f"torch.nn.init.{name}_"


def torch_draw(
    torch: ModuleType,
    name: str,
    params: Params,
    torch_shape: Sequence[int],
    dtype: str,
    seed: int,
    draws: int = 1,
) -> tuple[Values, str] | None:
    """``draws`` tensors filled by ``reference(name)``, and the dtype used.

    None for timm's initializers when timm is not installed. torch cannot do
    everything jaxinit does (orthogonal in bfloat16, for one): when it fails in
    ``dtype`` the draw falls back to float32.
    """
    if name in TIMM:
        weight_init = optional_module("timm.layers.weight_init")
        if weight_init is None:
            return None
        fill = getattr(weight_init, f"{name}_")
    else:
        fill = getattr(torch.nn.init, f"{name}_")
    torch.manual_seed(seed)
    for used in (dtype, "float32"):
        try:
            tensors = []
            for _ in range(draws):
                tensor = torch.empty(tuple(torch_shape), dtype=getattr(torch, used))
                fill(tensor, **params)
                tensors.append(tensor.float().numpy().astype(np.float64))
            return np.stack(tensors), used
        except (RuntimeError, NotImplementedError):
            if used == "float32":
                raise
    raise AssertionError("unreachable")


@dataclasses.dataclass
class Panel:
    """One initializer in the figure: a values plot and a histogram."""

    title: str
    values: Values
    theory: Theory
    torch_values: Values | None = None
    show_all: bool = False  # plot every value, not the first ones (eye, dirac)


def plot(
    panels: Sequence[Panel], path: Path, *, columns: int = 2, dpi: int = 72
) -> Path:
    """Saves the classic view of every panel to a PNG at ``path``.

    Each panel gets two axes: the first values of the flattened draw, in order,
    and the histogram (as a density) with the theoretical density and, when given,
    torch's histogram overlaid.
    """
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only: no display needed
    plt = importlib.import_module("matplotlib.pyplot")
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        rows, 2 * columns, figsize=(4.2 * columns * 2, 2.5 * rows), squeeze=False
    )
    for index in range(rows * columns):
        ax_values = axes[index // columns][2 * (index % columns)]
        ax_hist = axes[index // columns][2 * (index % columns) + 1]
        if index >= len(panels):
            ax_values.axis("off")
            ax_hist.axis("off")
            continue
        _draw_panel(panels[index], ax_values, ax_hist)
    # Fixed margins: tight_layout costs seconds on a figure this size.
    figure.subplots_adjust(
        left=0.04, right=0.99, bottom=0.05, top=0.97, wspace=0.25, hspace=0.55
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def _draw_panel(panel: Panel, ax_values: Any, ax_hist: Any) -> None:
    flat = panel.values.ravel()
    # A random draw: its first values, as the tutorial shows them. A deterministic
    # one (eye, dirac): all of it, so that its few ones appear.
    if panel.show_all:  # dots, so that isolated ones stand out from the zeros
        ax_values.plot(flat, linestyle="none", marker=".", markersize=1.5)
        where = f"all {flat.size}"
    else:
        ax_values.plot(flat[:_VALUES_SHOWN], linewidth=0.5)
        where = f"first {min(flat.size, _VALUES_SHOWN)} of {flat.size}"
    ax_values.set_title(f"{panel.title}: values", fontsize=9)
    ax_values.set_xlabel(f"index in the flattened array ({where})", fontsize=7)
    ax_values.tick_params(labelsize=7)
    low, high = float(flat.min()), float(flat.max())
    if panel.torch_values is not None:
        low = min(low, float(panel.torch_values.min()))
        high = max(high, float(panel.torch_values.max()))
    if high <= low:  # a constant: give the bins some width
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, _HIST_BINS + 1)
    ax_hist.hist(flat, bins=bins, density=True, alpha=0.6, label="jaxinit")
    if panel.torch_values is not None:
        ax_hist.hist(
            panel.torch_values.ravel(),
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.2,
            color="black",
            label="torch",
        )
    if panel.theory.density is not None:
        grid = np.linspace(low, high, 400)
        ax_hist.plot(grid, panel.theory.density(grid), color="tab:red", label="theory")
    ax_hist.set_title(f"{panel.title}: histogram", fontsize=9)
    ax_hist.tick_params(labelsize=7)
    ax_hist.legend(fontsize=6, loc="upper right")


def _format(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _params_text(params: Params) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}"
        for k, v in params.items()
    )


_HEADER = (
    f"{'':<13} {'shape':<15} {'fan_in':>6} {'fan_out':>7} {'gain':>7} "
    f"{'std':>9} {'bound':>9} | {'mean':>9} {'std':>9} {'min':>9} {'max':>9}"
)


def _row(
    source: str, shape: Sequence[int], theory: Theory | None, summary: Summary
) -> str:
    if theory is None:
        left = f"{'':>6} {'':>7} {'':>7} {'':>9} {'':>9}"
    else:
        bound = None if theory.bound is None else max(abs(b) for b in theory.bound)
        left = (
            f"{_format(theory.fan_in):>6} {_format(theory.fan_out):>7} "
            f"{_format(theory.gain):>7} {_format(theory.std):>9} {_format(bound):>9}"
        )
    stats = " ".join(
        f"{_format(v):>9}"
        for v in (summary.mean, summary.std, summary.min, summary.max)
    )
    return f"{source:<13} {tuple(shape)!s:<15} {left} | {stats}"


def _layout_shape(torch_shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    return torch_shape if layout == "torch" else torch_to_flax_shape(torch_shape)


def demo(out: Path, *, seed: int = 0, use_torch: bool = True, stream: TextIO) -> Path:
    """The full report of ``python -m jaxinit``: a table and one PNG.

    Args:
        out: where the PNG goes.
        seed: the key of every draw (torch is seeded with it too).
        use_torch: compare with ``torch.nn.init`` if torch is installed.
        stream: where the table is printed.

    Returns:
        The path of the PNG.
    """
    started = time.perf_counter()
    torch = optional_module("torch") if use_torch else None
    print(
        "jaxinit: every initializer on a typical shape, in Flax layout (*k, in, out)"
        " and torch layout (out, in, *k), with the same key.\nLeft: torch's formulas"
        " (std and bound are theoretical; bound = max |value| of the support)."
        " Right: measured.",
        file=stream,
    )
    if torch is None:
        print("(torch is not installed: no torch column)", file=stream)
    else:
        print(
            f"torch {torch.__version__} rows: torch.nn.init.NAME_ (timm's: "
            "timm.layers.NAME_, if timm is installed) on the torch shape.",
            file=stream,
        )
    # Every draw of the report in one compiled program: one XLA compilation instead
    # of one per initializer and layout, which is most of the report's time.
    rows = [
        (name, params, torch_shape, layout, _layout_shape(torch_shape, layout))
        for name, params, torch_shape in DEMO
        for layout in LAYOUTS
    ]
    inits = [build(name, params, layout) for name, params, _, layout, _ in rows]
    key = jax.random.key(seed)
    arrays = jax.jit(
        lambda k: [
            init(k, shape) for init, (*_, shape) in zip(inits, rows, strict=True)
        ]
    )(key)
    drawn = {
        (row[0], row[3]): np.asarray(array, np.float64)[None]
        for row, array in zip(rows, arrays, strict=True)
    }
    panels: list[Panel] = []
    for name, params, torch_shape in DEMO:
        print(f"\n{name}({_params_text(params)})", file=stream)
        print(_HEADER, file=stream)
        for layout in LAYOUTS:
            shape = _layout_shape(torch_shape, layout)
            law = theory(name, params, shape, layout)
            summary = Summary.of(drawn[name, layout])
            print(_row(f"jaxinit {layout}", shape, law, summary), file=stream)
        torch_values = None
        drawn_by_torch = (
            None
            if torch is None
            else torch_draw(torch, name, params, torch_shape, "float32", seed)
        )
        if drawn_by_torch is not None:
            torch_values = drawn_by_torch[0]
            source = "timm.layers" if name in TIMM else "torch.nn.init"
            print(
                _row(source, torch_shape, None, Summary.of(torch_values)),
                file=stream,
            )
        flax_shape = _layout_shape(torch_shape, "flax")
        panels.append(
            Panel(
                f"{name} (flax)",
                drawn[name, "flax"],
                theory(name, params, flax_shape, "flax"),
                torch_values,
                show_all=name in DETERMINISTIC,
            )
        )
    path = plot(panels, out)
    elapsed = time.perf_counter() - started
    print(f"\nfigure: {path.resolve()}  ({elapsed:.1f} s)", file=stream)
    return path
