#!/usr/bin/env bash
# Runs the README's cluster quickstart exactly as written (the lines between its
# quickstart markers), in a clean shell, from the repository root; the cluster is torn
# down whatever happens.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
[ -e .cache/cluster.env ] && { echo "quickstart.sh: a cluster is already up (.cache/cluster.env); run make cluster-down first" >&2; exit 1; }
SCRIPT="$(mktemp "${TMPDIR:-/tmp}/squall-quickstart.XXXXXX")"
trap 'make -s cluster-down >/dev/null 2>&1 || true; rm -f "$SCRIPT"' EXIT
awk '/<!-- quickstart:begin -->/ { on = 1; next } /<!-- quickstart:end -->/ { on = 0 }
     on && !/^```/' README.md >"$SCRIPT"
[ -s "$SCRIPT" ] || { echo "quickstart.sh: no quickstart block in README.md" >&2; exit 1; }
echo "quickstart.sh: running"; sed 's/^/  /' "$SCRIPT"
# A login-like environment: only what a person's shell would have.
# A person's environment: the toolchain's variables pass, nothing set by make or the tests.
keep=(HOME="$HOME" PATH="$PATH" TERM=dumb)
for v in USER TMPDIR CARGO_HOME RUSTUP_HOME CARGO_TARGET_DIR CARGO_INCREMENTAL; do
  [ -n "${!v:-}" ] && keep+=("$v=${!v}")
done
env -i "${keep[@]}" bash -euo pipefail -x "$SCRIPT"
echo "quickstart.sh: ok"
