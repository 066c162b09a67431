# Quick start: `make run` and `make test`. Everything else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup run test bench lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vacina-d1 precisa de Python 3.11 ou mais novo"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/vacina-d1 run --date yesterday
	$(BIN)/vacina-d1 serve

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmarks at their smaller sizes (bench/README.md has the figures and the full commands).
bench: setup
	$(BIN)/python bench/generate.py --records 1000000
	$(BIN)/python bench/partition.py --records 1000000
	$(BIN)/python bench/dagster_overhead.py --records 100000
	$(BIN)/python bench/import_pni.py
	$(BIN)/python bench/bench_fhir.py --records 50000
	$(BIN)/python bench/bench_portal.py
	$(BIN)/python bench/whole_job.py --records 100000

# Refreshes the pinned versions the setup installs (commit the result).
lock:
	rm -rf /tmp/vacina-d1-lock && $(PYTHON) -m venv /tmp/vacina-d1-lock
	/tmp/vacina-d1-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/vacina-d1-lock/bin/python -m pip install --quiet -e '.[dev]'
	/tmp/vacina-d1-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) var .pytest_cache
