# Two entry points, each doing all of its own set-up on a fresh machine:
#   make verify  - start the reference stack and check it (the main job)
#   make test    - lint, type-check and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: verify test lint types bench serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

verify: $(STAMP)
	$(BIN)/sessionlab verify

serve: $(STAMP)
	$(BIN)/sessionlab serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

test: lint types $(STAMP)
	$(BIN)/sessionlab schemas --check
	scripts/test.sh

bench: $(STAMP)
	$(BIN)/sessionlab bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
