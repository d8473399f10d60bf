# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint pytest bench system-deps services clean

$(BIN)/passage: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Start Passage on its embedded defaults (data in ./.passage).
run: $(BIN)/passage
	$(BIN)/passage serve $(ARGS)

## Install everything the tests need, then lint, type-check and test.
test: system-deps services $(BIN)/passage lint pytest

system-deps:
	scripts/install-test-deps.sh

services:
	scripts/start-test-services.sh

lint: $(BIN)/passage
	$(BIN)/ruff format --no-cache --check src tests bench
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy

pytest: $(BIN)/passage
	$(BIN)/pytest -q -p no:cacheprovider $(ARGS)

## Passage and coturn side by side under the same turnutils_uclient load.
bench: system-deps $(BIN)/passage
	$(BIN)/python bench/turn_relay.py $(ARGS)

clean:
	rm -rf $(VENV) .passage build src/*.egg-info
