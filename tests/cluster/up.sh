#!/usr/bin/env bash
# Starts a throw-away control plane on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and (if built) one squall node
# agent. State lives in a temp dir recorded in $K8S_STATE; stop with down.sh.
#
# Env: K8S_BIN_DIR (binaries), K8S_PORT_BASE (default 26400; uses base+1,
# +2, +43, +57, +59), K8S_TARGET_DIR (default target/debug), K8S_NODE_AGENT_BIN,
# K8S_AGENT_CONFIG (JSON config for the agent; default: one node "node-1" running the
# chart's images squall/operator and squall/worker as the binaries in K8S_TARGET_DIR;
# a config without podKubeconfig gets the cluster's kubeconfig),
# K8S_NODE_MONITOR_GRACE (default 10s).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
K8S_VERSION=1.37.2
K8S_BIN_DIR="${K8S_BIN_DIR:-$ROOT/.cache/k8s-bin/v$K8S_VERSION}"
K8S_STATE="${K8S_STATE:-$ROOT/.cache/cluster.env}"
BASE="${K8S_PORT_BASE:-26400}"
ETCD_PORT=$((BASE + 1)) PEER_PORT=$((BASE + 2)) API_PORT=$((BASE + 43)) KCM_PORT=$((BASE + 57)) SCHED_PORT=$((BASE + 59))
GRACE="${K8S_NODE_MONITOR_GRACE:-10s}"
TARGET_DIR="${K8S_TARGET_DIR:-$ROOT/target/debug}"
AGENT_BIN="${K8S_NODE_AGENT_BIN:-$TARGET_DIR/squall-node-agent}"

die() { echo "up.sh: $*" >&2; exit 1; }
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$K8S_BIN_DIR/$b" ] || die "$K8S_BIN_DIR/$b missing: run 'make k8s-bins'"
done
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
[ -e "$K8S_STATE" ] && die "a cluster is already up ($K8S_STATE); run down.sh first"
for p in $ETCD_PORT $PEER_PORT $API_PORT $KCM_PORT $SCHED_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is in use; set K8S_PORT_BASE"; fi
done

D="$(mktemp -d "${TMPDIR:-/tmp}/squall-cluster.XXXXXX")"
mkdir -p "$D/pki" "$D/logs"
PIDS=()
mkdir -p "$(dirname "$K8S_STATE")"
save_state() {
  { echo "K8S_CLUSTER_DIR=$D"; echo "K8S_PIDS=\"${PIDS[*]}\""; echo "KUBECONFIG=$D/kubeconfig"; } >"$K8S_STATE"
}
fail() {
  echo "up.sh: $*" >&2
  for f in "$D"/logs/*.log; do [ -f "$f" ] && { echo "---- $f" >&2; tail -n 20 "$f" >&2; }; done
  K8S_KEEP_LOGS=1 "$HERE/down.sh" || true
  exit 1
}
# Each server gets its own session/process group (pid == pgid), so
# down.sh can signal everything it forked.
start() { local name=$1; shift; setsid "$@" >"$D/logs/$name.log" 2>&1 & PIDS+=($!); save_state; }

# --- certificates: one CA for serving and client certs, an EC key for SA tokens
P="$D/pki"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key "$P/ca.key"
openssl req -x509 -new -key "$P/ca.key" -subj /CN=squall-cluster-ca -days 7 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$P/ca.crt"
cert() { # name subject extensions
  key "$P/$1.key"
  printf '%b' "$3" >"$P/$1.ext"
  openssl req -new -key "$P/$1.key" -subj "$2" -out "$P/$1.csr"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -set_serial "$RANDOM$RANDOM" \
    -days 7 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}
cert apiserver /CN=kube-apiserver "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default\n"
cert admin /O=system:masters/CN=squall-admin "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
key "$P/sa.key"; openssl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub"

KC="$D/kubeconfig"
cat >"$KC" <<KCEOF
apiVersion: v1
kind: Config
clusters:
- name: squall
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$P/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$P/admin.crt", client-key: "$P/admin.key"}
contexts:
- name: squall
  context: {cluster: squall, user: admin, namespace: default}
current-context: squall
KCEOF

ETCD_URL="http://127.0.0.1:$ETCD_PORT" PEER_URL="http://127.0.0.1:$PEER_PORT"
start etcd "$K8S_BIN_DIR/etcd" --name=default --data-dir="$D/etcd" \
  --listen-client-urls="$ETCD_URL" --advertise-client-urls="$ETCD_URL" \
  --listen-peer-urls="$PEER_URL" --initial-advertise-peer-urls="$PEER_URL" \
  --initial-cluster="default=$PEER_URL" --unsafe-no-fsync=true --log-level=warn

start kube-apiserver "$K8S_BIN_DIR/kube-apiserver" --etcd-servers="$ETCD_URL" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$D/apiserver" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" --authorization-mode=RBAC --allow-privileged=true \
  --service-cluster-ip-range=10.0.0.0/24 --service-account-issuer="https://127.0.0.1:$API_PORT" \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --endpoint-reconciler-type=none --profiling=false

curl_api() { curl -fsS --max-time 2 --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "https://127.0.0.1:$API_PORT$1"; }
for i in $(seq 1 240); do
  [ "$(curl_api /readyz 2>/dev/null || true)" = ok ] && break
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a server exited during start-up"; done
  [ "$i" = 240 ] && fail "kube-apiserver not ready after 60s"
  sleep 0.25
done

common=(--kubeconfig="$KC" --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC"
  --bind-address=127.0.0.1 --leader-elect=false)
start kube-controller-manager "$K8S_BIN_DIR/kube-controller-manager" "${common[@]}" \
  --secure-port="$KCM_PORT" --cert-dir="$D/kcm" \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --controllers='*' --node-monitor-grace-period="$GRACE" --node-monitor-period=1s
start kube-scheduler "$K8S_BIN_DIR/kube-scheduler" "${common[@]}" --secure-port="$SCHED_PORT" --cert-dir="$D/scheduler"

for i in $(seq 1 240); do
  curl_api /api/v1/namespaces/default/serviceaccounts/default >/dev/null 2>&1 && break
  [ "$i" = 240 ] && fail "default ServiceAccount not created after 60s (controller manager)"
  sleep 0.25
done

if [ -x "$AGENT_BIN" ]; then
  CFG="${K8S_AGENT_CONFIG:-}"
  if [ -z "$CFG" ]; then
    CFG="$D/agent.json"
    # The chart's images run the freshly built binaries, so `helm install` works as is.
    cat >"$CFG" <<CFGEOF
{"nodes": ["node-1"], "workDir": "$D/agent", "podKubeconfig": "$KC",
 "images": {"squall/operator": {"binary": "$TARGET_DIR/squall-operator"},
            "squall/worker": {"binary": "$TARGET_DIR/squall-worker"}}}
CFGEOF
  fi
  start node-agent "$AGENT_BIN" --config "$CFG" --kubeconfig "$KC"
  for i in $(seq 1 120); do
    "$K8S_BIN_DIR/kubectl" --kubeconfig "$KC" wait --for=condition=Ready node --all --timeout=1s >/dev/null 2>&1 && break
    [ "$i" = 120 ] && fail "node agent did not bring a Node to Ready"
    sleep 0.5
  done
else
  echo "up.sh: no node agent at $AGENT_BIN (cargo build -p squall-node-agent); pods will stay Pending" >&2
fi

# For a person's shell: kubectl and helm from the cache, and this cluster's kubeconfig.
ENV_SH="${K8S_STATE%.env}-env.sh"
printf 'export KUBECONFIG=%q\nexport PATH=%q:"$PATH"\n' "$KC" "$K8S_BIN_DIR" >"$ENV_SH"
echo "cluster up in $D"
echo "export KUBECONFIG=$KC"
echo "source $ENV_SH   # KUBECONFIG, and kubectl and helm on PATH"
