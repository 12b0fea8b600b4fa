"""Helpers the benchmark scripts share: a free loopback port, running a
command with its wall time and peak RSS, a scratch database per run,
smtp-sink on loopback, and wrk's requests/s and p99."""

import os
import re
import socket
import subprocess
import sys
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, env=None, cwd=None):
    """Runs cmd to the end; returns (seconds, peak RSS in MiB, stdout).
    Exits the script with the command's stderr if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed ({code}): {' '.join(cmd)}\n{proc.stderr.read().decode(errors='replace')}")
    return elapsed, usage.ru_maxrss / 1024, out.decode(errors="replace")


def whatsup_env(work, pg_url, dbname):
    """The environment for a whatsup run in `work`, with no WHATSUP_ setting
    inherited: its database is a fresh PostgreSQL database `dbname` on
    pg_url's server (created here), or SQLite in `work` when pg_url is None.
    Returns (env, name of the database to drop afterwards or None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSUP_")}
    env["WHATSUP_GENERAL_DATA_DIR"] = work
    if pg_url:
        subprocess.run(["psql", pg_url, "-qc", f"CREATE DATABASE {dbname}"], check=True,
                       stdout=subprocess.DEVNULL)
        env["WHATSUP_DATABASE_URL"] = pg_url.rsplit("/", 1)[0] + "/" + dbname
        return env, dbname
    env["WHATSUP_DATABASE_URL"] = f"sqlite://{os.path.join(work, 'whatsup.db')}"
    return env, None


def drop_database(pg_url, dbname):
    """Drops a database whatsup_env made (nothing if dbname is None)."""
    if dbname:
        subprocess.run(["psql", pg_url, "-qc", f"DROP DATABASE IF EXISTS {dbname}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_sink(port, dump_dir=None):
    """Starts smtp-sink on 127.0.0.1:port (as `nobody` when root), dumping
    each message into dump_dir when given; returns once it listens."""
    cmd = ["smtp-sink"]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
        if dump_dir:
            os.chmod(dump_dir, 0o777)
    if dump_dir:
        cmd += ["-d", f"{dump_dir}/%Y%m%d%H%M%S."]
    cmd += [f"127.0.0.1:{port}", "1024"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.02)
    sys.exit("smtp-sink did not start")


def wrk_rps(url, args, headers=(), script=None):
    """Runs wrk against url with args.threads, args.connections and
    args.duration (and `-H` headers, a Lua script); returns (requests/s,
    p99 in ms). Exits the script if any answer was not 2xx or 3xx."""
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"wrk saw {non2xx.group(1)} error responses from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    return rps, float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
