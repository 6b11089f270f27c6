# One task runner for developers and CI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make demo` installs only what the product needs; `make test` adds the test tools (dev extra)
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: venv venv-app test lint typecheck demo bench bench-quick clean

venv: $(DEV_STAMP)
venv-app: $(APP_STAMP)

$(VENV)/bin/python:
	@echo "Creating $(VENV) (first run only) ..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(APP_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing weanalysis and its dependencies into $(VENV) (about a minute the first time) ..."
	$(PY) -m pip install --quiet --progress-bar off -e .
	touch $(APP_STAMP)

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing weanalysis with the test tools into $(VENV) (a few minutes the first time) ..."
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $(APP_STAMP) $(DEV_STAMP)

test: venv
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m mypy
	node --test sdk/miniprogram/test/
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m ruff format --check src tests bench scripts
	$(PY) -m mypy

typecheck: venv
	$(PY) -m mypy

# make demo DEMO_ARGS="--port 8080" (or --no-serve, --users N); see weanalysis demo --help
DEMO_ARGS ?=
demo: venv-app
	$(VENV)/bin/weanalysis demo $(DEMO_ARGS)

bench: venv
	$(PY) -m bench

bench-quick: venv
	$(PY) -m bench --dau 50000 --days 31 --jsonl-rows 50000 --server-seconds 15 --spark-dau 10000

clean:
	rm -rf $(VENV) weanalysis-data bench/.data
