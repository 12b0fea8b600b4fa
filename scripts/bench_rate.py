#!/usr/bin/env python3
"""Shared rate limit: W `whatsup worker` processes on one database, each
configured with smtp.per_second = R, send one campaign to smtp-sink; the
limit is for all workers together, so the aggregate must stay at R/s.

Measures the aggregate rate from the sink's receipt times (each message's
dump file modification time): messages/s over the whole run, and the most
messages received in any one calendar second. Prints both against R and
the ratio to the limit.

Usage: scripts/bench_rate.py [--workers 3] [--per-second 200] [--messages 3000]
                             [--pg-url postgres://...] [--binary PATH]
Without --pg-url the workers share an SQLite file. Not a test: nothing here
asserts a time.
"""
import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import drop_database, free_port, run, start_sink, whatsup_env

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--per-second", type=int, default=200)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default="target/release/whatsup")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="whatsup-rate-")
    # smtp-sink drops to `nobody` when run as root: it must reach the dumps.
    os.chmod(work, 0o755)
    dumps = os.path.join(work, "sink")
    os.makedirs(dumps)
    env, db = whatsup_env(work, args.pg_url, f"bench_rate_{os.getpid()}")
    workers = []
    sink = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    try:
        csv = os.path.join(work, "contacts.csv")
        with open(csv, "w") as f:
            f.write("email,name,organisation,kind,country\n")
            for i in range(args.messages):
                f.write(f"rate{i}@example.net,Rate {i},Office {i % 9},embassy,DE\n")
        port = free_port()
        env.update({
            "WHATSUP_SMTP_HOST": "127.0.0.1",
            "WHATSUP_SMTP_PORT": str(port),
            "WHATSUP_SMTP_PER_SECOND": str(args.per_second),
            "WHATSUP_SMTP_MAX_CONNECTIONS": "8",
            "WHATSUP_SENDING_TRANSPORT": "smtp",
            "WHATSUP_SENDING_POLL_SECS": "1",
            "WHATSUP_SENDING_BOUNCE_ADDRESS": "bounces@example.org",
            "WHATSUP_SECURITY_TOKEN_SECRET": SECRET,
        })
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        run([binary, "subscribers", "import", csv], env=env, cwd=work)
        run([binary, "issues", "import", os.path.join(root, "samples/issue-214.md")], env=env, cwd=work)
        run([binary, "campaigns", "create", "--issue", "214", "--transport", "smtp"], env=env, cwd=work)
        sink = start_sink(port, dumps)
        run([binary, "campaigns", "start", "1"], env=env, cwd=work)
        for _ in range(args.workers):
            workers.append(subprocess.Popen([binary, "worker"], env=env, cwd=work,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 10 * args.messages / args.per_second + 60
        while len(os.listdir(dumps)) < args.messages and time.time() < deadline:
            time.sleep(0.2)
        times = sorted(os.stat(os.path.join(dumps, n)).st_mtime for n in os.listdir(dumps))
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait()
        if sink:
            sink.kill()
            sink.wait()
        drop_database(args.pg_url, db)
    n = len(times)
    if n < 2:
        sys.exit(f"only {n} messages arrived")
    # The first and last second are partial: the rate over the run is
    # (n - 1) intervals over the time between the first and last receipt.
    rate = (n - 1) / (times[-1] - times[0])
    per_second = collections.Counter(int(t) for t in times)
    busiest = max(per_second.values())
    backend = "PostgreSQL" if args.pg_url else "SQLite"
    print(f"{args.workers} workers, per_second = {args.per_second} each, {backend}: "
          f"{n} messages in {times[-1] - times[0]:.1f} s")
    print(f"  aggregate {rate:.1f} messages/s ({rate / args.per_second:.3f} of the limit)")
    print(f"  busiest calendar second {busiest} messages ({busiest / args.per_second:.3f} of the limit)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
