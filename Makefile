# Two commands set everything up: `make run` (the bridge) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# make demo's simulator port (Procfile.demo and scripts/demo.py read it from the environment)
SIM_PORT ?= 8099
# `make run` serves this machine only; `HOST=0.0.0.0 make run` opens it to the network. Exported
# to gunicorn (gunicorn.conf.py), which binds all interfaces when HOST is unset (Heroku).
export HOST ?= 127.0.0.1
URL_HOST := $(if $(filter 0.0.0.0 ::,$(HOST)),127.0.0.1,$(HOST))
VAR_DIR := $(or $(BRIDGE_VAR_DIR),var)
COVERAGE_FLOOR ?= 90  # branch coverage of bridge/, actions/, triggers/, sim/ (95 % on 4 Dec)
export BRIDGE_ENV ?= development

.PHONY: install run demo test test-deps test-n8n check fmt manifest integrations bench soak soak-short clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

run: install  ## web + worker on the embedded default (SQLite database and queue under var/)
	$(BIN)/flask --app bridge migrate
	@test -s $(VAR_DIR)/dev_admin_token || (umask 077 && $(BIN)/python -c \
	  'import secrets; print(secrets.token_urlsafe(32))' > $(VAR_DIR)/dev_admin_token)
	@echo "ZappWay Bridge on http://$(URL_HOST):$(PORT)  (listening on $(HOST); health: /healthz; Ctrl-C stops web and worker)"
	@echo "Console: http://$(URL_HOST):$(PORT)/console  (sign in with the admin token: $${BRIDGE_ADMIN_TOKEN:-$$(cat $(VAR_DIR)/dev_admin_token)})"
	BRIDGE_ADMIN_TOKEN="$${BRIDGE_ADMIN_TOKEN:-$$(cat $(VAR_DIR)/dev_admin_token)}" \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile -p $(PORT) web worker

demo: install  ## simulator + bridge + a demo connection, with ready-to-paste curl commands
	BRIDGE_VAR_DIR=var/demo $(BIN)/flask --app bridge migrate
	PATH="$(CURDIR)/$(BIN):$$PATH" BRIDGE_VAR_DIR=var/demo SIM_PORT=$(SIM_PORT) \
	  ZAPPWAY_BASE_URL=http://127.0.0.1:$(SIM_PORT)/api/v1 BRIDGE_URL=http://127.0.0.1:$(PORT) \
	  $(BIN)/honcho start -f Procfile.demo -p $(PORT) web worker sim demo

test: install test-deps  ## the whole suite with branch coverage (PostgreSQL/Redis tests skip only where absent)
	BRIDGE_ENV=test $(BIN)/pytest --cov --cov-report= --cov-fail-under=$(COVERAGE_FLOOR)

# The console's browser tests: Debian's chromium (apt, as root; skipped with the reason when it
# cannot be installed) and axe-core (npm, from tests/console/package-lock.json).
test-deps:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium for the console's browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null || echo "could not install chromium: the browser tests will be skipped"; fi
	@if [ ! -f tests/console/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null; then \
	  npm ci --prefix tests/console --no-audit --no-fund >/dev/null; fi

check: install  ## format check, lint, types, layering contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install  ## every benchmark beside its reference, on SQLite then PostgreSQL + Redis (~25 min)
	$(BIN)/python -m bench $(BENCH_ARGS)   # BENCH_ARGS="--full --py-spy --backends sqlite"

# The fault-injection soak (issue 16): 2 web servers + 2 workers on PostgreSQL (own database)
# and Redis db SOAK_REDIS_DB, the simulator as ZappWay; exits 1 when anything is lost.
SOAK_REDIS_DB ?= 7
soak: install  ## the full soak (thousands of events, every fault twice; <= 20 min)
	$(BIN)/python -m bench.soak --profile full --redis-db $(SOAK_REDIS_DB)

soak-short: install  ## the short soak (a few hundred events, every fault once; ~4 min)
	$(BIN)/python -m bench.soak --profile short --redis-db $(SOAK_REDIS_DB)

manifest: install  ## regenerate manifest.json from the registry
	$(BIN)/flask --app bridge manifest

test-n8n: install  ## opt-in: n8n 2.8.4 (~2.3 GB, ~4 min cold) loads the n8n package and runs workflows
	cd tests/integrations/n8n && npm_config_nodedir=/usr npm ci --no-audit --no-fund --prefer-offline
	BRIDGE_ENV=test BRIDGE_TEST_N8N=1 $(BIN)/pytest tests/integrations/test_n8n_package.py -v -s

integrations: install  ## regenerate the Zapier, Make and n8n apps under integrations/ from the registry
	$(BIN)/flask --app bridge export all

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .coverage
