#!/usr/bin/env bash
# Stops the cluster of tests/pg-start.sh DIR and removes DIR.
dir=$1
bindir=${LOTE_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
run=()
[ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
[ -d "$dir/data" ] && "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
rm -rf "$dir"
