# fedmm: `make demo` runs a whole federation on this machine; `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NPM_STAMP := node_modules/.fedmm-installed
GEN_STAMP := libs/proto/src/gen/.stamp
PROTOS := $(shell find protos -name '*.proto' -o -name 'buf*.yaml')

.PHONY: help install gen build lint test test-unit services-up services-down demo bench clean chart-test

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(NPM_STAMP) ## install npm dependencies (npm ci)

$(GEN_STAMP): $(NPM_STAMP) $(PROTOS)
	cd protos && npx buf lint && npx buf generate
	@touch $@

gen: $(GEN_STAMP) ## lint protos and generate gRPC code (buf + ts-proto)

build: $(GEN_STAMP) ## compile every workspace (tsc -b)
	npx tsc -b

lint: build ## ESLint with type information and buf lint
	cd protos && npx buf lint
	npx eslint --max-warnings 0 .

services-up: ## start local Kafka (KRaft) and Redis for tests and local runs
	deploy/local/up.sh

services-down: ## stop local Kafka and Redis
	deploy/local/down.sh

test-unit: build ## run the test suites (needs services-up)
	scripts/run-tests.sh

test: build services-up ## build, start Kafka and Redis, run every test
	scripts/run-tests.sh
	test/chart/run.sh

chart-test: ## Helm chart checks: lint, template, kubeconform (installs helm and kubeconform once)
	test/chart/run.sh

demo: build ## run the whole federation on this machine; writes out/demo/report.{json,html}
	node bin/fedmm.js demo --out out/demo

bench: build services-up ## benchmarks (figures in docs/BENCHMARKS.md)
	node bench/bus/kafka-bus-bench.js

clean: ## remove build outputs
	find libs services cli test -path '*/node_modules' -prune -o -type d -name dist -print | xargs rm -rf
	rm -rf libs/proto/src/gen
