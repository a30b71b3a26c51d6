# Fordring — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTO_SRC := $(shell find proto -name '*.proto')
PROTO_STAMP := gen/.generated
SYSTEM_STAMP := $(VENV)/.system-packages
# Debian packages the project uses: poppler-utils (pdftotext, pdftoppm: reading rendered PDFs back),
# chromium (the portal's browser tests) and prometheus (promtool: the alert rules are checked and unit-tested).
SYSTEM_PACKAGES := poppler-utils chromium prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help setup proto run demo test test-unit test-integration test-e2e lint fmt bench asyncapi clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Fordring needs Python 3.11+ (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

$(SYSTEM_STAMP): $(STAMP)
	@command -v pdftoppm >/dev/null && command -v chromium >/dev/null && command -v promtool >/dev/null || \
	  { echo "installing Debian packages: $(SYSTEM_PACKAGES) …"; \
	  $(SUDO) apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null 2>&1; } || \
	  echo "could not install $(SYSTEM_PACKAGES) (apt-get): tests that need them will say so"; }
	@touch $(SYSTEM_STAMP)

$(PROTO_STAMP): $(STAMP) $(SYSTEM_STAMP) $(PROTO_SRC)
	@rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -Iproto --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --python_out=gen --grpc_python_out=gen --mypy_out=gen --mypy_grpc_out=gen $(PROTO_SRC)
	@touch $(PROTO_STAMP)

setup: $(PROTO_STAMP) ## create .venv, install Fordring with its dev tools, generate the gRPC code (idempotent)

proto: $(PROTO_STAMP) ## generate the gRPC code from proto/ into gen/

run: setup ## start the whole suite on the embedded broker and database, run the demo, keep serving until Ctrl-C
	$(BIN)/fordring up --demo

demo: setup ## the same as run, but stop the stack and exit after the demo's summary
	$(BIN)/fordring up --demo --exit-after-demo

test: setup ## run all tests (unit, integration, end-to-end) on the embedded broker and database
	$(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

test-unit: setup ## only the unit tests
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test-integration: setup ## only the integration tests
	$(BIN)/pytest -q tests/integration -m "not slow" $(PYTEST_ARGS)

test-e2e: setup ## only the end-to-end tests
	$(BIN)/pytest -q tests/e2e -m "not slow" $(PYTEST_ARGS)

lint: setup ## ruff and mypy (strict)
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/mypy services tests bench

fmt: setup ## format the code with ruff
	$(BIN)/ruff check --fix services tests bench
	$(BIN)/ruff format services tests bench

bench: setup ## benchmarks, each with a same-run baseline: the ledger (issue, 100,000-invoice import), the renderer (PDF, EHF, service), the dispatcher (1,000 e-mails), the matcher (a 50,000-payment file against 200,000 invoices), the dunning run (200,000 overdue invoices), the portal (invoice pages per second, 1,000 live pages)
	$(PY) -m bench.ledger_issue $(BENCH_ARGS)
	$(PY) -m bench.ledger_import $(BENCH_IMPORT_ARGS)
	$(PY) -m bench.renderer_pdf
	$(PY) -m bench.renderer_ehf
	$(PY) -m bench.renderer_service
	$(PY) -m bench.dispatcher_email
	$(PY) -m bench.matcher_import $(BENCH_MATCHER_ARGS)
	$(PY) -m bench.dunning_decide
	$(PY) -m bench.dunning_run $(BENCH_DUNNING_ARGS)
	$(PY) -m bench.portal_pages $(BENCH_PORTAL_ARGS)

asyncapi: setup ## write the event schemas (AsyncAPI) into docs/asyncapi/
	$(PY) -m services.common.asyncapi docs/asyncapi

clean: ## remove the virtualenv, generated code and local stack data
	rm -rf $(VENV) gen .fordring .mypy_cache .ruff_cache .pytest_cache
