#!/usr/bin/env bash
# `make run`: migrate the database (the embedded cluster under .lote/ unless
# LOTE_DATABASE_URL is set), record a few events, and run the daemon in the
# foreground with the demo handlers and the dashboard on 127.0.0.1:8080
# ($LOTE_HTTP), whose login link it prints. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
lote=build/lote
$lote migrate
if [ -z "${LOTE_DATABASE_URL:-}" ]; then
	url=$($lote pg url)
	echo "lote: embedded PostgreSQL: psql \"$url\""
fi
cat <<'MSG'
lote: running the demo in examples/hello (the academic example will replace it):
      the event UserSignedUp → command SendWelcomeEmail → command RecordWelcomeSent,
      every handler an exec handler (examples/hello/*.sh).
      In another terminal:  build/lote status
                            build/lote emit UserSignedUp User 42 '{"email":"ana@example.org"}'
MSG
for i in 1 2 3; do
	$lote emit --institution 00000000-0000-0000-0000-00000000000$i UserSignedUp User "$i" \
		"{\"email\": \"user$i@example.org\"}" >/dev/null
done
# The dashboard: a fresh admin token each run, and a link that logs in.
http=${LOTE_HTTP:-127.0.0.1:8080}
token=$($lote tokens add --role admin --name "make run" | tail -n1)
echo "lote: dashboard: http://$http/#token=$token"
echo "      (API: curl -H 'Authorization: Bearer $token' http://$http/api/v1/summary)"
exec $lote run --config examples/hello/lote.conf --log-level debug --http "$http" "$@"
