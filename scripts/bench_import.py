#!/usr/bin/env python3
"""Import benchmark: whatsup vs the databases' native CSV loaders.

Generates an N-row CSV in the documented format, then in the same run:
  - sqlite3 `.import` into a plain table (baseline) vs `whatsup subscribers import` into SQLite;
  - psql `\\copy` into a plain table (baseline) vs `whatsup subscribers import` into PostgreSQL;
and prints rows/s, the ratio to the baseline and peak RSS. For PostgreSQL it
also times psql \\copy of the rows the import produced into an empty copy of
the schema: the floor that the schema's indexes and constraints set. Peak RSS is also
measured for a file a tenth the size, to show memory stays flat as it grows.

Usage: scripts/bench_import.py [--rows 1000000] [--pg-url postgres://...] [--binary PATH]
Not a test: nothing here asserts a time.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

REGIONS = ["Africa", "Americas", "Asia", "Europe", "Middle East", "Oceania"]
COUNTRIES = ["FR", "DE", "US", "BR", "CN", "KR", "EG", "RU", "ID", "IT", "GB", "AU", "IN", "MX", "KE"]
ZONES = ["Europe/Paris", "Europe/Berlin", "America/New_York", "America/Sao_Paulo", "Asia/Shanghai",
         "Asia/Seoul", "Africa/Cairo", "Europe/Moscow", "Asia/Jakarta", "Europe/Rome", "Europe/London",
         "Australia/Sydney", "Asia/Kolkata", "America/Mexico_City", "Africa/Nairobi"]
HEADER = "email,name,title,organisation,kind,country,city,region,timezone,relationship,since,language,tags\n"


def generate(path, rows, orgs=5000):
    rnd = random.Random(42)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for i in range(rows):
            o = i % orgs
            c = o % len(COUNTRIES)
            kind = "city" if o % 10 == 0 else "embassy"
            rel, since = ("sister", str(1950 + o % 70)) if kind == "city" else ("", "")
            tags = "press;culture" if i % 3 == 0 else "embassies"
            f.write(f"person{i}@org{o}.example.org,Person {i},\"Officer, Desk {i % 7}\",Organisation {o},{kind},"
                    f"{COUNTRIES[c]},City {o},{REGIONS[o % 6]},{ZONES[c]},{rel},{since},en,{tags}\n")


def run(cmd, env=None, stdin=None):
    """Runs cmd; returns (seconds, peak RSS in MiB of the child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed ({code}): {' '.join(cmd)}\n{err}")
    return elapsed, usage.ru_maxrss / 1024


def psql(url, sql):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, stdout=subprocess.DEVNULL)


CONTACT_COLUMNS = ("email, name, title, organisation_id, language, status, status_changed_at, consent_source, "
                   "consent_at, attributes, created_at, updated_at")


def schema_floor(args, env, tmp, pg_url):
    """PostgreSQL's own floor for this schema: the contacts and tag links the
    import produced, written out and loaded back with \\copy into an empty,
    migrated database (organisations and tags loaded first, untimed).
    Returns the seconds the two \\copy commands took, then the same into
    tables with the same columns and no index, constraint or trigger."""
    files = {name: os.path.join(tmp, f"floor_{name}.csv") for name in ("orgs", "tags", "contacts", "links")}
    sources = {"orgs": "organisations", "tags": "tags", "contacts": f"(SELECT {CONTACT_COLUMNS} FROM contacts ORDER BY id)",
               "links": "contact_tags"}
    for name, source in sources.items():
        psql(pg_url, f"\\copy {source} TO '{files[name]}' WITH (FORMAT csv)")
    dbname = f"whatsup_floor_{os.getpid()}"
    psql(args.pg_url, f"CREATE DATABASE {dbname}")
    url = args.pg_url.rsplit("/", 1)[0] + "/" + dbname
    try:
        run([args.binary, "--database", url, "migrate"], env=env)
        for name, table in (("orgs", "organisations"), ("tags", "tags")):
            psql(url, f"\\copy {table} FROM '{files[name]}' WITH (FORMAT csv)")
        def load(contacts, links):
            t, _ = run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc",
                        f"\\copy {contacts} FROM '{files['contacts']}' WITH (FORMAT csv)",
                        "-c", f"\\copy {links} FROM '{files['links']}' WITH (FORMAT csv)"])
            return t
        schema = load(f"contacts ({CONTACT_COLUMNS})", "contact_tags")
        psql(url, f"CREATE TABLE bare_contacts AS SELECT {CONTACT_COLUMNS} FROM contacts LIMIT 0; "
             "CREATE TABLE bare_links (contact_id bigint, tag_id bigint)")
        return schema, load("bare_contacts", "bare_links")
    finally:
        psql(args.pg_url, f"DROP DATABASE {dbname}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "whatsup"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="whatsup-bench-")
    big = os.path.join(tmp, "big.csv")
    small = os.path.join(tmp, "small.csv")
    generate(big, args.rows)
    generate(small, max(args.rows // 10, 1))
    print(f"generated {args.rows} rows ({os.path.getsize(big) / 2**20:.0f} MiB) in {tmp}")
    env = dict(os.environ)
    env.pop("WHATSUP_DATABASE_URL", None)
    results = []

    # SQLite baseline: sqlite3 .import into a plain table.
    base_db = os.path.join(tmp, "plain.db")
    t, _ = run(["sqlite3", base_db, ".mode csv", f".import {big} plain"])
    results.append(("sqlite3 .import (baseline)", t, None))
    sqlite_base = t

    def whatsup(url, csv):
        return run([args.binary, "--database", url, "subscribers", "import", csv], env=env)

    url = f"sqlite://{os.path.join(tmp, 'whatsup.db')}"
    t, rss = whatsup(url, big)
    results.append(("whatsup import, SQLite", t, rss, sqlite_base))
    t_small, rss_small = whatsup(f"sqlite://{os.path.join(tmp, 'small.db')}", small)
    results.append((f"whatsup import, SQLite, {args.rows // 10} rows", t_small, rss_small))

    if args.pg_url:
        psql(args.pg_url, "DROP TABLE IF EXISTS bench_plain; CREATE TABLE bench_plain (email text, name text, "
             "title text, organisation text, kind text, country text, city text, region text, timezone text, "
             "relationship text, since text, language text, tags text)")
        t, _ = run(["psql", args.pg_url, "-qc", f"\\copy bench_plain FROM '{big}' WITH (FORMAT csv, HEADER true)"])
        results.append(("psql \\copy (baseline)", t, None))
        pg_base = t
        psql(args.pg_url, "DROP TABLE bench_plain")
        # A fresh database for whatsup.
        dbname = f"whatsup_bench_{os.getpid()}"
        psql(args.pg_url, f"CREATE DATABASE {dbname}")
        pg_url = args.pg_url.rsplit("/", 1)[0] + "/" + dbname
        try:
            t, rss = whatsup(pg_url, big)
            results.append(("whatsup import, PostgreSQL", t, rss, pg_base))
            schema, bare = schema_floor(args, env, tmp, pg_url)
            results.append(("psql \\copy of the import's output (floor)", schema, None, pg_base))
            results.append(("  the same into bare tables", bare, None, pg_base))
        finally:
            psql(args.pg_url, f"DROP DATABASE {dbname}")
    else:
        print("!!! no --pg-url / WHATSUP_TEST_POSTGRES_URL: PostgreSQL part skipped")

    print(f"\n{'what':45} {'seconds':>8} {'rows/s':>10} {'ratio':>7} {'peak RSS':>9}")
    for r in results:
        name, t = r[0], r[1]
        rows = args.rows // 10 if "rows" in name.split(",")[-1] else args.rows
        ratio = f"{r[3] / t:.2f}" if len(r) == 4 else ""
        rss = f"{r[2]:.0f} MiB" if r[2] is not None else ""
        print(f"{name:45} {t:8.2f} {rows / t:10.0f} {ratio:>7} {rss:>9}")
    print("\nratio = whatsup rows/s divided by the native loader's rows/s in this run (goal: >= 0.3)")
    if args.pg_url:
        print("floor = the contacts and tag links whatsup produced, loaded by psql \\copy into an empty migrated\n"
              "        database: the best any importer could do with this schema's indexes and constraints;\n"
              "        bare tables: the same columns without any index, constraint or trigger")


if __name__ == "__main__":
    main()
