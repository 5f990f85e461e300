"""Per-initializer steady state: jaxinit vs jax.nn.initializers vs torch.nn.init.

For each initializer on a 4096x4096 float32 shape (dirac: 4096x4096x1), in one
process: the median time of

* jaxinit, jitted (``jax.jit(lambda key: init(key, shape))``) and eager (the
  plain call, which validates in Python and then runs jaxinit's cached program);
* the equivalent ``jax.nn.initializers`` call, jitted, where one exists;
* ``torch.nn.init.NAME_`` in place on a preallocated tensor, 2 threads.

Compilation is excluded (one warm-up call). The three sides are timed
round-robin, run by run, so load on the shared machine hits them alike; the
ratios are the figures to read. Run: ``python benchmarks/bench_initializers.py``.
"""

# isort: skip_file
# _common pins OPENBLAS_NUM_THREADS: it must be imported before jax and torch.

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _common import machine, markdown_table, ms, ratio

import jax
import jax.numpy as jnp
import torch

import jaxinit

JaxInit = Callable[..., jax.Array]


@dataclass(frozen=True)
class Case:
    name: str
    jaxinit_init: JaxInit
    jax_init: JaxInit | None  # the jax.nn.initializers equivalent, if any
    torch_init: Callable[[torch.Tensor], Any] | None
    flax_shape: tuple[int, ...]
    torch_shape: tuple[int, ...]


def cases(size: int) -> list[Case]:
    init = torch.nn.init
    jnn = jax.nn.initializers
    square = (size, size)
    conv = ((1, size, size), (size, size, 1))  # Flax (k, in, out), torch (out, in, k)
    return [
        Case(
            "uniform",
            jaxinit.uniform(),
            jnn.uniform(1.0),
            init.uniform_,
            square,
            square,
        ),
        Case("normal", jaxinit.normal(), jnn.normal(1.0), init.normal_, square, square),
        Case(
            "trunc_normal(std=1)",
            jaxinit.trunc_normal(std=1.0),
            jnn.truncated_normal(1.0),
            lambda t: init.trunc_normal_(t, std=1.0),
            square,
            square,
        ),
        Case(
            "constant(0.5)",
            jaxinit.constant(0.5),
            jnn.constant(0.5),
            lambda t: init.constant_(t, 0.5),
            square,
            square,
        ),
        Case("zeros", jaxinit.zeros(), jnn.zeros, init.zeros_, square, square),
        Case("ones", jaxinit.ones(), jnn.ones, init.ones_, square, square),
        Case("eye", jaxinit.eye(), None, init.eye_, square, square),
        Case("dirac", jaxinit.dirac(), None, init.dirac_, *conv),
        Case(
            "xavier_uniform",
            jaxinit.xavier_uniform(),
            jnn.glorot_uniform(),
            init.xavier_uniform_,
            square,
            square,
        ),
        Case(
            "xavier_normal",
            jaxinit.xavier_normal(),
            jnn.variance_scaling(1.0, "fan_avg", "normal"),
            init.xavier_normal_,
            square,
            square,
        ),
        Case(
            "kaiming_uniform",
            jaxinit.kaiming_uniform(),
            jnn.variance_scaling(2.0, "fan_in", "uniform"),
            init.kaiming_uniform_,
            square,
            square,
        ),
        Case(
            "kaiming_normal",
            jaxinit.kaiming_normal(),
            jnn.variance_scaling(2.0, "fan_in", "normal"),
            init.kaiming_normal_,
            square,
            square,
        ),
        Case(
            "orthogonal",
            jaxinit.orthogonal(),
            jnn.orthogonal(),
            init.orthogonal_,
            square,
            square,
        ),
        Case(
            "sparse(0.1)",
            jaxinit.sparse(0.1),
            None,
            lambda t: init.sparse_(t, 0.1),
            square,
            square,
        ),
    ]


@dataclass(frozen=True)
class Row:
    name: str
    jaxinit_jit: float
    jaxinit_eager: float
    jax: float | None
    torch: float | None


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(case: Case, runs: int) -> Row:
    """Median seconds of each side, timed round-robin after one warm-up call each."""
    key = jax.random.key(0)
    shape = case.flax_shape
    ours = case.jaxinit_init
    ours_jit = jax.jit(lambda k: ours(k, shape, jnp.float32))
    sides: dict[str, Callable[[], Any]] = {
        "jaxinit_jit": lambda: ours_jit(key).block_until_ready(),
        "jaxinit_eager": lambda: ours(key, shape, jnp.float32).block_until_ready(),
    }
    if case.jax_init is not None:
        theirs = case.jax_init
        theirs_jit = jax.jit(lambda k: theirs(k, shape, jnp.float32))
        sides["jax"] = lambda: theirs_jit(key).block_until_ready()
    if case.torch_init is not None:
        tensor = torch.empty(case.torch_shape)
        torch_init = case.torch_init
        sides["torch"] = lambda: torch_init(tensor)
    times: dict[str, list[float]] = {side: [] for side in sides}
    for fn in sides.values():
        fn()  # compile / warm caches
    for _ in range(runs):
        for side, fn in sides.items():
            times[side].append(_timed(fn))
    med = {side: statistics.median(t) for side, t in times.items()}
    return Row(
        case.name,
        med["jaxinit_jit"],
        med["jaxinit_eager"],
        med.get("jax"),
        med.get("torch"),
    )


HEADER = (
    "initializer",
    "jaxinit jit ms",
    "jaxinit eager ms",
    "jax.nn ms",
    "torch ms",
    "jaxinit / jax.nn",
    "jaxinit / torch",
)


def table(rows: list[Row]) -> str:
    """The Markdown table of medians and ratios (jitted jaxinit in the ratios)."""
    return markdown_table(
        HEADER,
        [
            (
                r.name,
                ms(r.jaxinit_jit),
                ms(r.jaxinit_eager),
                ms(r.jax),
                ms(r.torch),
                ratio(r.jaxinit_jit, r.jax),
                ratio(r.jaxinit_jit, r.torch),
            )
            for r in rows
        ],
    )


def run(size: int = 4096, runs: int = 7, only: str | None = None) -> str:
    """Runs every case and returns the Markdown report section."""
    torch.set_num_threads(2)
    rows = []
    for case in cases(size):
        if only is not None and only not in case.name:
            continue
        rows.append(measure(case, runs))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    return (
        f"Shape {size}x{size} float32 (dirac {size}x{size}x1), median of {runs} "
        f"round-robin runs, compile excluded; torch 2 threads, default jax key "
        f"(threefry).\n\n{table(rows)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", help="substring of the initializer names to run")
    args = parser.parse_args()
    print(machine(), flush=True)
    print(run(args.size, args.runs, args.only))


if __name__ == "__main__":
    main()
