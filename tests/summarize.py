#!/usr/bin/env python3
"""Counts test cases from meson's testlog.json files (TAP lines printed by
cmocka) and prints the closing line "N passed, N failed[, N skipped]". A test
program that failed without reporting a failing case (crash, timeout) counts
as one failure. Exit status 1 when anything failed."""
import json, re, sys

passed = failed = skipped = 0
bad = []
for path in sys.argv[1:]:
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError as e:
        print(f"summarize: {e}")
        failed += 1
        continue
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            t = json.loads(line)
        except ValueError as e:
            print(f"summarize: {path}:{n}: unreadable test log line ({e})")
            failed += 1
            continue
        out = t.get("stdout") or ""
        ok = len(re.findall(r"^ok \d+", out, re.M))
        skip = len(re.findall(r"^ok \d+ .*# SKIP", out, re.M))
        # cmocka's TAP says "not ok N # SKIP name" for skip()
        skipped += len(re.findall(r"^not ok \d+ # SKIP", out, re.M))
        nok = re.findall(r"^not ok \d+ - (.*)$", out, re.M)
        passed += ok - skip
        skipped += skip
        failed += len(nok)
        where = path.split("/meson-logs")[0]
        bad += [f"{where}: {t['name']}: {n}" for n in nok]
        if t["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and not nok:
            failed += 1
            bad.append(f"{where}: {t['name']}: {t['result']} (exit {t.get('returncode')})")
for b in bad:
    print("FAILED", b)
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
