# Two commands on a fresh machine: `make demo` and `make test`.
# Everything else is a step they depend on.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLES ?= $(if $(DATADRIVE_SAMPLES),$(DATADRIVE_SAMPLES),../shared/data)

.PHONY: demo test check lint typecheck layers pytest bench clean protos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 in the same call as av2, or pip fetches a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet -e '.[dev]' 'torch==2.13.0'
	# The service tests: PostgreSQL 15 (initdb/pg_ctl) and Debian's chromium for the UI test.
	test -x /usr/lib/postgresql/15/bin/initdb -a -x /usr/bin/chromium || \
	  (apt-get update -qq && apt-get install -y -qq postgresql-15 chromium)
	touch $(STAMP)

demo: $(STAMP)
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/datadrive demo --samples $(SAMPLES) --out out

test: $(STAMP) check pytest

check: lint typecheck layers

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/pytest

bench: $(STAMP)
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/python benchmarks/ingest.py
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/python benchmarks/train.py

protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src src/datadrive/sources/waymo_protos/*.proto

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
