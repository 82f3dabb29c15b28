# Overseer: the two commands a fresh clone needs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AGENTS_STAMP := .tools/agents/.installed
BROWSER_STAMP := .tools/.browser

.PHONY: demo test test-fast lint typecheck agents venv clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

agents: $(AGENTS_STAMP)

$(AGENTS_STAMP): scripts/install-agents.sh
	bash scripts/install-agents.sh
	@touch $(AGENTS_STAMP)

$(BROWSER_STAMP): scripts/install-browser.sh
	bash scripts/install-browser.sh
	@mkdir -p .tools && touch $(BROWSER_STAMP)

# The whole suite on SQLite and on a throwaway PostgreSQL (when the server binaries exist).
test: venv agents $(BROWSER_STAMP)
	@bash scripts/run-tests.sh

test-fast: venv
	$(BIN)/python -m pytest -q -m "not agents and not browser" -n 2

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: venv
	$(BIN)/mypy src

demo: venv agents
	$(BIN)/overseer demo

bench: venv agents
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .tools .pytest_cache
