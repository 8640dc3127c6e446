#!/usr/bin/env python3
"""Prints the migration files of a sql/ folder, in version order."""
import os, re, sys
d = sys.argv[1]
names = sorted(f for f in os.listdir(d) if re.fullmatch(r"\d{3}_[a-z0-9_]+\.sql", f))
print("\n".join(os.path.join(d, n) for n in names))
