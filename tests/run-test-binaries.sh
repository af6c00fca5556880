#!/usr/bin/env bash
# Runs the test binaries of some cargo packages JOBS at a time, instead of one after
# another as `cargo test` does. For the Kubernetes tier: each binary runs its tests one at
# a time against control planes of its own, and most of a test is waiting on them, so two
# binaries at once keep two cores busier. kube-testenv gives every running cluster its own
# pod addresses, and every other server in these tests binds a free port.
#
#   tests/run-test-binaries.sh JOBS [FIRST,...] -- CARGO_TEST_ARGS... [-- TEST_ARGS...]
#
# FIRST names binaries (by file name before the hash) to start ahead of the others, the
# longest ones, so the last to finish is a short one. TEST_ARGS go to every binary (a
# filter, --nocapture). Every binary runs even when one fails, like `cargo test
# --no-fail-fast`; each one's output is printed whole when it ends, then a table of
# durations. Doctests are not run: `cargo test --doc` does that. Exits non-zero when any
# binary failed. On SIGINT or SIGTERM the running binaries get SIGTERM and their output
# so far is printed. Each binary's exit status is written by the job itself and looked
# for once a second: bash's own bookkeeping of finished jobs loses the status of one
# killed by a signal.
set -uo pipefail
usage="usage: run-test-binaries.sh JOBS [FIRST,...] -- CARGO_TEST_ARGS... [-- TEST_ARGS...]"

jobs=${1:-}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "run-test-binaries: JOBS must be a positive number; $usage" >&2; exit 2; }
shift
first=""
if [ "${1:-}" != "--" ]; then first=${1:-}; shift; fi
[ "${1:-}" = "--" ] || { echo "$usage" >&2; exit 2; }
shift
cargo_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargo_args+=("$1"); shift; done
[ $# -gt 0 ] && shift
test_args=("$@")
[ "${#cargo_args[@]}" -gt 0 ] || { echo "run-test-binaries: no packages given; $usage" >&2; exit 2; }
read -ra cargo <<<"${CARGO:-cargo}"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# Builds (diagnostics rendered to stderr as usual), then lists one line per test binary:
# its executable and its package's directory, tab-separated, from cargo's artifact
# messages. A test binary is an artifact built with the profile's test flag; the
# package's own executables, built for the integration tests, are not.
"${cargo[@]}" test --no-run --message-format=json-render-diagnostics "${cargo_args[@]}" >"$logs/build.json" \
	|| { echo "run-test-binaries: building the tests failed" >&2; exit 1; }
list=$(grep '"executable":"/' "$logs/build.json" | grep -E '"profile":\{[^}]*"test":true' \
	| sed -E 's/.*"manifest_path":"([^"]*)".*"executable":"([^"]*)".*/\2\t\1/')
[ -n "$list" ] || { echo "run-test-binaries: no test binaries for: ${cargo_args[*]}" >&2; exit 1; }

binary_name() { local b; b=$(basename "$1"); echo "${b%-*}"; }

# The FIRST names in their order, then the rest in cargo's order.
ordered=()
IFS=, read -ra wanted <<<"$first"
for w in "${wanted[@]}"; do
	found=0
	while IFS=$'\t' read -r exe manifest; do
		[ "$(binary_name "$exe")" = "$w" ] && { ordered+=("$exe"$'\t'"$manifest"); found=1; }
	done <<<"$list"
	[ $found = 1 ] || echo "run-test-binaries: warning: no test binary named $w (FIRST is stale)" >&2
done
while IFS=$'\t' read -r exe manifest; do
	skip=0
	for o in "${ordered[@]}"; do [ "$o" = "$exe"$'\t'"$manifest" ] && skip=1; done
	[ $skip = 1 ] || ordered+=("$exe"$'\t'"$manifest")
done <<<"$list"

declare -A started=() label=() log=() rcfile=() binpid=()
failed=()
summary=()

# Prints the output of the binary of job PID and records how it ended.
finish() {
	local pid=$1 rc=$2 secs=$(( $(date +%s) - started[$1] ))
	echo "     Finished ${label[$pid]}"
	cat "${log[$pid]}"
	summary+=("$(printf '%6ss  %s  %s' "$secs" "$([ "$rc" = 0 ] && echo ok || echo "FAILED ($rc)")" "${label[$pid]}")")
	[ "$rc" = 0 ] || failed+=("${label[$pid]}")
	unset "started[$pid]"
}

# Waits until at least one running binary has ended, and finishes those that have.
reap() {
	local p ended
	while :; do
		ended=0
		for p in "${!started[@]}"; do
			if [ -s "${rcfile[$p]}" ]; then
				finish "$p" "$(cat "${rcfile[$p]}")"
				ended=1
			elif ! kill -0 "$p" 2>/dev/null; then
				finish "$p" "no exit status (the job itself was killed)"
				ended=1
			fi
		done
		[ $ended = 1 ] && return
		sleep 1
	done
}

# Background jobs of a script ignore SIGINT, so an interrupt is passed on as SIGTERM.
interrupted() {
	local p
	trap - INT TERM
	for p in "${!started[@]}"; do
		echo "run-test-binaries: interrupted; stopping ${label[$p]}" >&2
		[ -s "${binpid[$p]}" ] && kill -TERM "$(cat "${binpid[$p]}")" 2>/dev/null
	done
	wait
	for p in "${!started[@]}"; do
		echo "---- output of ${label[$p]} so far ----"
		cat "${log[$p]}"
	done
	exit 130
}
trap interrupted INT TERM

n=0
for entry in "${ordered[@]}"; do
	exe=${entry%%$'\t'*}
	manifest=${entry#*$'\t'}
	dir=$(dirname "$manifest")
	while [ "${#started[@]}" -ge "$jobs" ]; do reap; done
	n=$((n + 1))
	# As cargo test runs it: from its package's directory, with the package's variables.
	(
		cd "$dir" || exit 1
		CARGO_MANIFEST_DIR="$dir" CARGO="${cargo[0]}" "$exe" "${test_args[@]}" &
		echo $! >"$logs/$n.pid"
		wait $!
		echo $? >"$logs/$n.rc"
	) >"$logs/$n.log" 2>&1 </dev/null &
	pid=$!
	started[$pid]=$(date +%s)
	log[$pid]="$logs/$n.log"
	rcfile[$pid]="$logs/$n.rc"
	binpid[$pid]="$logs/$n.pid"
	label[$pid]="$(basename "$dir")/$(binary_name "$exe")"
	echo "     Started ${label[$pid]}"
done
while [ "${#started[@]}" -gt 0 ]; do reap; done
echo
echo "test binaries, $jobs at a time:"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "failed: ${failed[*]}" >&2
	exit 1
fi
