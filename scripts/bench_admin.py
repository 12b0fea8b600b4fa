#!/usr/bin/env python3
"""Admin pages benchmark: the contact list page and a campaign's pages
against a static file of the same server (the admin's fingerprinted
stylesheet) in the same run, on SQLite and on PostgreSQL, with N contacts
(100,000 by default).

For each backend: imports N generated contacts (scripts/bench_import.py's
generator), imports the sample issue, creates a campaign to everyone and
starts it (its N deliveries frozen; `serve --no-worker`, so they stay
pending), creates an admin, starts `whatsup serve` with the admin listener
on a free loopback port, signs in through the login form, then runs wrk
with the session cookie against each page and the static file (same
threads, connections and duration). Prints requests/s and p99 for each,
and the ratio of each page's requests/s to the static file's.

The pages: /admin/contacts (the contact list, first page),
/admin/campaigns/ID (the campaign's page) and /admin/dashboard/campaigns/ID
(its dashboard); a page this build does not serve (not 200) is reported
as such and left out.

Usage: scripts/bench_admin.py [--rows 100000] [--duration 15]
       [--connections 16] [--threads 2] [--pg-url postgres://...] [--binary PATH]
Needs wrk (Debian: apt-get install wrk). Not a test: nothing here asserts a time.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import generate, psql  # noqa: E402
from benchlib import free_port, wrk_rps  # noqa: E402

PASSWORD = "violet kettle harbour sings"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def fetch(url, cookie=None, data=None):
    """(status, headers, body) of one request; redirects are not followed."""
    headers = {"Cookie": cookie} if cookie else {}
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=headers)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req) as r:
            return r.status, r.headers, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def sign_in(base):
    """The session cookie of the bench admin, signed in through the form."""
    body = urllib.parse.urlencode({"email": "bench@example.org", "password": PASSWORD,
                                   "next": "/admin"}).encode()
    status, headers, text = fetch(base + "/admin/login", data=body)
    if status != 303:
        sys.exit(f"signing in answered {status}: {text[:500]}")
    for c in headers.get_all("Set-Cookie") or []:
        name, _, rest = c.partition("=")
        if name == "whatsup_session":
            return f"whatsup_session={rest.split(';')[0]}"
    sys.exit("signing in set no session cookie")


def wrk(url, cookie, args):
    """wrk with the session cookie (each page was checked to answer 200 first)."""
    return wrk_rps(url, args, [f"Cookie: {cookie}"])


def bench_backend(name, url, args, csv, tmp):
    env = dict(os.environ, WHATSUP_CONFIG="/dev/null", WHATSUP_DATABASE_URL=url,
               WHATSUP_GENERAL_DATA_DIR=os.path.join(tmp, name),
               WHATSUP_SECURITY_TOKEN_SECRET="bench-token-secret-0123456789abcdef0123",
               WHATSUP_NEWSLETTER_REQUIRE_APPROVAL="false",
               WHATSUP_SENDING_TRANSPORT="outbox",
               WHATSUP_WEB_METRICS_BIND="off")

    def run(*a, **kw):
        return subprocess.run([args.binary, *a], env=env, check=True, capture_output=True, text=True,
                              cwd=tmp, **kw)

    run("migrate")
    t0 = time.perf_counter()
    run("subscribers", "import", csv)
    print(f"{name}: imported {args.rows} contacts in {time.perf_counter() - t0:.1f} s", flush=True)
    run("issues", "import", os.path.join(ROOT, "samples/issue-214.md"))
    campaign = json.loads(run("campaigns", "create", "--issue", "214", "--json").stdout)["id"]
    run("campaigns", "start", str(campaign))
    run("users", "add", "bench@example.org", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    port = free_port()
    server = subprocess.Popen([args.binary, "serve", "--bind", "127.0.0.1:0", "--admin-bind", f"127.0.0.1:{port}",
                               "--no-worker"], env=env, cwd=tmp,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                fetch(base + "/admin/login")
                break
            except OSError:
                time.sleep(0.1)
        cookie = sign_in(base)
        status, _, page = fetch(base + "/admin/dashboard", cookie)
        css = re.search(r'href="([^"]*admin(?:/|&#x2f;)admin\.[0-9a-f]+\.css)"', page)
        if status != 200 or not css:
            sys.exit(f"the dashboard answered {status} without the stylesheet's URL")
        static = css.group(1).replace("&#x2f;", "/")
        targets = [("static " + static.rsplit("/", 1)[-1], static),
                   ("contact list", "/admin/contacts"),
                   ("campaign page", f"/admin/campaigns/{campaign}"),
                   ("campaign dashboard", f"/admin/dashboard/campaigns/{campaign}")]
        results = []
        for label, path in targets:
            status, _, _ = fetch(base + path, cookie)
            if status != 200:
                print(f"{name}: {path} answered {status}: not served by this build, left out", flush=True)
                continue
            rps, p99 = wrk(base + path, cookie, args)
            print(f"{name}: {path}: {rps:.0f} req/s, p99 {p99:.2f} ms", flush=True)
            results.append((label, path, rps, p99))
        return results
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "whatsup"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    if not os.path.exists(args.binary):
        sys.exit(f"no binary at {args.binary} (cargo build --release, or --binary)")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "contacts.csv")
        generate(csv, args.rows)
        backends = [("sqlite", "sqlite://" + os.path.join(tmp, "bench.db"))]
        dbname = None
        if args.pg_url:
            dbname = f"whatsup_bench_admin_{os.getpid()}"
            psql(args.pg_url, f"CREATE DATABASE {dbname}")
            backends.append(("postgres", args.pg_url.rsplit("/", 1)[0] + "/" + dbname))
        results = []
        try:
            for name, url in backends:
                results.append((name, bench_backend(name, url, args, csv, tmp)))
        finally:
            if dbname:
                psql(args.pg_url, f"DROP DATABASE {dbname}")
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s; {args.rows} contacts, "
          f"a campaign to all of them; load average after: {os.getloadavg()[0]:.2f}")
    print(f"{'backend':10} {'page':48} {'req/s':>9} {'p99 ms':>8} {'vs static':>9}")
    for name, rows in results:
        base = rows[0][2]
        for label, path, rps, p99 in rows:
            print(f"{name:10} {label + ' ' + path:48.48} {rps:9.0f} {p99:8.2f} {rps / base:9.3f}")


if __name__ == "__main__":
    main()
