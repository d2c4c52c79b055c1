# disbench: make setup, make test, make lint, make bench
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-fast lint bench

setup:  ## create .venv with the CPU-or-CUDA torch wheel and disbench (editable) + test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"

test:  ## the whole suite (~10 min on 2 cores)
	$(PY) -m pytest -q

test-fast:  ## everything but the slow tests
	$(PY) -m pytest -q -m "not slow"

lint:
	$(PY) -m ruff check disbench tests bench

bench:  ## benchmarks; results go to docs/benchmarks.md by hand, with date and machine
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done
