# The two commands a newcomer needs: `make run` (the whole pipeline on this machine) and `make test`.
# Each creates the virtualenv it needs. Python 3.13 is preferred (the Lambda runtime); 3.11+ works.

PYTHON ?= $(shell for p in /root/.pyenv/versions/3.13.*/bin/python3.13 $$(command -v python3.13) $$(command -v python3); do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && echo "$$p" && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMVENV := .venv-sam
CHECKOVVENV := .venv-checkov
REQUESTS ?=
ARGS ?=

.PHONY: run test lint build validate deploy bench dlq-list dlq-redrive clean cli

# The project itself is installed in editable mode: the operator CLI as .venv/bin/untag, and the
# domain package `untag` (layers/shared/untag) importable by the developer kit and the benchmarks.
$(STAMP): requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --editable .
	touch $(STAMP)

cli: $(STAMP) ## the operator CLI, installed in the dev venv: .venv/bin/untag --help (operators: pipx install .)

run: $(STAMP) ## the whole pipeline on this machine: moto + the Constant Contact simulator, no AWS, no Docker
	$(BIN)/python -m devkit.runner $(if $(REQUESTS),--requests $(REQUESTS)) $(ARGS)

test: $(STAMP) ## every test, offline
	$(BIN)/python -m pytest

$(CHECKOVVENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOVVENV)
	$(CHECKOVVENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==3.3.30

lint: $(STAMP) $(CHECKOVVENV)/bin/checkov ## cfn-lint (with serverless rules), checkov, bandit: skips only with a written reason
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(CHECKOVVENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(BIN)/bandit -q -ll -r layers functions untag_operator devkit bench

bench: $(STAMP) ## API and AWS call counts, throughput and cold start; writes bench/results.json
	$(BIN)/python -m bench

$(SAMVENV)/bin/sam:
	$(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==1.170.0

validate: $(SAMVENV)/bin/sam
	PATH="$(dir $(PYTHON)):$$PATH" $(SAMVENV)/bin/sam validate --lint --region us-east-1

build: $(SAMVENV)/bin/sam
	PATH="$(dir $(PYTHON)):$$PATH" $(SAMVENV)/bin/sam build

deploy: build
	$(SAMVENV)/bin/sam deploy $(if $(ENV),--config-env $(ENV))

dlq-list: $(STAMP) ## poison messages of a deployed stack: make dlq-list STACK=cc-untag-dev
	$(BIN)/untag --stack $(STACK) dlq list

dlq-redrive: $(STAMP)
	$(BIN)/untag --stack $(STACK) dlq redrive

clean:
	rm -rf $(VENV) $(SAMVENV) $(CHECKOVVENV) .aws-sam bench/results.json
