"""Assembly: drawn blocks of rows into leaves and shards, on the host or the device.

On the host (the CPU backend, where host memory is device memory) a shard's
rows are copied into one aligned buffer, which ``jax.device_put`` then uses in
place. On the device (other backends), a shard is cut out of the blocks it
spans by a small program whose position is a runtime value, so parameters
never cross to the host and back; the shards of a leaf cut alike on every
device are cut by one program for all devices (lockstep).
"""

import concurrent.futures
import ctypes
import dataclasses
import functools
import math
import mmap
import weakref
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from . import _compat, _programs
from ._geometry import Rows, Segment
from ._keys import Path

# Host buffers aligned to this many bytes are placed on the CPU without a copy.
_ALIGN = 64
# Host buffers of at least this many bytes are mapped with their pages in place
# (MAP_POPULATE, Linux): one call, where a fault per page on first write cost
# about three times the copy into them.
_MAP_BYTES = 1 << 20
_MAP_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)
_MAP_FAILED = ctypes.c_void_p(-1).value

Results = dict[tuple[Path, jax.Device | None], jax.Array]


@dataclasses.dataclass
class Leaf:
    """A leaf the programs draw (or a constant filled on the host)."""

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    plan: _programs.RowPlan
    key_words: np.ndarray  # its key's two uint32 words


@dataclasses.dataclass
class Job:
    """One shard of a leaf, drawn on one device and placed on ``devices``."""

    leaf: Leaf
    shape: tuple[int, ...]
    rows: Rows
    devices: tuple[jax.Device, ...]  # () for the default placement
    start: int = 0  # its first row in its device's queue
    segments: tuple[Segment, ...] = ()
    # On the device path, the jobs of one leaf that sit at the same rows of
    # every device's queue and are cut by one program for all devices.
    lockstep: "tuple[Job, ...] | None" = None
    # On the host path, its buffer, being mapped by a worker thread.
    buffer: "concurrent.futures.Future[np.ndarray] | None" = None


def aligned_empty(size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialized host array whose data is 64-byte aligned.

    jax.device_put uses such an array in place on CPU; numpy's own large
    allocations are 16-byte aligned, which jax copies.
    """
    mapped = _mapped(size * dtype.itemsize, populate=True)
    if mapped is not None:
        return mapped.view(dtype)
    nbytes = size * dtype.itemsize
    raw = np.empty(nbytes + _ALIGN, np.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip : skip + nbytes].view(dtype)


def _mapped(nbytes: int, *, populate: bool) -> np.ndarray | None:
    """Fresh zeroed pages (page-aligned) for a large buffer, where supported.

    Mapped through ctypes, which lets go of the GIL: Python's ``mmap`` holds it
    while the kernel populates the pages, stalling every other thread. The
    pages are unmapped when the last array over them goes.
    """
    libc = _libc()
    if libc is None or nbytes < _MAP_BYTES:
        return None
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (_MAP_POPULATE if populate else 0)
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    address = libc.mmap(None, nbytes, prot, flags, -1, 0)
    if address is None or address == _MAP_FAILED:
        return None
    raw = (ctypes.c_char * nbytes).from_address(address)
    weakref.finalize(raw, libc.munmap, address, nbytes)
    return np.frombuffer(memoryview(raw), np.uint8)


@functools.cache
def _libc() -> Any:
    """The C library's mmap and munmap, on Linux; None elsewhere."""
    if not _MAP_POPULATE:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def filled(value: float, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A constant leaf or shard, filled on the host."""
    size = math.prod(shape)
    if value == 0 and math.copysign(1.0, value) > 0:
        # Fresh pages read as +0.0 (every dtype): nothing to write.
        zeros = _mapped(size * dtype.itemsize, populate=False)
        if zeros is not None:
            return zeros.view(dtype).reshape(shape)
    host = aligned_empty(size, dtype)
    host.fill(value)
    return host.reshape(shape)


class Shard:
    """One job's values as its rows arrive: a host buffer, or device blocks."""

    def __init__(self, job: Job, on_device: bool) -> None:
        self.job = job
        self.buffer = None
        if not on_device:
            ahead = job.buffer
            size = math.prod(job.shape)
            self.buffer = (
                ahead.result() if ahead else aligned_empty(size, job.leaf.dtype)
            )
        self.blocks: list[jax.Array] = []  # the device path's drawn blocks
        self.offset = 0  # its first row in the first of them

    def add(
        self, block: jax.Array, block_start: int, values: np.ndarray | None
    ) -> None:
        """Takes its rows from a drawn block (``values``: on the host)."""
        job = self.job
        if self.buffer is None or values is None:
            if not self.blocks:
                self.offset = job.start - block_start
            self.blocks.append(block)
            return
        block_end = block_start + values.shape[0]
        for row, end, skip, take, offset in job.segments:
            lo = max(job.start + row, block_start)
            hi = min(job.start + end, block_end)
            if lo < hi:
                dest = offset + (lo - job.start - row) * take
                target = self.buffer[dest : dest + (hi - lo) * take]
                np.copyto(
                    target.reshape(hi - lo, take),
                    values[lo - block_start : hi - block_start, skip : skip + take],
                )

    def value(self) -> np.ndarray | jax.Array:
        """The shard: a host array, or an array on the blocks' device."""
        if self.buffer is not None:
            return self.buffer.reshape(self.job.shape)
        job = self.job
        # On its blocks' device, also under a caller's jax.set_mesh(mesh).
        with _compat.mesh_context(None):
            shard: jax.Array = _assemble(
                job.leaf.dtype,
                job.segments,
                job.rows.take.size,
                job.shape,
                tuple(self.blocks),
                np.int32(self.offset),
            )
        return shard


def place(done: list[Shard], results: Results) -> None:
    """Puts finished shards where they go: one placement call for the host's."""
    host: list[np.ndarray] = []
    targets: list[tuple[Path, jax.Device | None]] = []
    devices: list[jax.Device | None] = []
    for shard in done:
        value = shard.value()
        for device in shard.job.devices or (None,):
            target = (shard.job.leaf.path, device)
            if isinstance(value, jax.Array):
                results[target] = value  # drawn where it goes
            else:
                host.append(value)
                targets.append(target)
                devices.append(device)
    if not host:
        return
    # One placement call per block: per-array calls cost ~0.4 ms each.
    if devices[0] is None:
        placed = jax.device_put(host)
    else:
        placed = jax.device_put(host, devices)
    results.update(zip(targets, placed, strict=True))


def cut_lockstep(
    jobs: tuple[Job, ...],
    kept: Mapping[int, jax.Array],
    mesh: jax.sharding.Mesh,
    results: Results,
) -> None:
    """Cuts a leaf's shards, at the same rows on every device, in one call."""
    job = jobs[0]
    first = job.start // _programs.BLOCK_ROWS
    last = (job.start + job.rows.take.size - 1) // _programs.BLOCK_ROWS
    blocks = tuple(kept[i] for i in range(first, last + 1))
    offset = np.int32(job.start - first * _programs.BLOCK_ROWS)
    with _compat.mesh_context(mesh):
        cut = _assemble_lanes(
            mesh,
            job.leaf.dtype,
            job.segments,
            job.rows.take.size,
            job.shape,
            blocks,
            offset,
        )
    shards = {shard.device: shard.data for shard in cut.addressable_shards}
    for each in jobs:
        results[(each.leaf.path, each.devices[0])] = shards[each.devices[0]]


def _cut(
    dtype: np.dtype,
    segments: tuple[Segment, ...],
    rows: int,
    shape: tuple[int, ...],
    blocks: tuple[jax.Array, ...],
    offset: jax.Array,
) -> jax.Array:
    """The shard whose ``rows`` rows start at row ``offset`` of ``blocks``."""
    stacked = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks)
    packed = lax.dynamic_slice_in_dim(stacked, offset, rows, axis=0)
    window = _programs.device_rows(packed, dtype)
    parts = [
        window[first:end, skip : skip + take].reshape(-1)
        for first, end, skip, take, _ in segments
    ]
    flat = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    shard: jax.Array = flat.reshape(shape)
    return shard


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _assemble(
    dtype: np.dtype,
    segments: tuple[Segment, ...],
    rows: int,
    shape: tuple[int, ...],
    blocks: tuple[jax.Array, ...],
    offset: jax.Array,
) -> jax.Array:
    """One shard from the drawn blocks it spans, on their device.

    Its position is a runtime value: one program serves every shard cut alike
    (the same shape, rows and segments), wherever it lies in the blocks.
    """
    return _cut(dtype, segments, rows, shape, blocks, offset)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _assemble_lanes(
    mesh: jax.sharding.Mesh,
    dtype: np.dtype,
    segments: tuple[Segment, ...],
    rows: int,
    shape: tuple[int, ...],
    blocks: tuple[jax.Array, ...],
    offset: jax.Array,
) -> jax.Array:
    """``_assemble`` on every device of ``mesh`` at once, each on its own rows.

    The result stacks the devices' shards along the first axis; each device's
    piece is its shard.
    """

    def local(blocks: tuple[jax.Array, ...], offset: jax.Array) -> jax.Array:
        return _cut(dtype, segments, rows, shape, blocks, offset)

    rows_spec = PartitionSpec("rows")  # type: ignore[no-untyped-call]
    cut: jax.Array = _compat.shard_map(
        local,
        mesh=mesh,
        in_specs=(rows_spec, PartitionSpec()),  # type: ignore[no-untyped-call]
        out_specs=rows_spec,
    )(blocks, offset)
    return cut
