"""The shape-independent programs: rows of a leaf's own stream through its law.

Why: XLA compiles the random-number code of every (initializer, shape, dtype)
anew, 0.2-0.5 s each on CPU. These programs depend on no shape. A leaf is cut
into rows of ``ROW`` values; one program per (law, dtype) draws ``BLOCK_ROWS``
rows at a time, each row with its own key words, starting pair and law
parameters, so one compile serves every leaf, model and caller (eager calls
and ``init_tree`` alike).

A row is a stretch of its leaf's own stream: jaxinit's 32-bit draws give
element ``i`` of any shape word ``i % 2`` of the threefry hash of counter
``i // 2`` (``_bits``), and the law functions are the samplers' own
(``_sampling.LAWS``) with the parameters as runtime values in both programs, so
every value equals the initializer's own call bit for bit.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _bits, _sampling

# One row holds this many values of one leaf; a block of rows is one dispatch.
ROW = 4096
BLOCK_ROWS = 256
# Law parameters per row: uniform (a, width, lo, hi); normal (mean, scale);
# clipped_normal (mean, std, lo, hi, z_lo, z_hi).
PARAMS = 6
# The laws drawn by rows: the others ("truncated") are drawn by their own call.
LAWS = ("uniform", "normal", "clipped_normal")
# Output dtypes drawn by rows: 32-bit draws rounded (float64 draws 64 bits).
DTYPES = (np.dtype(np.float32), np.dtype(jnp.bfloat16), np.dtype(np.float16))
# Compiler options by platform: on CPU, LLVM's level 1 compiles the normal law
# in about 60% of the default level's time, runs as fast and gives the same
# bits (tests/test_engine.py checks them against the initializer's own program).
_OPTIONS: dict[str, dict[str, Any]] = {"cpu": {"xla_backend_optimization_level": 1}}


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """How the programs draw one leaf: a law of ``LAWS`` or "constant"."""

    law: str
    params: tuple[float, ...]  # padded to PARAMS


def row_plan(plan: _sampling.Plan | None, dtype: np.dtype) -> RowPlan | None:
    """An initializer's law as the programs draw it; None: its own call draws it."""
    if plan is None or dtype not in DTYPES:
        return None
    law, params = plan
    if law != "constant" and law not in LAWS:
        return None
    return RowPlan(law, params + (0.0,) * (PARAMS - len(params)))


def _apply_law(
    dtype: np.dtype, law: str, bits: jax.Array, params: jax.Array
) -> jax.Array:
    """Row r of ``bits`` through ``law`` with the parameters ``params[r]``."""
    unit = _bits.unit_floats(bits)
    p = [params[:, i : i + 1] for i in range(PARAMS)]
    return _sampling.LAWS[law](unit, p, dtype)


def _block(
    dtype: np.dtype,
    law: str,
    key_words: jax.Array,
    first_pairs: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """Rows of ``ROW`` values of the leaves' own streams, through ``law``.

    Row r holds values ``2 * first_pairs[r]...`` of the stream of the key
    ``key_words[r]``, through ``law`` with the parameters ``params[r]``.
    """
    bits = _bits.paired_rows(key_words, first_pairs, ROW // 2)
    return _apply_law(dtype, law, bits, params)


def _strided(
    dtype: np.dtype,
    law: str,
    key_words: jax.Array,
    first_pairs: jax.Array,
    run_pairs: jax.Array,
    strides: jax.Array,
    params: jax.Array,
) -> jax.Array:
    """Rows as ``_block``'s, each holding runs of a shard.

    Pair ``j`` of row r is the pair ``first + (j // run) * stride + j % run``
    of its leaf's stream (``first``, ``run``, ``stride`` that row's values), so
    one row holds several short runs of a column shard. Called on rows sharded
    over a 1-D mesh of the devices, it draws each device's rows on that device
    with one compiled program for all devices and shapes.
    """
    rows = first_pairs.shape[0]
    j = lax.broadcasted_iota(jnp.uint32, (rows, ROW // 2), 1)
    run = run_pairs[:, None]
    # j // run in float32, exact here (j < 2**11: the quotient is at least
    # 0.5 / run away from an integer, its rounding error below 2**-12 / run);
    # XLA's vector integer division took 3x the whole draw on CPU.
    ratio = (j.astype(jnp.float32) + 0.5) / run.astype(jnp.float32)
    runs = ratio.astype(jnp.uint32)
    counters = first_pairs[:, None] + runs * strides[:, None] + (j - runs * run)
    bits = _bits.paired_counters(key_words, counters)
    return _apply_law(dtype, law, bits, params)


_KINDS: dict[str, Callable[..., jax.Array]] = {"block": _block, "strided": _strided}


@functools.cache
def program(kind: str, platform: str) -> Callable[..., jax.Array]:
    """The jitted ``_block`` or ``_strided`` with ``platform``'s compiler options."""
    fn = _KINDS[kind]
    jitted: Callable[..., jax.Array] = jax.jit(
        fn, static_argnums=(0, 1), compiler_options=_OPTIONS.get(platform)
    )
    return jitted


def draw_block(
    dtype: np.dtype,
    law: str,
    key_words: np.ndarray,
    first_pairs: np.ndarray,
    params: np.ndarray,
) -> jax.Array:
    """``_block`` on the default device (host arrays in, one block out)."""
    return program("block", jax.default_backend())(
        dtype, law, key_words, first_pairs, params
    )


def draw_strided(
    mesh: jax.sharding.Mesh, dtype: np.dtype, law: str, *rows: jax.Array
) -> jax.Array:
    """``_strided`` on rows already placed over the 1-D mesh of the lanes."""
    platform: str = mesh.devices.flat[0].platform
    return program("strided", platform)(dtype, law, *rows)
