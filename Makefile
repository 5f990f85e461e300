# Entry points for a fresh clone: `make demo`, `make test`, `make docs`.
# Each creates .venv if it is missing and installs what it needs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export OPENBLAS_NUM_THREADS ?= 1

# The oldest supported versions, read from pyproject.toml (jax>=..., flax>=...).
# The oldest Flax needs a newer jax than the core does: its own floor, below.
OLDEST_JAX := $(shell grep -o '"jax>=[0-9.]*' pyproject.toml | head -1 | cut -d= -f2)
OLDEST_FLAX := $(shell grep -o '"flax>=[0-9.]*' pyproject.toml | head -1 | cut -d= -f2)
OLDEST_FLAX_JAX := 0.8.1
OLDEST := .venv-oldest
OLDEST_TESTS := tests/test_supported_versions.py
OLDEST_STAMP := $(OLDEST)/.installed-$(OLDEST_JAX)-$(OLDEST_FLAX)-$(OLDEST_FLAX_JAX)
PIP_QUIET := 2>&1 | grep -v "is ignored" || true

.PHONY: demo test lint typecheck pytest venv docs test-oldest clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip $(PIP_QUIET)
	$(BIN)/python -m pip install -q -e ".[test,parity,plot,notebooks,dev,docs]" $(PIP_QUIET)
	$(BIN)/python -c "import jaxinit, torch, flax, scipy, matplotlib, sphinx, myst_nb"
	rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(BIN)/python -m jaxinit

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The site, from the committed notebooks' outputs (nothing is executed), warnings
# as errors. docs/conf.py generates docs/api/ and docs/notebooks/ (not committed).
docs: venv
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# The fast subset on the oldest supported versions: the core on the oldest jax
# (.venv-oldest/core), the Flax helpers on the oldest Flax at its oldest jax
# (.venv-oldest/flax). Two venvs, because that Flax needs a newer jax.
$(OLDEST_STAMP): pyproject.toml Makefile
	rm -rf $(OLDEST) && mkdir -p $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)/core
	$(OLDEST)/core/bin/python -m pip install -q -e . "jax==$(OLDEST_JAX)" \
		"jaxlib==$(OLDEST_JAX)" pytest scipy $(PIP_QUIET)
	$(PYTHON) -m venv $(OLDEST)/flax
	$(OLDEST)/flax/bin/python -m pip install -q -e . "flax==$(OLDEST_FLAX)" \
		"jax==$(OLDEST_FLAX_JAX)" "jaxlib==$(OLDEST_FLAX_JAX)" pytest scipy $(PIP_QUIET)
	$(OLDEST)/core/bin/python -c "import jax; assert jax.__version__ == '$(OLDEST_JAX)'"
	$(OLDEST)/flax/bin/python -c "import flax; assert flax.__version__ == '$(OLDEST_FLAX)'"
	touch $@

test-oldest: $(OLDEST_STAMP)
	$(OLDEST)/core/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)
	$(OLDEST)/flax/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

clean:
	rm -rf $(VENV) $(OLDEST) .pytest_cache .mypy_cache .ruff_cache docs/_build docs/api docs/notebooks
