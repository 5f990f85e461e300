"""Flax helpers: re-initialize whole models and port torch weights.

``reinit`` re-draws a model's parameters by rules on module types or parameter
paths, ``torch_init`` applies PyTorch's layer defaults to every layer, and the
``*_from_torch`` / ``*_to_torch`` functions convert weights between torch's and
Flax's layouts (numpy only). Flax is imported only when a model is re-initialized
(without Flax, those functions raise an ImportError that says
``pip install 'jaxinit[flax]'``); ``import jaxinit`` never imports it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import jax

from . import _flax_init, _flax_reinit, _optional
from ._flax_convert import (
    conv_from_torch as conv_from_torch,
    conv_to_torch as conv_to_torch,
    conv_transpose_from_torch as conv_transpose_from_torch,
    conv_transpose_to_torch as conv_transpose_to_torch,
    embedding_from_torch as embedding_from_torch,
    embedding_to_torch as embedding_to_torch,
    gru_from_torch as gru_from_torch,
    gru_to_torch as gru_to_torch,
    linear_from_torch as linear_from_torch,
    linear_to_torch as linear_to_torch,
    lstm_from_torch as lstm_from_torch,
    lstm_to_torch as lstm_to_torch,
    multihead_attention_from_torch as multihead_attention_from_torch,
    multihead_attention_to_torch as multihead_attention_to_torch,
)
from ._flax_reinit import torch_rules as torch_rules
from ._reinit import param_key as param_key

__all__ = [
    "conv_from_torch",
    "conv_to_torch",
    "conv_transpose_from_torch",
    "conv_transpose_to_torch",
    "embedding_from_torch",
    "embedding_to_torch",
    "gru_from_torch",
    "gru_to_torch",
    "init",
    "linear_from_torch",
    "linear_to_torch",
    "lstm_from_torch",
    "lstm_to_torch",
    "multihead_attention_from_torch",
    "multihead_attention_to_torch",
    "param_key",
    "reinit",
    "torch_init",
    "torch_rules",
]


def init(
    module: Any,
    key: Any,
    *args: Any,
    method: Any = None,
    **kwargs: Any,
) -> Any:
    """A linen module's variables, as ``module.init(key, *args)`` makes them, fast.

    The drop-in for ``module.init`` (and ``jax.jit(module.init)``) when the
    first call's time matters. It returns the same collections, structure,
    shapes and dtypes (``{}`` for a module without variables), and every
    parameter is drawn from the initializer its module declares, with the key
    ``leaf_key(key, path)`` (``param_key``): the laws are ``module.init``'s,
    the values are not. Parameters with a jaxinit initializer (also inside
    ``nn.with_partitioning``, returned boxed as ``module.init`` returns them) are
    drawn by ``init_tree``'s shape-independent programs; any other initializer
    (Flax's ``LayerNorm`` ones and zeros, ``lecun_normal``) is called itself, all
    of them in one jit.

    How it sees the initializers: one abstract ``module.init`` (``jax.eval_shape``,
    no compute) records the initializer and arguments each parameter is created
    with, and checks that the value the module finally stores is that
    initializer's output. What that cannot stand in for is left to the module's
    own code, in one jit of ``module.init`` given the parameters drawn so far:
    collections other than ``params`` (``batch_stats``, caches), parameters the
    module changes after creating them (``self.put_variable`` after
    ``self.param``, ``nn.map_variables`` with ``trans_out_fn``: the stored,
    changed value is what comes back), parameters made under lifted transforms
    that stack or split them (``nn.scan``, ``nn.vmap``), initializers that read
    the inputs' values. Such parameters are drawn from the module's ``params``
    stream rather than ``leaf_key``. Parameters that ``nn.remat`` or ``nn.jit``
    carry out unchanged keep the fast path.

    It works under ``jax.jit`` (``jax.jit(jaxinit.flax.init, static_argnums=0)``)
    and ``jax.eval_shape``, and other threads may build Flax models meanwhile:
    linen's ``Scope.param`` serves this call only in the calling thread (a
    context variable), never process-wide. Under a mesh (``jax.set_mesh``),
    outside any trace, parameters that a jaxinit initializer draws inside
    ``nn.with_partitioning`` come back boxed and drawn straight into the
    sharding their names give, each device making only its own shards.

    Args:
        module: a linen ``Module``.
        key: what ``module.init`` takes: a PRNG key (the ``params`` stream), or
            a dict of keys by stream (``{"params": k, "dropout": k2}``), passed
            whole to the module's code; the ``params`` key is the ``key`` of
            ``leaf_key``.
        *args: the example inputs ``module.init`` takes.
        method: the method to call (default ``__call__``), as for ``module.init``.
        **kwargs: keyword arguments for that call.

    Returns:
        The variables, a dict of collections (a ``FrozenDict`` if ``module.init``
        returns one).

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit, jaxinit.flax
        >>> from flax import linen as nn
        >>> module = nn.Sequential([
        ...     nn.Dense(16, kernel_init=jaxinit.kaiming_uniform()),
        ...     nn.LayerNorm(),
        ... ])
        >>> x = jnp.ones((1, 8))
        >>> variables = jaxinit.flax.init(module, jax.random.key(0), x)
        >>> params = variables["params"]
        >>> params["layers_0"]["kernel"].shape, params["layers_1"]["scale"].dtype
        ((8, 16), dtype('float32'))
        >>> bool((params["layers_1"]["scale"] == 1).all())
        True
        >>> bound = (6 / 8) ** 0.5
        >>> bool((abs(params["layers_0"]["kernel"]) <= bound).all())
        True
        >>> rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        >>> same = jaxinit.flax.init(module, rngs, x)["params"]["layers_0"]["kernel"]
        >>> bool((same == params["layers_0"]["kernel"]).all())
        True
    """
    _optional.require("flax", "flax", "jaxinit.flax.init")
    return _flax_init.init(module, key, args, kwargs, method)


def reinit(
    model: Any,
    key: jax.Array,
    rules: Mapping[Any, Any],
    *,
    variables: Mapping[str, Any] | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    method: Any = None,
) -> Any:
    """Re-draws the parameters of an existing Flax model by rules.

    The Flax counterpart of torch's ``model.apply(init_fn)``. ``rules`` maps

    - a module type (or a tuple of types) to ``{name: initializer}``, where
      names are paths relative to the module (``"kernel"``, ``"ii/kernel"``), or to
      a function ``(module, shapes) -> {name: initializer}`` that sees the
      module and the shapes of every leaf under it;
    - a regular expression (``str``), matched in full against the parameter path
      joined by ``/`` (``"encoder/layers/0/bias"``; ``r"bias"`` does not match
      ``bias_n``), to an initializer.

    Path patterns match parameters (nnx ``Param``, linen's ``params``); a module
    rule may also name a state leaf (``{nn.BatchNorm: {"mean": zeros()}}``).
    When several rules name one leaf, a path rule beats a module rule, the outer
    module's rule beats an inner one's (torch's ``apply`` visits children
    first, so the parent writes last), and a later rule beats an earlier one.
    Flax cells and attention are made of ``Dense``/``Linear`` submodules, which
    a ``Dense`` rule matches too unless a rule for the enclosing cell claims
    them.

    The whole model is accounted for: after the call every leaf (parameters,
    BatchNorm statistics, RNG state, caches) is drawn by a rule, derived by a
    wrapper, carried over unchanged (a concrete leaf no rule names), or, if it
    is abstract (``nnx.eval_shape``, ``jax.eval_shape(module.init, ...)``),
    given its start: BatchNorm's running mean 0 and variance 1 (torch's and
    Flax's), RNG counters and decoding caches 0, an RNG key
    ``param_key(key, path)``. An abstract leaf with none of these (a
    ``cls_token`` made with ``self.param``) makes the call raise one
    ``ValueError`` listing every such leaf; nothing is changed then.

    Shared parameters are found under every path that reaches them (nnx lists a
    tied ``Param`` once; linen's ``nn.share_scope`` puts two modules at one
    path), and rules match under any of them. A shared leaf is drawn once, with
    the key of its first path (nnx: in attribute definition order, e.g.
    ``wte/embedding`` for ``lm_head = Head(self.wte.embedding)``), and stays
    shared; the module rules along that path come before the other owners'
    (torch's ``b.weight = a.weight`` keeps ``a``'s tensor, as ``a`` made it).

    Reparametrizing wrappers are rules of their own, applied when the weight
    they wrap is drawn or their leaves are abstract (a rule naming those leaves
    wins): ``WeightNorm``'s scale becomes the weight's norm over the
    non-feature axes, so the layer's effective weight is the one drawn (torch's
    ``weight_norm``; Flax alone starts the scale at ones), and
    ``SpectralNorm``'s ``u`` and ``sigma`` are torch's start
    (``parametrizations.spectral_norm``: normalized ``N(0, 1)`` vectors, 15
    power iterations on the new weight).

    Rules describe one layer, as a Flax ``kernel_init`` does. Layers stacked by
    ``nnx.vmap``, linen ``nn.scan`` or ``nn.vmap`` hold their copies on leading
    axes: a function rule sees one copy's shapes, a jaxinit layout initializer
    takes those axes as ``batch_axis``, and any other initializer (one from
    ``jax.nn.initializers``, ``jaxinit.eye()``) draws each copy on its own
    shape, copy ``i`` with ``jax.random.fold_in(param_key(key, path), i)``. The
    copies are counted from what each module sees of its own variables (linen:
    any module, ``self.param`` included); in nnx from the ranks of
    ``Linear``, ``LinearGeneral``, ``Conv``, ``ConvTranspose`` and ``Embed`` (and
    so of the cells and attention built from them). nnx does not record which
    axes ``nnx.vmap`` added, so a bare ``nnx.Param`` of your own inside a
    stacked module counts its copies as its own axes: write its rule with
    ``batch_axis=0``.

    Each leaf's key is ``param_key(key, path)``, a fold-in of a hash of its
    path, so adding a layer does not change the other layers' values (linen's
    automatic names such as ``Dense_1`` do shift when a layer of the same type is
    inserted before; name layers to avoid that). Works under ``jax.jit`` (linen)
    and ``nnx.jit`` (nnx).

    Sharded models keep every parameter's sharding, drawn in place by each
    device (``init_tree(..., out_shardings=...)``), never gathered on one
    device: a concrete parameter keeps its ``.sharding``; an abstract nnx one
    (``nnx.eval_shape`` under ``jax.set_mesh``) gets the ``NamedSharding`` it
    names, on the current mesh; a linen value boxed by ``nn.with_partitioning``
    comes back in its box, placed by its names on the current mesh. The values
    are those of the same model unsharded.

    Args:
        model: an ``nnx.Module`` (updated in place), or a linen ``Module``.
        key: a PRNG key.
        rules: the rules described above.
        variables: linen only: the module's variables, every collection (concrete
            or abstract).
        args: linen only: example inputs for ``module.apply``. linen modules
            exist only while called, so reinit calls the module abstractly
            (``jax.eval_shape``, no compute) and records which module owns which
            parameter (``nn.intercept_methods``).
        kwargs: linen only: keyword arguments for that call.
        method: linen only: the method to call (default ``__call__``).

    Returns:
        None for an nnx model; the new variables for a linen module.

    Raises:
        TypeError: malformed rules; linen without ``variables``.
        ValueError: abstract leaves that no rule draws and that have no start
            (the message lists them all and how to write a rule).

    Examples:
        >>> import jax, jaxinit, jaxinit.flax
        >>> from flax import nnx
        >>> model = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)),
        ...                        nnx.Linear(8, 2, rngs=nnx.Rngs(1)))
        >>> head = model.layers[1].kernel[...]
        >>> jaxinit.flax.reinit(model, jax.random.key(0), {
        ...     r"layers/0/kernel": jaxinit.orthogonal(),
        ...     nnx.Linear: {"bias": jaxinit.constant(0.5)},
        ... })
        >>> bool((model.layers[1].kernel[...] == head).all())  # no rule: untouched
        True
        >>> model.layers[0].bias[...].tolist() == [0.5] * 8
        True
    """
    return _flax_reinit.run(
        "reinit", model, key, [rules], variables, args, kwargs, method
    )


def torch_init(
    model: Any,
    key: jax.Array,
    rules: Mapping[Any, Any] | None = None,
    *,
    variables: Mapping[str, Any] | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    method: Any = None,
) -> Any:
    """Re-draws every parameter as the matching torch layer would initialize it.

    ``reinit`` with ``torch_rules()``, the torch defaults of
    ``jaxinit.torch_defaults`` as rules on linen and nnx types: ``Dense``/``Linear``
    and ``Conv`` (``U(+-1/sqrt(fan_in))`` weight and bias, groups included),
    ``ConvTranspose`` (torch's output-side fan, either ``transpose_kernel``),
    ``Embed`` (``N(0, 1)``), attention (packed or separate in-projection, ``Linear``
    out projection, zero biases), the LSTM/GRU/simple cells (``U(+-1/sqrt(H))``, each
    Flax bias drawn as the torch biases it stands for), the norms (ones, zeros;
    ``BatchNorm``'s running statistics back to mean 0, variance 1, as torch's
    ``reset_parameters`` resets them) and ``PReLU`` (0.25). Weight and spectral
    norm follow the weight they wrap, as in ``reinit``. Other modules'
    parameters are untouched when concrete; abstract ones raise the one error
    ``reinit`` describes. Padding rows of embeddings are a torch *argument*,
    not a type: add a rule, e.g.
    ``{r".*/embedding": torch_defaults.embedding(n, padding_idx=0)["embedding_init"]}``.

    Args:
        model: an ``nnx.Module`` (updated in place), or a linen ``Module``.
        key: a PRNG key.
        rules: extra rules (as for ``reinit``) that win over the torch defaults at
            the same module.
        variables: linen only, as for ``reinit``.
        args: linen only, as for ``reinit``.
        kwargs: linen only, as for ``reinit``.
        method: linen only, as for ``reinit``.

    Returns:
        None for an nnx model; the new variables for a linen module.

    Raises:
        ValueError: abstract leaves that no rule draws and that have no start.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit.flax
        >>> from flax import linen as nn
        >>> module = nn.Dense(8)
        >>> x = jnp.ones((1, 64))
        >>> variables = module.init(jax.random.key(0), x)
        >>> variables = jaxinit.flax.torch_init(module, jax.random.key(1),
        ...                                     variables=variables, args=(x,))
        >>> bias = variables["params"]["bias"]
        >>> bool((abs(bias) <= 1 / 8).all()), bool((bias != 0).all())
        (True, True)
    """
    _optional.require("flax", "flax", "jaxinit.flax.torch_init")
    tiers = [_flax_reinit.torch_rules(), dict(rules or {})]
    return _flax_reinit.run(
        "torch_init", model, key, tiers, variables, args, kwargs, method
    )
