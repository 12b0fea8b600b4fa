#!/usr/bin/env python3
"""Sending benchmark: whatsup vs Postfix's smtp-source, against one smtp-sink.

In one run, for each database (SQLite, and PostgreSQL when a URL is given)
and each signing mode (none, DKIM ed25519, DKIM RSA-2048):
  - imports N generated contacts and a bench issue sized so that its
    rendered message (template, text and HTML parts, encoding) is about
    10 KiB, the size smtp-source sends (--sample-issue sends the 32 KB
    sample issue instead),
  - `whatsup send` one campaign to all of them through smtp-sink on loopback
    with the rate limit off, timing it and taking its peak RSS,
and, as the baseline, `smtp-source -d -s C -m N -l 10240` against the same
sink with the same concurrency C. Prints messages/s, the ratio and peak RSS.

A second baseline sends smtp-source messages of exactly the size whatsup's
are (the .eml that `whatsup issues preview` writes), and a second ratio
compares with that.

Usage: scripts/bench_send.py [--recipients 100000] [--concurrency 8]
                             [--pg-url postgres://...] [--binary PATH]
                             [--modes none,ed25519,rsa] [--message-bytes 10240]
                             [--sample-issue]
Not a test: nothing here asserts a time.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from benchlib import drop_database, free_port, run, start_sink, whatsup_env

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


BENCH_ISSUE = """+++
subject = "What's up in Tokyo: news from the wards"
preheader = "Events, markets and lantern evenings across the 23 wards."
number = 214
date = 2025-07-01

[[sections]]
title = "Culture & Events"

[[sections.articles]]
heading = "More from the wards"
body = '''
{body}
'''
+++
Welcome to this issue of WHAT'S UP; the greeting above it carries each recipient's name.
"""

PARA = ("Tokyo's ward offices publish a yearly digest of the events they host for residents "
        "and visitors, from lantern evenings to morning markets. ")


def sized_issue(binary, dst, tmp, target):
    """Writes an issue whose rendered message is about `target` bytes (the
    template, both parts and their encoding included), by adding paragraphs
    to one article. Returns the message size `issues preview` measured."""
    def size_with(n):
        body = "\n\n".join(PARA * 3 for _ in range(n)) if n else PARA
        open(dst, "w", encoding="utf-8").write(BENCH_ISSUE.format(body=body))
        return message_size(binary, dst, tmp)
    n, size = 0, size_with(0)
    if size >= target:
        return size
    # Each paragraph adds the same bytes: step once, then aim.
    step = size_with(1) - size
    n = max(1, round((target - size) / max(step, 1)))
    return size_with(n)


def message_size(binary, issue, tmp):
    """Bytes of the message `whatsup issues preview` writes for the issue."""
    work = tempfile.mkdtemp(prefix="preview-", dir=tmp)
    env, _ = whatsup_env(work, None, None)
    env["WHATSUP_SECURITY_TOKEN_SECRET"] = SECRET
    out = os.path.join(work, "out")
    run([binary, "issues", "preview", issue, "--out", out], env=env, cwd=work)
    emls = [f for f in os.listdir(out) if f.endswith(".eml")]
    if len(emls) != 1:
        sys.exit(f"issues preview wrote {len(emls)} .eml files in {out}, expected 1")
    return os.path.getsize(os.path.join(out, emls[0]))


def gen_contacts(path, n):
    with open(path, "w", encoding="utf-8") as f:
        f.write("email,name,title,organisation,kind,country,timezone\n")
        for i in range(n):
            o = i % 500
            f.write(f"r{i}@org{o}.example.org,Recipient {i},Counsellor,Embassy {o},embassy,FR,Europe/Paris\n")


def keys(tmp):
    ed = os.path.join(tmp, "ed25519.pem")
    rsa = os.path.join(tmp, "rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", ed], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"ed25519": ed, "rsa": rsa}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "whatsup"))
    ap.add_argument("--modes", default="none,ed25519,rsa")
    ap.add_argument("--message-bytes", type=int, default=10240,
                    help="size the bench issue so that its rendered message is about this large")
    ap.add_argument("--sample-issue", action="store_true",
                    help="send samples/issue-214.md as it is instead (a 32 KB message)")
    args = ap.parse_args()
    if not shutil.which("smtp-sink") or not shutil.which("smtp-source"):
        sys.exit("smtp-sink and smtp-source are needed (Debian package postfix)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="whatsup-send-bench-")
    contacts = os.path.join(tmp, "contacts.csv")
    gen_contacts(contacts, args.recipients)
    issue = os.path.join(tmp, "issue.md")
    if args.sample_issue:
        shutil.copy(os.path.join(root, "samples", "issue-214.md"), issue)
        size = message_size(args.binary, issue, tmp)
    else:
        size = sized_issue(args.binary, issue, tmp, args.message_bytes)
    pem = keys(tmp) if shutil.which("openssl") else {}
    port = free_port()
    sink = start_sink(port)
    results = []
    try:
        def source(length):
            t, _, _ = run(["smtp-source", "-d", "-s", str(args.concurrency), "-m", str(args.recipients),
                           "-l", str(length), "-f", "bench@example.org", "-t", "sink@example.net",
                           f"127.0.0.1:{port}"])
            return t, args.recipients / t
        base_t, base_rate = source(10240)
        results.append(("smtp-source -l 10240 (baseline)", base_t, base_rate, None, None, None))
        same_t, same_rate = source(size)
        results.append((f"smtp-source -l {size} (same size)", same_t, same_rate, None, None, None))

        dbs = [("SQLite", None)]
        if args.pg_url:
            dbs.append(("PostgreSQL", args.pg_url))
        else:
            print("!!! no --pg-url / WHATSUP_TEST_POSTGRES_URL: PostgreSQL part skipped")
        for db_name, pg in dbs:
            for mode in args.modes.split(","):
                if mode != "none" and mode not in pem:
                    print(f"!!! openssl not found: DKIM {mode} skipped")
                    continue
                work = os.path.join(tmp, f"{db_name}-{mode}")
                os.makedirs(work)
                env, dbname = whatsup_env(work, pg, f"whatsup_sendbench_{os.getpid()}_{mode}")
                env.update({
                    "WHATSUP_SMTP_HOST": "127.0.0.1",
                    "WHATSUP_SMTP_PORT": str(port),
                    "WHATSUP_SMTP_MAX_CONNECTIONS": str(args.concurrency),
                    "WHATSUP_SENDING_TRANSPORT": "smtp",
                    "WHATSUP_SENDING_BATCH_SIZE": "500",
                    "WHATSUP_SECURITY_TOKEN_SECRET": SECRET,
                })
                if mode != "none":
                    env.update({
                        "WHATSUP_DKIM_ENABLED": "true",
                        "WHATSUP_DKIM_DOMAIN": "example.org",
                        "WHATSUP_DKIM_SELECTOR": "bench",
                        "WHATSUP_DKIM_ALGORITHM": mode,
                        "WHATSUP_DKIM_KEY_FILE": pem[mode],
                    })
                try:
                    b = args.binary
                    run([b, "subscribers", "import", contacts], env=env, cwd=work)
                    run([b, "issues", "import", issue], env=env, cwd=work)
                    _, _, out = run([b, "campaigns", "create", "--issue", "214", "--json"], env=env, cwd=work)
                    import json
                    cid = json.loads(out)["id"]
                    t, rss, out = run([b, "send", str(cid), "--json"], env=env, cwd=work)
                    summary = json.loads(out)
                    sent = summary["counts"]["sent"]
                    if sent != args.recipients:
                        sys.exit(f"only {sent} of {args.recipients} sent: {summary}")
                    rate = sent / t
                    label = f"whatsup send, {db_name}, " + ("no DKIM" if mode == "none" else f"DKIM {mode}")
                    results.append((label, t, rate, rate / base_rate, rate / same_rate, rss))
                finally:
                    drop_database(pg, dbname)
    finally:
        sink.kill()
    print(f"\n{args.recipients} messages, concurrency {args.concurrency}, rate limit off; "
          f"whatsup's messages are {size} bytes (before DKIM)")
    print(f"{'what':42} {'seconds':>8} {'msgs/s':>9} {'ratio':>6} {'same size':>9} {'peak RSS':>9}")
    for name, t, rate, ratio, same, rss in results:
        r = f"{ratio:.2f}" if ratio is not None else ""
        q = f"{same:.2f}" if same is not None else ""
        m = f"{rss:.0f} MiB" if rss is not None else ""
        print(f"{name:42} {t:8.2f} {rate:9.0f} {r:>6} {q:>9} {m:>9}")
    print("\nratio = whatsup messages/s divided by smtp-source -l 10240's in this run (goal without DKIM: >= 0.6)")
    print("same size = the same, against smtp-source sending messages as large as whatsup's")
    print("the whatsup time includes starting the campaign (freezing the recipients)")


if __name__ == "__main__":
    main()
