"""``jaxinit.flax.init`` against ``module.init`` on the structures real code uses.

Parameters the module changes after creating them, rng dicts, an enclosing
``jax.jit`` or ``eval_shape``, modules without parameters, boxes on the path
that runs the module's own code, and other threads building models meanwhile
(issue 17, items 2, 8 and 10).
"""

import functools
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

flax = pytest.importorskip("flax")
from _stats import assert_ks, assert_same_law  # noqa: E402
from flax import linen as nn, traverse_util  # noqa: E402

import jaxinit  # noqa: E402
import jaxinit.flax as jflax  # noqa: E402
from jaxinit import _flax_init  # noqa: E402
from jaxinit._tree import leaf_key  # noqa: E402

KEY = jax.random.key(0)
WIDTH = 256
STD = 0.05
LOWER = np.tril(np.ones((WIDTH, WIDTH), bool))  # the entries the mask keeps


def _structure(variables: Any) -> dict[Any, tuple[tuple[int, ...], Any]]:
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    return {path: (leaf.shape, leaf.dtype) for path, leaf in leaves}


def _same_structure(ours: Any, theirs: Any) -> None:
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    assert _structure(ours) == _structure(theirs)


def _bits(array: Any) -> np.ndarray:
    host = np.asarray(array)
    return host.view(np.dtype(f"u{host.dtype.itemsize}"))


def _flat(params: Any) -> dict[tuple[str, ...], Any]:
    return traverse_util.flatten_dict(nn.unbox(dict(params)))  # type: ignore[no-any-return]


# --- item 2: what the module did to a parameter after creating it --------------------


def _mask_kernels(variables: Any) -> Any:
    def mask(path: Any, value: Any) -> Any:
        return value * LOWER if path[-1].key == "kernel" else value

    return jax.tree_util.tree_map_with_path(mask, variables)


_MaskedDense = nn.map_variables(
    nn.Dense, "params", trans_out_fn=_mask_kernels, init=True
)


class _ByMapVariables(nn.Module):
    @nn.compact
    def __call__(self, x: Any) -> Any:
        dense = _MaskedDense(WIDTH, kernel_init=jaxinit.normal(std=STD), name="dense")
        return dense(x)


class _ByPutVariable(nn.Module):
    @nn.compact
    def __call__(self, x: Any) -> Any:
        w = self.param("w", jaxinit.normal(std=STD), (WIDTH, WIDTH))
        self.put_variable("params", "w", w * LOWER)
        return x @ self.get_variable("params", "w")


class _RematPut(nn.Module):
    """The same change, made inside ``nn.remat``: the lifted trace hides identity."""

    @nn.compact
    def __call__(self, x: Any) -> Any:
        return nn.remat(_ByPutVariable)(name="inner")(x)


@pytest.mark.parametrize(
    ("module", "path"),
    [
        (_ByMapVariables(), ("dense", "kernel")),
        (_ByPutVariable(), ("w",)),
        (_RematPut(), ("inner", "w")),
    ],
    ids=["map_variables", "put_variable", "remat_put_variable"],
)
def test_changed_parameters_are_what_module_init_stores(module: Any, path: Any) -> None:
    x = jnp.ones((1, WIDTH))
    ours = jflax.init(module, KEY, x)
    theirs = module.init(KEY, x)
    _same_structure(ours, theirs)
    value, reference = (
        np.asarray(_flat(ours["params"])[path]),
        np.asarray(_flat(theirs["params"])[path]),
    )
    assert (reference[~LOWER] == 0).all()  # what module.init stores: masked
    assert (value[~LOWER] == 0).all()  # main stored the raw draw here
    assert_ks(value[LOWER], scipy.stats.norm(0.0, STD))
    assert_same_law(value[LOWER], reference[LOWER])


class _Lifted(nn.Module):
    """Parameters carried out of ``nn.remat`` and ``nn.jit`` unchanged."""

    @nn.compact
    def __call__(self, x: Any) -> Any:
        x = nn.remat(nn.Dense)(32, kernel_init=jaxinit.normal(std=STD), name="r")(x)
        return nn.jit(nn.Dense)(16, bias_init=jaxinit.uniform(), name="j")(x)


def test_unchanged_parameters_of_lifted_calls_keep_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The module's own code never runs: each parameter is its initializer at
    # its leaf key, bit for bit.
    ran: list[Any] = []
    monkeypatch.setattr(_flax_init, "_apply", lambda *args: ran.append(args))
    module, x = _Lifted(), jnp.ones((2, 8))
    ours = jflax.init(module, KEY, x)
    assert ran == []
    _same_structure(ours, module.init(KEY, x))
    inits = {
        ("r", "kernel"): jaxinit.normal(std=STD),
        ("r", "bias"): nn.initializers.zeros_init(),
        ("j", "kernel"): nn.initializers.lecun_normal(),
        ("j", "bias"): jaxinit.uniform(),
    }
    values = _flat(ours["params"])
    assert values.keys() == inits.keys()
    for path, init in inits.items():
        value = values[path]
        expected = init(leaf_key(KEY, path), value.shape, value.dtype)
        np.testing.assert_array_equal(_bits(value), _bits(expected), err_msg=str(path))


class _Ordinary(nn.Module):
    """A small GPT-like stack: embeddings, Dense, LayerNorm."""

    @nn.compact
    def __call__(self, tokens: Any) -> Any:
        normal = jaxinit.normal(std=0.02)
        x = nn.Embed(64, 32, embedding_init=normal, name="wte")(tokens)
        for i in range(2):
            h = nn.LayerNorm(name=f"ln_{i}")(x)
            x = x + nn.Dense(32, kernel_init=normal, name=f"fc_{i}")(h)
        return nn.Dense(8, name="head")(nn.LayerNorm(name="ln_f")(x))


def test_ordinary_models_take_one_abstract_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No second trace (_forwarded) and no run of the module's code (_apply).
    extra: list[str] = []
    monkeypatch.setattr(_flax_init, "_apply", lambda *args: extra.append("apply"))
    monkeypatch.setattr(
        _flax_init, "_forwarded", lambda *args: extra.append("forwarded")
    )
    tokens = jnp.zeros((1, 4), jnp.int32)
    module = _Ordinary()
    _same_structure(jflax.init(module, KEY, tokens), module.init(KEY, tokens))
    assert extra == []


# --- item 8: what module.init takes, where it runs, what it returns ------------------


class _WithDropout(nn.Module):
    @nn.compact
    def __call__(self, x: Any) -> Any:
        x = nn.Dense(16, kernel_init=jaxinit.kaiming_uniform(), name="dense")(x)
        return nn.Dropout(0.5, deterministic=False)(x)


def test_rng_dict_params_stream_keys_the_leaves() -> None:
    params_key, dropout_key = jax.random.key(1), jax.random.key(2)
    rngs = {"params": params_key, "dropout": dropout_key}
    module, x = _WithDropout(), jnp.ones((2, 8))
    ours = jflax.init(module, rngs, x)  # main: TypeError
    _same_structure(ours, module.init(rngs, x))
    kernel = ours["params"]["dense"]["kernel"]
    expected = jaxinit.kaiming_uniform()(
        leaf_key(params_key, ("dense", "kernel")), (8, 16)
    )
    np.testing.assert_array_equal(_bits(kernel), _bits(expected))


def _boxed_dense() -> Any:
    kernel_init = nn.with_partitioning(jaxinit.normal(std=STD), (None, "model"))
    return nn.Dense(16, kernel_init=kernel_init, name="dense")


class _BoxedWithStats(nn.Module):
    @nn.compact
    def __call__(self, x: Any) -> Any:
        return nn.BatchNorm(use_running_average=False, name="bn")(_boxed_dense()(x))


class _Boxed(nn.Module):
    @nn.compact
    def __call__(self, x: Any) -> Any:
        return _boxed_dense()(x)


@pytest.mark.parametrize("module", [_Boxed(), _BoxedWithStats()], ids=["dense", "bn"])
def test_under_jit_and_eval_shape_with_boxed_parameters(module: Any) -> None:
    x = jnp.ones((2, 8))
    eager = jflax.init(module, KEY, x)
    jitted = jax.jit(jflax.init, static_argnums=0)(module, KEY, x)  # main: get_mesh
    _same_structure(jitted, jax.jit(module.init)(KEY, x))
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    abstract = jax.eval_shape(functools.partial(jflax.init, module), KEY, x)
    _same_structure(abstract, jax.eval_shape(module.init, KEY, x))


def test_boxed_jaxinit_kernel_keeps_its_box_beside_batch_norm() -> None:
    # BatchNorm makes the module's own code run (batch_stats): the box survives.
    module, x = _BoxedWithStats(), jnp.ones((2, 8))
    ours = jflax.init(module, KEY, x)
    _same_structure(ours, module.init(KEY, x))
    box = ours["params"]["dense"]["kernel"]
    assert isinstance(box, nn.Partitioned) and box.names == (None, "model")
    expected = jaxinit.normal(std=STD)(leaf_key(KEY, ("dense", "kernel")), (8, 16))
    np.testing.assert_array_equal(_bits(box.value), _bits(expected))


class _NoParams(nn.Module):
    @nn.compact
    def __call__(self, x: Any) -> Any:
        return nn.relu(x) * 2


def test_module_without_parameters_gives_what_module_init_gives() -> None:
    x = jnp.ones((2, 3))
    ours = jflax.init(_NoParams(), KEY, x)
    assert ours == _NoParams().init(KEY, x) == {}  # main: {"params": {}}


# --- item 10: Scope.param in other threads --------------------------------------------


def _blocking_init(turn: threading.Semaphore, ack: threading.Semaphore) -> Any:
    """An initializer that, each time it is traced, lets the other thread run once."""

    def init(key: Any, shape: Any, dtype: Any = jnp.float32) -> Any:
        turn.release()
        assert ack.acquire(timeout=120), "the other thread did not answer"
        return jnp.ones(shape, dtype)

    return init


def test_other_threads_building_models_meanwhile_are_unaffected() -> None:
    turn, ack = threading.Semaphore(0), threading.Semaphore(0)
    slow = _blocking_init(turn, ack)

    class Busy(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            x = nn.Dense(8, kernel_init=jaxinit.normal(), name="dense")(x)
            self.param("slow", slow, (3,))
            return nn.BatchNorm(use_running_average=False)(x)  # the module's code runs

    class Other(nn.Module):  # the same parameter paths as Busy's Dense
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return nn.Dense(8, kernel_init=jaxinit.normal(), name="dense")(x)

    other, x = Other(), jnp.ones((2, 8))
    alone = other.init(KEY, x)
    built: list[Any] = []
    stop = threading.Event()

    def build_meanwhile() -> None:
        while turn.acquire(timeout=120) and not stop.is_set():
            try:
                built.append(other.init(KEY, x))
            except Exception as error:  # main: this call's tracers leak in
                built.append(error)
            finally:
                ack.release()

    thread = threading.Thread(target=build_meanwhile)
    thread.start()
    try:
        jflax.init(Busy(), KEY, x)
    finally:
        stop.set()
        turn.release()
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert len(built) >= 2  # while recording and while handing out values
    for variables in built:
        assert not isinstance(variables, Exception), repr(variables)
        _same_structure(variables, alone)
        for a, b in zip(
            jax.tree.leaves(variables), jax.tree.leaves(alone), strict=True
        ):
            np.testing.assert_array_equal(_bits(a), _bits(b))
