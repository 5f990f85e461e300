"""Per-device compiled memory of sharded initialization (8 simulated CPU devices).

For a 4096x4096 float32 weight sharded over a (4, 2) mesh, ``P("x", "y")``:
each device's output and temporary bytes from ``compiled.memory_analysis()``,
under ``jax.jit(init, out_shardings=...)``, for jaxinit and the
``jax.nn.initializers`` equivalent, and under jaxinit's own ``out_sharding=``.
Then orthogonal on a tall Flax Dense kernel (16384, 512) over 8 devices, rows
sharded, where jaxinit's ``out_sharding=`` takes the tall-skinny QR over row
blocks: memory against the full QR under an outer ``jit(out_shardings=...)``
(jaxinit and jax.nn, whose initializer raises NotImplementedError for
``out_sharding``), and the time of one call sharded and unsharded. Last, the
block QR's per-device temporaries against the full QR's for several tall
shapes (compiled only). Run: ``python benchmarks/bench_sharding.py``.
"""

import argparse
import json

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true")
    if parser.parse_args().measure:
        print(json.dumps(measure()))
    else:
        print(run())


if __name__ == "__main__":
    main()
