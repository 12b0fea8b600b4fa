#!/usr/bin/env python3
"""IMAP intake benchmark: `whatsup bounces poll imap --once` over N queued bounces.

  - starts its own Dovecot on a free loopback port (plain IMAP, a
    passwd-file user, a Maildir in a temporary directory), as the tests do;
  - imports N contacts and writes one RFC 3464 DSN (~2.5 KiB, a hard bounce
    for one contact, with the returned message's headers) per contact into
    the Maildir's new/, as a delivery agent would;
  - runs `whatsup bounces poll imap --once --json` once (SQLite, and
    PostgreSQL when a URL is given), timing the whole command, and checks
    that every message was ingested, the INBOX is empty and Processed holds
    all of them;
  - prints messages/s (wall time of the command, and of the pass alone);
  - the baseline, on its own Dovecot with the same N messages queued: a bare
    IMAP client (Python's imaplib) that fetches every message and moves it
    to Processed in batches of the same size, and does nothing else (no
    parsing, no database); the ratio is whatsup's rate over that rate.

Usage: scripts/bench_imap.py [--messages 10000] [--batch-size 100]
                             [--pg-url postgres://...] [--binary PATH]
Not a test: nothing here asserts a time. Needs dovecot (dovecot-imapd).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import drop_database, free_port, run, whatsup_env

USER = "bounces"
PASSWORD = "bench-password"


def start_dovecot(root, port):
    """Dovecot -F with a generated config; returns (process, maildir, owner)."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(binary):
        sys.exit("dovecot is not installed (apt-get install dovecot-imapd)")
    os.makedirs(root, exist_ok=True)
    # Dovecot's auth and mail processes run as other users: they must get
    # through mkdtemp's 0700 parent as well.
    os.chmod(os.path.dirname(root), 0o755)
    os.chmod(root, 0o755)
    for d in ("run", "state", "mail"):
        os.makedirs(os.path.join(root, d))
    if os.geteuid() == 0:
        # Login processes must not run as root; the mail belongs to nobody.
        users = "default_internal_user = dovecot\ndefault_login_user = dovenull\n"
        owner = (65534, 65534)
    else:
        import grp
        import pwd
        me = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        users = (f"default_internal_user = {me}\ndefault_internal_group = {group}\n"
                 f"default_login_user = {me}\n")
        owner = (os.geteuid(), os.getegid())
    conf = f"""base_dir = {root}/run
state_dir = {root}/state
instance_name = whatsup-bench-{port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
{users}first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={owner[0]} gid={owner[1]} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
    with open(os.path.join(root, "dovecot.conf"), "w") as f:
        f.write(conf)
    with open(os.path.join(root, "passwd"), "w") as f:
        f.write(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    maildir = os.path.join(root, "mail", USER)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    chown_tree(os.path.join(root, "mail"), owner)
    proc = subprocess.Popen([binary, "-F", "-c", os.path.join(root, "dovecot.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                data = b""
                while b"ready" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if b"ready" in data:
                    return proc, maildir, owner
        except OSError:
            pass
        time.sleep(0.1)
    proc.terminate()
    sys.exit("dovecot did not start; see " + os.path.join(root, "dovecot.log"))


def chown_tree(path, owner):
    if os.geteuid() != 0:
        return
    os.chown(path, *owner)
    for base, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(base, n), *owner)


def dsn(i, rcpt):
    """A Postfix-shaped DSN for rcpt, as it arrives in the bounce mailbox."""
    return (
        "Return-Path: <>\r\n"
        "Delivered-To: bounces@news.example.org\r\n"
        f"Received: by mx.news.example.org (Postfix) id B{i:08d}; Mon, 30 Nov 2026 10:00:00 +0900\r\n"
        "From: MAILER-DAEMON@mx.news.example.org (Mail Delivery System)\r\n"
        "To: bounces@news.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-Id: <{i}.bench.dsn@mx.news.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.news.example.org.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{rcpt}>: host mx.example.org[192.0.2.25] said: 550 5.1.1 <{rcpt}>:\r\n"
        "    Recipient address rejected: User unknown in virtual mailbox table\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.news.example.org\r\n"
        f"X-Postfix-Queue-ID: B{i:08d}\r\n"
        "Arrival-Date: Mon, 30 Nov 2026 09:59:58 +0900\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        "Remote-MTA: dns; mx.example.org\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: \"WHAT'S UP Tokyo\" <whatsup@news.example.org>\r\n"
        f"To: {rcpt}\r\n"
        "Subject: WHAT'S UP Tokyo, issue 214\r\n"
        f"Message-ID: <214.{i}@news.example.org>\r\n"
        "X-Whatsup-Campaign: 1\r\n"
        "List-Unsubscribe: <https://whatsup.tokyo.example.org/u/abcdefghijklmnopqrstuvwxyz0123456789>\r\n"
        "\r\n--B--\r\n"
    ).encode()


def queue(maildir, n, owner):
    """Writes n DSNs into new/ the way a delivery agent does (tmp/, then rename)."""
    tmp, new = os.path.join(maildir, "tmp"), os.path.join(maildir, "new")
    total = 0
    for i in range(n):
        name = f"{1_700_000_000 + i}.M0P{os.getpid()}Q{i}.whatsup-bench"
        data = dsn(i, f"r{i}@org{i % 500}.example.org")
        total += len(data)
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        if os.geteuid() == 0:
            os.chown(path, *owner)
        os.rename(path, os.path.join(new, name))
    return total


def count(folder_dir):
    return sum(len(os.listdir(os.path.join(folder_dir, s)))
               for s in ("cur", "new") if os.path.isdir(os.path.join(folder_dir, s)))


def bare_client(port, n, batch):
    """The baseline: fetch every message of INBOX and move it to Processed,
    `batch` at a time, as the intake does, but with nothing in between.
    Returns (seconds, bytes fetched)."""
    import imaplib
    start = time.perf_counter()
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(USER, PASSWORD)
    imap.create("Processed")
    imap.select("INBOX")
    _, data = imap.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    fetched = 0
    for i in range(0, len(uids), batch):
        chunk = b",".join(uids[i:i + batch])
        _, parts = imap.uid("FETCH", chunk, "(BODY.PEEK[])")
        fetched += sum(len(p[1]) for p in parts if isinstance(p, tuple))
        typ, _ = imap.uid("MOVE", chunk, "Processed")
        if typ != "OK":
            sys.exit(f"baseline: MOVE failed: {typ}")
    imap.logout()
    elapsed = time.perf_counter() - start
    if len(uids) != n:
        sys.exit(f"baseline: INBOX held {len(uids)} messages, expected {n}")
    return elapsed, fetched


def baseline(n, batch):
    """Runs bare_client against a fresh Dovecot holding n queued DSNs;
    returns (seconds, messages/s)."""
    work = tempfile.mkdtemp(prefix="whatsup-imap-baseline-")
    port = free_port()
    dovecot, maildir, owner = start_dovecot(os.path.join(work, "dovecot"), port)
    try:
        size = queue(maildir, n, owner)
        secs, fetched = bare_client(port, n, batch)
        if fetched < size or count(maildir) != 0 or count(os.path.join(maildir, ".Processed")) != n:
            sys.exit("baseline: not every message was fetched and moved")
        return secs, n / secs
    finally:
        dovecot.terminate()
        dovecot.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--pg-url", default=os.environ.get("WHATSUP_TEST_POSTGRES_URL"))
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"),
                                                     "release", "whatsup"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: cargo build --release (or --binary PATH)")
    dbs = [("SQLite", None)]
    if args.pg_url:
        dbs.append(("PostgreSQL", args.pg_url))
    else:
        print("!!! no --pg-url / WHATSUP_TEST_POSTGRES_URL: PostgreSQL part skipped")
    base_secs, base_rate = baseline(args.messages, args.batch_size)
    results = []
    for db_name, pg in dbs:
        work = tempfile.mkdtemp(prefix="whatsup-imap-bench-")
        port = free_port()
        dovecot, maildir, owner = start_dovecot(os.path.join(work, "dovecot"), port)
        dbname = None
        try:
            env, dbname = whatsup_env(work, pg, f"whatsup_imapbench_{os.getpid()}")
            env.update({
                "WHATSUP_BOUNCES_IMAP_HOST": "127.0.0.1",
                "WHATSUP_BOUNCES_IMAP_PORT": str(port),
                "WHATSUP_BOUNCES_IMAP_TLS": "none",
                "WHATSUP_BOUNCES_IMAP_USERNAME": USER,
                "WHATSUP_BOUNCES_IMAP_PASSWORD": PASSWORD,
                "WHATSUP_BOUNCES_IMAP_BATCH_SIZE": str(args.batch_size),
            })
            contacts = os.path.join(work, "contacts.csv")
            with open(contacts, "w") as f:
                f.write("email,name,title,organisation,kind,country,timezone\n")
                for i in range(args.messages):
                    o = i % 500
                    f.write(f"r{i}@org{o}.example.org,Recipient {i},Counsellor,Embassy {o},embassy,FR,Europe/Paris\n")
            run([args.binary, "subscribers", "import", contacts], env=env, cwd=work)
            size = queue(maildir, args.messages, owner)
            wall, _, out = run([args.binary, "bounces", "poll", "imap", "--once", "--json"], env=env, cwd=work)
            report = json.loads(out.strip().splitlines()[-1])
            handled = report["ingested"] + report["duplicates"] + report["quarantined"]
            if report["ingested"] != args.messages or report["failure"]:
                sys.exit(f"not every message was ingested: {report}")
            inbox, processed = count(maildir), count(os.path.join(maildir, ".Processed"))
            if inbox != 0 or processed != args.messages:
                sys.exit(f"INBOX has {inbox}, Processed {processed}: expected 0 and {args.messages}")
            results.append((db_name, args.messages, size, wall, report["seconds"], handled))
        finally:
            dovecot.terminate()
            dovecot.wait()
            drop_database(pg, dbname)
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n`whatsup bounces poll imap --once`, Dovecot on loopback, batch size {args.batch_size}")
    print(f"{'database':12} {'messages':>9} {'MiB':>6} {'wall s':>8} {'msgs/s':>8} {'pass s':>8} {'msgs/s':>8} "
          f"{'vs bare':>8}")
    for db_name, n, size, wall, secs, handled in results:
        print(f"{db_name:12} {n:9} {size / 2**20:6.1f} {wall:8.2f} {handled / wall:8.0f} "
              f"{secs:8.2f} {handled / secs:8.0f} {handled / wall / base_rate:8.2f}")
    print(f"{'bare client':12} {args.messages:9} {'':6} {base_secs:8.2f} {base_rate:8.0f}")
    print("\nwall: the whole command (start, database open, login, pass); pass: the pass alone.")
    print("vs bare: whatsup's wall rate over the bare client's (imaplib: fetch and move only).")
    print("Every message is a hard bounce for an active contact: each commit records the")
    print("message, its event and the contact's status change with its audit row.")


if __name__ == "__main__":
    main()
