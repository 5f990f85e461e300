"""``jaxinit.compare`` on GPT-2 small: Hugging Face's torch model against an nnx port.

The torch side is ``transformers.GPT2LMHeadModel(GPT2Config())`` (124 M
parameters, its own ``_init_weights``); the JAX side the nnx port of
``tests/_gpt2.py``, built abstractly and drawn by ``jaxinit.flax.torch_init``
with three rules. Each run is a fresh process (imports excluded, no persistent
compilation cache): the wall time of one ``compare`` call, split into the
time spent building torch models, drawing the JAX model, and comparing. The
target is under 30 s on the 2-core machine; the load average is printed,
since other processes share it.

Run: ``python benchmarks/bench_compare.py [--runs N]``.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from _common import machine, markdown_table, run_script

TESTS = Path(__file__).resolve().parent.parent / "tests"


def one_run() -> dict[str, float]:
    """One compare call in this process; the seconds of each part."""
    sys.path.insert(0, str(TESTS))
    import _gpt2
    import jax
    import transformers  # noqa: F401  (imported before timing, as a user has)

    import jaxinit

    config = _gpt2.GPT2_SMALL
    spent = {"torch": 0.0, "jax": 0.0}
    make_torch = _gpt2.torch_factory(config)
    make_jax = _gpt2.nnx_init(config, _gpt2.flax_rules(config))

    def torch_model(seed: int) -> object:
        started = time.perf_counter()
        model = make_torch(seed)
        spent["torch"] += time.perf_counter() - started
        return model

    def jax_model(key: jax.Array) -> object:
        started = time.perf_counter()
        model = make_jax(key)
        jax.block_until_ready(jax.tree.leaves(model))
        spent["jax"] += time.perf_counter() - started
        return model

    load = os.getloadavg()[0]
    started = time.perf_counter()
    report = jaxinit.compare(torch_model, jax_model, mapping=_gpt2.MAPPING)
    total = time.perf_counter() - started
    assert report.ok, report.table(failures_only=True)
    return {
        "total": total,
        "torch": spent["torch"],
        "jax": spent["jax"],
        "compare": total - spent["torch"] - spent["jax"],
        "draws": report.draws,
        "pairs": len(report.rows),
        "load": load,
        "detectable": max(row.detectable for row in report.rows),
    }


def run(runs: int = 3) -> str:
    """Markdown: the median of ``runs`` fresh processes, and each run."""
    script = str(Path(__file__).resolve())
    results = [json.loads(run_script([script, "--one"])) for _ in range(runs)]
    rows = [
        [
            f"run {i + 1}",
            f"{r['total']:.1f}",
            f"{r['torch']:.1f}",
            f"{r['jax']:.1f}",
            f"{r['compare']:.1f}",
            int(r["draws"]),
            f"{r['load']:.2f}",
        ]
        for i, r in enumerate(results)
    ]
    median = {k: statistics.median(r[k] for r in results) for k in results[0]}
    rows.append(
        [
            "median",
            f"{median['total']:.1f}",
            f"{median['torch']:.1f}",
            f"{median['jax']:.1f}",
            f"{median['compare']:.1f}",
            int(median["draws"]),
            f"{median['load']:.2f}",
        ]
    )
    header = [
        "",
        "compare (s)",
        "torch builds (s)",
        "JAX draws (s)",
        "statistics (s)",
        "draws",
        "load average",
    ]
    worst = max(r["detectable"] for r in results)
    return (
        f"`jaxinit.compare` on GPT-2 small ({int(median['pairs'])} parameter pairs, "
        "Hugging Face `GPT2LMHeadModel` against the nnx port), one call per fresh "
        f"process, imports excluded; target < 30 s. Largest detectable std error "
        f"over all rows: {100 * worst:.1f}%.\n\n" + markdown_table(header, rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run()))
        return
    print(f"Machine: {machine()}\n")
    print(run(args.runs))


if __name__ == "__main__":
    main()
