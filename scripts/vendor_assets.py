#!/usr/bin/env python3
"""Vendors the front-end packages named in assets/vendor/vendor.toml.

For each package of the manifest it runs `npm pack NAME@VERSION` in a
temporary directory (npm checks the tarball against the registry's
integrity), checks the tarball's sha512 against the manifest's `integrity`
when one is recorded, copies the listed files into the package's `dir`, and
writes the manifest back with every file's SHA-256.

  - To check that the files in the tree are exactly the published ones:
    scripts/vendor_assets.py --check   (downloads, compares, writes nothing)
  - To upgrade a package: change its `version` in the manifest, empty its
    `integrity`, run scripts/vendor_assets.py, and review the diff.

Nothing here runs at build time or at run time: the binary embeds the files
(src/web/assets.rs), and the test suite recomputes their checksums offline
(`vendored_files_match_their_recorded_checksums`).
"""
import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "assets", "vendor", "vendor.toml")

HEADER = """\
# Front-end code vendored from the npm registry at pinned versions.
#
# Written by scripts/vendor_assets.py: each package's tarball integrity (as
# the registry publishes it) and the SHA-256 of every file copied from it.
# `dir` is relative to the repository. The test
# `vendored_files_match_their_recorded_checksums` recomputes every SHA-256,
# and src/web/assets.rs embeds the files of assets/vendor/ in the binary.
# axe-core is used by the browser tests only and is not embedded.
"""


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sri_sha512(path):
    with open(path, "rb") as f:
        return "sha512-" + base64.b64encode(hashlib.sha512(f.read()).digest()).decode()


def fetch(name, version, into):
    out = subprocess.run(
        ["npm", "pack", "--silent", f"{name}@{version}"],
        cwd=into, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    tarball = os.path.join(into, out)
    with tarfile.open(tarball) as t:
        t.extractall(os.path.join(into, "x"), filter="data")
    return tarball, os.path.join(into, "x", "package")


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(packages):
    lines = [HEADER]
    for p in packages:
        lines.append("[[package]]")
        for key in ("name", "version", "license", "integrity", "dir"):
            lines.append(f"{key} = {quote(p[key])}")
        lines.append("files = [")
        for f in p["files"]:
            lines.append(
                f"    {{ from = {quote(f['from'])}, to = {quote(f['to'])}, "
                f"sha256 = {quote(f['sha256'])} }},"
            )
        lines.append("]")
        lines.append("")
    with open(MANIFEST, "w") as out:
        out.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare the tree with the published files; write nothing")
    args = ap.parse_args()
    with open(MANIFEST, "rb") as f:
        packages = tomllib.load(f)["package"]
    problems = []
    for p in packages:
        with tempfile.TemporaryDirectory() as tmp:
            tarball, unpacked = fetch(p["name"], p["version"], tmp)
            integrity = sri_sha512(tarball)
            if p.get("integrity") and p["integrity"] != integrity:
                problems.append(f"{p['name']}@{p['version']}: tarball integrity {integrity} "
                                f"differs from the manifest's {p['integrity']}")
                continue
            p["integrity"] = integrity
            dest = os.path.join(ROOT, p["dir"])
            for f in p["files"]:
                src = os.path.join(unpacked, f["from"])
                target = os.path.join(dest, f["to"])
                digest = sha256(src)
                if args.check:
                    if not os.path.exists(target) or sha256(target) != digest:
                        problems.append(f"{p['dir']}/{f['to']} differs from {p['name']}@"
                                        f"{p['version']}:{f['from']}")
                    elif f.get("sha256") != digest:
                        problems.append(f"{p['dir']}/{f['to']}: the manifest's sha256 is stale")
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(src, target)
                f["sha256"] = digest
            print(f"{p['name']}@{p['version']}: {len(p['files'])} files, {integrity}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if not args.check:
        write_manifest(packages)
        print(f"wrote {os.path.relpath(MANIFEST, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
