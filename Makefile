# One entry point for newcomers and CI: `make dev` runs the relay locally, `make test` runs every
# test. Both set up what they need first: a virtualenv at .venv and, for the CDK CLI, Node 22 in
# the project-local prefix .tools (the system Node may be too old for jsii), pinned by
# tools/package-lock.json.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# The set-up steps (.venv, Node and the CDK CLI, ministack's venv, Chromium) and the checks are
# independent: `test` and `stack-local` run them side by side (a fresh set-up mostly waits on
# downloads), with each step's output kept together.
PARALLEL := $(MAKE) --no-print-directory --jobs=4 --output-sync=target

PYTHON ?= python3
VENV := .venv
# The functions' runtime (userstatus_stack/functions.py RUNTIME): the Lambda code's unit tests
# also run on it, in .venv-lambda, and ministack's workers (the deployed-target tests) run on it.
# (tests/infra checks that this is RUNTIME's name.)
LAMBDA_RUNTIME := python3.13
# The first interpreter of that version that runs: on PATH, else any pyenv installs (a pyenv
# shim exists for every installed version but runs only the selected ones).
ifeq ($(origin LAMBDA_PYTHON),undefined)
LAMBDA_PYTHON := $(shell for candidate in $(LAMBDA_RUNTIME) \
	$$(pyenv root 2>/dev/null)/versions/*/bin/$(LAMBDA_RUNTIME); do \
	"$$candidate" -c '' 2>/dev/null && { echo "$$candidate"; break; }; done)
endif
LAMBDA_PYTHON_FOUND := $(shell $(LAMBDA_PYTHON) -c \
	'import sys; print("python%d.%d" % sys.version_info[:2] == "$(LAMBDA_RUNTIME)")' 2>/dev/null)
LAMBDA_VENV := .venv-lambda
LAMBDA_VENV_STAMP := $(LAMBDA_VENV)/.installed
TOOLS := .tools
STAGE ?= dev

export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

VENV_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
MINISTACK_VENV := $(TOOLS)/ministack
MINISTACK_STAMP := $(MINISTACK_VENV)/.installed
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: setup dev stack-local test check lint typecheck unit unit-lambda-python infra e2e client synth \
	diff deploy bench constraints browser clean

setup: $(VENV_STAMP) $(TOOLS_STAMP) $(MINISTACK_STAMP) $(CHECKOV_STAMP)

$(VENV_STAMP): requirements.txt requirements-dev.txt constraints.txt userstatus_client/pyproject.toml \
		pyproject.toml lambda_src/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r requirements-dev.txt -c constraints.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation -c constraints.txt -e ./userstatus_client
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation --no-deps --config-settings editable_mode=compat \
		-e ./lambda_src -e .
	touch $@

$(LAMBDA_VENV_STAMP): requirements-lambda-tests.txt constraints.txt lambda_src/pyproject.toml
	test -x $(LAMBDA_VENV)/bin/python || $(LAMBDA_PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r requirements-lambda-tests.txt -c constraints.txt
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation --no-deps --config-settings editable_mode=compat -e ./lambda_src
	touch $@

## unit-lambda-python: the Lambda code's unit tests on the functions' Python version.
ifeq ($(LAMBDA_PYTHON_FOUND),True)
unit-lambda-python: $(LAMBDA_VENV_STAMP)
	$(LAMBDA_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit
else
unit-lambda-python:
	@echo "SKIPPED unit-lambda-python: no $(LAMBDA_RUNTIME) (the functions' runtime) on PATH or" \
		"in pyenv; the unit tests run on $$($(PYTHON) --version) only"
endif

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	mkdir -p $(TOOLS)
	cp tools/package.json tools/package-lock.json $(TOOLS)/
	# --omit=peer: @cdklabs/cdk-validator-cfnguard (cfn-guard and its rules) names aws-cdk-lib as
	# a peer; the CDK library is the Python one, and only the binary and rules are used.
	npm ci --prefix $(TOOLS) --omit=peer --no-audit --no-fund --loglevel=error
	node --version | grep -q '^v22\.'
	touch $@

# checkov (the template gate of tests/infra/test_infra_gates.py) pins boto3 1.35, so it gets a
# virtualenv of its own too.
$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		-r requirements-checkov.txt
	$(CHECKOV_VENV)/bin/python -m pip check
	touch $@

# ministack (the AWS emulator of `make stack-local` and the deployed-target tests) pins a botocore
# that conflicts with ours, so it gets a virtualenv of its own, every package pinned, no resolving.
$(MINISTACK_STAMP): requirements-ministack.txt
	test -x $(MINISTACK_VENV)/bin/python || \
		$(if $(filter True,$(LAMBDA_PYTHON_FOUND)),$(LAMBDA_PYTHON),$(PYTHON)) -m venv $(MINISTACK_VENV)
	$(MINISTACK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		-r requirements-ministack.txt
	$(MINISTACK_VENV)/bin/python -m pip check
	touch $@

## dev: set everything up and run the relay on this machine (HTTP :3000, WebSocket :3001).
dev: $(VENV_STAMP)
	python -m userstatus_local

## test: set everything up, lint, type-check, then run every test.
test:
	$(PARALLEL) setup check browser unit-lambda-python
	python -m pytest

check: lint typecheck

lint: $(VENV_STAMP)
	ruff format --check .
	ruff check .

typecheck: $(VENV_STAMP)
	mypy

unit infra e2e client: setup
	python -m pytest tests/$@

## stack-local: set everything up, deploy STAGE's synthesized stack into ministack on this
## machine (IAM enforced, TLS), print its URLs and a READY line, serve until Ctrl-C.
stack-local:
	$(PARALLEL) setup
	python -m userstatus_local.deployed --stage $(STAGE)

## synth: write cdk.out/ for STAGE (dev or prod) with the project-local CDK CLI.
# Where the stage's alarms go (prod requires one): ALARM_EMAIL=ADDRESS or ALARM_TOPIC_ARN=ARN.
ALARM_CONTEXT = $(if $(ALARM_EMAIL),-c alarm_email=$(ALARM_EMAIL)) \
	$(if $(ALARM_TOPIC_ARN),-c alarm_topic_arn=$(ALARM_TOPIC_ARN))

synth: setup
	cdk synth -c stage=$(STAGE) $(ALARM_CONTEXT) --quiet

## diff, deploy: compare with / deploy to the AWS account of your credentials.
diff deploy: setup
	cdk $@ -c stage=$(STAGE) $(ALARM_CONTEXT)

## browser: Debian's Chromium and ChromeDriver for the viewer test (no browser downloads).
## Without root or apt the browser test reports itself skipped with the reason.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-driver for the browser test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null; } \
		|| echo "could not install chromium: the browser test will be skipped"; \
	else echo "chromium not installed and cannot install it here: the browser test will be skipped"; fi

## bench: every benchmark, figures written to docs/performance.md (QUICK=1 for a smoke run).
bench: $(VENV_STAMP)
	python -m bench $(if $(QUICK),--quick,)

## constraints: re-freeze the full pinned set after changing a pin in requirements*.txt.
constraints: $(VENV_STAMP)
	{ echo "# Full pinned set for requirements-dev.txt; regenerate with 'make constraints' after changing a pin."; \
	  $(VENV)/bin/python -m pip freeze --exclude-editable | sort -f; } > constraints.txt

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
