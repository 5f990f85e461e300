"""Per-device compiled memory of sharded initialization (8 simulated CPU devices).

For a 4096x4096 float32 weight sharded over a (4, 2) mesh, ``P("x", "y")``:
each device's output and temporary bytes from ``compiled.memory_analysis()``,
under ``jax.jit(init, out_shardings=...)``, for jaxinit and the
``jax.nn.initializers`` equivalent. Run: ``python benchmarks/bench_sharding.py``.
"""

import argparse
import json

from _common import markdown_table, run_script

SHAPE = (4096, 4096)


def measure() -> list[dict[str, object]]:
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
        rows.append(row)
    return rows


def run() -> str:
    """Measures in a fresh 8-device process; returns the Markdown section."""
    rows = json.loads(run_script([__file__, "--measure"]))
    mib = 2**20

    def cell(row: dict[str, object], name: str) -> str:
        value = row.get(name)
        return "-" if value is None else f"{int(value) / mib:.1f}"  # type: ignore[call-overload]

    table = markdown_table(
        (
            "initializer",
            "jaxinit out MiB/device",
            "jaxinit temp MiB/device",
            "jax.nn out MiB/device",
            "jax.nn temp MiB/device",
        ),
        [
            (
                r["name"],
                cell(r, "jaxinit_out"),
                cell(r, "jaxinit_temp"),
                cell(r, "jax_out"),
                cell(r, "jax_temp"),
            )
            for r in rows
        ],
    )
    return (
        f"{SHAPE[0]}x{SHAPE[1]} float32 (64 MiB; a shard is 8 MiB) over 8 simulated "
        "CPU devices, mesh (4, 2), P('x', 'y'), `jax.jit(out_shardings=...)`.\n\n"
        f"{table}\n"
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
