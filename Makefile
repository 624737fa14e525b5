# One entry point for people and CI. `make demo` and `make check` work on a fresh clone:
# each builds the virtual environment first when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The tests run as this many pytest processes side by side (scripts/pytest_shards.py).
SHARDS ?= 3

.PHONY: demo check lint typecheck test test-serial durations compose-smoke format clean

$(BIN)/inferswarm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/inferswarm
	$(BIN)/inferswarm demo

lint: $(BIN)/inferswarm
	$(BIN)/ruff check lib tests locustfiles scripts bench
	$(BIN)/ruff format --check lib tests locustfiles scripts bench

typecheck: $(BIN)/inferswarm
	$(BIN)/mypy

test: $(BIN)/inferswarm
	$(BIN)/python scripts/pytest_shards.py --shards $(SHARDS)

# One pytest process, in file order (e.g. to debug an interaction between tests).
test-serial: $(BIN)/inferswarm
	$(BIN)/pytest -q

# Records every test's duration for the shards' balance: after adding or much changing slow tests.
durations: $(BIN)/inferswarm
	$(BIN)/pytest -q -p no:cacheprovider --store-durations --durations-path tests/durations.json

check: lint typecheck test

# docker-compose.yml on a real engine (Docker, or Podman set up by the script): build, run, check, down.
compose-smoke:
	scripts/compose-smoke

format: $(BIN)/inferswarm
	$(BIN)/ruff format lib tests locustfiles scripts bench
	$(BIN)/ruff check --fix lib tests locustfiles scripts bench

clean:
	rm -rf $(VENV) results .mypy_cache .ruff_cache .pytest_cache
