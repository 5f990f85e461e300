"""First build against torch's plain build, the way a new user meets jaxinit.

Rows: GPT-2 small built eagerly with nnx (``kernel_init=jaxinit.normal(std=0.02)``),
GPT-2 small through linen's ``jaxinit.flax.init``, and ``init_tree``'s first call
on ViT-B/16, ResNet-50 and GPT-2 small (``bench_models.py``'s leaves). The torch
side is torch's plain build of the same model with its own layer defaults, two
threads, nothing drawn twice (``common_path.py``'s ``torch`` side, and
``bench_models.py``'s). The floors are what the framework costs with nothing to
draw: nnx with ``jaxinit.zeros()`` everywhere, linen's abstract ``module.init``.

Every figure is a fresh process (no persistent compilation cache, imports
excluded); the sides run round-robin so that background load hits them alike;
medians of ``--runs``. ``run_all.py`` builds this table from the processes its
common-path and whole-model sections ran (``from_results``).
Run: ``python benchmarks/first_build.py [--runs 3]``.
"""

import argparse
import json
import os
import statistics
import sys

import bench_models
import common_path
from _common import markdown_table, ratio, run_script

_ENV = {"JAX_ENABLE_COMPILATION_CACHE": "false", "OPENBLAS_NUM_THREADS": "1"}
# A run: ("common", side) of common_path.py, or ("models", side, model).
Run = tuple[str, ...]
# (row, jaxinit run, torch run, floor run or None).
ROWS: list[tuple[str, Run, Run, Run | None]] = [
    (
        "GPT-2 small, eager nnx, `kernel_init=jaxinit.normal(std=0.02)`",
        ("common", "nnx"),
        ("common", "torch"),
        ("common", "nnx_floor"),
    ),
    (
        "GPT-2 small, linen `jaxinit.flax.init`",
        ("common", "flax_init"),
        ("common", "torch"),
        ("common", "linen_floor"),
    ),
    *(
        (
            f"`init_tree` first call, {model}",
            ("models", "jaxinit", model),
            ("models", "torch", model),
            None,
        )
        for model in ("ViT-B/16", "ResNet-50", "GPT-2 small")
    ),
]


def _argv(run: Run) -> list[str]:
    if run[0] == "common":
        return [common_path.__file__, "--one", run[1]]
    return [bench_models.__file__, "--first", *run[1:]]


def measure(runs: int = 3) -> dict[Run, dict[str, float]]:
    """Medians of ``runs`` fresh processes per run, round-robin."""
    needed = list(dict.fromkeys(r for row in ROWS for r in row[1:] if r is not None))
    samples: dict[Run, list[dict[str, float]]] = {run: [] for run in needed}
    for _ in range(runs):
        for run in needed:
            out = run_script(_argv(run), env=_ENV).strip().splitlines()[-1]
            samples[run].append(json.loads(out))
    keys = ("first_s", "first_cpu_s")
    return {
        run: {k: statistics.median(s[k] for s in got) for k in keys}
        for run, got in samples.items()
    }


def from_results() -> dict[Run, dict[str, float]]:
    """The medians ``common_path.run`` and ``bench_models.run`` measured last."""
    med: dict[Run, dict[str, float]] = {}
    for side, values in common_path.MEDIANS.items():
        med[("common", side)] = values
    for (side, model), values in bench_models.FIRST.items():
        med[("models", side, model)] = values
    return med


def table(med: dict[Run, dict[str, float]]) -> str:
    """The rows as a Markdown table: wall seconds, CPU seconds, ratios to torch."""
    rows = []
    for name, ours, torch, floor in ROWS:
        o, t = med[ours], med[torch]
        f = med[floor] if floor is not None else None
        rows.append(
            (
                name,
                f"{o['first_s']:.2f} ({o['first_cpu_s']:.2f})",
                f"{t['first_s']:.2f} ({t['first_cpu_s']:.2f})",
                ratio(o["first_s"], t["first_s"]),
                ratio(o["first_cpu_s"], t["first_cpu_s"]),
                "-" if f is None else f"{f['first_s']:.2f} ({f['first_cpu_s']:.2f})",
                "-" if f is None else ratio(f["first_s"], t["first_s"]),
            )
        )
    header = (
        "path",
        "jaxinit s (CPU s)",
        "torch s (CPU s)",
        "jaxinit / torch",
        "CPU / torch CPU",
        "floor s (CPU s)",
        "floor / torch",
    )
    return markdown_table(header, rows) + "\n"


def run(runs: int = 3) -> str:
    """Measures and returns the section: the table and the load average."""
    start = os.getloadavg()[0]
    med = measure(runs)
    end = os.getloadavg()[0]
    return (
        f"Median of {runs} fresh processes per side, round-robin; load average "
        f"{start:.2f} at the start, {end:.2f} at the end.\n\n" + table(med)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(run(args.runs))


if __name__ == "__main__":
    sys.exit(main())
