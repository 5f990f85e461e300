"""One process of tests/test_multiprocess.py: 4 CPU devices of an 8-device mesh.

Run as ``python _multiprocess_worker.py PORT PROCESS_ID OUT_DIR``: joins the
2-process ``jax.distributed`` runtime on 127.0.0.1:PORT, initializes the same
leaves and models over the global mesh as every other process, and saves what
it holds (each addressable shard, by its index) and its host-side work (each
leaf's key and the plan it handed to ``init_tree``) to OUT_DIR. The module
level touches no backend, so the test imports the specs and models from here.
"""

import json
import sys
from pathlib import Path
from typing import Any

PROCESSES, LOCAL_DEVICES = 2, 4
MESH_SHAPE, MESH_AXES = (4, 2), ("x", "y")
# init_tree leaves: (law, shape, partition spec).
LEAVES = {
    "embed": ("normal", (64, 32), ("x", None)),
    "dense/kernel": ("kaiming_uniform", (32, 128), (None, ("x", "y"))),
    "dense/bias": ("uniform", (128,), (("x", "y"),)),
    "out/kernel": ("orthogonal", (256, 16), (("x", "y"), None)),
    "norm/scale": ("ones", (32,), ()),
}
# nnx and linen models: every parameter's partition names.
PARAMS = {
    ("up", "kernel"): (None, ("x", "y")),
    ("up", "bias"): (("x", "y"),),
    ("down", "kernel"): ("y", "x"),
}


def init_tree_spec() -> dict[str, Any]:
    import jaxinit

    return {
        path: (getattr(jaxinit, law)(), shape, None)
        for path, (law, shape, _) in LEAVES.items()
    }


def nnx_model(sharded: bool) -> Any:
    from flax import nnx

    def init(path: tuple[str, str]) -> Any:
        normal = nnx.initializers.normal()
        return nnx.with_partitioning(normal, PARAMS[path]) if sharded else normal

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.up = nnx.Linear(
                32,
                128,
                kernel_init=init(("up", "kernel")),
                bias_init=init(("up", "bias")),
                rngs=rngs,
            )
            self.down = nnx.Linear(
                128, 32, kernel_init=init(("down", "kernel")), rngs=rngs
            )

    return nnx.eval_shape(lambda: Net(nnx.Rngs(0)))


def linen_module(sharded: bool) -> Any:
    from flax import linen as nn

    def init(path: tuple[str, str]) -> Any:
        normal = nn.initializers.normal()
        return nn.with_partitioning(normal, PARAMS[path]) if sharded else normal

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            x = nn.Dense(
                128,
                kernel_init=init(("up", "kernel")),
                bias_init=init(("up", "bias")),
                name="up",
            )(x)
            return nn.Dense(32, kernel_init=init(("down", "kernel")), name="down")(x)

    return Net()


def main(port: str, process_id: int, out_dir: Path) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", LOCAL_DEVICES)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=PROCESSES,
        process_id=process_id,
        initialization_timeout=60,
    )
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx, traverse_util
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    import jaxinit._reinit
    import jaxinit.flax
    from jaxinit._tree import init_tree, leaf_key

    mesh = jax.make_mesh(MESH_SHAPE, MESH_AXES, axis_types=(AxisType.Auto,) * 2)
    key = jax.random.key(0)
    held: dict[str, np.ndarray] = {}
    host: dict[str, Any] = {"plans": []}

    def keep(name: str, value: jax.Array) -> None:
        assert not value.is_fully_addressable or value.sharding.is_fully_replicated
        for shard in value.addressable_shards:
            assert shard.data.shape == value.sharding.shard_shape(value.shape)
            index = ",".join(
                f"{s.start or 0}:{s.stop or n}"
                for s, n in zip(shard.index, value.shape, strict=True)
            )
            held[f"{name}|{index}"] = np.asarray(shard.data)

    # Record what each process hands init_tree: the same in every process.
    real = jaxinit._reinit.init_tree

    def recording(key: Any, spec: Any, **options: Any) -> Any:
        shardings = options.get("out_shardings") or {}
        host["plans"].append(
            sorted(
                (
                    repr(path),
                    repr(init),
                    shape,
                    str(dtype),
                    str(getattr(shardings.get(path), "spec", None)),
                )
                for path, (init, shape, dtype) in spec.items()
            )
        )
        return real(key, spec, **options)

    jaxinit._reinit.init_tree = recording

    shardings = {
        path: NamedSharding(mesh, P(*names)) for path, (_, _, names) in LEAVES.items()
    }
    for path, value in init_tree(
        key, init_tree_spec(), out_shardings=shardings
    ).items():
        keep(f"tree/{path}", value)
    host["keys"] = {
        path: jax.random.key_data(leaf_key(key, path)).tolist() for path in LEAVES
    }

    with jax.set_mesh(mesh):
        model = nnx_model(True)
        jaxinit.flax.torch_init(model, key)
        for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
            keep("nnx/" + "/".join(path), variable.get_value())

        module, x = linen_module(True), jnp.ones((2, 32))
        variables = jax.eval_shape(module.init, jax.random.key(1), x)
        new = jaxinit.flax.torch_init(module, key, variables=variables, args=(x,))
        for path, leaf in traverse_util.flatten_dict(dict(new["params"])).items():
            value = leaf.value if hasattr(leaf, "names") else leaf
            keep("linen/" + "/".join(path), value)

    np.savez(out_dir / f"shards{process_id}.npz", **held)
    (out_dir / f"host{process_id}.json").write_text(json.dumps(host))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
