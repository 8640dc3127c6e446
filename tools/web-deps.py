#!/usr/bin/env python3
"""Fetches the dashboard's front-end dependencies with `npm ci` from
web/package.json and web/package-lock.json (exact versions, each file
checked against the lock's sha512) into a private directory of the build,
and copies the files the dashboard serves to the outputs, which
tools/embed-web.py embeds under /vendor/. npm's cache makes a rebuild work
offline once the packages were fetched.

Usage: web-deps.py WORKDIR WEBDIR OUTPUT...   (an OUTPUT's name picks its file)"""
import os, shutil, subprocess, sys

# served name -> file inside node_modules
FILES = {
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
    "uPlot.LICENSE.txt": "uplot/LICENSE",
}

work, web, outputs = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(work, exist_ok=True)
for name in ("package.json", "package-lock.json"):
    shutil.copyfile(os.path.join(web, name), os.path.join(work, name))
npm = shutil.which("npm")
if not npm:
    sys.exit("web-deps: npm is needed to build the dashboard (tools/deps.sh build installs it)")
cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
       "--loglevel=error"]
r = subprocess.run(cmd, cwd=work)
if r.returncode != 0:
    sys.exit(f"web-deps: `{' '.join(cmd)}` failed in {work} (exit {r.returncode})")
for out in outputs:
    name = os.path.basename(out)
    if name not in FILES:
        sys.exit(f"web-deps: no file is known as {name}")
    shutil.copyfile(os.path.join(work, "node_modules", FILES[name]), out)
