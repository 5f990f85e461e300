"""Shared helpers for the benchmark scripts: timing, machine description, tables."""

import os

# QR goes through LAPACK: two-thread BLAS can slow down 100x on a loaded 2-core
# machine, so every benchmark pins it (before numpy/jax/torch load BLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def median_seconds(fn: Callable[[], Any], *, runs: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``runs`` calls, after ``warmup`` calls.

    ``fn`` must block until its result is ready (``block_until_ready`` for jax).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """One paragraph describing the machine, the load and the library versions."""
    import jax
    import numpy as np

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a benchmark extra
        torch_version = "absent"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as meminfo:
            mem_kib = int(meminfo.readline().split()[1])
        memory = f"{mem_kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        memory = "unknown RAM"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    devices = ", ".join(sorted({d.platform for d in jax.devices()}))
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory}; load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"python {platform.python_version()}, jax {jax.__version__} ({devices}), "
        f"numpy {np.__version__}, torch {torch_version}; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a table cell ("-" when absent)."""
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    """``numerator / denominator`` as ``1.02x`` ("-" when either is absent)."""
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def run_script(args: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """Runs ``python args...`` in a fresh process and returns its stdout."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, *args],
        check=True,
        capture_output=True,
        text=True,
        env=full_env,
    )
    return done.stdout
