#!/usr/bin/env bash
# bench/hot-completion.sh - what lote's drain would gain if a successful
# completion were a HOT update (a planning experiment, not an engine
# measurement; BENCHMARKS.md "Where the next drain gain is").
#
#   bench/hot-completion.sh [--rows N] [--seconds S] [--clients C] [--reps R]
#                           [--variants "current fewer hot30 hot50 hot100 nolease30
#                                        claims20 claims30 log20 log30"]
#
# Uses the server of LOTE_DATABASE_URL (the role needs CREATEDB) and a
# scratch database lote_hot_exp, dropped at the end. lote's schema is
# migrated into it by build/lote (LOTE=path for another binary), then
# every variant is a copy of lote.commands built from it:
#
#   current   CREATE TABLE (LIKE lote.commands INCLUDING ALL): lote's own
#             indexes and CHECKs, as the engine runs today
#   fewer     current without commands_lease and commands_finished: fewer
#             index entries per command, still no HOT update
#   hot30     no index or CHECK names status, finished_at or anything a
#             successful completion writes: the claim index is on a stored
#             generated column (run_at while pending, else NULL), awaiting
#             and failed-member indexes likewise, the lease index keeps
#             the row after completion (lease_until is not cleared), no
#             finished_at index (archive would need another path);
#             fillfactor 30, so the completion's version fits in the page
#   hot50     the same at fillfactor 50
#   hot100    the same at fillfactor 100 (no room left: shows HOT needs it)
#   nolease30 hot30 without the lease index: leases kept per claimed group
#             in a side table instead (one row per claim of up to 1000,
#             not simulated here), one index entry per command (the
#             claim's primary-key entry)
#   claimsFF  the HOT design as it would have to be built (FF: fillfactor):
#             the status CHECK kept, the claim, awaiting and failed-member
#             indexes on stored generated columns, no lease index; a
#             claim writes one row into a side table of leases (its id,
#             worker, lease end and the claimed ids; the claim id and claim
#             time go on the rows) and the group's completion deletes it in
#             the same statement; the archive finds finished rows by an
#             index on a stored coalesce(claimed_at, finished_at) (set at
#             claim, so a completion leaves it alone): two index entries
#             per command after the enqueue's, none at completion
#   logFF     claimsFF without the archive's index: the side table keeps
#             each group as a log (the completion marks it done, the
#             archive would walk the log), one entry per command
#
# Each variant is prefilled with N pending rows, VACUUM ANALYZEd and
# checkpointed, then pgbench (-M prepared, C clients) runs lote's two
# statements for S seconds: claim 1000 (UPDATE ... WHERE ctid = ANY (ARRAY(
# SELECT ctid ... ORDER BY priority, run_at, id LIMIT 1000 FOR UPDATE SKIP
# LOCKED))) and commit, then complete those rows by ctid and commit - the
# shape of src/lib/worker.c without the statistics trigger, the batch
# update and the handlers. Repetitions are the outer loop. Prints rows/s
# (median, min-max), the share of completions that were HOT and the table
# size after the run. Needs pgbench (postgresql-15).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lote=${LOTE:-$here/../build/lote}
rows=2000000 secs=10 clients=2 reps=3
variants="current fewer hot30 hot50 hot100 nolease30 claims20 claims30 log20 log30"
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) rows=${2:?}; shift 2 ;;
		--seconds) secs=${2:?}; shift 2 ;;
		--clients) clients=${2:?}; shift 2 ;;
		--reps) reps=${2:?}; shift 2 ;;
		--variants) variants=${2:?}; shift 2 ;;
		-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) echo "hot-completion.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
: "${LOTE_DATABASE_URL:?hot-completion.sh: set LOTE_DATABASE_URL to a server where the role may create databases}"
pgbin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$pgbin/pgbench" ] || pgbin=/usr/lib/postgresql/15/bin
db=lote_hot_exp
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
# the same server, another database: a URI gets its path replaced, a
# key=value string a later dbname (the last one wins)
with_db() {
	case "$LOTE_DATABASE_URL" in
		postgres://*|postgresql://*)
			printf '%s' "$LOTE_DATABASE_URL" | sed -E "s#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\1/$1#" ;;
		*) printf '%s dbname=%s' "$LOTE_DATABASE_URL" "$1" ;;
	esac
}
q() { "$pgbin/psql" "$(with_db $db)" -v ON_ERROR_STOP=1 -Atq "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"; "$pgbin/psql" "$(with_db postgres)" -Atqc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

"$pgbin/psql" "$(with_db postgres)" -v ON_ERROR_STOP=1 -Atq \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
LOTE_DATABASE_URL="$(with_db $db)" "$lote" migrate >/dev/null

# The claim and the completion, as src/lib/worker.c sends them; $claim_where
# and $done_set differ between today's indexes and the HOT design.
script() { # name claim_where done_set order_column
	cat >"$work/$1.sql" <<-EOF
	BEGIN;
	WITH c AS (UPDATE t SET status = 'processing', attempt = attempt + 1, started_at = clock_timestamp(), lease_until = clock_timestamp() + interval '60 s', worker_id = :client_id + 1 WHERE ctid = ANY (ARRAY(SELECT ctid FROM t WHERE $2 ORDER BY priority, $4, id LIMIT 1000 FOR UPDATE SKIP LOCKED)) RETURNING id, ctid) SELECT array_agg(ctid) AS tids FROM c \gset
	COMMIT;
	UPDATE t SET status = 'success', started_at = clock_timestamp(), finished_at = clock_timestamp(), duration = interval '1 ms', error = NULL$3 WHERE ctid = ANY (:tids::tid[]) AND (status = 'processing') IS TRUE AND worker_id = :client_id + 1;
	EOF
}
script today "status = 'pending' AND run_at <= now()" ", lease_until = NULL" run_at
script hot "claim_due <= now()" "" claim_due
# claimsFF and logFF: the lease in a side table, one row per claim (see
# the header); logFF marks the row done instead of deleting it
cat >"$work/claims.sql" <<-EOF
	BEGIN;
	WITH g AS (SELECT nextval('g_id_seq') AS id), c AS (UPDATE t SET status = 'processing', attempt = attempt + 1, started_at = clock_timestamp(), claimed_at = clock_timestamp(), lease_until = clock_timestamp() + interval '60 s', worker_id = :client_id + 1, claim_id = (SELECT id FROM g) WHERE ctid = ANY (ARRAY(SELECT ctid FROM t WHERE is_pending AND run_at <= now() ORDER BY priority, run_at, id LIMIT 1000 FOR UPDATE SKIP LOCKED)) RETURNING id, ctid), i AS (INSERT INTO g (id, worker_id, lease_until, ids) SELECT (SELECT id FROM g), :client_id + 1, clock_timestamp() + interval '60 s', array_agg(id) FROM c) SELECT array_agg(ctid) AS tids, (SELECT id FROM g) AS gid FROM c \gset
	COMMIT;
	WITH d AS (DELETE FROM g WHERE id = :gid) UPDATE t SET status = 'success', started_at = clock_timestamp(), finished_at = clock_timestamp(), duration = interval '1 ms', error = NULL, lease_until = NULL WHERE ctid = ANY (:tids::tid[]) AND (status = 'processing') IS TRUE AND worker_id = :client_id + 1;
	EOF
sed -e 's/WITH d AS (DELETE FROM g WHERE id = :gid)/WITH d AS (UPDATE g SET done = true WHERE id = :gid)/' "$work/claims.sql" >"$work/log.sql"

setup() { # variant
	local v=$1 ff
	q -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS t"
	case $v in
	current|fewer)
		q -c "CREATE TABLE t (LIKE lote.commands INCLUDING ALL)"
		if [ "$v" = fewer ]; then
			for i in $(q -c "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
			                 WHERE x.indrelid = 't'::regclass AND pg_get_indexdef(x.indexrelid) ~ '\((lease_until|finished_at)\)'"); do
				q -c "DROP INDEX $i"
			done
		fi ;;
	claims*|log*)
		ff=${v#claims}; ff=${ff#log}
		q <<-EOF
		CREATE TABLE t (LIKE lote.commands INCLUDING DEFAULTS INCLUDING IDENTITY) WITH (fillfactor = $ff);
		ALTER TABLE t ADD PRIMARY KEY (id), ADD CHECK (max_attempts >= 1),
		  ADD CHECK (status IN ('awaiting', 'pending', 'processing', 'success', 'error', 'cancelled')),
		  ADD claim_id bigint, ADD claimed_at timestamptz,
		  ADD is_pending boolean GENERATED ALWAYS AS (status = 'pending') STORED,
		  ADD is_awaiting boolean GENERATED ALWAYS AS (status = 'awaiting') STORED,
		  ADD failed_batch_id bigint GENERATED ALWAYS AS
		      (CASE WHEN status IN ('error', 'cancelled') AND replaced_by IS NULL THEN batch_id END) STORED,
		  ADD archive_from timestamptz GENERATED ALWAYS AS (coalesce(claimed_at, finished_at)) STORED;
		CREATE INDEX ON t (priority, run_at, id) WHERE is_pending;
		CREATE INDEX ON t (id) WHERE is_awaiting;
		CREATE INDEX ON t (failed_batch_id) WHERE failed_batch_id IS NOT NULL;
		$( [ "${v#claims}" != "$v" ] && echo "CREATE INDEX ON t (archive_from) WHERE archive_from IS NOT NULL;" )
		CREATE INDEX ON t (event_id, id) WHERE event_id IS NOT NULL;
		CREATE INDEX ON t (parent_id, id) WHERE parent_id IS NOT NULL;
		CREATE INDEX ON t (original_id, id) WHERE original_id IS NOT NULL;
		CREATE INDEX ON t (replaced_by) WHERE replaced_by IS NOT NULL;
		DROP TABLE IF EXISTS g;
		CREATE TABLE g (id bigserial PRIMARY KEY, worker_id bigint NOT NULL, lease_until timestamptz NOT NULL, ids bigint[] NOT NULL, done boolean NOT NULL DEFAULT false);
		CREATE INDEX ON g (lease_until) WHERE NOT done;
		EOF
		;;
	hot*|nolease*)
		ff=${v#hot}; ff=${ff#nolease}
		q <<-EOF
		CREATE TABLE t (LIKE lote.commands INCLUDING DEFAULTS INCLUDING IDENTITY) WITH (fillfactor = $ff);
		ALTER TABLE t ADD PRIMARY KEY (id), ADD CHECK (max_attempts >= 1),
		  ADD claim_due timestamptz GENERATED ALWAYS AS (CASE WHEN status = 'pending' THEN run_at END) STORED,
		  ADD awaiting boolean GENERATED ALWAYS AS (status = 'awaiting') STORED,
		  ADD failed_batch bigint GENERATED ALWAYS AS
		      (CASE WHEN status IN ('error', 'cancelled') AND replaced_by IS NULL THEN batch_id END) STORED;
		CREATE INDEX ON t (priority, claim_due, id) WHERE claim_due IS NOT NULL;
		CREATE INDEX ON t (id) WHERE awaiting;
		CREATE INDEX ON t (failed_batch) WHERE failed_batch IS NOT NULL;
		$( [ "${v#nolease}" = "$v" ] && [ "${v#claims}" = "$v" ] && echo "CREATE INDEX ON t (lease_until) WHERE lease_until IS NOT NULL;" )
		CREATE INDEX ON t (event_id, id) WHERE event_id IS NOT NULL;
		CREATE INDEX ON t (parent_id, id) WHERE parent_id IS NOT NULL;
		CREATE INDEX ON t (original_id, id) WHERE original_id IS NOT NULL;
		CREATE INDEX ON t (replaced_by) WHERE replaced_by IS NOT NULL;
		EOF
		;;
	esac
	q -c "INSERT INTO t (institution_id, type, data)
	      SELECT '00000000-0000-0000-0000-000000000000', 'noop', jsonb_build_object('i', g)
	      FROM generate_series(1, $rows) g" -c "VACUUM ANALYZE t" -c "CHECKPOINT"
}

for rep in $(seq 1 "$reps"); do
	for v in $variants; do
		setup "$v"
		s=today; case $v in hot*|nolease*) s=hot ;; claims*) s=claims ;; log*) s=log ;; esac
		out=$("$pgbin/pgbench" "$(with_db $db)" -n -M prepared -c "$clients" -j "$clients" -T "$secs" -f "$work/$s.sql" 2>&1) || {
			echo "$out" >&2; echo "hot-completion.sh: pgbench failed on $v (all $rows rows claimed? raise --rows)" >&2; exit 1; }
		tps=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
		read -r upd hot left size <<<"$(q -F ' ' -c "SELECT n_tup_upd, n_tup_hot_upd,
		    (SELECT count(*) FROM t WHERE status = 'pending'), pg_total_relation_size('t') / 1048576
		  FROM pg_stat_user_tables WHERE relid = 't'::regclass")"
		[ "$left" -gt 0 ] || { echo "hot-completion.sh: $v drained all $rows rows; raise --rows" >&2; exit 1; }
		echo "$v $(awk -v t="$tps" 'BEGIN { printf "%d", t * 1000 }') $((hot * 200 / (upd > 0 ? upd : 1))) $size" >>"$work/results"
		echo "rep $rep $v: $(tail -1 "$work/results" | cut -d' ' -f2) rows/s" >&2
	done
done

echo "| variant | rows/s, median (min-max) | vs current | completions HOT | table + indexes after, MiB |"
echo "|---|---|---|---|---|"
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
col() { awk -v v="$1" -v c="$2" '$1 == v { print $c }' "$work/results"; }
base=$(col current 2 | med)
for v in $variants; do
	r=$(col "$v" 2 | med)
	printf '| %s | %d (%d-%d) | %s | %d %% | %d |\n' "$v" "$r" "$(col "$v" 2 | sort -n | head -1)" \
		"$(col "$v" 2 | sort -n | tail -1)" "$(awk -v r="$r" -v b="$base" 'BEGIN { printf "%.2fx", r / b }')" \
		"$(col "$v" 3 | med)" "$(col "$v" 4 | med)"
done
