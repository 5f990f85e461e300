"""Peak memory of a one-shot ~1B-parameter init with ``jaxinit.init_tree``.

A GPT-style model (d_model 2048, 18 blocks, 50257-token embedding: 1.01 B
float32 parameters, 4.0 GB) is initialized in a fresh process; the figure is the
process's peak RSS (``ru_maxrss``) against the parameter bytes, both raw and
above the RSS just before the call (imports, jax runtime).
Run: ``python benchmarks/bench_memory.py`` (one run: it needs ~5 GB free).
"""

import argparse
import json
import math
import resource
import time

from _common import markdown_table, run_script

D_MODEL, BLOCKS, VOCAB = 2048, 18, 50257


def shapes() -> dict[str, tuple[str, tuple[int, ...]]]:
    d = D_MODEL
    spec: dict[str, tuple[str, tuple[int, ...]]] = {"wte": ("embed", (VOCAB, d))}
    for i in range(BLOCKS):
        spec[f"h/{i}/qkv"] = ("weight", (d, 3 * d))
        spec[f"h/{i}/proj"] = ("weight", (d, d))
        spec[f"h/{i}/fc1"] = ("weight", (d, 4 * d))
        spec[f"h/{i}/fc2"] = ("weight", (4 * d, d))
        for name in ("ln1", "ln2"):
            spec[f"h/{i}/{name}/scale"] = ("ones", (d,))
            spec[f"h/{i}/{name}/bias"] = ("zeros", (d,))
    return spec


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure() -> dict[str, float]:
    import jax

    import jaxinit
    from jaxinit._tree import init_tree

    inits = {
        "embed": jaxinit.normal(),
        "weight": jaxinit.kaiming_uniform(a=math.sqrt(5)),
        "ones": jaxinit.ones(),
        "zeros": jaxinit.zeros(),
    }
    spec = {
        path: (inits[role], shape, None) for path, (role, shape) in shapes().items()
    }
    param_bytes = 4 * sum(math.prod(shape) for _, shape in shapes().values())
    jax.block_until_ready(jax.random.uniform(jax.random.key(0), (8,)))  # runtime up
    before = _rss_bytes()
    start = time.perf_counter()
    params = jax.block_until_ready(init_tree(jax.random.key(0), spec))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert len(params) == len(spec)
    return {
        "param_bytes": param_bytes,
        "rss_before": before,
        "peak_rss": peak,
        "seconds": seconds,
    }


def run() -> str:
    """Runs the measurement in a fresh process; returns the Markdown section."""
    m = json.loads(run_script([__file__, "--measure"]))
    gb = 1e9
    row = (
        f"{m['param_bytes'] / 4e9:.2f} B",
        f"{m['param_bytes'] / gb:.2f}",
        f"{m['rss_before'] / gb:.2f}",
        f"{m['peak_rss'] / gb:.2f}",
        f"{m['peak_rss'] / m['param_bytes']:.3f}x",
        f"{(m['peak_rss'] - m['rss_before']) / m['param_bytes']:.3f}x",
        f"{m['seconds']:.1f}",
    )
    header = (
        "params",
        "param GB",
        "RSS before GB",
        "peak RSS GB",
        "peak / params",
        "(peak - before) / params",
        "init s",
    )
    return markdown_table(header, [row]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
    else:
        print(run())


if __name__ == "__main__":
    main()
