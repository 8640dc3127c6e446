#!/usr/bin/env bash
# Archive at scale: drain rate of 20 000 new commands with the archive
# empty and with N (default 10 000 000) archived commands, and p95 latency
# of the dashboard's list queries over lote.commands_all per filter.
#
#   LOTE_DATABASE_URL=postgresql://…/postgres bench/archive-bench.sh [N]
#
# Uses (drops and recreates) the database lote_archive_bench on that server.
# The archive is generated with generate_series straight into
# lote.commands_archive (ids from 1e9, finished over the last 30 days,
# 90 % success / 8 % error / 2 % cancelled, 20 types, 100 institutions,
# lineage ids), not through the daemon. Needs build/lote and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
DRAIN=${DRAIN:-20000}
REPS=${REPS:-100}
admin=${LOTE_DATABASE_URL:?set LOTE_DATABASE_URL to a server where a scratch database may be created}
db=$(printf '%s' "$admin" | sed -E 's#(dbname=)[^ ]*#\1lote_archive_bench#; s#(postgres(ql)?://[^/]*/)[^?]*#\1lote_archive_bench#')
lote=build/lote
q() { psql "$db" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

psql "$admin" -qX -c "DROP DATABASE IF EXISTS lote_archive_bench" -c "CREATE DATABASE lote_archive_bench"
LOTE_DATABASE_URL=$db $lote migrate >/dev/null
q "UPDATE lote.schedules SET enabled = false"   # no archive routine during the drain

drain() { # prints commands/s for DRAIN new no-op commands
	q "INSERT INTO lote.commands (institution_id, type) SELECT '00000000-0000-0000-0000-000000000000', 'noop' FROM generate_series(1, $DRAIN)"
	q "VACUUM ANALYZE lote.commands" ; q "CHECKPOINT" 2>/dev/null || true
	local t0 t1 pid
	t0=$(date +%s.%N)
	$lote bench worker --db "$db" --types noop --concurrency 2 --batch 100 >/dev/null 2>&1 & pid=$!
	until [ "$(q "SELECT count(*) FROM lote.commands WHERE status IN ('pending', 'processing')")" = 0 ]; do sleep 0.05; done
	t1=$(date +%s.%N)
	kill -TERM $pid; wait $pid 2>/dev/null || true
	q "DELETE FROM lote.commands"
	echo "scale=0; $DRAIN / ($t1 - $t0)" | bc
}

p95() { # label, SQL with :R (a random 0..99 per run)
	local label=$1 sql=$2 f; f=$(mktemp)
	for i in $(seq 1 "$REPS"); do
		r=$((RANDOM % 100))
		printf '%s\n' "${sql//:R/$r};"
	done > "$f.sql"
	{ echo '\timing on'; cat "$f.sql"; } | psql "$db" -qAtX -o /dev/null 2>&1 | grep -o 'Time: [0-9.]*' | awk '{print $2}' | sort -n > "$f"
	printf '%-28s p50 %7.2f ms  p95 %7.2f ms\n' "$label" \
		"$(awk -v n="$(wc -l < "$f")" 'NR == int(n * 0.50) + 1' "$f")" \
		"$(awk -v n="$(wc -l < "$f")" 'NR == int(n * 0.95) + 1' "$f")"
	rm -f "$f" "$f.sql"
}

queries() {
	local cols="id, type, status, institution_id, created_at, finished_at"
	p95 "type"            "SELECT $cols FROM lote.commands_all WHERE type = 'Type' || (:R % 20) ORDER BY id DESC LIMIT 50"
	p95 "type, page 20"   "SELECT $cols FROM lote.commands_all WHERE type = 'Type' || (:R % 20) AND id < 1000000000 + $N - 20000 ORDER BY id DESC LIMIT 50"
	p95 "status=error"    "SELECT $cols FROM lote.commands_all WHERE status = 'error' ORDER BY id DESC LIMIT 50"
	p95 "status=cancelled" "SELECT $cols FROM lote.commands_all WHERE status = 'cancelled' ORDER BY id DESC LIMIT 50"
	p95 "institution"     "SELECT $cols FROM lote.commands_all WHERE institution_id = ('00000000-0000-0000-0000-' || lpad(':R', 12, '0'))::uuid ORDER BY id DESC LIMIT 50"
	p95 "time range 1h"   "SELECT $cols FROM lote.commands_all WHERE finished_at >= now() - interval '1 day' * (:R % 29 + 1) AND finished_at < now() - interval '1 day' * (:R % 29 + 1) + interval '1 hour' ORDER BY finished_at DESC LIMIT 50"
	p95 "by parent_id"    "SELECT $cols FROM lote.commands_all WHERE parent_id = 1000000000 + :R * 997 ORDER BY id LIMIT 50"
	p95 "by batch_id"     "SELECT $cols FROM lote.commands_all WHERE batch_id = 1000000 + :R * 991 ORDER BY id LIMIT 50"
	p95 "by event_id"     "SELECT $cols FROM lote.commands_all WHERE event_id = 2000000 + :R * 983 ORDER BY id LIMIT 50"
	p95 "by id"           "SELECT $cols FROM lote.commands_all WHERE id = 1000000000 + :R * 99991"
	p95 "lineage(id)"     "SELECT lote.lineage(1000000000 + :R * 99991)"
}

echo "== archive empty"
echo "drain $DRAIN: $(drain) commands/s"
echo "drain $DRAIN: $(drain) commands/s"
queries

echo "== generating $N archived commands"
t0=$(date +%s)
q "SELECT lote.archive_ensure_partitions((now() - interval '31 days')::date, now()::date + 1)" >/dev/null
step=1000000
for ((s = 0; s < N; s += step)); do
	e=$((s + step < N ? s + step : N))
	q "INSERT INTO lote.commands_archive (id, institution_id, type, data, status, queue, priority,
	     attempt, max_attempts, run_at, event_id, parent_id, batch_id, created_at, started_at,
	     finished_at, duration, error)
	   SELECT 1000000000 + i, ('00000000-0000-0000-0000-' || lpad((i % 100)::text, 12, '0'))::uuid,
	     'Type' || (i % 20), jsonb_build_object('i', i),
	     CASE WHEN i % 50 = 0 THEN 'cancelled' WHEN i % 100 < 8 THEN 'error' ELSE 'success' END,
	     'default', 0, 1, 3, f - interval '2 seconds',
	     CASE WHEN i % 5 = 0 THEN 2000000 + i / 5 END,
	     CASE WHEN i % 10 <> 0 THEN 1000000000 + i - i % 10 END,
	     CASE WHEN i % 3 = 0 THEN 1000000 + i / 30 END,
	     f - interval '2 seconds', f - interval '1 second', f, interval '1 second',
	     CASE WHEN i % 100 < 8 THEN 'boom' END
	   FROM generate_series($s + 1, $e) i,
	        LATERAL (SELECT now() - interval '30 days' * (1 - i::float8 / $N) - interval '1 minute' AS f) t"
	echo "  $e rows, $(( $(date +%s) - t0 ))s"
done
q "VACUUM ANALYZE lote.commands_archive"
echo "generated in $(( $(date +%s) - t0 ))s; $($lote stats 2>/dev/null | grep commands || true)"
LOTE_DATABASE_URL=$db $lote stats | sed 's/^/  /'

echo "== archive with $N rows"
echo "drain $DRAIN: $(drain) commands/s"
echo "drain $DRAIN: $(drain) commands/s"
queries
