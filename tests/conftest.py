"""Test environment: 8 simulated CPU devices (for sharding tests), float32 default."""

import importlib.util
import os

import jax
import pytest

# Sharding tests need several devices; CPU devices are simulated. Must run before
# any backend is initialized.
try:
    jax.config.update("jax_num_cpu_devices", 8)
except AttributeError:  # jax < 0.5 (make test-oldest): the XLA flag does the same
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


# Documentation pages whose examples build torch models (torch: the parity extra).
# A hook here rather than a docs/conftest.py: two conftest modules would collide
# under --doctest-modules.
TORCH_PAGES = {"check_a_port.md"}


def pytest_collection_modifyitems(config: object, items: list[pytest.Item]) -> None:
    """Skips the doctests of pages that need torch when torch is not installed."""
    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason="the page's examples need torch")
    for item in items:
        if item.path.name in TORCH_PAGES:
            item.add_marker(skip)
