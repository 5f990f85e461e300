"""Imports of the optional frameworks, with the install command in the error."""

import importlib
from types import ModuleType


def require(module: str, extra: str, owner: str) -> ModuleType:
    """Imports ``module``, or raises ImportError saying which extra provides it.

    Args:
        module: the framework's top-level module (``"flax"``).
        extra: jaxinit's extra that installs it (``"flax"``).
        owner: the jaxinit function that needs it, for the message.

    Returns:
        The imported module.

    Raises:
        ImportError: ``module`` is not installed; the message says
            ``pip install 'jaxinit[extra]'``.

    Examples:
        >>> from jaxinit._optional import require
        >>> require("json", "json", "example").__name__
        'json'
        >>> require("no_such_fw", "nsf", "jaxinit.example")
        Traceback (most recent call last):
        ImportError: jaxinit.example needs no_such_fw, ...: pip install 'jaxinit[nsf]'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:  # the framework is there but broken: say that
            raise
        raise ImportError(
            f"{owner} needs {module}, which is not installed: "
            f"pip install 'jaxinit[{extra}]'",
            name=module,
        ) from error
