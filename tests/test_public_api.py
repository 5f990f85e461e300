"""The public surface: __all__ is complete and sorted, every factory and its torch
spelling is documented with examples, and the README covers every name."""

import inspect
import pathlib
import subprocess
import sys

import jaxinit

FACTORIES = [
    "uniform",
    "normal",
    "trunc_normal",
    "constant",
    "zeros",
    "ones",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
    # timm's (timm.layers.weight_init)
    "trunc_normal_tf",
    "variance_scaling",
    "lecun_normal",
]


def test_all_is_sorted_and_resolves():
    assert jaxinit.__all__ == sorted(jaxinit.__all__)
    for name in jaxinit.__all__:
        assert getattr(jaxinit, name) is not None


def test_every_torch_and_timm_function_has_both_spellings():
    for name in FACTORIES:
        assert name in jaxinit.__all__ and f"{name}_" in jaxinit.__all__
    assert {"calculate_gain", "calculate_fan_in_and_fan_out"} <= set(jaxinit.__all__)


def test_no_stray_public_names():
    public = {name for name in dir(jaxinit) if not name.startswith("_")}
    submodules = {name for name in public if inspect.ismodule(getattr(jaxinit, name))}
    assert public - submodules == set(jaxinit.__all__)


def test_every_public_function_has_examples():
    for name in jaxinit.__all__:
        obj = getattr(jaxinit, name)
        if callable(obj) and name != "Initializer":
            doc = inspect.getdoc(obj) or ""
            assert "Examples:" in doc and ">>>" in doc, name


def test_factory_signatures_follow_torch():
    for name in FACTORIES:
        parameters = inspect.signature(getattr(jaxinit, name)).parameters
        for knob in ("layout", "in_axis", "out_axis", "batch_axis", "dtype"):
            assert parameters[knob].kind is inspect.Parameter.KEYWORD_ONLY, (name, knob)
    assert str(inspect.signature(jaxinit.kaiming_uniform)).startswith(
        "(a: float | None = 0.0, mode: str = 'fan_in', nonlinearity: str = 'leaky_relu'"
    )
    assert str(inspect.signature(jaxinit.trunc_normal)).startswith(
        "(mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0"
    )
    assert str(inspect.signature(jaxinit.trunc_normal_tf)).startswith(
        "(mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0"
    )
    assert str(inspect.signature(jaxinit.variance_scaling)).startswith(
        "(scale: float = 1.0, mode: str = 'fan_in', distribution: str = 'normal', *"
    )
    assert str(inspect.signature(jaxinit.lecun_normal)).startswith("(*, layout")


def test_readme_covers_every_name():
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    for name in jaxinit.__all__:
        assert f"`{name}" in readme or f"jaxinit.{name}" in readme, name


def test_import_needs_only_jax():
    code = (
        "import sys, jaxinit; "
        "bad = {'torch', 'scipy', 'matplotlib', 'flax'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
