"""Per-device compiled memory of sharded initialization (8 simulated CPU devices).

For a 4096x4096 float32 weight sharded over a (4, 2) mesh, ``P("x", "y")``:
each device's output and temporary bytes from ``compiled.memory_analysis()``,
under ``jax.jit(init, out_shardings=...)``, for jaxinit and the
``jax.nn.initializers`` equivalent, and under jaxinit's own ``out_sharding=``.
Then orthogonal on a tall Flax Dense kernel (16384, 512) over 8 devices, rows
sharded, where jaxinit's ``out_sharding=`` takes the tall-skinny QR over row
blocks: memory against the full QR under an outer ``jit(out_shardings=...)``
(jaxinit and jax.nn, whose initializer raises NotImplementedError for
``out_sharding``), and the time of one call sharded and unsharded. Then the
block QR's per-device temporaries against the full QR's for several tall
shapes (compiled only). Run: ``python benchmarks/bench_sharding.py``.

Whole model (``--tree``): ``init_tree`` of GPT-2 small (124 M parameters, 148
leaves) on 8 simulated CPU devices, unsharded and with every leaf sharded
(``model8``: kernels over a ("model",) axis of 8, by columns or rows, vectors
split 8 ways; ``mesh42``: kernels ``P("x", "y")`` on a (4, 2) mesh), each with
the host and the device assembly path: the first call in fresh processes
(median of 3), the steady state (median of 3 calls in each process, then the
median over processes) and the largest per-device bytes of the result.
``python benchmarks/bench_sharding.py --tree-only`` prints that table alone.
"""

import argparse
import json
import math
import statistics
import time
from typing import Any

from _common import markdown_table, median_seconds, run_script

SHAPE = (4096, 4096)
TALL_SHAPE = (16384, 512)  # Flax Dense (in, out): torch's wide (512, 16384)
# Flax Dense kernels (in, out) whose rows split in 8 tall blocks.
QR_SHAPES = ((8192, 512), (16384, 512), (32768, 1024), (65536, 256))


def measure() -> dict[str, object]:
    """The per-initializer rows and the tall orthogonal row, in one 8-device run."""
    import jax

    jax.config.update("jax_num_cpu_devices", 8)
    from jax.sharding import NamedSharding, PartitionSpec as P

    import jaxinit

    jnn = jax.nn.initializers
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    sharding = NamedSharding(mesh, P("x", "y"))
    key = jax.random.key(0)
    cases = [
        ("uniform", jaxinit.uniform(), jnn.uniform(1.0)),
        ("normal", jaxinit.normal(), jnn.normal(1.0)),
        (
            "trunc_normal(std=1)",
            jaxinit.trunc_normal(std=1.0),
            jnn.truncated_normal(1.0),
        ),
        ("kaiming_uniform", jaxinit.kaiming_uniform(), jnn.he_uniform()),
        ("orthogonal", jaxinit.orthogonal(), jnn.orthogonal()),
        ("sparse(0.1)", jaxinit.sparse(0.1), None),
    ]
    rows = []
    for name, ours, theirs in cases:
        row: dict[str, object] = {"name": name}
        for side, init in (("jaxinit", ours), ("jax", theirs)):
            if init is None:
                continue
            fn = jax.jit(lambda k, init=init: init(k, SHAPE), out_shardings=sharding)
            memory = fn.lower(key).compile().memory_analysis()
            row[f"{side}_temp"] = memory.temp_size_in_bytes
            row[f"{side}_out"] = memory.output_size_in_bytes
        # The initializer's own out_sharding=, which orthogonal and sparse see.
        with jax.set_mesh(mesh):
            fn = jax.jit(lambda k, init=ours: init(k, SHAPE, out_sharding=sharding))
            row["own_temp"] = (
                fn.lower(key).compile().memory_analysis().temp_size_in_bytes
            )
        rows.append(row)
    return {
        "rows": rows,
        "tall": measure_tall_orthogonal(),
        "block_qr": measure_block_qr(),
    }


def measure_tall_orthogonal() -> dict[str, object]:
    """Per-device bytes and call time of orthogonal on TALL_SHAPE, rows sharded."""
    import jax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    import jaxinit

    mesh = jax.make_mesh((8,), ("x",), axis_types=(AxisType.Auto,))
    sharding = NamedSharding(mesh, P("x", None))
    key = jax.random.key(0)
    ours, theirs = jaxinit.orthogonal(), jax.nn.initializers.orthogonal()
    programs = {
        "jaxinit out_sharding=": jax.jit(
            lambda k: ours(k, TALL_SHAPE, out_sharding=sharding)
        ),
        "jaxinit jit(out_shardings=)": jax.jit(
            lambda k: ours(k, TALL_SHAPE), out_shardings=sharding
        ),
        "jax.nn jit(out_shardings=)": jax.jit(
            lambda k: theirs(k, TALL_SHAPE), out_shardings=sharding
        ),
    }
    memory = {}
    for name, fn in programs.items():
        stats = fn.lower(key).compile().memory_analysis()
        memory[name] = (stats.output_size_in_bytes, stats.temp_size_in_bytes)
    sharded = median_seconds(
        lambda: ours(key, TALL_SHAPE, out_sharding=sharding).block_until_ready()
    )
    unsharded = median_seconds(lambda: ours(key, TALL_SHAPE).block_until_ready())
    return {"memory": memory, "sharded_s": sharded, "unsharded_s": unsharded}


def measure_block_qr() -> list[tuple[int, int, int, int, int]]:
    """Per QR_SHAPES: (rows, cols, block QR temp, full QR temp, matrix) bytes."""
    import jax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    import jaxinit

    mesh = jax.make_mesh((8,), ("x",), axis_types=(AxisType.Auto,))
    sharding = NamedSharding(mesh, P("x", None))
    key, init = jax.random.key(0), jaxinit.orthogonal()
    rows = []
    for shape in QR_SHAPES:
        block = jax.jit(lambda k, shape=shape: init(k, shape, out_sharding=sharding))
        full = jax.jit(lambda k, shape=shape: init(k, shape), out_shardings=sharding)
        temps = [
            fn.lower(key).compile().memory_analysis().temp_size_in_bytes
            for fn in (block, full)
        ]
        rows.append((*shape, *temps, shape[0] * shape[1] * 4))
    return rows


def run() -> str:
    """Measures in a fresh 8-device process; returns the Markdown section."""
    measured = json.loads(run_script([__file__, "--measure"]))
    rows, tall = measured["rows"], measured["tall"]
    mib = 2**20

    def cell(row: dict[str, object], name: str) -> str:
        value = row.get(name)
        return "-" if value is None else f"{int(value) / mib:.1f}"  # type: ignore[call-overload]

    table = markdown_table(
        (
            "initializer",
            "jaxinit out MiB/device",
            "jaxinit temp MiB/device",
            "jaxinit out_sharding= temp MiB/device",
            "jax.nn out MiB/device",
            "jax.nn temp MiB/device",
        ),
        [
            (
                r["name"],
                cell(r, "jaxinit_out"),
                cell(r, "jaxinit_temp"),
                cell(r, "own_temp"),
                cell(r, "jax_out"),
                cell(r, "jax_temp"),
            )
            for r in rows
        ],
    )
    tall_table = markdown_table(
        ("orthogonal program", "out MiB/device", "temp MiB/device"),
        [
            (name, f"{out / mib:.1f}", f"{temp / mib:.1f}")
            for name, (out, temp) in tall["memory"].items()
        ],
    )
    qr_table = markdown_table(
        (
            "Flax kernel",
            "matrix MiB",
            "block QR temp MiB/device",
            "full QR temp MiB/device",
            "block / matrix",
        ),
        [
            (
                f"{m}x{n}",
                f"{size / mib:.1f}",
                f"{block / mib:.1f}",
                f"{full / mib:.1f}",
                f"{block / size:.2f}",
            )
            for m, n, block, full, size in measured["block_qr"]
        ],
    )
    return (
        f"{SHAPE[0]}x{SHAPE[1]} float32 (64 MiB; a shard is 8 MiB) over 8 simulated "
        "CPU devices, mesh (4, 2), P('x', 'y'), `jax.jit(out_shardings=...)`, and "
        "the initializer's own `out_sharding=` (the only way orthogonal and sparse "
        "see the sharding: sparse then walks its mask by columns per device; a "
        "square orthogonal has no tall blocks and runs the whole QR).\n\n"
        f"{table}\n\n"
        f"Orthogonal on a tall Flax Dense kernel {TALL_SHAPE[0]}x{TALL_SHAPE[1]} "
        "float32 (32 MiB; a shard is 4 MiB) over 8 simulated CPU devices, mesh (8,), "
        "P('x', None): jaxinit's `out_sharding=` takes the tall-skinny QR over row "
        "blocks; under an outer `jit(out_shardings=...)` the initializer cannot see "
        "the sharding and every device runs the whole QR.\n\n"
        f"{tall_table}\n\n"
        "One call, median of 5 (OPENBLAS_NUM_THREADS=1; the 8 simulated devices "
        f"share this machine's cores): sharded {tall['sharded_s']:.2f} s, unsharded "
        f"on one device {tall['unsharded_s']:.2f} s.\n\n"
        "The block QR's per-device temporaries (compiled `memory_analysis()`) for "
        "tall float32 Flax kernels over 8 devices, rows sharded, against the full "
        "QR under an outer `jit(out_shardings=...)`: the R factors merge by a "
        "tree of collective permutes, so a device holds its rows and a few "
        "n x n factors, never the matrix.\n\n"
        f"{qr_table}\n"
    )


TREE_CASES = (
    ("unsharded", False),
    ("unsharded", True),
    ("model8", False),
    ("model8", True),
    ("mesh42", False),
    ("mesh42", True),
)


def gpt2_tree(mode: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """GPT-2 small's init_tree spec (torch's defaults) and its shardings."""
    import jax
    from bench_models import SQRT5, _bias_bound, _shape
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    from models import gpt2_small

    import jaxinit

    def init(role: str) -> Any:
        if role == "weight":
            return jaxinit.kaiming_uniform(a=SQRT5)
        if role.startswith("bias"):
            return jaxinit.uniform(-_bias_bound(role), _bias_bound(role))
        return {
            "ones": jaxinit.ones(),
            "zeros": jaxinit.zeros(),
            "embed": jaxinit.normal(),
            "pos": jaxinit.normal(std=0.02),
        }[role]

    spec = {path: (init(role), _shape(role, s), None) for path, role, s in gpt2_small()}
    if mode == "unsharded":
        return spec, None
    shardings = {}
    if mode == "model8":
        mesh = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Auto,))
        for path, (_, shape, _) in spec.items():
            by_columns = path == "wte" or path.endswith(
                ("c_attn/kernel", "c_fc/kernel")
            )
            if len(shape) == 1:
                names = P("model")
            else:
                names = P(None, "model") if by_columns else P("model", None)
            shardings[path] = NamedSharding(mesh, names)
        return spec, shardings
    mesh = jax.make_mesh((4, 2), ("x", "y"), axis_types=(AxisType.Auto,) * 2)
    for path, (_, shape, _) in spec.items():
        if len(shape) == 1:
            names = P(("x", "y"))
        else:  # the vocabulary, 50257, does not split
            names = P(None, ("x", "y")) if path == "wte" else P("x", "y")
        shardings[path] = NamedSharding(mesh, names)
    return spec, shardings


def measure_tree(mode: str, device_assembly: bool) -> dict[str, float]:
    """First call, steady state and per-device bytes, in this fresh process."""
    import jax

    jax.config.update("jax_num_cpu_devices", 8)
    from jaxinit import _engine, init_tree

    _engine.DEVICE_ASSEMBLY = device_assembly
    spec, shardings = gpt2_tree(mode)
    key = jax.random.key(0)

    def call() -> dict[str, jax.Array]:
        params = init_tree(key, spec, out_shardings=shardings)
        return jax.block_until_ready(params)

    start = time.perf_counter()
    params = call()
    first = time.perf_counter() - start
    per_device: dict[int, int] = {}
    for value in params.values():
        for shard in value.addressable_shards:
            device = shard.device.id
            per_device[device] = per_device.get(device, 0) + shard.data.nbytes
    del params
    steady = median_seconds(call, runs=3, warmup=0)
    total = sum(math.prod(shape) * 4 for _, shape, _ in spec.values())
    return {
        "first": first,
        "steady": steady,
        "per_device": max(per_device.values()),
        "total": total,
    }


def run_tree(first_runs: int = 3) -> str:
    """GPT-2 small through init_tree, sharded or not, host or device assembly."""
    rows = []
    baseline: dict[bool, float] = {}
    for mode, on_device in TREE_CASES:
        args = [__file__, "--tree", mode] + (["--device-assembly"] if on_device else [])
        runs = [json.loads(run_script(args)) for _ in range(first_runs)]
        first = statistics.median(r["first"] for r in runs)
        steady = statistics.median(r["steady"] for r in runs)
        if mode == "unsharded":
            baseline[on_device] = first
        rows.append(
            (
                mode,
                "device" if on_device else "host",
                f"{first:.2f}",
                f"{first / baseline[on_device]:.2f}x",
                f"{steady:.2f}",
                f"{runs[0]['per_device'] / 2**20:.1f}",
                f"{runs[0]['total'] / 2**20:.1f}",
            )
        )
    table = markdown_table(
        (
            "shardings",
            "assembly",
            "first call s",
            "vs unsharded",
            "steady s",
            "max MiB/device",
            "model MiB",
        ),
        rows,
    )
    return (
        "`init_tree` of GPT-2 small (124 M float32 parameters, 148 leaves) on 8 "
        "simulated CPU devices: unsharded (every leaf on device 0); `model8`, "
        'every leaf sharded over a ("model",) axis of 8 (c_attn, c_fc and wte '
        "by columns, the other kernels by rows, vectors 8 ways); `mesh42`, "
        'kernels `P("x", "y")` on a (4, 2) mesh. Host assembly is the CPU '
        "default; the device path (the default off the CPU) is forced here. "
        f"First call: fresh processes, median of {first_runs}; steady: median "
        "of 3 calls per process.\n\n"
        f"{table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--tree", choices=("unsharded", "model8", "mesh42"))
    parser.add_argument("--device-assembly", action="store_true")
    parser.add_argument("--tree-only", action="store_true")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
    elif args.tree:
        print(json.dumps(measure_tree(args.tree, args.device_assembly)))
    elif args.tree_only:
        print(run_tree())
    else:
        print(run())


if __name__ == "__main__":
    main()
