"""jaxinit.equinox: torch_init draws torch's laws (formulas and two-sample KS against
torch's own draws), reinit's rules and priorities, abstract/jitted/sharded/stacked
models, and torch weights in and out (forward passes equal torch's)."""

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

eqx = pytest.importorskip("equinox")
torch = pytest.importorskip("torch")

from _eqx_models import LAWS, Model, torch_state, torch_twin  # noqa: E402
from _porting_models import Law, assert_law  # noqa: E402
from _stats import ALPHA, assert_moments, assert_same_law  # noqa: E402

import jaxinit  # noqa: E402
import jaxinit.equinox as jeqx  # noqa: E402
from jaxinit._eqx_reinit import walk  # noqa: E402

SEEDS = 8  # models pooled per law: every weight law sees >= 6912 values
KEY = jax.random.key(3)
# P(max |x| < b (1 - c/n)) = (1 - c/n)^n <= exp(-c) for n uniform draws on [-b, b]:
# c = -log(ALPHA) makes "the largest draw reaches the bound" a named test.
EDGE = -math.log(ALPHA)


def params(model: Any) -> dict[str, np.ndarray]:
    return {
        "/".join(map(str, path)): np.asarray(value)
        for path, value in walk(model)[1].items()
    }


def abstract_model() -> Any:
    return eqx.filter_eval_shape(Model, jax.random.key(0))


def concrete_model(seed: int = 0) -> Any:
    """The model with N(0, 1) parameters, built without Equinox's own (slow,
    op-by-op) initialization."""
    rng = np.random.default_rng(seed)

    def fill(leaf: Any) -> Any:
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jnp.asarray(rng.standard_normal(leaf.shape).astype(leaf.dtype))
        return leaf

    return jax.tree.map(fill, abstract_model())


@pytest.fixture(scope="module")
def drawn() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """jaxinit's and torch's draws of every parameter, pooled over seeds."""
    model = abstract_model()
    ours: dict[str, list[np.ndarray]] = {}
    theirs: dict[str, list[np.ndarray]] = {}
    for seed in range(SEEDS):
        for path, value in params(jeqx.torch_init(model, jax.random.key(seed))).items():
            ours.setdefault(path, []).append(value)
        torch.manual_seed(seed)
        loaded = jeqx.from_torch(model, torch_state(torch_twin()))
        for path, value in params(loaded).items():
            theirs.setdefault(path, []).append(value)
    return (
        {path: np.stack(values) for path, values in ours.items()},
        {path: np.stack(values) for path, values in theirs.items()},
    )


def check(values: np.ndarray, law: Law, where: str) -> None:
    """Torch's exact law: support, one-sample KS, moments, the bound reached."""
    assert_law(values, law, where)
    if law.kind == "constant":
        return
    assert_moments(values, law.dist())
    if law.kind == "uniform":
        largest = np.abs(values).max()
        assert largest >= law.scale * (1 - EDGE / values.size), where


def test_torch_init_draws_every_parameter_from_torchs_law(drawn: Any) -> None:
    ours, theirs = drawn
    assert ours.keys() == theirs.keys() == LAWS.keys()
    for path, law in LAWS.items():
        mine, reference = ours[path], theirs[path]
        assert mine.shape == reference.shape, path
        pieces: list[tuple[Law, slice]]
        if isinstance(law, tuple):  # GRU bias: [summed r, z | single n]
            split = 2 * mine.shape[-1] // 3
            pieces = [(law[0], slice(0, split)), (law[1], slice(split, None))]
        else:
            pieces = [(law, slice(None))]
        for piece_law, part in pieces:
            check(reference[..., part], piece_law, f"torch {path}")  # torch's formula
            check(mine[..., part], piece_law, path)
            if piece_law.kind != "constant":
                assert_same_law(mine[..., part], reference[..., part])


def test_packed_attention_matches_torch_drawn_as_one_matrix(drawn: Any) -> None:
    # q, k and v are one xavier draw in torch: all three share one bound.
    ours, _ = drawn
    joint = np.concatenate(
        [ours[f"attn/{p}_proj/weight"] for p in ("query", "key", "value")], axis=1
    )
    check(joint, uniform_law(math.sqrt(6 / (4 * 64))), "attn in_proj")


def uniform_law(bound: float) -> Law:
    return Law("uniform", bound)


def test_torch_init_is_the_same_abstract_and_eager() -> None:
    model = concrete_model()
    eager = params(jeqx.torch_init(model, KEY))
    abstract = params(jeqx.torch_init(abstract_model(), KEY))
    assert eager.keys() == abstract.keys()
    for path, value in eager.items():
        np.testing.assert_array_equal(abstract[path], value, err_msg=path)


def test_torch_init_is_the_same_jitted_and_eager() -> None:
    # Under a jit every leaf is drawn inside the caller's program (init_tree's
    # batched programs need a concrete key), so the model is small here.
    keys = jax.random.split(jax.random.key(0), 3)
    model = [
        eqx.nn.MultiheadAttention(2, 8, use_query_bias=True, key=keys[0]),
        eqx.nn.GRUCell(4, 8, key=keys[1]),
        eqx.nn.ConvTranspose1d(2, 4, 3, key=keys[2]),
    ]
    eager = params(jeqx.torch_init(model, KEY))
    jitted = params(eqx.filter_jit(jeqx.torch_init)(model, KEY))
    assert eager.keys() == jitted.keys()
    for path, value in eager.items():
        np.testing.assert_array_equal(jitted[path], value, err_msg=path)


def test_keys_depend_on_the_path_only() -> None:
    model = concrete_model()
    new = jeqx.torch_init(model, KEY)
    own = jaxinit.kaiming_uniform(a=math.sqrt(5), layout="torch")(
        jeqx.param_key(KEY, ("lin", "weight")), (128, 64)
    )
    np.testing.assert_array_equal(new.lin.weight, own)
    alone = jeqx.torch_init(eqx.nn.Linear(64, 128, key=jax.random.key(1)), KEY)
    assert not np.array_equal(alone.weight, new.lin.weight)  # path "weight" differs


def test_reinit_by_types_and_paths_leaves_the_rest_untouched() -> None:
    model = concrete_model()
    before = params(model)
    new = jeqx.reinit(
        model,
        KEY,
        {
            eqx.nn.Linear: {"bias": jaxinit.constant(0.5)},
            r"blocks/0/weight": jaxinit.orthogonal(),
            r"conv\d/bias": jaxinit.zeros(),
        },
    )
    after = params(new)
    changed = set()
    for path, value in after.items():
        if not np.array_equal(value, before[path]):
            changed.add(path)
    linear_biases = {
        path
        for path in before
        if path.endswith("bias")
        and (path.startswith(("lin/", "body/", "mlp/", "blocks/")) or "_proj/" in path)
    }
    assert changed == linear_biases | {
        "blocks/0/weight",
        "conv1/bias",
        "conv2/bias",
        "conv3/bias",
    }
    for path in linear_biases:
        np.testing.assert_array_equal(after[path], 0.5, err_msg=path)
    weight = after["blocks/0/weight"]
    np.testing.assert_allclose(weight @ weight.T, np.eye(16), atol=1e-5)
    # The input model is untouched, and untouched leaves are the same arrays.
    assert params(model).keys() == before.keys()
    assert new.gru.weight_ih is model.gru.weight_ih


def test_rule_priority_path_over_module_outer_over_inner_later_over_earlier() -> None:
    model = concrete_model()
    new = jeqx.reinit(
        model,
        KEY,
        {
            r"attn/query_proj/bias": jaxinit.constant(3.0),
            eqx.nn.Linear: {"bias": jaxinit.constant(1.0)},
            eqx.nn.MultiheadAttention: {"key_proj/bias": jaxinit.constant(2.0)},
            (eqx.nn.Linear,): {"bias": jaxinit.constant(4.0)},
        },
    )
    np.testing.assert_array_equal(new.attn.query_proj.bias, 3.0)  # path rule
    np.testing.assert_array_equal(new.attn.key_proj.bias, 2.0)  # outer module
    np.testing.assert_array_equal(new.attn.value_proj.bias, 4.0)  # later rule
    np.testing.assert_array_equal(new.lin.bias, 4.0)


def test_layout_rules_read_torch_layout_without_changing_the_users_initializer() -> (
    None
):
    init = jaxinit.kaiming_uniform(mode="fan_out")
    layer = eqx.nn.Linear(64, 128, key=jax.random.key(0))  # weight (128, 64)
    new = jeqx.reinit(layer, KEY, {eqx.nn.Linear: {"weight": init}})
    assert init == jaxinit.kaiming_uniform(mode="fan_out")  # still Flax layout
    torch_fan_out = jaxinit.kaiming_uniform(mode="fan_out", layout="torch")
    expected = torch_fan_out(jeqx.param_key(KEY, ("weight",)), (128, 64))
    np.testing.assert_array_equal(new.weight, expected)
    # Explicit axes are the user's: in_axis=0 makes fan_out = 64 here.
    explicit = jaxinit.kaiming_uniform(mode="fan_out", in_axis=0, out_axis=1)
    new = jeqx.reinit(layer, KEY, {"weight": explicit})
    np.testing.assert_array_equal(
        new.weight, explicit(jeqx.param_key(KEY, ("weight",)), (128, 64))
    )


def test_stacked_layers_keep_their_batch_axes_out_of_the_fans() -> None:
    keys = jax.random.split(jax.random.key(0), 3)
    stack = eqx.filter_vmap(lambda k: eqx.nn.Linear(64, 32, key=k))(keys)
    assert stack.weight.shape == (3, 32, 64)
    new = jeqx.torch_init(stack, KEY)
    for weight in np.asarray(new.weight):  # each copy: U(+-1/sqrt(64))
        check(weight, Law("uniform", 1 / 8), "stacked weight")
    fan_out = jeqx.reinit(
        stack, KEY, {eqx.nn.Linear: {"weight": jaxinit.kaiming_uniform(mode="fan_out")}}
    )
    expected = jaxinit.kaiming_uniform(
        mode="fan_out", in_axis=2, out_axis=1, batch_axis=0
    )(jeqx.param_key(KEY, ("weight",)), (3, 32, 64))
    np.testing.assert_array_equal(fan_out.weight, expected)


def test_sharded_parameters_keep_their_sharding() -> None:
    mesh = jax.make_mesh((8,), ("x",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    layer = eqx.nn.Linear(64, 128, key=jax.random.key(0))
    layer = eqx.tree_at(
        lambda m: m.weight, layer, jax.device_put(layer.weight, sharding)
    )
    new = jeqx.torch_init(layer, KEY)
    assert new.weight.sharding == sharding
    eager = jeqx.torch_init(eqx.nn.Linear(64, 128, key=jax.random.key(0)), KEY)
    np.testing.assert_array_equal(new.weight, eager.weight)
    # An abstract leaf with a sharding comes back concrete on that sharding.
    abstract = eqx.tree_at(
        lambda m: m.weight,
        layer,
        jax.ShapeDtypeStruct((128, 64), jnp.float32, sharding=sharding),
    )
    new = jeqx.torch_init(abstract, KEY)
    assert new.weight.sharding == sharding
    np.testing.assert_array_equal(new.weight, eager.weight)


def test_extra_rules_override_torch_defaults() -> None:
    layer = eqx.nn.Linear(64, 128, key=jax.random.key(0))
    new = jeqx.torch_init(layer, KEY, {eqx.nn.Linear: {"bias": jaxinit.zeros()}})
    np.testing.assert_array_equal(new.bias, 0.0)
    assert np.abs(new.weight).max() <= 1 / 8


def test_bad_rules_raise_type_error() -> None:
    layer = eqx.nn.Linear(2, 2, key=jax.random.key(0))
    with pytest.raises(TypeError, match="rules must be a mapping"):
        jeqx.reinit(layer, KEY, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an initializer"):
        jeqx.reinit(layer, KEY, {"weight": 1.0})


# torch weights in and out: every layer's forward pass after from_torch.

RNG = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _batched(layer: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(jax.vmap(layer)(jnp.asarray(x)))


def _attention(layer: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    q, k, v = (jnp.asarray(a[0]) for a in inputs)
    return np.asarray(layer(q, k, v))[None]


def _torch_attention(layer: Any, inputs: tuple[Any, ...]) -> Any:
    return layer(*inputs, need_weights=False)[0]


def _cell(layer: Any, inputs: tuple[np.ndarray, ...]) -> Any:
    x, *state = (jnp.asarray(a) for a in inputs)
    hidden = state[0] if len(state) == 1 else tuple(state)
    out = jax.vmap(layer)(x, hidden)
    return np.concatenate([np.asarray(o) for o in jax.tree.leaves(out)], -1)


def _torch_cell(layer: Any, inputs: tuple[Any, ...]) -> Any:
    x, *state = inputs
    out = layer(x, state[0] if len(state) == 1 else tuple(state))
    return torch.cat(list(out) if isinstance(out, tuple) else [out], -1)


def _batch_norm(layer: Any, x: np.ndarray) -> np.ndarray:
    state = eqx.nn.State(layer)
    out, _ = jax.vmap(layer, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(
        jnp.asarray(x), state
    )
    return np.asarray(out)


K = jax.random.key(0)
nn = eqx.nn
tnn = torch.nn
biases = dict.fromkeys(
    ("use_query_bias", "use_key_bias", "use_value_bias", "use_output_bias"), True
)
# name: (equinox layer, torch layer, inputs, equinox forward, torch forward)
FORWARD: dict[str, tuple[Any, Callable[[], Any], Any, Any, Any]] = {
    "linear": (nn.Linear(6, 5, key=K), lambda: tnn.Linear(6, 5), _x(3, 6), None, None),
    "conv1d": (
        nn.Conv1d(4, 6, 3, stride=2, padding=1, key=K),
        lambda: tnn.Conv1d(4, 6, 3, stride=2, padding=1),
        _x(2, 4, 9),
        None,
        None,
    ),
    "conv2d_grouped": (
        nn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=2, key=K),
        lambda: tnn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=2),
        _x(2, 4, 7, 8),
        None,
        None,
    ),
    "conv3d": (
        nn.Conv3d(2, 3, 2, key=K),
        lambda: tnn.Conv3d(2, 3, 2),
        _x(2, 2, 4, 4, 4),
        None,
        None,
    ),
    "conv_transpose1d": (
        nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, key=K),
        lambda: tnn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1),
        _x(2, 4, 7),
        None,
        None,
    ),
    "conv_transpose2d": (
        nn.ConvTranspose2d(
            4,
            6,
            (3, 2),
            stride=(2, 3),
            padding=(1, 0),
            output_padding=(1, 2),
            dilation=(2, 1),
            groups=2,
            key=K,
        ),
        lambda: tnn.ConvTranspose2d(
            4,
            6,
            (3, 2),
            stride=(2, 3),
            padding=(1, 0),
            output_padding=(1, 2),
            dilation=(2, 1),
            groups=2,
        ),
        _x(2, 4, 5, 6),
        None,
        None,
    ),
    "conv_transpose3d": (
        nn.ConvTranspose3d(2, 4, 3, stride=2, dilation=2, key=K),
        lambda: tnn.ConvTranspose3d(2, 4, 3, stride=2, dilation=2),
        _x(1, 2, 3, 4, 3),
        None,
        None,
    ),
    "attention": (
        nn.MultiheadAttention(4, 16, **biases, key=K),
        lambda: tnn.MultiheadAttention(16, 4, batch_first=True),
        (_x(1, 5, 16), _x(1, 7, 16), _x(1, 7, 16)),
        _attention,
        _torch_attention,
    ),
    "attention_kdim_vdim": (
        nn.MultiheadAttention(4, 16, key_size=6, value_size=10, **biases, key=K),
        lambda: tnn.MultiheadAttention(16, 4, kdim=6, vdim=10, batch_first=True),
        (_x(1, 5, 16), _x(1, 7, 6), _x(1, 7, 10)),
        _attention,
        _torch_attention,
    ),
    "attention_no_bias": (
        nn.MultiheadAttention(2, 8, key=K),
        lambda: tnn.MultiheadAttention(8, 2, bias=False, batch_first=True),
        (_x(1, 3, 8), _x(1, 3, 8), _x(1, 3, 8)),
        _attention,
        _torch_attention,
    ),
    "embedding": (
        nn.Embedding(10, 4, key=K),
        lambda: tnn.Embedding(10, 4),
        np.array([1, 7, 3]),
        None,
        None,
    ),
    "gru": (
        nn.GRUCell(5, 6, key=K),
        lambda: tnn.GRUCell(5, 6),
        (_x(3, 5), _x(3, 6)),
        _cell,
        _torch_cell,
    ),
    "lstm": (
        nn.LSTMCell(5, 6, key=K),
        lambda: tnn.LSTMCell(5, 6),
        (_x(3, 5), _x(3, 6), _x(3, 6)),
        _cell,
        _torch_cell,
    ),
    "layer_norm": (nn.LayerNorm(6), lambda: tnn.LayerNorm(6), _x(3, 6), None, None),
    "group_norm": (
        nn.GroupNorm(2, 4),
        lambda: tnn.GroupNorm(2, 4),
        _x(3, 4, 5),
        None,
        None,
    ),
    "rms_norm": (
        nn.RMSNorm(6, use_bias=False),
        lambda: tnn.RMSNorm(6, eps=1e-5),
        _x(3, 6),
        None,
        None,
    ),
    "batch_norm": (
        nn.BatchNorm(4, axis_name="batch", mode="batch"),
        lambda: tnn.BatchNorm1d(4),
        _x(8, 4, 5),
        _batch_norm,
        None,
    ),
    "prelu": (nn.PReLU(), lambda: tnn.PReLU(), _x(3, 6), None, None),
}


def _randomize(module: Any) -> None:
    # Norms and PReLU start at constants: random weights test the mapping.
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn_like(param))


@pytest.mark.parametrize("name", list(FORWARD))
def test_from_torch_forward_equals_torch(name: str) -> None:
    layer, build, inputs, forward, torch_forward = FORWARD[name]
    torch.manual_seed(0)
    twin = build()
    _randomize(twin)
    loaded = jeqx.from_torch(layer, torch_state(twin))
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    with torch.no_grad():
        torch_args = tuple(torch.from_numpy(a) for a in args)
        expected = (torch_forward or (lambda m, a: m(*a)))(twin, torch_args).numpy()
    if forward is None:
        got = _batched(loaded, args[0])
    else:
        got = forward(loaded, inputs)
    # float32 sums: rounding errors scale with the largest output.
    atol = 1e-5 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=atol, err_msg=name)
    # And back: to_torch loads strictly and gives the same tensors.
    twin.load_state_dict(
        {k: torch.from_numpy(v) for k, v in jeqx.to_torch(loaded).items()},
        strict=True,
    )
    with torch.no_grad():
        again = (torch_forward or (lambda m, a: m(*a)))(twin, torch_args).numpy()
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=atol, err_msg=name)


def test_to_torch_loads_strictly_and_round_trips() -> None:
    model = jeqx.torch_init(concrete_model(), KEY)
    state = jeqx.to_torch(model)
    twin = torch_twin()
    twin.load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=True
    )
    back = params(jeqx.from_torch(model, torch_state(twin)))
    for path, value in params(model).items():
        np.testing.assert_array_equal(back[path], value, err_msg=path)


def test_from_torch_errors_name_the_key_and_load_nothing() -> None:
    model = concrete_model()
    state = torch_state(torch_twin())
    missing = dict(state)
    del missing["attn.in_proj_bias"]
    with pytest.raises(KeyError, match=r"missing tensor 'attn.in_proj_bias'"):
        jeqx.from_torch(model, missing)
    extra = dict(state, **{"lin.extra": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match=r"unexpected tensors \['lin.extra'\]"):
        jeqx.from_torch(model, extra)
    wrong = dict(state, **{"convt.weight": np.zeros((32, 8, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"'convt.weight' has shape \(32, 8, 3, 3\)"):
        jeqx.from_torch(model, wrong)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        jeqx.from_torch(model, [])  # type: ignore[arg-type]
    mixed = nn.MultiheadAttention(2, 8, use_query_bias=True, key=K)
    with pytest.raises(ValueError, match="all four biases"):
        jeqx.to_torch(mixed)
    assert params(model).keys() == params(concrete_model()).keys()


def test_importing_never_imports_equinox_and_says_how_to_install() -> None:
    code = (
        "import sys; import jaxinit, jaxinit.equinox\n"
        "assert 'equinox' not in sys.modules, 'imported equinox'\n"
        "sys.modules['equinox'] = None\n"
        "try:\n"
        "    jaxinit.equinox.torch_rules()\n"
        "except ImportError as error:\n"
        "    assert \"pip install 'jaxinit[equinox]'\" in str(error), error\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_rules_choose_torchs_initializers() -> None:
    rules = jeqx.torch_rules()
    linear = eqx.nn.Linear(64, 128, key=K)
    assert rules[eqx.nn.Linear](linear, {}) == {
        "weight": jaxinit.kaiming_uniform(a=math.sqrt(5)),
        "bias": jaxinit.uniform(-1 / 8, 1 / 8),
    }
    transpose = eqx.nn.ConvTranspose2d(4, 8, 3, key=K)
    bound = 1 / math.sqrt(8 * 9)  # torch's fan: out_channels * kernel
    assert rules[eqx.nn.ConvTranspose](transpose, {}) == {
        "weight": jaxinit.uniform(-bound, bound),
        "bias": jaxinit.uniform(-bound, bound),
    }
    attention = eqx.nn.MultiheadAttention(4, 64, key=K)
    chosen = rules[eqx.nn.MultiheadAttention](attention, {})
    packed = math.sqrt(3) * math.sqrt(2 / (64 + 3 * 64))  # torch's xavier, (3E, E)
    assert chosen["key_proj/weight"] == jaxinit.uniform(-packed, packed)
    assert chosen["value_proj/bias"] == jaxinit.zeros()
    assert chosen["output_proj/weight"] == jaxinit.kaiming_uniform(a=math.sqrt(5))
