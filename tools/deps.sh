#!/usr/bin/env bash
# Installs the Debian packages lote needs for a goal that are missing, and
# nothing else. Usage: tools/deps.sh build|run|test|bench|diagrams
# As root it runs apt-get directly, otherwise through sudo.
set -euo pipefail
goal=${1:-build}
# nodejs, npm: `npm ci` fetches the dashboard's pinned front-end
# dependencies (web/package-lock.json) at build time
build=(gcc make meson ninja-build pkg-config python3 libpq-dev libjansson-dev
       libinih-dev libcmocka-dev libmicrohttpd-dev
       libcurl4-openssl-dev nodejs npm)
# python3-aiosmtpd: the SMTP server of the academic example (make run, tests)
server=(postgresql-15 python3-aiosmtpd)
# graphviz renders docs/diagrams/*.dot (make diagrams); the diagrams name
# DejaVu Sans, so a given graphviz draws them the same on every machine
diagrams=(graphviz fonts-dejavu-core)
# gnuplot-nox draws the benchmark chart (bench/chart.gp); time gives
# /usr/bin/time, the CPU figures of bench/cost.sh
bench=(gnuplot-nox fonts-dejavu-core time)
case $goal in
	build) want=("${build[@]}") ;;
	run)   want=("${build[@]}" "${server[@]}") ;;
	test)  want=("${build[@]}" "${server[@]}" libasan8 libubsan1 chromium) ;;
	bench) want=("${build[@]}" "${server[@]}" "${bench[@]}") ;;
	diagrams) want=("${diagrams[@]}") ;;
	*) echo "deps.sh: unknown goal $goal (build|run|test|bench|diagrams)" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
	# Node.js may come from elsewhere (NodeSource's nodejs bundles npm and
	# conflicts with Debian's npm): a working command is enough.
	case $p in
		nodejs) command -v node >/dev/null 2>&1 && continue ;;
		npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "lote: installing missing Debian packages: ${missing[*]}" >&2
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# the package lists may be missing or stale on a fresh machine
"${sudo[@]}" apt-get update -qq
# postgresql-15 starts a system cluster on install; lote never uses it
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
