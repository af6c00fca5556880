#!/usr/bin/env bash
# Runs the test binaries of some cargo packages JOBS at a time, instead of one after
# another as `cargo test` does. For the Kubernetes tier: each binary runs its tests one at
# a time against control planes of its own, and most of a test is waiting on them, so two
# binaries at once keep two cores busier. kube-testenv gives every running cluster its own
# pod addresses, and every other server in these tests binds a free port.
#
#   tests/run-test-binaries.sh JOBS [FIRST,...] -- CARGO_TEST_ARGS...
#
# FIRST names binaries (by file name before the hash) to start ahead of the others, the
# longest ones, so the last to finish is a short one. Every binary runs even when one
# fails, like `cargo test --no-fail-fast`; each one's output is printed whole when it ends,
# then a table of durations. Exits non-zero when any binary failed.
set -uo pipefail
# `wait -n -p` (which job ended) is bash 5.1's.
if (( BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1) )); then
	echo "run-test-binaries: needs bash 5.1 or later (this is $BASH_VERSION)" >&2
	exit 1
fi

jobs=${1:?usage: run-test-binaries.sh JOBS [FIRST,...] -- CARGO_TEST_ARGS...}
shift
first=""
if [ "${1:-}" != "--" ]; then first=${1:-}; shift; fi
[ "${1:-}" = "--" ] && shift
cargo=${CARGO:-cargo}

# One line per test binary: its executable and its package's directory, from cargo's
# artifact messages (paths hold no double quotes). A test binary is an artifact built
# with the test profile flag; the package's own executables, built for the integration
# tests, are not.
list=$("$cargo" test --no-run --message-format=json "$@" \
	| grep '"executable":"/' | grep -E '"profile":\{[^}]*"test":true' \
	| sed -E 's/.*"manifest_path":"([^"]*)".*"executable":"([^"]*)".*/\2 \1/') || {
	echo "run-test-binaries: cargo test --no-run failed" >&2
	exit 1
}
[ -n "$list" ] || { echo "run-test-binaries: no test binaries for: $*" >&2; exit 1; }

# The FIRST names in their order, then the rest in cargo's order.
ordered=()
IFS=, read -ra wanted <<<"$first"
for w in "${wanted[@]}"; do
	while read -r exe manifest; do
		name=$(basename "$exe"); name=${name%-*}
		[ "$name" = "$w" ] && ordered+=("$exe $manifest")
	done <<<"$list"
done
while read -r exe manifest; do
	skip=0
	for o in "${ordered[@]}"; do [ "$o" = "$exe $manifest" ] && skip=1; done
	[ $skip = 1 ] || ordered+=("$exe $manifest")
done <<<"$list"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A started=() label=() log=()
failed=()
summary=()

# Prints the output of the binary that ran as PID and records how it ended.
finish() {
	local pid=$1 rc=$2 secs=$(( $(date +%s) - started[$1] ))
	echo "     Running ${label[$pid]}"
	cat "${log[$pid]}"
	summary+=("$(printf '%6ss  %s  %s' "$secs" "$([ "$rc" = 0 ] && echo ok || echo FAILED)" "${label[$pid]}")")
	[ "$rc" = 0 ] || failed+=("${label[$pid]}")
	unset "started[$pid]"
}

# Waits for any running binary to end.
reap_one() {
	local pid rc
	wait -n -p pid "${!started[@]}"
	rc=$?
	finish "$pid" "$rc"
}

n=0
for entry in "${ordered[@]}"; do
	exe=${entry%% *}
	manifest=${entry#* }
	dir=$(dirname "$manifest")
	while [ "${#started[@]}" -ge "$jobs" ]; do reap_one; done
	n=$((n + 1))
	# As cargo test runs it: from its package's directory, with the package's variables.
	(cd "$dir" && CARGO_MANIFEST_DIR="$dir" CARGO="$cargo" exec "$exe") >"$logs/$n.log" 2>&1 &
	pid=$!
	started[$pid]=$(date +%s)
	log[$pid]="$logs/$n.log"
	label[$pid]="$(basename "$dir")/$(basename "${exe%-*}")"
done
while [ "${#started[@]}" -gt 0 ]; do reap_one; done

echo
echo "test binaries, $jobs at a time:"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "failed: ${failed[*]}" >&2
	exit 1
fi
