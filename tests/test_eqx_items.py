"""Equinox weights in and out on the structures real code uses (issue 17, items 6, 9).

Torch is the oracle: each test builds the torch model, moves weights with
``to_torch`` / ``from_torch``, and compares tensors and forward passes. Tied
weights (``eqx.nn.Shared``), layers in a dict field, ``Linear("scalar", n)``,
BatchNorm running statistics through ``eqx.nn.State`` (ResNet-18 in inference
mode), and abstract models.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

eqx = pytest.importorskip("equinox")
torch = pytest.importorskip("torch")

from _eqx_models import torch_state  # noqa: E402
from _stats import assert_same_law  # noqa: E402

import jaxinit  # noqa: E402
import jaxinit.equinox as jeqx  # noqa: E402

nn = eqx.nn
tnn = torch.nn
KEY = jax.random.key(0)
RNG = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _load(twin: Any, tensors: dict[str, np.ndarray]) -> None:
    twin.load_state_dict(
        {name: torch.from_numpy(value) for name, value in tensors.items()},
        strict=True,
    )


# --- eqx.nn.Shared: tied weights ------------------------------------------------------


class _Tied(eqx.Module):
    """GPT-2's tie: the output head reads the embedding matrix."""

    tied: Any

    def __init__(self, key: Any) -> None:
        k1, k2 = jax.random.split(key)
        embedding = nn.Embedding(50, 16, key=k1)
        head = nn.Linear(16, 50, use_bias=False, key=k2)
        self.tied = nn.Shared(
            (embedding, head), lambda pair: pair[1].weight, lambda pair: pair[0].weight
        )

    def __call__(self, tokens: Any) -> Any:
        embedding, head = self.tied()
        return jax.vmap(head)(jax.vmap(embedding)(tokens))


def _torch_tied() -> Any:
    model = tnn.Module()
    model.tied = tnn.ModuleList([tnn.Embedding(50, 16), tnn.Linear(16, 50, bias=False)])
    model.tied[1].weight = model.tied[0].weight  # one Parameter, two names
    return model


def test_shared_round_trips_and_matches_torchs_state_dict() -> None:
    model = _Tied(KEY)
    twin = _torch_tied()
    assert set(twin.state_dict()) == {"tied.0.weight", "tied.1.weight"}
    tensors = jeqx.to_torch(model)  # main: the placeholder as a 0-d object array
    assert {name: value.dtype for name, value in tensors.items()} == {
        "tied.0.weight": np.float32,
        "tied.1.weight": np.float32,
    }
    _load(twin, tensors)
    tokens = np.array([3, 41, 7])
    with torch.no_grad():
        expected = twin.tied[1](twin.tied[0](torch.from_numpy(tokens))).numpy()
    got = model(jnp.asarray(tokens))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # torch's weights back in: still tied, the same forward pass.
    with torch.no_grad():
        twin.tied[0].weight.normal_()
    back = jeqx.from_torch(model, torch_state(twin))
    assert isinstance(back.tied, nn.Shared)
    embedding, head = back.tied()
    assert embedding.weight is head.weight
    np.testing.assert_array_equal(embedding.weight, twin.tied[0].weight.detach())
    again = jeqx.from_torch(back, jeqx.to_torch(back))
    np.testing.assert_array_equal(again.tied()[1].weight, head.weight)


def test_shared_tensors_that_differ_raise() -> None:
    model = _Tied(KEY)
    tensors = jeqx.to_torch(model)
    tensors["tied.1.weight"] = tensors["tied.1.weight"] + 1
    with pytest.raises(ValueError, match=r"eqx.nn.Shared at 'tied' differ"):
        jeqx.from_torch(model, tensors)


# --- layers held in a dict field ------------------------------------------------------


class _ByName(eqx.Module):
    layers: dict[str, Any]

    def __init__(self, key: Any) -> None:
        k1, k2, k3 = jax.random.split(key, 3)
        self.layers = {
            "encoder": nn.Linear(6, 8, key=k1),
            "body": nn.Sequential(
                [
                    nn.Linear(8, 8, key=k2),
                    nn.Lambda(jax.nn.relu),
                    nn.Linear(8, 4, key=k3),
                ]
            ),
            "norm": nn.LayerNorm(4),
        }

    def __call__(self, x: Any) -> Any:
        layers = self.layers
        return layers["norm"](layers["body"](layers["encoder"](x)))


def test_layers_in_a_dict_field_are_named_as_torchs_module_dict() -> None:
    torch.manual_seed(0)
    twin = tnn.Module()
    twin.layers = tnn.ModuleDict(
        {
            "encoder": tnn.Linear(6, 8),
            "body": tnn.Sequential(tnn.Linear(8, 8), tnn.ReLU(), tnn.Linear(8, 4)),
            "norm": tnn.LayerNorm(4),
        }
    )
    with torch.no_grad():
        twin.layers["norm"].weight.normal_()
    abstract = eqx.filter_eval_shape(_ByName, KEY)  # from_torch fills it in
    model = jeqx.from_torch(abstract, torch_state(twin))
    x = _x(3, 6)
    with torch.no_grad():
        layers = twin.layers
        expected = layers["norm"](
            layers["body"](layers["encoder"](torch.from_numpy(x)))
        )
    got = jax.vmap(model)(jnp.asarray(x))
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)
    _load(twin, jeqx.to_torch(model))


# --- Linear("scalar", n) and Linear(n, "scalar") --------------------------------------


def test_scalar_linear_converts_as_torchs_one_feature_linear() -> None:
    torch.manual_seed(0)
    for eqx_layer, twin in (
        (nn.Linear("scalar", 5, key=KEY), tnn.Linear(1, 5)),
        (nn.Linear(5, "scalar", key=KEY), tnn.Linear(5, 1)),
    ):
        layer = jeqx.from_torch(eqx_layer, torch_state(twin))
        x = _x(5) if twin.in_features == 5 else _x(1)
        with torch.no_grad():
            expected = twin(torch.from_numpy(x)).numpy()
        got = np.asarray(layer(jnp.asarray(x if x.size == 5 else x[0])))
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-6)
        _load(twin, jeqx.to_torch(layer))


def test_scalar_linear_torch_init_draws_torchs_one_feature_laws() -> None:
    # torch.nn.Linear(1, n): weight and bias both U(-1, 1) (fan_in 1).
    width = 20000
    layer = nn.Linear("scalar", width, key=KEY)
    rule = jeqx.torch_rules()[nn.Linear](layer, {})
    assert rule == {
        "weight": jaxinit.kaiming_uniform(a=math.sqrt(5)),
        "bias": jaxinit.uniform(-1.0, 1.0),
    }
    drawn = jeqx.torch_init(layer, jax.random.key(1))
    torch.manual_seed(0)
    twin = tnn.Linear(1, width)
    assert_same_law(np.asarray(drawn.bias), twin.bias.detach().numpy())
    assert_same_law(np.asarray(drawn.weight), twin.weight.detach().numpy())


# --- BatchNorm running statistics -----------------------------------------------------


def _torch_block(cin: int, cout: int, stride: int) -> Any:
    block = tnn.Module()
    block.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    block.bn1 = tnn.BatchNorm2d(cout)
    block.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    block.bn2 = tnn.BatchNorm2d(cout)
    if stride != 1 or cin != cout:
        block.downsample = tnn.Sequential(
            tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)
        )
    else:
        block.downsample = None
    return block


def _torch_block_forward(block: Any, x: Any) -> Any:
    relu = torch.relu
    out = relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    skip = x if block.downsample is None else block.downsample(x)
    return relu(out + skip)


STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # ResNet-18: two blocks a stage


class _TorchResNet18(tnn.Module):  # type: ignore[misc]
    """torchvision's resnet18: its names and forward pass (torchvision not needed)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        cin = 64
        for index, (cout, stride) in enumerate(STAGES, 1):
            blocks = [_torch_block(cin, cout, stride), _torch_block(cout, cout, 1)]
            setattr(self, f"layer{index}", tnn.Sequential(*blocks))
            cin = cout
        self.fc = tnn.Linear(512, classes)

    def forward(self, x: Any) -> Any:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = tnn.functional.max_pool2d(x, 3, 2, 1)
        for index in range(1, 5):
            for block in getattr(self, f"layer{index}"):
                x = _torch_block_forward(block, x)
        return self.fc(x.mean((2, 3)))


class _Block(eqx.Module):
    conv1: Any
    bn1: Any
    conv2: Any
    bn2: Any
    downsample: Any

    def __init__(self, cin: int, cout: int, stride: int, mode: str, key: Any) -> None:
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, use_bias=False, key=k1)
        self.bn1 = nn.BatchNorm(cout, "batch", mode=mode)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, use_bias=False, key=k2)
        self.bn2 = nn.BatchNorm(cout, "batch", mode=mode)
        self.downsample = None
        if stride != 1 or cin != cout:
            conv = nn.Conv2d(cin, cout, 1, stride, use_bias=False, key=k3)
            self.downsample = (conv, nn.BatchNorm(cout, "batch", mode=mode))

    def __call__(self, x: Any, state: Any) -> Any:
        out, state = self.bn1(self.conv1(x), state, inference=True)
        out, state = self.bn2(self.conv2(jax.nn.relu(out)), state, inference=True)
        if self.downsample is not None:
            conv, norm = self.downsample
            x, state = norm(conv(x), state, inference=True)
        return jax.nn.relu(out + x)


class _ResNet18(eqx.Module):
    conv1: Any
    bn1: Any
    layer1: list[_Block]
    layer2: list[_Block]
    layer3: list[_Block]
    layer4: list[_Block]
    fc: Any

    def __init__(self, classes: int, mode: str, key: Any) -> None:
        keys = iter(jax.random.split(key, 10))
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, use_bias=False, key=next(keys))
        self.bn1 = nn.BatchNorm(64, "batch", mode=mode)
        stages, cin = [], 64
        for cout, stride in STAGES:
            stages.append(
                [
                    _Block(cin, cout, stride, mode, next(keys)),
                    _Block(cout, cout, 1, mode, next(keys)),
                ]
            )
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, classes, key=next(keys))

    def __call__(self, x: Any, state: Any) -> Any:
        x, _ = self.bn1(self.conv1(x), state, inference=True)
        x = nn.MaxPool2d(3, 2, padding=1)(jax.nn.relu(x))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x, state)
        return self.fc(x.mean((1, 2)))


@pytest.fixture(scope="module")
def trained_resnet() -> tuple[Any, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """torch's ResNet-18 after a few training-mode batches, and its eval output."""
    torch.manual_seed(0)
    twin = _TorchResNet18(10)
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, tnn.BatchNorm2d):  # affine weights that matter
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
        twin.train()
        for _ in range(3):  # the running statistics move away from (0, 1)
            twin(torch.randn(4, 3, 32, 32) * 2 + 0.5)
    twin.eval()
    x = _x(2, 3, 32, 32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    return twin, torch_state(twin), x, expected


def _with_state(mode: str) -> tuple[Any, Any]:
    """ResNet-18 and its ``eqx.nn.State``, without Equinox's own random init.

    Its parameters and initial statistics are zeros (from_torch writes them
    all): building it concretely compiles a random program per shape.
    """
    abstract = eqx.filter_eval_shape(_ResNet18, 10, mode, KEY)

    def zeros(leaf: Any) -> Any:
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return np.zeros(leaf.shape, leaf.dtype)
        return leaf

    model = jax.tree.map(zeros, abstract)
    return eqx.nn.delete_init_state(model), eqx.nn.State(model)


@eqx.filter_jit
def _forward(model: Any, x: Any, state: Any) -> Any:
    return jax.vmap(model, in_axes=(0, None))(x, state)


def _fresh(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same weights with torch's fresh running statistics."""
    fresh = dict(tensors)
    for name, value in tensors.items():
        if name.endswith(("running_mean", "num_batches_tracked")):
            fresh[name] = np.zeros_like(value)
        elif name.endswith("running_var"):
            fresh[name] = np.ones_like(value)
    return fresh


@pytest.mark.parametrize("mode", ["batch", "ema"])
def test_resnet18_in_inference_mode_matches_torch_eval_only_with_the_statistics(
    trained_resnet: Any, mode: str
) -> None:
    _, tensors, x, expected = trained_resnet
    assert int(tensors["bn1.num_batches_tracked"]) == 3
    model, state = _with_state(mode)
    loaded, loaded_state = jeqx.from_torch(model, tensors, state)  # main: TypeError
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(_forward(loaded, x, loaded_state) - expected).max())
    assert error <= tolerance, error
    # The weights alone, with fresh statistics (as after make_with_state): wrong.
    weights_only, fresh_state = jeqx.from_torch(model, _fresh(tensors), state)
    stale = float(np.abs(_forward(weights_only, x, fresh_state) - expected).max())
    assert stale > 100 * tolerance, stale
    # And out: to_torch writes the statistics; torch's eval pass is unchanged.
    written = jeqx.to_torch(loaded, loaded_state)
    for name, value in tensors.items():
        if mode == "ema" and name.endswith("num_batches_tracked"):
            assert int(written[name]) == 1  # ema mode keeps no count
            continue
        np.testing.assert_allclose(written[name], value, rtol=1e-6, err_msg=name)
    fresh = _TorchResNet18(10).eval()
    _load(fresh, written)
    with torch.no_grad():
        again = fresh(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=tolerance)


def test_fresh_state_writes_torchs_fresh_statistics() -> None:
    for mode in ("batch", "ema"):
        norm, state = eqx.nn.make_with_state(nn.BatchNorm)(3, "batch", mode=mode)
        for given in (None, state):
            written = jeqx.to_torch(norm, given)
            np.testing.assert_array_equal(written["running_mean"], np.zeros(3))
            np.testing.assert_array_equal(written["running_var"], np.ones(3))
            assert int(written["num_batches_tracked"]) == 0
        _load(tnn.BatchNorm1d(3), written)
    with pytest.raises(TypeError, match=r"state must be an eqx\.nn\.State"):
        jeqx.to_torch(norm, {})


def test_from_torch_with_a_state_needs_the_running_statistics() -> None:
    norm, state = eqx.nn.make_with_state(nn.BatchNorm)(3, "batch", mode="batch")
    tensors = torch_state(tnn.BatchNorm1d(3))
    del tensors["running_var"]
    jeqx.from_torch(norm, tensors)  # without a state, the buffers are not read
    with pytest.raises(KeyError, match="missing tensor 'running_var'"):
        jeqx.from_torch(norm, tensors, state)


# --- item 6: to_torch of an abstract model --------------------------------------------


def test_to_torch_of_an_abstract_model_raises_naming_the_parameters() -> None:
    abstract = eqx.filter_eval_shape(_ByName, KEY)
    with pytest.raises(TypeError, match=r"abstract.*layers\.body\.0\.bias.*torch_init"):
        jeqx.to_torch(abstract)  # main: object arrays of ShapeDtypeStructs
    concrete = jeqx.torch_init(abstract, KEY)
    assert all(value.dtype == np.float32 for value in jeqx.to_torch(concrete).values())
