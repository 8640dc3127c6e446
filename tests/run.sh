#!/usr/bin/env bash
# Runs the whole suite against a throwaway PostgreSQL that it starts itself,
# in every build directory given (default: build), and ends with the plain
# line "N passed, N failed". Extra meson test arguments after "--".
set -u
cd "$(dirname "$0")/.."
dirs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do dirs+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#dirs[@]} -eq 0 ] && dirs=(build)

tmp=$(mktemp -d /tmp/lote-test.XXXXXX)
cleanup() { tests/pg-stop.sh "$tmp/pg"; rm -rf "$tmp"; }
trap cleanup EXIT
admin=$(tests/pg-start.sh "$tmp/pg") || { echo "could not start the test PostgreSQL"; echo "0 passed, 1 failed"; exit 1; }
export LOTE_TEST_ADMIN_URL="$admin"
# for tests that restart the cluster (the chaos run)
export LOTE_TEST_PGDATA="$tmp/pg/data"
export PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1):$PATH"
export CMOCKA_MESSAGE_OUTPUT=TAP
# Sanitizers stop at the first error and say where.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

logs=()
for d in "${dirs[@]}"; do
	echo "== meson test in $d"
	# a log of this run's own, so another run in the same build directory
	# cannot mix into the count
	logbase="testlog-run$$"
	# the chaos suite runs only when asked for (make chaos)
	suites=(--no-suite chaos)
	case " $* " in *" --suite "*) suites=() ;; esac
	meson test -C "$d" --print-errorlogs --num-processes "${LOTE_TEST_JOBS:-2}" \
		--logbase "$logbase" "${suites[@]}" "$@"
	logs+=("$d/meson-logs/$logbase.json")
done
python3 tests/summarize.py "${logs[@]}"
