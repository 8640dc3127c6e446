#!/usr/bin/env bash
# The dashboard in real headless Chromium (Debian's /usr/bin/chromium,
# driven by playwright-core; no browser is ever downloaded). Needs the
# PostgreSQL of tests/run.sh (LOTE_TEST_ADMIN_URL) and LOTE_BIN. Makes a
# database, seeds real flows, creates a token, starts `lote web` on a free
# port and runs dashboard.mjs. Screenshots go to $LOTE_SCREENSHOTS when set
# (LOTE_SCREENSHOTS=$PWD/docs/screenshots refreshes the README's), else to a
# temporary folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${LOTE_TEST_ADMIN_URL:?run through tests/run.sh}"
: "${LOTE_BIN:?}"
if ! command -v node >/dev/null || [ ! -x /usr/bin/chromium ]; then
	echo "browser tests need nodejs and chromium (tools/deps.sh test installs them)" >&2
	exit 1
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
	(cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent) >&2
fi
tmp=$(mktemp -d /tmp/lote-browser.XXXXXX)
db="browser_$$"
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	psql "$LOTE_TEST_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
psql "$LOTE_TEST_ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
url=$(psql "$LOTE_TEST_ADMIN_URL" -Atc "SELECT 'host=' || current_setting('unix_socket_directories') || ' port=' || current_setting('port') || ' user=' || current_user || ' dbname=$db'")
export LOTE_DATABASE_URL=$url
"$LOTE_BIN" migrate >/dev/null
# Real flows: an event whose command made a batch of two emails and a
# follow-up; one email failed with an SMTP timeout; another institution's work.
psql "$url" -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT lote.emit('aaaaaaaa-0000-0000-0000-000000000001', 'ClassActivity', '42', 'ClassActivityCreated', '{"title": "Fractions"}');
BEGIN; SET LOCAL lote.event_id = '1';
SELECT lote.enqueue('SendNewClassActivityEmails', '{"activity": 42}', 'aaaaaaaa-0000-0000-0000-000000000001'); COMMIT;
BEGIN; SET LOCAL lote.command_id = '1';
SELECT lote.batch('SendNewClassActivityEmails',
  '[{"type": "SendNewClassActivityEmail", "data": {"to": "ana@example.org"}},
    {"type": "SendNewClassActivityEmail", "data": {"to": "rui@example.org"}}]',
  '{"type": "NotifyTeacherEmailsSent", "data": {"teacher": 7}}', 'aaaaaaaa-0000-0000-0000-000000000001'); COMMIT;
SELECT lote.enqueue('SendNewClassActivityEmail', '{"to": "x@example.org"}', 'bbbbbbbb-0000-0000-0000-000000000002');
SELECT lote.enqueue('GenerateReport', '{"month": "2026-11"}', 'bbbbbbbb-0000-0000-0000-000000000002');
UPDATE lote.commands SET status = 'processing', attempt = 1, started_at = now() WHERE id = 1;
UPDATE lote.commands SET status = 'success', finished_at = now(), duration = interval '120 ms' WHERE id IN (1, 4);
UPDATE lote.commands SET status = 'processing', attempt = 3, started_at = now() WHERE id IN (3, 5);
UPDATE lote.commands SET status = 'error', finished_at = now(), duration = interval '30 s',
  error = 'attempt 3: SMTP timeout after 30000ms' WHERE id IN (3, 5);
UPDATE lote.events SET status = 'success', attempt = 1, finished_at = now();
SQL
token=$("$LOTE_BIN" tokens add --role admin --name browser | tail -n1)
"$LOTE_BIN" web --http 127.0.0.1:0 2>"$tmp/web.log" &
pid=$!
for _ in $(seq 200); do grep -q 'listening on' "$tmp/web.log" && break; sleep 0.05; done
base=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/web.log")
shots=${LOTE_SCREENSHOTS:-$tmp/shots}
mkdir -p "$shots"
LOTE_URL=$base LOTE_TOKEN=$token LOTE_SHOTS="$shots" LOTE_DATABASE_URL=$url \
	node "$here/dashboard.mjs"
