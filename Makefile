# Every target sets up what it needs first (idempotently), so a fresh clone needs
# nothing but python3 (3.11+), node/npm and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_CLI_NOTICES := false

.PHONY: demo test test-fast synth bench prove setup clean

setup: $(STAMPS)/python $(STAMPS)/node $(STAMPS)/awscli

$(STAMPS)/python: requirements.txt requirements-dev.txt pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== installing Python dependencies into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# The checkout's tools (local_aws, redrive, bench) and the Lambda code, importable from
	@# anywhere in this venv, the way Lambda puts a function's asset root on its path.
	@$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "stream-aggregator-checkout.pth").write_text("$(CURDIR)\n$(CURDIR)/lambda_src\n")'
	@touch $@

# The AWS CLI the runbook's commands use (tests/ops/test_runbook.py runs them against
# moto). A venv of its own: awscli pins a botocore older than the project's.
AWSCLI_VERSION := 1.45.11
$(STAMPS)/awscli:
	@mkdir -p $(STAMPS)
	@echo "== installing the AWS CLI $(AWSCLI_VERSION) into .venv-awscli"
	@test -x .venv-awscli/bin/python || $(PYTHON) -m venv .venv-awscli
	@.venv-awscli/bin/python -m pip install --quiet --disable-pip-version-check awscli==$(AWSCLI_VERSION)
	@touch $@

$(STAMPS)/node: package.json
	@mkdir -p $(STAMPS)
	@echo "== installing the AWS CDK CLI (npm)"
	@npm install --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

synth: setup
	npx cdk synth --quiet

demo: setup
	$(PY) -m local_aws.demo

# The lanes (tests/lanes.py marks each test by what it uses): `test-fast` leaves out every
# test that synthesizes, runs on moto or starts other processes; `test` runs them all.
# Extra pytest options: PYTEST_ARGS="--durations=25".
FAST_LANE := not synth and not moto and not slow

# `test` uses both cores: mypy, the synth lane and the proofs (the "not synth" tests of
# tests/faults, tests/ops and tests/bench) run in the background (their output is printed
# when they end) while the rest runs in the foreground; it fails if any does.
PROOF_DIRS := tests/faults tests/ops tests/bench
test: setup
	$(PY) -m ruff check .
	@rm -rf .test-run && mkdir -p .test-run
	@echo "== mypy, the synth lane and the proofs run in the background (.test-run/*.log)"
	@tmp=$$(mktemp -d); \
	 $(PY) -m mypy > .test-run/mypy.log 2>&1 & mypy=$$!; \
	 $(PY) -m pytest -m synth --basetemp=$$tmp/synth $(PYTEST_ARGS) \
	   > .test-run/synth.log 2>&1 & synth=$$!; \
	 $(PY) -m pytest -m "not synth" --basetemp=$$tmp/proofs $(PYTEST_ARGS) $(PROOF_DIRS) \
	   > .test-run/proofs.log 2>&1 & proofs=$$!; \
	 echo "== the other lanes"; \
	 $(PY) -m pytest -m "not synth" --basetemp=$$tmp/other $(PYTEST_ARGS) \
	   $(addprefix --ignore=,$(PROOF_DIRS)); other=$$?; \
	 wait $$mypy; typed=$$?; wait $$synth; synthed=$$?; wait $$proofs; proved=$$?; \
	 echo "== mypy"; cat .test-run/mypy.log; \
	 echo "== the proofs"; cat .test-run/proofs.log; \
	 echo "== the synth lane"; cat .test-run/synth.log; \
	 test $$other -eq 0 -a $$typed -eq 0 -a $$synthed -eq 0 -a $$proved -eq 0

test-fast: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -m "$(FAST_LANE)" $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-awscli $(STAMPS) node_modules cdk.out

# The exactly-once proofs at full size, under faults: usage snapshots and event metrics
# 5 seeds x 100,000 records, the projection 5 x 50,000, bundles 3 x 500 objects on moto
# (`make test` runs them smaller).
prove: setup
	$(PY) -m local_aws.harness --records 100000 --seeds 1 2 3 4 5
	$(PY) -m local_aws.events_harness --events 100000 --seeds 1 2 3 4 5
	$(PY) -m local_aws.projection_harness --records 50000 --seeds 1 2 3 4 5 --crash-rate 0.8
	$(PY) -m local_aws.bundles_harness --objects 500 --seeds 1 2 3
