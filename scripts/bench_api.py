#!/usr/bin/env python3
"""API benchmark: paging through 100,000 contacts with GET /api/v1/contacts,
against a static endpoint of the same server (GET /api/v1/ping) in the same
run, on SQLite and on PostgreSQL; and the time one login takes (argon2id).

For each backend: imports N generated contacts (scripts/bench_import.py's
generator), creates an admin and an API token, starts `whatsup serve` with
the admin listener on a free loopback port, walks every page once to
collect the cursors (limit per page: --page), then runs wrk over those page
URLs (in order, wrapping) and over /api/v1/ping with the same threads,
connections and duration. Prints requests/s and p99 for both and their
ratio. Then times --logins sequential logins.

Usage: scripts/bench_api.py [--rows 100000] [--page 100] [--duration 15]
       [--connections 16] [--pg-url postgres://...] [--binary PATH]
Needs wrk (Debian: apt-get install wrk). Not a test: nothing here asserts a time.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import generate, psql  # noqa: E402
from benchlib import free_port, wrk_rps  # noqa: E402

PASSWORD = "violet kettle harbour sings"


def call(url, token=None, data=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=h)
    with urllib.request.urlopen(req) as r:
        return r.read()


def wrk(url, token, args, script=None):
    return wrk_rps(url, args, [f"Authorization: Bearer {token}"], script)


def bench_backend(name, url, args, csv, tmp):
    env = dict(os.environ, WHATSUP_CONFIG="/dev/null", WHATSUP_DATABASE_URL=url,
               WHATSUP_GENERAL_DATA_DIR=os.path.join(tmp, name),
               WHATSUP_SECURITY_TOKEN_SECRET="bench-token-secret-0123456789abcdef0123",
               WHATSUP_WEB_METRICS_BIND="off")
    run = lambda *a, **kw: subprocess.run([args.binary, *a], env=env, check=True, capture_output=True, text=True, **kw)
    run("migrate")
    t0 = time.perf_counter()
    run("subscribers", "import", csv)
    print(f"{name}: imported {args.rows} contacts in {time.perf_counter() - t0:.1f} s", flush=True)
    run("users", "add", "bench@example.org", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    token = run("tokens", "create", "--user", "bench@example.org", "--name", "bench").stdout.strip()
    port = free_port()
    server = subprocess.Popen([args.binary, "serve", "--bind", "127.0.0.1:0", "--admin-bind", f"127.0.0.1:{port}",
                               "--no-worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base + "/api/v1/ping")
                break
            except OSError:
                time.sleep(0.1)
        paths, cursor = [], ""
        while True:
            path = f"/api/v1/contacts?limit={args.page}" + (f"&cursor={cursor}" if cursor else "")
            paths.append(path)
            page = json.loads(call(base + path, token))
            if not page["next"]:
                break
            cursor = urllib.parse.quote(page["next"])
        print(f"{name}: {len(paths)} pages of {args.page}", flush=True)
        lua = os.path.join(tmp, f"{name}-pages.lua")
        with open(lua, "w") as f:
            f.write("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n")
            f.write("i = 0\nrequest = function()\n  i = i % #paths + 1\n"
                    "  return wrk.format(nil, paths[i])\nend\n")
        ping = wrk(base + "/api/v1/ping", token, args)
        listing = wrk(base + "/api/v1/contacts", token, args, lua)
        logins = []
        body = json.dumps({"email": "bench@example.org", "password": PASSWORD}).encode()
        for _ in range(args.logins):
            t = time.perf_counter()
            call(base + "/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
            logins.append((time.perf_counter() - t) * 1000)
        return ping, listing, logins
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--page", type=int, default=100)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--logins", type=int, default=20)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "whatsup"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "contacts.csv")
        generate(csv, args.rows)
        backends = [("sqlite", "sqlite://" + os.path.join(tmp, "bench.db"))]
        dbname = None
        if args.pg_url:
            dbname = f"whatsup_bench_api_{os.getpid()}"
            psql(args.pg_url, f"CREATE DATABASE {dbname}")
            backends.append(("postgres", args.pg_url.rsplit("/", 1)[0] + "/" + dbname))
        results = []
        try:
            for name, url in backends:
                results.append((name, *bench_backend(name, url, args, csv, tmp)))
        finally:
            if dbname:
                psql(args.pg_url, f"DROP DATABASE {dbname}")
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s; {args.rows} contacts, "
          f"{args.page} per page; load average after: {os.getloadavg()[0]:.2f}")
    print(f"{'backend':10} {'endpoint':28} {'req/s':>9} {'p99 ms':>8} {'vs ping':>8}")
    for name, ping, listing, logins in results:
        print(f"{name:10} {'GET /api/v1/ping':28} {ping[0]:9.0f} {ping[1]:8.2f} {1.0:8.2f}")
        print(f"{name:10} {'GET /api/v1/contacts (page)':28} {listing[0]:9.0f} {listing[1]:8.2f} "
              f"{listing[0] / ping[0]:8.3f}")
        print(f"{name:10} login (argon2id m=19456 t=2 p=1): median {statistics.median(logins):.0f} ms, "
              f"max {max(logins):.0f} ms over {len(logins)}")


if __name__ == "__main__":
    main()
