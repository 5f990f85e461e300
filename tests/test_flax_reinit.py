"""jaxinit.flax.reinit and torch_init on linen and nnx models: torch's exact laws per
parameter (formulas and two-sample KS against torch), rule priority, keys derived
from paths, untouched parameters, and jit."""

import math
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("flax")

from _porting_models import (
    CASES,
    FLAVOURS,
    Case,
    assert_law,
    check_against_torch,
    flat,
    nnx_params,
    uniform,
)
from flax import linen as nn, nnx

import jaxinit
import jaxinit.flax as jflax

KEY = jax.random.key(7)


def torch_initialized(
    case: Case, flavour: str, key: jax.Array
) -> dict[Any, np.ndarray]:
    """An abstract Flax model (shapes only, nothing drawn), then torch_init'ed.

    Starting from abstract parameters also proves torch_init draws every one.
    """
    if flavour == "linen":
        module = case.linen_module(False)
        x = jnp.asarray(case.flax_input())
        variables = jax.eval_shape(module.init, jax.random.key(1), x)
        new = jflax.torch_init(
            module, key, case.extra_rules(), variables=variables, args=(x,)
        )
        return flat(new["params"])
    model = nnx.eval_shape(lambda: case.nnx_module(False, 1))
    jflax.torch_init(model, key, case.extra_rules())
    return nnx_params(model)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_torch_init_draws_torch_laws(case: Case, flavour: str) -> None:
    def draw(index: int) -> dict[Any, np.ndarray]:
        key = jax.random.fold_in(KEY, index) if index else KEY
        return torch_initialized(case, flavour, key)

    check_against_torch(case, flavour, draw)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_torch_init_is_deterministic_per_key(flavour: str) -> None:
    case = CASES[0]
    first = torch_initialized(case, flavour, KEY)
    again = torch_initialized(case, flavour, KEY)
    other = torch_initialized(case, flavour, jax.random.key(8))
    for path in first:
        np.testing.assert_array_equal(first[path], again[path])
        assert not np.array_equal(first[path], other[path])


def test_raw_keys_work() -> None:
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    jflax.torch_init(model, jax.random.PRNGKey(0))
    assert bool((abs(model.kernel[...]) <= 0.5).all())


class TwoLayers(nnx.Module):
    def __init__(self, extra: bool) -> None:
        rngs = nnx.Rngs(0)
        self.first = nnx.Linear(16, 8, rngs=rngs)
        if extra:
            self.middle = nnx.Linear(8, 8, rngs=rngs)
        self.last = nnx.Linear(8, 4, rngs=rngs)


def test_adding_a_layer_does_not_change_the_others_nnx() -> None:
    small = nnx.eval_shape(lambda: TwoLayers(extra=False))
    large = nnx.eval_shape(lambda: TwoLayers(extra=True))
    jflax.torch_init(small, KEY)
    jflax.torch_init(large, KEY)
    for name in ("first", "last"):
        for param in ("kernel", "bias"):
            np.testing.assert_array_equal(
                getattr(getattr(small, name), param)[...],
                getattr(getattr(large, name), param)[...],
            )


class LinenLayers(nn.Module):
    extra: bool

    @nn.compact
    def __call__(self, x: Any) -> Any:
        x = nn.Dense(8, name="first")(x)
        if self.extra:
            x = nn.Dense(8, name="middle")(x)
        return nn.Dense(4, name="last")(x)


def test_adding_a_layer_does_not_change_the_others_linen() -> None:
    x = jnp.ones((1, 16))
    results = []
    for extra in (False, True):
        module = LinenLayers(extra)
        variables = jax.eval_shape(module.init, jax.random.key(0), x)
        results.append(jflax.torch_init(module, KEY, variables=variables, args=(x,)))
    small, large = (flat(r["params"]) for r in results)
    for path, values in small.items():
        np.testing.assert_array_equal(values, large[path])


def test_each_parameter_uses_the_key_of_its_path() -> None:
    model = TwoLayers(extra=False)
    jflax.torch_init(model, KEY)
    expected = jaxinit.kaiming_uniform(a=math.sqrt(5))(
        jflax.param_key(KEY, ("last", "kernel")), (8, 4)
    )
    np.testing.assert_array_equal(model.last.kernel[...], expected)


def test_reinit_leaves_unmatched_parameters_untouched_nnx() -> None:
    model = TwoLayers(extra=True)
    before = nnx_params(model)
    jflax.reinit(model, KEY, {r"middle/.*": jaxinit.zeros()})
    after = nnx_params(model)
    for path, values in before.items():
        if path[0] == "middle":
            np.testing.assert_array_equal(after[path], 0.0)
        else:
            np.testing.assert_array_equal(after[path], values)


class NormNet(nn.Module):
    @nn.compact
    def __call__(self, x: Any, train: bool) -> Any:
        x = nn.Dense(8, name="dense")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        return nn.Dense(2, name="head")(x)


def test_reinit_leaves_unmatched_parameters_untouched_linen() -> None:
    module = NormNet()
    x = jnp.ones((4, 3))
    variables = module.init(jax.random.key(0), x, train=False)
    variables = dict(variables)
    variables["batch_stats"] = jax.tree.map(lambda v: v + 3.0, variables["batch_stats"])
    new = jflax.reinit(
        module,
        KEY,
        {nn.Dense: {"bias": jaxinit.constant(0.5)}},
        variables=variables,
        args=(x,),
        kwargs={"train": True},
    )
    old, fresh = flat(variables["params"]), flat(new["params"])
    for path, values in old.items():
        if path[-1] == "bias" and path[0] != "bn":
            np.testing.assert_array_equal(fresh[path], 0.5)
        else:
            np.testing.assert_array_equal(fresh[path], values)
    for path, values in flat(variables["batch_stats"]).items():
        np.testing.assert_array_equal(flat(new["batch_stats"])[path], values)


def test_rule_priority() -> None:
    model = nnx.Sequential(
        nnx.LSTMCell(4, 8, rngs=nnx.Rngs(0)), nnx.Linear(8, 2, rngs=nnx.Rngs(0))
    )
    rules = {
        nnx.Linear: {"kernel": jaxinit.constant(1.0), "bias": jaxinit.constant(1.0)},
        nnx.LSTMCell: {"hi/kernel": jaxinit.constant(2.0)},  # outer module: wins
        r"layers/1/bias": jaxinit.constant(3.0),  # path rule: wins over modules
    }
    jflax.reinit(model, KEY, rules)
    cell, head = model.layers[0], model.layers[1]
    np.testing.assert_array_equal(cell.hi.kernel[...], 2.0)
    np.testing.assert_array_equal(cell.hf.kernel[...], 1.0)  # inner Linear rule
    np.testing.assert_array_equal(head.kernel[...], 1.0)
    np.testing.assert_array_equal(head.bias[...], 3.0)
    later = {
        nnx.Linear: {"bias": jaxinit.constant(1.0)},
        (nnx.Linear, nnx.Conv): {"bias": jaxinit.constant(4.0)},  # later rule wins
    }
    jflax.reinit(head, KEY, later)
    np.testing.assert_array_equal(head.bias[...], 4.0)


def test_torch_init_extra_rules_beat_defaults() -> None:
    model = nnx.Linear(16, 8, rngs=nnx.Rngs(0))
    jflax.torch_init(model, KEY, {nnx.Linear: {"bias": jaxinit.zeros()}})
    np.testing.assert_array_equal(model.bias[...], 0.0)
    assert bool((abs(model.kernel[...]) <= 0.25).all())
    assert bool((model.kernel[...] != 0).all())


def test_function_rules_see_module_and_shapes() -> None:
    seen = []

    def rule(module: Any, shapes: Any) -> Any:
        seen.append((type(module).__name__, dict(shapes)))
        return {"kernel": jaxinit.eye()}

    model = nnx.Linear(3, 5, rngs=nnx.Rngs(0))
    jflax.reinit(model, KEY, {nnx.Linear: rule})
    assert seen == [("Linear", {"kernel": (3, 5), "bias": (5,)})]
    np.testing.assert_array_equal(model.kernel[...], np.eye(3, 5))


def test_dtype_is_kept() -> None:
    model = nnx.Linear(16, 8, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    jflax.torch_init(model, KEY)
    assert model.kernel[...].dtype == jnp.bfloat16
    assert bool((abs(model.kernel[...].astype(jnp.float32)) <= 0.25).all())


def test_torch_init_under_jit_nnx() -> None:
    eager, jitted = TwoLayers(extra=True), TwoLayers(extra=True)
    jflax.torch_init(eager, KEY)
    nnx.jit(lambda model, key: jflax.torch_init(model, key))(jitted, KEY)
    expected, got = nnx_params(eager), nnx_params(jitted)
    for path, values in expected.items():  # the promise is bit equality
        np.testing.assert_array_equal(got[path], values, err_msg="/".join(path))


def test_torch_init_under_jit_linen() -> None:
    module = LinenLayers(True)
    x = jnp.ones((1, 16))
    variables = module.init(jax.random.key(0), x)

    def run(variables: Any, key: jax.Array) -> Any:
        return jflax.torch_init(module, key, variables=variables, args=(x,))

    eager, jitted = run(variables, KEY), jax.jit(run)(variables, KEY)
    for path, values in flat(eager["params"]).items():  # bit equality
        np.testing.assert_array_equal(
            flat(jitted["params"])[path], values, err_msg="/".join(path)
        )


def test_separate_kv_attention_uses_xavier_per_projection() -> None:
    model = nnx.eval_shape(
        lambda: nnx.MultiHeadAttention(
            4, 32, in_kv_features=16, decode=False, rngs=nnx.Rngs(0)
        )
    )
    jflax.torch_init(model, KEY)
    for name, fan_in in (("query", 32), ("key", 16), ("value", 16)):
        bound = math.sqrt(6 / (fan_in + 32))
        assert_law(np.asarray(getattr(model, name).kernel[...]), uniform(bound), name)


def test_prelu_and_norms() -> None:
    model = nnx.Sequential(
        nnx.PReLU(),
        nnx.BatchNorm(4, rngs=nnx.Rngs(0)),
        nnx.GroupNorm(4, num_groups=2, rngs=nnx.Rngs(0)),
        nnx.RMSNorm(4, rngs=nnx.Rngs(0)),
    )
    jflax.reinit(model, KEY, {r".*": jaxinit.constant(9.0)})
    jflax.torch_init(model, KEY)
    for path, values in nnx_params(model).items():
        expected = {"negative_slope": 0.25, "scale": 1.0, "bias": 0.0}[path[-1]]
        np.testing.assert_array_equal(values, expected)


def test_errors() -> None:
    module = nn.Dense(3)
    with pytest.raises(TypeError, match="variables"):
        jflax.torch_init(module, KEY)
    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="nnx model"):
        jflax.torch_init(model, KEY, variables={})
    with pytest.raises(TypeError, match="rule key"):
        jflax.reinit(model, KEY, {3: {}})
    with pytest.raises(TypeError, match="initializer"):
        jflax.reinit(model, KEY, {"kernel": 0.5})
    with pytest.raises(TypeError, match="mapping"):
        jflax.reinit(model, KEY, [(nnx.Linear, {})])  # type: ignore[arg-type]


def test_import_jaxinit_does_not_import_flax() -> None:
    code = (
        "import sys, jaxinit, jaxinit.torch_defaults, jaxinit.flax; "
        "assert 'flax' not in sys.modules, 'flax imported'; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
