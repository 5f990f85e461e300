"""Bad input, catalogued: every invalid-input class gets a clear, typed error.

``ROWS`` is the catalogue behind docs/errors.md (one test per row, and a test that
the table and ``ROWS`` agree). ``test_bad_values_for_every_parameter`` then throws
the same classes of bad value at every parameter of every factory, so no factory
is left out. Every error must be a TypeError (wrong kind) or ValueError (bad value
or rank) raised by jaxinit itself, whose message names the offending parameter
and what is allowed: never a NaN, a crash, or an exception from deep inside jax.
"""

import dataclasses
import math
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit

KEY = jax.random.key(0)
RAW_KEY = jax.random.PRNGKey(0)
ERRORS_MD = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


@dataclasses.dataclass(frozen=True)
class Row:
    """One invalid input, the exception it must raise and what the message says."""

    id: str
    call: Callable[[], object]
    error: type[Exception]
    match: str  # regex the message must contain: the parameter and what is allowed


def _f16(
    init: jaxinit.Initializer, shape: tuple[int, ...] = (4,)
) -> Callable[[], object]:
    return lambda: init(KEY, shape, jnp.float16)


ROWS = [
    # Bad parameter values, at factory time.
    Row(
        "nan-param",
        lambda: jaxinit.normal(std=math.nan),
        ValueError,
        r"normal: std must be a finite number >= 0, got nan",
    ),
    Row(
        "inf-param",
        lambda: jaxinit.uniform(0.0, math.inf),
        ValueError,
        r"uniform: b must be a finite real number, got inf",
    ),
    Row(
        "inf-gain",
        lambda: jaxinit.orthogonal(gain=math.inf),
        ValueError,
        r"orthogonal: gain must be a finite number >= 0, got inf",
    ),
    Row(
        "huge-int-param",
        lambda: jaxinit.uniform(-(10**400)),
        ValueError,
        r"uniform: a must be a finite real number, got -1000",
    ),
    Row(
        "negative-std",
        lambda: jaxinit.normal(std=-1.0),
        ValueError,
        r"normal: std must be a finite number >= 0, got -1.0",
    ),
    Row(
        "negative-gain",
        lambda: jaxinit.xavier_uniform(gain=-0.5),
        ValueError,
        r"xavier_uniform: gain must be a finite number >= 0, got -0.5",
    ),
    Row(
        "trunc-std-zero",
        lambda: jaxinit.trunc_normal(std=0.0),
        ValueError,
        r"trunc_normal: std must be a finite number > 0, got 0.0",
    ),
    Row(
        "uniform-a-gt-b",
        lambda: jaxinit.uniform(2.0, 1.0),
        ValueError,
        r"uniform: expects a \[a, b\) range with a <= b, got a=2.0 > b=1.0",
    ),
    Row(
        "trunc-a-gt-b",
        lambda: jaxinit.trunc_normal(a=3.0, b=2.0),
        ValueError,
        r"trunc_normal: expects a <= b, got a=3.0 > b=2.0",
    ),
    Row(
        "trunc-infinite-wrong-side",
        lambda: jaxinit.trunc_normal(a=math.inf, b=math.inf),
        ValueError,
        r"trunc_normal: a must be a real number or -inf, got inf",
    ),
    Row(
        "sparsity-out-of-range",
        lambda: jaxinit.sparse(1.5),
        ValueError,
        r"sparse: sparsity must be a number in \[0, 1\], got 1.5",
    ),
    Row(
        "groups-zero",
        lambda: jaxinit.dirac(0),
        ValueError,
        r"dirac: groups must be an integer >= 1, got 0",
    ),
    Row(
        "kaiming-slope-nan",
        lambda: jaxinit.kaiming_normal(a=math.nan),
        ValueError,
        r"kaiming_normal: a must be a finite number \(the negative slope\), got nan",
    ),
    Row(
        "negative-scale",
        lambda: jaxinit.variance_scaling(-1.0),
        ValueError,
        r"variance_scaling: scale must be a finite number >= 0, got -1.0",
    ),
    Row(
        "trunc-tf-negative-std",
        lambda: jaxinit.trunc_normal_tf(std=-0.5),
        ValueError,
        r"trunc_normal_tf: std must be a finite number >= 0, got -0.5",
    ),
    Row(
        "trunc-tf-bounds-overflow",
        lambda: jaxinit.trunc_normal_tf(std=1e300, a=-1e10),
        ValueError,
        r"trunc_normal_tf: the bounds mean \+ a \* std, mean \+ b \* std must be "
        r"finite for finite a, b, got \[-inf, 2e\+300\]",
    ),
    Row(
        "constant-nan",
        lambda: jaxinit.constant(math.nan),
        ValueError,
        r"constant: val must be a real number, got nan",
    ),
    # Bad parameter types, at factory time.
    Row(
        "string-param",
        lambda: jaxinit.uniform("0", 1.0),
        TypeError,
        r"uniform: a must be a finite real number, got '0' of type str",
    ),
    Row(
        "bool-param",
        lambda: jaxinit.normal(std=True),
        TypeError,
        r"normal: std must be a finite number >= 0, got True of type bool",
    ),
    Row(
        "none-param",
        lambda: jaxinit.constant(None),
        TypeError,
        r"constant: val must be a real number, got None",
    ),
    Row(
        "complex-param",
        lambda: jaxinit.xavier_normal(gain=1j),
        TypeError,
        r"xavier_normal: gain must be a finite number >= 0, got 1j of type complex",
    ),
    Row(
        "array-param",
        lambda: jaxinit.trunc_normal(std=jnp.ones(2)),
        TypeError,
        r"trunc_normal: std must be a finite number > 0, got Array",
    ),
    Row(
        "float-groups",
        lambda: jaxinit.dirac(1.5),
        TypeError,
        r"dirac: groups must be an integer >= 1, got 1.5 of type float",
    ),
    Row(
        "traced-param",
        lambda: jax.jit(lambda s: jaxinit.normal(std=s))(1.0),
        TypeError,
        r"normal: std must be a concrete Python number, not a traced value",
    ),
    Row(
        "unknown-keyword",
        lambda: jaxinit.uniform(low=0.0),
        TypeError,
        r"uniform\(\) got an unexpected keyword argument 'low'",
    ),
    # Unknown choices.
    Row(
        "unknown-mode",
        lambda: jaxinit.kaiming_uniform(mode="fan_avg"),
        ValueError,
        r"kaiming_uniform: Mode fan_avg not supported, please use one of "
        r"\['fan_in', 'fan_out'\]",
    ),
    Row(
        "non-string-mode",
        lambda: jaxinit.kaiming_uniform(mode=1),
        TypeError,
        r"kaiming_uniform: mode must be a string, one of \['fan_in', 'fan_out'\]",
    ),
    Row(
        "timm-unknown-mode",
        lambda: jaxinit.variance_scaling(mode="fan_geo_avg"),
        ValueError,
        r"variance_scaling: mode must be one of "
        r"\['fan_in', 'fan_out', 'fan_avg'\], got 'fan_geo_avg'",
    ),
    Row(
        "timm-mode-case",
        lambda: jaxinit.variance_scaling(mode="FAN_IN"),
        ValueError,
        r"variance_scaling: mode must be one of .*, got 'FAN_IN'",
    ),
    Row(
        "timm-unknown-distribution",
        lambda: jaxinit.variance_scaling(distribution="untruncated_normal"),
        ValueError,
        r"variance_scaling: distribution must be one of "
        r"\['truncated_normal', 'normal', 'uniform'\], got 'untruncated_normal'",
    ),
    Row(
        "timm-non-string-choice",
        lambda: jaxinit.variance_scaling(distribution=None),
        TypeError,
        r"variance_scaling: distribution must be a string, one of "
        r"\['truncated_normal', 'normal', 'uniform'\], got None",
    ),
    Row(
        "unknown-nonlinearity",
        lambda: jaxinit.kaiming_normal(nonlinearity="gelu"),
        ValueError,
        r"kaiming_normal: Unsupported nonlinearity gelu; nonlinearity must "
        r"be one of linear, .*selu",
    ),
    Row(
        "non-string-nonlinearity",
        lambda: jaxinit.calculate_gain(3),
        ValueError,
        r"Unsupported nonlinearity 3: nonlinearity must be one of linear, .*selu",
    ),
    Row(
        "bad-slope",
        lambda: jaxinit.calculate_gain("leaky_relu", "x"),
        ValueError,
        r"negative_slope x not a valid number",
    ),
    Row(
        "unknown-layout",
        lambda: jaxinit.xavier_uniform(layout="tf"),
        ValueError,
        r"xavier_uniform: layout must be one of \['flax', 'torch'\], got 'tf'",
    ),
    Row(
        "non-string-layout",
        lambda: jaxinit.xavier_uniform(layout=None),
        TypeError,
        r"xavier_uniform: layout must be a string, one of \['flax', 'torch'\]",
    ),
    Row(
        "float-axis",
        lambda: jaxinit.kaiming_uniform(in_axis=1.0),
        TypeError,
        r"kaiming_uniform: in_axis must be an int or a sequence of ints, got 1.0",
    ),
    # Wrong ranks and axes, at call time.
    Row(
        "fan-rank-below-2",
        lambda: jaxinit.kaiming_uniform()(KEY, (3,)),
        ValueError,
        r"kaiming_uniform: Fan in and fan out can not be computed for tensor with "
        r"fewer than 2 dimensions; got shape \(3,\)",
    ),
    Row(
        "fan-rank-0",
        lambda: jaxinit.xavier_normal()(KEY, ()),
        ValueError,
        r"xavier_normal: Fan in and fan out .* got shape \(\)",
    ),
    Row(
        "orthogonal-rank-1",
        lambda: jaxinit.orthogonal()(KEY, (3,)),
        ValueError,
        r"orthogonal: Only tensors with 2 or more dimensions are supported",
    ),
    Row(
        "eye-not-2d",
        lambda: jaxinit.eye()(None, (3, 3, 3)),
        ValueError,
        r"eye: Only tensors with 2 dimensions are supported; got shape \(3, 3, 3\)",
    ),
    Row(
        "sparse-not-2d",
        lambda: jaxinit.sparse(0.5)(KEY, (2, 3, 4)),
        ValueError,
        r"sparse: Only tensors with 2 dimensions are supported",
    ),
    Row(
        "dirac-not-3-to-5d",
        lambda: jaxinit.dirac()(None, (3, 3)),
        ValueError,
        r"dirac: Only tensors with 3, 4, or 5 dimensions are supported",
    ),
    Row(
        "dirac-groups-indivisible",
        lambda: jaxinit.dirac(2)(None, (3, 3, 2, 3)),
        ValueError,
        r"dirac: the output channels \(3, axis 3\) must be divisible by "
        r"groups=2",
    ),
    Row(
        "dirac-zero-kernel",
        lambda: jaxinit.dirac()(None, (0, 3, 3)),
        ValueError,
        r"dirac: the kernel size \(0,\) has a zero dimension",
    ),
    Row(
        "axis-out-of-range",
        lambda: jaxinit.xavier_uniform(in_axis=5)(KEY, (3, 3)),
        ValueError,
        r"xavier_uniform: in_axis 5 is out of range for shape \(3, 3\)",
    ),
    Row(
        "axes-overlap",
        lambda: jaxinit.xavier_uniform(in_axis=0, out_axis=0)(KEY, (3, 3)),
        ValueError,
        r"xavier_uniform: in_axis \(0,\), out_axis \(0,\) and batch_axis \(\) must be "
        r"non-empty \(in, out\) and must not share axes",
    ),
    Row(
        "fan-rank-batch-axes",
        lambda: jaxinit.xavier_uniform(batch_axis=0)(KEY, (3, 4)),
        ValueError,
        r"xavier_uniform: Fan in and fan out can not be computed for tensor with "
        r"fewer than 2 dimensions; got shape \(3, 4\) with batch_axis \(0,\), which "
        r"leaves 1\. Fan-based initializers need a weight of rank >= 2 besides its "
        r"batch axes",
    ),
    Row(
        "batch-axis-out-of-range",
        lambda: jaxinit.kaiming_normal(batch_axis=5)(KEY, (3, 4)),
        ValueError,
        r"kaiming_normal: batch_axis 5 is out of range for shape \(3, 4\) of rank 2",
    ),
    Row(
        "batch-axes-repeated",
        lambda: jaxinit.xavier_normal(batch_axis=(0, 0))(KEY, (3, 4, 5)),
        ValueError,
        r"xavier_normal: in_axis \(-2,\), out_axis \(-1,\) and batch_axis \(0, 0\) "
        r"must be non-empty \(in, out\) and must not share axes",
    ),
    # Bad shapes.
    Row(
        "negative-dim",
        lambda: jaxinit.uniform()(KEY, (3, -1)),
        ValueError,
        r"uniform: shape must contain non-negative dimensions, got \(3, -1\)",
    ),
    Row(
        "float-dim",
        lambda: jaxinit.uniform()(KEY, (3, 2.0)),
        TypeError,
        r"uniform: shape must contain only ints, got 2.0",
    ),
    Row(
        "bool-dim",
        lambda: jaxinit.normal()(KEY, (True, 2)),
        TypeError,
        r"normal: shape must contain only ints, got True",
    ),
    Row(
        "int-shape",
        lambda: jaxinit.uniform()(KEY, 3),
        TypeError,
        r"uniform: shape must be a sequence of ints such as \(3, 5\), got the int 3; "
        r"write \(3,\) for a 1-D shape",
    ),
    Row(
        "string-shape",
        lambda: jaxinit.uniform()(KEY, "33"),
        TypeError,
        r"uniform: shape must be a sequence of ints such as \(3, 5\), got '33'",
    ),
    Row(
        "traced-shape",
        lambda: jax.jit(lambda s: jaxinit.normal()(KEY, s))(jnp.array([2, 3])),
        TypeError,
        r"normal: shape must be a sequence of ints such as \(3, 5\)",
    ),
    Row(
        "int64-overflow",
        lambda: jaxinit.uniform()(KEY, (2**32, 2**32)),
        ValueError,
        r"uniform: shape \(4294967296, 4294967296\) has dimensions whose product "
        r"18446744073709551616 is more than an array can hold \(2\*\*63 - 1\)",
    ),
    Row(
        "int64-overflow-empty",
        lambda: jaxinit.zeros()(None, (2**40, 2**40, 0)),
        ValueError,
        r"constant: shape .* is more than an array can hold",
    ),
    # Dtypes.
    Row(
        "integer-dtype-random",
        lambda: jaxinit.uniform()(KEY, (3,), jnp.int32),
        TypeError,
        r"uniform: dtype must be a floating dtype, one of \['float16', "
        r"'bfloat16', 'float32', 'float64'\], got int32",
    ),
    Row(
        "bool-dtype-random",
        lambda: jaxinit.normal()(KEY, (3,), jnp.bool_),
        TypeError,
        r"normal: dtype must be a floating dtype, .* got bool",
    ),
    Row(
        "complex-dtype-random",
        lambda: jaxinit.kaiming_normal()(KEY, (3, 3), jnp.complex64),
        TypeError,
        r"kaiming_normal: dtype must be a floating dtype, .* got complex64",
    ),
    Row(
        "float8-dtype-random",
        lambda: jaxinit.trunc_normal()(KEY, (3,), jnp.float8_e4m3fn),
        TypeError,
        r"trunc_normal: dtype must be a floating dtype, .* got float8_e4m3fn",
    ),
    Row(
        "integer-dtype-factory",
        lambda: jaxinit.orthogonal(dtype=jnp.int8),
        TypeError,
        r"orthogonal: dtype must be a floating dtype, .* got int8",
    ),
    Row(
        "non-numeric-dtype-exact",
        lambda: jaxinit.zeros()(None, (3,), str),
        TypeError,
        r"constant: dtype must be a numeric or bool dtype .* got str",
    ),
    Row(
        "unknown-dtype",
        lambda: jaxinit.normal()(KEY, (3,), "foo"),
        TypeError,
        r"normal: dtype 'foo' is not a dtype",
    ),
    Row(
        "float64-without-x64",
        lambda: jaxinit.normal()(KEY, (3,), jnp.float64),
        ValueError,
        r"normal: dtype float64 needs 64-bit mode, which is off, so jax "
        r"would silently return a 32-bit array; enable it with "
        r"jax.config.update\('jax_enable_x64', True\)",
    ),
    Row(
        "int64-without-x64",
        lambda: jaxinit.ones()(None, (3,), jnp.int64),
        ValueError,
        r"ones|constant: dtype int64 needs 64-bit mode",
    ),
    Row(
        "python-float-dtype",
        lambda: jaxinit.uniform()(KEY, (3,), float),
        ValueError,
        r"uniform: dtype float64 needs 64-bit mode",
    ),
    # Values the output dtype cannot hold, at call time.
    Row(
        "constant-overflows-dtype",
        lambda: jaxinit.constant(1e5)(None, (3,), jnp.float16),
        ValueError,
        r"constant: val=100000.0 is out of range for float16 \(largest "
        r"finite value 65504.0\)",
    ),
    Row(
        "constant-overflows-int",
        lambda: jaxinit.constant(300)(None, (3,), jnp.uint8),
        ValueError,
        r"constant: val=300.0 cannot be converted to uint8 without overflow "
        r"\(range \[0, 255\]\)",
    ),
    Row(
        "bound-overflows-dtype",
        _f16(jaxinit.uniform(0.0, 7e4)),
        ValueError,
        r"uniform: b=70000.0 is out of range for float16",
    ),
    Row(
        "uniform-too-wide",
        lambda: jaxinit.uniform(-3e38, 3e38)(KEY, (3,)),
        ValueError,
        r"uniform: b - a = 6e\+38 exceeds the largest float32",
    ),
    Row(
        "empty-interval-in-dtype",
        lambda: jaxinit.uniform(1.001, 1.002)(KEY, (3,), jnp.bfloat16),
        ValueError,
        r"uniform: no bfloat16 value lies in \[a, b\) = \[1.001, 1.002\); widen the "
        r"interval or use a wider dtype",
    ),
    Row(
        "trunc-too-far-in-tail",
        lambda: jaxinit.trunc_normal(a=40.0, b=41.0)(KEY, (3,)),
        ValueError,
        r"trunc_normal: \[a, b\] = \[40.0, 41.0\] lies so far in the tail of "
        r"N\(0.0, 1.0\*\*2\) .* float32 cannot resolve its probability; enable "
        r"jax_enable_x64",
    ),
    Row(
        "std-overflows-dtype",
        _f16(jaxinit.normal(std=1e5)),
        ValueError,
        r"normal: draws reach \[-5.5e\+05, 5.5e\+05\] .* beyond the largest float16 "
        r"\(65504\), where they would be inf; use a wider dtype, a smaller std",
    ),
    Row(
        "gain-overflows-dtype",
        _f16(jaxinit.xavier_normal(gain=1e6), (2, 2)),
        ValueError,
        r"xavier_normal: draws reach .* beyond the largest float16",
    ),
    Row(
        "one-sided-trunc-overflows",
        _f16(jaxinit.trunc_normal(std=2e4, a=0.0, b=math.inf)),
        ValueError,
        r"trunc_normal: draws reach \[0, .*\] .* beyond the largest float16",
    ),
    # Keys.
    Row(
        "int-key",
        lambda: jaxinit.uniform()(0, (3,)),
        TypeError,
        r"uniform: key must be a JAX PRNG key, got 0 of type int; make one with "
        r"jax.random.key\(0\)",
    ),
    Row(
        "none-key-random",
        lambda: jaxinit.normal()(None, (3,)),
        TypeError,
        r"normal: key must be a JAX PRNG key, got None",
    ),
    Row(
        "batch-of-keys",
        lambda: jaxinit.uniform()(jax.random.split(KEY, 2), (3,)),
        ValueError,
        r"uniform: key must be a single PRNG key, got a batch of keys of "
        r"shape \(2,\); map over keys with jax.vmap",
    ),
    Row(
        "batch-of-raw-keys",
        lambda: jaxinit.orthogonal()(jax.random.split(RAW_KEY, 2), (3, 3)),
        ValueError,
        r"orthogonal: key must be a single PRNG key, got a batch of raw keys of shape "
        r"\(2, 2\)",
    ),
    Row(
        "float-array-key",
        lambda: jaxinit.uniform()(jnp.zeros(2), (3,)),
        TypeError,
        r"uniform: key must be a JAX PRNG key, got an array of dtype float32",
    ),
    Row(
        "wrong-length-raw-key",
        lambda: jaxinit.sparse(0.5)(jnp.zeros(4, jnp.uint32), (3, 3)),
        TypeError,
        r"sparse: key must be a JAX PRNG key, got a uint32 array of shape \(4,\), "
        r"which "
        r"is not a raw key of the default PRNG",
    ),
    Row(
        "numpy-key",
        lambda: jaxinit.uniform()(np.zeros(2, np.uint32), (3,)),
        TypeError,
        r"uniform: key must be a JAX PRNG key, got array\(\[0, 0\], dtype=uint32\)",
    ),
    # A factory where an initializer is expected.
    Row(
        "factory-as-initializer",
        lambda: jaxinit.kaiming_uniform(KEY, (3, 3)),
        TypeError,
        r"jaxinit.kaiming_uniform is a factory, not an initializer: it was "
        r"called with a PRNG key. Call it first",
    ),
    Row(
        "parameterless-factory-as-initializer",
        lambda: jaxinit.zeros(RAW_KEY, (3,)),
        TypeError,
        r"jaxinit.zeros is a factory, not an initializer.* "
        r"kernel_init=jaxinit.zeros\(\) instead of kernel_init=jaxinit.zeros",
    ),
    # Torch-style spellings validate the same way.
    Row(
        "torch-style-int-tensor",
        lambda: jaxinit.uniform_(KEY, jnp.zeros((2, 3), jnp.int32)),
        TypeError,
        r"uniform: dtype must be a floating dtype, .* got int32",
    ),
    Row(
        "torch-style-bad-param",
        lambda: jaxinit.sparse_(KEY, (3, 3), -0.1),
        ValueError,
        r"sparse: sparsity must be a number in \[0, 1\], got -0.1",
    ),
]

ROW_IDS = [row.id for row in ROWS]


def assert_raised_by_jaxinit(error: BaseException) -> None:
    """The exception is raised in jaxinit (or a Python signature check), not deep in
    jax: the innermost frame of its traceback is jaxinit's own code."""
    frames = traceback.extract_tb(error.__traceback__)
    innermost = frames[-1].filename if frames else ""
    assert "/jax/" not in innermost and "/jaxlib/" not in innermost, innermost


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_catalogued_bad_input(row: Row):
    with pytest.raises(row.error, match=row.match) as caught:
        row.call()
    assert type(caught.value) is row.error  # not a subclass such as OverflowError
    assert_raised_by_jaxinit(caught.value)


def _doc_table() -> dict[str, str]:
    """docs/errors.md rows: id -> exception name."""
    rows = {}
    for line in ERRORS_MD.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`[a-z0-9-]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[2].strip("`")
    return rows


def test_errors_md_documents_every_row():
    documented = _doc_table()
    assert set(documented) == set(ROW_IDS), set(documented) ^ set(ROW_IDS)
    for row in ROWS:
        assert documented[row.id] == row.error.__name__, row.id


def test_row_ids_are_unique():
    assert len(set(ROW_IDS)) == len(ROW_IDS)


# ---------------------------------------------------------------------------------
# Volume: every bad value class against every parameter of every factory.

# (factory, parameter, keyword arguments that make the other parameters valid)
NUMERIC_PARAMS = [
    ("uniform", "a", {"b": 1.0}),
    ("uniform", "b", {"a": 0.0}),
    ("normal", "mean", {}),
    ("normal", "std", {}),
    ("trunc_normal", "mean", {}),
    ("trunc_normal", "std", {}),
    ("trunc_normal", "a", {}),
    ("trunc_normal", "b", {}),
    ("trunc_normal_tf", "mean", {}),
    ("trunc_normal_tf", "std", {}),
    ("trunc_normal_tf", "a", {}),
    ("trunc_normal_tf", "b", {}),
    ("variance_scaling", "scale", {}),
    ("constant", "val", {}),
    ("xavier_uniform", "gain", {}),
    ("xavier_normal", "gain", {}),
    ("kaiming_uniform", "a", {}),
    ("kaiming_normal", "a", {}),
    ("orthogonal", "gain", {}),
    ("sparse", "sparsity", {}),
    ("sparse", "std", {"sparsity": 0.5}),
    ("dirac", "groups", {}),
]

# Values that are the wrong kind for every numeric parameter: TypeError.
WRONG_KINDS: list[Any] = [
    "1.0",
    b"1",
    True,
    False,
    np.bool_(True),
    jnp.array(True),
    1j,
    np.complex64(1),
    [1.0],
    (1.0,),
    {"x": 1.0},
    jnp.ones(2),
    np.ones((1, 1)),
    object(),
    print,
]
# Values of the right kind that every numeric parameter rejects: ValueError.
BAD_VALUES = [math.nan, float("nan"), np.float32("nan"), jnp.float32(math.nan)]
# Infinite values: rejected except where documented (constant's val, trunc's a, b).
INFINITIES = [math.inf, -math.inf, np.float64("inf"), np.float32("-inf")]
ALLOWS_INFINITY = {
    ("constant", "val"),
    ("trunc_normal", "a"),
    ("trunc_normal", "b"),
    ("trunc_normal_tf", "a"),
    ("trunc_normal_tf", "b"),
}
# Negative values: rejected by std, gain, scale, sparsity and groups.
NEGATIVES = [-1.0, -1e-300, -(2**70), np.float32(-0.5)]
NON_NEGATIVE = {"std", "gain", "scale", "sparsity", "groups"}


def _expected(factory: str, param: str, value: Any) -> type[Exception] | None:
    """The error a value must raise for this parameter, or None if it is valid."""
    if factory == "dirac":  # groups is an integer: every float is the wrong kind
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return ValueError if value < 1 else None
        return TypeError
    if factory.startswith("kaiming") and param == "a" and value is None:
        return None
    if any(value is wrong for wrong in WRONG_KINDS) or value is None:
        return TypeError
    number = float(value)
    if math.isnan(number):
        return ValueError
    if math.isinf(number):
        if (factory, param) not in ALLOWS_INFINITY:
            return ValueError
        if factory.startswith("trunc_normal"):  # a=+inf or b=-inf makes a > b
            return ValueError if (param == "a") == (number > 0) else None
        return None
    if param in NON_NEGATIVE and number < 0:
        return ValueError
    if factory == "trunc_normal" and param == "std" and number == 0:
        return ValueError
    if factory == "sparse" and param == "sparsity" and number > 1:
        return ValueError
    # The other bound is the default or the value in NUMERIC_PARAMS: a > b is bad.
    low, high = {
        "uniform": (0.0, 1.0),
        "trunc_normal": (-2.0, 2.0),
        "trunc_normal_tf": (-2.0, 2.0),
    }.get(factory, (-math.inf, math.inf))
    if (param == "a" and number > high) or (param == "b" and number < low):
        return ValueError
    return None


VOLUME = [
    pytest.param(factory, param, others, value, id=f"{factory}-{param}-{index}")
    for factory, param, others in NUMERIC_PARAMS
    for index, value in enumerate(
        [*WRONG_KINDS, None, *BAD_VALUES, *INFINITIES, *NEGATIVES, 0.0, 2.0]
    )
]


@pytest.mark.parametrize(("factory", "param", "others", "value"), VOLUME)
def test_bad_values_for_every_parameter(
    factory: str, param: str, others: dict[str, Any], value: Any
):
    build = getattr(jaxinit, factory)
    expected = _expected(factory, param, value)
    if expected is None:
        assert callable(build(**others, **{param: value}))
        return
    with pytest.raises(expected) as caught:
        build(**others, **{param: value})
    message = str(caught.value)
    assert type(caught.value) is expected
    assert message.startswith(f"{factory}: "), message
    assert param in message and re.search(r"must be|expects", message), message
    assert_raised_by_jaxinit(caught.value)


# Every initializer, with the shapes it takes and rejects.
ALL_INITS = {
    "uniform": jaxinit.uniform(),
    "normal": jaxinit.normal(),
    "trunc_normal": jaxinit.trunc_normal(),
    "constant": jaxinit.constant(0.5),
    "zeros": jaxinit.zeros(),
    "ones": jaxinit.ones(),
    "eye": jaxinit.eye(),
    "dirac": jaxinit.dirac(),
    "xavier_uniform": jaxinit.xavier_uniform(),
    "xavier_normal": jaxinit.xavier_normal(),
    "kaiming_uniform": jaxinit.kaiming_uniform(),
    "kaiming_normal": jaxinit.kaiming_normal(),
    "orthogonal": jaxinit.orthogonal(),
    "sparse": jaxinit.sparse(0.5),
    "trunc_normal_tf": jaxinit.trunc_normal_tf(),
    "variance_scaling": jaxinit.variance_scaling(),
    "lecun_normal": jaxinit.lecun_normal(),
}
EXACT = {"constant", "zeros", "ones", "eye", "dirac"}
# The name call-time errors give: the initializer each factory returns (zeros is
# constant(0.0), trunc_normal_tf a trunc_normal, lecun_normal a variance_scaling).
OWNER = {name: name for name in ALL_INITS} | {
    "zeros": "constant",
    "ones": "constant",
    "trunc_normal_tf": "trunc_normal",
    "lecun_normal": "variance_scaling",
}
GOOD_SHAPE = {"eye": (3, 3), "dirac": (3, 3, 2, 2)}
BAD_KEYS: list[tuple[str, Any, type[Exception]]] = [
    ("int", 0, TypeError),
    ("none", None, TypeError),
    ("float", 1.5, TypeError),
    ("string", "key", TypeError),
    ("float-array", jnp.zeros(2), TypeError),
    ("int32-array", jnp.zeros(2, jnp.int32), TypeError),
    ("uint32-scalar", jnp.uint32(7), TypeError),
    ("uint32-length-3", jnp.zeros(3, jnp.uint32), TypeError),
    ("numpy-raw-key", np.zeros(2, np.uint32), TypeError),
    ("typed-batch", jax.random.split(KEY, 3), ValueError),
    ("typed-batch-2d", jax.random.split(KEY, 4).reshape(2, 2), ValueError),
    ("raw-batch", jax.random.split(RAW_KEY, 3), ValueError),
]


@pytest.mark.parametrize(
    ("kind", "key", "error"), BAD_KEYS, ids=[k[0] for k in BAD_KEYS]
)
@pytest.mark.parametrize("name", sorted(ALL_INITS))
def test_bad_keys_for_every_initializer(name: str, kind: str, key: Any, error: type):
    init = ALL_INITS[name]
    shape = GOOD_SHAPE.get(name, (3, 3))
    if name in EXACT:  # exact initializers ignore their key, whatever it is
        assert init(key, shape).shape == shape
        return
    with pytest.raises(
        error, match=rf"^{OWNER[name]}: key must be a (JAX|single) PRNG key"
    ):
        init(key, shape)


BAD_DTYPES = [jnp.int8, jnp.int32, jnp.uint8, jnp.bool_, jnp.complex64, "int16", int]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(ALL_INITS))
def test_non_float_dtypes(name: str, dtype: Any):
    """Random initializers take floats only; exact ones take any numeric dtype, as
    torch does (int64 only under x64)."""
    init = ALL_INITS[name]
    shape = GOOD_SHAPE.get(name, (3, 3))
    resolved = jnp.dtype(dtype)
    if name in EXACT:
        if resolved == np.int64:  # Python int means int64: x64 only
            with pytest.raises(ValueError, match="needs 64-bit mode"):
                init(KEY, shape, dtype)
            return
        out = init(KEY, shape, dtype)
        assert out.dtype == resolved and out.shape == shape
        return
    with pytest.raises(
        TypeError, match=rf"^{OWNER[name]}: dtype must be a floating dtype"
    ):
        init(KEY, shape, dtype)


BAD_SHAPES: list[tuple[str, Any, type[Exception]]] = [
    ("negative", (3, -2), ValueError),
    ("float", (3.0, 3), TypeError),
    ("numpy-float", (np.float64(3), 3), TypeError),
    ("bool", (3, False), TypeError),
    ("none-dim", (3, None), TypeError),
    ("int", 3, TypeError),
    ("none", None, TypeError),
    ("string", "3x3", TypeError),
    ("set", {3, 4}, TypeError),
    ("jax-array", jnp.array([3, 3]), TypeError),
    ("int64-overflow", (2**62, 4), ValueError),
    ("huge-dim", (2**70, 1), ValueError),
]


@pytest.mark.parametrize(
    ("kind", "shape", "error"), BAD_SHAPES, ids=[s[0] for s in BAD_SHAPES]
)
@pytest.mark.parametrize("name", sorted(ALL_INITS))
def test_bad_shapes_for_every_initializer(
    name: str, kind: str, shape: Any, error: type
):
    with pytest.raises(error, match=rf"^{OWNER[name]}: shape"):
        ALL_INITS[name](KEY, shape)


def _rank_is_valid(name: str, rank: int) -> bool:
    if OWNER[name] in ("uniform", "normal", "trunc_normal", "constant"):
        return True
    if name in ("eye", "sparse"):
        return rank == 2
    if name == "dirac":
        return 3 <= rank <= 5
    return rank >= 2  # fan-based and orthogonal


@pytest.mark.parametrize("rank", range(7))
@pytest.mark.parametrize("name", sorted(ALL_INITS))
def test_every_rank(name: str, rank: int):
    shape = (2,) * rank
    init = ALL_INITS[name]
    if _rank_is_valid(name, rank):
        # Traced, not compiled: XLA takes seconds to compile rank-5 random draws.
        assert jax.eval_shape(lambda key: init(key, shape), KEY).shape == shape
        return
    with pytest.raises(
        ValueError, match=rf"^{OWNER[name]}: .*(dimensions|Fan in)"
    ) as caught:
        init(KEY, shape)
    assert str(shape) in str(caught.value)


def test_element_count_beyond_int32_is_allowed():
    """2**32 elements overflow int32 but not int64: a valid (if large) shape. Traced
    only (jax.eval_shape), so nothing is allocated."""
    for name in ("uniform", "trunc_normal", "kaiming_normal", "zeros"):
        init = ALL_INITS[name]
        out = jax.eval_shape(lambda key, init=init: init(key, (2**16, 2**16)), KEY)
        assert out.shape == (2**16, 2**16) and out.dtype == jnp.float32


def test_factory_dtype_float64_is_checked_at_call_time():
    """A factory's default dtype may be float64 before x64 is enabled (it is stored
    by name); the call then needs x64."""
    init = jaxinit.normal(dtype=jnp.float64)
    with pytest.raises(ValueError, match="jax_enable_x64"):
        init(KEY, (3,))
    with jax.enable_x64(True):
        assert init(KEY, (3,)).dtype == jnp.float64


def test_factory_passed_to_flax_says_to_call_it():
    nnx = pytest.importorskip("flax.nnx")
    with pytest.raises(
        TypeError, match=r"jaxinit.zeros is a factory.*jaxinit.zeros\(\)"
    ):
        nnx.Linear(3, 4, bias_init=jaxinit.zeros, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"jaxinit.xavier_uniform is a factory"):
        nnx.Linear(3, 4, kernel_init=jaxinit.xavier_uniform, rngs=nnx.Rngs(0))
