# The two commands a newcomer needs: `make run` (the whole pipeline on this machine) and `make test`.
# Each creates the virtualenv it needs. Python 3.13 is preferred (the Lambda runtime); 3.11+ works:
# devkit/find-python looks for it (python3.13 on PATH, pyenv, uv), or pass PYTHON=/path/to/python.
# docs/development.md describes the folders, these targets and the lock files.

ifndef PYTHON
PYTHON := $(shell devkit/find-python)
endif
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMVENV := .venv-sam
CHECKOVVENV := .venv-checkov
PIP    := python -m pip --quiet --disable-pip-version-check
REQUESTS ?=
ARGS ?=
RUFF_PATHS ?= .
UPGRADE ?=

.PHONY: run test lint build validate deploy bench dlq-list dlq-redrive clean cli lock

# The dev venv is installed from the lock file, every package checked against its hash; then the project
# itself in editable mode: the operator CLI as .venv/bin/untag, and the domain package `untag`
# (layers/shared/untag) importable by the developer kit and the benchmarks.
$(STAMP): requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python found: pass PYTHON=/path/to/python3.13" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP) install --require-hashes --requirement requirements-dev.txt
	$(BIN)/$(PIP) install --no-deps --no-build-isolation --editable .
	touch $(STAMP)

cli: $(STAMP) ## the operator CLI in the dev venv: .venv/bin/untag --help (operators: pipx install .)

run: $(STAMP) ## the whole pipeline on this machine: moto + the Constant Contact simulator, no AWS, no Docker
	$(BIN)/python -m devkit.runner $(if $(REQUESTS),--requests $(REQUESTS)) $(ARGS)

test: $(STAMP) ## every test, offline
	$(BIN)/python -m pytest

$(CHECKOVVENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOVVENV)
	$(CHECKOVVENV)/bin/$(PIP) install checkov==3.3.30

lint: $(STAMP) $(CHECKOVVENV)/bin/checkov ## ruff, cfn-lint (with serverless rules), checkov, bandit: skips only with a written reason
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/ruff format --check $(RUFF_PATHS)
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(CHECKOVVENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(BIN)/bandit -q -ll -r layers functions untag_operator devkit bench

# After editing requirements-dev.in or layers/shared/requirements.in. Versions already locked are kept
# unless UPGRADE=1 (every package to its newest allowed version) or UPGRADE=name (that one).
lock: $(STAMP) ## regenerate the lock files (with hashes) from the *.in files
	$(BIN)/uv pip compile --quiet --generate-hashes --custom-compile-command "make lock" $(UPGRADE_FLAGS) \
		--python-version 3.13 --python-platform aarch64-unknown-linux-gnu \
		layers/shared/requirements.in --output-file layers/shared/requirements.txt
	$(BIN)/uv pip compile --quiet --generate-hashes --custom-compile-command "make lock" $(UPGRADE_FLAGS) \
		--universal --python-version 3.11 --constraint layers/shared/requirements.txt \
		requirements-dev.in --output-file requirements-dev.txt

UPGRADE_FLAGS = $(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))

bench: $(STAMP) ## API and AWS call counts, throughput and cold start; writes bench/results.json
	$(BIN)/python -m bench

$(SAMVENV)/bin/sam:
	$(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/$(PIP) install aws-sam-cli==1.170.0

validate: $(SAMVENV)/bin/sam
	PATH="$(dir $(PYTHON)):$$PATH" $(SAMVENV)/bin/sam validate --lint --region us-east-1

build: $(SAMVENV)/bin/sam
	PATH="$(dir $(PYTHON)):$$PATH" $(SAMVENV)/bin/sam build

deploy: build
	$(SAMVENV)/bin/sam deploy $(if $(ENV),--config-env $(ENV))

dlq-list: $(STAMP) ## poison messages of a deployed stack: make dlq-list STACK=cc-untag-dev
	$(BIN)/untag --stack $(STACK) dlq list

dlq-redrive: $(STAMP) ## move them back to the intake queue: make dlq-redrive STACK=cc-untag-dev
	$(BIN)/untag --stack $(STACK) dlq redrive

clean:
	rm -rf $(VENV) $(SAMVENV) $(CHECKOVVENV) .aws-sam bench/results.json build *.egg-info
