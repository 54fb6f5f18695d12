# Spean: one Makefile, obvious targets.
#   make demo   create .venv, install, run the demo federation
#   make test   create .venv, install, run the whole suite (T=expr to filter)
#   make unit   the pure rules' tests only (seconds)
#   make lint   ruff format --check, ruff check, mypy --strict, layer contracts, generated code
#   make fmt    ruff format and the safe ruff fixes
#   make proto  regenerate Python code and .pyi stubs from protos/
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PROTO_FILES := $(shell find protos -name '*.proto' | sort)
T ?=

.PHONY: dev demo test unit lint fmt proto proto-check bench bench-smoke clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,test,postgres,mysql]'
	touch $@

dev: $(VENV)/.installed

demo: dev
	$(BIN)/spean demo --dir spean-demo $(DEMO_ARGS)

test: dev
	$(BIN)/pytest $(if $(T),-k '$(T)') $(PYTEST_ARGS)

# The tests of the pure modules (values in, values out): no server, socket or database.
PURE := access admission backoff config deadlines digests errors globalconf identifiers lifecycle masking metadata pki tokens trust
PURE += token_claims token_jws token_signing token_verification event_admission events token_events
PURE_AUDIT := bodies chain checkpoint events merkle record
UNIT_TESTS := $(wildcard $(PURE:%=tests/gateway/test_%*.py) $(PURE_AUDIT:%=tests/gateway/audit/test_%*.py))
unit: dev
	$(BIN)/pytest -q -m 'not slow' $(UNIT_TESTS) $(if $(T),-k '$(T)') $(PYTEST_ARGS)

LINT_PATHS := gateway adapters tests bench fuzz
lint: dev proto-check
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: dev
	$(BIN)/ruff check --fix-only -q $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

# Generated code lives in the `spean` package beside the hand-written code, mirroring
# protos/spean/ (spean.v1, spean.demo.*); spean/gateway and spean/adapters are links to
# the top-level folders, and spean/__init__.py and py.typed are hand-written.
# The demo services' descriptor sets with their comments (--include_source_info), one per
# .proto beside its generated module (x.proto -> x.binpb): what the demo ministries publish
# so that the catalogue shows their documentation (docs/catalogue.md).
DEMO_PROTOS := $(shell find protos/spean/demo -name '*.proto' | sort)
define demo_descriptors
	for f in $(DEMO_PROTOS:protos/%=%); do \
	  $(PY) -m grpc_tools.protoc -I protos --include_imports --include_source_info \
	    --descriptor_set_out=$(1)/$${f%.proto}.binpb $$f || exit 1; done
endef

proto: dev
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_FILES)
	$(call demo_descriptors,.)
	find spean -type d -exec touch {}/__init__.py \;

proto-check: dev
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO_FILES) && \
	$(call demo_descriptors,$$tmp) && \
	find $$tmp/spean -type d -exec touch {}/__init__.py \; && \
	cp spean/__init__.py spean/py.typed $$tmp/spean/ && \
	if diff -r -q $$tmp/spean spean -x __pycache__ -x gateway -x adapters; then echo "generated code is up to date"; \
	else echo "generated code is stale: run 'make proto' and commit the result"; rm -rf $$tmp; exit 1; fi; \
	rm -rf $$tmp

bench: dev
	$(PY) -m bench $(BENCH_ARGS)

# A few seconds of the same run, to keep it working (CI runs it through tests/bench).
bench-smoke: dev
	$(PY) -m bench --smoke --out $${TMPDIR:-/tmp}/spean-bench-smoke

# 100,000 exchanges at concurrency 64 through the demo federation, every one accounted
# for in both audit logs, server memory flat (SOAK_ARGS, e.g. --calls 2000; CI: tests/soak).
.PHONY: soak
soak: dev
	$(PY) -m bench.soak $(SOAK_ARGS)

# Each fuzz target for FUZZ_SECONDS from its seeds in fuzz/corpus; new inputs and
# crash files go to build/fuzz (FUZZ_TARGETS to choose; see fuzz/run.py).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= verify_request consumer_headers single_token claimed_exchange_id
.PHONY: fuzz
fuzz: dev
	$(PY) -m pip install -q -e '.[fuzz]'
	@for t in $(FUZZ_TARGETS); do mkdir -p build/fuzz/$$t && \
	  $(PY) -m fuzz.run $$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ \
	    build/fuzz/$$t fuzz/corpus/$$t || exit 1; done

clean:
	rm -rf $(VENV) spean-demo .pytest_cache .mypy_cache .ruff_cache
