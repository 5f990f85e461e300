# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv if it is missing and install what they need into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test lint typecheck pytest venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install -q -e ".[test,parity,plot,notebooks,dev]" 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import jaxinit, torch, flax, scipy, matplotlib" 
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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
