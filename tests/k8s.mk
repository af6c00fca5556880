# Kubernetes test tier: included by the root Makefile.
#   make k8s-bins     build/cache kube-apiserver, kube-controller-manager,
#                     kube-scheduler, kubectl, etcd and helm
#   make cluster-up   start a loopback cluster (+ one node agent running the chart's
#                     images as the built binaries); writes .cache/cluster-env.sh
#   make test-quickstart  the README's cluster quickstart, line by line
#   make cluster-down stop it and remove its files
#   make test-k8s     binaries, then the kube-testenv and node-agent tests

K8S_VERSION := 1.37.2
# Repository root, taken from this file's location when it is included.
K8S_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
K8S_CACHE_DIR ?= $(K8S_ROOT)/.cache
K8S_BIN_DIR ?= $(K8S_CACHE_DIR)/k8s-bin/v$(K8S_VERSION)
K8S_CARGO ?= cargo
K8S_TEST_ARGS ?=

.PHONY: k8s-bins cluster-up cluster-down test-k8s test-quickstart

k8s-bins:
	K8S_CACHE_DIR="$(K8S_CACHE_DIR)" K8S_BIN_DIR="$(K8S_BIN_DIR)" "$(K8S_ROOT)/tests/k8s-tools/build.sh"

cluster-up: k8s-bins
	cd "$(K8S_ROOT)" && $(K8S_CARGO) build -p squall-node-agent -p squall-operator -p squall-worker
	K8S_BIN_DIR="$(K8S_BIN_DIR)" "$(K8S_ROOT)/tests/cluster/up.sh"

cluster-down:
	"$(K8S_ROOT)/tests/cluster/down.sh"

test-k8s: k8s-bins
	cd "$(K8S_ROOT)" && K8S_BIN_DIR="$(K8S_BIN_DIR)" $(K8S_CARGO) test -p kube-testenv -p squall-node-agent $(K8S_TEST_ARGS)

test-quickstart: k8s-bins
	"$(K8S_ROOT)/tests/cluster/quickstart.sh"
