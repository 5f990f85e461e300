"""The draw engine: its import graph, one compile per (law, dtype), its bits.

The engine (keys, programs, geometry, assembly, the engine itself, the eager
client) sits below the initializers: nothing it imports imports them, no
module imports in a cycle, and no import hides inside a function except those
of the optional frameworks. Eager calls and ``init_tree`` share one compiled
block program per (law, dtype), whose compiler options keep the initializer's
own bits.
"""

import ast
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from jaxinit import _keys, _programs

PACKAGE = pathlib.Path(jaxinit.__file__).parent
ENGINE = ("_keys", "_programs", "_geometry", "_assembly", "_engine", "_eager")
# What the engine may import from the package: the low modules it draws with.
ENGINE_DEPENDS = {*ENGINE, "_bits", "_checks", "_compat", "_sampling"}
# Imported inside functions, so that importing jaxinit never needs them (or, for
# jax.extend, never pays for them): third-party modules only, never jaxinit's own.
OPTIONAL = ("flax", "equinox", "matplotlib", "jax.extend")


def _imports(path: pathlib.Path) -> list[tuple[str, bool]]:
    """``(module, inside a function)`` for every import in a file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level == 0:
                    found.append((child.module or "", inner))
                elif child.module:  # from ._x import y
                    found.append((f"jaxinit.{child.module}", inner))
                else:  # from . import x, y
                    found.extend((f"jaxinit.{a.name}", inner) for a in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    """The package's modules and the package modules each one imports."""
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {
            target.split(".")[1]
            for target, _ in _imports(path)
            if target.startswith("jaxinit.") and target.split(".")[1] in modules
        }
    return graph


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    order: list[str] = []
    state: dict[str, str] = {}

    def walk(module: str, trail: tuple[str, ...]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join((*trail, module))
        state[module] = "open"
        for target in sorted(graph[module]):
            walk(target, (*trail, module))
        state[module] = "done"
        order.append(module)

    for module in sorted(graph):
        walk(module, ())
    assert len(order) == len(graph)


def test_the_engine_imports_no_initializer() -> None:
    graph = _graph()
    for module in ENGINE:
        assert graph[module] <= ENGINE_DEPENDS, (module, graph[module] - ENGINE_DEPENDS)
        source = (PACKAGE / f"{module}.py").read_text()
        for name in ("_Constant", "_Uniform", "_Normal", "_TruncNormal", "_FanScaled"):
            assert name not in source, (module, name)


def test_no_import_hides_in_a_function_but_the_optional_frameworks() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for target, nested in _imports(path):
            if nested:
                assert target.startswith(OPTIONAL), (path.name, target)


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path) -> None:
    """The checks above have power: a lazy package import and a cycle show."""
    path = tmp_path / "mod.py"
    path.write_text(
        "from . import _a\nfrom ._b import c\n"
        "def f():\n    from . import _eager\n    import flax\n"
    )
    assert _imports(path) == [
        ("jaxinit._a", False),
        ("jaxinit._b", False),
        ("jaxinit._eager", True),
        ("flax", True),
    ]


# --- one compiled block program per (law, dtype) ---------------------------------

_COMPILES = textwrap.dedent(
    """
    import json, jax, jax.numpy as jnp, jaxinit
    from jaxinit import _programs

    names = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    key = jax.random.key(0)
    laws = [
        (jaxinit.normal(std=0.02), jnp.float32),  # normal, float32
        (jaxinit.kaiming_uniform(), jnp.float32),  # uniform, float32
        (jaxinit.uniform(-1.0, 1.0), jnp.bfloat16),  # uniform, bfloat16
    ]
    spec = {
        f"{i}/{j}": (init, (64 * j + 5, 3000), dtype)
        for i, (init, dtype) in enumerate(laws)
        for j in range(3)
    }
    spec["bias"] = (jaxinit.zeros(), (3000,), None)

    def eager(rows):
        for i, (init, dtype) in enumerate(laws):
            jax.block_until_ready(init(key, (rows + i, 700), dtype))

    if EAGER_FIRST:
        eager(300)
    jax.block_until_ready(jaxinit.init_tree(key, spec))
    eager(5)  # new shapes
    cache = _programs.program("block", "cpu")._cache_size()
    print(json.dumps({"names": names, "cache": cache}))
    """
)


@pytest.mark.parametrize("eager_first", [True, False])
def test_eager_calls_and_init_tree_compile_one_block_program_per_law(
    eager_first: bool,
) -> None:
    """In a fresh process: three (law, dtype), three block compiles, whichever
    path (eager calls, or init_tree's compiles ahead in worker threads) asked
    first."""
    done = subprocess.run(
        [sys.executable, "-c", f"EAGER_FIRST = {eager_first}\n{_COMPILES}"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"},
        cwd=PACKAGE.parent,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cache"] == 3
    if "?" not in result["names"]:  # jax names the compiled function
        blocks = [name for name in result["names"] if name.startswith("jit(_block")]
        assert len(blocks) == 3, result["names"]
        assert all("strided" not in name for name in result["names"])


# --- the compiler options keep the initializer's own bits --------------------------


@pytest.mark.parametrize("dtype", _programs.DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "init",
    [
        jaxinit.uniform(-0.3, 0.7),
        jaxinit.normal(0.5, 2.0),
        jaxinit.trunc_normal(std=0.02),  # far bounds: the clipped normal
    ],
    ids=repr,
)
def test_a_block_is_the_initializers_own_program(init, dtype) -> None:
    """One block of the engine's program, at its compiler options, equals the
    stretch of the leaf that the initializer's own jitted program draws."""
    rows = _programs.BLOCK_ROWS
    shape = (rows * _programs.ROW,)
    plan = _programs.row_plan(init.law(shape, dtype), dtype)
    assert plan is not None and plan.law in _programs.LAWS
    key = jax.random.key(5)
    first_pairs = np.arange(rows, dtype=np.uint32) * np.uint32(_programs.ROW // 2)
    params = np.asarray(plan.params, np.float32)
    block = _programs.draw(
        None,
        dtype,
        plan.law,
        [
            np.broadcast_to(_keys.host_words(key), (rows, 2)),
            first_pairs,
            np.broadcast_to(params, (rows, _programs.PARAMS)),
        ],
    )
    own = jax.jit(init, static_argnums=(1, 2))(key, shape, dtype)
    assert own.dtype == jnp.dtype(dtype)
    bits = f"u{dtype.itemsize}"
    values = _programs.host_rows(block, dtype)
    assert values.shape == (rows, _programs.ROW)
    np.testing.assert_array_equal(
        values.reshape(-1).view(bits), np.asarray(own).view(bits)
    )


# --- host buffers: mapped pages, zeros never written ------------------------------


@pytest.mark.parametrize("eager", [False, True], ids=["init_tree", "eager"])
def test_large_constants_and_draws_equal_their_own_call(eager: bool) -> None:
    """Leaves over the size mapped with their pages in place (and zeros left
    as fresh pages) keep the own call's bits; -0.0 stays signed."""
    key = jax.random.key(2)
    spec = {
        "zeros": (jaxinit.zeros(), (512, 1024), None),
        "minus_zero": (jaxinit.constant(-0.0), (512, 1024), None),
        "ones": (jaxinit.ones(), (1024, 1024), jnp.bfloat16),
        "normal": (jaxinit.normal(), (700, 1024), jnp.float16),
    }
    if eager:
        got = {p: init(key, shape, dtype) for p, (init, shape, dtype) in spec.items()}
    else:
        got = jaxinit.init_tree(key, spec)
    # Not against the jitted call: constant(-0.0) == zeros(), so jit's cache
    # may hand back zeros' program for it.
    assert np.signbit(np.asarray(got.pop("minus_zero"))).all()
    for path, (init, shape, dtype) in spec.items():
        if path not in got:
            continue
        own_key = key if eager else jaxinit.leaf_key(key, path)
        own = jax.jit(init, static_argnums=(1, 2))(own_key, shape, dtype)
        bits = f"u{own.dtype.itemsize}"
        np.testing.assert_array_equal(
            np.asarray(got[path]).view(bits), np.asarray(own).view(bits), path
        )
