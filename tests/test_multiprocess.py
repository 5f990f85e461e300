"""Past one machine: 2 processes x 4 CPU devices under jax.distributed (gloo, on
127.0.0.1), an 8-device global mesh. init_tree(out_shardings=) and torch_init
(nnx and linen, abstract models sharded over the global mesh) give each process
only its addressable shards, equal to the single-process values; no process holds
a whole sharded leaf; the host-side work (leaf keys, the plan handed to
init_tree) is the same in every process. tests/_multiprocess_worker.py is one
process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")

import _multiprocess_worker as worker
from flax import nnx, traverse_util
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jaxinit.flax
from jaxinit._tree import init_tree

# Both processes start, import jax and flax, compile and draw: ~40 s measured on
# a loaded 2-core machine; a hung rendezvous must not hang the suite.
TIMEOUT_S = 120
KEY = jax.random.key(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs the two worker processes; returns the folder they wrote to."""
    out = tmp_path_factory.mktemp("multiprocess")
    port = str(free_port())
    tests = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests)]))
    env.pop("XLA_FLAGS", None)  # the parent's simulated device count is not theirs
    launched = [
        subprocess.Popen(
            [
                sys.executable,
                str(tests / "_multiprocess_worker.py"),
                port,
                str(rank),
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(worker.PROCESSES)
    ]
    logs = []
    try:
        for process in launched:
            logs.append(process.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker processes did not finish in {TIMEOUT_S} s")
    finally:
        for process in launched:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for rank, (process, log) in enumerate(zip(launched, logs, strict=True)):
        assert process.returncode == 0, f"process {rank} failed:\n{log[-4000:]}"
    return out


def single_process_values() -> dict[str, np.ndarray]:
    """The same leaves and models in this process (8 devices, one process):
    unsharded, except the block-QR leaf, whose bits depend on the device count."""
    values = {}
    spec = worker.init_tree_spec()
    mesh = jax.make_mesh(
        worker.MESH_SHAPE, worker.MESH_AXES, axis_types=(AxisType.Auto,) * 2
    )
    tall = {"out/kernel": NamedSharding(mesh, P(*worker.LEAVES["out/kernel"][2]))}
    for path, value in init_tree(KEY, spec, out_shardings=tall).items():
        values[f"tree/{path}"] = np.asarray(value)
    model = worker.nnx_model(False)
    jaxinit.flax.torch_init(model, KEY)
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        values["nnx/" + "/".join(path)] = np.asarray(variable.get_value())
    module, x = worker.linen_module(False), jnp.ones((2, 32))
    variables = jax.eval_shape(module.init, jax.random.key(1), x)
    new = jaxinit.flax.torch_init(module, KEY, variables=variables, args=(x,))
    for path, value in traverse_util.flatten_dict(dict(new["params"])).items():
        values["linen/" + "/".join(path)] = np.asarray(value)
    return values


def partition(name: str) -> tuple:
    kind, _, path = name.partition("/")
    if kind == "tree":
        return worker.LEAVES[path][2]
    return worker.PARAMS.get(tuple(path.split("/")), ())


def test_each_process_holds_only_its_shards_equal_to_one_process(processes):
    expected = single_process_values()
    covered = {name: np.zeros(value.shape, int) for name, value in expected.items()}
    for rank in range(worker.PROCESSES):
        held = np.load(processes / f"shards{rank}.npz")
        mine = {name: np.zeros(value.shape, bool) for name, value in expected.items()}
        for entry in held.files:
            name, _, index = entry.partition("|")
            where = tuple(
                slice(*map(int, bounds.split(":"))) for bounds in index.split(",")
            )
            np.testing.assert_array_equal(held[entry], expected[name][where], entry)
            mine[name][where] = True
        for name, cells in mine.items():
            assert cells.any(), f"process {rank} holds nothing of {name}"
            if any(partition(name)):  # sharded: never whole in one process
                assert not cells.all(), f"process {rank} holds all of {name}"
            covered[name] += cells
    for name, count in covered.items():
        assert count.min() >= 1, f"no process holds part of {name}"


def test_host_side_work_is_the_same_in_every_process(processes):
    hosts = [
        json.loads((processes / f"host{rank}.json").read_text())
        for rank in range(worker.PROCESSES)
    ]
    assert hosts[0] == hosts[1]
    assert len(hosts[0]["plans"]) == 2  # nnx, then linen
