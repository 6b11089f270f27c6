# One task runner for developers and CI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench bench-quick clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: venv
	$(PY) -m ruff check src tests bench scripts
	node --test sdk/miniprogram/test/
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m ruff format --check src tests bench scripts

# make demo DEMO_ARGS="--port 8080" (or --no-serve, --users N); see weanalysis demo --help
DEMO_ARGS ?=
demo: venv
	$(VENV)/bin/weanalysis demo $(DEMO_ARGS)

bench: venv
	$(PY) -m bench

bench-quick: venv
	$(PY) -m bench --dau 50000 --days 31 --jsonl-rows 50000 --server-seconds 15

clean:
	rm -rf $(VENV) weanalysis-data bench/.data
