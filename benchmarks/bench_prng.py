"""What the bit generator buys: one 4096x4096 float32 draw per generator.

U[0, 1) and N(0, 1), steady state (compile excluded), median of round-robin
runs in one process:

* jaxinit's paired threefry stream (both words of each threefry hash, the
  default for float32 and 16-bit outputs: ``jaxinit.uniform(0, 1)``,
  ``jaxinit.normal()``);
* ``jax.random.uniform`` / ``normal`` with a threefry key (one hash per value),
  an ``rbg`` key and an ``unsafe_rbg`` key (XLA's RngBitGenerator);
* jaxinit with an ``rbg`` key (jaxinit then draws through ``jax.random``);
* ``torch.Tensor.uniform_`` / ``normal_``, 2 threads.

Run: ``python benchmarks/bench_prng.py``.
"""

# isort: skip_file
# _common pins OPENBLAS_NUM_THREADS: it must be imported before jax and torch.

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import markdown_table, ms, ratio

import jax
import jax.numpy as jnp
import torch

import jaxinit


def sides(shape: tuple[int, int], law: str) -> dict[str, Callable[[], Any]]:
    """Zero-argument draws that block until done, by side name."""
    threefry = jax.random.key(0)
    rbg = jax.random.key(0, impl="rbg")
    unsafe = jax.random.key(0, impl="unsafe_rbg")
    if law == "uniform":
        ours = jaxinit.uniform(0.0, 1.0)
        theirs = jax.jit(lambda key: jax.random.uniform(key, shape, jnp.float32))
    else:
        ours = jaxinit.normal()
        theirs = jax.jit(lambda key: jax.random.normal(key, shape, jnp.float32))
    tensor = torch.empty(shape)
    torch_draw = tensor.uniform_ if law == "uniform" else tensor.normal_
    return {
        "jaxinit (paired threefry)": lambda: ours(threefry, shape).block_until_ready(),
        "jax.random threefry": lambda: theirs(threefry).block_until_ready(),
        "jax.random rbg": lambda: theirs(rbg).block_until_ready(),
        "jax.random unsafe_rbg": lambda: theirs(unsafe).block_until_ready(),
        "jaxinit, rbg key": lambda: ours(rbg, shape).block_until_ready(),
        "torch": torch_draw,
    }


def run(size: int = 4096, runs: int = 7) -> str:
    """Measures every generator and returns the Markdown report section."""
    torch.set_num_threads(2)
    shape = (size, size)
    rows = []
    for law in ("uniform", "normal"):
        fns = sides(shape, law)
        for fn in fns.values():
            fn()  # compile
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(runs):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, seconds in medians.items():
            rows.append(
                (
                    law,
                    name,
                    ms(seconds),
                    ratio(seconds, medians["jax.random threefry"]),
                    ratio(seconds, medians["torch"]),
                )
            )
    header = ("law", "generator", "ms", "/ jax.random threefry", "/ torch")
    return (
        f"One {size}x{size} float32 draw, median of {runs} round-robin runs, "
        "compile excluded.\n\n" + markdown_table(header, rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(run(args.size, args.runs))


if __name__ == "__main__":
    main()
