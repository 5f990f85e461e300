"""Equinox helpers: torch's initialization for Equinox models, and torch weights.

``reinit`` re-draws a model's parameters by rules on layer types or parameter
paths, ``torch_init`` applies PyTorch's layer defaults to every layer, and
``from_torch`` / ``to_torch`` move weights between an Equinox model and a torch
state dict (numpy only, no torch import). Equinox stores weights as torch does,
``(out, in, *spatial)``, so layout-dependent initializers are applied in torch
layout. Equinox is imported only when one of these functions runs; without it
they raise an ImportError that says ``pip install 'jaxinit[equinox]'``.
"""

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from . import _eqx_convert, _eqx_reinit
from ._reinit import param_key as param_key

__all__ = ["from_torch", "param_key", "reinit", "to_torch", "torch_init", "torch_rules"]


def reinit(model: Any, key: jax.Array, rules: Mapping[Any, Any]) -> Any:
    """Returns a copy of an Equinox model with parameters re-drawn by rules.

    The Equinox counterpart of torch's ``model.apply(init_fn)``. ``rules`` maps

    - a layer type (or a tuple of types) to ``{name: initializer}``, where
      names are paths relative to the layer (``"weight"``, ``"query_proj/bias"``),
      or to a function ``(module, shapes) -> {name: initializer}`` that sees
      the layer and the shapes of every leaf under it;
    - a regular expression (``str``), matched in full against the parameter path:
      attribute names and list indices joined by ``/`` (``"layers/0/weight"``;
      ``r"bias"`` does not match ``bias_n``).

    Path patterns match parameters (floating arrays outside
    ``eqx.nn.StateIndex``); a layer rule may also name state by its path in the
    layer (``{eqx.nn.BatchNorm: {"batch_state_index/init/0": zeros()}}``). When
    several rules name one leaf, a path rule beats a layer rule, the outer
    layer's rule beats an inner one's (``MultiheadAttention`` over its
    ``Linear`` projections, as torch's ``apply`` lets the parent write last),
    and a later rule beats an earlier one.

    The whole model is accounted for: every leaf is drawn by a rule, derived by
    a wrapper, carried over (a concrete leaf no rule names: the same array), or,
    if it is abstract (``eqx.filter_eval_shape``), given its start:
    ``BatchNorm``'s running statistics 0 and 1, its counter 0 and its "first
    call" flag set, a PRNG key ``param_key(key, path)``. Any other abstract leaf
    (a raw ``cls_token`` array no rule names) makes the call raise one
    ``ValueError`` listing them all.

    A weight tied by ``eqx.nn.Shared`` is found under its own path and under
    every slot ``where`` names (a ``get`` that computes, such as a transpose,
    is not followed); it is drawn once, with its own path's key, the rules of
    the layer that holds it first, and the model keeps the ``Shared``.
    ``eqx.nn.WeightNorm``'s ``g`` is the weight's norm over every axis but
    ``axis`` (torch's ``weight_norm``: the effective weight is the drawn one),
    and ``eqx.nn.SpectralNorm``'s ``u`` and ``v`` are torch's start
    (normalized ``N(0, 1)``, 15 power iterations on the new weight), whenever
    the wrapped weight is drawn or those leaves are abstract.

    Layout: jaxinit's layout-dependent initializers (``kaiming_*``,
    ``xavier_*``, ``orthogonal``, ``sparse``, ``dirac``) read Equinox's weights
    in torch layout ``(out, in, *spatial)``, unless they name ``in_axis``,
    ``out_axis`` or ``batch_axis`` themselves; any other initializer (from
    ``jax.nn.initializers``) is called as Flax calls a ``kernel_init``, on the
    Flax layout ``(*spatial, in, out)``, and its draw is transposed back, so
    ``lecun_normal()`` counts torch's fan-in. Layers stacked by
    ``eqx.filter_vmap`` have leading axes on every weight: for the built-in
    layers these are copies, each drawn with the law of one (batch axes for
    jaxinit's layout initializers; any other initializer is drawn copy by copy,
    copy ``i`` with ``jax.random.fold_in(param_key(key, path), i)``). A raw array
    of your own in a stacked module cannot show which axes are copies: give its
    rule ``batch_axis``.

    Each leaf's key is ``param_key(key, path)``, so adding a layer leaves the
    other layers' values unchanged. The input may be abstract, sharded (each
    new leaf keeps its old sharding), or traced (``eqx.filter_jit``).

    Args:
        model: an Equinox module (any pytree of modules).
        key: a PRNG key.
        rules: the rules described above.

    Returns:
        The new model; the input is untouched.

    Raises:
        TypeError: malformed rules.
        ValueError: abstract leaves that no rule draws and that have no start
            (the message lists them all and how to write a rule).
        ImportError: equinox is not installed.

    Examples:
        >>> import jax, equinox as eqx, jaxinit, jaxinit.equinox
        >>> keys = jax.random.split(jax.random.key(0), 2)
        >>> model = eqx.nn.Sequential([eqx.nn.Linear(4, 8, key=keys[0]),
        ...                            eqx.nn.Linear(8, 2, key=keys[1])])
        >>> new = jaxinit.equinox.reinit(model, jax.random.key(1), {
        ...     r"layers/0/weight": jaxinit.orthogonal(),
        ...     eqx.nn.Linear: {"bias": jaxinit.constant(0.5)},
        ... })
        >>> new.layers[1].weight is model.layers[1].weight  # no rule: untouched
        True
        >>> new.layers[0].bias.tolist() == [0.5] * 8
        True
    """
    return _eqx_reinit.run("reinit", model, key, [rules])


def torch_init(
    model: Any, key: jax.Array, rules: Mapping[Any, Any] | None = None
) -> Any:
    """Returns a copy of an Equinox model initialized as torch initializes it.

    ``reinit`` with ``torch_rules()``: each layer's ``reset_parameters`` from
    ``jaxinit.torch_defaults``. ``Linear`` and ``Conv`` (groups included):
    ``U(+-1/sqrt(fan_in))``; ``ConvTranspose``: torch's fan from the output
    channels, ``U(+-1/sqrt(out/groups * prod(kernel)))``; ``MultiheadAttention``:
    torch's packed ``xavier_uniform`` in-projection (separate ones when key or
    value sizes differ), zero biases, ``Linear`` output projection;
    ``Embedding``: ``N(0, 1)``; ``GRUCell``/``LSTMCell``: ``U(+-1/sqrt(H))``
    weights, each Equinox bias drawn as the sum of the torch biases it stands for;
    ``LayerNorm``, ``GroupNorm``, ``RMSNorm``, ``BatchNorm``: ones and zeros
    (``BatchNorm``'s running statistics back to 0 and 1 and its counter to 0, as
    torch's ``reset_parameters``); ``PReLU``: 0.25. Containers (``Sequential``,
    ``MLP``, lists, custom modules) are walked; weight and spectral norm follow
    the weight they wrap; other concrete parameters are left as they are, and
    abstract ones raise the one error ``reinit`` describes.

    Args:
        model: an Equinox module.
        key: a PRNG key.
        rules: extra rules (as for ``reinit``) that win over torch's defaults at the
            same layer.

    Returns:
        The new model.

    Examples:
        >>> import jax, equinox as eqx, jaxinit.equinox
        >>> layer = eqx.nn.ConvTranspose2d(4, 8, 3, key=jax.random.key(0))
        >>> layer = jaxinit.equinox.torch_init(layer, jax.random.key(1))
        >>> bound = 1 / (8 * 9) ** 0.5  # torch's fan: out_channels * kernel
        >>> layer.weight.shape, bool((abs(layer.weight) <= bound).all())
        ((8, 4, 3, 3), True)
    """
    tiers = [_eqx_reinit.torch_rules(), dict(rules or {})]
    return _eqx_reinit.run("torch_init", model, key, tiers)


def torch_rules() -> dict[Any, Any]:
    """Torch's ``reset_parameters`` defaults as rules on Equinox layer types.

    Returns:
        The rules ``torch_init`` applies, for use or extension with ``reinit``.

    Examples:
        >>> import equinox as eqx, jaxinit.equinox
        >>> eqx.nn.Linear in jaxinit.equinox.torch_rules()
        True
    """
    return _eqx_reinit.torch_rules()


def from_torch(model: Any, state_dict: Mapping[str, Any], state: Any = None) -> Any:
    """Returns a copy of an Equinox model holding a torch state dict's weights.

    Torch names are the Equinox attribute names, list indices and dict keys
    joined by ``.`` (an ``eqx.nn.Sequential``'s ``layers`` is left out, as
    torch's ``Sequential`` names its children by index; layers in a dict field
    are named as in torch's ``ModuleDict``), with torch's names inside each
    layer: ``weight``/``bias``; ``in_proj_weight`` (or ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight``), ``in_proj_bias``, ``out_proj.weight``,
    ``out_proj.bias`` for attention; ``weight_ih``, ``weight_hh``, ``bias_ih``,
    ``bias_hh`` for the cells. A ``ConvTranspose`` weight is flipped in space with
    its input and output channels swapped per group; an LSTM bias is torch's
    ``bias_ih + bias_hh``, a GRU's ``[b_ir + b_hr, b_iz + b_hz, b_in]`` with
    ``bias_n = b_hn``. Values are cast to each Equinox parameter's dtype.

    Tied weights (``eqx.nn.Shared``): its ``pytree`` is left out of the names
    (``Shared((embedding, head), ...)`` in field ``tied`` is ``tied.0.weight``,
    ``tied.1.weight``, a torch ``ModuleList``), and a tied parameter is read
    under each of its names, as torch's ``state_dict()`` lists it (its
    ``named_parameters()`` lists it once); the values must agree.

    BatchNorm's running statistics (``running_mean``, ``running_var``,
    ``num_batches_tracked``) go into ``state`` when one is given; without a
    state they are accepted and ignored. In ``batch`` mode the state keeps the
    count and the debiased sums Equinox's inference divides back, so inference
    uses torch's running statistics; in ``ema`` mode it keeps the statistics
    (``num_batches_tracked`` 0 marks them unset, as after ``make_with_state``).

    Args:
        model: an Equinox module (concrete or abstract).
        state_dict: ``{torch name: array}``, numpy arrays or anything
            ``np.asarray`` reads (``tensor.numpy()`` for torch tensors).
        state: the model's ``eqx.nn.State`` (``eqx.nn.make_with_state``), or
            None.

    Returns:
        The new model, or ``(model, state)`` when ``state`` is given; the inputs
        are untouched.

    Raises:
        KeyError: a tensor the model needs is missing, or one is left over; the
            message names the torch key(s).
        ValueError: a tensor's shape differs (the message names the key and both
            shapes), or tied tensors differ. Nothing is loaded when any check
            fails.
        TypeError: ``state_dict`` is not a mapping, or ``state`` not a State.

    Examples:
        >>> import jax, numpy as np, equinox as eqx, jaxinit.equinox
        >>> layer = eqx.nn.Linear(3, 2, key=jax.random.key(0))
        >>> weights = {"weight": np.ones((2, 3), np.float32),
        ...            "bias": np.zeros(2, np.float32)}
        >>> layer = jaxinit.equinox.from_torch(layer, weights)
        >>> layer(np.ones(3, np.float32)).tolist()
        [3.0, 3.0]
        >>> norm, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(
        ...     2, "batch", mode="batch")
        >>> stats = {"weight": np.ones(2, np.float32), "bias": np.zeros(2, np.float32),
        ...          "running_mean": np.array([1.0, -1.0], np.float32),
        ...          "running_var": np.array([4.0, 0.25], np.float32),
        ...          "num_batches_tracked": np.array(10)}
        >>> norm, state = jaxinit.equinox.from_torch(norm, stats, state)
        >>> out, _ = norm(np.array([3.0, 0.0], np.float32), state, inference=True)
        >>> np.round(out, 3).tolist()  # (x - running_mean) / sqrt(running_var + eps)
        [1.0, 2.0]
    """
    return _eqx_convert.from_torch(model, state_dict, state)


def to_torch(model: Any, state: Any = None) -> dict[str, np.ndarray]:
    """The model's weights as a torch state dict of numpy arrays.

    The inverse of ``from_torch``, names and layouts as described there (a
    tied parameter under each of its names). The result loads into the torch
    twin with ``load_state_dict(..., strict=True)`` (via ``torch.from_numpy``):
    torch's split biases are written as ``bias_ih`` = the Equinox bias and
    ``bias_hh`` = zeros (GRU: ``bias_n`` in its new-gate block), which gives the
    same forward pass. BatchNorm's running statistics come from ``state``
    (``batch`` mode: the statistics Equinox's inference uses, and its count;
    ``ema`` mode: the statistics, with ``num_batches_tracked`` 1 once set, 0
    and torch's fresh ones before); without a state they are torch's fresh ones
    (mean 0, variance 1, no batches tracked).

    Args:
        model: a concrete Equinox module.
        state: the model's ``eqx.nn.State``, or None.

    Returns:
        ``{torch name: numpy array}``.

    Raises:
        TypeError: the model is abstract (``jax.ShapeDtypeStruct`` parameters,
            from ``eqx.filter_eval_shape``: the message names them), or
            ``state`` is not a State.

    Examples:
        >>> import jax, equinox as eqx, jaxinit.equinox
        >>> layer = eqx.nn.Conv2d(2, 4, 3, key=jax.random.key(0))
        >>> {k: v.shape for k, v in jaxinit.equinox.to_torch(layer).items()}
        {'weight': (4, 2, 3, 3), 'bias': (4,)}
        >>> norm = eqx.nn.BatchNorm(3, "batch", mode="batch")
        >>> jaxinit.equinox.to_torch(norm)["running_var"].tolist()
        [1.0, 1.0, 1.0]
    """
    return _eqx_convert.to_torch(model, state)
