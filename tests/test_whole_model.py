"""The whole-model contract of reinit / torch_init (issue 17, items 3-7 and 11).

After a call every leaf of a model (parameters and state, in nnx, linen and
Equinox) is drawn by a rule, derived by a wrapper (weight and spectral norm),
started as torch or the framework starts it, or carried over from a concrete
input; otherwise the call raises one ValueError listing the rest. Shared
parameters are found and matched under every path, drawn once, and stay
shared; stacked layers draw each copy with the law of one copy, whatever the
initializer.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
eqx = pytest.importorskip("equinox")
import scipy.stats  # noqa: E402
from _stats import ALPHA, assert_ks, assert_moments  # noqa: E402
from flax import linen as nn, nnx  # noqa: E402

import jaxinit  # noqa: E402
import jaxinit.equinox as jeqx  # noqa: E402
import jaxinit.flax as jflax  # noqa: E402
from jaxinit import _base, _reinit, torch_defaults as td  # noqa: E402

KEY = jax.random.key(17)
SQRT5 = math.sqrt(5.0)
# P(max |x| < b (1 - c/n)) <= exp(-c) for n uniform draws on [-b, b].
EDGE = -math.log(ALPHA)


def chosen(monkeypatch: Any) -> dict[str, Any]:
    """Records the initializer the core draws each leaf with, by path string."""
    seen: dict[str, Any] = {}
    original = _reinit.draw

    def record(key: Any, planned: Any, *rest: Any) -> Any:
        seen.update({_reinit.path_string(path): init for path, init in planned.items()})
        return original(key, planned, *rest)

    monkeypatch.setattr(_reinit, "draw", record)
    return seen


def uniform(bound: float) -> Any:
    return scipy.stats.uniform(-bound, 2 * bound)


def assert_uniform(values: Any, bound: float) -> None:
    values = np.asarray(values, np.float64).ravel()
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() >= bound * (1 - EDGE / values.size)
    assert_moments(values, uniform(bound))
    assert_ks(values, uniform(bound))


def abstract_leaves(tree: Any) -> list[Any]:
    return [
        leaf for leaf in jax.tree.leaves(tree) if isinstance(leaf, jax.ShapeDtypeStruct)
    ]


# ---------------------------------------------------------------------------
# Item 3: parameters shared in nnx.


class Head(nnx.Module):
    """GPT-2's output head: the embedding matrix, tied."""

    def __init__(self, weight: nnx.Param) -> None:
        self.weight = weight

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.weight[...].T


class GPT(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.wte = nnx.Embed(4096, 64, rngs=rngs)
        self.lm_head = Head(self.wte.embedding)


def test_a_tied_embedding_gets_the_embed_rule_under_any_path() -> None:
    model = GPT(nnx.Rngs(0))
    before = float(np.std(model.wte.embedding[...]))
    assert abs(before - 0.125) < 0.002  # nnx's N(0, 1/64): what main left
    jflax.torch_init(model, KEY)
    table = model.wte.embedding[...]
    assert model.lm_head.weight is model.wte.embedding  # still one Param
    assert_moments(table, scipy.stats.norm())  # torch's Embedding: N(0, 1)
    # Drawn once, with the key of the path it was made under (definition order).
    expected = jaxinit.normal()(jflax.param_key(KEY, ("wte", "embedding")), (4096, 64))
    np.testing.assert_array_equal(table, expected)
    # nnx lists the shared Param under lm_head only; the model still runs.
    assert [p for p, _ in nnx.to_flat_state(nnx.state(model))] == [
        ("lm_head", "weight")
    ]
    assert model.lm_head(jnp.ones((1, 64))).shape == (1, 4096)


class EncDec(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.enc = nnx.Linear(8, 8, rngs=rngs)
        self.dec = nnx.Linear(8, 8, rngs=rngs)
        self.dec.kernel = self.enc.kernel


@pytest.mark.parametrize("path", ["enc/kernel", "dec/kernel"])
def test_a_path_rule_reaches_a_tied_kernel_by_either_path(path: str) -> None:
    model = EncDec(nnx.Rngs(0))
    bias = model.enc.bias[...]
    jflax.reinit(model, KEY, {path: jaxinit.constant(2.0)})
    assert model.dec.kernel is model.enc.kernel
    np.testing.assert_array_equal(model.enc.kernel[...], 2.0)
    np.testing.assert_array_equal(model.enc.bias[...], bias)  # untouched


def test_one_rule_naming_a_tied_leaf_twice_uses_its_later_name() -> None:
    model = EncDec(nnx.Rngs(0))
    rule = {"enc/kernel": jaxinit.constant(1.0), "dec/kernel": jaxinit.constant(2.0)}
    jflax.reinit(model, KEY, {EncDec: rule})
    np.testing.assert_array_equal(model.enc.kernel[...], 2.0)


class Tied(nnx.Module):
    """Two modules own one kernel: ``first`` defines it, ``second`` takes it."""

    def __init__(self, rngs: nnx.Rngs, head_first: bool) -> None:
        if head_first:
            self.head = nnx.Linear(8, 8, rngs=rngs)
            self.proj = Head(self.head.kernel)
        else:
            self.proj = Head(nnx.Param(jnp.zeros((8, 8))))
            self.head = nnx.Linear(8, 8, rngs=rngs)
            self.head.kernel = self.proj.weight


@pytest.mark.parametrize("head_first", [True, False])
def test_a_shared_leaf_takes_the_rule_of_the_module_it_was_made_by(
    head_first: bool, monkeypatch: Any
) -> None:
    # torch's b.weight = a.weight keeps a's tensor, with a's initialization:
    # the rules of the module at the leaf's first path (in definition order)
    # come before the other owner's, whichever torch's apply visits last.
    model = Tied(nnx.Rngs(0), head_first)
    linear, head = jaxinit.constant(1.0), jaxinit.constant(2.0)
    seen = chosen(monkeypatch)
    jflax.reinit(model, KEY, {Head: {"weight": head}, nnx.Linear: {"kernel": linear}})
    home = "head/kernel" if head_first else "proj/weight"
    assert seen[home] == (linear if head_first else head)
    assert len([path for path in seen if path.endswith(("kernel", "weight"))]) == 1
    # The other owner's rule applies when the home's modules name nothing.
    seen.clear()
    other = {Head: {"weight": head}} if head_first else {nnx.Linear: {"kernel": linear}}
    jflax.reinit(model, KEY, other)
    assert seen[home] == (head if head_first else linear)


class TiedLM(eqx.Module):
    """Equinox's own tying example: the output Linear takes the embedding."""

    shared: eqx.nn.Shared

    def __init__(self, key: jax.Array) -> None:
        k1, k2 = jax.random.split(key)
        embedding = eqx.nn.Embedding(4096, 64, key=k1)
        linear = eqx.nn.Linear(64, 4096, use_bias=False, key=k2)
        self.shared = eqx.nn.Shared(
            (embedding, linear),
            lambda pair: pair[1].weight,
            lambda pair: pair[0].weight,
        )


def test_an_equinox_shared_weight_is_drawn_once_as_its_source_and_stays_shared() -> (
    None
):
    model = TiedLM(jax.random.key(0))
    new = jeqx.torch_init(model, KEY)
    assert isinstance(new.shared, eqx.nn.Shared)
    embedding, linear = new.shared()
    assert embedding.weight is linear.weight
    # torch's lm_head.weight = wte.weight keeps the Embedding's N(0, 1).
    source = ("shared", "pytree", 0, "weight")
    expected = jaxinit.normal()(jeqx.param_key(KEY, source), (4096, 64))
    np.testing.assert_array_equal(embedding.weight, expected)
    # A rule reaches it under the tied slot's path too.
    new = jeqx.reinit(model, KEY, {r"shared/pytree/1/weight": jaxinit.zeros()})
    np.testing.assert_array_equal(new.shared()[0].weight, 0.0)
    new = jeqx.reinit(model, KEY, {eqx.nn.Linear: {"weight": jaxinit.ones()}})
    np.testing.assert_array_equal(new.shared()[0].weight, 1.0)


# ---------------------------------------------------------------------------
# Item 4: linen nn.share_scope.


class Wrapper(nn.Module):
    rule_target: bool = False

    def setup(self) -> None:
        self.dense = nn.Dense(64)
        nn.share_scope(self, self.dense)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.dense(x)


def test_a_dense_in_a_shared_scope_gets_torchs_dense_rule(monkeypatch: Any) -> None:
    module, x = Wrapper(), jnp.ones((1, 256))
    variables = module.init(jax.random.key(0), x)
    seen = chosen(monkeypatch)
    new = jflax.torch_init(module, KEY, variables=variables, args=(x,))
    params = new["params"]
    assert_uniform(params["bias"], 1 / 16)  # main: zeros
    assert_uniform(params["kernel"], 1 / 16)  # main: Flax's lecun normal
    assert seen == {
        "kernel": jaxinit.kaiming_uniform(a=SQRT5),
        "bias": td.linear(256)["bias_init"],
    }
    # The wrapper is the outer module at the same path: its rule wins.
    new = jflax.torch_init(
        module,
        KEY,
        {Wrapper: {"bias": jaxinit.zeros()}},
        variables=variables,
        args=(x,),
    )
    np.testing.assert_array_equal(new["params"]["bias"], 0.0)


# ---------------------------------------------------------------------------
# Item 5: reparametrizing wrappers.


def weight_norm_g(weight: np.ndarray, axis: int | None) -> np.ndarray:
    """torch's norm_except_dim: the norm over every axis but ``axis``."""
    weight = np.asarray(weight, np.float64)
    others = tuple(a for a in range(weight.ndim) if a != axis)
    return np.sqrt((weight**2).sum(axis=others, keepdims=True))


def effective(layer: Any) -> np.ndarray:
    v = np.asarray(layer.layer.weight, np.float64)
    return v * np.asarray(layer.g) / weight_norm_g(v, layer.axis)


@pytest.mark.parametrize("abstract", [False, True])
def test_equinox_weight_norm_derives_g_from_the_drawn_weight(abstract: bool) -> None:
    def make() -> Any:
        return eqx.nn.WeightNorm(
            eqx.nn.ConvTranspose2d(4, 64, 3, key=jax.random.key(0))
        )

    model = eqx.filter_eval_shape(make) if abstract else make()
    new = jeqx.torch_init(model, KEY)
    assert not abstract_leaves(new)
    np.testing.assert_allclose(new.g, weight_norm_g(new.layer.weight, 0), rtol=1e-6)
    # The effective weight is torch's: U(+-1/sqrt(out * k)) (main: max 0.195).
    assert_uniform(effective(new), 1 / math.sqrt(64 * 9))


def test_a_rule_on_g_beats_the_wrapper_and_an_untouched_weight_keeps_g() -> None:
    layer = eqx.nn.WeightNorm(eqx.nn.Linear(8, 4, key=jax.random.key(0)), axis=None)
    trained = eqx.tree_at(lambda m: m.g, layer, layer.g * 3)
    kept = jeqx.reinit(trained, KEY, {eqx.nn.Linear: {"bias": jaxinit.zeros()}})
    assert kept.g is trained.g  # the weight is not redrawn: g is carried
    named = jeqx.reinit(trained, KEY, {eqx.nn.WeightNorm: {"g": jaxinit.ones()}})
    np.testing.assert_array_equal(named.g, 1.0)
    new = jeqx.reinit(trained, KEY, {eqx.nn.Linear: {"weight": jaxinit.normal()}})
    np.testing.assert_allclose(new.g, weight_norm_g(new.layer.weight, None), rtol=1e-6)


def spectral_reference(
    key: jax.Array, source: tuple[Any, ...], matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """torch's parametrizations.spectral_norm start, in numpy, with the documented
    key: normalized N(0, 1) u and v, 15 power iterations."""
    key_u, key_v = jax.random.split(jflax.param_key(KEY, (*source, "derived")))
    matrix = np.asarray(matrix, np.float64)
    u = np.asarray(jax.random.normal(key_u, matrix.shape[:1]), np.float64)
    v = np.asarray(jax.random.normal(key_v, matrix.shape[1:]), np.float64)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    for _ in range(15):
        u = matrix @ v
        u /= np.linalg.norm(u)
        v = matrix.T @ u
        v /= np.linalg.norm(v)
    return u, v, float(u @ matrix @ v)


@pytest.mark.parametrize("abstract", [False, True])
def test_equinox_spectral_norm_starts_u_v_as_torch_from_the_new_weight(
    abstract: bool,
) -> None:
    def make() -> Any:
        conv = eqx.nn.Conv2d(3, 16, 3, key=jax.random.key(0))
        return eqx.nn.SpectralNorm(conv, "weight", key=jax.random.key(1))

    model = eqx.filter_eval_shape(make) if abstract else make()
    new = jeqx.torch_init(model, KEY)
    u, v = new.uv_index.init
    matrix = np.asarray(new.layer.weight).reshape(16, -1)
    ref_u, ref_v, sigma = spectral_reference(KEY, ("layer", "weight"), matrix)
    np.testing.assert_allclose(u, ref_u, atol=1e-5)
    np.testing.assert_allclose(v, ref_v, atol=1e-5)
    top = np.linalg.svd(matrix, compute_uv=False)[0]
    assert abs(sigma - top) < 0.02 * top  # 15 iterations: near the top one
    model, state = eqx.nn.make_with_state(lambda: new)()
    out, _ = model(jnp.ones((3, 8, 8)), state)
    assert out.shape == (16, 6, 6)


@pytest.mark.parametrize("abstract", [False, True])
def test_nnx_weight_and_spectral_norm_follow_the_drawn_kernel(abstract: bool) -> None:
    def make() -> Any:
        rngs = nnx.Rngs(0)
        return nnx.Sequential(
            nnx.WeightNorm(nnx.Linear(64, 32, rngs=rngs), rngs=rngs),
            nnx.SpectralNorm(nnx.Linear(32, 16, rngs=rngs), rngs=rngs),
        )

    model = nnx.eval_shape(make) if abstract else make()
    jflax.torch_init(model, KEY)
    weight_norm, spectral = model.layers[0], model.layers[1]
    kernel = np.asarray(weight_norm.layer_instance.kernel[...])
    np.testing.assert_allclose(
        weight_norm.scales[("kernel",)], np.linalg.norm(kernel, axis=0), rtol=1e-6
    )
    out = weight_norm(jnp.eye(64)) - weight_norm.layer_instance.bias[...]
    np.testing.assert_allclose(out, kernel, atol=1e-6)  # effective = drawn
    assert_uniform(out, 1 / 8)  # main: scale 1 makes every column unit norm
    matrix = np.asarray(spectral.layer_instance.kernel[...]).T  # torch's (out, in)
    source = ("layers", 1, "layer_instance", "kernel")
    ref_u, _, sigma = spectral_reference(KEY, source, matrix)
    stats = spectral.batch_stats
    np.testing.assert_allclose(stats[("kernel", "u")][...], ref_u[None], atol=1e-5)
    np.testing.assert_allclose(stats[("kernel", "sigma")][...], sigma, rtol=1e-5)
    assert model(jnp.ones((2, 64))).shape == (2, 16)


class LinenWrapped(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.WeightNorm(nn.Dense(32, name="wd"), name="wn")(x)
        return nn.SpectralNorm(nn.Dense(16, name="sd"), name="sn")(
            x, update_stats=False
        )


@pytest.mark.parametrize("abstract", [False, True])
def test_linen_weight_and_spectral_norm_follow_the_drawn_kernel(abstract: bool) -> None:
    module, x = LinenWrapped(), jnp.ones((2, 64))
    init = jax.eval_shape(module.init, jax.random.key(0), x) if abstract else None
    variables = init or module.init(jax.random.key(0), x)
    new = jflax.torch_init(module, KEY, variables=variables, args=(x,))
    assert not abstract_leaves(new)
    params, stats = new["params"], new["batch_stats"]
    kernel = np.asarray(params["wd"]["kernel"])
    np.testing.assert_allclose(
        params["wn"]["wd/kernel/scale"], np.linalg.norm(kernel, axis=0), rtol=1e-6
    )
    matrix = np.asarray(params["sd"]["kernel"]).T
    ref_u, _, sigma = spectral_reference(KEY, ("sd", "kernel"), matrix)
    np.testing.assert_allclose(stats["sn"]["sd/kernel/u"], ref_u[None], atol=1e-5)
    np.testing.assert_allclose(stats["sn"]["sd/kernel/sigma"], sigma, rtol=1e-5)
    assert module.apply(new, x).shape == (2, 16)


def test_wrapped_leaves_are_the_same_under_a_jit() -> None:
    def make() -> Any:
        rngs = nnx.Rngs(0)
        return nnx.Sequential(
            nnx.WeightNorm(nnx.Linear(8, 4, rngs=rngs), rngs=rngs),
            nnx.SpectralNorm(nnx.Linear(4, 4, rngs=rngs), rngs=rngs),
        )

    eager, jitted = make(), make()
    jflax.torch_init(eager, KEY)
    nnx.jit(lambda model, key: jflax.torch_init(model, key))(jitted, KEY)
    # Drawn leaves are equal bit for bit; derived ones to float32 rounding.
    pairs = zip(
        jax.tree.leaves(nnx.state(eager)),
        jax.tree.leaves(nnx.state(jitted)),
        strict=True,
    )
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    layer = eqx.nn.WeightNorm(eqx.nn.Linear(8, 4, key=jax.random.key(0)))
    eager_eqx = jeqx.torch_init(layer, KEY)
    jitted_eqx = eqx.filter_jit(jeqx.torch_init)(layer, KEY)
    np.testing.assert_array_equal(jitted_eqx.layer.weight, eager_eqx.layer.weight)
    np.testing.assert_allclose(jitted_eqx.g, eager_eqx.g, rtol=1e-6)


# ---------------------------------------------------------------------------
# Item 6: abstract models come back concrete, or one error.


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.lin = nnx.Linear(16, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.drop(self.bn(self.lin(x)))


def test_an_abstract_nnx_model_comes_back_concrete_and_runs() -> None:
    model = nnx.eval_shape(lambda: Net(nnx.Rngs(0, dropout=1)))
    jflax.torch_init(model, KEY)
    state = dict(nnx.to_flat_state(nnx.state(model)))
    assert not abstract_leaves([v.get_value() for v in state.values()])
    np.testing.assert_array_equal(model.bn.mean[...], 0.0)  # torch's start
    np.testing.assert_array_equal(model.bn.var[...], 1.0)
    count = state[("drop", "rngs", "count")].get_value()
    assert count.dtype == jnp.uint32 and int(count) == 0
    own = jax.random.key_data(state[("drop", "rngs", "key")].get_value())
    expected = jflax.param_key(KEY, ("drop", "rngs", "key"))
    np.testing.assert_array_equal(own, jax.random.key_data(expected))
    assert model(jnp.ones((4, 16))).shape == (4, 16)  # train: batch stats, dropout
    model.eval()
    assert model(jnp.ones((4, 16))).shape == (4, 16)


def test_torch_init_resets_running_statistics_and_reinit_keeps_them() -> None:
    model = Net(nnx.Rngs(0, dropout=1))
    model.bn.mean.set_value(model.bn.mean[...] + 3.0)
    jflax.reinit(model, KEY, {nnx.Linear: {"bias": jaxinit.zeros()}})
    np.testing.assert_array_equal(model.bn.mean[...], 3.0)  # carried over
    jflax.torch_init(model, KEY)  # torch's reset_parameters resets them
    np.testing.assert_array_equal(model.bn.mean[...], 0.0)
    np.testing.assert_array_equal(model.bn.var[...], 1.0)


class ViT(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.cls_token = nnx.Param(jnp.zeros((1, 1, 16)))
        self.pos_embed = nnx.Param(jnp.zeros((1, 5, 16)))
        self.proj = nnx.Linear(16, 16, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        tokens = jnp.concatenate([self.cls_token[...], self.proj(x)], axis=1)
        return tokens + self.pos_embed[...]


def test_raw_parameters_no_rule_names_raise_one_error_naming_all() -> None:
    model = nnx.eval_shape(lambda: ViT(nnx.Rngs(0)))
    with pytest.raises(ValueError) as error:
        jflax.torch_init(model, KEY)
    message = str(error.value)
    assert message.startswith("torch_init: cannot fill 2 abstract leaves")
    assert "  cls_token: (1, 1, 16) float32, parameter" in message
    assert "  pos_embed: (1, 5, 16) float32, parameter" in message
    assert "Add a rule" in message and "proj" not in message
    rules = {r"cls_token|pos_embed": jaxinit.trunc_normal(std=0.02)}
    jflax.torch_init(model, KEY, rules)
    assert model(jnp.ones((1, 4, 16))).shape == (1, 5, 16)


class LinenViT(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        cls = self.param("cls_token", nn.initializers.zeros, (1, 1, 8))
        x = nn.Dense(8)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, 8)), x], 1)


def test_an_abstract_linen_model_comes_back_concrete_and_applies() -> None:
    module, x = LinenViT(), jnp.ones((2, 3, 8))
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    with pytest.raises(
        ValueError, match=r"cannot fill 1 abstract leaf .*\n  cls_token: "
    ):
        jflax.torch_init(module, KEY, variables=variables, args=(x,))
    new = jflax.torch_init(
        module, KEY, {r"cls_token": jaxinit.zeros()}, variables=variables, args=(x,)
    )
    assert not abstract_leaves(new)
    np.testing.assert_array_equal(new["batch_stats"]["BatchNorm_0"]["var"], 1.0)
    assert module.apply(new, x).shape == (2, 4, 8)
    out, _ = module.apply(new, x, train=True, mutable=["batch_stats"])
    assert out.shape == (2, 4, 8)


def test_an_abstract_linen_decoding_cache_starts_at_zero() -> None:
    module = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8, decode=True)
    x = jnp.ones((1, 4, 8))
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    new = jflax.torch_init(module, KEY, variables=variables, args=(x[:, :1],))
    cache = new["cache"]
    assert int(cache["cache_index"]) == 0 and cache["cache_index"].dtype == jnp.int32
    np.testing.assert_array_equal(cache["cached_key"], 0.0)
    out, _ = module.apply(new, x[:, :1], mutable=["cache"])
    assert out.shape == (1, 1, 8)


def test_a_leaf_derived_from_an_unfilled_one_is_listed_with_it() -> None:
    def make() -> Any:
        return eqx.nn.WeightNorm(eqx.nn.Linear(8, 4, key=jax.random.key(0)))

    abstract = eqx.filter_eval_shape(make)
    with pytest.raises(ValueError) as error:
        jeqx.reinit(abstract, KEY, {eqx.nn.Linear: {"bias": jaxinit.zeros()}})
    lines = str(error.value).splitlines()
    assert lines[1:3] == [
        "  layer/weight: (4, 8) float32, parameter",
        "  g: (4, 1) float32, parameter, derived from layer/weight",
    ]


class EqxViT(eqx.Module):
    cls_token: jax.Array
    proj: eqx.nn.Linear
    norm: eqx.nn.BatchNorm

    def __init__(self, key: jax.Array) -> None:
        self.cls_token = jnp.zeros((1, 8))
        self.proj = eqx.nn.Linear(8, 8, key=key)
        self.norm = eqx.nn.BatchNorm(8, "batch", mode="batch")


def test_an_abstract_equinox_model_comes_back_concrete_and_runs() -> None:
    model = eqx.filter_eval_shape(EqxViT, jax.random.key(0))
    with pytest.raises(
        ValueError, match=r"cannot fill 1 abstract leaf .*\n  cls_token: "
    ):
        jeqx.torch_init(model, KEY)
    new = jeqx.torch_init(model, KEY, {r"cls_token": jaxinit.normal(std=0.02)})
    assert not abstract_leaves(new)
    mean, var = new.norm.batch_state_index.init
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(var, 1.0)
    assert int(new.norm.batch_counter.init) == 0
    model, state = eqx.nn.make_with_state(lambda: new)()

    def forward(x: jax.Array, state: Any) -> Any:
        y, state = model.norm(model.proj(x), state)
        return y + model.cls_token[0], state

    y, _ = jax.vmap(forward, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(
        jnp.ones((3, 8)), state
    )
    assert y.shape == (3, 8)


# ---------------------------------------------------------------------------
# Item 7: stacked layers with initializers that are not jaxinit's.

LECUN = jax.nn.initializers.lecun_normal()
LAYERS = 12


def lecun_law(fan_in: int) -> Any:
    # jax's truncated normal at +-2, scaled to variance 1 / fan_in.
    std = math.sqrt(1 / fan_in) / 0.87962566103423978
    return scipy.stats.truncnorm(-2, 2, scale=std)


def assert_each_copy(stack: Any, path: tuple[Any, ...], init: Any) -> None:
    """Each copy is ``init`` of one copy with the key ``fold_in(leaf key, i)``."""
    stack = np.asarray(stack)
    leaf = jflax.param_key(KEY, path)
    for index, copy in enumerate(stack):
        own = init(jax.random.fold_in(leaf, index), copy.shape, jnp.float32)
        np.testing.assert_array_equal(copy, own, err_msg=f"copy {index}")


class Body(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, _: Any) -> tuple[jax.Array, None]:
        return nn.Dense(256)(x), None


class Scanned(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scan = nn.scan(
            Body,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=LAYERS,
        )
        return scan(name="blocks")(x, None)[0]


def test_a_jax_nn_initializer_on_an_nn_scan_draws_each_layer_as_one() -> None:
    module, x = Scanned(), jnp.ones((1, 256))
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    rules = {nn.Dense: {"kernel": LECUN}}
    new = jflax.torch_init(module, KEY, rules, variables=variables, args=(x,))
    kernel = new["params"]["blocks"]["Dense_0"]["kernel"]
    assert kernel.shape == (LAYERS, 256, 256)
    assert_moments(kernel, lecun_law(256))  # std 0.0625; main: 0.0180
    assert_ks(kernel, lecun_law(256))
    assert_each_copy(kernel, ("blocks", "Dense_0", "kernel"), LECUN)


def test_a_jax_nn_initializer_on_an_nnx_vmap_draws_each_layer_as_one() -> None:
    keys = jax.random.split(jax.random.key(0), 4)
    model = nnx.vmap(lambda k: nnx.Linear(256, 64, rngs=nnx.Rngs(k)))(keys)
    jflax.reinit(model, KEY, {nnx.Linear: {"kernel": LECUN}})
    assert_each_copy(model.kernel[...], ("kernel",), LECUN)
    assert_moments(model.kernel[...], lecun_law(256))
    eye_model = nnx.vmap(lambda k: nnx.Linear(8, 8, rngs=nnx.Rngs(k)))(keys)
    jflax.reinit(eye_model, KEY, {nnx.Linear: {"kernel": jaxinit.eye()}})
    np.testing.assert_array_equal(eye_model.kernel[...], np.stack([np.eye(8)] * 4))


def test_a_jax_nn_initializer_in_equinox_sees_the_flax_layout() -> None:
    conv = eqx.nn.Conv2d(3, 192, 16, stride=16, key=jax.random.key(0))
    new = jeqx.reinit(conv, KEY, {eqx.nn.Conv2d: {"weight": LECUN}})
    weight = np.asarray(new.weight)
    assert weight.shape == (192, 3, 16, 16)
    assert_moments(weight, lecun_law(3 * 16 * 16))  # main: fan_in 9216
    flax = LECUN(jeqx.param_key(KEY, ("weight",)), (16, 16, 3, 192), jnp.float32)
    np.testing.assert_array_equal(weight, np.transpose(flax, (3, 2, 0, 1)))
    # Stacked by filter_vmap: each copy as one, in the Flax layout too.
    keys = jax.random.split(jax.random.key(0), 3)
    stack = eqx.filter_vmap(lambda k: eqx.nn.Linear(64, 32, key=k))(keys)
    new = jeqx.reinit(stack, KEY, {eqx.nn.Linear: {"weight": LECUN}})
    leaf = jeqx.param_key(KEY, ("weight",))
    for index, copy in enumerate(np.asarray(new.weight)):
        own = LECUN(jax.random.fold_in(leaf, index), (64, 32), jnp.float32)
        np.testing.assert_array_equal(copy, np.asarray(own).T)


class RawBody(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, _: Any) -> tuple[jax.Array, None]:
        w = self.param("w", jaxinit.xavier_uniform(), (64, 256))
        return x + w.sum(), None


class RawScanned(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scan = nn.scan(
            RawBody,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=LAYERS,
        )
        return scan(name="blocks")(x, None)[0]


def test_a_raw_param_in_an_nn_scan_keeps_the_layer_axis_out_of_the_fans() -> None:
    module, x = RawScanned(), jnp.ones((1, 4))
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    init = jaxinit.xavier_uniform()
    new = jflax.reinit(module, KEY, {r".*/w": init}, variables=variables, args=(x,))
    w = new["params"]["blocks"]["w"]
    expected = _base.stacked(init, 1)(jflax.param_key(KEY, ("blocks", "w")), w.shape)
    np.testing.assert_array_equal(w, expected)
    assert_uniform(w, math.sqrt(6 / (64 + 256)))  # main: the 12 layers in the fans


# ---------------------------------------------------------------------------
# Item 11: rule matching that no test pinned.


class Root(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.head = nnx.Linear(4, 4, rngs=rngs)


@pytest.mark.parametrize("outer", [False, True])
def test_a_path_rule_beats_a_module_rule_at_any_depth(
    outer: bool, monkeypatch: Any
) -> None:
    path_init, module_init = jaxinit.constant(1.0), jaxinit.constant(2.0)
    # The module rule names the same bias from the Linear itself or from the
    # root, which torch's apply visits last.
    module_rule = (
        {Root: {"head/bias": module_init}}
        if outer
        else {nnx.Linear: {"bias": module_init}}
    )
    seen = chosen(monkeypatch)
    jflax.reinit(Root(nnx.Rngs(0)), KEY, {r"head/bias": path_init, **module_rule})
    assert seen == {"head/bias": path_init}
    seen.clear()
    jflax.reinit(Root(nnx.Rngs(0)), KEY, {**module_rule, r"head/bias": path_init})
    assert seen == {"head/bias": path_init}


class Gates(nnx.Module):
    def __init__(self) -> None:
        self.bias = nnx.Param(jnp.ones(4))
        self.bias_n = nnx.Param(jnp.ones(4))


def test_a_path_pattern_matches_the_whole_name_only() -> None:
    model = Gates()
    jflax.reinit(model, KEY, {r"bias": jaxinit.zeros()})
    np.testing.assert_array_equal(model.bias[...], 0.0)
    np.testing.assert_array_equal(model.bias_n[...], 1.0)
    cell = eqx.nn.GRUCell(4, 8, key=jax.random.key(0))
    new = jeqx.reinit(cell, KEY, {r"bias": jaxinit.zeros()})
    np.testing.assert_array_equal(new.bias, 0.0)
    assert new.bias_n is cell.bias_n
