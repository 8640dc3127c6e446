#!/usr/bin/env bash
# `make run`: migrate the database (the embedded cluster under .lote/ unless
# LOTE_DATABASE_URL is set) and run the academic example (examples/academic):
# a local SMTP server (examples/academic/smtp-sink.py, port
# $ACADEMIC_SMTP_PORT, default 2525, messages under .lote/mail), the
# dashboard (`lote web` on 127.0.0.1:8080, $LOTE_HTTP) whose login link it
# prints, and the example's daemon in the foreground; it creates an
# institution ($ACADEMIC_STUDENTS students, default 300) and publishes a few
# activities. Ctrl-C stops everything gracefully. LOTE_DEMO=hello runs the
# older demo of examples/hello (exec handlers) instead.
# LOTE_DEMO_FAILURES=1 (`make demo-failures`): the SMTP server makes one
# student's deliveries fail twice (retried, then sent) and another's fail
# for good (the email ends in error, its batch in error, the teacher is not
# told); after $LOTE_DEMO_REPAIR_AFTER seconds (default 30) the demo lets
# the server accept that student again and reprocesses the failed email,
# which repairs the batch and notifies the teacher, once.
set -euo pipefail
cd "$(dirname "$0")/.."
lote=build/lote
$lote migrate
if [ -z "${LOTE_DATABASE_URL:-}" ]; then
	url=$($lote pg url)
	echo "lote: embedded PostgreSQL: psql \"$url\""
fi
if [ "${LOTE_DEMO:-academic}" = academic ]; then
	url=${LOTE_DATABASE_URL:-$($lote pg url)}
	export LOTE_DATABASE_URL=$url
	academic=build/examples/academic/lote-academic
	http=${LOTE_HTTP:-127.0.0.1:8080}
	port=${ACADEMIC_SMTP_PORT:-2525}
	mail=${LOTE_HOME:-.lote}/mail
	pids=()
	stop() {
		trap - EXIT INT TERM
		for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
		wait 2>/dev/null || true
	}
	trap stop EXIT
	trap 'stop; exit 130' INT TERM
	/usr/bin/python3 examples/academic/smtp-sink.py --port "$port" --dir "$mail" \
		--fail-file "$mail.fail" >"${LOTE_HOME:-.lote}/smtp.log" 2>&1 &
	pids+=($!)
	$lote web --http "$http" &
	pids+=($!)
	token=$($lote tokens add --role admin --name "make run" | tail -n1)
	inst=$($academic create-institution --name "Escola Modelo" --students "${ACADEMIC_STUDENTS:-300}")
	$academic run --smtp "smtp://127.0.0.1:$port" "$@" &
	daemon=$!
	pids+=($daemon)
	# the seed chain creates the classes; then a few activities (flow 1)
	for _ in $(seq 1 300); do
		[ -n "$($academic classes --institution "$inst" | head -n1)" ] && break
		sleep 0.2
	done
	failures=${LOTE_DEMO_FAILURES:-}
	if [ -n "$failures" ]; then
		class=$($academic classes --institution "$inst" | head -n1 | cut -f1)
		flaky=$($academic students --class "$class" | sed -n 1p | cut -f2)
		broken=$($academic students --class "$class" | sed -n 2p | cut -f2)
		printf '%s 2\n%s *\n' "$flaky" "$broken" > "$mail.fail"
		echo "lote-academic: demo-failures: deliveries to $flaky fail twice, to $broken always (class $class)"
	fi
	$academic classes --institution "$inst" | head -n3 | while IFS=$'\t' read -r class _ n name; do
		out=$($academic publish-activity --class "$class" --title "Reading list for $name")
		echo "lote-academic: activity ${out% *} published in class $class ($n students), event ${out#* }"
	done
	cat <<MSG

lote: the academic example is running (examples/academic, docs/academic.md):
      dashboard  http://$http/#token=$token
                 (API: curl -H 'Authorization: Bearer $token' http://$http/api/v1/summary)
      emails     $mail/*.eml (SMTP on 127.0.0.1:$port, log ${LOTE_HOME:-.lote}/smtp.log)
      database   psql "$url"   (schema academic beside schema lote)
      institution $inst
      In another terminal:
        export LOTE_DATABASE_URL='$url'
        $academic classes --institution $inst | head
        $academic publish-activity --class 1 --title 'Essay'
        $academic create-institution --name 'Another school' --students 100
        echo 'student1.${inst:0:8}@academic.example *' > $mail.fail   # make that student's deliveries fail
      Ctrl-C stops everything.
MSG
	if [ -n "$failures" ]; then
		cat <<MSG
lote: demo-failures: watch the dashboard's Errors page and Batches page.
      The email to $flaky is retried twice and then goes out; the one to
      $broken fails 5 times and ends in error, so its batch turns error
      and the teacher is not notified. In ${LOTE_DEMO_REPAIR_AFTER:-30} s the demo repairs it:
        : > $mail.fail                                             # the server accepts again
        $lote commands reprocess --type SendNewClassActivityEmail --status error
      (or click Reprocess on the failed command) — the copy takes the failed
      member's place, the batch turns success and the teacher is notified once.
MSG
		# rows a `lote … ls --json` lists
		count() { "$@" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
		(
			sleep "${LOTE_DEMO_REPAIR_AFTER:-30}"
			for _ in $(seq 1 120); do
				# (emails in error from an earlier run may be repaired already:
				# a batch in error is what says this run's failure arrived)
				n=$(count $lote batches ls --status error)
				[ "$n" -gt 0 ] && break
				sleep 1
			done
			: > "$mail.fail"
			echo "lote: demo-failures: repairing $n batch(es) in error:"
			$lote commands reprocess --type SendNewClassActivityEmail --status error
			for _ in $(seq 1 120); do
				n=$(count $lote batches ls --status error)
				if [ "$n" -eq 0 ]; then
					echo "lote: demo-failures: repaired — every batch is success, each teacher notified once"
					break
				fi
				sleep 1
			done
		) &
		pids+=($!)
	fi
	wait "$daemon"
	exit $?
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
