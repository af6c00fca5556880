# Squall: the two commands that must work on a fresh machine are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
RUN_FOR ?= 60s
RUN_FILE ?= examples/word-count/topology.yaml
BENCH_SECONDS ?= 10

.PHONY: help run test lint unit bench toolchain

help:
	@echo "make run    build and run $(RUN_FILE) locally for $(RUN_FOR) (RUN_FOR=, RUN_FILE= to change)"
	@echo "make test   lints and every test, Kubernetes tier included (builds the control plane once into .cache/)"
	@echo "make bench  benchmarks; rewrites BENCHMARKS.md"

# CI machines start bare except for the toolchains of the machine image; say so clearly if one is missing.
toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

run: toolchain
	$(CARGO) build --release -p squall-cli
	./target/release/squall run $(RUN_FILE) --for $(RUN_FOR)

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: toolchain multilang-venv
	$(CARGO) test --workspace --exclude kube-testenv --exclude squall-node-agent

test: lint unit test-k8s

bench: toolchain
	$(CARGO) build --release -p squall-bench
	./target/release/squall-bench all --seconds $(BENCH_SECONDS) --out BENCHMARKS.md
	@cat BENCHMARKS.md

-include tests/k8s.mk
-include multilang/python.mk
