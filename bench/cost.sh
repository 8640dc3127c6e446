#!/usr/bin/env bash
# bench/cost.sh - what one benchmark step costs: memory of its process tree
# and CPU of the client side and of the PostgreSQL server.
#
#   bench/cost.sh --peer NAME --config TEXT --n N --pgdata DIR [--rep R] -- CMD...
#
# Runs CMD (its standard output and error pass through, its exit status is
# cost.sh's) and appends one JSON line to $RESULTS_FILE:
#
#   {"peer":NAME,"bench":"cost","config":TEXT,"n":N,"rep":R,
#    "pss_kb":…,"processes":…,"client_cpu_s":…,"server_cpu_s":…,
#    "client_cpu_us_per_job":…,"server_cpu_us_per_job":…,"ts":…}
#
#   pss_kb       the largest sum, over one sample, of `Pss:` in
#                /proc/PID/smaps_rollup of CMD and all its descendants
#                (found through the parent pid in /proc/*/stat), sampled
#                every 100 ms; processes: the largest number of them;
#   client_cpu_s user + system CPU of CMD and every descendant it waited
#                for, from /usr/bin/time (getrusage of the children);
#   server_cpu_s utime + stime, from /proc/PID/stat, of the postmaster of
#                DIR (postmaster.pid, line 1) and of its children at the
#                end, minus the same at the start, plus the change of the
#                postmaster's cutime + cstime (the backends that exited in
#                between); all in clock ticks of `getconf CLK_TCK`;
#   *_per_job    those CPU seconds in microseconds divided by N.
#
# The figures cover the whole step: everything CMD does (a harness's prefill
# of the N jobs included) and everything the server does meanwhile, for
# whoever asks it. Compare engines wrapped the same way for the same step.
# Needs python3 (the sampler) and /usr/bin/time (Debian package `time`);
# reading other users' smaps_rollup needs the same user or root.
set -uo pipefail

peer='' config='' n='' pgdata='' rep=null
while [ $# -gt 0 ]; do
	case "$1" in
		--peer) peer=${2?}; shift 2 ;;
		--config) config=${2?}; shift 2 ;;
		--n) n=${2?}; shift 2 ;;
		--pgdata) pgdata=${2?}; shift 2 ;;
		--rep) rep=${2?}; shift 2 ;;
		--) shift; break ;;
		-h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) echo "bench/cost.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ -z "$peer" ] || [ -z "$n" ] || [ -z "$pgdata" ] || [ $# -eq 0 ]; then
	echo "usage: bench/cost.sh --peer NAME --config TEXT --n N --pgdata DIR [--rep R] -- CMD..." >&2
	exit 2
fi
case $n in ''|*[!0-9]*|0) echo "bench/cost.sh: --n wants a positive integer" >&2; exit 2 ;; esac
[ -x /usr/bin/time ] || { echo "bench/cost.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
results=${RESULTS_FILE:?bench/cost.sh: RESULTS_FILE is not set}
hz=$(getconf CLK_TCK)

# One small Python program, two uses:
#   server PGDATA   prints the server's CPU ticks (see above) or "-" when
#                   the postmaster is not readable;
#   tree ROOT       samples ROOT's descendants every 100 ms until ROOT has
#                   exited (or is a zombie), then prints "MAX_PSS_KB MAX_PROCS".
probe='
import os, sys, time

def stat(pid):
    """(state, ppid, utime+stime, cutime+cstime) of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()   # fields from 3 (state) on
    return f[0], int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])

def parents():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(d)
            if st:
                out[int(d)] = st
    return out

def descendants(root, table):
    kids = {}
    for pid, st in table.items():
        kids.setdefault(st[1], []).append(pid)
    seen, todo = [], list(kids.get(root, []))
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, []))
    return seen

def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

mode, arg = sys.argv[1], sys.argv[2]
if mode == "server":
    try:
        with open(os.path.join(arg, "postmaster.pid")) as f:
            pm = int(f.readline())
    except (OSError, ValueError):
        print("-"); sys.exit(0)
    table = parents()
    if pm not in table:
        print("-"); sys.exit(0)
    ticks = table[pm][2] + table[pm][3]
    ticks += sum(st[2] for pid, st in table.items() if st[1] == pm)
    print(ticks)
else:
    root = int(arg)
    max_kb = max_n = 0
    while True:
        st = stat(root)
        if st is None or st[0] in "ZX":
            break
        tree = descendants(root, parents())
        max_kb = max(max_kb, sum(pss(p) for p in tree))
        max_n = max(max_n, len(tree))
        time.sleep(0.1)
    print(max_kb, max_n)
'

tmp=$(mktemp -d /tmp/lote-cost.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
server0=$(python3 -c "$probe" server "$pgdata")
# /usr/bin/time waits for CMD; CMD's rusage then includes every descendant
# it waited for (the engines reap their workers). time itself is the root
# of the sampled tree and is not counted.
/usr/bin/time -o "$tmp/time" -f '%U %S' "$@" &
root=$!
read -r pss_kb procs < <(python3 -c "$probe" tree "$root")
wait "$root"
rc=$?
server1=$(python3 -c "$probe" server "$pgdata")

# /usr/bin/time writes "Command exited with non-zero status N" before the
# figures when CMD failed: the figures are the last line.
read -r u s < <(tail -n 1 "$tmp/time" 2>/dev/null)
case ${u:-x}${s:-x} in *[!0-9.]*) u='' s='' ;; esac
if [ "$server0" = - ] || [ "$server1" = - ]; then
	echo "bench/cost.sh: cannot read the postmaster of $pgdata: no server CPU" >&2
	server_ticks=''
else
	server_ticks=$((server1 - server0))
fi

python3 - "$results" "$peer" "$config" "$n" "$rep" "${pss_kb:-0}" "${procs:-0}" \
	"${u:-}" "${s:-}" "$server_ticks" "$hz" "$rc" <<'PY'
import json, sys, time
out, peer, config, n, rep, pss, procs, u, s, ticks, hz, rc = sys.argv[1:]
n = int(n)
client = round(float(u) + float(s), 3) if u and s else None
server = round(int(ticks) / int(hz), 3) if ticks else None
rec = {"peer": peer, "bench": "cost", "config": config, "n": n,
       "rep": None if rep == "null" else int(rep),
       "pss_kb": int(pss), "processes": int(procs),
       "client_cpu_s": client, "server_cpu_s": server,
       "client_cpu_us_per_job": None if client is None else round(client * 1e6 / n, 2),
       "server_cpu_us_per_job": None if server is None else round(server * 1e6 / n, 2),
       "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
if rc != "0":
    rec["ok"] = False
line = json.dumps(rec, separators=(",", ":"))
with open(out, "a") as f:
    f.write(line + "\n")
print("COST " + line, file=sys.stderr)
PY
exit $rc
