# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint pytest bench offload system-deps services clean

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

## The kernel fast path for `passage serve --offload xdp` (docs/offload.md). Not part of
## `make run`: it needs Debian's clang and libbpf-dev, which a default install does without.
OFFLOAD_SRC := src/passage/offload/bpf/passage_xdp.c
OFFLOAD_OBJ := src/passage/offload/bpf/passage_xdp.o
BPF_CFLAGS := -O2 -g -Wall -Wextra -Werror -target bpf -I/usr/include/$(shell uname -m)-linux-gnu
offload: $(OFFLOAD_OBJ)

$(OFFLOAD_OBJ): $(OFFLOAD_SRC)
	@command -v clang >/dev/null && [ -f /usr/include/bpf/bpf_helpers.h ] || \
	  { echo "make offload needs clang and libbpf-dev: apt-get install clang libbpf-dev" >&2; exit 1; }
	clang $(BPF_CFLAGS) -c $< -o $@

clean:
	rm -rf $(VENV) .passage build src/*.egg-info $(OFFLOAD_OBJ)
