"""Tests with power: rules pinned by what they choose, samplers measured on sizes
that see small errors, and orthogonal's Haar law on tall, wide and conv shapes.

A rule (which initializer a layer's parameter gets) is checked exactly: the value
``torch_init`` writes must be the bits of the expected initializer, built here from
torch's own fan and bound (``torch.nn.init._calculate_fan_in_and_fan_out`` on the
torch twin of the layer, then torch's ``reset_parameters`` formula), drawn with the
parameter's key. A wrong bound, fan or law changes the bits, so no statistics are
needed and no sample size limits what is caught.

A sampler (how an initializer draws) is checked by moments and KS on large
samples; each test states the smallest error it detects at the suite's
per-assertion false-alarm rate ``ALPHA`` (``_stats``).
"""

import inspect
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from _stats import ALPHA, Z, assert_ks, assert_moments, assert_same_law

torch = pytest.importorskip("torch")
pytest.importorskip("flax")

from flax import linen as nn, nnx, traverse_util  # noqa: E402

import jaxinit  # noqa: E402
import jaxinit.flax as jflax  # noqa: E402
from jaxinit import torch_defaults as td  # noqa: E402

KEY = jax.random.key(20)
SQRT5 = math.sqrt(5.0)

# --- torch_init: every rule's choice, to the bit ------------------------------------

HIDDEN = 12  # cells; bound 1/sqrt(12) (a unit-width uniform is avoided on purpose)
EMBED, HEADS = 12, 2


def _torch_bias_bound(weight: Any) -> float:
    """torch's reset_parameters: ``1 / sqrt(fan_in)`` of the weight, 0 if empty."""
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(weight)
    return 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _torch_twins() -> dict[str, Any]:
    """The torch layers whose defaults the zoo's layers must reproduce."""
    return {
        "dense": torch.nn.Linear(48, 20),
        "conv": torch.nn.Conv2d(6, 10, 3, groups=2),
        "up": torch.nn.ConvTranspose2d(6, 10, 3),
        "up_flipped": torch.nn.ConvTranspose2d(6, 10, (3, 2)),
        "attention": torch.nn.MultiheadAttention(EMBED, HEADS),
    }


def _uniform(bound: float) -> jaxinit.Initializer:
    return jaxinit.uniform(-bound, bound)


def expected_rules() -> dict[str, Any]:
    """(layer, parameter) -> the initializer torch's defaults call for.

    Biases and packed projections use torch's own fan and formula; kernels are
    jaxinit's fan-scaled initializers with the axes torch's fan is read from.
    """
    twins = _torch_twins()
    cell = _uniform(1 / math.sqrt(HIDDEN))
    packed_fan_in, packed_fan_out = torch.nn.init._calculate_fan_in_and_fan_out(
        twins["attention"].in_proj_weight
    )
    # torch xavier_uniform_: std = gain * sqrt(2 / (fan_in + fan_out)), a = sqrt(3) std
    packed = _uniform(
        math.sqrt(3.0) * math.sqrt(2.0 / float(packed_fan_in + packed_fan_out))
    )
    return {
        "dense/kernel": jaxinit.kaiming_uniform(a=SQRT5),
        "dense/bias": _uniform(_torch_bias_bound(twins["dense"].weight)),
        "conv/kernel": jaxinit.kaiming_uniform(a=SQRT5),
        "conv/bias": _uniform(_torch_bias_bound(twins["conv"].weight)),
        # Flax (*k, in, out): torch's fan-in is the output side.
        "up/kernel": jaxinit.kaiming_uniform(a=SQRT5, in_axis=-1, out_axis=-2),
        "up/bias": _uniform(_torch_bias_bound(twins["up"].weight)),
        # transpose_kernel=True: (*k, out, in), the default axes read torch's fan.
        "up_flipped/kernel": jaxinit.kaiming_uniform(a=SQRT5),
        "up_flipped/bias": _uniform(_torch_bias_bound(twins["up_flipped"].weight)),
        "embed/embedding": jaxinit.normal(0.0, 1.0),
        "attention/projection": packed,
        "attention/out/kernel": jaxinit.kaiming_uniform(
            a=SQRT5, in_axis=(0, 1), out_axis=2
        ),
        "zeros": jaxinit.zeros(),
        "ones": jaxinit.ones(),
        "prelu": jaxinit.constant(0.25),
        "cell/kernel": cell,
        "cell/single_bias": cell,  # GRU's b_in and b_hn: one torch bias each
        "lstm/bias": td.lstm_cell(HIDDEN)["bias_init"],
        "gru/bias": td.gru_cell(HIDDEN)["bias_init"],
        "rnn/bias": td.rnn_cell(HIDDEN)["bias_init"],
    }


def expected_for(path: tuple[str, ...], rules: dict[str, Any]) -> Any:
    """The expected initializer of a zoo parameter, by its layer and its name."""
    layer, leaf, name = path[0], path[-1], "/".join(path[-2:])
    if layer in ("dense", "conv", "up", "up_flipped"):
        return rules[f"{layer}/{leaf}"]
    if layer == "embed":
        return rules["embed/embedding"]
    if layer == "attention":
        if path[-2] == "out":
            return rules["attention/out/kernel"] if leaf == "kernel" else rules["zeros"]
        return rules["attention/projection"] if leaf == "kernel" else rules["zeros"]
    if layer in ("lstm", "gru", "rnn"):
        if leaf == "kernel":
            return rules["cell/kernel"]
        if layer == "gru" and name in ("in/bias", "hn/bias"):
            return rules["cell/single_bias"]
        return rules[f"{layer}/bias"]
    if layer == "norm":
        return rules["ones"] if leaf == "scale" else rules["zeros"]
    if layer == "prelu":
        return rules["prelu"]
    raise AssertionError(f"no expectation for {path}")


class NnxZoo(nnx.Module):
    """One layer of every type torch_rules() knows, at sizes with distinct fans."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(48, 20, rngs=rngs)
        self.conv = nnx.Conv(6, 10, (3, 3), feature_group_count=2, rngs=rngs)
        self.up = nnx.ConvTranspose(6, 10, (3, 3), rngs=rngs)
        self.up_flipped = nnx.ConvTranspose(
            6, 10, (3, 2), transpose_kernel=True, rngs=rngs
        )
        self.embed = nnx.Embed(30, 16, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(HEADS, EMBED, decode=False, rngs=rngs)
        self.lstm = nnx.LSTMCell(5, HIDDEN, rngs=rngs)
        self.gru = nnx.GRUCell(5, HIDDEN, rngs=rngs)
        self.rnn = nnx.SimpleCell(5, HIDDEN, rngs=rngs)
        self.norm = nnx.LayerNorm(HIDDEN, rngs=rngs)
        self.prelu = nnx.PReLU()


class LinenZoo(nn.Module):
    @nn.compact
    def __call__(self, image: Any) -> Any:
        nn.Dense(20, name="dense")(jnp.ones((1, 48)))
        nn.Conv(10, (3, 3), feature_group_count=2, name="conv")(image)
        nn.ConvTranspose(10, (3, 3), name="up")(image)
        nn.ConvTranspose(10, (3, 2), transpose_kernel=True, name="up_flipped")(image)
        nn.Embed(30, 16, name="embed")(jnp.zeros((1, 3), jnp.int32))
        nn.MultiHeadDotProductAttention(HEADS, name="attention")(
            jnp.ones((1, 3, EMBED))
        )
        sequence = jnp.ones((1, 3, 5))
        nn.RNN(nn.LSTMCell(HIDDEN, name="lstm"))(sequence)
        nn.RNN(nn.GRUCell(HIDDEN, name="gru"))(sequence)
        nn.RNN(nn.SimpleCell(HIDDEN, name="rnn"))(sequence)
        nn.LayerNorm(name="norm")(jnp.ones((1, HIDDEN)))
        return nn.PReLU(name="prelu")(image)


def _zoo_params(flavour: str) -> dict[tuple[str, ...], np.ndarray]:
    if flavour == "nnx":
        model = nnx.eval_shape(lambda: NnxZoo(nnx.Rngs(0)))
        jflax.torch_init(model, KEY)
        return {
            tuple(str(p) for p in path): np.asarray(var.get_value())
            for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))
        }
    module = LinenZoo()
    image = jnp.ones((1, 4, 4, 6))
    variables = jax.eval_shape(module.init, jax.random.key(0), image)
    new = jflax.torch_init(module, KEY, variables=variables, args=(image,))
    flat = traverse_util.flatten_dict(dict(new["params"]))
    return {tuple(str(p) for p in path): np.asarray(v) for path, v in flat.items()}


@pytest.mark.parametrize("flavour", ["nnx", "linen"])
def test_torch_init_chooses_torch_defaults_exactly(flavour: str) -> None:
    """Each parameter is, bit for bit, its expected initializer at its path's key.

    Pins every rule of torch_rules(): Dense/Conv bias fans (groups included),
    ConvTranspose's output-side fans for both kernel settings, Embed's N(0, 1)
    with no user rule in the way, the packed attention bound, which cell biases
    sum two torch biases and which are one, the norms and PReLU.
    """
    rules = expected_rules()
    params = _zoo_params(flavour)
    layers = {path[0] for path in params}
    assert layers == {
        "dense",
        "conv",
        "up",
        "up_flipped",
        "embed",
        "attention",
        "lstm",
        "gru",
        "rnn",
        "norm",
        "prelu",
    }
    for path, values in params.items():
        init = expected_for(path, rules)
        want = init(jflax.param_key(KEY, path), values.shape, values.dtype)
        np.testing.assert_array_equal(values, np.asarray(want), err_msg="/".join(path))


def test_expected_bounds_are_torch_formulas_to_the_digit() -> None:
    """The zoo's expectations against hand-computed torch formulas, and each
    torch twin's own draw stays within them (a bound that is too large would
    pass a support check, so the torch draw must also reach near the bound)."""
    twins = _torch_twins()
    rules = expected_rules()
    assert rules["dense/bias"] == _uniform(1 / math.sqrt(48))
    assert rules["conv/bias"] == _uniform(1 / math.sqrt(3 * 9))  # in/groups * k
    assert rules["up/bias"] == _uniform(1 / math.sqrt(10 * 9))  # out * k
    assert rules["up_flipped/bias"] == _uniform(1 / math.sqrt(10 * 6))
    xavier_std = math.sqrt(2.0 / (EMBED + 3 * EMBED))  # packed (3E, E)
    assert rules["attention/projection"] == _uniform(math.sqrt(3.0) * xavier_std)
    for name in ("dense", "conv", "up", "up_flipped"):
        bound = _torch_bias_bound(twins[name].weight)
        bias = twins[name].bias.detach().numpy()
        assert np.abs(bias).max() <= bound
    # The torch_defaults functions give the same bounds.
    assert td.linear(48)["bias_init"] == rules["dense/bias"]
    assert td.conv(6, (3, 3), groups=2)["bias_init"] == rules["conv/bias"]
    assert td.conv_transpose(6, 10, (3, 3))["bias_init"] == rules["up/bias"]
    assert td.conv_transpose(6, 10, (3, 2))["bias_init"] == rules["up_flipped/bias"]
    assert td.multihead_attention(EMBED)["kernel_init"] == rules["attention/projection"]


# --- samplers with power ------------------------------------------------------------

TORCH_FACTORIES = [
    "uniform",
    "normal",
    "trunc_normal",
    "constant",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
]


@pytest.mark.parametrize("name", TORCH_FACTORIES)
def test_factory_defaults_are_torchs(name: str) -> None:
    """Every parameter jaxinit shares with torch's function has torch's default."""
    theirs = inspect.signature(getattr(torch.nn.init, f"{name}_")).parameters
    ours = inspect.signature(getattr(jaxinit, name)).parameters
    shared = [p for p in theirs if p not in ("tensor", "generator")]
    assert shared and set(shared) <= set(ours)
    for parameter in shared:
        assert ours[parameter].default == theirs[parameter].default, parameter


def test_sparse_default_std_zero_counts_and_law() -> None:
    """sparse(0.3) with its default std, on a (576, 512) kernel (206,208 non-zeros).

    The second-moment z-test has a standard error of sqrt(2 / n) = 0.31% on the
    variance: at ALPHA it rejects a std off by more than ~0.8% (50% power; a 2%
    error, 0.01 -> 0.0102, gives z ~ 13). Every torch column (input) has exactly
    ceil(0.3 * 512) = 154 zeros.
    """
    init = jaxinit.sparse(0.3)
    assert init == jaxinit.sparse(0.3, std=0.01)
    kernel = np.asarray(init(jax.random.key(41), (576, 512)))  # Flax (in, out)
    assert ((kernel == 0).sum(axis=1) == 154).all()
    nonzero = kernel[kernel != 0].astype(np.float64)
    assert nonzero.size == 576 * (512 - 154)
    law = scipy.stats.norm(0, 0.01)
    assert_moments(nonzero, law)
    assert_ks(nonzero, law)
    torch_spelling = np.asarray(jaxinit.sparse_(jax.random.key(41), (512, 576), 0.3))
    np.testing.assert_array_equal(torch_spelling, kernel.T)


def test_padded_embedding_law() -> None:
    """torch_defaults.embedding with padding_idx: N(0, 1) rows, one zero row.

    (4096, 64) table, 262,080 free values: the variance z-test (standard error
    0.28%) rejects a std off by more than ~0.7% at ALPHA; 1.1 gives z ~ 75.
    """
    init = td.embedding(4096, padding_idx=-7)["embedding_init"]
    table = np.asarray(init(jax.random.key(43), (4096, 64)), np.float64)
    np.testing.assert_array_equal(table[4089], 0.0)
    rest = np.delete(table, 4089, axis=0)
    assert (rest != 0).all()
    assert_moments(rest, scipy.stats.norm(0, 1))
    assert_ks(rest, scipy.stats.norm(0, 1))


def _sum_of_uniforms(terms: int, bound: float) -> Any:
    if terms == 1:
        return scipy.stats.uniform(-bound, 2 * bound)
    return scipy.stats.triang(0.5, loc=-2 * bound, scale=4 * bound)


@pytest.mark.parametrize(
    ("cell", "gates"),
    [("rnn_cell", (2,)), ("lstm_cell", (2, 2, 2, 2)), ("gru_cell", (2, 2, 1))],
)
def test_recurrent_bias_law_per_gate(cell: str, gates: tuple[int, ...]) -> None:
    """Each gate of a fused cell bias sums torch's two biases (b_ih + b_hh), or is
    one torch bias (GRU's b_in); a per-gate (H,) bias always sums two.

    H = 2**14 values per gate: the variance z-test (standard error <= 1.1%)
    rejects a variance off by more than ~5.5% at ALPHA; one uniform where two
    are summed halves it (z > 40). KS against the exact law (triangular or
    uniform) rejects a sup-CDF distance above 0.021.
    """
    hidden = 2**14
    bound = 1 / math.sqrt(hidden)
    init = getattr(td, cell)(hidden)["bias_init"]
    fused = np.asarray(init(jax.random.key(47), (len(gates) * hidden,)), np.float64)
    for gate, terms in enumerate(gates):
        values = fused[gate * hidden : (gate + 1) * hidden]
        law = _sum_of_uniforms(terms, bound)
        assert np.abs(values).max() <= terms * bound
        assert_moments(values, law)
        assert_ks(values, law)
    single = np.asarray(init(jax.random.key(53), (hidden,)), np.float64)
    assert_moments(single, _sum_of_uniforms(2, bound))


# --- orthogonal: Haar on tall, wide, square and conv shapes ------------------------

DRAWS = 4000
# KS on DRAWS i.i.d. values rejects at ALPHA a sup-CDF distance above
# sqrt(-ln(ALPHA / 2) / (2 * DRAWS)) ~ 0.043; a dropped sign fix moves it by ~0.5.
KS_RESOLUTION = math.sqrt(-math.log(ALPHA / 2) / (2 * DRAWS))


def _coordinate_law(n: int, gain: float) -> Any:
    """A coordinate of a uniform point on the sphere S^{n-1}, times gain.

    Every entry of a Haar (semi-)orthogonal matrix whose long side is n, and any
    projection u^T W v with unit u, v, has this law: (x / gain + 1) / 2 is
    Beta((n - 1) / 2, (n - 1) / 2); its variance is gain**2 / n.
    """
    half = (n - 1) / 2
    return scipy.stats.beta(half, half, loc=-gain, scale=2 * gain)


def _torch_matrices(weights: np.ndarray, layout: str) -> np.ndarray:
    """(draws, *shape) -> (draws, rows, cols), torch's matrix view."""
    if layout == "flax":
        rank = weights.ndim - 1
        weights = np.moveaxis(weights, (rank, rank - 1), (1, 2))
    return weights.reshape(weights.shape[0], weights.shape[1], -1)


HAAR_SHAPES = [  # (torch shape, layout, gain, torch's draws for the 2-sample KS)
    ((24, 8), "flax", 1.0, 1000),  # tall: orthonormal columns
    ((8, 24), "torch", 1.7, 1000),  # wide: orthonormal rows
    ((8, 24), "flax", 1.0, 0),
    ((4, 2, 3, 3), "flax", 1.0, 0),  # conv, wide: 4 x 18
    ((32, 2, 2, 2), "torch", 1.0, 0),  # conv, tall: 32 x 8
]


@pytest.mark.parametrize(
    ("torch_shape", "layout", "gain", "torch_draws"), HAAR_SHAPES, ids=str
)
def test_orthogonal_is_haar_on_every_shape(
    torch_shape: tuple[int, ...], layout: str, gain: float, torch_draws: int
) -> None:
    """Across DRAWS independent draws: diagonal entries (a different diagonal
    index per draw, so every sign fix is exercised), one fixed projection u^T W v
    and the first entry all follow the exact Haar coordinate law (KS, resolution
    KS_RESOLUTION, plus a variance z-test: gain**2 / n within ~3.4%). On two
    shapes the projection is also compared with torch's orthogonal_ (two-sample
    KS; 1000 torch draws, ~2 ms each, resolve a sup-CDF distance of ~0.095)."""
    shape = (
        torch_shape
        if layout == "torch"
        else (*torch_shape[2:], torch_shape[1], torch_shape[0])
    )
    init = jaxinit.orthogonal(gain, layout=layout)
    keys = jax.random.split(jax.random.key(59), DRAWS)
    weights = np.asarray(jax.vmap(lambda k: init(k, shape))(keys), np.float64)
    matrices = _torch_matrices(weights, layout)
    rows, cols = matrices.shape[1:]
    law = _coordinate_law(max(rows, cols), gain)
    index = np.arange(DRAWS) % min(rows, cols)
    diagonal = matrices[np.arange(DRAWS), index, index]
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=rows), rng.normal(size=cols)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    projection = np.einsum("i,dij,j->d", u, matrices, v)
    for values in (diagonal, projection, matrices[:, 0, 0]):
        assert_ks(values, law)
        assert_moments(values, law)
    if torch_draws:
        torch.manual_seed(0)
        reference = np.empty(torch_draws)
        weight = torch.empty(torch_shape)
        for draw in range(torch_draws):
            torch.nn.init.orthogonal_(weight, gain)
            matrix = weight.numpy().reshape(rows, cols).astype(np.float64)
            reference[draw] = u @ matrix @ v
        assert_same_law(projection, reference)


def test_haar_tests_have_power() -> None:
    """The Haar test's statistics reject Q without the sign fix (Householder QR
    makes diag(R) negative, so Q's first column points against the draw's)."""
    matrices = np.asarray(
        jax.vmap(lambda k: jnp.linalg.qr(jax.random.normal(k, (24, 8)))[0])(
            jax.random.split(jax.random.key(0), DRAWS)
        ),
        np.float64,
    )
    with pytest.raises(AssertionError, match="KS"):
        assert_ks(matrices[:, 0, 0], _coordinate_law(24, 1.0))
    assert KS_RESOLUTION < 0.05 and Z > 4.8
