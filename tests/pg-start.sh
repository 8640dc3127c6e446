#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 for the test suite and prints its admin
# conninfo on stdout. Usage: tests/pg-start.sh DIR   (tests/pg-stop.sh DIR)
# initdb into DIR/data, unix socket in DIR, no TCP. As root the cluster runs
# as the `postgres` system user (PostgreSQL refuses root), so DIR is made
# reachable by that user.
set -euo pipefail
dir=$1
bindir=${LOTE_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$bindir/initdb" ] || { echo "pg-start: no PostgreSQL server binaries (install postgresql-15)" >&2; exit 1; }
mkdir -p "$dir"
run=()
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
	chown postgres "$dir"
	chmod 755 "$dir"
	# every parent must be traversable by postgres
	p=$dir; while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
	run=(runuser -u postgres --)
fi
"${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
	|| { cat "$dir/initdb.log" >&2; exit 1; }
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
fsync = on
log_min_messages = warning
CONF
"${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
	|| { cat "$dir/server.log" >&2; exit 1; }
echo "host=$dir port=5432 user=postgres dbname=postgres"
