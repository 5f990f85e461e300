"""``calculate_gain``: the recommended gain for a nonlinearity, exactly as torch."""

import math

_UNIT_GAIN = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
NONLINEARITIES = (*_UNIT_GAIN, "tanh", "relu", "leaky_relu", "selu")


def leaky_relu_slope(param: object) -> float:
    """Returns torch's leaky_relu slope for ``param``, or raises its ValueError."""
    if param is None:
        return 0.01
    # torch accepts exactly: non-bool int, or float (numpy.float64 subclasses float).
    if isinstance(param, bool) or not isinstance(param, int | float):
        raise ValueError(f"negative_slope {param} not a valid number")
    slope = float(param)
    if not math.isfinite(slope):
        raise ValueError(
            f"negative_slope {param} not a valid number: the slope must be finite"
        )
    return slope


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Returns the recommended gain for a nonlinearity, as ``torch.nn.init``.

    =========================================  ====================================
    nonlinearity                               gain
    =========================================  ====================================
    linear, conv*d, conv_transpose*d, sigmoid  ``1`` (an int, as in torch)
    tanh                                       ``5 / 3``
    relu                                       ``sqrt(2)``
    leaky_relu                                 ``sqrt(2 / (1 + slope**2))``, slope
                                               ``param`` (``0.01`` when it is None)
    selu                                       ``3 / 4``
    =========================================  ====================================

    Names are case-sensitive, as in torch. ``param`` is only read for
    ``leaky_relu``. Note that ``kaiming_*(a=0)`` passes ``a`` as the slope, so the
    default ``kaiming_uniform()`` uses gain ``sqrt(2)``, not the slope 0.01.

    Args:
        nonlinearity: the name of the nonlinear function, as in torch.
        param: the negative slope of ``leaky_relu``; a non-bool int or a float.

    Returns:
        The gain, a Python float (the int ``1`` for the linear-like names).

    Raises:
        ValueError: unknown ``nonlinearity`` (message ``Unsupported nonlinearity
            ...``) or a ``leaky_relu`` slope that is not a finite number.

    Examples:
        >>> import jaxinit
        >>> jaxinit.calculate_gain("relu")
        1.4142135623730951
        >>> jaxinit.calculate_gain("leaky_relu", 0.2)
        1.3867504905630728
        >>> jaxinit.calculate_gain("conv2d")
        1

    References:
        ``torch.nn.init.calculate_gain``.
    """
    if not isinstance(nonlinearity, str):
        raise ValueError(
            f"Unsupported nonlinearity {nonlinearity!r}: nonlinearity must be one "
            f"of {', '.join(NONLINEARITIES)}"
        )
    if nonlinearity in _UNIT_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = leaky_relu_slope(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"Unsupported nonlinearity {nonlinearity}: nonlinearity must be one of "
        f"{', '.join(NONLINEARITIES)} (case-sensitive)"
    )
