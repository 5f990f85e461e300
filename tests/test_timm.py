"""timm's initializers: trunc_normal_tf, variance_scaling and lecun_normal.

The generic tests (cases.py) run them eager, jitted and vmapped, in every dtype
and both layouts, and test their laws (moments, KS) against scipy and, two-sample,
against timm's definitions written with torch's primitives (``_timm_oracle``).
Here: the exact scales and bounds, equalities with the initializers they are,
tests that a 2% std error or a swapped fan fails, and timm itself where it is
installed.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from _stats import assert_ks, assert_moments, assert_same_law
from cases import CASES, STATS_CONV, TRUNCATED_STD, flax_shape, to_torch_layout

import jaxinit

KEY = jax.random.key(19)
TIMM_NAMES = ("trunc_normal_tf", "variance_scaling", "lecun_normal")
TIMM_CASES = [case for case in CASES if case.name in TIMM_NAMES]
MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
# torch (out, in, *k) shapes with fan_in != fan_out, so a swapped fan shows.
SHAPES = [(32, 64), (64, 32), (64, 16, 3, 3), (8, 4, 5), (7, 3, 2, 2, 2)]


def _torch_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    torch = pytest.importorskip("torch")
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    return int(fan_in), int(fan_out)


def _timm_variance(shape: tuple[int, ...], scale: float, mode: str) -> float:
    fan_in, fan_out = _torch_fans(shape)
    return scale / {"fan_in": fan_in, "fan_out": fan_out}.get(
        mode, (fan_in + fan_out) / 2
    )


def test_the_truncation_constant_is_the_cut_normals_std() -> None:
    assert scipy.stats.truncnorm(-2, 2).std() == pytest.approx(TRUNCATED_STD, 1e-14)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["flax", "torch"])
def test_std_is_timms(shape: tuple[int, ...], mode: str, layout: str) -> None:
    """sqrt(scale / n), n from torch's fans of the torch weight, in both layouts."""
    init = jaxinit.variance_scaling(0.7, mode, layout=layout)
    ours = shape if layout == "torch" else flax_shape(shape)
    std = init.std(*init.axes(ours).fans(ours))  # type: ignore[attr-defined]
    expected = math.sqrt(_timm_variance(shape, 0.7, mode))
    assert std == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("layout", ["flax", "torch"])
def test_bounds_are_timms(distribution: str, layout: str) -> None:
    """The support of each distribution, reached and not exceeded.

    Truncated: +-2 sqrt(variance) / 0.8796; uniform: +-sqrt(3 variance); normal:
    unbounded, past 4 std in 294,912 draws. A swapped fan (fan_out = 2 fan_in
    here) or a 2% scale error moves each bound beyond the margin.
    """
    shape = STATS_CONV
    variance = _timm_variance(shape, 2.0, "fan_in")
    init = jaxinit.variance_scaling(2.0, "fan_in", distribution, layout=layout)
    w = init(KEY, shape if layout == "torch" else flax_shape(shape))
    top = float(jnp.abs(w).max())
    if distribution == "normal":
        assert top > 4 * math.sqrt(variance)
        return
    if distribution == "truncated_normal":
        bound = 2 * math.sqrt(variance) / TRUNCATED_STD
        assert top <= bound
    else:
        bound = math.sqrt(3 * variance)
        assert top < bound
    assert top > 0.995 * bound


def test_lecun_normal_is_variance_scaling() -> None:
    for layout in ("flax", "torch"):
        assert jaxinit.lecun_normal(layout=layout) == jaxinit.variance_scaling(
            1.0, "fan_in", "truncated_normal", layout=layout
        )
    assert jaxinit.lecun_normal(in_axis=0, out_axis=1) == jaxinit.variance_scaling(
        mode="fan_in", distribution="truncated_normal", in_axis=0, out_axis=1
    )


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [(0.0, 1.0, -2.0, 2.0), (0.5, 0.02, -1.5, 3.0), (-1.0, 3.0, -math.inf, 0.25)],
)
def test_trunc_normal_tf_is_trunc_normal_with_bounds_in_std(
    mean: float, std: float, a: float, b: float
) -> None:
    assert jaxinit.trunc_normal_tf(mean, std, a, b) == jaxinit.trunc_normal(
        mean, std, mean + a * std, mean + b * std
    )
    w = jaxinit.trunc_normal_tf(mean, std, a, b)(KEY, (4096,))
    assert float(w.min()) >= mean + a * std and float(w.max()) <= mean + b * std


def test_zero_scale_and_zero_std_are_constants() -> None:
    """timm multiplies by a zero std: the constant mean, or zeros."""
    assert jaxinit.trunc_normal_tf(0.5, 0.0) == jaxinit.normal(0.5, 0.0)
    out = jaxinit.trunc_normal_tf_(KEY, (3, 4), 0.5, 0.0, a=-math.inf)
    np.testing.assert_array_equal(np.asarray(out), 0.5)
    for distribution in DISTRIBUTIONS:
        out = jaxinit.variance_scaling_(KEY, (3, 4), 0.0, "fan_avg", distribution)
        np.testing.assert_array_equal(np.asarray(out), 0.0)


def test_torch_style_reads_torch_layout() -> None:
    """``variance_scaling_`` on a (out, in, k, k) weight is the factory in torch
    layout, and the Flax kernel is the transposed weight (bit for bit)."""
    shape = (64, 16, 3, 3)
    ours = jaxinit.variance_scaling_(KEY, jnp.empty(shape), 2.0, "fan_out")
    factory = jaxinit.variance_scaling(2.0, "fan_out", layout="torch")(KEY, shape)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(factory))
    assert jaxinit.lecun_normal_(KEY, jnp.empty(shape, jnp.bfloat16)).dtype == (
        jnp.bfloat16
    )


def test_whole_models_draw_the_truncated_law() -> None:
    """init_tree and eager calls draw truncated variance scaling as such (their
    batched programs know only uniform and normal laws: it must not become one)."""
    init = jaxinit.lecun_normal()
    shape = (3, 3, 128, 256)  # fan_in 1152
    tree = jaxinit.init_tree(KEY, {"conv/kernel": (init, shape, None)})["conv/kernel"]
    own = init(jaxinit.leaf_key(KEY, "conv/kernel"), shape)
    jitted = jax.jit(lambda key: init(key, shape))(jaxinit.leaf_key(KEY, "conv/kernel"))
    np.testing.assert_array_equal(np.asarray(tree), np.asarray(own))
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(own))
    cut = 1 / math.sqrt(1152) / TRUNCATED_STD
    law = scipy.stats.truncnorm(-2, 2, scale=cut)
    assert_ks(np.asarray(own), law)
    assert_moments(np.asarray(own), law)


# --- power: the tests above and the generic ones fail a wrong law ------------------


def _lecun_sample() -> np.ndarray:
    """lecun_normal on a Conv2d(128, 256, 3) kernel: 294,912 values, fan_in 1152."""
    return np.asarray(jaxinit.lecun_normal()(KEY, flax_shape(STATS_CONV)), np.float64)


def _lecun_law(std_factor: float = 1.0, fan: int = 1152) -> scipy.stats.rv_continuous:
    cut = std_factor / math.sqrt(fan) / TRUNCATED_STD
    return scipy.stats.truncnorm(-2, 2, scale=cut)


def test_lecun_law_passes_and_wrong_laws_fail() -> None:
    """The second-moment z-test has a standard error of 0.22% of the variance at
    this size: a 2% std error is z ~ 20 and a swapped fan (fan_out 2304) z ~ 460;
    at ALPHA it detects a std about 0.5% off."""
    x = _lecun_sample()
    assert_moments(x, _lecun_law())
    assert_ks(x, _lecun_law())
    with pytest.raises(AssertionError, match=r"E\[x\^2\]"):
        assert_moments(x, _lecun_law(std_factor=1.02))
    with pytest.raises(AssertionError, match=r"E\[x\^2\]"):
        assert_moments(x, _lecun_law(fan=2304))
    # The untruncated normal of the same std: the moments agree, KS does not.
    with pytest.raises(AssertionError, match="KS p="):
        assert_ks(x, scipy.stats.norm(0, 1 / math.sqrt(1152)))


def test_trunc_normal_tf_differs_from_torchs_trunc_normal() -> None:
    """Bounds in std (+-1 for std 0.5) against torch's absolute ones (+-2 = +-4
    std): std 0.44 against 0.50, far beyond the moment test's resolution."""
    x = np.asarray(jaxinit.trunc_normal_tf(std=0.5)(KEY, (512, 576)), np.float64)
    assert_moments(x, scipy.stats.truncnorm(-2, 2, scale=0.5))
    with pytest.raises(AssertionError):
        assert_moments(x, scipy.stats.truncnorm(-4, 4, scale=0.5))


# --- against timm itself -----------------------------------------------------------


@pytest.mark.parametrize("layout", ["flax", "torch"])
@pytest.mark.parametrize("case", TIMM_CASES, ids=lambda case: case.id)
def test_distributed_as_timm(case, layout: str) -> None:  # type: ignore[no-untyped-def]
    """Two-sample KS against timm's own functions (where timm is installed)."""
    pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    from timm.layers import weight_init

    shape = case.torch_shape
    ours = case.init(layout)(KEY, shape if layout == "torch" else flax_shape(shape))
    ours = np.asarray(ours if layout == "torch" else to_torch_layout(ours))
    torch.manual_seed(0)
    tensor = torch.empty(shape)
    getattr(weight_init, f"{case.name}_")(tensor, **case.kwargs)
    assert_same_law(ours, tensor.numpy())


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_defaults_are_timms(name: str) -> None:
    pytest.importorskip("timm")
    import inspect

    from timm.layers import weight_init

    theirs = inspect.signature(getattr(weight_init, f"{name}_")).parameters
    ours = inspect.signature(getattr(jaxinit, name)).parameters
    shared = [p for p in theirs if p != "tensor"]
    assert set(shared) <= set(ours)
    for parameter in shared:
        assert ours[parameter].default == theirs[parameter].default, parameter


# --- the jax.nn names: same laws where the docs say so ------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (jaxinit.lecun_normal(), jax.nn.initializers.lecun_normal()),
        (
            jaxinit.variance_scaling(2.0, "fan_avg", "uniform"),
            jax.nn.initializers.variance_scaling(2.0, "fan_avg", "uniform"),
        ),
        (
            jaxinit.trunc_normal_tf(std=0.02),
            jax.nn.initializers.truncated_normal(0.02),
        ),
    ],
    ids=["lecun_normal", "variance_scaling", "trunc_normal_tf"],
)
def test_same_law_as_jax_nn(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    """In Flax layout: the same fans and law as jax's initializer of that name."""
    shape = flax_shape(STATS_CONV)
    assert_same_law(ours(KEY, shape), theirs(jax.random.key(1), shape))
