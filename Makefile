# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint pytest bench offload system-deps services clean

# The runtime alone (what `make run` needs), then the test toolchain on top (`make test`).
# Each step says what it does: the first install downloads and builds for a while.
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

# setup.py and the C source: pip builds the fast path extension (docs/architecture.md) again.
$(RUNTIME): pyproject.toml setup.py src/passage/turn/fastpath/_router.c
	@echo "make: creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@echo "make: installing Passage and its runtime dependencies into $(VENV) (about 120 MB)"
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e .
	@touch $@

$(DEV): $(RUNTIME)
	@echo "make: installing the test toolchain into $(VENV) (pytest, ruff, mypy, aiortc, Azure SDKs, Playwright, asyncpg)"
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

## Start Passage on its embedded defaults (data in ./.passage).
run: $(RUNTIME)
	@echo "make: starting $(BIN)/passage serve $(ARGS)"
	$(BIN)/passage serve $(ARGS)

## Install everything the tests need, then lint, type-check and test.
test: system-deps services $(DEV) lint pytest

system-deps:
	scripts/install-test-deps.sh

services:
	scripts/start-test-services.sh

lint: $(DEV)
	$(BIN)/ruff format --no-cache --check src tests bench
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy

pytest: $(DEV)
	$(BIN)/pytest -q -p no:cacheprovider $(ARGS)

## Passage and coturn side by side under the same turnutils_uclient load.
bench: system-deps $(DEV)
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
