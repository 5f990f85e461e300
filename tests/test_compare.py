"""jaxinit.compare: a correct port passes, a wrong rule is flagged, with stated power
and false-alarm rate; names, stacked layers, tied and unmatched parameters; GPT-2
(Hugging Face transformers) ported to nnx, linen (nn.scan) and Equinox (filter_vmap).

The statistical assertions about compare itself count its verdicts over 20 seeds
and allow what a binomial law allows with probability 1 - ALPHA (tests/_stats.py).
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
scipy_stats = pytest.importorskip("scipy.stats")
nnx = pytest.importorskip("flax.nnx")

import _gpt2  # noqa: E402
from _stats import ALPHA  # noqa: E402

import jaxinit  # noqa: E402
import jaxinit.flax  # noqa: E402
from jaxinit._compare import _tests, kolmogorov_sf, ks_2samp  # noqa: E402

RUNS = 20  # seeds over which compare's own error rates are counted


def compare(*args: Any, **kwargs: Any) -> jaxinit.CompareReport:
    """jaxinit.compare at the suite's false-alarm rate, unless a test sets alpha.

    Verdicts asserted on fixed keys (this row passes, exactly that row fails)
    are then wrong with probability at most ALPHA, as every statistical
    assertion of the suite.
    """
    kwargs.setdefault("alpha", ALPHA)
    return jaxinit.compare(*args, **kwargs)


def binomial_bound(runs: int, rate: float) -> int:
    """The largest count a Binomial(runs, rate) exceeds with probability < ALPHA."""
    law = scipy_stats.binom(runs, rate)
    return int(law.isf(ALPHA))


# --- the statistics, against scipy --------------------------------------------------


def test_ks_statistic_and_p_value_match_scipy() -> None:
    rng = np.random.default_rng(0)
    for n, m in ((50, 70), (1000, 300), (4096, 4096)):
        x = np.round(rng.normal(size=n), 1)  # ties included
        y = np.round(rng.normal(0.1, 1.0, size=m), 1)
        d, p = ks_2samp(x, y)
        assert d == pytest.approx(scipy_stats.ks_2samp(x, y).statistic, abs=1e-12)
        root = math.sqrt(n * m / (n + m))
        expected = scipy_stats.kstwobign.sf((root + 0.12 + 0.11 / root) * d)
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-12)
    for lam in (0.3, 0.5, 1.0, 1.36, 2.0, 3.0):
        assert kolmogorov_sf(lam) == pytest.approx(
            scipy_stats.kstwobign.sf(lam), rel=1e-9, abs=1e-15
        )


LAWS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "normal": lambda rng, n: rng.normal(0, 0.02, n),
    "uniform": lambda rng, n: rng.uniform(-1, 1, n),
    "laplace": lambda rng, n: rng.laplace(0, 1, n),  # kurtosis 6
    "sparse": lambda rng, n: rng.normal(size=n) * (rng.uniform(size=n) < 0.1),
}


@pytest.mark.parametrize("law", LAWS)
def test_each_test_keeps_its_level(law: str) -> None:
    """Under the null each p-value falls below t at most a fraction t of the time.

    Equal laws on both sides, 1000 repetitions of n = m = 2000: the KS, variance
    and mean tests are not anti-conservative at t = 0.01, 0.05, 0.1 (atoms make
    KS conservative, which is allowed).
    """
    rng = np.random.default_rng(0)
    draw = LAWS[law]
    results = [_tests(draw(rng, 2000), draw(rng, 2000)) for _ in range(1000)]
    for name in ("ks_p", "std_p", "mean_p"):
        p = np.array([getattr(r, name) for r in results])
        for t in (0.01, 0.05, 0.1):
            low = int((p < t).sum())
            assert low <= binomial_bound(len(p), t), (name, t, low)


# --- GPT-2 ----------------------------------------------------------------------------

SMALL = _gpt2.SMALL
TORCH_GPT2 = _gpt2.torch_factory(SMALL)
C_PROJ = r"transformer\.h\.\d\.(attn|mlp)\.c_proj\.weight"


@pytest.fixture(scope="module")
def nnx_report() -> jaxinit.CompareReport:
    init = _gpt2.nnx_init(SMALL, _gpt2.flax_rules(SMALL))
    return compare(TORCH_GPT2, init, mapping=_gpt2.MAPPING)


def test_gpt2_nnx_port_passes(nnx_report: jaxinit.CompareReport) -> None:
    report = nnx_report
    assert report.ok, report.table(failures_only=True)
    assert len(report.rows) == 2 + 12 * SMALL["n_layer"] + 2
    assert report.tied == (("lm_head.weight", "transformer.wte.weight"),)
    kinds = {row.torch_name: row.kind for row in report.rows}
    assert kinds["transformer.h.1.ln_2.weight"] == "fixed"
    assert kinds["transformer.h.0.attn.c_attn.bias"] == "fixed"
    assert kinds["transformer.h.0.attn.c_attn.weight"] == "random"
    row = report.row("transformer.h.1.mlp.c_proj.weight")
    assert row.jax_name == "h/1/mlp/c_proj/kernel"
    assert row.layout == "same"  # Hugging Face's Conv1D is (in, out), as Flax
    assert row.torch_std == pytest.approx(_gpt2.residual_std(SMALL), rel=0.05)
    assert not report.underpowered
    assert all(r.detectable <= 0.05 for r in report.rows)
    assert "tied in torch: lm_head.weight = transformer.wte.weight" in str(report)


def _wrong(rules: dict[Any, Any], pattern: str, init: Any) -> dict[Any, Any]:
    return {**rules, pattern: init}


@pytest.mark.parametrize(
    ("pattern", "init", "failing"),
    [
        # the residual projections' scaled std forgotten: std 0.02, not 0.02/sqrt(4)
        (r".*/c_proj/kernel", jaxinit.normal(std=0.02), C_PROJ),
        # Flax's truncated normal(0.02) for the embeddings: std 12% low, KS
        (
            r"(wte|wpe)/embedding",
            jax.nn.initializers.truncated_normal(0.02),
            r"transformer\.(wte|wpe)\.weight",
        ),
        # one block's residual std 5% high
        (
            r"h/1/mlp/c_proj/kernel",
            jaxinit.normal(std=1.05 * _gpt2.residual_std(SMALL)),
            r"transformer\.h\.1\.mlp\.c_proj\.weight",
        ),
    ],
    ids=["unscaled_c_proj", "truncated_embedding", "std_5_percent"],
)
def test_gpt2_wrong_rule_is_flagged(pattern: str, init: Any, failing: str) -> None:
    import re

    rules = _wrong(_gpt2.flax_rules(SMALL), pattern, init)
    report = compare(TORCH_GPT2, _gpt2.nnx_init(SMALL, rules), mapping=_gpt2.MAPPING)
    assert not report.ok
    failed = {row.torch_name for row in report.failures}
    expected = {
        r.torch_name for r in report.rows if re.fullmatch(failing, r.torch_name)
    }
    assert failed == expected and expected
    assert all("std" in row.problem for row in report.failures)
    assert "FAIL" in report.table(failures_only=True)


def test_gpt2_linen_scan_port() -> None:
    init = _gpt2.linen_init(SMALL, _gpt2.linen_rules(SMALL))
    report = compare(TORCH_GPT2, init, mapping=_gpt2.LINEN_MAPPING)
    assert report.ok, report.table(failures_only=True)
    row = report.row("transformer.h.1.mlp.c_proj.weight")
    assert row.jax_name == "h/mlp_proj/kernel[1]"  # a slice of the scanned stack
    wrong = _gpt2.linen_rules(SMALL)
    wrong[r"h/(c_proj|mlp_proj)/kernel"] = jaxinit.normal(std=0.02)
    report = compare(
        TORCH_GPT2, _gpt2.linen_init(SMALL, wrong), mapping=_gpt2.LINEN_MAPPING
    )
    assert {r.torch_name for r in report.failures} == {
        f"transformer.h.{i}.{part}.c_proj.weight"
        for i in range(SMALL["n_layer"])
        for part in ("attn", "mlp")
    }


def test_gpt2_equinox_stacked_port() -> None:
    pytest.importorskip("equinox")
    init = _gpt2.eqx_init(SMALL, _gpt2.eqx_rules(SMALL))
    report = compare(TORCH_GPT2, init, mapping=_gpt2.MAPPING)
    assert report.ok, report.table(failures_only=True)
    # torch's names, through to_torch on the unstacked blocks
    row = report.row("transformer.h.1.attn.c_attn.weight")
    assert (row.jax_name, row.layout) == ("h.1.attn.c_attn.weight", "transposed")
    wrong = _gpt2.eqx_rules(SMALL)
    wrong[r"h/(attn|mlp)/c_proj/weight"] = jaxinit.normal(std=0.02)
    report = compare(TORCH_GPT2, _gpt2.eqx_init(SMALL, wrong), mapping=_gpt2.MAPPING)
    failed = {r.torch_name for r in report.failures}
    assert len(failed) == 2 * SMALL["n_layer"] and all("c_proj" in n for n in failed)


def test_gpt2_torch_module_instead_of_factory() -> None:
    init = _gpt2.nnx_init(SMALL, _gpt2.flax_rules(SMALL))
    report = compare(TORCH_GPT2(0), init, mapping=_gpt2.MAPPING)
    assert report.ok, report.table(failures_only=True)
    assert {row.draws for row in report.rows} == {1}  # one torch draw
    assert report.draws > 1  # the JAX side pooled


# --- power and false alarms -------------------------------------------------------

SIZES = (256, 1024, 4096, 16384, 65536)
STD = 0.02


class Vectors(torch.nn.Module):
    """Parameters of several sizes, each N(0, STD)."""

    def __init__(self) -> None:
        super().__init__()
        for size in SIZES:
            param = torch.nn.Parameter(torch.empty(size))
            torch.nn.init.normal_(param, std=STD)
            self.register_parameter(f"p{size}", param)


def vectors(seed: int) -> Vectors:
    torch.manual_seed(seed)
    return Vectors()


def vectors_jax(std: float) -> Callable[[jax.Array], dict[str, jax.Array]]:
    spec = {
        f"p{size}": (jaxinit.normal(std=std), (size,), jnp.float32) for size in SIZES
    }
    return lambda key: jaxinit.init_tree(key, spec)


@pytest.mark.parametrize("factor", [1.05, 0.95])
def test_a_5_percent_std_error_is_flagged(factor: float) -> None:
    """Pooled to see 5% with probability 1 - ALPHA: every row of 1024 values and
    more is flagged, except with probability ALPHA."""
    report = compare(vectors, vectors_jax(STD * factor), power=1 - ALPHA, max_draws=64)
    for row in report.rows:
        size = row.shape[0]
        if size >= 1024:  # 4096 values and more; 1024 pooled over ~20 draws
            assert row.detectable <= 0.05, row
            assert not row.ok and "std" in row.problem, row
    # 256 values would need some 150 draws: reported as unable to see 5%
    assert [r.torch_name for r in report.underpowered] == ["p256"]
    assert report.draws == 64


def test_without_pooling_small_tensors_cannot_see_5_percent() -> None:
    report = compare(vectors, vectors_jax(STD * 1.05), max_draws=2)
    assert {r.torch_name for r in report.underpowered} == {"p256", "p1024", "p4096"}


def test_power_over_seeds() -> None:
    """Each row that can see 5% sees it in nearly every run (power 0.99 each)."""
    misses = dict.fromkeys(SIZES[1:], 0)
    for run in range(RUNS):
        report = compare(
            vectors,
            vectors_jax(STD * 1.05),
            seed=1000 * run,
            alpha=1e-4,  # compare's default
            ignore=["p256"],  # cannot see 5%: every run would draw to max_draws
            max_draws=24,
        )
        for size in SIZES[1:]:
            row = report.row(f"p{size}")
            assert row.detectable <= 0.05
            misses[size] += row.ok
    allowed = binomial_bound(RUNS, 1 - 0.99)
    assert all(count <= allowed for count in misses.values()), (misses, allowed)


class Net(torch.nn.Module):
    """torch's own defaults: uniform, normal, constants, a 4-D conv kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(100, 64)
        self.conv = torch.nn.Conv2d(8, 16, 3)
        self.fc = torch.nn.Linear(64, 128)
        self.norm = torch.nn.LayerNorm(128)


def net(seed: int) -> Net:
    torch.manual_seed(seed)
    return Net()


class NnxNet(nnx.Module):
    def __init__(self, rngs: Any) -> None:
        self.embed = nnx.Embed(100, 64, rngs=rngs)
        self.conv = nnx.Conv(8, 16, (3, 3), rngs=rngs)
        self.fc = nnx.Linear(64, 128, rngs=rngs)
        self.norm = nnx.LayerNorm(128, rngs=rngs)


def nnx_net(key: jax.Array) -> NnxNet:
    model = nnx.eval_shape(lambda: NnxNet(nnx.Rngs(0)))
    jaxinit.flax.torch_init(model, key)
    return model


def test_false_alarm_rate_over_seeds() -> None:
    """A correct port fails at most as often as the stated rate allows.

    At alpha = 0.05 a correct port fails at most 5% of runs; the p-values of
    each test are uniform, so at most 10% of them fall below 0.1.
    """
    alpha = 0.05
    failures = 0
    p_values: dict[str, list[float]] = {"ks_p": [], "std_p": [], "mean_p": []}
    for run in range(RUNS):
        report = compare(net, nnx_net, seed=100 * run, alpha=alpha, max_draws=8)
        assert not (report.torch_only or report.jax_only)
        assert len([r for r in report.rows if r.kind == "random"]) == 5
        failures += not report.ok
        for row in report.rows:
            if row.kind == "random":
                for name, values in p_values.items():
                    values.append(getattr(row, name))
    assert failures <= binomial_bound(RUNS, alpha), failures
    for name, values in p_values.items():
        low = sum(p < 0.1 for p in values)
        assert low <= binomial_bound(len(values), 0.1), (name, low, len(values))


def test_a_wrong_law_of_the_same_std_is_flagged_by_ks() -> None:
    """Uniform where torch draws a normal of the same std: only the shape differs."""
    bound = STD * math.sqrt(3)

    def uniform_jax(key: jax.Array) -> dict[str, jax.Array]:
        spec = {
            f"p{size}": (
                jaxinit.normal(std=STD)
                if size < 65536
                else jaxinit.uniform(-bound, bound),
                (size,),
                jnp.float32,
            )
            for size in SIZES
        }
        return jaxinit.init_tree(key, spec)

    report = compare(vectors, uniform_jax, max_draws=4)
    (failure,) = report.failures
    assert failure.torch_name == "p65536" and "KS" in failure.problem


def test_low_precision_dtypes_on_either_side() -> None:
    """bfloat16 values (ties, rounding) pass; torch's bfloat16 is read as float32."""

    def bf16_jax(key: jax.Array) -> dict[str, jax.Array]:
        spec = {
            f"p{size}": (jaxinit.normal(std=STD), (size,), jnp.bfloat16)
            for size in SIZES[2:]
        }
        return jaxinit.init_tree(key, spec)

    def bf16_torch(seed: int) -> torch.nn.Module:
        return vectors(seed).to(torch.bfloat16)

    ignore = ["p256", "p1024"]
    report = compare(vectors, bf16_jax, ignore=ignore, max_draws=4)
    assert report.ok, report.table()
    report = compare(bf16_torch, vectors_jax(STD), ignore=ignore, max_draws=4)
    assert report.ok, report.table()
    wrong = compare(bf16_torch, vectors_jax(1.1 * STD), ignore=ignore)
    assert len(wrong.failures) == 3


# --- names, layouts, fixed values ---------------------------------------------------


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, bias=False)
        torch.nn.init.dirac_(self.conv.weight)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(32, 32) for _ in range(3)])
        self.head = torch.nn.Linear(32, 8)


def small(seed: int) -> Small:
    torch.manual_seed(seed)
    return Small()


def small_jax(
    *, dirac: Any = None, head: tuple[int, ...] = (32, 8), extra: bool = False
) -> Callable[[jax.Array], dict[str, jax.Array]]:
    linear = jaxinit.torch_defaults.linear(32)
    spec = {
        "conv/kernel": (dirac or jaxinit.dirac(), (3, 3, 4, 4), jnp.float32),
        "blocks/kernel": (
            jaxinit.kaiming_uniform(a=math.sqrt(5), batch_axis=0),
            (3, 32, 32),
            jnp.float32,
        ),
        "blocks/bias": (linear["bias_init"], (3, 32), jnp.float32),
        "head/kernel": (linear["kernel_init"], head, jnp.float32),
        "head/bias": (linear["bias_init"], (8,), jnp.float32),
    }
    if extra:
        spec["scale"] = (jaxinit.ones(), (8,), jnp.float32)

    def init(key: jax.Array) -> dict[str, Any]:
        flat = jaxinit.init_tree(key, spec)
        nested: dict[str, Any] = {}
        for path, value in flat.items():
            *outer, leaf = path.split("/")
            node = nested
            for part in outer:
                node = node.setdefault(part, {})
            node[leaf] = value
        return nested

    return init


# The small model's biases (32 values) cannot see 5% in any number of draws that
# a test can afford; these tests are about names and values, so draw little.
DRAWS = {"max_draws": 4}


def test_stacked_slices_layouts_and_dirac() -> None:
    report = compare(small, small_jax(), **DRAWS)
    assert report.ok, report.table()
    names = [(row.torch_name, row.jax_name, row.kind) for row in report.rows]
    assert names[:3] == [
        ("conv.weight", "conv/kernel", "fixed"),  # dirac: compared exactly
        ("blocks.0.weight", "blocks/kernel[0]", "random"),
        ("blocks.0.bias", "blocks/bias[0]", "random"),
    ]
    assert report.row("conv.weight").layout == "flax"


def test_same_size_without_a_layout_is_compared_flat() -> None:
    """An attention-style kernel (in, heads, head_dim) against torch's (out, in)."""
    init = small_jax()

    def heads(key: jax.Array) -> dict[str, Any]:
        params = init(key)
        params["head"]["kernel"] = params["head"]["kernel"].reshape(32, 2, 4)
        return params

    report = compare(small, heads, **DRAWS)
    row = report.row("head.weight")
    assert row.ok and row.layout == "reshaped", report.table()
    assert "head/kernel (reshaped)" in str(report)


def test_a_wrong_fixed_value_is_flagged() -> None:
    # dirac with 2 groups: an identity per group, not across all channels
    report = compare(small, small_jax(dirac=jaxinit.dirac(groups=2)), **DRAWS)
    (failure,) = report.failures
    assert failure.torch_name == "conv.weight" and "values differ" in failure.problem
    report = compare(small, small_jax(dirac=jaxinit.normal()), **DRAWS)
    (failure,) = report.failures
    assert "JAX's change with the key" in failure.problem


def test_unmatched_and_mismatched_parameters_are_listed() -> None:
    report = compare(small, small_jax(head=(32, 9), extra=True), **DRAWS)
    assert not report.ok
    assert report.jax_only == ("scale",)
    (failure,) = report.failures
    assert failure.kind == "shape" and "(8, 32)" in failure.problem
    # the JAX side misses a torch parameter
    report = compare(small, small_jax(), mapping={"head.bias": "no/such/param"})
    assert report.torch_only == ("head.bias",) and not report.ok
    assert report.jax_only == ("head/bias",)
    assert "torch only: head.bias" in str(report)
    # ignore: listed, not unmatched
    report = compare(
        small,
        small_jax(extra=True),
        ignore=["scale"],
        mapping={"head.bias": None},
        **DRAWS,
    )
    assert report.ignored == ("head.bias", "scale")
    assert report.jax_only == ("head/bias",)


def test_mappings_dict_pairs_and_function() -> None:
    def renamed(key: jax.Array) -> dict[str, Any]:
        params = small_jax()(key)
        params["out"] = params.pop("head")
        return params

    for mapping in (
        {"head.weight": "out/kernel", "head.bias": "out.bias"},
        [(r"head\.(.*)", r"out.\1")],
        lambda name: name.replace("head", "out"),
    ):
        report = compare(small, renamed, mapping=mapping, **DRAWS)
        assert report.ok, (mapping, report.table())
        assert report.row("head.weight").jax_name == "out/kernel"


def test_untied_jax_copy_of_a_tied_torch_parameter_is_compared() -> None:
    def untied(key: jax.Array) -> Any:
        model = _gpt2.nnx_init(SMALL, _gpt2.flax_rules(SMALL))(key)
        model.lm_head = nnx.Linear(64, 512, use_bias=False, rngs=nnx.Rngs(0))
        jaxinit.flax.reinit(model, key, {r"lm_head/kernel": jaxinit.normal(std=0.02)})
        return model

    report = compare(TORCH_GPT2, untied, mapping=_gpt2.MAPPING, max_draws=2)
    row = report.row("lm_head/kernel")
    assert row.torch_name == "transformer.wte.weight" and row.layout == "flax"
    assert row.ok and not report.jax_only


# --- errors and output ---------------------------------------------------------


def test_bad_arguments() -> None:
    init = vectors_jax(STD)
    for kwargs in ({"alpha": 0.0}, {"power": 1.0}, {"target": 0.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            compare(vectors, init, **kwargs)
    with pytest.raises(ValueError, match="min_draws"):
        compare(vectors, init, min_draws=5, max_draws=4)
    with pytest.raises(TypeError, match="torch_model"):
        compare(3, init)
    model = nnx_net(jax.random.key(0))
    with pytest.raises(TypeError, match="jax_init must be a function"):
        compare(net, model)


def test_unseeded_sides_are_refused() -> None:
    module = vectors(0)
    with pytest.raises(ValueError, match=r"torch.manual_seed\(seed\)"):
        compare(lambda seed: module, vectors_jax(STD))
    params = vectors_jax(STD)(jax.random.key(0))
    with pytest.raises(ValueError, match="must draw with its key"):
        compare(vectors, lambda key: params)


def test_plot_shows_failures_first() -> None:
    pytest.importorskip("matplotlib")
    report = compare(
        TORCH_GPT2,
        _gpt2.nnx_init(
            SMALL,
            _wrong(
                _gpt2.flax_rules(SMALL), r".*/c_proj/kernel", jaxinit.normal(std=0.02)
            ),
        ),
        mapping=_gpt2.MAPPING,
    )
    figure = report.plot()
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    failing = [t for t in titles if t.startswith("FAIL")]
    assert len(failing) == 2 * SMALL["n_layer"] and titles[: len(failing)] == failing
    # then one panel per name pattern: wte, wpe, c_attn, c_fc
    assert len(titles) == len(failing) + 4
    figure = report.plot(["transformer.wte.weight"])
    assert [ax.get_title() for ax in figure.axes] == ["transformer.wte.weight"]
    with pytest.raises(ValueError, match="no random row"):
        report.plot(["transformer.ln_f.weight"])
