"""Parity with torch, the oracle: exact fans, gains and scales from torch's own
functions, and two-sample KS tests of every initializer against torch's samples,
in both layouts (a Flax kernel must be distributed as the transposed torch weight)."""

import math

import jax
import numpy as np
import pytest
from _stats import assert_same_law
from cases import CASES, Case, flax_shape, to_torch_layout

import jaxinit

torch = pytest.importorskip("torch")
init = torch.nn.init

from _timm_oracle import torch_fill  # noqa: E402

TORCH_SHAPES = [
    (3, 5),
    (5, 3),
    (0, 5),
    (5, 0),
    (4, 3, 2),
    (4, 3, 2, 2),
    (8, 2, 3, 3, 3),
    (2, 3, 0),
    (1, 1, 512),
    (256, 784),
    (64, 3, 7, 7),
    (64, 1, 3, 3),
    (64, 16, 4, 4),
    (1536, 512),
    (40, 20, 30),
]


@pytest.mark.parametrize("shape", TORCH_SHAPES, ids=str)
def test_fans_match_torch_in_both_layouts(shape):
    expected = init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert jaxinit.calculate_fan_in_and_fan_out(shape, layout="torch") == expected
    assert jaxinit.calculate_fan_in_and_fan_out(flax_shape(shape)) == expected


GAIN_CASES = [
    *[
        (name, None)
        for name in (
            "linear",
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
            "sigmoid",
            "tanh",
            "relu",
            "leaky_relu",
            "selu",
        )
    ],
    ("leaky_relu", 0.2),
    ("leaky_relu", math.sqrt(5)),
    ("leaky_relu", -0.3),
    ("leaky_relu", 0),
    ("leaky_relu", 3),
    ("relu", 0.7),
    ("tanh", 2.0),
]


@pytest.mark.parametrize(("nonlinearity", "param"), GAIN_CASES)
def test_gain_matches_torch_exactly(nonlinearity, param):
    expected = init.calculate_gain(nonlinearity, param)
    got = jaxinit.calculate_gain(nonlinearity, param)
    assert got == expected and type(got) is type(expected)


SCALE_CASES = [
    ("kaiming_uniform", {"a": math.sqrt(5)}, (256, 784)),
    ("kaiming_uniform", {}, (256, 784)),
    ("kaiming_uniform", {"a": math.sqrt(5)}, (64, 3, 7, 7)),
    ("kaiming_uniform", {"a": math.sqrt(5)}, (64, 1, 3, 3)),
    ("kaiming_uniform", {"a": math.sqrt(5)}, (64, 16, 4, 4)),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}, (64, 3, 3, 3)),
    ("kaiming_normal", {"a": None, "mode": "Fan_In"}, (40, 20, 30)),
    ("kaiming_normal", {"nonlinearity": "selu"}, (8, 2, 3, 3, 3)),
    ("xavier_uniform", {}, (1536, 512)),
    ("xavier_uniform", {"gain": 5 / 3}, (2048, 512)),
    ("xavier_normal", {"gain": 0.5}, (1, 1, 512)),
]


def _torch_std(name: str, kwargs: dict, shape: tuple[int, ...]) -> float:
    tensor = torch.empty(shape)
    if name.startswith("kaiming"):
        mode = kwargs.get("mode", "fan_in")
        fan = init._calculate_correct_fan(tensor, mode)
        gain = init.calculate_gain(
            kwargs.get("nonlinearity", "leaky_relu"), kwargs.get("a", 0)
        )
        return gain / math.sqrt(fan)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(tensor)
    return kwargs.get("gain", 1.0) * math.sqrt(2.0 / float(fan_in + fan_out))


@pytest.mark.parametrize(("name", "kwargs", "shape"), SCALE_CASES, ids=str)
@pytest.mark.parametrize("layout", ["flax", "torch"])
def test_std_matches_torch_formula(name, kwargs, shape, layout):
    initializer = getattr(jaxinit, name)(**kwargs, layout=layout)
    ours = shape if layout == "torch" else flax_shape(shape)
    fans = initializer.axes(ours).fans(ours)
    assert initializer.std(*fans) == pytest.approx(
        _torch_std(name, kwargs, shape), rel=1e-15
    )


def test_golden_bounds():
    """Spec section 6: the bounds of torch's famous layer defaults."""
    linear = jaxinit.kaiming_uniform(a=math.sqrt(5))
    assert math.sqrt(3) * linear.std(784, 256) == pytest.approx(1 / 28, rel=1e-15)
    assert math.sqrt(3) * linear.std(147, 3136) == pytest.approx(0.08247860988423225)
    assert math.sqrt(3) * linear.std(9, 576) == pytest.approx(1 / 3, rel=1e-15)
    assert math.sqrt(3) * linear.std(256, 1024) == pytest.approx(0.0625, rel=1e-15)
    assert math.sqrt(3) * jaxinit.xavier_uniform().std(512, 1536) == pytest.approx(
        0.05412658773652741, rel=1e-15
    )


def _torch_sample(case: Case, shape: tuple[int, ...]) -> np.ndarray:
    torch.manual_seed(0)
    tensor = torch.empty(shape)
    with torch.no_grad():
        torch_fill(case.name)(tensor, **case.kwargs)
    return tensor.numpy()


PARAMS = [
    pytest.param(case, layout, id=f"{case.id}-{layout}")
    for case in CASES
    for layout in case.layouts
]


@pytest.mark.parametrize(("case", "layout"), PARAMS)
def test_distributed_as_torch(case: Case, layout: str):
    shape = case.torch_shape if not case.exact else case.small_torch_shape
    ours = case.init(layout)(
        jax.random.key(7), shape if layout == "torch" else flax_shape(shape)
    )
    ours = np.asarray(ours if layout == "torch" else to_torch_layout(ours))
    theirs = _torch_sample(case, shape)
    if case.exact:
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert_same_law(ours, theirs)
