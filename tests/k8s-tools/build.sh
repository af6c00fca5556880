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
# -mod=mod: go.sum is committed; let go fill module cache from the proxy.
export GOFLAGS="-mod=mod -buildvcs=false"
GO="${GO:-go}"
if ! command -v "$GO" >/dev/null; then
  [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go || { echo "build.sh: go not found" >&2; exit 1; }
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

# stamped <bin> <expected version substring>: true when the binary exists and
# carries the stamp (a fresh go build without ldflags would say v0.0.0-master).
stamped() { [ -x "$K8S_BIN_DIR/$1" ] && grep -aq "$2" "$K8S_BIN_DIR/$1"; }

need_k8s=0
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  stamped "$b" "v$K8S_VERSION" || need_k8s=1
done
if [ "$need_k8s" = 1 ]; then
  maj=${K8S_VERSION%%.*}; rest=${K8S_VERSION#*.}; min=${rest%%.*}
  ldf="-s -w"
  # Same variables upstream's hack/lib/version.sh sets, in both packages.
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=$maj -X $p.gitMinor=$min"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=$BUILD_DATE"
  done
  echo "build.sh: building Kubernetes v$K8S_VERSION binaries into $K8S_BIN_DIR"
  (cd "$HERE/kubernetes" && "$GO" build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$K8S_BIN_DIR/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
fi

if ! stamped etcd "$ETCD_VERSION"; then
  echo "build.sh: building etcd v$ETCD_VERSION"
  (cd "$HERE/etcd" && "$GO" build -trimpath -ldflags "-s -w" -o "$K8S_BIN_DIR/etcd" go.etcd.io/etcd/server/v3)
fi

if ! stamped helm "v$HELM_VERSION"; then
  echo "build.sh: building helm v$HELM_VERSION"
  (cd "$HERE/helm" && "$GO" build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    -o "$K8S_BIN_DIR/helm" helm.sh/helm/v3/cmd/helm)
fi

echo "build.sh: binaries ready in $K8S_BIN_DIR"
