# The two commands the README opens with:
#   make demo   ClickHouse + collector (the dashboards, and the demo site on its own port); Ctrl-C stops all
#   make test   installs what is missing, then runs every check and test in the repository
SHELL := /bin/bash
.DEFAULT_GOAL := help
CLICKHOUSE_PORT ?= 8123
COLLECTOR_ADDR ?= 127.0.0.1:8080
DEMO_ADDR ?= 127.0.0.1:8081

.PHONY: help setup build test check demo clean

help:
	@echo "make demo   - run ClickHouse + collector + demo site + dashboards (Ctrl-C stops them)"
	@echo "make test   - install missing tools, run every check and test"

setup:
	@scripts/setup.sh

build: setup
	cargo build --bin pathlight
	scripts/build-tracker.sh

# Static checks first: they fail in seconds, before the long test build.
check: setup
	cargo fmt --all -- --check
	# wasm32 builds, apart because their features differ: wire as the tracker uses it (no_std);
	# the tracker and the edge worker as they ship (scripts/build-{tracker,worker}.sh in test).
	cargo build -p pathlight-wire --no-default-features --target wasm32-unknown-unknown
	cargo clippy --all-targets -- -D warnings
	# The fuzz targets (not a default member; run by scripts/fuzz.sh) must keep compiling.
	cargo clippy -p pathlight-fuzz -- -D warnings
	# Apart: together, the worker's wire (std) would be unified into the tracker's (no_std).
	cargo clippy -p pathlight-tracker --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p pathlight-edge-worker --target wasm32-unknown-unknown -- -D warnings

# Rust tests (wire, ingest, edge worker; collector against a real ClickHouse 18.16), then the
# cross-component tests in tests/ (current ClickHouse SQL through chdb; the tracker in Chromium
# and the edge worker in workerd, against the collector and ClickHouse), which use the binary
# cargo test just built and the tracker and worker builds.
test: check
	cargo test
	scripts/build-tracker.sh
	scripts/build-worker.sh
	cd tests && npm test

demo: build
	@scripts/demo.sh "$(CLICKHOUSE_PORT)" "$(COLLECTOR_ADDR)" "$(DEMO_ADDR)"

clean:
	-scripts/clickhouse.sh stop
	rm -rf .data target
