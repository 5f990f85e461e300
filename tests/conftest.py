"""Test environment: 8 simulated CPU devices (for sharding tests), float32 default."""

import os

import jax

# Sharding tests need several devices; CPU devices are simulated. Must run before
# any backend is initialized.
try:
    jax.config.update("jax_num_cpu_devices", 8)
except AttributeError:  # jax < 0.5 (make test-oldest): the XLA flag does the same
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
