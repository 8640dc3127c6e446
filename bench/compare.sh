#!/usr/bin/env bash
# bench/compare.sh - `make bench`: lote beside graphile-worker, pg-boss and
# pgbench in one run on a private PostgreSQL (bench/run.sh), then the run
# written into the repository: bench/runs/<date>-<sha>/, docs/images/bench.png
# and the generated part of BENCHMARKS.md. Same options as bench/run.sh.
exec "$(dirname "$0")/run.sh" --write "$@"
