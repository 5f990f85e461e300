"""Whole-model init: ViT-B/16, ResNet-50, GPT-2 small parameter shapes.

Sides: ``jaxinit.init_tree`` (jaxinit initializers matching torch's defaults),
jax's one-jit init (``jax.jit`` of a dict of ``jax.nn.initializers``-style
calls, one folded key per leaf), torch (``torch.empty`` + the module
constructors' ``torch.nn.init`` calls, 2 threads) and numpy (``default_rng``,
float32). First call: each side in a fresh process (no persistent compilation
cache), timing only the init call, imports excluded: the median of
``--first-runs`` such processes per side. Steady state: median of ``--runs``
calls in one process, round-robin.
Run: ``python benchmarks/bench_models.py``; ``--common`` measures the common
path instead (a GPT-2 small built as users build it: eager nnx,
``jaxinit.flax.init``, ``jax.jit(module.init)``, ``nnx.jit``, torch; see
``common_path.py``).
"""

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import common_path
from _common import markdown_table, ratio, run_script
from models import MODELS, Leaf, flax_shape, param_count

SIDES = ("jaxinit", "jax", "torch", "numpy")
SQRT5 = math.sqrt(5.0)
# jax's one-jit init compiles for 8 s on its first call: one fresh process is
# enough to show it, and keeps run_all short.
SLOW = ("jax",)
# First-call medians of the last run(), by (side, model), for first_build's table.
FIRST: dict[tuple[str, str], dict[str, float]] = {}


def _bias_bound(role: str) -> float:
    return 1.0 / math.sqrt(int(role.split(":")[1]))


def _shape(role: str, torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    return flax_shape(torch_shape) if role == "weight" else torch_shape


def build(side: str, leaves: list[Leaf]) -> Callable[[], Any]:
    """A zero-argument function that initializes every leaf and blocks."""
    if side == "jaxinit":
        import jax

        import jaxinit
        from jaxinit._tree import init_tree

        def jaxinit_init(role: str) -> Any:
            if role == "weight":
                return jaxinit.kaiming_uniform(a=SQRT5)
            if role.startswith("bias"):
                bound = _bias_bound(role)
                return jaxinit.uniform(-bound, bound)
            return {
                "ones": jaxinit.ones(),
                "zeros": jaxinit.zeros(),
                "embed": jaxinit.normal(),
                "pos": jaxinit.normal(std=0.02),
            }[role]

        spec = {
            path: (jaxinit_init(role), _shape(role, s), None)
            for path, role, s in leaves
        }
        key = jax.random.key(0)
        return lambda: jax.block_until_ready(init_tree(key, spec))
    if side == "jax":
        import jax
        import jax.numpy as jnp

        jnn = jax.nn.initializers

        def jax_init(role: str) -> Any:
            if role == "weight":  # kaiming_uniform(a=sqrt(5)): var = 1 / (3 fan_in)
                return jnn.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
            if role.startswith("bias"):
                bound = _bias_bound(role)
                return lambda k, s, d: jax.random.uniform(k, s, d, -bound, bound)
            return {
                "ones": jnn.ones,
                "zeros": jnn.zeros,
                "embed": jnn.normal(1.0),
                "pos": jnn.normal(0.02),
            }[role]

        plan = [(path, jax_init(role), _shape(role, s)) for path, role, s in leaves]

        @jax.jit
        def one_jit(key: Any) -> dict[str, Any]:
            return {
                path: init(jax.random.fold_in(key, i), shape, jnp.float32)
                for i, (path, init, shape) in enumerate(plan)
            }

        key = jax.random.key(0)
        return lambda: jax.block_until_ready(one_jit(key))
    if side == "torch":
        import torch

        torch.set_num_threads(2)
        init = torch.nn.init

        def torch_leaf(role: str, shape: tuple[int, ...]) -> Any:
            t = torch.empty(shape)
            if role == "weight":
                return init.kaiming_uniform_(t, a=SQRT5)
            if role.startswith("bias"):
                bound = _bias_bound(role)
                return init.uniform_(t, -bound, bound)
            if role == "ones":
                return init.ones_(t)
            if role == "zeros":
                return init.zeros_(t)
            return init.normal_(t, std=0.02 if role == "pos" else 1.0)

        return lambda: {path: torch_leaf(role, s) for path, role, s in leaves}
    if side == "numpy":
        import numpy as np

        rng = np.random.default_rng(0)
        f32 = np.float32

        def numpy_leaf(role: str, shape: tuple[int, ...]) -> Any:
            if role == "weight":
                fan_in = math.prod(shape[1:])
                bound = 1.0 / math.sqrt(fan_in)  # gain sqrt(2/6) * sqrt(3/fan_in)
                return rng.uniform(-bound, bound, shape).astype(f32)
            if role.startswith("bias"):
                bound = _bias_bound(role)
                return rng.uniform(-bound, bound, shape).astype(f32)
            if role in ("ones", "zeros"):
                return np.full(shape, 1.0 if role == "ones" else 0.0, f32)
            std = f32(0.02 if role == "pos" else 1.0)
            return rng.standard_normal(shape, dtype=f32) * std

        return lambda: {path: numpy_leaf(role, s) for path, role, s in leaves}
    raise ValueError(side)


def first_call(side: str, model: str) -> dict[str, float]:
    """In this (fresh) process: import time and the first call's wall and CPU time."""
    start = time.perf_counter()
    fn = build(side, MODELS[model]())
    built, cpu = time.perf_counter(), time.process_time()
    fn()
    return {
        "import_s": built - start,
        "first_s": time.perf_counter() - built,
        "first_cpu_s": time.process_time() - cpu,
    }


def steady(model: str, runs: int) -> dict[str, float]:
    """Median steady-state seconds of every side, round-robin, one process."""
    fns = {side: build(side, MODELS[model]()) for side in SIDES}
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(runs):
        for side, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    return {side: statistics.median(t) for side, t in times.items()}


def run(runs: int = 5, models: list[str] | None = None, first_runs: int = 3) -> str:
    """Measures every model and returns the Markdown report section."""
    env = {"JAX_ENABLE_COMPILATION_CACHE": "false", "OPENBLAS_NUM_THREADS": "1"}
    rows = []
    for model in models or list(MODELS):
        # Fresh processes, round-robin over the sides; the median per side.
        samples: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
        for round_ in range(first_runs):
            for side in SIDES:
                if round_ and side in SLOW:
                    continue
                result = run_script([__file__, "--first", side, model], env=env)
                samples[side].append(json.loads(result))
        steady_s = steady(model, runs)
        params = param_count(MODELS[model]())
        for side, got in samples.items():
            FIRST[(side, model)] = {
                k: statistics.median(s[k] for s in got)
                for k in ("first_s", "first_cpu_s")
            }
        f = {side: FIRST[(side, model)]["first_s"] for side in SIDES}
        rows.append(
            (
                model,
                f"{params / 1e6:.1f} M",
                len(MODELS[model]()),
                *(f"{f[side]:.2f}" for side in SIDES),
                *(f"{steady_s[side]:.3f}" for side in SIDES),
                ratio(f["jaxinit"], f["torch"]),
                ratio(steady_s["jaxinit"], steady_s["jax"]),
                ratio(steady_s["jaxinit"], steady_s["torch"]),
            )
        )
        print(rows[-1], flush=True)
    header = (
        "model",
        "params",
        "leaves",
        *(f"first {side} s" for side in SIDES),
        *(f"steady {side} s" for side in SIDES),
        "first jaxinit / torch",
        "steady jaxinit / jax",
        "steady jaxinit / torch",
    )
    return (
        f"First call: median of {first_runs} fresh processes per side (one for "
        "jax's one-jit), run round-robin, no persistent compilation cache, init "
        "call only (imports "
        f"excluded). Steady: median of {runs} round-robin calls in one process.\n\n"
        + markdown_table(header, rows)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", nargs=2, metavar=("SIDE", "MODEL"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--first-runs", type=int, default=3)
    parser.add_argument("--model", action="append", choices=list(MODELS))
    parser.add_argument("--common", action="store_true")
    args = parser.parse_args()
    if args.common:
        print(common_path.run(args.first_runs))
        return
    if args.first:
        print(json.dumps(first_call(*args.first)))
        return
    print(run(args.runs, args.model, args.first_runs))


if __name__ == "__main__":
    sys.exit(main())
