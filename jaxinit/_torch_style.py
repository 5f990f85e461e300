"""Torch-style spellings: ``NAME_(key, tensor_or_shape, ...)`` for every factory.

One generic wrapper over the factories, so code written against torch.nn.init
ports line by line. These default to ``layout="torch"``.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from . import _basic, _scaled, _structured, _timm
from ._typing import Initializer

TorchStyle = Callable[..., jax.Array]


def _shape_and_dtype(owner: str, tensor_or_shape: object) -> tuple[Sequence[int], Any]:
    """A shape as is, or the shape and dtype of an array (values are ignored)."""
    shape = getattr(tensor_or_shape, "shape", None)
    if shape is None:
        return tensor_or_shape, None  # type: ignore[return-value]
    dtype = getattr(tensor_or_shape, "dtype", None)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        # torch tensors: dtype prints as "torch.float32"; no torch import needed.
        resolved = np.dtype(str(dtype).removeprefix("torch."))
    return tuple(shape), resolved


def _torch_style(
    factory: Callable[..., Initializer], example: str, origin: str = "torch.nn.init"
) -> TorchStyle:
    name = factory.__name__

    def init_(
        key: Any,
        tensor_or_shape: object,
        *args: Any,
        layout: str = "torch",
        dtype: Any = None,
        **kwargs: Any,
    ) -> jax.Array:
        shape, inferred = _shape_and_dtype(f"{name}_", tensor_or_shape)
        init = factory(*args, layout=layout, **kwargs)
        return init(key, shape, dtype if dtype is not None else inferred)

    init_.__name__ = init_.__qualname__ = f"{name}_"
    init_.__doc__ = f"""Torch-style ``{origin}.{name}_``: returns a new array.

    ``{name}_(key, tensor_or_shape, *params, layout="torch", dtype=None, ...)`` is
    ``jaxinit.{name}(*params, layout=layout, ...)(key, shape, dtype)``, with the
    parameters, defaults and errors of :func:`jaxinit.{name}`. ``tensor_or_shape``
    is a shape or an array (a JAX or numpy array, or a torch tensor) whose shape
    and dtype are used; its values are ignored, since JAX arrays are immutable.
    Unlike the factory, the layout defaults to torch's ``(out, in, *spatial)``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxinit
        >>> w = jnp.empty((3, 5))
        >>> {example}
        >>> w.shape, w.dtype
        ((3, 5), dtype('float32'))
    """
    return init_


uniform_ = _torch_style(
    _basic.uniform, "w = jaxinit.uniform_(jax.random.key(0), w, -1.0, 1.0)"
)
normal_ = _torch_style(
    _basic.normal, "w = jaxinit.normal_(jax.random.key(0), w, std=0.02)"
)
trunc_normal_ = _torch_style(
    _basic.trunc_normal, "w = jaxinit.trunc_normal_(jax.random.key(0), w, std=0.02)"
)
constant_ = _torch_style(_basic.constant, "w = jaxinit.constant_(None, w, 0.5)")
zeros_ = _torch_style(_basic.zeros, "w = jaxinit.zeros_(None, w)")
ones_ = _torch_style(_basic.ones, "w = jaxinit.ones_(None, w)")
eye_ = _torch_style(_basic.eye, "w = jaxinit.eye_(None, w)")
dirac_ = _torch_style(
    _structured.dirac, "w = jaxinit.dirac_(None, jnp.empty((3, 5, 3)))[..., 1]"
)
xavier_uniform_ = _torch_style(
    _scaled.xavier_uniform,
    "w = jaxinit.xavier_uniform_(jax.random.key(0), w, gain=2.0)",
)
xavier_normal_ = _torch_style(
    _scaled.xavier_normal, "w = jaxinit.xavier_normal_(jax.random.key(0), w)"
)
kaiming_uniform_ = _torch_style(
    _scaled.kaiming_uniform,
    "w = jaxinit.kaiming_uniform_(jax.random.key(0), w, a=5**0.5)",
)
kaiming_normal_ = _torch_style(
    _scaled.kaiming_normal,
    'w = jaxinit.kaiming_normal_(jax.random.key(0), w, mode="fan_out")',
)
orthogonal_ = _torch_style(
    _structured.orthogonal, "w = jaxinit.orthogonal_(jax.random.key(0), w)"
)
sparse_ = _torch_style(
    _structured.sparse, "w = jaxinit.sparse_(jax.random.key(0), w, 0.5)"
)
trunc_normal_tf_ = _torch_style(
    _timm.trunc_normal_tf,
    "w = jaxinit.trunc_normal_tf_(jax.random.key(0), w, std=0.02)",
    "timm.layers",
)
variance_scaling_ = _torch_style(
    _timm.variance_scaling,
    'w = jaxinit.variance_scaling_(jax.random.key(0), w, mode="fan_avg")',
    "timm.layers",
)
lecun_normal_ = _torch_style(
    _timm.lecun_normal, "w = jaxinit.lecun_normal_(jax.random.key(0), w)", "timm.layers"
)
