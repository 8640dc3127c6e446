#!/usr/bin/env bash
# Archive at scale: drain rate of DRAIN (100 000) new commands with the
# archive empty and with N (default 10 000 000) archived commands, and the
# latency of the dashboard's list queries (the SQL src/lib/api.c sends for
# GET /api/v1/commands, over lote.commands_all) per filter, at both sizes.
#
#   LOTE_DATABASE_URL=postgresql://…/postgres bench/archive-bench.sh [N]
#
# Uses (drops and recreates) the database lote_archive_bench on that server
# (KEEP=1: reuse it when it already holds N archived rows, skipping the
# empty-archive half and the generation). The archive is generated with
# generate_series straight into lote.commands_archive, not through the
# daemon: ids from 1e9, finished over the last 30 days in id order, 90 %
# success / 8 % error / 2 % cancelled, 20 types, 100 institutions, every
# 10th a parent of the next 9, every 3rd in a batch of 10, every 5th from
# an event, every 50th a reprocessed copy. It loads in chunks of 1M rows
# with the archive's indexes dropped, then recreates them exactly as the
# migration declared them (same end state, a bulk build is faster) and
# runs VACUUM ANALYZE. Needs build/lote, psql and bc.
#
# DRAIN_ONLY=1 skips the query latencies (generation and drains only).
#
# Output: drain rates (empty archive, then interleaved with a twin
# database whose archive is empty: DRAINS each, medians and their ratio);
# per query, p50, p95 and max over REPS runs (a random parameter per run),
# each query planned and run afresh as the API does (PQexecParams, an
# unnamed statement); then the same lists, the summary and details as GET
# requests to a `lote web` on that database (HTTP included). Needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
DRAIN=${DRAIN:-100000}
DRAINS=${DRAINS:-5}
REPS=${REPS:-100}
STEP=${STEP:-1000000}
admin=${LOTE_DATABASE_URL:?set LOTE_DATABASE_URL to a server where a scratch database may be created}
db=$(printf '%s' "$admin" | sed -E 's#(dbname=)[^ ]*#\1lote_archive_bench#; s#(postgres(ql)?://[^/]*/)[^?]*#\1lote_archive_bench#')
lote=${LOTE_BIN:-$PWD/build/lote}
tmp=$(mktemp -d)
webpid=
trap '[ -z "$webpid" ] || kill $webpid 2>/dev/null; rm -rf "$tmp"' EXIT
q() { psql "$db" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
now_s() { date +%s.%N; }

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

drain_once() { # [DB] prints commands/s for DRAIN new no-op commands, workers already up
	local db=${1:-$db} out=$tmp/worker.out t0 t1 pid n
	q "VACUUM ANALYZE lote.commands" ; q "CHECKPOINT" 2>/dev/null || true
	: > "$out"
	# the engine's defaults: 2 workers, claims sized by the workers
	$lote bench worker --db "$db" --types noop --concurrency 2 > "$out" 2>"$tmp/worker.err" & pid=$!
	until grep -q '^READY' "$out"; do sleep 0.02; kill -0 $pid 2>/dev/null || { cat "$tmp/worker.err" >&2; exit 1; }; done
	t0=$(now_s)
	q "INSERT INTO lote.commands (institution_id, type) SELECT '00000000-0000-0000-0000-000000000000', 'noop' FROM generate_series(1, $DRAIN)"
	while :; do
		n=$(grep '^HANDLED' "$out" | tail -n1 | awk '{print $2}')
		[ "${n:-0}" -ge "$DRAIN" ] && break
		sleep 0.005
	done
	t1=$(now_s)
	kill -TERM $pid; wait $pid 2>/dev/null || true
	q "DELETE FROM lote.commands; DELETE FROM lote.attempts"
	echo "scale=0; $DRAIN / ($t1 - $t0)" | bc
}

drains() {
	local rates=() r
	for i in $(seq 1 "$DRAINS"); do r=$(drain_once); rates+=("$r"); done
	echo "drain $DRAIN: ${rates[*]} commands/s; median $(printf '%s\n' "${rates[@]}" | median)"
}

# Drains interleaved between a twin database whose archive is empty and
# this one (same server, same moment, one warm-up each), so drift of the
# machine falls on both sides alike.
drains_side_by_side() {
	local empty=${db/lote_archive_bench/lote_archive_bench_empty} e=() f=() me mf
	psql "$admin" -qX -c "DROP DATABASE IF EXISTS lote_archive_bench_empty" -c "CREATE DATABASE lote_archive_bench_empty"
	LOTE_DATABASE_URL=$empty $lote migrate >/dev/null
	psql "$empty" -qAtX -c "UPDATE lote.schedules SET enabled = false"
	if [ "${DRAIN_ONLY:-0}" != 1 ]; then
		echo "-- queries, archive empty (the twin)"
		db=$empty queries
	fi
	echo "-- drains"
	drain_once "$empty" >/dev/null; drain_once >/dev/null
	for i in $(seq 1 "$DRAINS"); do
		e+=("$(drain_once "$empty")"); f+=("$(drain_once)")
	done
	me=$(printf '%s\n' "${e[@]}" | median); mf=$(printf '%s\n' "${f[@]}" | median)
	echo "drain $DRAIN, archive empty: ${e[*]} commands/s; median $me"
	echo "drain $DRAIN, archive $N:  ${f[*]} commands/s; median $mf"
	echo "ratio full/empty of medians: $(echo "scale=3; $mf / $me" | bc)"
	psql "$admin" -qX -c "DROP DATABASE lote_archive_bench_empty"
}

timeit() { # label, SQL with :R (a random 0..99 per run); $reps runs (default REPS)
	local label=$1 sql=$2 f=$tmp/t REPS=${reps:-$REPS}
	for i in $(seq 1 "$REPS"); do
		r=$((RANDOM % 100))
		printf '%s\n' "${sql//:R/$r};"
	done > "$f.sql"
	{ echo '\timing on'; cat "$f.sql"; } | psql "$db" -qAtX -v ON_ERROR_STOP=1 -o /dev/null 2>&1 \
		| grep -o 'Time: [0-9.]*' | awk '{print $2}' | sort -n > "$f"
	[ "$(wc -l < "$f")" -eq "$REPS" ] || { echo "$label: a query failed" >&2; exit 1; }
	printf '%-34s p50 %8.2f ms  p95 %8.2f ms  max %8.2f ms  (n=%d)\n' "$label" \
		"$(awk -v n="$REPS" 'NR == int(n * 0.50) + 1' "$f")" \
		"$(awk -v n="$REPS" 'NR == int(n * 0.95) + 1' "$f")" \
		"$(tail -n1 "$f")" "$REPS"
}

# The list query of src/lib/api.c (lote__api_list): a page of 50 (+1 to
# know there is more), rows as JSON without their payload, built after the
# LIMIT; one filter value as equality (t.type = $1: the (type, id) index
# then yields rows in id order; "= ANY (array)" could not, so each
# partition was walked by id, through all of it where the value is absent);
# newest first by id, or by (created_at, id) when a time range is given.
list() { # label, filter (AND …), [ORDER BY]
	local o=${3:-t.id DESC}
	timeit "$1" "SELECT jsonb_build_object('items', coalesce(jsonb_agg((to_jsonb(t) - 'duration' - 'data'
	   || jsonb_build_object('duration', round(extract(epoch FROM t.duration) * 1000, 3))) ORDER BY $o), '[]'),
	  'keys', coalesce(jsonb_agg(t.id::text ORDER BY $o), '[]'))
	  FROM (SELECT * FROM lote.commands_all t WHERE true $2 ORDER BY $o LIMIT 51) t"
}

# Two types: one ordered read per type, merged (as lote__api_list does
# for up to LOTE_API_TYPES_MERGED types).
list2types() { # label
	local o="t.id DESC" b="(SELECT * FROM lote.commands_all t WHERE true AND t.type ="
	timeit "$1" "SELECT jsonb_build_object('items', coalesce(jsonb_agg((to_jsonb(t) - 'duration' - 'data'
	   || jsonb_build_object('duration', round(extract(epoch FROM t.duration) * 1000, 3))) ORDER BY $o), '[]'),
	  'keys', coalesce(jsonb_agg(t.id::text ORDER BY $o), '[]'))
	  FROM (SELECT * FROM ($b 'Type' || (:R % 20) ORDER BY $o LIMIT 51)
	        UNION ALL $b 'Type' || ((:R + 1) % 20) ORDER BY $o LIMIT 51)) t ORDER BY $o LIMIT 51) t"
}

# The same through `lote web` (HTTP included): p50/p95 of REPS GETs of a
# path, each checked for a 200. In the path, per request: :R a random
# 0..99, :I institution :R's UUID, :ID an id, :P a parent's id, :B a batch id, :FH/:TH the UTC hour :R % 29 + 1 days
# ago and the next, :FD/:TD that day and the next. page2: the page after
# the first (its next_cursor), only the second timed.
http() { # label, path, [page2]
	local label=$1 f=$tmp/h r p cur base=1000000000
	for i in $(seq 1 "$REPS"); do
		r=$((RANDOM % 100))
		p=${2//:ID/$((id0 + r * id_step))}; p=${p//:P/$((id0 + r * id_step / 10 * 10))}
		p=${p//:B/$((1000000 + r * 3331))}
		p=${p//:R/$r}
		p=${p//:I/00000000-0000-0000-0000-$(printf %012d "$r")}
		p=${p//:FH/${from_h[$r]}}; p=${p//:TH/${to_h[$r]}}
		p=${p//:FD/${from_d[$r]}}; p=${p//:TD/${to_d[$r]}}
		if [ "${3:-}" = page2 ]; then
			cur=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port$p" |
			      grep -o '"next_cursor": *"[^"]*"' | cut -d'"' -f4 || true)
			p="$p&cursor=${cur:-1}"
		fi
		curl -s -o /dev/null -H "Authorization: Bearer $token" -w '%{http_code} %{time_total}\n' \
			"http://127.0.0.1:$port$p"
	done > "$f.raw"
	if grep -qv '^200 ' "$f.raw"; then echo "$label: HTTP $(grep -v '^200 ' "$f.raw" | head -n1)" >&2; exit 1; fi
	awk '{printf "%.3f\n", $2 * 1000}' "$f.raw" | sort -n > "$f"
	printf '%-38s p50 %8.2f ms  p95 %8.2f ms  max %8.2f ms  (n=%d)\n' "$label" \
		"$(awk -v n="$REPS" 'NR == int(n * 0.50) + 1' "$f")" \
		"$(awk -v n="$REPS" 'NR == int(n * 0.95) + 1' "$f")" \
		"$(tail -n1 "$f")" "$REPS"
}

# GET /api/v1/… per filter, the summary and details, from a `lote web`
# started on this database with a viewer token (src/lib/api.c as it is).
api() {
	local pid t base=1000000000 n=$N
	id0=$base id_step=99991
	if [ "$(q "SELECT count(*) > 0 FROM lote.commands_archive")" != t ]; then
		# the empty archive: details of one hot command
		n=0 id_step=0
		id0=$(q "SELECT lote.enqueue('noop', '{}', '00000000-0000-0000-0000-000000000000')")
	fi
	from_h=() to_h=() from_d=() to_d=()
	for r in $(seq 0 99); do
		t=$(( $(date +%s) - (r % 29 + 1) * 86400 ))
		from_h+=("$(date -u -d "@$t" +%Y-%m-%dT%H:00:00Z)")
		to_h+=("$(date -u -d "@$((t + 3600))" +%Y-%m-%dT%H:00:00Z)")
		from_d+=("$(date -u -d "@$t" +%Y-%m-%d)")
		to_d+=("$(date -u -d "@$((t + 86400))" +%Y-%m-%d)")
	done
	token=$(LOTE_DATABASE_URL=$db $lote tokens add --role viewer --name bench | tail -n1)
	LOTE_DATABASE_URL=$db $lote web --http 127.0.0.1:0 2> "$tmp/web.log" & pid=$! webpid=$!
	until port=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/web.log" | cut -d: -f3) && [ -n "$port" ]; do
		sleep 0.05; kill -0 $pid 2>/dev/null || { cat "$tmp/web.log" >&2; exit 1; }
	done
	# warm-up: the server's pool opens its database connections
	for i in $(seq 1 20); do curl -s -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/commands"; done
	echo "-- GET /api/v1/… through lote web"
	http "commands"                        "/api/v1/commands"
	http "commands?type"                   "/api/v1/commands?type=Type:R"
	http "commands?type, page 200"         "/api/v1/commands?type=Type:R&cursor=$((base + n - 200000))"
	http "commands?type (2 types)"         "/api/v1/commands?type=Type1,Type:R"
	http "commands?status=error"           "/api/v1/commands?status=error"
	http "commands?status=cancelled"       "/api/v1/commands?status=cancelled"
	http "commands?institution"            "/api/v1/commands?institution=:I"
	http "commands?status+institution"     "/api/v1/commands?status=error&institution=:I"
	http "commands?status=error&error=boom" "/api/v1/commands?status=error&error=boom"
	http "commands?origin=command:ID"      "/api/v1/commands?origin=command::P"
	http "commands?batch"                  "/api/v1/commands?batch=:B"
	http "commands?from&to 1 h"            "/api/v1/commands?from=:FH&to=:TH"
	http "commands?from&to 1 h, page 2"    "/api/v1/commands?from=:FH&to=:TH" page2
	http "commands?from&to 1 day"          "/api/v1/commands?from=:FD&to=:TD"
	http "commands?from&to 1 day, page 2"  "/api/v1/commands?from=:FD&to=:TD" page2
	http "commands?from&to 1 day + type"   "/api/v1/commands?from=:FD&to=:TD&type=Type:R"
	http "commands?from (last 1 h)"        "/api/v1/commands?from=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)"
	http "summary"                         "/api/v1/summary"
	http "commands/ID (detail)"            "/api/v1/commands/:ID"
	http "commands/ID (detail, a parent)"  "/api/v1/commands/:P"
	http "errors (groups)"                 "/api/v1/errors"
	http "events"                          "/api/v1/events"
	http "batches"                         "/api/v1/batches"
	kill -TERM $pid; wait $pid 2>/dev/null || true
	webpid=
}

queries() {
	local base=1000000000 day="(now() - interval '1 day' * (:R % 29 + 1))"
	local hour="AND t.created_at >= date_trunc('hour', $day) AND t.created_at < date_trunc('hour', $day) + interval '1 hour'"
	local oneday="AND t.created_at >= date_trunc('day', $day) AND t.created_at < date_trunc('day', $day) + interval '1 day'"
	echo "-- the API's list query (src/lib/api.c)"
	list "no filter"          ""
	list "type"               "AND t.type = 'Type' || (:R % 20)"
	list "type, page 200"     "AND t.type = 'Type' || (:R % 20) AND t.id < $base + $N - 200000 - :R"
	list2types "type, 2 types"
	list "status=error"       "AND t.status = 'error'"
	list "status=cancelled"   "AND t.status = 'cancelled'"
	list "institution"        "AND t.institution_id = ('00000000-0000-0000-0000-' || lpad(':R', 12, '0'))::uuid"
	list "time range 1 h"     "$hour" "t.created_at DESC, t.id DESC"
	list "time range 1 day"   "$oneday" "t.created_at DESC, t.id DESC"
	list "time 1 day + type"  "$oneday AND t.type = 'Type' || (:R % 20)" "t.created_at DESC, t.id DESC"
	list "status + institution" "AND t.status = 'error' AND t.institution_id = ('00000000-0000-0000-0000-' || lpad(':R', 12, '0'))::uuid"
	list "by parent_id"       "AND t.parent_id = $base + (:R * 99991) / 10 * 10"
	list "by batch_id"        "AND t.batch_id = 1000000 + :R * 3331"
	list "by event_id"        "AND t.event_id = 2000000 + :R * 19997"
	list "by original_id"     "AND t.original_id = $base + (:R * 99991) / 50 * 50"
	timeit "by id"            "SELECT to_jsonb(t) FROM lote.commands_all t WHERE t.id = $base + :R * 99991"
	timeit "lineage(id)"      "SELECT lote.lineage($base + :R * 99991)"
	api
}

generate() {
	local t0 t1 ddl=$tmp/indexes.sql
	t0=$(date +%s)
	q "SELECT lote.archive_ensure_partitions((now() - interval '31 days')::date, now()::date + 1)" >/dev/null
	# drop the archive's indexes for the load; recreate them as declared
	# (pg_indexes says "ON ONLY" for a partitioned parent: that would build no leaf)
	q "SELECT replace(indexdef, ' ON ONLY ', ' ON ') || ';' FROM pg_indexes
	   WHERE schemaname = 'lote' AND tablename = 'commands_archive'" > "$ddl"
	q "SELECT string_agg(format('DROP INDEX lote.%I', indexname), '; ') FROM pg_indexes
	   WHERE schemaname = 'lote' AND tablename = 'commands_archive'" | psql "$db" -qAtX -v ON_ERROR_STOP=1
	for ((s = 0; s < N; s += STEP)); do
		e=$((s + STEP < N ? s + STEP : N))
		q "INSERT INTO lote.commands_archive (id, institution_id, type, data, status, queue, priority,
		     attempt, max_attempts, run_at, event_id, parent_id, original_id, batch_id, created_at,
		     started_at, finished_at, duration, error)
		   SELECT $base_id + i, ('00000000-0000-0000-0000-' || lpad((i % 100)::text, 12, '0'))::uuid,
		     'Type' || (i % 20),
		     jsonb_build_object('student', 'S' || (i % 100003), 'course', 'C' || (i % 997),
		                        'term', '2026-1', 'note', 'generated by bench/archive-bench.sh'),
		     CASE WHEN i % 50 = 0 THEN 'cancelled' WHEN i % 100 < 8 THEN 'error' ELSE 'success' END,
		     'default', 0, CASE WHEN i % 100 < 8 THEN 3 ELSE 1 END, 3, f - interval '2 seconds',
		     CASE WHEN i % 5 = 0 THEN 2000000 + i / 5 END,
		     CASE WHEN i % 10 <> 0 THEN $base_id + i - i % 10 END,
		     CASE WHEN i % 50 = 1 THEN $base_id + i - 1 END,
		     CASE WHEN i % 3 = 0 THEN 1000000 + i / 30 END,
		     f - interval '2 seconds', f - interval '1 second', f, interval '1 second',
		     CASE WHEN i % 100 < 8 THEN 'boom' END
		   FROM generate_series($s, $e - 1) i,
		        LATERAL (SELECT now() - interval '30 days' * (1 - i::float8 / $N) - interval '1 minute' AS f) t"
		echo "  $e rows, $(( $(date +%s) - t0 ))s"
	done
	t1=$(date +%s)
	psql "$db" -qAtX -v ON_ERROR_STOP=1 -f "$ddl"
	[ "$(q "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	         JOIN pg_namespace n ON n.oid = c.relnamespace
	         WHERE n.nspname = 'lote' AND c.relname LIKE 'commands\_archive\_w%' AND NOT i.indisvalid")" = 0 ] \
		|| { echo "an archive index is not valid" >&2; exit 1; }
	echo "  indexes rebuilt in $(( $(date +%s) - t1 ))s"
	q "VACUUM ANALYZE lote.commands_archive"
	q "ANALYZE lote.commands_archive"   # the parent's statistics (VACUUM ANALYZE covers the leaves)
	echo "generated in $(( $(date +%s) - t0 ))s"
}
base_id=1000000000

have=$(psql "$db" -qAtX -c "SELECT count(*) FROM lote.commands_archive" 2>/dev/null || echo 0)
if [ "${KEEP:-0}" = 1 ] && [ "$have" = "$N" ]; then
	echo "== reusing lote_archive_bench with $N archived commands"
	q "UPDATE lote.schedules SET enabled = false"
else
	psql "$admin" -qX -c "DROP DATABASE IF EXISTS lote_archive_bench" -c "CREATE DATABASE lote_archive_bench"
	LOTE_DATABASE_URL=$db $lote migrate >/dev/null
	q "UPDATE lote.schedules SET enabled = false"   # no archive routine during the drain
	if [ "${DRAIN_ONLY:-0}" != 1 ]; then
		echo "== archive empty"
		drains
		queries
	fi
	echo "== generating $N archived commands"
	generate
fi
LOTE_DATABASE_URL=$db $lote stats | sed 's/^/  /'
echo "  leaves: $(q "SELECT count(*) FROM lote.archive_partitions WHERE archive = 'commands' AND status IS NOT NULL")"

if [ "${DRAIN_ONLY:-0}" != 1 ]; then
	echo "== archive with $N rows"
	queries
fi
echo "== drain side by side"
drains_side_by_side
