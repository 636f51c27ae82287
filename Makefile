# Guanxi development tasks. Needs only Python >= 3.11 and make: the first run creates a private
# uv in .tools/ and the project environment in .venv/ (pinned by uv.lock).
#
#   make install   set up .tools/ and .venv/ (quick when nothing changed)
#   make run       migrate, load the demo tenant once, print an admin API key, serve http://127.0.0.1:8000/graphql
#   make test      the test suite (SQLite); extra pytest arguments: make test PYTEST_ARGS="-k merge -x"
#   make test-pg   the test suite on a throw-away PostgreSQL server (scripts/pg-test-server.sh)
#   make lint      ruff (lint and format check), mypy, import-linter
#   make format    apply ruff's formatter and safe fixes
#   make docs      serve the docs site on http://127.0.0.1:8001 (mkdocs, Material theme)
#   make docs-build  build the docs site into site/ with --strict (broken links fail)

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
VENV := .venv
UV := $(TOOLS)/bin/uv
UV_STAMP := $(TOOLS)/.uv-$(UV_VERSION)
VENV_STAMP := $(VENV)/.guanxi-synced
PYTEST_ARGS ?=

# Never let uv fetch a Python build: use the interpreter that runs this Makefile.
export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := help
.PHONY: help install run test test-pg lint format docs docs-build clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

$(UV_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Guanxi needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	@if [ ! -x $(TOOLS)/bin/pip ]; then \
		rm -rf $(TOOLS); \
		$(PYTHON) -m venv $(TOOLS) || { rm -rf $(TOOLS); \
			echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@touch $@

$(VENV_STAMP): $(UV_STAMP) pyproject.toml uv.lock $(wildcard tests/fixtures/*/pyproject.toml) $(wildcard docs/examples/*/pyproject.toml)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

install: $(VENV_STAMP)

run: install
	$(VENV)/bin/guanxi db upgrade
	$(VENV)/bin/guanxi demo --if-empty
	@echo "Demo admin API key (in GraphiQL, Headers: {\"Authorization\": \"Bearer <key>\"}):"
	@$(VENV)/bin/guanxi apikey create --tenant demo --role admin --name "make run" --replace
	$(VENV)/bin/guanxi serve --dev

# Any pytest failure fails the target, including exit code 5 (no tests collected).
test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-pg: install
	@url="$$(scripts/pg-test-server.sh start)" || exit 1; \
	trap 'scripts/pg-test-server.sh stop' EXIT; \
	GUANXI_TEST_DATABASE_URL="$$url" GUANXI_TEST_REQUIRE_POSTGRES=1 $(VENV)/bin/pytest $(PYTEST_ARGS)

# Runs every check, then fails if any of them failed (so one run shows every problem).
lint: install
	@status=0; \
	echo "+ ruff check"; $(VENV)/bin/ruff check . || status=1; \
	echo "+ ruff format --check"; $(VENV)/bin/ruff format --check . || status=1; \
	echo "+ mypy guanxi"; $(VENV)/bin/mypy guanxi || status=1; \
	echo "+ lint-imports"; $(VENV)/bin/lint-imports || status=1; \
	exit $$status

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

docs-build: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf site .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path './.tools/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(TOOLS)
