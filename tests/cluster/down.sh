#!/usr/bin/env bash
# Stops the cluster started by up.sh: SIGTERM to every process group, SIGKILL
# after 5s, then removes its directory (kept when K8S_KEEP_LOGS=1).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
K8S_STATE="${K8S_STATE:-$ROOT/.cache/cluster.env}"
[ -f "$K8S_STATE" ] || { echo "down.sh: no cluster recorded in $K8S_STATE"; exit 0; }
# shellcheck disable=SC1090
. "$K8S_STATE"
read -r -a PIDS <<<"${K8S_PIDS:-}"
# Reverse start order: agent and controllers before the apiserver and etcd.
for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM -- "-${PIDS[i]}" 2>/dev/null || true; done
# A group counts as alive while it has a non-zombie member (orphans may sit
# unreaped as zombies under some init processes).
alive_group() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; }
for _ in $(seq 1 50); do
  alive=0
  for pid in "${PIDS[@]}"; do alive_group "$pid" && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
rm -f "$K8S_STATE" "${K8S_STATE%.env}-env.sh"
if [ "${K8S_KEEP_LOGS:-0}" != 0 ]; then
  echo "down.sh: logs kept in $K8S_CLUSTER_DIR/logs"
else
  rm -rf "$K8S_CLUSTER_DIR"
  echo "down.sh: cluster stopped and removed"
fi
