#!/usr/bin/env python3
"""Start benchmark: what the send gate costs when a campaign starts.

A start runs the preflight on the issue revision, freezes the recipients and
renders every recipient's message once without sending, before it commits
(issue 23: 160,000 recipients in under 3 s). In one run, for each database
(SQLite, and PostgreSQL when a URL is given):
  - imports N generated contacts (default 160,000) and the sample issue,
  - creates a campaign and times `whatsup campaigns start`,
  - prints the command's wall time, the rendering time it reports (from the
    first frozen recipient to the last rendered message) and renders/s;
and, as the baseline in the same run, `render_bench` (one thread, no
database, the same number of messages) when --render-bench is given, with
the ratio of the start's render rate to it.

Usage: scripts/bench_start.py [--recipients 160000] [--pg-url postgres://...]
                              [--binary PATH] [--render-bench PATH]
Not a test: nothing here asserts a time.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile

from benchlib import drop_database, run, whatsup_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def contacts_csv(path, n):
    with open(path, "w", encoding="utf-8") as f:
        f.write("email,name,title,organisation,kind,country,city,timezone\n")
        for i in range(n):
            o = i % 997
            f.write(f"c{i}@org{o}.example.org,Contact Nümber {i},"
                    f"{'First Secretary' if i % 3 else ''},Embassy {o},embassy,FR,Tokyo,Asia/Tokyo\n")


def bench(binary, env, work, csv, n):
    run([binary, "subscribers", "import", csv], env=env, cwd=work)
    run([binary, "issues", "import", os.path.join(ROOT, "samples/issue-214.md")], env=env, cwd=work)
    run([binary, "campaigns", "create", "--issue", "214", "--transport", "outbox"], env=env, cwd=work)
    secs, rss, out = run([binary, "campaigns", "start", "1"], env=env, cwd=work)
    m = re.search(r"(\d+) recipients frozen, every message rendered in ([0-9.]+) s", out)
    if not m or int(m.group(1)) != n:
        sys.exit(f"unexpected output: {out}")
    render = float(m.group(2))
    return secs, render, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=160_000)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default=shutil.which("whatsup") or "target/release/whatsup")
    ap.add_argument("--render-bench", help="path of the render_bench example binary")
    a = ap.parse_args()
    n = a.recipients
    print(f"{n} recipients; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "contacts.csv")
        contacts_csv(csv, n)
        for name, pg in [("SQLite", None)] + ([("PostgreSQL", a.pg_url)] if a.pg_url else []):
            work = tempfile.mkdtemp(dir=tmp)
            env, db = whatsup_env(work, pg, f"bench_start_{os.getpid()}")
            try:
                secs, render, rss = bench(a.binary, env, work, csv, n)
            finally:
                drop_database(pg, db)
            rows.append((name, secs, render, n / render if render else 0.0, rss))
    base = None
    if a.render_bench:
        _, _, out = run([a.render_bench, str(n)])
        m = re.search(r"([0-9]+) messages/s", out)
        base = float(m.group(1)) if m else None
        print(f"baseline: render_bench, one thread, no database: {base:,.0f} messages/s")
    print(f"{'database':<11} {'start s':>8} {'render s':>9} {'renders/s':>10} {'ratio':>6} {'peak RSS':>9}")
    for name, secs, render, rate, rss in rows:
        ratio = f"{rate / base:.2f}" if base else "-"
        print(f"{name:<11} {secs:>8.2f} {render:>9.2f} {rate:>10,.0f} {ratio:>6} {rss:>7.0f} MiB")


if __name__ == "__main__":
    main()
