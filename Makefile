# The two commands of the README: `make run` and `make test`. Each sets up
# its own virtual environment; nothing installed by hand is assumed.
# `make test-fast` is `make test` without the tests marked slow.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make run` has its own environment with pounce and its runtime
# dependencies only: no test or docs tools, no test plugin, no contrib.
RUN_VENV ?= .venv-run
RUN_STAMP := $(RUN_VENV)/.installed-stamp
# Every contrib package, with its own test extra (what its tests need).
CONTRIB := $(wildcard plugins-contrib/*/pyproject.toml)

.PHONY: run run-setup test test-fast test-pythons test-all setup system-deps lint docs docs-generate docs-serve bench clean

$(STAMP): pyproject.toml $(CONTRIB) $(wildcard tests/fixtures/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	$(BIN)/python -m pip install --quiet $(patsubst %/pyproject.toml,./%,$(wildcard tests/fixtures/*/pyproject.toml))
	$(if $(CONTRIB),$(BIN)/python -m pip install --quiet $(patsubst %/pyproject.toml,-e './%[test]',$(CONTRIB)))
	touch $(STAMP)

setup: $(STAMP)

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RUN_VENV)/bin/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

run-setup: $(RUN_STAMP)

system-deps:
	bash scripts/system-deps.sh

run: run-setup
	$(RUN_VENV)/bin/pounce --config pounce.toml

test: setup system-deps
	$(BIN)/ruff check pounce tests benchmarks plugins-contrib scripts
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup system-deps
	$(BIN)/ruff check pounce tests benchmarks plugins-contrib scripts
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The other supported Pythons (README, "Supported Python"): the whole suite
# on 3.14, the tests not marked slow on 3.10, 3.12, 3.13 and 3.15.
test-pythons: system-deps
	bash scripts/test-pythons.sh

# What CI runs: `make test` (3.11), then every other supported Python.
test-all: test test-pythons

lint: setup
	$(BIN)/ruff check pounce tests benchmarks plugins-contrib scripts

# The documentation site (mkdocs.yml): the generated pages are rewritten
# from their sources (option registry, published benchmark run), then the
# site is built to site/ with every warning an error.
docs-generate: setup
	$(BIN)/python scripts/docs_generate.py

docs: docs-generate
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: docs-generate
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

bench: setup
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) $(RUN_VENV) .pytest_cache build site *.egg-info
	rm -rf --one-file-system .cache
