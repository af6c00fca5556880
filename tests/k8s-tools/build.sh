#!/usr/bin/env bash
# Builds (once) the Kubernetes control plane, kubectl, etcd and helm used by the
# test tier into $K8S_BIN_DIR, from the pinned tools-only modules next to this
# script. Skips any binary that already exists with the expected version stamp.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

# Single source of truth for the pins is the go.mod files; these are only for
# stamping and the cache folder name, and are checked against go.mod below.
K8S_VERSION=1.37.2
ETCD_VERSION=3.7.0
HELM_VERSION=3.22.0

K8S_CACHE_DIR="${K8S_CACHE_DIR:-$ROOT/.cache}"
K8S_BIN_DIR="${K8S_BIN_DIR:-$K8S_CACHE_DIR/k8s-bin/v$K8S_VERSION}"
export GOMODCACHE="${GOMODCACHE:-$K8S_CACHE_DIR/go/mod}"
export GOCACHE="${GOCACHE:-$K8S_CACHE_DIR/go/build}"
export GOTOOLCHAIN=local CGO_ENABLED=0
# go.mod/go.sum are committed and complete: readonly makes a drifted pin an
# error instead of a silent rewrite. Modules come from GOPROXY (default).
export GOFLAGS="-mod=readonly -buildvcs=false"
GO="${GO:-go}"
if ! command -v "$GO" >/dev/null; then
  if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; else echo "build.sh: go not found" >&2; exit 1; fi
fi

check_pin() { # module dir, module path, version
  grep -qE "^\s*(require )?$2 v$3( |$)" "$HERE/$1/go.mod" \
    || { echo "build.sh: $HERE/$1/go.mod does not pin $2 v$3" >&2; exit 1; }
}
check_pin kubernetes k8s.io/kubernetes "$K8S_VERSION"
check_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pin helm helm.sh/helm/v3 "$HELM_VERSION"

mkdir -p "$K8S_BIN_DIR"
BUILD_DATE=1970-01-01T00:00:00Z # fixed so rebuilds are reproducible

# stamped <bin> <expected version> <version args...>: true when the binary
# exists and reports the version (an unstamped k8s build says v0.0.0-master).
stamped() {
  local bin="$K8S_BIN_DIR/$1" want=$2
  shift 2
  local out
  [ -x "$bin" ] && out="$("$bin" "$@" 2>/dev/null)" && [[ "$out" == *"$want"* ]]
}

need_k8s=0
built=0
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  stamped "$b" "Kubernetes v$K8S_VERSION" --version || need_k8s=1
done
stamped kubectl "Client Version: v$K8S_VERSION" version --client || need_k8s=1
maj=${K8S_VERSION%%.*}; rest=${K8S_VERSION#*.}; min=${rest%%.*}
if [ "$need_k8s" = 1 ]; then
  ldf="-s -w"
  # Same variables upstream's hack/lib/version.sh sets, in both packages.
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=$maj -X $p.gitMinor=$min"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=$BUILD_DATE"
  done
  echo "build.sh: building Kubernetes v$K8S_VERSION binaries into $K8S_BIN_DIR"
  built=1
  (cd "$HERE/kubernetes" && "$GO" build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$K8S_BIN_DIR/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
fi

if ! stamped etcd "etcd Version: $ETCD_VERSION" --version; then
  echo "build.sh: building etcd v$ETCD_VERSION"
  built=1
  (cd "$HERE/etcd" && "$GO" build -trimpath -ldflags "-s -w" -o "$K8S_BIN_DIR/etcd" go.etcd.io/etcd/server/v3)
fi

# helm assumes Kubernetes v1.20 wherever it has no cluster to ask (`helm template`, `helm
# lint`) unless built with the version it targets, as upstream's Makefile does; the chart
# needs a newer one, so stamp ours in both places helm reads it.
helm_kube_default() {
  local c
  c="$(mktemp -d)"
  mkdir -p "$c/templates"
  printf 'apiVersion: v2\nname: probe\nversion: 0.1.0\n' >"$c/Chart.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata: {kube: "{{ .Capabilities.KubeVersion.Version }}"}\n' >"$c/templates/cm.yaml"
  "$K8S_BIN_DIR/helm" template "$c" 2>/dev/null | grep -o 'kube: "[^"]*"' || true
  rm -rf "$c"
}
helm_ok() { stamped helm "v$HELM_VERSION" version --short && [ "$(helm_kube_default)" = "kube: \"v$maj.$min.0\"" ]; }
if ! helm_ok; then
  echo "build.sh: building helm v$HELM_VERSION"
  built=1
  hldf="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    hldf="$hldf -X $p.k8sVersionMajor=$maj -X $p.k8sVersionMinor=$min"
  done
  (cd "$HERE/helm" && "$GO" build -trimpath -ldflags "$hldf" -o "$K8S_BIN_DIR/helm" helm.sh/helm/v3/cmd/helm)
  helm_ok || { echo "build.sh: helm does not default to Kubernetes v$maj.$min ($(helm_kube_default))" >&2; exit 1; }
fi

# The binaries are the cache; Go's build and module caches (~6 GB for Kubernetes) are not
# needed once they exist, and have filled CI disks. K8S_KEEP_GO_CACHE=1 keeps them.
if [ "$built" = 1 ] && [ "${K8S_KEEP_GO_CACHE:-0}" != 1 ]; then
  echo "build.sh: removing Go's build and module caches (set K8S_KEEP_GO_CACHE=1 to keep them)"
  "$GO" clean -cache -modcache
fi

echo "build.sh: binaries ready in $K8S_BIN_DIR"
