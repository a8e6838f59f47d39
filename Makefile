# Two commands set everything up: `make run` (the bridge) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export BRIDGE_ENV ?= development

.PHONY: install run demo test check fmt manifest bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

run: install  ## web + worker on the embedded default (SQLite database and queue under var/)
	$(BIN)/flask --app bridge migrate
	@echo "ZappWay Bridge on http://127.0.0.1:$(PORT)  (health: /healthz; Ctrl-C stops web and worker)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile -p $(PORT) web worker

demo: install  ## simulator + bridge + a demo connection, with ready-to-paste curl commands
	BRIDGE_VAR_DIR=var/demo $(BIN)/flask --app bridge migrate
	PATH="$(CURDIR)/$(BIN):$$PATH" BRIDGE_VAR_DIR=var/demo \
	  ZAPPWAY_BASE_URL=http://127.0.0.1:8099/api/v1 BRIDGE_URL=http://127.0.0.1:$(PORT) \
	  $(BIN)/honcho start -f Procfile.demo -p $(PORT) web worker sim demo

test: install  ## the whole suite (PostgreSQL/Redis tests skip only where those servers are absent)
	BRIDGE_ENV=test $(BIN)/pytest

check: install  ## format check, lint, types
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install  ## every benchmark beside its reference, on SQLite then PostgreSQL + Redis (~25 min)
	$(BIN)/python -m bench $(BENCH_ARGS)   # BENCH_ARGS="--full --py-spy --backends sqlite"

manifest: install  ## regenerate manifest.json from the registry
	$(BIN)/flask --app bridge manifest

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .coverage
