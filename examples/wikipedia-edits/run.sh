#!/usr/bin/env bash
# `make run`: the Wikipedia-edits pipeline on this machine, end to end.
#
# Starts a Redis (no persistence, in a temporary directory) and the local edit feed, each
# on a free loopback port, runs the topology for RUN_FOR with the live table, prints the
# top members of each sorted set, and stops everything it started on exit (also on
# Ctrl-C or an error).
#
# Environment: SQUALL (the binary), RUN_FOR (default 60s), RUN_FILE (default this
# directory's topology.yaml), FEED_RATE (events/s, default 2000), FEED_SEED.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
squall="${SQUALL:-./target/release/squall}"
run_for="${RUN_FOR:-60s}"
run_file="${RUN_FILE:-$here/topology.yaml}"
rate="${FEED_RATE:-2000}"
seed="${FEED_SEED:-2015}"

for tool in redis-server redis-cli "$squall"; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (make redis-server installs Redis)" >&2; exit 1; }
done

tmp="$(mktemp -d -t squall-run.XXXXXX)"
redis_pid=""
feed_pid=""
cleanup() {
    local rc=$?
    # Only the processes this script started, by pid.
    for pid in $feed_pid $redis_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C stops `squall run` gracefully (it handles the signal); the results still print.
trap 'echo "(interrupted)"' INT

# A port nothing listens on: connecting to it fails.
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "run.sh: no free port found" >&2
    return 1
}

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "run.sh: nothing listens on 127.0.0.1:$1 after 10 s ($2); see $tmp" >&2
    return 1
}

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$tmp" --logfile redis.log --daemonize no </dev/null >/dev/null 2>&1 &
redis_pid=$!
wait_port "$redis_port" "redis-server"

feed_port="$(free_port)"
"$squall" feed serve --ws "127.0.0.1:$feed_port" --rate "$rate" --seed "$seed" \
    </dev/null >"$tmp/feed.log" 2>&1 &
feed_pid=$!
wait_port "$feed_port" "squall feed serve"

echo "redis on 127.0.0.1:$redis_port, edit feed on ws://127.0.0.1:$feed_port/ ($rate events/s); running $(basename "$run_file") for $run_for"
"$squall" run "$run_file" --for "$run_for" \
    --set "spec.spouts.edits.config.url=ws://127.0.0.1:$feed_port/" \
    --set "spec.bolts.counts.config.url=redis://127.0.0.1:$redis_port" || true

echo
echo "Top members of each sorted set (redis-cli ZREVRANGE <set> 0 9 WITHSCORES):"
for set in actions anon isanon bot country action; do
    what="count"
    [[ "$set" == action ]] && what="last seen (unix time)"
    echo
    echo "  $set — $what"
    redis-cli -p "$redis_port" --raw ZREVRANGE "$set" 0 9 WITHSCORES | paste - - |
        while IFS=$'\t' read -r member score; do
            printf '    %-28s %s\n' "$member" "$score"
        done
done
