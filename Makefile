# Two commands on a fresh machine: `make demo` and `make test`.
# Everything else is a step they depend on.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLES ?= $(if $(DATADRIVE_SAMPLES),$(DATADRIVE_SAMPLES),../shared/data)
# Azurite (Microsoft's Azure Storage emulator, npm) for the lake's Azure tests, in a git-ignored folder,
# with the Node.js it asks for (3.37 needs Node >= 22; 3.35, the last for Node 20, ignores the
# blob-listing parameter `startFrom` that deltalake relies on). The node package comes from npm too.
AZURITE_VERSION := 3.37.0
AZURITE_NODE_VERSION := 22.23.3
AZURITE := .azurite/installed-$(AZURITE_VERSION)-node$(AZURITE_NODE_VERSION)

.PHONY: demo test check lint typecheck layers testnames pytest bench clean protos sysdeps azurite

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 in the same call as av2, or pip fetches a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet -e '.[dev]' 'torch==2.13.0'
	touch $(STAMP)

# Debian packages the tests need (CI starts from a fresh machine): espeak-ng, flite and festival (with
# two diphone voices and an HMM voice) speak the assistant's training data and answers; sox shifts pitch
# and tempo; the service's tests start their own PostgreSQL 15 (initdb, pg_ctl) and drive Debian's
# chromium. Idempotent: nothing is installed when everything is there; root or sudo.
SYSDEPS_BIN = espeak-ng flite festival sox /usr/lib/postgresql/15/bin/initdb /usr/bin/chromium
SYSDEPS_PKG = espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox postgresql-15 chromium
sysdeps:
	@missing=0; for b in $(SYSDEPS_BIN); do command -v $$b >/dev/null 2>&1 || missing=1; done; \
	for v in kal_diphone ked_diphone us/cmu_us_slt_arctic_hts; do \
	  ls -d /usr/share/festival/voices/*/$${v##*/} >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSDEPS_PKG); fi

demo: $(STAMP)
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/datadrive demo --samples $(SAMPLES) --out out

test: $(STAMP) sysdeps check pytest

check: lint typecheck layers testnames

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# pytest imports test modules by basename: two tests/**/test_x.py stop collection.
testnames:
	@dups=$$(find tests -name 'test_*.py' -printf '%f\n' | sort | uniq -d); \
	if [ -n "$$dups" ]; then echo "test module names used twice: $$dups"; exit 1; fi

pytest: $(STAMP) sysdeps azurite
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/pytest

azurite: $(AZURITE)

# Without npm the Azure tests skip (and fail under CI=true, where npm is required).
$(AZURITE):
	@if command -v npm >/dev/null; then \
		npm install --prefix .azurite --no-audit --no-fund --no-save \
			azurite@$(AZURITE_VERSION) node@$(AZURITE_NODE_VERSION) && touch $@; \
	else echo "npm not found: the Azure (Azurite) lake tests will skip"; fi

bench: $(STAMP) sysdeps
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/python benchmarks/ingest.py
	DATADRIVE_SAMPLES=$(SAMPLES) $(BIN)/python benchmarks/train.py

protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src src/datadrive/sources/waymo_protos/*.proto src/datadrive/assistant/osm_protos/*.proto

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .azurite
