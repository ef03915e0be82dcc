# Two commands matter: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
FHIR_VENV := .venv-fhir
BIN := $(VENV)/bin
STAMPS := .make-stamps
SEKMET_VERSION := 0.1.1

# Development defaults for `make run`: no EHR JWT on loopback, and open public R4 sandboxes
# (HAPI's public server, the SMART launcher) may be queried without a token.
DEV_ENV := CDS_REQUIRE_AUTH=false \
	CDS_FHIR_ALLOW_ANONYMOUS=true \
	CDS_FHIR_ALLOWLIST=http://127.0.0.1,http://localhost,http://[::1],https://hapi.fhir.org/baseR4,https://launch.smarthealthit.org/v/r4/fhir,https://r4.smarthealthit.org

.PHONY: run test lint format bench install install-fhir system-deps clean

$(STAMPS):
	mkdir -p $(STAMPS)

$(STAMPS)/venv: pyproject.toml | $(STAMPS)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(STAMPS)/fhir-venv: | $(STAMPS)
	test -x $(FHIR_VENV)/bin/python || $(PYTHON) -m venv $(FHIR_VENV)
	$(FHIR_VENV)/bin/python -m pip install --quiet 'sekmet-fhir==$(SEKMET_VERSION)'
	touch $@

install: $(STAMPS)/venv

install-fhir: $(STAMPS)/fhir-venv

# Debian packages the tests drive for real: Chromium (browser tests) and PostgreSQL (replica test).
system-deps:
	bash scripts/ensure-system-packages.sh

run: $(STAMPS)/venv
	$(DEV_ENV) $(BIN)/cds-service serve --host 127.0.0.1 --port 8000

lint: $(STAMPS)/venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cds_service tests bench

format: $(STAMPS)/venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMPS)/venv $(STAMPS)/fhir-venv system-deps lint
	SEKMET_BIN=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m pytest

bench: $(STAMPS)/venv $(STAMPS)/fhir-venv
	SEKMET_BIN=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(FHIR_VENV) $(STAMPS) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
