"""Does a JAX port initialize like its torch model? ``compare`` answers per parameter.

The torch model is drawn for several seeds and the JAX model for several keys;
each torch parameter is paired with its JAX counterpart (names, layouts,
stacked layers) and the two are compared: exactly where torch's values do not
depend on the seed (zeros, ones, fills, ``eye``, ``dirac``), by a two-sample
Kolmogorov-Smirnov test and tests on the standard deviation and the mean
elsewhere. The statistics are numpy (no scipy); torch is only touched through
the objects the caller passes (never imported); Flax and Equinox only through
the models the JAX function returns; matplotlib only by ``plot``.
"""

import dataclasses
import itertools
import math
import re
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import jax
import numpy as np

from . import _eqx_convert, _flax_convert, _optional

NameMap: TypeAlias = (
    Mapping[str, str | None]
    | Sequence[tuple[str, str | None]]
    | Callable[[str], str | None]
)
Kind: TypeAlias = Literal["fixed", "random", "shape"]
Convert: TypeAlias = Callable[[np.ndarray], np.ndarray]

# Values of one draw kept to tell seed-independent parameters from random ones.
_FINGERPRINT = 4096
# Values per side kept for the figure.
_PLOT_VALUES = 20_000
# Flax leaf names that stand for torch's ``weight``.
_WEIGHT_NAMES = ("kernel", "embedding", "scale")


@dataclasses.dataclass(frozen=True)
class CompareRow:
    """One torch parameter against its JAX counterpart.

    Attributes:
        torch_name: the torch parameter's name (``named_parameters``).
        jax_name: the JAX parameter's path, parts joined by ``/``
            (Equinox: torch's name), with ``[i]`` for layer ``i`` of a stacked
            parameter; ``""`` for none.
        shape: the torch shape.
        kind: ``"fixed"`` (torch's values do not change with the seed:
            compared exactly), ``"random"`` (compared statistically) or
            ``"shape"`` (no layout makes the shapes agree).
        ok: whether the JAX parameter follows torch's law.
        problem: why not (empty when ``ok``).
        layout: how the JAX array was read in torch's layout: ``"same"``,
            ``"flax"`` (a ``(*k, in, out)`` kernel), ``"flax transposed conv"``,
            ``"flax transposed conv, transpose_kernel"``, ``"transposed"`` (a
            2-D array) or ``"reshaped"`` (same size, no layout fits).
        draws: how many torch draws the row's values come from.
        n: values compared per side (the smaller side for random rows).
        torch_mean: mean of torch's values.
        torch_std: standard deviation of torch's values.
        jax_mean: mean of the JAX values.
        jax_std: standard deviation of the JAX values.
        ks_p: p-value of the two-sample Kolmogorov-Smirnov test (nan if fixed).
        std_p: p-value of the test on the log ratio of the variances.
        mean_p: p-value of the test on the difference of the means.
        detectable: the smallest relative error of the standard deviation the
            std test detects with the report's power (0 for fixed rows: any
            difference shows).

    Examples:
        >>> import jaxinit
        >>> row = jaxinit.CompareRow("fc.bias", "fc/bias", (4,), "fixed", ok=True)
        >>> row.ok, row.kind, row.problem
        (True, 'fixed', '')
    """

    torch_name: str
    jax_name: str
    shape: tuple[int, ...]
    kind: Kind
    ok: bool
    problem: str = ""
    layout: str = "same"
    draws: int = 0
    n: int = 0
    torch_mean: float = math.nan
    torch_std: float = math.nan
    jax_mean: float = math.nan
    jax_std: float = math.nan
    ks_p: float = math.nan
    std_p: float = math.nan
    mean_p: float = math.nan
    detectable: float = math.nan


@dataclasses.dataclass(frozen=True)
class CompareReport:
    """The answer of ``compare``: one row per parameter pair, and what is left.

    ``ok`` holds when every row passes and no parameter is left unmatched on
    either side (ignored ones excepted). ``str(report)`` is the table.

    Attributes:
        rows: one ``CompareRow`` per matched pair, in torch's order.
        torch_only: torch parameters with no JAX counterpart.
        jax_only: JAX parameters (or stacked slices) no torch parameter matched.
        ignored: parameters left out by ``ignore`` or a mapping to ``None``.
        tied: ``(name, primary)`` pairs: torch parameters that are another
            parameter (tied weights, listed once by ``named_parameters``).
        alpha: the family-wise false-alarm rate.
        power: the probability with which each row detects its ``detectable``.
        target: the relative std error the pooling aims to detect.
        draws: how many times the models were drawn.
        tests: how many statistical tests share ``alpha`` (Bonferroni).

    Examples:
        ``compare`` makes reports; one made by hand shows the table's form:

        >>> import jaxinit
        >>> row = jaxinit.CompareRow(
        ...     "fc.weight", "fc/kernel", (8, 4), "shape", ok=False,
        ...     problem="shape: torch (8, 4), JAX (4, 9)")
        >>> report = jaxinit.CompareReport(
        ...     rows=(row,), torch_only=(), jax_only=("scale",), ignored=(),
        ...     tied=(), alpha=1e-4, power=0.99, target=0.05, draws=2, tests=0)
        >>> report.ok, [r.torch_name for r in report.failures]
        (False, ['fc.weight'])
        >>> print(report)
        compare: FAILED: 1 pairs, 1 failing; unmatched: 0 torch, 1 JAX; 2 draws
        false-alarm rate 0.0001 per report (0 tests); detects: the std error seen...
              torch      JAX        shape  torch law  JAX  n  detects
        FAIL  fc.weight  fc/kernel  8x4    -          -    0  -  <- shape: torch...
        JAX only: scale
    """

    rows: tuple[CompareRow, ...]
    torch_only: tuple[str, ...]
    jax_only: tuple[str, ...]
    ignored: tuple[str, ...]
    tied: tuple[tuple[str, str], ...]
    alpha: float
    power: float
    target: float
    draws: int
    tests: int
    samples: Mapping[int, tuple[np.ndarray, np.ndarray]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def ok(self) -> bool:
        """Every row passes and nothing is unmatched."""
        return not (self.failures or self.torch_only or self.jax_only)

    @property
    def failures(self) -> tuple[CompareRow, ...]:
        """The rows that fail."""
        return tuple(row for row in self.rows if not row.ok)

    @property
    def underpowered(self) -> tuple[CompareRow, ...]:
        """Random rows that cannot detect a ``target`` std error, even pooled."""
        return tuple(
            row
            for row in self.rows
            if row.kind == "random" and not row.detectable <= self.target
        )

    def row(self, name: str) -> CompareRow:
        """The first row of a torch name or JAX path.

        Raises:
            KeyError: no row has that name.
        """
        for row in self.rows:
            if name in (row.torch_name, row.jax_name):
                return row
        raise KeyError(f"CompareReport.row: no row for {name!r}")

    def table(self, *, failures_only: bool = False) -> str:
        """The report as a text table, then what is unmatched, ignored or tied."""
        return _table(self, failures_only)

    def __str__(self) -> str:
        return self.table()

    def plot(
        self,
        names: Sequence[str] | None = None,
        *,
        max_panels: int = 12,
        columns: int = 4,
        bins: int = 60,
    ) -> Any:
        """Histograms of torch's values against the JAX values, one panel a row.

        Needs matplotlib (``pip install 'jaxinit[plot]'``).

        Args:
            names: torch names or JAX paths of the rows to show. By default
                the random rows, failures first, then one row per name pattern
                (``h.0.mlp.c_fc.weight`` stands for every layer's), up to
                ``max_panels``.
            max_panels: the most panels shown by default.
            columns: panels per line.
            bins: histogram bins.

        Returns:
            The ``matplotlib.figure.Figure``.
        """
        return _plot(self, names, max_panels, columns, bins)


def compare(
    torch_model: Any,
    jax_init: Callable[[jax.Array], Any],
    *,
    mapping: NameMap | None = None,
    ignore: Sequence[str] = (),
    seed: int = 0,
    alpha: float = 1e-4,
    power: float = 0.99,
    target: float = 0.05,
    min_draws: int = 2,
    max_draws: int = 16,
    max_samples: int = 2**17,
) -> CompareReport:
    """Checks, per parameter, that a JAX model initializes as its torch model.

    ``torch_model`` is called with seeds ``seed, seed + 1, ...`` (it must seed
    torch itself, ``torch.manual_seed(seed)``) and ``jax_init`` with the keys
    ``jax.random.fold_in(jax.random.key(seed), i)``; each torch parameter is
    paired with a JAX one and every pair compared:

    - **fixed** parameters (the same values for every seed: zeros, ones, fills,
      ``eye``, ``dirac``) must be equal, element by element in torch's layout,
      up to the rounding of the coarser dtype, for every key;
    - **random** parameters pass three tests on the values pooled over the
      draws: two-sample Kolmogorov-Smirnov (the shape of the law), the log
      ratio of the variances (with the kurtosis in its standard error) and
      the difference of the means. Elements are taken as independent draws of
      one law; for structured laws (``orthogonal``, ``sparse``) that makes the
      tests conservative.

    The false-alarm rate ``alpha`` is family-wise: each of the three tests of
    each random parameter runs at ``alpha / (3 * random parameters)``. The
    models are drawn again (at least ``min_draws``, at most ``max_draws``
    times) until every random parameter's std test detects a relative std
    error of ``target`` with probability ``power``, so small tensors are
    pooled over seeds; each row reports the error it can detect
    (``detectable``). At most ``max_samples`` values per side and parameter
    are used (a random subset); the rest adds nothing the tests need.

    Names: torch's ``named_parameters`` (tied parameters once; an alias is
    also tried, and listed in ``tied``). The JAX model may be a Flax nnx
    module, linen variables (their ``params``), an Equinox module or any
    pytree of arrays. An Equinox model is read with ``jaxinit.equinox.
    to_torch``, which gives torch's names; layers stacked with
    ``eqx.filter_vmap`` where torch has ``blocks.0``, ``blocks.1``, ... are
    unstacked first. Flax paths match by default when they are torch's name
    with ``weight`` read as ``kernel``, ``embedding`` or ``scale``, and an
    index ``blocks.3`` read as ``blocks/3``, ``blocks_3``, ``layers_3``
    (``nn.Sequential``), ``layers/3`` (``nnx.Sequential``), or as slice 3 of
    the leading axis of ``blocks/...`` (``nnx.vmap``, ``nn.scan``). ``mapping``
    renames torch names first (a dict, ``(pattern, replacement)`` pairs tried
    in order with ``re.fullmatch``, or a function; ``None`` ignores the
    parameter); the result may be a JAX path (``"/"``-joined, optionally with
    ``[i]``) or a torch-style name matched as above. Unmatched parameters on
    either side are listed, and make ``ok`` false.

    Layouts: a Flax ``kernel`` is read in torch's layout by
    ``jaxinit.flax.conv_to_torch`` (``(*k, in, out)`` to ``(out, in, *k)``,
    a ``Dense`` kernel transposed) or, when the shapes say so, as a
    transposed-convolution kernel or as it is (e.g. Hugging Face's ``Conv1D``,
    whose weight is ``(in, out)``).

    Args:
        torch_model: a function ``seed -> torch.nn.Module`` (pooled over seeds),
            or one ``torch.nn.Module`` (one torch draw; the JAX side is still
            pooled, and only constant parameters count as fixed).
        jax_init: a function ``key -> model``: an nnx module, linen variables,
            an Equinox module or a pytree of arrays.
        mapping: torch name to JAX name, as described above.
        ignore: regular expressions; torch names and JAX paths that match one
            in full are left out (and listed as ignored).
        seed: the first torch seed, and the JAX key's seed.
        alpha: the family-wise false-alarm rate, in (0, 1).
        power: the detection probability behind ``detectable``, in (0, 1).
        target: the relative std error the pooling aims to detect, > 0.
        min_draws: the fewest draws (at least 2 for a torch factory, which tells
            fixed parameters from random ones).
        max_draws: the most draws (each builds both models once); a row
            still short of ``target`` then is listed in ``underpowered``.
        max_samples: the most values per side and parameter.

    Returns:
        A ``CompareReport``: ``report.ok``, ``report.failures``,
        ``str(report)`` (the table) and ``report.plot()``.

    Raises:
        TypeError: ``torch_model`` is neither a module nor a function, or
            ``jax_init`` is a model rather than a function.
        ValueError: an argument out of range; a torch factory or ``jax_init``
            that gives the same values for every seed or key.

    Examples:
        A dict of arrays stands in for a JAX model, and a numpy "module"
        with ``named_parameters`` for torch (use a real ``torch.nn.Module``):

        >>> import jax, numpy as np, jaxinit
        >>> class Linear:  # torch.nn.Linear(64, 32) with normal(0, 0.02), zero bias
        ...     def __init__(self, seed):
        ...         rng = np.random.default_rng(seed)
        ...         self.params = {"weight": rng.normal(0, 0.02, (32, 64)),
        ...                        "bias": np.zeros(32)}
        ...     def named_parameters(self, remove_duplicate=True):
        ...         return iter(self.params.items())
        ...     def named_buffers(self):
        ...         return iter(())
        >>> def jax_init(key):
        ...     return {"kernel": jaxinit.normal(std=0.02)(key, (64, 32)),
        ...             "bias": jaxinit.zeros()(key, (32,))}
        >>> report = jaxinit.compare(Linear, jax_init)
        >>> report.ok, [(row.jax_name, row.kind, row.layout) for row in report.rows]
        (True, [('kernel', 'random', 'flax'), ('bias', 'fixed', 'same')])
        >>> report.draws > 2, report.rows[0].detectable < 0.05  # pooled 2048 values
        (True, True)
        >>> def wrong(key):  # std 0.025 instead of 0.02
        ...     return {"kernel": jaxinit.normal(std=0.025)(key, (64, 32)),
        ...             "bias": jaxinit.zeros()(key, (32,))}
        >>> [row.torch_name for row in jaxinit.compare(Linear, wrong).failures]
        ['weight']
    """
    _check_arguments(alpha, power, target, min_draws, max_draws, max_samples)
    if hasattr(torch_model, "named_parameters") and not isinstance(torch_model, type):
        factory: Callable[[int], Any] | None = None
        first = torch_model
    elif callable(torch_model):
        factory, first = torch_model, None
    else:
        raise TypeError(
            "compare: torch_model must be a torch.nn.Module or a function "
            f"seed -> torch.nn.Module, got {type(torch_model).__name__}"
        )
    if not callable(jax_init) or _is_model(jax_init):
        raise TypeError(
            "compare: jax_init must be a function key -> model (e.g. "
            f"lambda key: make_model(key)), got {type(jax_init).__name__}"
        )
    run = _Run(factory, first, jax_init, mapping, ignore, seed, max_samples)
    if factory is not None:
        min_draws = max(min_draws, 2)  # two torch draws tell fixed from random
    z, tests = _draw_until_powered(
        run, alpha, power, target, min_draws, max(max_draws, min_draws)
    )
    threshold = alpha / max(tests, 1)
    rows, samples = [], {}
    for number, pair in enumerate(run.pairs):
        row, sample = run.row(pair, z, threshold)
        rows.append(row)
        if sample is not None:
            samples[number] = sample
    return CompareReport(
        rows=tuple(rows),
        torch_only=tuple(run.torch_only),
        jax_only=tuple(run.jax_only),
        ignored=tuple(run.ignored),
        tied=tuple(run.tied),
        alpha=alpha,
        power=power,
        target=target,
        draws=run.draws,
        tests=tests,
        samples=samples,
    )


def _check_arguments(
    alpha: float,
    power: float,
    target: float,
    min_draws: int,
    max_draws: int,
    max_samples: int,
) -> None:
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValueError(f"compare: {name} must be in (0, 1), got {value!r}")
    if not target > 0:
        raise ValueError(f"compare: target must be > 0, got {target!r}")
    if not 1 <= min_draws <= max_draws:
        raise ValueError(
            "compare: draws must satisfy 1 <= min_draws <= max_draws, got "
            f"min_draws={min_draws!r}, max_draws={max_draws!r}"
        )
    if max_samples < 2:
        raise ValueError(f"compare: max_samples must be >= 2, got {max_samples!r}")


def _is_model(value: Any) -> bool:
    """Whether ``value`` is a model (nnx or Equinox module) rather than a function."""
    return any(
        isinstance(value, cls)
        for cls in (_framework_type("flax.nnx", "Module"), _equinox_module())
        if cls is not None
    )


def _framework_type(module: str, name: str) -> type | None:
    """A framework's class, if the framework is already imported (never imports)."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) else None


def _equinox_module() -> type | None:
    return _framework_type("equinox", "Module")


# --- torch side ----------------------------------------------------------------------


def _to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor's values, without importing torch (bfloat16 as float32)."""
    if not hasattr(tensor, "detach"):  # already an array
        return np.asarray(tensor)
    tensor = tensor.detach()
    if str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16
        tensor = tensor.float()
    return np.asarray(tensor.cpu())


def _torch_params(
    module: Any,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], set[str]]:
    """(primary name -> values, primary name -> its tied aliases, buffer names)."""
    if not hasattr(module, "named_parameters"):
        raise TypeError(
            "compare: torch_model(seed) must return a torch.nn.Module, got "
            f"{type(module).__name__}"
        )
    params: dict[str, np.ndarray] = {}
    aliases: dict[str, list[str]] = {}
    first_name: dict[int, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        primary = first_name.setdefault(id(param), name)
        if primary == name:
            params[name] = _to_numpy(param)
            aliases[name] = []
        else:
            aliases[primary].append(name)
    buffers = {name for name, _ in module.named_buffers()}
    return params, aliases, buffers


# --- JAX side ------------------------------------------------------------------------


def _is_param(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return (
        dtype is not None
        and hasattr(value, "shape")
        and bool(jax.numpy.issubdtype(dtype, jax.numpy.inexact))  # bfloat16 too
    )


def _part(entry: Any) -> str:
    """One step of a jax key path as a name: attribute, index or dict key."""
    for field in ("name", "idx", "key"):
        if hasattr(entry, field):
            return str(getattr(entry, field))
    return str(entry)


def _unbox(leaf: Any) -> Any:
    """A linen value out of its metadata box (``nn.Partitioned``)."""
    meta = sys.modules.get("flax.core.meta")
    if meta is not None and isinstance(leaf, meta.AxisMetadata):
        return leaf.value if isinstance(leaf, meta.Partitioned) else leaf.unbox()
    return leaf


def _jax_params(result: Any, torch_names: Sequence[str]) -> tuple[dict[str, Any], bool]:
    """The JAX model's parameters by name, and whether the names are torch's.

    Equinox models are read by ``jaxinit.equinox.to_torch`` (torch's names and
    layouts), everything else as paths joined by ``/``.
    """
    if isinstance(result, jax.ShapeDtypeStruct):
        raise TypeError("compare: jax_init returned an abstract value")
    eqx_module = _equinox_module()
    if eqx_module is not None and isinstance(result, eqx_module):
        return dict(_eqx_convert.to_torch(_unstack_eqx(result, torch_names))), True
    nnx_module = _framework_type("flax.nnx", "Module")
    if nnx_module is not None and isinstance(result, nnx_module):
        nnx = sys.modules["flax.nnx"]
        flat = nnx.to_flat_state(nnx.state(result, nnx.Param))
        params = {
            "/".join(str(p) for p in path): variable.get_value()
            for path, variable in flat
        }
    else:
        if isinstance(result, Mapping) and "params" in result:
            result = result["params"]  # linen variables: other collections are state
        meta = sys.modules.get("flax.core.meta")
        boxed = (
            (lambda x: isinstance(x, meta.AxisMetadata)) if meta is not None else None
        )
        leaves = jax.tree_util.tree_flatten_with_path(result, is_leaf=boxed)[0]
        params = {
            "/".join(_part(entry) for entry in path): _unbox(leaf)
            for path, leaf in leaves
        }
    abstract = [n for n, v in params.items() if isinstance(v, jax.ShapeDtypeStruct)]
    if abstract:
        raise TypeError(
            f"compare: jax_init returned abstract parameters ({abstract[0]!r}, ...); "
            "it must draw them (e.g. jaxinit.flax.torch_init on the abstract model)"
        )
    return {name: value for name, value in params.items() if _is_param(value)}, False


def _navigate(node: Any, parts: Sequence[str]) -> Any:
    """The Equinox node under torch-style name parts, or None."""
    eqx = sys.modules["equinox"]
    for part in parts:
        if isinstance(node, eqx.nn.Sequential):
            node = node.layers
        if isinstance(node, list | tuple) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else None
        else:
            node = getattr(node, part, None)
        if node is None:
            return None
    return node


def _unstack_eqx(model: Any, torch_names: Sequence[str]) -> Any:
    """``model`` with each ``filter_vmap``-stacked layer that torch numbers split.

    Where torch has ``blocks.0.X``, ``blocks.1.X`` and the model's ``blocks`` is
    one module whose arrays all lead with an axis of the layer count, that
    module becomes a list of its slices, so ``to_torch`` names them as torch.
    """
    eqx = sys.modules["equinox"]
    done: set[tuple[str, ...]] = set()
    changed = True
    while changed:
        changed = False
        for name in torch_names:
            parts = name.split(".")
            for k, part in enumerate(parts[:-1]):
                prefix = tuple(parts[:k])
                if not part.isdigit() or not prefix or prefix in done:
                    continue
                node = _navigate(model, prefix)
                if not isinstance(node, eqx.Module) or isinstance(
                    node, eqx.nn.Sequential
                ):
                    continue
                arrays, static = eqx.partition(node, eqx.is_array)
                leads = {leaf.shape[:1] for leaf in jax.tree.leaves(arrays)}
                if len(leads) != 1 or leads == {()}:
                    continue
                (count,) = leads.pop()
                slices = [
                    eqx.combine(jax.tree.map(lambda x, i=i: x[i], arrays), static)
                    for i in range(count)
                ]
                model = eqx.tree_at(
                    lambda m, prefix=prefix: _navigate(m, prefix), model, slices
                )
                done.add(prefix)
                changed = True
    return model


# --- matching ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Target:
    """Where a torch parameter's JAX counterpart lives."""

    key: str  # the JAX parameter's name
    index: int | None  # the slice of a stacked parameter

    @property
    def name(self) -> str:
        return self.key if self.index is None else f"{self.key}[{self.index}]"


def _aliases(name: str) -> set[str]:
    """The torch-style names a JAX path answers to by default."""
    parts = name.split("/")
    options: list[list[str]] = []
    for i, part in enumerate(parts):
        choices = [part]
        numbered = re.fullmatch(r"(.+)_(\d+)", part)
        if numbered:
            choices.append(f"{numbered[1]}.{numbered[2]}")
            if numbered[1] == "layers":
                choices.append(numbered[2])
        if part == "layers" and i + 1 < len(parts) and parts[i + 1].isdigit():
            choices.append("")
        if i == len(parts) - 1 and part in _WEIGHT_NAMES:
            choices.append("weight")
        options.append(choices)
    return {
        ".".join(p for p in combo if p) for combo in itertools.product(*options)
    } | {name}


def _rename(mapping: NameMap | None, name: str) -> str | None:
    """The name to look up for torch's ``name``, or None to ignore it."""
    if mapping is None:
        return name
    if isinstance(mapping, Mapping):
        return mapping.get(name, name)
    if callable(mapping):
        return mapping(name)
    for pattern, replacement in mapping:
        found = re.fullmatch(pattern, name)
        if found:
            return None if replacement is None else found.expand(replacement)
    return name


class _Matcher:
    """Finds the JAX counterpart of torch names."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], torch_style: bool):
        self.shapes = shapes
        self.by_alias: dict[str, set[str]] = {}
        for key in shapes:
            for alias in {key} if torch_style else _aliases(key):
                self.by_alias.setdefault(alias, set()).add(key)

    def exact(self, name: str) -> _Target | None:
        sliced = re.fullmatch(r"(.*)\[(\d+)\]", name)
        if sliced and sliced[1] in self.shapes:
            return _Target(sliced[1], int(sliced[2]))
        return _Target(name, None) if name in self.shapes else None

    def find(self, name: str) -> tuple[_Target | None, str]:
        """The counterpart of a torch-style name, or None and why."""
        found = self.exact(name) or self._alias(name, None)
        if found is not None:
            return found, ""
        parts = name.split(".")
        for k, part in enumerate(parts):
            if part.isdigit():
                rest = ".".join(parts[:k] + parts[k + 1 :])
                found = self._alias(rest, int(part))
                if found is not None:
                    return found, ""
        matches = self.by_alias.get(name, set())
        why = f"ambiguous: {sorted(matches)}" if len(matches) > 1 else ""
        return None, why

    def _alias(self, name: str, index: int | None) -> _Target | None:
        keys = self.by_alias.get(name, set())
        if len(keys) != 1:
            return None
        (key,) = keys
        shape = self.shapes[key]
        if index is not None and not (shape and index < shape[0]):
            return None
        return _Target(key, index)


def _layouts(leaf: str, ndim: int) -> list[tuple[str, Convert]]:
    """How a JAX array may be read in torch's layout, most likely first."""
    same: tuple[str, Convert] = ("same", lambda a: a)
    transposed: tuple[str, Convert] = ("transposed", lambda a: a.T)
    if leaf != "kernel" or ndim < 2:
        return [same, transposed] if ndim == 2 else [same]

    def flax(a: np.ndarray) -> np.ndarray:
        return _flax_convert.conv_to_torch({"kernel": a})["weight"]

    if ndim == 2:
        return [("flax", flax), same]

    def conv_transpose(a: np.ndarray, transpose_kernel: bool) -> np.ndarray:
        params = {"kernel": a}
        return _flax_convert.conv_transpose_to_torch(
            params, transpose_kernel=transpose_kernel
        )["weight"]

    return [
        ("flax", flax),
        ("flax transposed conv", lambda a: conv_transpose(a, False)),
        ("flax transposed conv, transpose_kernel", lambda a: conv_transpose(a, True)),
        same,
    ]


def _choose_layout(
    key: str, shape: tuple[int, ...], torch_shape: tuple[int, ...]
) -> tuple[str, Convert] | None:
    """The layout whose reading of ``shape`` is ``torch_shape``, or None."""
    probe = np.broadcast_to(np.zeros((), np.float32), shape)
    for name, convert in _layouts(key.rsplit("/", 1)[-1], len(shape)):
        if convert(probe).shape == torch_shape:
            return name, convert
    if math.prod(shape) == math.prod(torch_shape):
        return "reshaped", lambda a: a.reshape(torch_shape)
    return None


# --- statistics ----------------------------------------------------------------------


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z.

    Examples:
        >>> from jaxinit._compare import normal_sf
        >>> round(normal_sf(1.959964), 4)
        0.025
    """
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for Kolmogorov's limit law of ``sqrt(n) * D``.

    Examples:
        >>> from jaxinit._compare import kolmogorov_sf
        >>> round(kolmogorov_sf(1.3581), 4)  # the 5% critical value
        0.05
    """
    if lam < 0.27:  # the series converges slowly there, to 1 within 1e-5
        return 1.0
    k = np.arange(1, 101, dtype=np.float64)
    terms = (-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * lam**2)
    return float(min(max(2.0 * terms.sum(), 0.0), 1.0))


def ks_2samp(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: the statistic D and its asymptotic p-value.

    The p-value is Kolmogorov's limit law at ``(sqrt(e) + 0.12 + 0.11 /
    sqrt(e)) * D``, ``e = n m / (n + m)`` (Stephens' small-sample
    correction); ties (atoms, low-precision dtypes) make it conservative.

    Examples:
        >>> import numpy as np
        >>> from jaxinit._compare import ks_2samp
        >>> d, p = ks_2samp(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5, 2.5]))
        >>> round(d, 4), p > 0.9
        (0.3333, True)
    """
    n, m = x.size, y.size
    # Two sorted runs: a stable argsort merges them in linear time (timsort).
    values = np.concatenate([np.sort(x), np.sort(y)])
    order = np.argsort(values, kind="stable")
    values = values[order]
    from_x = order < n
    gaps = np.cumsum(from_x) / n - np.cumsum(~from_x) / m
    run_ends = np.append(values[1:] != values[:-1], True)  # ties count at once
    d = float(np.abs(gaps[run_ends]).max())
    root = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


@dataclasses.dataclass(frozen=True)
class _Tests:
    """The three tests of a random row, and what its std test can detect."""

    ks_p: float
    std_p: float
    mean_p: float
    ratio: float  # jax std / torch std
    se: float  # standard error of the log variance ratio


def _kurtosis_excess(x: np.ndarray, y: np.ndarray) -> float:
    """The pooled kurtosis minus 1: n times the variance of s^2 / sigma^2.

    Floored: a two-point law has kappa = 1, where the delta method says the
    sample variance does not vary at all.
    """
    kurtoses = []
    for values in (x, y):
        squares = np.square(values - values.mean())
        var = float(squares.mean())
        if var > 0:
            fourth = float(np.einsum("i,i->", squares, squares)) / squares.size
            kurtoses.append(fourth / var**2)
    mean = sum(kurtoses) / len(kurtoses) if kurtoses else 3.0
    return max(mean - 1.0, 1e-2)


def _log_var_se(kappa1: float, n: int, m: int) -> float:
    return math.sqrt(kappa1 * (1.0 / n + 1.0 / m))


def _tests(x: np.ndarray, y: np.ndarray) -> _Tests:
    n, m = x.size, y.size
    vx, vy = float(x.var(ddof=1)), float(y.var(ddof=1))
    ks_p = ks_2samp(x, y)[1]
    kappa1 = _kurtosis_excess(x, y)
    se = _log_var_se(kappa1, n, m)
    if vx > 0 and vy > 0:
        # E[log s^2] = log sigma^2 - (kappa - 1) / 2n to first order: debias.
        log_ratio = math.log(vy / vx) + kappa1 / (2 * m) - kappa1 / (2 * n)
        std_p = 2 * normal_sf(abs(log_ratio) / se)
    else:
        std_p = 1.0 if vx == vy else 0.0
    mean_se = math.sqrt(vx / n + vy / m)
    gap = abs(float(y.mean() - x.mean()))
    mean_p = 2 * normal_sf(gap / mean_se) if mean_se > 0 else float(gap == 0)
    ratio = math.sqrt(vy / vx) if vx > 0 else math.inf
    return _Tests(ks_p, std_p, mean_p, ratio, se)


def _detectable(se: float, z: float) -> float:
    """The relative std error that the std test detects with the stated power."""
    return math.expm1(z * se / 2.0)


# --- drawing and accumulating --------------------------------------------------------


@dataclasses.dataclass
class _Side:
    """What the draws of one side (torch or JAX) of a pair have shown so far."""

    prints: list[np.ndarray] = dataclasses.field(default_factory=list)
    values: list[np.ndarray] = dataclasses.field(default_factory=list)
    constant: bool = True  # every draw so far holds a single value
    n: int = 0  # values kept

    def fixed(self) -> bool:
        """Whether every draw gave the same values (one draw: a constant)."""
        if len(self.prints) < 2:
            return self.constant
        return all(np.array_equal(self.prints[0], p) for p in self.prints[1:])

    def pooled(self) -> np.ndarray:
        return np.concatenate(self.values) if self.values else np.zeros(0)


@dataclasses.dataclass
class _Pair:
    """One torch parameter and its JAX counterpart."""

    torch_name: str
    target: _Target
    shape: tuple[int, ...]  # torch's
    layout: str
    convert: Convert  # JAX values to torch's layout
    positions: np.ndarray | None  # fingerprint positions (None: all values)
    eps: float  # the coarser dtype's machine epsilon
    mismatch: str = ""  # why the shapes cannot be paired
    torch: _Side = dataclasses.field(default_factory=_Side)
    jax: _Side = dataclasses.field(default_factory=_Side)

    @property
    def random(self) -> bool:
        return (
            not self.mismatch and not self.torch.fixed() and math.prod(self.shape) > 0
        )


def _sums(values: np.ndarray) -> list[float]:
    """Sum and sum of squares, accumulated in float64."""
    flat = values.reshape(-1)
    if flat.dtype not in (np.float16, np.float32, np.float64):
        flat = flat.astype(np.float32)  # bfloat16: exact in float32
    squares = np.einsum("i,i->", flat, flat, dtype=np.float64)
    return [float(flat.sum(dtype=np.float64)), float(squares)]


def _fingerprint(
    values: np.ndarray, raw: np.ndarray, positions: np.ndarray | None
) -> np.ndarray:
    """Values at fixed positions of ``values`` (torch layout), then the sums.

    The sums are those of ``raw``, the same values in any layout.
    """
    if positions is None:
        picked = values.reshape(-1)
    else:
        picked = values[np.unravel_index(positions, values.shape)]
    return np.concatenate([picked.astype(np.float64), _sums(raw)])


def _eps(*dtypes: Any) -> float:
    """The largest machine epsilon of ``dtypes`` (bfloat16 included)."""
    return max(float(jax.numpy.finfo(d).eps) for d in dtypes)  # type: ignore[no-untyped-call]


class _Run:
    """Draws both models until every random pair has the power it needs."""

    def __init__(
        self,
        factory: Callable[[int], Any] | None,
        module: Any,
        jax_init: Callable[[jax.Array], Any],
        mapping: NameMap | None,
        ignore: Sequence[str],
        seed: int,
        max_samples: int,
    ) -> None:
        self.factory, self.module, self.jax_init = factory, module, jax_init
        self.mapping, self.seed = mapping, seed
        self.ignore = [re.compile(pattern) for pattern in ignore]
        self.max_samples = max_samples
        self.pairs: list[_Pair] = []
        self.torch_only: list[str] = []
        self.jax_only: list[str] = []
        self.ignored: list[str] = []
        self.tied: list[tuple[str, str]] = []
        self.torch_names: list[str] = []  # after the mapping
        self.draws = 0

    def _ignored(self, name: str) -> bool:
        return any(pattern.fullmatch(name) for pattern in self.ignore)

    def _match(
        self,
        torch_params: Mapping[str, np.ndarray],
        aliases: Mapping[str, list[str]],
        buffers: set[str],
        jax_params: Mapping[str, Any],
        torch_style: bool,
    ) -> None:
        shapes = {key: tuple(value.shape) for key, value in jax_params.items()}
        matcher = _Matcher(shapes, torch_style)
        used: dict[str, set[int | None]] = {}
        for primary, values in torch_params.items():
            paired = False
            for name in [primary, *aliases[primary]]:
                if name != primary:
                    self.tied.append((name, primary))
                renamed = _rename(self.mapping, name)
                if renamed is None or self._ignored(name):
                    self.ignored.append(name)
                    paired = paired or name == primary
                    continue
                target = matcher.find(renamed)[0]
                if target is None or target.index in used.get(target.key, set()):
                    continue  # unmatched, or a tied alias of a pair already made
                used.setdefault(target.key, set()).add(target.index)
                paired = True
                self._add_pair(primary, target, values, jax_params[target.key])
            if not paired:
                why = matcher.find(primary)[1]
                self.torch_only.append(f"{primary} ({why})" if why else primary)
        for key, shape in shapes.items():
            if torch_style and key in buffers:
                continue  # Equinox's BatchNorm statistics: torch buffers
            if self._ignored(key):
                self.ignored.append(key)
                continue
            taken = used.get(key, set())
            if not taken:
                self.jax_only.append(key)
            elif None not in taken:
                rest = [i for i in range(shape[0]) if i not in taken]
                self.jax_only.extend(f"{key}[{i}]" for i in rest)

    def _add_pair(
        self, torch_name: str, target: _Target, torch_values: np.ndarray, jax_value: Any
    ) -> None:
        torch_shape = tuple(torch_values.shape)
        shape = tuple(jax_value.shape)[0 if target.index is None else 1 :]
        chosen = _choose_layout(target.key, shape, torch_shape)
        layout, convert = chosen if chosen is not None else ("", lambda a: a)
        size = math.prod(torch_shape)
        positions = None
        if size > _FINGERPRINT:
            rng = np.random.default_rng([self.seed, len(self.pairs)])
            positions = np.sort(rng.choice(size, _FINGERPRINT, replace=False))
        eps = _eps(torch_values.dtype, jax_value.dtype)
        mismatch = "" if chosen else f"shape: torch {torch_shape}, JAX {shape}"
        self.pairs.append(
            _Pair(
                torch_name,
                target,
                torch_shape,
                layout,
                convert,
                positions,
                eps,
                mismatch,
            )
        )

    def draw(self) -> None:
        """Draws both models once more and adds what each pair needs."""
        index = self.draws
        torch_params: dict[str, np.ndarray] | None = None
        if self.factory is not None or index == 0:
            module = self.factory(self.seed + index) if self.factory else self.module
            torch_params, aliases, buffers = _torch_params(module)
            del module
        result = self.jax_init(jax.random.fold_in(jax.random.key(self.seed), index))
        if index == 0:
            names = [n for primary, group in aliases.items() for n in (primary, *group)]
            renamed = (_rename(self.mapping, name) for name in names)
            self.torch_names = [name for name in renamed if name is not None]
        jax_params, torch_style = _jax_params(result, self.torch_names)
        del result
        if index == 0:
            assert torch_params is not None
            self._match(torch_params, aliases, buffers, jax_params, torch_style)
        host: dict[str, np.ndarray] = {}
        for number, pair in enumerate(self.pairs):
            if pair.mismatch:
                continue
            key = pair.target.key
            if key not in host:
                host[key] = np.asarray(jax_params[key])
            jax_values = host[key]
            if pair.target.index is not None:
                jax_values = jax_values[pair.target.index]
            if torch_params is not None:
                self._add(pair, pair.torch, torch_params[pair.torch_name], number)
            self._add(pair, pair.jax, jax_values, number)
        self.draws += 1

    def _add(self, pair: _Pair, side: _Side, values: np.ndarray, number: int) -> None:
        in_torch_layout = pair.convert(values) if side is pair.jax else values
        side.prints.append(_fingerprint(in_torch_layout, values, pair.positions))
        if values.size and float(values.min()) != float(values.max()):
            side.constant = False
        count = min(values.size, self.max_samples - side.n)
        if count > 0:
            stream = [self.seed, number, side is pair.jax, len(side.prints)]
            flat = values.reshape(-1)
            if count < flat.size:
                picked = np.random.default_rng(stream).choice(
                    flat.size, count, replace=False
                )
                flat = flat[picked]
            side.values.append(flat.astype(np.float64))
            side.n += count

    def random_pairs(self) -> list[_Pair]:
        return [pair for pair in self.pairs if pair.random]

    def needs_more(self, z: float, target: float) -> bool:
        """Whether a random pair's std test cannot yet see ``target``, and can."""
        goal = 2.0 * math.log1p(target) / z
        for pair in self.random_pairs():
            kappa1 = _kurtosis_excess(pair.torch.pooled(), pair.jax.pooled())
            if _log_var_se(kappa1, pair.torch.n, pair.jax.n) <= goal:
                continue
            if self.factory is not None and pair.torch.n < self.max_samples:
                return True
            # One torch draw: more JAX draws help only down to torch's own error.
            reachable = math.sqrt(kappa1 / max(pair.torch.n, 1)) < goal
            if self.factory is None and pair.jax.n < self.max_samples and reachable:
                return True
        return False

    def check_seeding(self) -> None:
        """Raises when a side gives the same values for every seed (or key)."""
        if self.draws < 2:
            return
        for side, what in (
            ("torch", "torch_model(seed) must seed torch (torch.manual_seed(seed))"),
            ("JAX", "jax_init(key) must draw with its key"),
        ):
            if side == "torch" and self.factory is None:
                continue
            sides = [
                p.torch if side == "torch" else p.jax
                for p in self.pairs
                if not p.mismatch
            ]
            varied = [s for s in sides if not s.constant]
            if varied and all(s.fixed() for s in varied):
                raise ValueError(
                    f"compare: every non-constant {side} parameter has the same "
                    f"values in all {self.draws} draws: {what}"
                )

    def row(
        self, pair: _Pair, z: float, threshold: float
    ) -> tuple[CompareRow, tuple[np.ndarray, np.ndarray] | None]:
        """The pair's row, and the values to plot (random rows)."""
        base: dict[str, Any] = {
            "torch_name": pair.torch_name,
            "jax_name": pair.target.name,
            "shape": pair.shape,
            "layout": pair.layout,
            "draws": len(pair.torch.prints),
        }
        if pair.mismatch:
            return CompareRow(
                kind="shape", ok=False, problem=pair.mismatch, **base
            ), None
        x, y = pair.torch.pooled(), pair.jax.pooled()
        base.update(
            torch_mean=float(x.mean()) if x.size else math.nan,
            torch_std=float(x.std()) if x.size else math.nan,
            jax_mean=float(y.mean()) if y.size else math.nan,
            jax_std=float(y.std()) if y.size else math.nan,
        )
        if not pair.random:
            problem = _exact_problem(pair)
            row = CompareRow(
                kind="fixed",
                ok=not problem,
                problem=problem,
                n=math.prod(pair.shape),
                detectable=0.0,
                **base,
            )
            return row, None
        tests = _tests(x, y)
        problems = []
        if self.draws > 1 and pair.jax.fixed():
            problems.append("JAX gives the same values for every key")
        if tests.std_p < threshold:
            problems.append(
                f"std {100 * (tests.ratio - 1):+.1f}% (p={tests.std_p:.1e})"
            )
        if tests.ks_p < threshold:
            problems.append(f"KS p={tests.ks_p:.1e}")
        if tests.mean_p < threshold:
            shift = (base["jax_mean"] - base["torch_mean"]) / base["torch_std"]
            problems.append(f"mean {shift:+.3f} std (p={tests.mean_p:.1e})")
        row = CompareRow(
            kind="random",
            ok=not problems,
            problem="; ".join(problems),
            n=min(x.size, y.size),
            ks_p=tests.ks_p,
            std_p=tests.std_p,
            mean_p=tests.mean_p,
            detectable=_detectable(tests.se, z),
            **base,
        )
        return row, (x[:_PLOT_VALUES], y[:_PLOT_VALUES])


def _exact_problem(pair: _Pair) -> str:
    """Why the JAX values of a fixed parameter are not torch's, or ""."""
    if not pair.jax.fixed():
        return "torch's values are fixed, JAX's change with the key"
    torch_print, jax_print = pair.torch.prints[0], pair.jax.prints[0]
    t, j = torch_print[:-2], jax_print[:-2]
    tol = pair.eps * np.maximum(np.abs(t), np.abs(j))
    if np.any(np.abs(t - j) > tol):
        worst = int(np.argmax(np.abs(t - j) - tol))
        return f"values differ: torch {t[worst]:.6g}, JAX {j[worst]:.6g}"
    (t_sum, t_squares), (j_sum, j_squares) = torch_print[-2:], jax_print[-2:]
    # Each value within eps of torch's: the sums within these bounds.
    sum_tol = 2 * pair.eps * math.sqrt(math.prod(pair.shape) * t_squares)
    if (
        abs(t_sum - j_sum) > sum_tol
        or abs(t_squares - j_squares) > 4 * pair.eps * t_squares
    ):
        return f"values differ: sum {t_sum:.6g}, JAX {j_sum:.6g}"
    return ""


def _draw_until_powered(
    run: _Run, alpha: float, power: float, target: float, min_draws: int, max_draws: int
) -> tuple[float, int]:
    """Draws until each random pair detects ``target``; (z, tests) at the end."""
    normal = statistics.NormalDist()

    def z_and_tests() -> tuple[float, int]:
        tests = 3 * len(run.random_pairs())
        z_alpha = normal.inv_cdf(1 - alpha / (2 * max(tests, 1)))
        return z_alpha + normal.inv_cdf(power), tests

    while run.draws < max_draws:
        if run.draws >= min_draws and not run.needs_more(z_and_tests()[0], target):
            break
        run.draw()
    run.check_seeding()
    return z_and_tests()


# --- output --------------------------------------------------------------------------


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _law(row: CompareRow) -> str:
    if row.kind == "shape":
        return "-"
    if row.kind == "fixed":
        if row.torch_std == 0:
            return f"= {_number(row.torch_mean)}"
        return f"fixed, mean {_number(row.torch_mean)}"
    return f"{_number(row.torch_mean)} ± {_number(row.torch_std)}"


def _jax_law(row: CompareRow) -> str:
    if row.kind == "random":
        return f"{_number(row.jax_mean)} ± {_number(row.jax_std)}"
    if row.kind == "fixed":
        return "equal" if row.ok else "differs"
    return "-"


def _detects(row: CompareRow, target: float) -> str:
    if row.kind != "random":
        return "exact" if row.kind == "fixed" else "-"
    flag = "" if row.detectable <= target else " (low)"
    return f"±{100 * row.detectable:.1f}%{flag}"


def _table(report: CompareReport, failures_only: bool) -> str:
    rows = [r for r in report.rows if not (failures_only and r.ok)]
    header = ("", "torch", "JAX", "shape", "torch law", "JAX", "n", "detects")
    cells = [
        (
            "ok" if r.ok else "FAIL",
            r.torch_name,
            ("=" if r.jax_name == r.torch_name else r.jax_name)
            + (" (reshaped)" if r.layout == "reshaped" else ""),
            "x".join(map(str, r.shape)) or "()",
            _law(r),
            _jax_law(r),
            str(r.n),
            _detects(r, report.target),
        )
        for r in rows
    ]
    widths = [
        max(len(line[i]) for line in [header, *cells]) for i in range(len(header))
    ]
    lines = [
        f"compare: {'ok' if report.ok else 'FAILED'}: {len(report.rows)} pairs, "
        f"{len(report.failures)} failing; unmatched: {len(report.torch_only)} torch, "
        f"{len(report.jax_only)} JAX; {report.draws} draws",
        f"false-alarm rate {report.alpha:g} per report ({report.tests} tests); "
        f"detects: the std error seen with probability {report.power:g}",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
    ]
    for line, row in zip(cells, rows, strict=True):
        text = "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        lines.append(text.rstrip() + (f"  <- {row.problem}" if row.problem else ""))
    for title, names in (
        ("torch only", report.torch_only),
        ("JAX only", report.jax_only),
        ("ignored", report.ignored),
    ):
        if names:
            lines.append(f"{title}: {', '.join(names)}")
    if report.tied:
        tied = ", ".join(f"{alias} = {primary}" for alias, primary in report.tied)
        lines.append(f"tied in torch: {tied}")
    return "\n".join(lines)


def _pattern(name: str) -> str:
    """A name with its layer numbers starred: one panel stands for every layer."""
    return re.sub(r"(?<=\.)\d+(?=\.)", "*", name)


def _panels(
    report: CompareReport, names: Sequence[str] | None, max_panels: int
) -> list[int]:
    """The rows to plot, by index."""
    if names is not None:
        index: dict[str, int] = {}
        for i, row in enumerate(report.rows):
            index.setdefault(row.torch_name, i)
            index.setdefault(row.jax_name, i)
        wanted = [index.get(name, -1) for name in names]
        missing = [
            name
            for name, i in zip(names, wanted, strict=True)
            if i not in report.samples
        ]
        if missing:
            raise ValueError(
                f"CompareReport.plot: no random row for {missing}; the random rows are "
                "the ones with values to show"
            )
        return wanted
    shown = sorted(report.samples, key=lambda i: report.rows[i].ok)  # failures first
    chosen, patterns = [], set()
    for i in shown:
        pattern = _pattern(report.rows[i].torch_name)
        if not report.rows[i].ok or pattern not in patterns:
            patterns.add(pattern)
            chosen.append(i)
    return chosen[:max_panels]


def _plot(
    report: CompareReport,
    names: Sequence[str] | None,
    max_panels: int,
    columns: int,
    bins: int,
) -> Any:
    _optional.require("matplotlib", "plot", "jaxinit.CompareReport.plot")
    from matplotlib.figure import Figure

    panels = _panels(report, names, max_panels)
    columns = max(min(columns, len(panels)), 1)
    lines = max(math.ceil(len(panels) / columns), 1)
    figure = Figure(figsize=(3.2 * columns, 2.3 * lines), layout="constrained")
    axes = figure.subplots(lines, columns, squeeze=False).flat
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, index in zip(axes, panels, strict=False):
        row = report.rows[index]
        torch_values, jax_values = report.samples[index]
        edges = np.histogram_bin_edges(np.concatenate([torch_values, jax_values]), bins)
        ax.hist(torch_values, edges, density=True, alpha=0.5, label="torch")
        ax.hist(jax_values, edges, density=True, histtype="step", lw=1.5, label="JAX")
        color = "black" if row.ok else "red"
        ax.set_title(
            ("" if row.ok else "FAIL ") + row.torch_name, fontsize=8, color=color
        )
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=5)
        ax.set_yticks([])
        ax.text(
            0.02,
            0.95,
            f"std {row.torch_std:.3g} / {row.jax_std:.3g}\nKS p {row.ks_p:.2g}",
            transform=ax.transAxes,
            fontsize=7,
            va="top",
        )
    if panels:
        axes[0].legend(fontsize=7, loc="upper right")
    return figure
