"""Doctests of the pages: a page whose examples need torch is skipped without it."""

import importlib.util

# Pages whose examples build torch models (torch is the "parity" extra).
NEEDS_TORCH = ["check_a_port.md"]

collect_ignore = NEEDS_TORCH if importlib.util.find_spec("torch") is None else []
