# Squall: the two commands that must work on a fresh machine are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# Incremental artefacts only pay back on repeated edits of one crate; for a test run they
# double target/'s size (about 12 GB) and slow a cold build.
export CARGO_INCREMENTAL ?= 0
RUN_FOR ?= 60s
RUN_FILE ?= examples/wikipedia-edits/topology.yaml
BENCH_SECONDS ?= 10

.PHONY: help run run-word-count redis-server jdk kafka-jars kafka-up kafka-down prometheus-server chromium node ui-assets ui-assets-check test test-host test-cluster test-operator-build lint unit unit-host unit-cluster fuzz fuzz-replay bench bench-idle toolchain proto proto-check bench-workers bench-compare bench-scale bench-ui bench-kafka crds crds-check chart-check test-operator kind-up kind-e2e

help:
	@echo "make run    the Wikipedia-edits pipeline for $(RUN_FOR): local edit feed -> parser -> Redis, then the top counts (RUN_FOR=, FEED_RATE= to change)"
	@echo "make run-word-count   the word-count example for $(RUN_FOR)"
	@echo "make test   lints and every test, Kubernetes tier included (builds the control plane once into .cache/)"
	@echo "make ui-assets   rebuild the web UI into ui/assets/dist/ (npm ci, type check, esbuild, its unit tests); commit the result"
	@echo "make kafka-up   a local Apache Kafka broker (KRaft, 127.0.0.1, free ports); prints its bootstrap address. make kafka-down stops it"
	@echo "make bench  benchmarks; rewrites BENCHMARKS.md"
	@echo "make bench-idle   1,000 idle executors: peak RSS and stop time; its own section of BENCHMARKS.md"
	@echo "make fuzz   every fuzz target under cargo-fuzz (nightly) for FUZZ_SECONDS (default 60) each"
	@echo "make bench-compare   the same topologies on Apache Storm and on Squall, alternately, the Kafka pipeline included (~17 min; BENCH_COMPARE_CASES= to pick cases); its own section of BENCHMARKS.md"
	@echo "make bench-ui   what the UI/REST API costs a worker at 1 M tuples/s, and the operator's API latency over 20 topologies of 20 components on a real API server (~5 min); its own section of BENCHMARKS.md"
	@echo "make bench-kafka   Kafka -> parser -> Redis on a real broker and Redis, at-least-once against exactly-once, alternating rounds (~3 min; KAFKA_BENCH_EDITS=, KAFKA_BENCH_ROUNDS=); its own section of BENCHMARKS.md"
	@echo "make bench-scale   the operator with 30 and 300 simulated workers against a real API server (~10 min; SCALE_SIZES=, SCALE_WINDOW=, SCALE_ROUNDS=); its own section of BENCHMARKS.md"

# CI machines start bare except for the toolchains of the machine image; say so clearly if one is missing.
toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

# Starts Redis and the local edit feed on free loopback ports, runs the topology with the
# live table, prints the top keys of each sorted set, and stops what it started.
run: toolchain redis-server
	$(CARGO) build --release -p squall-cli
	SQUALL=./target/release/squall RUN_FOR=$(RUN_FOR) RUN_FILE=$(RUN_FILE) bash examples/wikipedia-edits/run.sh

run-word-count: toolchain
	$(CARGO) build --release -p squall-cli
	./target/release/squall run examples/word-count/topology.yaml --for $(RUN_FOR)

# Debian's redis-server (with redis-cli), for `make run`, the pipeline tests and the
# benchmark; installed only when missing.
redis-server:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y redis-server; }

# A JDK and Maven (Debian's), for the Kafka broker of the tests and `make kafka-up`;
# installed only when missing.
jdk:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y openjdk-17-jdk-headless maven; }

# Apache Kafka's jars (tests/kafka-testenv/pom.xml, from Maven Central) into
# .cache/kafka/libs, Maven's repository in .cache/m2. Nothing is fetched when the cache
# holds the jars of the committed pom; offline first otherwise. The Kafka tests
# (kafka/tests/, cli/tests/kafka.rs) start their own brokers from these jars.
kafka-jars: toolchain jdk
	$(CARGO) run -q -p kafka-testenv --bin kafka-testenv -- jars

# A broker left running for manual use (files in .cache/kafka/run); prints its bootstrap
# address, e.g. for `squall feed kafka --bootstrap ADDR --topic edits`.
kafka-up: kafka-jars
	@$(CARGO) run -q -p kafka-testenv --bin kafka-testenv -- up

kafka-down: toolchain
	@$(CARGO) run -q -p kafka-testenv --bin kafka-testenv -- down

# Debian's prometheus (with promtool), for the test that runs the chart's Grafana
# dashboard queries on a real server (worker/tests/prometheus.rs); installed only when
# missing. Only the binaries are used: the test starts its own server on loopback.
prometheus-server:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y prometheus; }

# Debian's headless Chromium and its WebDriver, for the web UI's browser tests
# (cli/tests/browser.rs, operator/tests/browser.rs); installed only when missing.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; }

# The web UI (ui/web/): its npm packages from the committed lock (cached in .cache/npm,
# no install scripts), a type check, the esbuild bundle into ui/assets/dist/ (committed:
# squall-ui embeds it, so cargo builds need no Node.js) and the UI's unit tests.
UI_WEB := ui/web
NPM_CI = cd $(UI_WEB) && npm ci --cache "$(CURDIR)/.cache/npm" --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error

node:
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm not found: install Node.js 20 or later" >&2; exit 1; }

ui-assets: node
	$(NPM_CI)
	cd $(UI_WEB) && node_modules/.bin/tsc --noEmit -p . && node build.mjs && node build.mjs --tests

# Rebuilds into a temporary directory and compares with the committed bundle, so drift
# between ui/web/ and ui/assets/dist/ fails `make test`.
ui-assets-check: node
	$(NPM_CI)
	cd $(UI_WEB) && node_modules/.bin/tsc --noEmit -p . && node build.mjs --tests
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
		node $(UI_WEB)/build.mjs --out "$$tmp" && diff -rq ui/assets/dist "$$tmp" \
		|| { echo "ui/assets/dist differs from a fresh build of ui/web: run make ui-assets and commit it" >&2; exit 1; }

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	CARGO_TARGET_DIR=target $(CARGO) clippy --manifest-path fuzz/Cargo.toml --no-default-features --all-targets -- -D warnings

# Every package but the Kubernetes tier's. Cargo resolves dependency features for the
# packages it is asked to build, so the stages that build this set ask for it the same way
# and build each crate once.
HOST_SET := --workspace --exclude kube-testenv --exclude squall-node-agent --exclude squall-operator
# The one test of that set that needs the control plane: the CLI's cluster verbs
# (cli/tests/remote.rs), run by unit-cluster.
HOST_SET_CLUSTER_TESTS := the_cluster_verbs_

unit: unit-host unit-cluster

unit-host: toolchain multilang-venv redis-server prometheus-server chromium kafka-jars
	$(CARGO) test --no-fail-fast $(HOST_SET) -- --skip $(HOST_SET_CLUSTER_TESTS)

unit-cluster: toolchain k8s-bins
	K8S_BIN_DIR="$(K8S_BIN_DIR)" $(CARGO) test --no-fail-fast $(HOST_SET) --test remote

# The Kubernetes binaries' cold build (Go, about 12 minutes on 2 cores) runs in the
# background at the lowest CPU priority while the stages that need no cluster run: it
# takes the CPU their waits leave. The cluster stages start once it is done. `set -m`
# gives it a process group of its own to stop on failure; it stays in this session,
# since a new session (setsid) is a new scheduler autogroup, where nice has no effect
# against the other stages.
K8S_BINS_LOG := .cache/k8s-bins.log
test: toolchain
	@mkdir -p .cache; set -m; \
	nice -n 19 $(MAKE) --no-print-directory k8s-bins >$(K8S_BINS_LOG) 2>&1 & bins=$$!; \
	echo "make test: building the Kubernetes binaries in the background (log: $(K8S_BINS_LOG))"; \
	$(MAKE) --no-print-directory test-host || { kill -- -$$bins 2>/dev/null; exit 1; }; \
	wait $$bins; rc=$$?; cat $(K8S_BINS_LOG); \
	[ $$rc = 0 ] || { echo "make test: the Kubernetes binaries failed to build" >&2; exit $$rc; }; \
	$(MAKE) --no-print-directory test-cluster

test-host: ui-assets-check proto-check crds-check lint unit-host fuzz-replay test-operator-build
test-cluster: unit-cluster test-operator test-quickstart

# The cluster tier's test binaries, compiled ahead (in `make test`, while the Kubernetes
# binaries still build); the same selection as test-operator's, so it reuses them.
CLUSTER_TIER := -p kube-testenv -p squall-node-agent -p squall-operator
test-operator-build: toolchain
	$(CARGO) test --no-run -q $(HOST_SET)
	$(CARGO) test --no-run -q $(CLUSTER_TIER)

# The fuzz targets' bodies over their seed corpora and seeded generated inputs, on stable.
# fuzz/ is its own package (excluded from the workspace); it shares target/ so the
# workspace's builds are reused, and without its `libfuzzer` feature links no libFuzzer.
fuzz-replay: toolchain
	CARGO_TARGET_DIR=target $(CARGO) test --manifest-path fuzz/Cargo.toml --no-default-features

# Not part of `make test`. New inputs go to target/fuzz-corpus/ (fuzz/corpus/ keeps the
# curated seeds), crashes to fuzz/artifacts/. No sanitizer by default: the crates forbid
# unsafe code, so panics, hangs and OOMs are what fuzzing finds, and builds are faster.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire_frame multilang_stream multilang_msgpack manifest sse_stream resp_reply edit_event
FUZZ_SANITIZER ?= none
fuzz: toolchain
	@rustup run nightly cargo --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@test -x .cache/cargo-fuzz/bin/cargo-fuzz || $(CARGO) install cargo-fuzz --locked --root .cache/cargo-fuzz
	set -e; for t in $(FUZZ_TARGETS); do mkdir -p target/fuzz-corpus/$$t; \
		PATH="$(CURDIR)/.cache/cargo-fuzz/bin:$$PATH" cargo +nightly fuzz run --fuzz-dir fuzz \
			--sanitizer $(FUZZ_SANITIZER) --target-dir $(CURDIR)/target/fuzz $$t \
			target/fuzz-corpus/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10; \
	done

bench: toolchain redis-server multilang-venv
	$(CARGO) build --release -p squall-bench
	./target/release/squall-bench all --seconds $(BENCH_SECONDS) --out BENCHMARKS.md
	./target/release/squall-bench idle-executors --out BENCHMARKS.md
	$(MAKE) --no-print-directory bench-workers
	$(MAKE) --no-print-directory bench-ui
	$(MAKE) --no-print-directory bench-kafka
	@cat BENCHMARKS.md

# 1,000 mostly idle executors per process: peak RSS and stop time; rewrites only its own
# section of BENCHMARKS.md (also part of `make bench`).
bench-idle: toolchain
	$(CARGO) build --release -p squall-bench
	./target/release/squall-bench idle-executors --out BENCHMARKS.md

# Two worker processes over the gRPC data plane vs a raw TCP pipe; rewrites only its own
# section of BENCHMARKS.md.
bench-workers: toolchain
	$(CARGO) build --release -p squall-worker -p squall-bench-workers
	./target/release/squall-bench-workers --seconds $(BENCH_SECONDS) --out BENCHMARKS.md

# The UI/REST API's two targets: the CPU a real worker at 1 M tuples/s spends answering
# the operator's GET /figures (alternating windows without and with polling, at the
# operator's period, every 100 ms and back to back), and the latency of every read call of
# the operator's API over 20 topologies x 20 components held by a real control plane
# (kube-testenv, the same binaries as `make test-k8s`; TokenReviews and SubjectAccessReviews
# answered by its API server), whose worker pods are stand-ins on loopback IPs; rewrites
# only its own section.
BENCH_UI_ROUNDS ?= 5
BENCH_UI_WINDOW ?= 10
bench-ui: toolchain k8s-bins
	$(CARGO) build --release -p squall-worker -p squall-bench-ui
	K8S_BIN_DIR="$(K8S_BIN_DIR)" ./target/release/squall-bench-ui --rounds $(BENCH_UI_ROUNDS) --window $(BENCH_UI_WINDOW) --out BENCHMARKS.md

# The Wikipedia-edits pipeline read from Kafka (benchmarks/kafka): a real broker
# (kafka-testenv) and a real redis-server on loopback, a topic pre-loaded with the bundled
# edits, then kafka -> json-keys -> redis-counter on the in-process engine, at-least-once
# and exactly-once alternately over a few rounds, each run checking the counts in Redis.
# Rewrites only its own section of BENCHMARKS.md (also part of `make bench`).
KAFKA_BENCH_EDITS ?= 300000
KAFKA_BENCH_ROUNDS ?= 3
bench-kafka: toolchain redis-server kafka-jars
	$(CARGO) build --release -p squall-bench-kafka
	./target/release/squall-bench-kafka --edits $(KAFKA_BENCH_EDITS) --rounds $(KAFKA_BENCH_ROUNDS) --out BENCHMARKS.md
	@sed -n '/<!-- squall-bench-kafka:begin -->/,/<!-- squall-bench-kafka:end -->/p' BENCHMARKS.md

# Squall against Apache Storm 2.8 (benchmarks/storm, LocalCluster in one JVM per run): the
# same perf topologies, Storm then Squall per case, several rounds; rewrites only its own
# section of BENCHMARKS.md. The Kafka case (storm-kafka-client's KafkaSpout against Squall's
# kafka spout) reads a topic pre-loaded with BENCH_COMPARE_KAFKA_RECORDS edits on a real
# broker (kafka-testenv) and counts into a real redis-server, both on loopback and started
# by the driver. Not part of `make test` (about 17 minutes). Installs Maven and a JDK when
# missing; Maven's repository is .cache/m2 (offline once it is warm). BENCH_COMPARE_CASES
# (comma-separated, e.g. kafka-redis-ack) runs only those cases, and the section then
# holds only their rows.
BENCH_COMPARE_ROUNDS ?= 3
BENCH_COMPARE_SECONDS ?= 10
BENCH_COMPARE_WARMUP ?= 5
BENCH_COMPARE_CASES ?=
BENCH_COMPARE_KAFKA_RECORDS ?= 300000
STORM_JVM_OPTS ?= -Xmx1g
STORM_M2 := $(CURDIR)/.cache/m2

bench-compare: toolchain multilang-venv redis-server kafka-jars
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y openjdk-17-jdk-headless maven; }
	@command -v perf >/dev/null || echo "perf not found: missed targets will not be profiled" >&2
	$(CARGO) build --release -p squall-bench -p squall-bench-compare
	cd benchmarks/storm && { mvn -q -o -B -Dmaven.repo.local=$(STORM_M2) package 2>/dev/null \
		|| mvn -q -B -Dmaven.repo.local=$(STORM_M2) package; }
	time ./target/release/squall-bench-compare run --rounds $(BENCH_COMPARE_ROUNDS) \
		--seconds $(BENCH_COMPARE_SECONDS) --warmup $(BENCH_COMPARE_WARMUP) \
		--kafka-records $(BENCH_COMPARE_KAFKA_RECORDS) $(if $(BENCH_COMPARE_CASES),--cases $(BENCH_COMPARE_CASES)) \
		--jvm-opts "$(STORM_JVM_OPTS)" $$(command -v perf >/dev/null || echo --no-profile) --out BENCHMARKS.md
	@sed -n '/<!-- bench-compare:begin -->/,/<!-- bench-compare:end -->/p' BENCHMARKS.md

# The operator and simulated workers (benchmarks/scale: Lease renewal, ConfigMap watch and
# /status, no engine) against a real control plane (kube-testenv, the same binaries as
# `make test-k8s`), at each size TOPOLOGIESxWORKERS; rewrites only its own section of
# BENCHMARKS.md. Not part of `make test` or `make bench` (a few minutes per size).
SCALE_SIZES ?= 1x30,10x30,3x100
SCALE_WINDOW ?= 60
SCALE_ROUNDS ?= 10
bench-scale: toolchain k8s-bins
	$(CARGO) build --release -p squall-bench-scale
	K8S_BIN_DIR="$(K8S_BIN_DIR)" ./target/release/squall-bench-scale --sizes $(SCALE_SIZES) --window $(SCALE_WINDOW) --rounds $(SCALE_ROUNDS) --out BENCHMARKS.md
	@sed -n '/<!-- squall-bench-scale:begin -->/,/<!-- squall-bench-scale:end -->/p' BENCHMARKS.md

# The data plane's protobuf code: generated by a pure-Rust compiler (protox), so no protoc
# is needed; committed, and checked for drift by `make test`.
proto: toolchain
	$(CARGO) run -q -p squall-protogen

proto-check: toolchain
	$(CARGO) run -q -p squall-protogen -- --check

# The Topology CRD, generated from squall_model::TopologySpec by the operator binary;
# committed (crds/ and the chart's copy) and checked for drift by `make test`.
crds: toolchain
	$(CARGO) run -q -p squall-operator -- crd > crds/topology.yaml
	cp crds/topology.yaml charts/squall-operator/crds/topology.yaml

crds-check: toolchain
	@$(CARGO) run -q -p squall-operator -- crd | diff -u crds/topology.yaml - \
		|| { echo "crds/topology.yaml is stale: run make crds" >&2; exit 1; }
	@diff -u crds/topology.yaml charts/squall-operator/crds/topology.yaml \
		|| { echo "charts/squall-operator/crds/topology.yaml differs from crds/: run make crds" >&2; exit 1; }

# helm lint and helm template of the operator chart (helm comes with the k8s binaries),
# with its defaults and with every optional monitoring object on.
CHART_MONITORING := --set metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true,dashboards.enabled=true
chart-check: k8s-bins
	"$(K8S_BIN_DIR)/helm" lint charts/squall-operator
	"$(K8S_BIN_DIR)/helm" template squall charts/squall-operator >/dev/null
	"$(K8S_BIN_DIR)/helm" lint charts/squall-operator $(CHART_MONITORING)
	"$(K8S_BIN_DIR)/helm" template squall charts/squall-operator $(CHART_MONITORING) >/dev/null

# The Kubernetes tier on the real control plane: the test cluster's own tests
# (kube-testenv, the node agent) and the operator's, whose worker pods run the
# squall-worker binary (with the multilang venv on PATH for the Python image's pods),
# built by test-operator-build with the unit stage's selection; the three packages
# together resolve the same features as that selection, so nothing is compiled twice.
# The web UI's browser test needs Chromium; the UI's bundle is committed
# (ui-assets-check).
# Its test binaries run CLUSTER_TEST_JOBS at a time (tests/run-test-binaries.sh): each
# runs its tests one by one against clusters of its own, and alone they keep about one of
# two cores busy. The longest start first.
CLUSTER_TEST_JOBS ?= 2
CLUSTER_TESTS_FIRST := autoscaling,cluster,api_cost,lifecycle,python,mtls,outage,smoke
test-operator: k8s-bins chart-check redis-server chromium kafka-jars multilang-venv test-operator-build
	$(CARGO) test --doc $(CLUSTER_TIER)
	K8S_BIN_DIR="$(K8S_BIN_DIR)" CARGO="$(CARGO)" tests/run-test-binaries.sh $(CLUSTER_TEST_JOBS) \
		$(CLUSTER_TESTS_FIRST) -- $(CLUSTER_TIER)

# For users with Docker, kind, kubectl and helm (none of them runs on the CI machine): a
# kind cluster with the three images (operator, worker, worker-python) loaded and the
# chart installed; then the word-count example (built-in components only) until it is
# Running.
KIND_CLUSTER ?= squall
KIND_TAG ?= dev
kind-up:
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name '$(KIND_CLUSTER)' --wait 120s
	docker build -f docker/operator.Dockerfile -t squall/operator:$(KIND_TAG) .
	docker build -f docker/worker.Dockerfile -t squall/worker:$(KIND_TAG) .
	docker build -f docker/worker-python.Dockerfile -t squall/worker-python:$(KIND_TAG) .
	kind load docker-image --name '$(KIND_CLUSTER)' squall/operator:$(KIND_TAG) squall/worker:$(KIND_TAG) squall/worker-python:$(KIND_TAG)
	helm upgrade --install squall charts/squall-operator --namespace squall-system --create-namespace \
		--set image.tag=$(KIND_TAG) --set workerImage=squall/worker:$(KIND_TAG) \
		--set pythonWorkerImage=squall/worker-python:$(KIND_TAG) --wait --timeout 180s

kind-e2e: kind-up
	kubectl apply -f examples/word-count/topology.yaml
	kubectl wait --for=jsonpath='{.status.phase}'=Running topology/word-count --timeout=120s
	kubectl get topology/word-count
	kubectl delete -f examples/word-count/topology.yaml --wait --timeout=120s

-include tests/k8s.mk
-include multilang/python.mk
