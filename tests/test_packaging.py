"""The package as users get it: wheel and sdist build and pass ``twine check``, and
the wheel installs into a clean venv with jax alone and works there.

Slow (a venv and jax's wheels, from pip's cache after the first run; about a
minute on 2 idle cores) and needs PyPI, as ``make test`` does.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# Run inside the clean venv: every module imports or says which extra it needs,
# and the Flax helpers say so without Flax.
CHECK = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import jax, jaxinit
    modules, needs_extra = [], {}
    for info in pkgutil.walk_packages(jaxinit.__path__, "jaxinit."):
        if info.name == "jaxinit.__main__":  # runs the CLI
            continue
        try:
            importlib.import_module(info.name)
            modules.append(info.name)
        except ImportError as error:
            needs_extra[info.name] = str(error)
    value = jaxinit.kaiming_uniform()(jax.random.key(0), (4, 3))
    import jaxinit.flax
    try:
        jaxinit.flax.torch_init(object(), jax.random.key(0))
        flax_error = None
    except ImportError as error:
        flax_error = str(error)
    print(json.dumps({
        "modules": modules,
        "needs_extra": needs_extra,
        "shape": list(value.shape),
        "version": jaxinit.__version__,
        "flax_error": flax_error,
        "loaded": sorted({m.split(".")[0] for m in sys.modules}),
    }))
    """
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_and_needed(site_packages: list[str]) -> tuple[set[str], set[str]]:
    """The distributions in a venv, and the closure of jaxinit's requirements
    (markers evaluated, no extras) among them."""
    dists = {
        _norm(dist.metadata["Name"]): dist
        for dist in importlib.metadata.distributions(path=site_packages)
    }
    needed: set[str] = set()
    todo = ["jaxinit"]
    while todo:
        name = _norm(todo.pop())
        if name in needed or name not in dists:
            continue
        needed.add(name)
        for line in dists[name].requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return set(dists), needed


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    # No isolation: hatchling comes from the dev extra, so no download here.
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def test_wheel_and_sdist_pass_twine_check(dist: Path):
    pytest.importorskip("twine")
    files = sorted(dist.iterdir())
    assert sorted(path.suffix for path in files) == [".gz", ".whl"], files
    _run(sys.executable, "-m", "twine", "check", "--strict", *files)


def test_wheel_holds_the_package_and_license(dist: Path):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"jaxinit", "-".join(wheel.name.split("-")[:2]) + ".dist-info"}, top
    assert "jaxinit/py.typed" in names
    assert any(name.endswith("licenses/LICENSE") for name in names), names


def test_wheel_installs_with_jax_alone(dist: Path, tmp_path: Path):
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    # No system site-packages and no seeded pip or setuptools: only what the wheel
    # pulls in. The outer pip installs into it, from its cache after the first
    # run; no .pyc compilation (jax has thousands of modules).
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-compile",
        wheel,
    )
    site = _run(python, "-c", "import site; print(site.getsitepackages()[0])")
    installed, needed = _installed_and_needed([site.strip()])
    report = json.loads(_run(python, "-c", CHECK, cwd=tmp_path))

    assert installed == needed, sorted(installed - needed)
    assert {"jax", "jaxlib", "jaxinit"} <= installed
    assert not {"flax", "torch", "matplotlib"} & installed
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert report["version"] == version["version"]
    assert report["shape"] == [4, 3]
    assert {"jaxinit.flax", "jaxinit.torch_defaults"} <= set(report["modules"])
    for module, message in report["needs_extra"].items():
        assert "pip install 'jaxinit[" in message, (module, message)
    assert "pip install 'jaxinit[flax]'" in report["flax_error"]
    assert "flax" not in report["loaded"]
