# Quick start: `make run` and `make test`. Everything else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Parallel test processes (pytest-xdist): one per core; each test file stays in one process,
# the longest files first (tests/durations.json, see tests/conftest.py).
TEST_WORKERS ?= auto
# Coverage of the four packages may only rise: the floor is the figure measured when it was set
# (85.2% in-process on 2026-12-07, with all of round 2's tests).
COVERAGE_FLOOR ?= 85
PACKAGES := pipelines assets serving portal_api

.PHONY: setup run dagster test lint typecheck coverage bench lock clean browser

# uv installs the same pinned versions (constraints.txt) in a fraction of pip's time; pip
# stays as the fallback where uv cannot be installed. Both write the bytecode at install time
# (uv only when asked): where PYTHONDONTWRITEBYTECODE is set, as on these machines, every
# Python process would otherwise compile Dagster & co. from source on every start.
$(STAMP): pyproject.toml constraints.txt client/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vacina-d1 precisa de Python 3.11 ou mais novo"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The server, and the municipalities' client (its own distribution, see client/pyproject.toml) for `vacina-d1 sync`.
	if $(BIN)/python -m pip install --quiet -c constraints.txt uv; then \
		$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]' -e './client[duckdb,postgresql]'; \
	else \
		$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e './client[duckdb,postgresql]'; \
	fi
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/vacina-d1 run --date yesterday
	$(BIN)/vacina-d1 admin seed-demo
	$(BIN)/vacina-d1 serve --dev-login

# The Dagster UI on the project's instance: the root's dagster.yaml keeps everything under
# var/dagster, the instance `vacina-d1 run` records in (no temporary directory).
dagster: setup
	DAGSTER_HOME=$(CURDIR) exec $(BIN)/dagster dev -w workspace.yaml

lint: setup
	$(BIN)/ruff check $(PACKAGES) tests bench
	$(BIN)/ruff format --check $(PACKAGES) tests bench

typecheck: setup
	$(BIN)/mypy

# Lint and types first (seconds), then the suite in parallel with coverage.
test: setup browser lint typecheck
	@# The project's own bytecode too: the suite starts a few hundred Python processes.
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) client/src >/dev/null
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10 \
		--cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR) $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
# As root (CI) it is installed when missing; elsewhere the tests skip with a message,
# unless CI=true or VACINA_D1_REQUIRE_BROWSER=1, where a missing browser fails them.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ -z "$$VACINA_D1_CHROMIUM" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y --no-install-recommends chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)); \
	  else \
	    echo "Aviso: Chromium ausente (/usr/bin/chromium); os testes de navegador serão pulados. Instale com: sudo apt-get install -y chromium"; \
	  fi; \
	fi

# The benchmarks at their smaller sizes (bench/README.md has the figures and the full commands).
bench: setup
	$(BIN)/python bench/generate.py --records 1000000
	$(BIN)/python bench/partition.py --records 1000000
	$(BIN)/python bench/dagster_overhead.py --records 100000
	$(BIN)/python bench/import_pni.py
	$(BIN)/python bench/bench_fhir.py --records 50000
	$(BIN)/python bench/bench_portal.py
	$(BIN)/python bench/sync.py --days 30 --rows 5000
	$(BIN)/python bench/whole_job.py --records 100000

# Refreshes the pinned versions the setup installs (commit the result).
lock:
	rm -rf /tmp/vacina-d1-lock && $(PYTHON) -m venv /tmp/vacina-d1-lock
	/tmp/vacina-d1-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/vacina-d1-lock/bin/python -m pip install --quiet -e '.[dev]'
	/tmp/vacina-d1-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) var .pytest_cache
