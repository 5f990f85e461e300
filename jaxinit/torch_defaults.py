"""PyTorch's layer defaults as Flax keyword arguments, one function per torch layer.

Each function returns the initializer keyword arguments that make a Flax layer (linen
or nnx; they use the same names) start from the same distribution as the torch layer
of the same sizes, e.g. ``nnx.Linear(784, 256, **torch_defaults.linear(784),
rngs=rngs)``. The initializers are jaxinit values (comparable, hashable, printable).
Torch's bias bounds depend on the *weight's* fan-in, which a Flax ``bias_init`` never
sees, so every function takes the torch layer's sizes and captures the fan.

This module does not import Flax. To apply these defaults to a model that already
exists, see ``jaxinit.flax.torch_init``.
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from . import _basic, _checks, _scaled
from ._base import InitializerBase
from ._typing import Initializer

__all__ = [
    "AttentionInits",
    "DenseInits",
    "EmbedInits",
    "NormInits",
    "PReLUInits",
    "RecurrentInits",
    "batch_norm",
    "conv",
    "conv_transpose",
    "embedding",
    "group_norm",
    "gru_cell",
    "layer_norm",
    "linear",
    "lstm_cell",
    "multihead_attention",
    "prelu",
    "rnn_cell",
]

_SQRT5 = math.sqrt(5.0)


class DenseInits(TypedDict):
    """Keyword arguments of Flax ``Dense``/``Linear``, ``Conv``, ``ConvTranspose``."""

    kernel_init: Initializer
    bias_init: Initializer


class EmbedInits(TypedDict):
    """Keyword arguments of Flax ``Embed``."""

    embedding_init: Initializer


class AttentionInits(TypedDict):
    """Keyword arguments of the Flax attention modules (linen and nnx)."""

    kernel_init: Initializer
    bias_init: Initializer
    out_kernel_init: Initializer
    out_bias_init: Initializer


class RecurrentInits(TypedDict):
    """Keyword arguments of the Flax recurrent cells (linen and nnx alike)."""

    kernel_init: Initializer
    recurrent_kernel_init: Initializer
    bias_init: Initializer


class NormInits(TypedDict):
    """Keyword arguments of Flax ``LayerNorm``, ``GroupNorm``, ``BatchNorm``."""

    scale_init: Initializer
    bias_init: Initializer


class PReLUInits(TypedDict):
    """Keyword arguments of Flax ``PReLU`` (its slope init is a float)."""

    negative_slope_init: float


def _symmetric_uniform(bound: float) -> Initializer:
    """Torch's ``U(-bound, bound)``, or exact zeros when the bound is 0."""
    if bound == 0.0:
        return _basic.zeros()
    return _basic.uniform(-bound, bound)


def _fan_in_bound(fan_in: int) -> float:
    # torch: ``bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0``.
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _positive(owner: str, name: str, value: object, *, minimum: int = 1) -> int:
    number = _checks.as_index(value)
    if number is None:
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if number < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return number


def _kernel_size(owner: str, kernel_size: object) -> tuple[int, ...]:
    if isinstance(kernel_size, int | np.integer) or not isinstance(
        kernel_size, Sequence
    ):
        # Flax reads an int kernel_size as a 1-D kernel; torch's Conv2d(.., 3) means
        # 3x3. Refuse to guess which one was meant.
        raise TypeError(
            f"{owner}: kernel_size must be a sequence such as (3, 3), got "
            f"{kernel_size!r} (an int is ambiguous: torch's Conv2d(c, d, 3) is 3x3, "
            "Flax's Conv(d, 3) is 1-D)"
        )
    return tuple(_positive(owner, "kernel_size", k, minimum=0) for k in kernel_size)


def _groups(owner: str, groups: object, *channels: tuple[str, int]) -> int:
    number = _checks.as_index(groups)
    if number is None:
        raise TypeError(f"{owner}: groups must be a positive integer, got {groups!r}")
    if number <= 0:
        raise ValueError(f"{owner}: groups must be a positive integer, got {groups!r}")
    for name, count in channels:
        if count % number:
            raise ValueError(f"{owner}: {name} must be divisible by groups")
    return number


def linear(in_features: int) -> DenseInits:
    """Torch ``nn.Linear(in_features, out)``'s init for Flax ``Dense``/``Linear``.

    Torch draws the weight with ``kaiming_uniform_(W, a=sqrt(5))``, i.e.
    ``U(-1/sqrt(in), 1/sqrt(in))``, and the bias from ``U(-1/sqrt(in), 1/sqrt(in))``
    with the weight's fan-in. The kernel init reads its fan from the Flax kernel
    ``(in, out)``; the bias bound is fixed here from ``in_features``.

    Args:
        in_features: the layer's input size (torch's ``in_features``).

    Returns:
        ``kernel_init`` and ``bias_init``.

    Examples:
        >>> import math
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> layer = nnx.Linear(64, 32, **torch_defaults.linear(64), rngs=nnx.Rngs(0))
        >>> bool((abs(layer.bias[...]) <= 1 / 8).all())
        True
        >>> torch_defaults.linear(64)["bias_init"]
        jaxinit.uniform(a=-0.125, b=0.125, dtype=None)
    """
    fan_in = _positive("linear", "in_features", in_features, minimum=0)
    return DenseInits(
        kernel_init=_scaled.kaiming_uniform(a=_SQRT5),
        bias_init=_symmetric_uniform(_fan_in_bound(fan_in)),
    )


def conv(
    in_channels: int, kernel_size: Sequence[int], *, groups: int = 1
) -> DenseInits:
    """Torch ``nn.Conv{1,2,3}d(in_channels, out, kernel_size, groups=g)``'s init.

    For Flax ``Conv`` (pass ``feature_group_count=groups`` to Flax too; depthwise is
    ``groups == in_channels``). Torch's fan-in is ``(in_channels / groups) *
    prod(kernel_size)``: the kernel init reads it from the Flax kernel
    ``(*kernel_size, in/groups, out)``; the bias bound is fixed here.

    Args:
        in_channels: input channels of the whole layer.
        kernel_size: the kernel's spatial size, as a sequence (``(3, 3)`` for 2-D).
        groups: torch's ``groups``.

    Returns:
        ``kernel_init`` and ``bias_init``.

    Raises:
        TypeError: ``kernel_size`` is an int (ambiguous between torch and Flax).
        ValueError: ``groups`` is not positive or does not divide ``in_channels``.

    Examples:
        >>> import jaxinit
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> kwargs = torch_defaults.conv(32, (3, 3), groups=2)
        >>> layer = nnx.Conv(32, 64, (3, 3), feature_group_count=2, **kwargs,
        ...                  rngs=nnx.Rngs(0))
        >>> layer.kernel.shape
        (3, 3, 16, 64)
        >>> kwargs["bias_init"] == jaxinit.uniform(-1 / 12, 1 / 12)  # fan-in 16 * 9
        True
    """
    owner = "conv"
    channels = _positive(owner, "in_channels", in_channels, minimum=0)
    kernel = _kernel_size(owner, kernel_size)
    group_count = _groups(owner, groups, ("in_channels", channels))
    fan_in = channels // group_count * math.prod(kernel)
    return DenseInits(
        kernel_init=_scaled.kaiming_uniform(a=_SQRT5),
        bias_init=_symmetric_uniform(_fan_in_bound(fan_in)),
    )


def conv_transpose(
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int],
    *,
    groups: int = 1,
    transpose_kernel: bool = False,
) -> DenseInits:
    """Torch ``nn.ConvTranspose{1,2,3}d(in, out, kernel_size, groups=g)``'s init.

    Torch's weight is ``(in, out/g, *k)``, so its "fan-in" is ``(out/g) * prod(k)``
    (the output side, as torch computes it). On a Flax ``ConvTranspose`` kernel that
    is the kernel's *output* axis: ``(*k, in, out)`` with the default
    ``transpose_kernel=False``, ``(*k, out, in)`` with ``transpose_kernel=True``;
    the returned kernel init picks the right axis for the setting you pass.

    Flax's ``ConvTranspose`` has no groups. With ``groups > 1`` the kernel is meant
    for a grouped transposed convolution written with
    ``lax.conv_general_dilated(..., feature_group_count=groups)`` on a kernel
    ``(*k, in/g, out)``; the returned kernel init is then the fixed law
    ``U(-1/sqrt((out/g) * prod(k)), ...)``, right for any kernel layout.

    Args:
        in_channels: torch's ``in_channels``.
        out_channels: torch's ``out_channels``.
        kernel_size: the kernel's spatial size, as a sequence.
        groups: torch's ``groups``.
        transpose_kernel: the Flax ``ConvTranspose`` setting the kernel is for.

    Returns:
        ``kernel_init`` and ``bias_init``.

    Raises:
        TypeError: ``kernel_size`` is an int.
        ValueError: ``groups`` is not positive or does not divide both channel counts.

    Examples:
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> kwargs = torch_defaults.conv_transpose(64, 32, (4, 4))
        >>> layer = nnx.ConvTranspose(64, 32, (4, 4), strides=(2, 2), **kwargs,
        ...                           rngs=nnx.Rngs(0))
        >>> layer.kernel.shape  # torch's fan-in: out * prod(k) = 32 * 16
        (4, 4, 64, 32)
        >>> bool((abs(layer.kernel[...]) <= (32 * 16) ** -0.5).all())
        True
    """
    owner = "conv_transpose"
    ins = _positive(owner, "in_channels", in_channels, minimum=0)
    outs = _positive(owner, "out_channels", out_channels, minimum=0)
    kernel = _kernel_size(owner, kernel_size)
    group_count = _groups(owner, groups, ("in_channels", ins), ("out_channels", outs))
    fan_in = outs // group_count * math.prod(kernel)
    bound = _fan_in_bound(fan_in)
    kernel_init: Initializer
    if group_count > 1:
        kernel_init = _symmetric_uniform(bound)
    elif transpose_kernel:
        kernel_init = _scaled.kaiming_uniform(a=_SQRT5)
    else:
        kernel_init = _scaled.kaiming_uniform(a=_SQRT5, in_axis=-1, out_axis=-2)
    return DenseInits(kernel_init=kernel_init, bias_init=_symmetric_uniform(bound))


@dataclasses.dataclass(frozen=True, repr=False)
class _PaddedEmbedding(InitializerBase):
    """torch's Embedding weight: N(0, 1), then the row ``padding_idx`` set to 0."""

    name = "torch_defaults.embedding"
    num_embeddings: int
    padding_idx: int

    def check_shape(self, shape: tuple[int, ...]) -> None:
        # Leading axes are stacked copies of the table (nnx.vmap, nn.scan).
        if len(shape) < 2 or shape[-2] != self.num_embeddings:
            raise ValueError(
                f"torch_defaults.embedding: expected a ({self.num_embeddings}, "
                f"features) embedding table, got shape {shape}"
            )

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        table = _basic.normal()(key, shape, dtype)
        return table.at[..., self.padding_idx, :].set(jnp.zeros((), dtype))

    def __repr__(self) -> str:
        return (
            f"jaxinit.torch_defaults.embedding(num_embeddings={self.num_embeddings}, "
            f"padding_idx={self.padding_idx})['embedding_init']"
        )


def embedding(num_embeddings: int, *, padding_idx: int | None = None) -> EmbedInits:
    """Torch ``nn.Embedding(n, dim, padding_idx)``'s init for Flax ``Embed``.

    Torch draws ``N(0, 1)`` (Flax's default is ``N(0, 1/features)``) and then sets
    the row ``padding_idx`` to zero. Flax's ``Embed`` has no padding index: the row
    starts at zero, but unlike torch its gradient is not masked during training.

    Args:
        num_embeddings: the table size (needed to resolve and check ``padding_idx``).
        padding_idx: torch's ``padding_idx``; negative values count from the end.

    Returns:
        ``embedding_init``.

    Raises:
        ValueError: ``padding_idx`` is outside ``[-num_embeddings, num_embeddings)``.

    Examples:
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> kwargs = torch_defaults.embedding(10, padding_idx=-1)
        >>> table = nnx.Embed(10, 4, **kwargs, rngs=nnx.Rngs(0)).embedding[...]
        >>> table.shape, bool((table[9] == 0).all()), bool((table[0] != 0).all())
        ((10, 4), True, True)
    """
    owner = "embedding"
    count = _positive(owner, "num_embeddings", num_embeddings, minimum=0)
    if padding_idx is None:
        return EmbedInits(embedding_init=_basic.normal())
    index = _checks.as_index(padding_idx)
    if index is None:
        raise TypeError(
            f"{owner}: padding_idx must be an int or None, got {padding_idx!r}"
        )
    if not -count <= index < count:
        raise ValueError(
            f"{owner}: padding_idx must be within num_embeddings, got {index} "
            f"for num_embeddings={count}"
        )
    return EmbedInits(
        embedding_init=_PaddedEmbedding(num_embeddings=count, padding_idx=index % count)
    )


def _packed_in_projection_bound(embed_dim: int) -> float:
    """Torch's ``xavier_uniform_`` bound on the packed ``(3E, E)`` in-projection."""
    # torch: std = gain * sqrt(2 / (fan_in + fan_out)); bound = sqrt(3) * std.
    return math.sqrt(3.0) * math.sqrt(2.0 / float(embed_dim + 3 * embed_dim))


def multihead_attention(
    embed_dim: int, *, kdim: int | None = None, vdim: int | None = None
) -> AttentionInits:
    """Torch ``nn.MultiheadAttention(embed_dim, heads, kdim=, vdim=)``'s init.

    For linen ``MultiHeadDotProductAttention`` and nnx ``MultiHeadAttention`` with
    ``qkv_features == out_features == embed_dim``:

    - query/key/value kernels: when ``kdim == vdim == embed_dim`` torch draws one
      ``xavier_uniform_`` over the packed ``(3E, E)`` matrix, bound
      ``sqrt(6 / (4E))``; that bound is fixed here. Otherwise each projection
      gets its own ``xavier_uniform_`` (bound ``sqrt(6 / (E + in))``), which
      ``jaxinit.xavier_uniform()`` reads from the kernel, since Flax hands the
      kernel init the flattened ``(in, heads * head_dim)`` shape.
    - in-projection and out biases: zeros.
    - out kernel: the ``nn.Linear`` default (torch's ``out_proj`` is a Linear),
      ``U(-1/sqrt(E), 1/sqrt(E))``. (Inside ``nn.Transformer``, torch re-draws it
      with ``xavier_uniform_``; pass ``out_kernel_init=jaxinit.xavier_uniform()``.)

    ``add_bias_kv`` has no Flax counterpart (its ``bias_k``/``bias_v`` are
    ``N(0, 1/E)``).

    Args:
        embed_dim: torch's ``embed_dim`` (``E``).
        kdim: torch's ``kdim`` (key input size), None for ``embed_dim``.
        vdim: torch's ``vdim`` (value input size), None for ``embed_dim``.

    Returns:
        ``kernel_init``, ``bias_init``, ``out_kernel_init`` and ``out_bias_init``.

    Examples:
        >>> import jaxinit
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> kwargs = torch_defaults.multihead_attention(32)
        >>> mha = nnx.MultiHeadAttention(4, 32, decode=False, **kwargs,
        ...                              rngs=nnx.Rngs(0))
        >>> bool((abs(mha.query.kernel[...]) <= (6 / 128) ** 0.5).all())
        True
        >>> kwargs = torch_defaults.multihead_attention(32, kdim=16)
        >>> kwargs["kernel_init"] == jaxinit.xavier_uniform()
        True
    """
    owner = "multihead_attention"
    embed = _positive(owner, "embed_dim", embed_dim)
    key_dim = embed if kdim is None else _positive(owner, "kdim", kdim)
    value_dim = embed if vdim is None else _positive(owner, "vdim", vdim)
    kernel_init: Initializer
    if key_dim == value_dim == embed:
        kernel_init = _symmetric_uniform(_packed_in_projection_bound(embed))
    else:
        kernel_init = _scaled.xavier_uniform()
    return AttentionInits(
        kernel_init=kernel_init,
        bias_init=_basic.zeros(),
        out_kernel_init=_scaled.kaiming_uniform(a=_SQRT5),
        out_bias_init=_basic.zeros(),
    )


# How many torch biases each gate of a fused Flax bias sums: torch's RNNs have
# b_ih and b_hh per gate, Flax cells one bias (their sum), except GRU's new gate,
# where b_in stays apart from b_hn (which sits inside the reset gate).
_GATE_TERMS = {"rnn_cell": (2,), "lstm_cell": (2, 2, 2, 2), "gru_cell": (2, 2, 1)}


@dataclasses.dataclass(frozen=True, repr=False)
class _RecurrentBias(InitializerBase):
    """A Flax cell bias that stands for torch's ``b_ih + b_hh``.

    Each torch bias is ``U(-1/sqrt(H), 1/sqrt(H))``. A fused ``(G * H,)`` bias
    sums ``_GATE_TERMS[cell][g]`` of them in gate ``g``; a per-gate ``(H,)`` bias
    (linen cells, nnx ``LSTMCell``) sums two.
    """

    name = "torch_defaults.recurrent_bias"
    cell: str
    hidden_size: int

    @property
    def bound(self) -> float:
        return _fan_in_bound(self.hidden_size)

    def terms(self, shape: tuple[int, ...]) -> np.ndarray:
        """How many uniform terms each element of a bias of ``shape`` sums."""
        gate_terms = _GATE_TERMS[self.cell]
        width = shape[-1] if shape else 1
        gates = len(gate_terms)
        if width == gates * self.hidden_size and gates > 1:
            return np.repeat(np.asarray(gate_terms), self.hidden_size)
        if width == self.hidden_size:
            return np.full(width, 2)
        raise ValueError(
            f"{self.cell}: a bias for hidden_size={self.hidden_size} has "
            f"{self.hidden_size} or {gates * self.hidden_size} entries, got shape "
            f"{shape}"
        )

    def check_shape(self, shape: tuple[int, ...]) -> None:
        self.terms(shape)

    def _generate(self, key: Any, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
        terms = self.terms(shape)
        term = _basic.uniform(-self.bound, self.bound)
        # Sum at float32 (or wider) and round once, as torch adds two stored biases.
        wide = np.promote_types(dtype, np.float32)
        keys = jax.random.split(key, int(terms.max()))
        total = jnp.zeros(shape, wide)
        for index in range(int(terms.max())):
            draw = term(keys[index], shape, wide)
            total = total + jnp.where(jnp.asarray(terms > index), draw, 0)
        return total.astype(dtype)

    def __repr__(self) -> str:
        return f"jaxinit.torch_defaults.{self.cell}({self.hidden_size})['bias_init']"


def _recurrent(owner: str, hidden_size: int) -> RecurrentInits:
    hidden = _positive(owner, "hidden_size", hidden_size)
    weights = _symmetric_uniform(_fan_in_bound(hidden))
    bias = _RecurrentBias(cell=owner, hidden_size=hidden)
    return RecurrentInits(
        kernel_init=weights, recurrent_kernel_init=weights, bias_init=bias
    )


def rnn_cell(hidden_size: int) -> RecurrentInits:
    """Torch ``nn.RNN``/``nn.RNNCell``'s init for Flax ``SimpleCell``.

    Every torch parameter is ``U(-1/sqrt(H), 1/sqrt(H))`` (no fan). Flax's cell
    has one bias, torch's ``b_ih + b_hh``: the sum of two independent uniforms
    (a triangular law on ``[-2/sqrt(H), 2/sqrt(H)]``), which ``bias_init`` draws.

    Args:
        hidden_size: torch's ``hidden_size``.

    Returns:
        ``kernel_init``, ``recurrent_kernel_init`` and ``bias_init``.

    Examples:
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> kwargs = torch_defaults.rnn_cell(16)
        >>> cell = nnx.SimpleCell(8, 16, **kwargs, rngs=nnx.Rngs(0))
        >>> bool((abs(cell.dense_i.bias[...]) <= 2 / 4).all())
        True
    """
    return _recurrent("rnn_cell", hidden_size)


def lstm_cell(hidden_size: int) -> RecurrentInits:
    """Torch ``nn.LSTM``/``nn.LSTMCell``'s init for the Flax LSTM cells.

    Exact for linen ``LSTMCell``/``OptimizedLSTMCell`` and nnx
    ``LSTMCell``/``OptimizedLSTMCell``: every kernel is ``U(-1/sqrt(H), 1/sqrt(H))``
    and every Flax bias stands for torch's ``b_ih + b_hh``, the sum of two such
    uniforms (per gate ``(H,)`` or fused ``(4H,)``).

    Args:
        hidden_size: torch's ``hidden_size``.

    Returns:
        ``kernel_init``, ``recurrent_kernel_init`` and ``bias_init``.

    Examples:
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> cell = nnx.LSTMCell(8, 16, **torch_defaults.lstm_cell(16), rngs=nnx.Rngs(0))
        >>> bool((abs(cell.ii.kernel[...]) <= 1 / 4).all())
        True
    """
    return _recurrent("lstm_cell", hidden_size)


def gru_cell(hidden_size: int) -> RecurrentInits:
    """Torch ``nn.GRU``/``nn.GRUCell``'s init for the Flax GRU cells.

    Kernels are ``U(-1/sqrt(H), 1/sqrt(H))``. Torch's gate biases are
    ``b_ir + b_hr``, ``b_iz + b_hz`` (sums of two uniforms), ``b_in`` and ``b_hn``
    (one uniform each, ``b_hn`` inside the reset gate).

    - nnx ``GRUCell``: its fused ``dense_i`` bias ``(3H,)`` is drawn exactly as
      ``[b_ir + b_hr, b_iz + b_hz, b_in]``. nnx has **no ``b_hn``** (its recurrent
      Linear has no bias), so the cell is torch's GRU with ``b_hn = 0``.
    - linen ``GRUCell``: one ``bias_init`` serves the ``ir``, ``iz``, ``in`` and
      ``hn`` biases, each ``(H,)``; it draws the sum of two uniforms, exact for
      ``ir`` and ``iz`` and twice torch's variance for ``in`` and ``hn``.
      ``jaxinit.flax.torch_init`` tells them apart by name and is exact.

    Args:
        hidden_size: torch's ``hidden_size``.

    Returns:
        ``kernel_init``, ``recurrent_kernel_init`` and ``bias_init``.

    Examples:
        >>> from flax import nnx
        >>> from jaxinit import torch_defaults
        >>> cell = nnx.GRUCell(8, 16, **torch_defaults.gru_cell(16), rngs=nnx.Rngs(0))
        >>> bias = cell.dense_i.bias[...]
        >>> bool((abs(bias[32:]) <= 1 / 4).all()), bool((abs(bias) <= 2 / 4).all())
        (True, True)
    """
    return _recurrent("gru_cell", hidden_size)


def layer_norm() -> NormInits:
    """Torch ``nn.LayerNorm``'s init (ones and zeros), the Flax default too.

    Only the init matches: torch's ``eps`` is 1e-5, Flax's ``epsilon`` 1e-6; pass
    ``epsilon=1e-5`` for the same forward pass.

    Returns:
        ``scale_init`` and ``bias_init``.

    Examples:
        >>> from jaxinit import torch_defaults
        >>> torch_defaults.layer_norm()["scale_init"]
        jaxinit.constant(val=1.0, dtype=None)
    """
    return NormInits(scale_init=_basic.ones(), bias_init=_basic.zeros())


def group_norm() -> NormInits:
    """Torch ``nn.GroupNorm``'s init (ones and zeros), the Flax default too.

    Torch's ``eps`` is 1e-5 (Flax 1e-6), and Flax's ``num_groups`` defaults to 32.

    Returns:
        ``scale_init`` and ``bias_init``.

    Examples:
        >>> from jaxinit import torch_defaults
        >>> torch_defaults.group_norm()["bias_init"]
        jaxinit.constant(val=0.0, dtype=None)
    """
    return NormInits(scale_init=_basic.ones(), bias_init=_basic.zeros())


def batch_norm() -> NormInits:
    """Torch ``nn.BatchNorm{1,2,3}d``'s init (ones and zeros), the Flax default too.

    The running statistics start at mean 0 and variance 1 in both. Torch's
    ``momentum=0.1`` is Flax's ``momentum=0.9`` (opposite conventions), and torch's
    ``eps`` is 1e-5 (Flax 1e-5 as well for BatchNorm).

    Returns:
        ``scale_init`` and ``bias_init``.

    Examples:
        >>> from jaxinit import torch_defaults
        >>> sorted(torch_defaults.batch_norm())
        ['bias_init', 'scale_init']
    """
    return NormInits(scale_init=_basic.ones(), bias_init=_basic.zeros())


def prelu(num_parameters: int = 1, init: float = 0.25) -> PReLUInits:
    """Torch ``nn.PReLU(num_parameters, init)``'s init for Flax ``PReLU``.

    Flax's slope is one scalar (default 0.01) and its init a float. torch's
    per-channel PReLU (``num_parameters > 1``) has no Flax counterpart: the scalar
    starts at the same value as every torch channel, but all channels then share
    one learned slope.

    Args:
        num_parameters: torch's ``num_parameters`` (accepted; see above).
        init: torch's ``init``.

    Returns:
        ``negative_slope_init``.

    Examples:
        >>> from jaxinit import torch_defaults
        >>> torch_defaults.prelu()
        {'negative_slope_init': 0.25}
    """
    _positive("prelu", "num_parameters", num_parameters)
    if isinstance(init, bool) or not isinstance(init, int | float):
        raise TypeError(f"prelu: init must be a real number, got {init!r}")
    return PReLUInits(negative_slope_init=float(init))
