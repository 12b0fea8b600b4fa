#!/usr/bin/env python3
"""Bounce classification quality on the labelled corpus.

    scripts/bench_bounces.py                       # builds and measures target/debug/whatsup
    scripts/bench_bounces.py --binary PATH         # measures that binary
    scripts/bench_bounces.py --baseline OTHER      # and another, side by side (e.g. main's)
    scripts/bench_bounces.py --verbose             # every row that disagrees

Reads tests/data/bounces/labels.tsv (one row per recipient: file, address,
kind, reason, hard_soft) and runs `whatsup bounces classify --json` on every
file it names. Prints, overall and per part of the corpus (the constructed
samples, the real-MTA bounces in mta/, the hand-written layouts in layouts/):

- recipients found: labelled recipient rows whose address the classifier
  reports, out of all labelled recipient rows;
- hard/soft agreement: rows labelled hard or soft where the classifier
  reports the address as the same (its `hard` is hard; `soft` and `delay`
  are soft; a missing row or any other kind disagrees), out of those rows;
- reason agreement, for information.

Accuracy does not depend on load, but the run times printed do: the
machine may be shared.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "bounces"


def labels():
    rows = []
    for line in (CORPUS / "labels.tsv").read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("file\t"):
            continue
        f, address, kind, reason, hard_soft = line.split("\t")[:5]
        if address == '""':
            address = ""
        rows.append({"file": f, "address": address, "kind": kind, "reason": reason, "hs": hard_soft})
    return rows


def classify(binary, files):
    start = time.perf_counter()
    out = subprocess.run([binary, "bounces", "classify", "--json", *files], cwd=CORPUS,
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    results = {}
    for line in out.stdout.splitlines():
        c = json.loads(line)
        results[c["file"]] = c
    return results, elapsed


def hard_soft(kind):
    return {"hard": "hard", "soft": "soft", "delay": "soft"}.get(kind, kind)


def part(f):
    return f.split("/")[0] if "/" in f else "samples"


def measure(binary, rows, verbose):
    files = sorted({r["file"] for r in rows})
    results, elapsed = classify(binary, files)
    stats = defaultdict(lambda: defaultdict(int))
    misses = []
    for r in rows:
        if r["address"] == "-":
            continue
        got = None
        for rec in results.get(r["file"], {}).get("recipients", []):
            if rec["address"] == r["address"]:
                got = rec
                break
        for key in ("all", part(r["file"])):
            s = stats[key]
            s["rows"] += 1
            s["found"] += got is not None
            if r["hs"] in ("hard", "soft"):
                s["hs_rows"] += 1
                s["hs_agree"] += got is not None and hard_soft(got["kind"]) == r["hs"]
            s["reason_agree"] += got is not None and got["reason"] == r["reason"]
        if got is None or hard_soft(got["kind"]) != hard_soft(r["kind"]) or got["reason"] != r["reason"]:
            misses.append((r, got))
    if verbose:
        for r, got in misses:
            said = f"{got['kind']}/{got['reason']}" if got else "not found"
            print(f"  {r['file']}: {r['address'] or '(redacted)'}: labelled {r['kind']}/{r['reason']}, got {said}")
    return stats, elapsed, len(files)


def ratio(n, d):
    return n / d if d else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="whatsup binary to measure (default: build target/debug/whatsup)")
    ap.add_argument("--baseline", help="another whatsup binary to measure alongside")
    ap.add_argument("--verbose", action="store_true", help="print every row that disagrees")
    args = ap.parse_args()
    binary = args.binary
    if not binary:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        subprocess.run(["cargo", "build", "-q", "--bin", "whatsup"], cwd=ROOT, check=True)
        binary = str(target / "debug" / "whatsup")
    rows = labels()
    runs = [("measured", binary)]
    if args.baseline:
        runs.append(("baseline", args.baseline))
    print(f"bounce corpus: {len(rows)} labelled rows (tests/data/bounces/labels.tsv)")
    figures = {}
    for name, b in runs:
        print(f"== {name}: {b}")
        stats, elapsed, nfiles = measure(b, rows, args.verbose)
        figures[name] = stats["all"]
        for key in ["all", "samples", "mta", "layouts"]:
            s = stats.get(key)
            if not s:
                continue
            print(f"  {key:8} recipients found {ratio(s['found'], s['rows']):.3f} ({s['found']}/{s['rows']})"
                  f"  hard/soft agreement {ratio(s['hs_agree'], s['hs_rows']):.3f} ({s['hs_agree']}/{s['hs_rows']})"
                  f"  reason agreement {ratio(s['reason_agree'], s['rows']):.3f}")
        print(f"  {nfiles} files classified in {elapsed:.2f} s (wall clock, machine possibly shared)")
    if args.baseline:
        m, b = figures["measured"], figures["baseline"]
        print(f"== measured vs baseline: recipients found {ratio(m['found'], m['rows']):.3f} vs "
              f"{ratio(b['found'], b['rows']):.3f}; hard/soft agreement "
              f"{ratio(m['hs_agree'], m['hs_rows']):.3f} vs {ratio(b['hs_agree'], b['hs_rows']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
