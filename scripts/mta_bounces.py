#!/usr/bin/env python3
"""Generates real bounces from real MTAs on a private loopback network.

    scripts/mta_bounces.py --out tests/data/bounces/mta          # every MTA
    scripts/mta_bounces.py --out /tmp/b --mta postfix             # one MTA

Needs root (network namespaces) and, from Debian: postfix, dnsmasq-base,
iproute2. Exim and OpenSMTPD cannot be installed beside Postfix (Debian's
MTAs conflict with each other), so their packages are fetched with
`apt-get download` and unpacked with `dpkg -x` into a private directory
(WHATSUP_MTA_ROOT, default ~/.cache/whatsup-mta); nothing of theirs is
installed on the system. Their system users (Debian-exim, opensmtpd, opensmtpq)
are created if missing, as their packages would.

Everything runs inside a network namespace of its own (`ip netns`), whose
loopback is private, with its own resolv.conf:

    127.0.0.1:53    dnsmasq, authoritative for .test
    127.0.0.1:2525  the sending Postfix      (mta-postfix.news.test)
    127.0.0.1:2526  the sending Exim         (mta-exim.news.test)
    127.0.0.1:2527  the sending OpenSMTPD    (mta-opensmtpd.news.test)
    127.0.0.2:25    the receiving Postfix    (mx.dest.test), which refuses
                    what each failure class needs with its real checks
    127.0.0.9:25    a capture server (this script) for news.test and
                    nodns.test: every bounce ends up there, one file each

For each sending MTA one message per failure class is submitted; each
carries an `X-Case: MTA/CASE` header, by which the bounce that quotes it is
named `MTA_CASE.eml`. Delays are given up on at once (Postfix
maximal_queue_lifetime = 0, Exim a 1-second retry rule, OpenSMTPD a short
queue ttl), so "greylisted, then expired" takes seconds.

The written files are real bounces with one header line added at the top,
`X-Corpus-Note:`, naming the MTA and version that wrote them.
"""

import argparse
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NS_PREFIX = "wbounce"
DEST_IP = "127.0.0.2"
CAPTURE_IP = "127.0.0.9"
DOWN_IP = "127.0.0.3"
PORTS = {"postfix": 2525, "exim": 2526, "opensmtpd": 2527}
MTA_ROOT = Path(os.environ.get("WHATSUP_MTA_ROOT", Path.home() / ".cache" / "whatsup-mta"))

# (case, envelope sender, recipient, extra body bytes or marker)
# The receiving Postfix's configuration below gives each its failure.
CASES = [
    ("user_unknown", "bounces@news.test", "nosuch@dest.test"),
    ("host_unknown", "bounces@news.test", "someone@nx.test"),
    ("null_mx", "bounces@news.test", "someone@nullmx.test"),
    ("mailbox_full", "bounces@news.test", "quota@dest.test"),
    ("message_too_large", "bounces@news.test", "known@dest.test"),
    ("content_refused", "bounces@news.test", "known@dest.test"),
    ("sender_rejected", "bounces@nodns.test", "known@dest.test"),
    ("greylisted_expired", "bounces@news.test", "grey@dest.test"),
    ("relay_denied", "bounces@news.test", "someone@other.test"),
    ("connection_refused", "bounces@news.test", "someone@down.test"),
    ("dns_servfail", "bounces@news.test", "someone@servfail.test"),
    ("two_recipients", "bounces@news.test", "nosuch@dest.test,nobody@dest.test"),
]
# Cases that only the receiving Postfix can produce (a bounce after it
# accepted the message): sent once, through the sending Postfix.
DEST_CASES = [("mailbox_full_delivery", "bounces@news.test", "full@dest.test")]


def log(msg):
    print(f"mta_bounces: {msg}", flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


# ---------------------------------------------------------------- outside


def outer(args):
    if os.geteuid() != 0:
        raise SystemExit("mta_bounces: needs root (network namespaces, MTAs)")
    for tool in ["ip", "dnsmasq", "postfix"]:
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"mta_bounces: {tool} is missing (apt-get install iproute2 dnsmasq-base postfix)")
    mtas = args.mta.split(",")
    if "exim" in mtas or "opensmtpd" in mtas:
        ensure_unpacked([m for m in mtas if m != "postfix"])
    ns = f"{NS_PREFIX}{os.getpid()}"
    etc = Path("/etc/netns") / ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    run(["ip", "netns", "add", ns])
    try:
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
               "--inside", "--out", os.path.abspath(args.out), "--mta", args.mta]
        if args.keep:
            cmd.append("--keep")
        r = subprocess.run(cmd)
        if r.returncode != 0:
            raise SystemExit(r.returncode)
    finally:
        run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(etc, ignore_errors=True)


def ensure_unpacked(mtas):
    packages = {"exim": ["exim4-base", "exim4-daemon-light"], "opensmtpd": ["opensmtpd"]}
    binaries = {"exim": "usr/sbin/exim4", "opensmtpd": "usr/sbin/smtpd"}
    for mta in mtas:
        if (MTA_ROOT / binaries[mta]).exists():
            continue
        debs = MTA_ROOT / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        log(f"fetching {mta} with apt-get download into {debs}")
        run(["apt-get", "download", *packages[mta]], cwd=debs)
        for deb in debs.glob("*.deb"):
            run(["dpkg", "-x", str(deb), str(MTA_ROOT)])
    users = []
    if "exim" in mtas:
        users.append("Debian-exim")
    if "opensmtpd" in mtas:
        users += ["opensmtpd", "opensmtpq"]
    for user in users:
        if run(["id", user], check=False).returncode != 0:
            run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", user])


# ---------------------------------------------------------------- inside


class Capture(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, addr):
        super().__init__(addr, CaptureHandler)
        self.messages = []
        self.lock = threading.Lock()


class CaptureHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to take every message offered."""

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 mx.news.test ESMTP capture")
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode("latin-1").strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-mx.news.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10240000"
                           if verb == "EHLO" else "250 mx.news.test")
            elif verb == "MAIL":
                sender, rcpts = line.decode("latin-1").strip(), []
                self.reply("250 2.1.0 ok")
            elif verb == "RCPT":
                rcpts.append(line.decode("latin-1").strip())
                self.reply("250 2.1.5 ok")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = bytearray()
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    if l.startswith(b".."):
                        l = l[1:]
                    data += l
                with self.server.lock:
                    self.server.messages.append((sender, rcpts, bytes(data)))
                self.reply("250 2.0.0 captured")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("250 2.0.0 ok")


def inside(args):
    run(["ip", "link", "set", "lo", "up"])
    for ip in (DEST_IP, CAPTURE_IP):
        run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"])
    # `ip netns exec` gave this process a mount namespace of its own (slave
    # to the host's, so nothing mounted here shows outside): a private /run
    # keeps the MTAs' sockets and pid files off the host.
    run(["mount", "-t", "tmpfs", "tmpfs", "/run"])
    work = Path(tempfile.mkdtemp(prefix="whatsup-mta-"))
    os.chmod(work, 0o755)
    procs = []
    stops = []
    try:
        capture = Capture((CAPTURE_IP, 25))
        threading.Thread(target=capture.serve_forever, daemon=True).start()
        procs.append(start_dns(work))
        stops.append(start_dest_postfix(work))
        mtas = args.mta.split(",")
        versions = {}
        for mta in mtas:
            start, version = {"postfix": start_postfix, "exim": start_exim,
                              "opensmtpd": start_opensmtpd}[mta](work)
            stops.append(start)
            versions[mta] = version
        expected = 0
        for mta in mtas:
            for case, sender, rcpts in CASES:
                submit(PORTS[mta], mta, case, sender, rcpts.split(","))
                expected += 1
        if "postfix" in mtas:
            for case, sender, rcpts in DEST_CASES:
                submit(PORTS["postfix"], "postfix-dest", case, sender, rcpts.split(","))
                expected += 1
        kick = [s for s in stops if callable(getattr(s, "kick", None))]
        deadline = time.time() + 120
        while time.time() < deadline:
            for k in kick:
                k.kick()
            with capture.lock:
                got = len(capture.messages)
            if got >= expected:
                break
            time.sleep(1)
        time.sleep(2)
        versions["postfix-dest"] = versions.get("postfix") or postfix_version()
        written = write_out(capture.messages, Path(args.out), versions)
        log(f"{written} bounces written to {args.out} ({expected} cases submitted)")
        if written < expected:
            for s in stops:
                s.dump()
    finally:
        for s in reversed(stops):
            s.stop()
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def write_out(messages, out, versions):
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    seen = set()
    for _sender, _rcpts, data in messages:
        case = None
        for line in data.splitlines():
            if line.lower().startswith(b"x-case:"):
                case = line.split(b":", 1)[1].strip().decode()
                break
        if not case:
            log(f"a captured message without X-Case: {data[:200]!r}")
            continue
        mta, name = case.split("/", 1)
        stem = f"{mta}_{name}"
        n = 2
        while stem in seen:
            stem = f"{mta}_{name}_{n}"
            n += 1
        seen.add(stem)
        note = (f"X-Corpus-Note: a real bounce, generated by scripts/mta_bounces.py; "
                f"written by {versions.get(mta, mta)} on a private loopback network\r\n")
        nl = b"\r\n" if b"\r\n" in data[:2000] else b"\n"
        (out / f"{stem}.eml").write_bytes(note.replace("\r\n", nl.decode()).encode() + data)
        written += 1
    return written


def submit(port, mta, case, sender, rcpts):
    """Submits one message over SMTP to the sending MTA."""
    body_lines = ["Dear reader,", "", "This is the May issue of WHAT'S UP.", ""]
    if case == "message_too_large":
        body_lines += ["x" * 76] * 800  # about 60 kB, over the 30 kB limit
    if case == "content_refused":
        body_lines.append("FORBIDDEN-CONTENT-MARKER: this line trips the receiver's body_checks")
    headers = [
        f"From: WHAT'S UP <{sender}>",
        f"To: {', '.join(rcpts)}",
        f"Subject: WHAT'S UP May ({mta} {case})",
        f"Message-ID: <{case}.{mta}.{int(time.time())}@news.test>",
        f"X-Case: {mta}/{case}",
        "X-Whatsup-Campaign: 7",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    msg = "\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body_lines) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rwb")

    def expect(prefix):
        while True:
            line = f.readline().decode("latin-1")
            if not line:
                raise SystemExit(f"{mta}: connection closed during {case}")
            if line[3:4] != "-":
                if not line.startswith(prefix):
                    raise SystemExit(f"{mta} {case}: expected {prefix}, got {line!r}")
                return

    def send(line):
        f.write(line.encode() + b"\r\n")
        f.flush()

    expect("220")
    send("EHLO client.news.test")
    expect("250")
    send(f"MAIL FROM:<{sender}>")
    expect("250")
    for r in rcpts:
        send(f"RCPT TO:<{r}>")
        expect("250")
    send("DATA")
    expect("354")
    for line in msg.split("\r\n")[:-1]:
        send("." + line if line.startswith(".") else line)
    send(".")
    expect("250")
    send("QUIT")
    s.close()


def start_dns(work):
    conf = work / "dnsmasq.conf"
    conf.write_text("\n".join([
        "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "listen-address=127.0.0.1",
        "port=53", "local=/test/", "server=/servfail.test/127.0.0.77",
        "user=root", f"pid-file={work / 'dnsmasq.pid'}", "log-queries", f"log-facility={work / 'dnsmasq.log'}",
        # The newsletter's domain and the domain whose sender is rejected.
        "mx-host=news.test,mx.news.test,10", f"host-record=mx.news.test,{CAPTURE_IP}",
        "host-record=client.news.test,127.0.0.1",
        # The receiving Postfix, final for dest.test, and MX of other.test
        # (which it does not relay for).
        "mx-host=dest.test,mx.dest.test,10", f"host-record=mx.dest.test,{DEST_IP}",
        "mx-host=other.test,mx.dest.test,10",
        # A null MX (RFC 7505): preference 0, the root as exchange.
        "dns-rr=nullmx.test,15,000000",
        # A domain whose MX accepts no connections.
        "mx-host=down.test,mx.down.test,10", f"host-record=mx.down.test,{DOWN_IP}",
        # The sending MTAs' own names.
        "host-record=mta-postfix.news.test,127.0.0.1",
        "host-record=mta-exim.news.test,127.0.0.1",
        "host-record=mta-opensmtpd.news.test,127.0.0.1",
        "",
    ]))
    p = subprocess.Popen(["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if run(["getent", "hosts", "mx.dest.test"], check=False).returncode == 0:
            return p
        time.sleep(0.1)
    raise SystemExit("dnsmasq did not answer")


def postfix_version():
    return "Postfix " + run(["postconf", "-dh", "mail_version"]).stdout.strip()


class PostfixInstance:
    def __init__(self, root, name, listen, main):
        self.conf = root / name / "conf"
        self.log = root / name / "maillog"
        queue = root / name / "queue"
        data = root / name / "data"
        for d in (self.conf, queue, data):
            d.mkdir(parents=True, exist_ok=True)
        run(["chown", "-R", "postfix", str(data)])
        base = {
            "compatibility_level": "3.6",
            "queue_directory": str(queue),
            "data_directory": str(data),
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(root),
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtputf8_enable": "no",
        }
        base.update(main)
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in base.items()))
        master = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            if line.startswith("smtp      inet") or line.startswith("smtp inet"):
                line = line.replace("smtp ", f"{listen} ", 1)
            master.append(line)
        (self.conf / "master.cf").write_text("\n".join(master) + "\n")
        c = str(self.conf)
        run(["postconf", "-c", c, "-F", "*/*/chroot = n"])
        run(["postfix", "-c", c, "check"])
        run(["postfix", "-c", c, "start"])
        self.wait("daemon started")

    def text(self):
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait(self, needle, secs=30):
        end = time.time() + secs
        while time.time() < end:
            if needle in self.text():
                return
            time.sleep(0.1)
        raise SystemExit(f"Postfix never logged {needle!r}:\n{self.text()}")

    def kick(self):
        run(["postqueue", "-c", str(self.conf), "-f"], check=False)

    def dump(self):
        log(f"--- {self.log}\n{self.text()[-6000:]}")

    def stop(self):
        run(["postfix", "-c", str(self.conf), "stop"], check=False)


def start_dest_postfix(work):
    vmail = work / "vmail"
    vmail.mkdir()
    # A mailbox over its limit: deliveries to it fail in virtual(8).
    (vmail / "full").write_bytes(b"From x\n" + b"y" * 41000 + b"\n")
    for name in ["full", "known"]:
        (vmail / name).touch()
    run(["chown", "-R", "nobody", str(vmail)])
    inst = PostfixInstance(work, "dest", f"{DEST_IP}:25", {
        "myhostname": "mx.dest.test",
        "mydomain": "dest.test",
        "myorigin": "dest.test",
        "mydestination": "",
        "inet_interfaces": DEST_IP,
        "mynetworks": f"{DEST_IP}/32",
        "virtual_mailbox_domains": "dest.test",
        "virtual_mailbox_maps": "inline:{ full@dest.test=full, known@dest.test=known, "
                                 "grey@dest.test=known, quota@dest.test=known }",
        "virtual_mailbox_base": str(vmail),
        "virtual_mailbox_limit": "40000",
        "virtual_minimum_uid": "1",
        "virtual_uid_maps": "static:65534",
        "virtual_gid_maps": "static:65534",
        "message_size_limit": "30000",
        "unknown_address_reject_code": "550",
        "smtpd_sender_restrictions": "reject_unknown_sender_domain",
        # A greylisting policy and a quota policy answer like this.
        "smtpd_recipient_restrictions": (
            "check_recipient_access inline:{ "
            "{grey@dest.test = 450 4.2.0 Greylisted, see https://greylisting.example.org/help/dest.test.html}, "
            "{quota@dest.test = 552 5.2.2 Mailbox is full / over quota} }, "
            "reject_unauth_destination"),
        "body_checks": "regexp:{ {/^FORBIDDEN-CONTENT-MARKER/ REJECT 5.7.1 Message content rejected by the content filter} }",
        "smtp_dns_support_level": "enabled",
        "maximal_queue_lifetime": "0",
        "bounce_queue_lifetime": "0",
    })
    return inst


def start_postfix(work):
    inst = PostfixInstance(work, "postfix", "127.0.0.1:2525", {
        "myhostname": "mta-postfix.news.test",
        "mydomain": "news.test",
        "myorigin": "news.test",
        "mydestination": "",
        "inet_interfaces": "127.0.0.1",
        "mynetworks": "127.0.0.0/8",
        "transport_maps": f"inline:{{ news.test=smtp:[{CAPTURE_IP}]:25, nodns.test=smtp:[{CAPTURE_IP}]:25 }}",
        "smtp_dns_support_level": "enabled",
        "maximal_queue_lifetime": "0",
        "bounce_queue_lifetime": "0",
        "smtp_connect_timeout": "5s",
        "notify_classes": "",
    })
    return inst, postfix_version()


class ProcessMta:
    def __init__(self, name, popen, log_files, kick_cmd=None):
        self.name, self.popen, self.log_files, self.kick_cmd = name, popen, log_files, kick_cmd

    def kick(self):
        if self.kick_cmd:
            run(self.kick_cmd, check=False)

    def dump(self):
        for f in self.log_files:
            try:
                log(f"--- {f}\n{Path(f).read_text(errors='replace')[-6000:]}")
            except OSError:
                pass

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def exim_binary():
    for p in [MTA_ROOT / "usr/sbin/exim4", Path("/usr/sbin/exim4")]:
        if p.exists():
            return p
    raise SystemExit("exim4 not found; run with --mta including exim from the outside to fetch it")


def start_exim(work):
    exim = exim_binary()
    d = work / "exim"
    (d / "spool").mkdir(parents=True)
    (d / "log").mkdir()
    run(["chown", "-R", "Debian-exim", str(d)])
    # Exim re-executes itself by its compiled-in path unless told otherwise;
    # a setuid copy in the work directory is one every uid can reach.
    binary = d / "exim4"
    shutil.copy2(exim, binary)
    os.chmod(binary, 0o4755)
    exim = binary
    conf = d / "exim.conf"
    conf.write_text(f"""
exim_path = {binary}
keep_environment =
primary_hostname = mta-exim.news.test
qualify_domain = news.test
spool_directory = {d / 'spool'}
log_file_path = {d / 'log'}/%slog
daemon_smtp_ports = {PORTS['exim']}
local_interfaces = <; 127.0.0.1
never_users =
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_check_rcpt
ignore_bounce_errors_after = 0s
timeout_frozen_after = 0s
delay_warning = 0s
trusted_users = root

begin acl
acl_check_rcpt:
  accept

begin routers
capture:
  driver = manualroute
  domains = news.test : nodns.test
  transport = remote_smtp
  route_list = * {CAPTURE_IP}
  self = send
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  no_more

begin transports
remote_smtp:
  driver = smtp
  connect_timeout = 5s
  hosts_try_chunking =
  hosts_try_prdr =

begin retry
*   *   F,1s,1s

begin rewrite
""")
    version = run([str(exim), "-C", str(conf), "-bV"], check=False).stdout.splitlines()
    version = version[0].split(" #")[0].replace("Exim version", "Exim").strip() if version else "Exim"
    p = subprocess.Popen([str(exim), "-C", str(conf), "-bdf", "-q1s", "-oX", str(PORTS["exim"])],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(PORTS["exim"], "exim", p)
    return ProcessMta("exim", p, [d / "log" / "mainlog", d / "log" / "paniclog"],
                      [str(exim), "-C", str(conf), "-qff"]), version


def start_opensmtpd(work):
    smtpd = None
    for p in [MTA_ROOT / "usr/sbin/smtpd", Path("/usr/sbin/smtpd")]:
        if p.exists():
            smtpd = p
            break
    if smtpd is None:
        raise SystemExit("OpenSMTPD's smtpd not found")
    d = work / "opensmtpd"
    spool = d / "spool"
    spool.mkdir(parents=True)
    os.chmod(spool, 0o711)
    # OpenSMTPD's queue and chroot paths are compiled in; inside this
    # script's mount namespace directories of ours cover them (the empty
    # mount points are what its package would create).
    for target, mine in [("/var/spool/smtpd", spool), ("/var/lib/opensmtpd/empty", d / "empty")]:
        Path(target).mkdir(parents=True, exist_ok=True)
        Path(mine).mkdir(parents=True, exist_ok=True)
        run(["mount", "--bind", str(mine), target])
    conf = d / "smtpd.conf"
    conf.write_text(f"""
queue ttl 3s
bounce warn-interval 1h
smtp max-message-size 10M
listen on 127.0.0.1 port {PORTS['opensmtpd']} hostname mta-opensmtpd.news.test
action "capture" relay host smtp://{CAPTURE_IP}:25
action "out" relay
match from any for domain {{ news.test, nodns.test }} action "capture"
match from any for any action "out"
""")
    os.chmod(conf, 0o644)
    logf = d / "smtpd.log"
    out = open(logf, "wb")
    p = subprocess.Popen([str(smtpd), "-d", "-f", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    wait_port(PORTS["opensmtpd"], "opensmtpd", p)
    version = run([str(smtpd), "-h"], check=False).stderr
    v = "OpenSMTPD"
    for line in version.splitlines():
        if line.startswith("version:"):
            v = line.split(":", 1)[1].strip()
    return ProcessMta("opensmtpd", p, [logf]), v


def wait_port(port, name, proc):
    for _ in range(100):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"{name} exited at start ({proc.returncode}): {err}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} never listened on {port}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for the .eml files")
    ap.add_argument("--mta", default="postfix,exim,opensmtpd", help="comma-separated: postfix, exim, opensmtpd")
    ap.add_argument("--keep", action="store_true", help="keep the MTAs' work directory (logs)")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        inside(args)
    else:
        outer(args)


if __name__ == "__main__":
    main()
