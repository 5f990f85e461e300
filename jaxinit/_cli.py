"""The command line: ``python -m jaxinit`` (the full report) and ``... show NAME``.

``main(argv)`` returns the exit status: 0 on success, 1 when jaxinit rejects a
parameter value or shape (its message is printed, without a traceback), and
argparse's 2 for options it cannot parse.
"""

import argparse
import contextlib
import inspect
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import jax
import numpy as np

from . import _report

PROG = "python -m jaxinit"
DEFAULT_DEMO_PATH = Path("jaxinit_demo.png")
_WIDTH = 79  # the descriptions are pre-wrapped: the epilog's examples must not be

# The torch parameters the CLI accepts, as (option type, help). Each initializer
# takes the subset in its factory's signature.
_TORCH_PARAMS: dict[str, tuple[type, str]] = {
    "a": (
        float,
        "uniform/trunc_normal: lower bound (trunc_normal_tf: in std); "
        "kaiming_*: negative slope",
    ),
    "b": (float, "uniform/trunc_normal: upper bound (trunc_normal_tf: in std)"),
    "mean": (float, "normal/trunc_normal*: mean"),
    "std": (float, "normal/trunc_normal*/sparse: standard deviation"),
    "val": (float, "constant: the fill value (required)"),
    "gain": (float, "xavier_*/orthogonal: scaling factor"),
    "scale": (float, "variance_scaling: the variance is scale / fan"),
    "mode": (
        str,
        "kaiming_*: fan_in or fan_out; variance_scaling: fan_in, fan_out or fan_avg",
    ),
    "distribution": (
        str,
        "variance_scaling: normal, truncated_normal or uniform",
    ),
    "nonlinearity": (str, "kaiming_*: a name accepted by calculate_gain, e.g. relu"),
    "sparsity": (float, "sparse: fraction of each column set to zero (required)"),
    "groups": (int, "dirac: number of convolution groups"),
}

_EXAMPLES = f"""\
examples:
  {PROG}                                   the full report and {DEFAULT_DEMO_PATH}
  {PROG} --out /tmp/all.png --no-torch
  {PROG} show kaiming_normal --shape 3,3,16,32 --mode fan_out --nonlinearity relu
  {PROG} show trunc_normal --shape 256,256 --std 0.02 --a -0.04 --b 0.04 --plot tn.png
  {PROG} show orthogonal --shape 64,128 --layout torch --dtype bfloat16 --compare-torch
"""


def _shape(text: str) -> tuple[int, ...]:
    """Parses ``--shape 3,5`` (an argparse ``type``)."""
    try:
        dims = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid shape {text!r}: give comma-separated sizes, e.g. 3,5 or 3,3,16,32"
        ) from None
    if any(dim < 0 for dim in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: sizes must be >= 0")
    return dims


def _positive_int(text: str) -> int:
    """Parses a count >= 1 (an argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _build() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser and its ``show`` sub-parser (which reports usage errors)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.fill(
            "jaxinit: torch.nn.init for JAX and Flax. Without a command, print the "
            "full report (every initializer in both layouts, theory against "
            "measurement, beside torch when installed) and save one PNG of values "
            "plots and histograms.",
            _WIDTH,
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_DEMO_PATH,
        metavar="FILE",
        help=f"where the report's PNG goes (default: {DEFAULT_DEMO_PATH})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the PRNG key (default: 0)"
    )
    parser.add_argument(
        "--no-torch",
        action="store_true",
        help="leave torch out of the report even if it is installed",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    show = commands.add_parser(
        "show",
        help="one initializer: fans, gain, theory, measurement, figure, torch",
        description=textwrap.fill(
            "Draw one initializer on one shape and print its fans, gain, the "
            "theoretical law (torch's formulas) and the measured statistics; "
            "optionally plot it and compare it with torch.nn.init.",
            _WIDTH,
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument(
        "name",
        choices=list(_report.FACTORIES),
        metavar="NAME",
        help="the initializer: " + ", ".join(_report.FACTORIES),
    )
    show.add_argument(
        "--shape",
        type=_shape,
        metavar="D0,D1,...",
        help=(
            "the array shape, in the chosen layout (default: a Conv2d(32, 64, 3) "
            "kernel; Linear(256, 128) for eye and sparse)"
        ),
    )
    params = show.add_argument_group("torch/timm parameters (those of NAME only)")
    for param, (kind, text) in _TORCH_PARAMS.items():
        params.add_argument(
            f"--{param}", type=kind, metavar=kind.__name__.upper(), help=text
        )
    show.add_argument(
        "--layout",
        choices=_report.LAYOUTS,
        default="flax",
        help="flax: (*k, in, out) kernels (default); torch: (out, in, *k) weights",
    )
    show.add_argument(
        "--dtype",
        choices=_report.DTYPES,
        default="float32",
        help="output dtype (default: float32)",
    )
    show.add_argument(
        "--seed", type=int, default=0, help="seed of the PRNG key (default: 0)"
    )
    show.add_argument(
        "--draws",
        type=_positive_int,
        default=1,
        metavar="N",
        help="pool N independent draws in the statistics (default: 1)",
    )
    show.add_argument(
        "--plot", type=Path, metavar="FILE", help="save the values plot and histogram"
    )
    show.add_argument(
        "--compare-torch",
        action="store_true",
        help=(
            "also draw with torch.nn.init (timm.layers for timm's initializers), if "
            "installed, and run a two-sample Kolmogorov-Smirnov test "
            "(scipy.stats.ks_2samp)"
        ),
    )
    return parser, show


def _torch_params(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> dict[str, Any]:
    """The torch parameters given for ``args.name``; usage errors exit with 2."""
    signature = inspect.signature(_report.FACTORIES[args.name])
    accepted = [
        p for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    names = [p.name for p in accepted]
    given = {k: getattr(args, k) for k in _TORCH_PARAMS if getattr(args, k) is not None}
    unknown = [k for k in given if k not in names]
    if unknown:
        takes = ", ".join(f"--{n}" for n in names) or "no parameters"
        parser.error(
            f"{args.name} takes no {', '.join('--' + k for k in unknown)} "
            f"(it takes: {takes})"
        )
    missing = [p.name for p in accepted if p.default is p.empty and p.name not in given]
    if missing:
        parser.error(f"{args.name} needs {', '.join('--' + m for m in missing)}")
    return given


def _to_torch_order(values: np.ndarray, layout: str) -> np.ndarray:
    """Transposes stacked Flax kernels ``(n, *k, in, out)`` to ``(n, out, in, *k)``."""
    rank = values.ndim - 1
    if layout == "torch" or rank < 2:
        return values
    return values.transpose(0, rank, rank - 1, *range(1, rank - 1))


@contextlib.contextmanager
def _x64(dtype: str) -> Iterator[None]:
    """float64 needs JAX's x64 mode; enabled only around the draw."""
    if dtype == "float64":
        with jax.enable_x64(True):
            yield
    else:
        yield


def show(args: argparse.Namespace, params: dict[str, Any], stream: TextIO) -> None:
    """Runs ``show``: prints the report of one initializer, saves its figure.

    Raises:
        ValueError, TypeError: jaxinit rejected a parameter or the shape.
    """
    name, layout = args.name, args.layout
    default_torch_shape = dict((n, s) for n, _, s in _report.DEMO)[name]
    shape = args.shape
    if shape is None:
        shape = (
            default_torch_shape
            if layout == "torch"
            else _report.torch_to_flax_shape(default_torch_shape)
        )
    init = _report.build(name, params, layout)
    with _x64(args.dtype):
        values = _report.draw(init, shape, args.dtype, args.seed, args.draws)
    torch_shape = shape if layout == "torch" else _report.flax_to_torch_shape(shape)
    draws = f"{args.draws} draws pooled" if args.draws > 1 else "1 draw"
    print(f"{init!r}", file=stream)
    print(
        f"shape {shape} in {layout} layout (torch weight {torch_shape}), "
        f"dtype {args.dtype}, seed {args.seed}, {draws}",
        file=stream,
    )
    fan_in, fan_out = _report.fans(shape, layout)
    fans = (
        "fan_in -, fan_out - (rank < 2)"
        if fan_in is None
        else f"fan_in {fan_in}, fan_out {fan_out}"
    )
    if values.size == 0:
        # No law to speak of (torch's formulas divide by zero fans here).
        print(fans, file=stream)
        print(
            "measured: an empty array (zero-element shape); nothing to plot",
            file=stream,
        )
        return
    law = _report.theory(name, params, shape, layout)
    gain = "-" if law.gain is None else f"{law.gain:.6g}"
    print(f"{fans}, gain {gain}", file=stream)
    print(f"theory:   {law.describe()}", file=stream)
    print(f"measured: {_report.Summary.of(values).describe()}", file=stream)
    torch_values = _compare_torch(args, params, torch_shape, values, stream)
    if args.plot is not None:
        panel = _report.Panel(
            f"{name} ({layout}, {args.dtype})",
            values,
            law,
            torch_values,
            show_all=name in _report.DETERMINISTIC,
        )
        path = _report.plot([panel], args.plot, columns=1, dpi=90)
        print(f"figure: {path.resolve()}", file=stream)


def _compare_torch(
    args: argparse.Namespace,
    params: dict[str, Any],
    torch_shape: tuple[int, ...],
    values: np.ndarray,
    stream: TextIO,
) -> np.ndarray | None:
    """Draws with torch and compares (``--compare-torch``); None when not asked."""
    if not args.compare_torch:
        return None
    torch = _report.optional_module("torch")
    if torch is None:
        print(
            "torch:    not installed (pip install 'jaxinit[parity]'); skipped",
            file=stream,
        )
        return None
    source = _report.reference(args.name)
    try:
        drawn = _report.torch_draw(
            torch, args.name, params, torch_shape, args.dtype, args.seed, args.draws
        )
    except Exception as error:  # torch's own limits, e.g. orthogonal in float16
        print(f"torch:    {source} failed: {error}", file=stream)
        return None
    if drawn is None:
        print("torch:    timm is not installed; skipped", file=stream)
        return None
    torch_values, used = drawn
    fallback = "" if used == args.dtype else f" (torch cannot do {args.dtype})"
    print(
        f"torch:    {_report.Summary.of(torch_values).describe()}  "
        f"[{source} on {torch_shape}, {used}{fallback}]",
        file=stream,
    )
    if args.name in _report.DETERMINISTIC:
        same = np.array_equal(_to_torch_order(values, args.layout), torch_values)
        print(f"identical to torch (in torch layout): {same}", file=stream)
        return torch_values
    stats = _report.optional_module("scipy.stats")
    if stats is None:
        print("KS:       scipy is not installed; two-sample test skipped", file=stream)
        return torch_values
    result = stats.ks_2samp(values.ravel(), torch_values.ravel())
    verdict = "consistent" if result.pvalue > 1e-3 else "DIFFERENT laws"
    print(
        f"two-sample KS (jaxinit vs torch): statistic {result.statistic:.4g}, "
        f"p-value {result.pvalue:.4g} ({verdict} at 1e-3)",
        file=stream,
    )
    return torch_values


def main(argv: Sequence[str] | None = None, stream: TextIO | None = None) -> int:
    """Runs the command line and returns its exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        stream: where the report goes (default: standard output); errors go to
            standard error.

    Returns:
        0 on success, 1 when jaxinit rejects a parameter or shape. Usage errors
        exit with argparse's status 2 (``SystemExit``).
    """
    out = sys.stdout if stream is None else stream
    parser, show_parser = _build()
    args = parser.parse_args(argv)
    if args.command == "show":
        params = _torch_params(show_parser, args)
        try:
            show(args, params, out)
        except (ValueError, TypeError) as error:
            print(f"{PROG} show: error: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        _report.demo(args.out, seed=args.seed, use_torch=not args.no_torch, stream=out)
    except OSError as error:
        print(f"{PROG}: error: cannot write {args.out}: {error}", file=sys.stderr)
        return 1
    return 0
