# Quick start: `make run` and `make test`. Everything else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup run test bench lock clean browser

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vacina-d1 precisa de Python 3.11 ou mais novo"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/vacina-d1 run --date yesterday
	$(BIN)/vacina-d1 admin seed-demo
	$(BIN)/vacina-d1 serve --dev-login

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

# Refreshes the pinned versions the setup installs (commit the result).
lock:
	rm -rf /tmp/vacina-d1-lock && $(PYTHON) -m venv /tmp/vacina-d1-lock
	/tmp/vacina-d1-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/vacina-d1-lock/bin/python -m pip install --quiet -e '.[dev]'
	/tmp/vacina-d1-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) var .pytest_cache
