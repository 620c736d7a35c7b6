# alstream: `make run` runs the service (embedded defaults), `make test` runs every test.
# Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PREFECT_PORT ?= 4200
PREFECT_LOCAL = http://127.0.0.1:$(PREFECT_PORT)/api
# Use `make prefect-server` when it is up, else Prefect's ephemeral mode.
ALSTREAM = env $$(curl -sf -m 1 $(PREFECT_LOCAL)/health >/dev/null 2>&1 && echo PREFECT_API_URL=$(PREFECT_LOCAL)) $(VENV)/bin/alstream
EXPERIMENT ?=

.PHONY: install system-packages run serve test typecheck lint format bench soak prefect-server run-al run-al-entropy run-al-margin \
	run-al-confident run-ct compare mlflow-ui clean

install: $(STAMP)

# Bytecode compiled at install (uv leaves it to the first import): the first `make run` would
# otherwise compile every module it loads, 4 s of CPU before the first model.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev,bench]'
	touch $(STAMP)

run: install
	$(ALSTREAM) serve

# The system packages the tests drive (PostgreSQL, Java and Maven, Chromium): installed when
# missing and it can (root and apt-get), else it stops with the command to run.
system-packages:
	PYTHON=$(PYTHON) bash scripts/system-packages.sh

# The page's modules have unit tests of their own, on Node's test runner (the shell expands the
# glob: Node 21+ would take a folder for a file).
test: system-packages install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	node --test tests/page/*.test.mjs
	$(PY) -m pytest

# The page's `// @ts-check` comments, checked by TypeScript (from npm, into node_modules/).
typecheck:
	npm install --no-package-lock --no-audit --no-fund --silent
	node_modules/.bin/tsc -p jsconfig.json

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# The soak runs --quick here (the harness, about a minute); `make soak` runs the issue's size.
bench: install
	$(PY) bench/query_bench.py
	$(PY) bench/rescore_bench.py
	$(PY) bench/service_bench.py
	$(PY) bench/page_bench.py
	$(PY) bench/load_bench.py
	$(PY) bench/selective_bench.py
	$(PY) bench/freshness_bench.py --sizes 100000 1000000
	$(PY) bench/ingest_stages.py
	$(PY) bench/validation_bench.py
	$(PY) bench/store_ids_bench.py
	$(PY) bench/log_vs_sqlite.py
	$(PY) bench/committee_bench.py
	$(PY) bench/soak_bench.py --quick
	$(PY) bench/first_model_bench.py
	$(PY) bench/candidates_bench.py
	$(PY) bench/audits_bench.py
	$(PY) bench/scale_out_bench.py
	$(PY) bench/experiment_bench.py

# The soak at the issue's size, 10^7 samples into a pool of 10^6 (about 25 minutes on 2 cores).
soak: install
	$(PY) bench/soak_bench.py

prefect-server: install
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

run-al: run-al-entropy

run-al-entropy: install
	$(ALSTREAM) experiment --strategy entropy $(EXPERIMENT)

run-al-margin: install
	$(ALSTREAM) experiment --strategy margin $(EXPERIMENT)

run-al-confident: install
	$(ALSTREAM) experiment --strategy least-confident $(EXPERIMENT)

run-ct: install
	$(ALSTREAM) experiment --strategy random $(EXPERIMENT)

compare: install
	$(ALSTREAM) experiment --strategy all $(EXPERIMENT)

mlflow-ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# The service's data (.alstream/: samples, labels, tokens, model files) is never cleaned.
clean:
	rm -rf models metrics reports mlruns mlartifacts mlflow.db .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# A local single-node Kafka broker (KRaft) in .kafka/; see scripts/kafka.sh for its settings.
.PHONY: kafka-up kafka-down
kafka-up:
	bash scripts/kafka.sh up

kafka-down:
	bash scripts/kafka.sh down
