"""The draw engine: leaves in, arrays out, with the shape-independent programs.

Its clients are ``init_tree`` (many leaves, each with its leaf key, some
sharded) and eager initializer calls (one leaf under the key given): both hand
over ``_assembly.Leaf``s, whose row plan the initializer chose
(``InitializerBase.law``); the engine never looks at an initializer.

Leaves of one (law, dtype) are drawn together: every device gets a queue of
rows (unsharded leaves the default device's), each shard's rows at the next
free rows of its queue (``_geometry``); the program of that law and dtype draws
one block of every queue per dispatch, the next block is dispatched while the
last one is assembled (``_assembly``), so peak memory is the parameters plus a
few blocks; host buffers are mapped by worker threads ahead of their rows, and
the programs compile in worker threads from the moment a client knows a law
(``compile_ahead``). On the host path a shard is drawn once, by its least loaded
holder, then copied to the others; on the device path by every holder, at
the same rows of every queue when the shards are cut alike, so that one
program cuts them all. Constants are filled on the host.
"""

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from . import _assembly, _programs
from ._assembly import Job, Leaf, Results, Shard
from ._geometry import same_cut, segments, shard_rows
from ._keys import Path

# None: assemble on the host on the CPU backend, on the device elsewhere. Tests
# set it to force one path.
DEVICE_ASSEMBLY: bool | None = None


def assemble_on_device() -> bool:
    """Whether drawn rows are assembled into leaves on the device.

    On the CPU backend host memory is device memory, and numpy's copies into
    one buffer per leaf measured fastest. Elsewhere a round trip through the
    host would cross PCIe twice and need the whole model in host RAM.
    """
    if DEVICE_ASSEMBLY is not None:
        return DEVICE_ASSEMBLY
    return jax.default_backend() != "cpu"


def draw(
    leaves: Sequence[Leaf],
    shardings: Mapping[Path, jax.sharding.Sharding],
    *,
    on_device: bool | None = None,
) -> dict[Path, jax.Array]:
    """Every leaf, ``{path: array}``, on its sharding or the default device.

    ``on_device`` None follows ``assemble_on_device()``.
    """
    if on_device is None:
        on_device = assemble_on_device()
    out: dict[Path, jax.Array] = {}
    by_law: dict[tuple[np.dtype, str], list[Leaf]] = defaultdict(list)
    constants: dict[Path, np.ndarray] = {}
    mesh = lane_mesh(shardings)
    for leaf in leaves:
        sharding = shardings.get(leaf.path)
        if leaf.plan.law != "constant":
            by_law[(leaf.dtype, leaf.plan.law)].append(leaf)
            compile_ahead(leaf.dtype, leaf.plan, None if sharding is None else mesh)
        elif sharding is None:
            constants[leaf.path] = _assembly.filled(
                leaf.plan.params[0], leaf.shape, leaf.dtype
            )
        else:
            out[leaf.path] = _constant_sharded(leaf, sharding)
    out.update(zip(constants, jax.device_put(list(constants.values())), strict=True))
    for (dtype, law), group in by_law.items():
        _draw_law(dtype, law, group, shardings, mesh, out, on_device)
    return out


def lane_mesh(
    shardings: Mapping[Path, jax.sharding.Sharding],
) -> jax.sharding.Mesh | None:
    """The 1-D mesh of every device the call's shardings name; None: none.

    Every one of them draws in every law's program, so that one program (one
    mesh of lanes) serves the whole call.
    """
    devices = {
        d for sharding in shardings.values() for d in sharding.addressable_devices
    }
    ordered = sorted(devices, key=lambda device: device.id)  # type: ignore[attr-defined]
    return jax.sharding.Mesh(np.array(ordered), ("rows",)) if devices else None


def compile_ahead(
    dtype: np.dtype, plan: _programs.RowPlan, mesh: jax.sharding.Mesh | None
) -> None:
    """Starts compiling the program that draws ``plan``, unless compiled.

    On ``mesh``'s lanes (None: the default device), in a worker thread.
    Clients call it as soon as they know a leaf's plan, so that XLA compiles
    while they prepare the other leaves; ``draw`` calls it too.
    """
    if plan.law != "constant":
        _programs.compile_ahead([(mesh, dtype, plan.law)])


def _constant_sharded(leaf: Leaf, sharding: jax.sharding.Sharding) -> jax.Array:
    """A constant leaf placed shard by shard: one shard-sized host fill."""
    shard_shape = sharding.shard_shape(leaf.shape)
    value = _assembly.filled(leaf.plan.params[0], shard_shape, leaf.dtype)
    devices = list(sharding.addressable_devices_indices_map(leaf.shape))
    shards = jax.device_put([value] * len(devices), devices)
    return jax.make_array_from_single_device_arrays(leaf.shape, sharding, shards)


def _draw_law(
    dtype: np.dtype,
    law: str,
    leaves: list[Leaf],
    shardings: Mapping[Path, jax.sharding.Sharding],
    mesh: jax.sharding.Mesh | None,
    out: dict[Path, jax.Array],
    on_device: bool,
) -> None:
    """Draws the leaves of one law and dtype: queues of jobs, then blocks."""
    default: list[Job] = []
    lane_devices = [] if mesh is None else list(mesh.devices.flat)
    queues: dict[jax.Device, list[Job]] = {device: [] for device in lane_devices}
    totals: dict[jax.Device | None, int] = defaultdict(int)  # rows of each queue

    def enqueue(lane: jax.Device | None, job: Job, start: int) -> None:
        job.start, job.segments = start, segments(job.rows)
        totals[lane] = start + job.rows.take.size
        (default if lane is None else queues[lane]).append(job)

    for leaf in leaves:
        full = tuple(slice(None) for _ in leaf.shape)
        sharding = shardings.get(leaf.path)
        if sharding is None:
            job = Job(leaf, leaf.shape, shard_rows(leaf.shape, full), ())
            enqueue(None, job, totals[None])
            continue
        indices = {
            device: tuple(index or full)
            for device, index in sharding.addressable_devices_indices_map(
                leaf.shape
            ).items()
        }
        shard_shape = sharding.shard_shape(leaf.shape)
        if on_device:
            jobs = [
                Job(leaf, shard_shape, shard_rows(leaf.shape, index), (device,))
                for device, index in indices.items()
            ]
            if shard_shape and all(same_cut(jobs[0].rows, j.rows) for j in jobs):
                start = max(totals[device] for device in indices)
                for job in jobs:
                    job.lockstep = tuple(jobs)
                    enqueue(job.devices[0], job, start)
            else:
                for job in jobs:
                    enqueue(job.devices[0], job, totals[job.devices[0]])
            continue
        holders: dict[tuple[tuple[int, int], ...], list[jax.Device]] = {}
        for device, index in indices.items():
            bounds = tuple(
                part.indices(dim)[:2]
                for part, dim in zip(index, leaf.shape, strict=False)
            )
            holders.setdefault(bounds, []).append(device)
        for group in holders.values():
            lane = min(group, key=lambda device: totals[device])
            rows = shard_rows(leaf.shape, indices[group[0]])
            enqueue(lane, Job(leaf, shard_shape, rows, tuple(group)), totals[lane])
    results: Results = {}
    if default:
        _draw_jobs(dtype, law, None, {None: default}, results, on_device)
    if any(queues.values()):
        _draw_jobs(dtype, law, mesh, queues, results, on_device)
    for leaf in leaves:
        sharding = shardings.get(leaf.path)
        if sharding is None:
            out[leaf.path] = results[(leaf.path, None)]
        else:
            devices = sharding.addressable_devices_indices_map(leaf.shape)
            shards = [results[(leaf.path, device)] for device in devices]
            out[leaf.path] = jax.make_array_from_single_device_arrays(
                leaf.shape, sharding, shards
            )


def _draw_jobs(
    dtype: np.dtype,
    law: str,
    mesh: jax.sharding.Mesh | None,
    queues: Mapping[jax.Device | None, list[Job]],
    results: Results,
    on_device: bool,
) -> None:
    """Draws every queue's jobs, block by block, and places each shard.

    ``mesh`` None: the queue ``None`` (unsharded leaves), drawn by the block
    program on the default device. Otherwise the queues of ``mesh``'s devices,
    one strided program call per block over that 1-D mesh, each device drawing
    its own queue's rows.
    """
    block_rows = _programs.BLOCK_ROWS
    lanes = list(queues)
    counts = [
        max((j.start + j.rows.take.size for j in q), default=0) for q in queues.values()
    ]
    padded = -(-max(counts) // block_rows) * block_rows
    fields = _programs.fields("block" if mesh is None else "strided")
    host: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    for jobs in queues.values():
        arrays = {
            "key_words": np.zeros((padded, 2), np.uint32),
            "first": np.zeros(padded, np.uint32),
            "run": np.full(padded, _programs.ROW // 2, np.uint32),
            "stride": np.zeros(padded, np.uint32),
            "params": np.zeros((padded, _programs.PARAMS), np.float32),
        }
        for job in jobs:
            span = slice(job.start, job.start + job.rows.take.size)
            arrays["key_words"][span] = job.leaf.key_words
            arrays["first"][span] = job.rows.first
            arrays["params"][span] = job.leaf.plan.params
            if mesh is not None:
                arrays["run"][span] = job.rows.run
                arrays["stride"][span] = job.rows.stride
        for name in fields:
            host[name].append(arrays[name])

    def dispatch(block_start: int) -> jax.Array:
        span = slice(block_start, block_start + block_rows)
        rows = [np.concatenate([a[span] for a in host[name]]) for name in fields]
        return _programs.draw(mesh, dtype, law, rows)

    if not on_device:
        # Mapped by worker threads, in queue order, while the blocks are drawn:
        # the pages are in place before the first rows arrive.
        for job in (job for jobs in queues.values() for job in jobs):
            size = math.prod(job.shape)
            job.buffer = _programs.workers().submit(
                _assembly.aligned_empty, size, dtype
            )

    cursors = dict.fromkeys(lanes, 0)  # the next job of each queue
    current: dict[jax.Device | None, Shard | None] = dict.fromkeys(lanes)
    # Drawn blocks that a lockstep leaf still needs, by index.
    kept: dict[int, jax.Array] = {}
    waiting: list[tuple[Job, ...]] = []
    next_drawn = dispatch(0)
    for block_start in range(0, padded, block_rows):
        drawn = next_drawn
        if block_start + block_rows < padded:
            next_drawn = dispatch(block_start + block_rows)
        block_end = block_start + block_rows
        if mesh is None:
            blocks: dict[jax.Device | None, jax.Array] = {None: drawn}
        else:
            blocks = {shard.device: shard.data for shard in drawn.addressable_shards}
        kept[block_start // block_rows] = drawn
        done: list[Shard] = []
        for lane in lanes:
            jobs = queues[lane]
            block = blocks[lane]
            values = None if on_device else _programs.host_rows(block, dtype)
            while cursors[lane] < len(jobs):
                job = jobs[cursors[lane]]
                if job.start >= block_end:
                    break
                if job.lockstep is not None:
                    if job is job.lockstep[0]:
                        waiting.append(job.lockstep)
                    cursors[lane] += 1
                    continue
                shard = current[lane] or Shard(job, on_device)
                shard.add(block, block_start, values)
                if job.start + job.rows.take.size > block_end:
                    current[lane] = shard
                    break
                done.append(shard)
                current[lane] = None
                cursors[lane] += 1
        _assembly.place(done, results)
        del values  # the host's view of the block, read
        if mesh is None and not on_device:
            _programs.release(drawn)
        finished = [j for j in waiting if j[0].start + j[0].rows.take.size <= block_end]
        for group in finished:
            waiting.remove(group)
            _assembly.cut_lockstep(group, kept, mesh, results)  # type: ignore[arg-type]
        needed = min(
            [job[0].start // block_rows for job in waiting] + [block_end // block_rows]
        )
        for index in [i for i in kept if i < needed]:
            del kept[index]
