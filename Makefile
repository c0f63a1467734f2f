# litforge's two quick-start commands (see README):
#   make train   create .venv, install litforge, run `litforge fit` on the packaged default
#   make test    create .venv, install litforge with every extra + dev tools, run ruff and the test suite
# torch is pinned through constraints.txt (the CPU build on disk); an unpinned torch pulls a CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt
PYTEST_ARGS ?=

.PHONY: train test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[dev]"
	touch $@ $(VENV)/.base-installed

train: $(VENV)/.base-installed
	$(BIN)/litforge fit

# One BLAS/OpenMP thread per process: the suite runs many tiny models and subprocesses on 2 cores, where
# oversubscribed thread pools made tests several times slower (measured; see docs/performance.md).
# Two pytest workers (pytest-xdist): most tests wait on subprocesses, so 2 cores run two of them at once.
PYTEST_WORKERS ?= 2
test: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks

format: $(VENV)/.dev-installed
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
