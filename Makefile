# disbench: make setup, make test, make lint, make bench, make report
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-fast lint bench report study

setup:  ## create .venv with the CPU-or-CUDA torch wheel and disbench (editable) + test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"

test:  ## the whole suite, on every core (pytest-xdist, with the SLURM tests; see README)
	$(PY) -m pytest -q -n auto --dist loadgroup --durations=15

test-fast:  ## everything but the slow and the SLURM tests (end-to-end processes, sweeps, scoring)
	$(PY) -m pytest -q -n auto --dist loadgroup -m "not slow and not slurm"

lint:
	$(PY) -m ruff check disbench tests bench

bench:  ## benchmarks; results go to docs/benchmarks.md by hand, with date and machine
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

report:  ## the committed study's table and report, from its stored runs (results/quick-dsprites)
	$(VENV)/bin/disbench aggregate quick-dsprites --results results
	$(VENV)/bin/disbench report quick-dsprites --results results

study:  ## train the committed study again (~90 min on 2 CPU cores), then make report
	DISBENCH_RESULTS=results $(VENV)/bin/disbench sweep quick-dsprites
	$(MAKE) report
