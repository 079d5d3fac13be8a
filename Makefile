# KTRDR Operations — the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint e2e bench install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run: fresh machine → venv, install, migrate, demo user (password printed once), demo data, serve on 127.0.0.1:8000 (daphne)
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000 --noreload

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

## test: fresh machine → venv, install, lint, the whole suite (unit, integration, browser)
test: lint
	$(BIN)/python -m pytest
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -o addopts="-ra" tests/e2e

e2e: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -o addopts="-ra" tests/e2e

## bench: the performance budgets of docs/architecture.md §8, printed as a table (not part of `make test`)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
