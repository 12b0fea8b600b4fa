#!/usr/bin/env python3
"""Web benchmark: `whatsup serve` under wrk, on SQLite and PostgreSQL.

For each database (SQLite, and PostgreSQL when --pg-url is given):
  - imports N generated contacts into a fresh database,
  - starts `whatsup serve --no-worker` on loopback with the rate limit off
    (SQLite with synchronous=full: every commit is durable),
  - runs wrk against
      * GET /assets/web.css       (a static response: the baseline),
      * GET /u/{token}            (the unsubscribe confirmation page),
      * POST /u/{token}           (RFC 8058 one-click, each request a
                                   different contact, so every one writes),
and prints requests/s, p99 latency and the ratio to the baseline. After the
POST run it checks that the number of unsubscribed contacts equals the
number of 2xx replies wrk counted.

Tokens are signed here with the same format as src/delivery/tokens.rs.

Usage: scripts/bench_web.py --binary PATH [--contacts 200000] [--duration 10]
                            [--connections 64] [--threads 2]
                            [--pg-url postgres://...]
Not a test: nothing here asserts a time.
"""
import argparse
import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import free_port, run

SECRET = b"bench-web-secret-0123456789abcdef0123456789abcdef"
CAMPAIGN = 1


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def token(purpose, contact, campaign=CAMPAIGN):
    """A URL token: version 1, purpose, key id, LEB128 ids, 16-byte HMAC tag."""
    key_id = hashlib.sha256(b"whatsup/token-key-id\0" + SECRET).digest()[0]
    signed = bytes([1, purpose, key_id]) + varint(contact) + varint(campaign)
    tag = hmac.new(SECRET, b"whatsup/token\0" + signed, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(signed + tag).rstrip(b"=").decode()


UNSUBSCRIBE = 1

LUA = r"""
local tokens = {}
local counter = 0
local per_thread = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  local threads = tonumber(args[2])
  per_thread = math.floor(#tokens / threads)
  i = id * per_thread
  last = i + per_thread
  method = args[3]
end
function request()
  i = i + 1
  if i > last then i = last end
  if method == "POST" then
    return wrk.format("POST", "/u/" .. tokens[i],
      {["Content-Type"] = "application/x-www-form-urlencoded"},
      "List-Unsubscribe=One-Click")
  end
  return wrk.format("GET", "/u/" .. tokens[i])
end
"""


def wait_healthy(port, proc):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"whatsup serve exited with {proc.returncode}: {proc.stderr.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit("whatsup serve did not become healthy")


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(args, url, script=None, script_args=()):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True).stdout.decode()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p99_ms": to_ms(*p99.groups()) if p99 else float("nan"),
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def bench(args, label, url, workdir):
    env = dict(os.environ)
    env.update({
        "WHATSUP_DATABASE_URL": url,
        "WHATSUP_GENERAL_DATA_DIR": workdir,
        "WHATSUP_SECURITY_TOKEN_SECRET": SECRET.decode(),
        "WHATSUP_WEB_RATE_LIMIT_PER_SECOND": "0",
        "WHATSUP_DATABASE_SQLITE_SYNCHRONOUS": "full",
        "WHATSUP_CONFIG": "/dev/null",
    })
    csv = os.path.join(workdir, "contacts.csv")
    with open(csv, "w") as f:
        f.write("email,name\n")
        for i in range(args.contacts):
            f.write(f"bench{i:07d}@bench.example.org,Bench Person {i}\n")
    run([args.binary, "subscribers", "import", csv], env=env)
    tokens = os.path.join(workdir, "tokens.txt")
    with open(tokens, "w") as f:
        for contact in range(1, args.contacts + 1):
            f.write(token(UNSUBSCRIBE, contact) + "\n")
    lua = os.path.join(workdir, "unsubscribe.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    port = free_port()
    proc = subprocess.Popen([args.binary, "serve", "--no-worker", "--bind", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, proc)
        base = f"http://127.0.0.1:{port}"
        static = wrk(args, base + "/assets/web.css")
        page = wrk(args, base + "/", lua, (tokens, str(args.threads), "GET"))
        post = wrk(args, base + "/", lua, (tokens, str(args.threads), "POST"))
        with urllib.request.urlopen(base + "/metrics") as r:
            metrics = r.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    unsubscribed = int(re.search(r"^whatsup_contacts_unsubscribed (\d+)", metrics, re.M).group(1))
    batches = int(re.search(r"^whatsup_web_commit_batches_total (\d+)", metrics, re.M).group(1))
    changes = int(re.search(r"^whatsup_web_commit_changes_total (\d+)", metrics, re.M).group(1))
    ok_posts = post["requests"] - post["non2xx"]
    print(f"\n== {label} ({args.contacts} contacts, wrk -t{args.threads} -c{args.connections} -d{args.duration}s)")
    for name, r in [("static GET /assets/web.css", static), ("GET /u/{token}", page),
                    ("one-click POST /u/{token}", post)]:
        print(f"  {name:28} {r['rps']:10.0f} req/s  p99 {r['p99_ms']:8.2f} ms  "
              f"ratio to static {r['rps'] / static['rps']:.3f}  non-2xx {r['non2xx']} {r['socket_errors']}")
    print(f"  unsubscribed in the database: {unsubscribed} (2xx POST replies: {ok_posts}; "
          f"at most one per contact, so these match unless the run wrapped around the token list)")
    if batches:
        print(f"  group commit: {changes} changes in {batches} transactions "
              f"({changes / batches:.1f} per commit)")
    if ok_posts > args.contacts:
        print("  note: more POSTs than contacts: raise --contacts so every POST writes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="path to the whatsup binary (a release build)")
    ap.add_argument("--contacts", type=int, default=200_000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"),
                    help="PostgreSQL server URL; a database whatsup_bench_web is (re)created")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="whatsup-bench-web-") as d:
        bench(args, "SQLite (synchronous=full)", f"sqlite://{d}/bench.db", d)
    if args.pg_url:
        admin = args.pg_url
        db_url = admin.rsplit("/", 1)[0] + "/whatsup_bench_web"
        for sql in ["DROP DATABASE IF EXISTS whatsup_bench_web", "CREATE DATABASE whatsup_bench_web"]:
            subprocess.run(["psql", admin, "-q", "-c", sql], check=True)
        with tempfile.TemporaryDirectory(prefix="whatsup-bench-web-") as d:
            bench(args, "PostgreSQL", db_url, d)
    else:
        print("\n(PostgreSQL skipped: no --pg-url or WHATSUP_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
