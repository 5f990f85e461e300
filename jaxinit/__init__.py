"""jaxinit: PyTorch's ``torch.nn.init``, JAX-native, for JAX and Flax.

Every torch initializer (and timm's ``trunc_normal_tf_``, ``variance_scaling_``
and ``lecun_normal_``) as a factory that returns a ``jax.nn.initializers``
``Initializer`` (Flax layout by default), plus torch-style ``NAME_`` spellings
(torch layout by default), with torch's laws, defaults, fans and errors.
"""

from importlib import metadata as _metadata

from ._basic import (
    constant as constant,
    eye as eye,
    normal as normal,
    ones as ones,
    trunc_normal as trunc_normal,
    uniform as uniform,
    zeros as zeros,
)
from ._compare import (
    CompareReport as CompareReport,
    CompareRow as CompareRow,
    compare as compare,
)
from ._fans import calculate_fan_in_and_fan_out as calculate_fan_in_and_fan_out
from ._gain import calculate_gain as calculate_gain
from ._scaled import (
    kaiming_normal as kaiming_normal,
    kaiming_uniform as kaiming_uniform,
    xavier_normal as xavier_normal,
    xavier_uniform as xavier_uniform,
)
from ._structured import dirac as dirac, orthogonal as orthogonal, sparse as sparse
from ._timm import (
    lecun_normal as lecun_normal,
    trunc_normal_tf as trunc_normal_tf,
    variance_scaling as variance_scaling,
)
from ._torch_style import (
    constant_ as constant_,
    dirac_ as dirac_,
    eye_ as eye_,
    kaiming_normal_ as kaiming_normal_,
    kaiming_uniform_ as kaiming_uniform_,
    lecun_normal_ as lecun_normal_,
    normal_ as normal_,
    ones_ as ones_,
    orthogonal_ as orthogonal_,
    sparse_ as sparse_,
    trunc_normal_ as trunc_normal_,
    trunc_normal_tf_ as trunc_normal_tf_,
    uniform_ as uniform_,
    variance_scaling_ as variance_scaling_,
    xavier_normal_ as xavier_normal_,
    xavier_uniform_ as xavier_uniform_,
    zeros_ as zeros_,
)
from ._tree import init_tree as init_tree, leaf_key as leaf_key
from ._typing import Initializer as Initializer

try:
    __version__ = _metadata.version("jaxinit")
except _metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "CompareReport",
    "CompareRow",
    "Initializer",
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "compare",
    "constant",
    "constant_",
    "dirac",
    "dirac_",
    "eye",
    "eye_",
    "init_tree",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "leaf_key",
    "lecun_normal",
    "lecun_normal_",
    "normal",
    "normal_",
    "ones",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "sparse",
    "sparse_",
    "trunc_normal",
    "trunc_normal_",
    "trunc_normal_tf",
    "trunc_normal_tf_",
    "uniform",
    "uniform_",
    "variance_scaling",
    "variance_scaling_",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
    "zeros",
    "zeros_",
]
