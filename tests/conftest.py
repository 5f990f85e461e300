"""Test environment: 8 simulated CPU devices (for sharding tests), float32 default."""

import os

import jax

# Sharding tests need several devices; CPU devices are simulated. Must run before
# any backend is initialized.
jax.config.update("jax_num_cpu_devices", 8)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
