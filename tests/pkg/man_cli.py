#!/usr/bin/env python3
"""tillmesh(1) and tillmeshd(8) list what the binaries offer (issue 18).

The binaries are asked, not their sources read: every command under
COMMANDS and every option under GLOBAL OPTIONS of `tillmesh --help`, and
every option of `tillmeshd --help`, must appear in bold (*...*) on the
matching page in docs/man. A command added to the CLI without a line on the
page fails here.

Usage: man_cli.py SOURCE_DIR   (TM_BIN_DIR: the build with the binaries)
"""
import os
import re
import subprocess
import sys

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TM_BIN_DIR", os.path.join(SRC, "build", "asan"))


def bold(page):
    with open(os.path.join(SRC, "docs", "man", page)) as f:
        return set(re.findall(r"\*([^*\s][^*]*)\*", f.read()))


def section(text, start, end):
    m = re.search(rf"^{start}\n(.*?)^{end}", text, re.S | re.M)
    return m.group(1) if m else ""


def main():
    problems = []
    out = subprocess.run([os.path.join(BIN, "tillmesh"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    cmds = re.findall(r"^    ([a-z][a-z-]*)\s", section(out, "COMMANDS", "GLOBAL OPTIONS"), re.M)
    opts = sorted(set(re.findall(r"(--[a-z-]+)", section(out, "GLOBAL OPTIONS", "EXIT STATUS"))))
    if not cmds or not opts:
        problems.append("tillmesh --help: no COMMANDS or GLOBAL OPTIONS section found")
    page = bold("tillmesh.1.scd")
    words = {w.split()[0] for w in page}
    for c in cmds:
        if c not in words:
            problems.append(f"tillmesh(1): command '{c}' (tillmesh --help) is not on the page")
    for o in opts:
        if o not in words:
            problems.append(f"tillmesh(1): option '{o}' (tillmesh --help) is not on the page")
    r = subprocess.run([os.path.join(BIN, "tillmeshd"), "--help"], capture_output=True,
                       text=True, check=True).stdout
    dopts = re.findall(r"^  (?:-\w, )?(--[a-z-]+)", r, re.M)
    if not dopts:
        problems.append("tillmeshd --help: no options found")
    dpage = {w.split()[0] for w in bold("tillmeshd.8.scd")}
    for o in dopts:
        if o not in dpage:
            problems.append(f"tillmeshd(8): option '{o}' (tillmeshd --help) is not on the page")
    if problems:
        print("FAIL: the manual pages miss what the binaries offer:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"man_cli: {len(cmds)} commands, {len(opts)} tillmesh options, "
          f"{len(dopts)} tillmeshd options on their pages")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
