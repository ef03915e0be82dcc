# Two commands matter: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
FHIR_VENV := .venv-fhir
BIN := $(VENV)/bin
STAMPS := .make-stamps
SEKMET_VERSION := 0.1.1
PORT ?= 8000
# Locked, hash-checked dependencies (`make lock` writes them): runtime.txt for `make run` and the
# Dockerfile, dev.txt (runtime + dev extras) for the tests, uv.txt for the installer itself.
LOCK := requirements
UV_VERSION := 0.13.9
# uv installs the lock in parallel: on a fresh clone it takes seconds where pip took most of a minute.
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python
LOCK_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_FLAGS)

# Development defaults for `make run`: no EHR JWT on loopback, and open public R4 sandboxes
# (HAPI's public server, the SMART launcher) may be queried without a token.
DEV_ENV := CDS_REQUIRE_AUTH=false \
	CDS_FHIR_ALLOW_ANONYMOUS=true \
	CDS_FHIR_ALLOWLIST=http://127.0.0.1,http://localhost,http://[::1],https://hapi.fhir.org/baseR4,https://launch.smarthealthit.org/v/r4/fhir,https://r4.smarthealthit.org

.PHONY: run test lint format bench install install-fhir system-deps lock clean

$(STAMPS):
	mkdir -p $(STAMPS)

$(STAMPS)/uv: $(LOCK)/uv.txt | $(STAMPS)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)/uv.txt
	touch $@

# `make run` needs only this layer: the runtime lock, then the project itself (editable, no deps).
$(STAMPS)/runtime: $(STAMPS)/uv pyproject.toml $(LOCK)/runtime.txt
	$(UV_INSTALL) --require-hashes -r $(LOCK)/runtime.txt
	$(UV_INSTALL) --no-deps -e .
	touch $@

# The dev tools on top; redone whenever the runtime layer is, so a run-only venv gets upgraded.
$(STAMPS)/dev: $(STAMPS)/runtime $(LOCK)/dev.txt
	$(UV_INSTALL) --require-hashes -r $(LOCK)/dev.txt
	touch $@

$(STAMPS)/fhir-venv: | $(STAMPS)
	test -x $(FHIR_VENV)/bin/python || $(PYTHON) -m venv $(FHIR_VENV)
	$(FHIR_VENV)/bin/python -m pip install --quiet 'sekmet-fhir==$(SEKMET_VERSION)'
	touch $@

install: $(STAMPS)/dev

install-fhir: $(STAMPS)/fhir-venv

# Debian packages the tests drive for real: Chromium (browser tests) and PostgreSQL (replica test).
system-deps:
	bash scripts/ensure-system-packages.sh

run: $(STAMPS)/runtime
	$(DEV_ENV) $(BIN)/cds-service serve --host 127.0.0.1 --port $(PORT)

# Re-pins the lock files from pyproject.toml, keeping current pins where they still fit
# (`make lock LOCK_FLAGS=--upgrade` takes the newest versions).
lock: $(STAMPS)/uv
	$(LOCK_COMPILE) pyproject.toml -o $(LOCK)/runtime.txt
	sed -i '1i # Runtime dependencies of pyproject.toml, pinned with hashes: make run and the Dockerfile install these.' $(LOCK)/runtime.txt
	$(LOCK_COMPILE) pyproject.toml --extra dev -o $(LOCK)/dev.txt
	sed -i '1i # Runtime and dev dependencies of pyproject.toml, pinned with hashes: make test installs these.' $(LOCK)/dev.txt
	echo 'uv==$(UV_VERSION)' | $(LOCK_COMPILE) - -o $(LOCK)/uv.txt
	sed -i '1i # The installer the Makefile bootstraps with pip (UV_VERSION), pinned with hashes.' $(LOCK)/uv.txt

lint: $(STAMPS)/dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cds_service tests bench

format: $(STAMPS)/dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMPS)/dev $(STAMPS)/fhir-venv system-deps lint
	SEKMET_BIN=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m pytest

# The README pictures (docs/*-app.png, docs/self-care-page.png), taken by the browser tests of
# those pages in Debian Chromium; review and commit the changed files.
.PHONY: screenshots
screenshots: $(STAMPS)/dev $(STAMPS)/fhir-venv system-deps
	UPDATE_SCREENSHOTS=1 SEKMET_BIN=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m pytest -q \
		tests/integration/test_startback_browser.py tests/integration/test_red_flags_browser.py \
		tests/test_self_care_browser.py

bench: $(STAMPS)/dev $(STAMPS)/fhir-venv
	SEKMET_BIN=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(FHIR_VENV) $(STAMPS) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
