# The two commands of the README: `make run` and `make test`. Each sets up
# its own virtual environment; nothing installed by hand is assumed.
# `make test-fast` is `make test` without the tests marked slow.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONTRIB := $(wildcard plugins-contrib/*/pyproject.toml)

.PHONY: run test test-fast setup system-deps lint docs bench clean

$(STAMP): pyproject.toml $(CONTRIB) $(wildcard tests/fixtures/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet $(patsubst %/pyproject.toml,./%,$(wildcard tests/fixtures/*/pyproject.toml))
	$(if $(CONTRIB),$(BIN)/python -m pip install --quiet $(patsubst %/pyproject.toml,-e ./%,$(CONTRIB)))
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

run: setup
	$(BIN)/pounce --config pounce.toml

test: setup system-deps
	$(BIN)/ruff check pounce tests benchmarks plugins-contrib
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup system-deps
	$(BIN)/ruff check pounce tests benchmarks plugins-contrib
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check pounce tests benchmarks plugins-contrib

docs: setup
	$(BIN)/python -m pounce.core.reference > docs/config.md

bench: setup
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
