#!/usr/bin/env python3
"""tillmeshd.conf(5) and the config parser agree (issue 18).

The keys come from two places that must not drift apart: the manual page
source (docs/man/tillmeshd.conf.5.scd) and the parser in node/config.c. The
page is read as written ("## [SECTION]" headings, "*KEY* = _VALUE_" lines,
"Default:" and "Range: LO to HI" in each entry). The parser is not read as
text, it is asked: every identifier-like string literal of the config
module (node/config.c, found by file name) is offered, as a section and as a
key, to the tillmeshd built from the same tree (`tillmeshd -n` reports every unknown setting with its line), so a key
added however the parser is rearranged is found, and a literal that is not a
key costs nothing. Then every documented range is checked at its bounds
(LO and HI accepted, LO-1 and HI+1 refused) and every key the parser reads
as a whole number must have a range on the page.

Usage: man_config.py SOURCE_DIR   (TM_BIN_DIR: the build with tillmeshd)
"""
import os
import re
import subprocess
import sys
import tempfile

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TM_BIN_DIR", os.path.join(SRC, "build", "asan"))
TILLMESHD = os.path.join(BIN, "tillmeshd")
PAGE = os.path.join(SRC, "docs", "man", "tillmeshd.conf.5.scd")
NONCE = "zz_not_a_key_q7"


def read_page():
    """{section: {key: entry text}}; a section with no key lines is free-form."""
    sections, sec, key = {}, None, None
    with open(PAGE) as f:
        for line in f:
            m = re.match(r"^## \[([a-z0-9_]+)\]\s*$", line)
            if m:
                sec, key = m.group(1), None
                sections.setdefault(sec, {})
                continue
            if line.startswith("#"):
                sec = key = None
                continue
            m = re.match(r"^\*([a-z0-9_]+)\* = ", line)
            if m and sec:
                key = m.group(1)
                assert key not in sections[sec], f"page: [{sec}] {key} twice"
                sections[sec][key] = ""
            elif key and sec:
                sections[sec][key] += line
    return sections


def run_check(lines):
    """Runs tillmeshd -n on a file of lines; returns {line number: [errors]}."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "probe.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([TILLMESHD, "-n", "-c", path], capture_output=True, text=True,
                           timeout=120)
    errs = {}
    for m in re.finditer(r"probe\.conf:(\d+): (.*)", r.stderr):
        errs.setdefault(int(m.group(1)), []).append(m.group(2))
    return errs


def parser_keys(sections, keys):
    """{section: set of keys, or None for a section that takes any key}."""
    found = {}
    # A few sections per file: the parser refuses files over 1 MiB.
    for i in range(0, len(sections), 16):
        lines, where = [], {}
        for s in sections[i:i + 16]:
            lines.append(f"[{s}]")
            for k in keys + [NONCE]:
                lines.append(f"{k} = 1")
                where[len(lines)] = (s, k)
        errs = run_check(lines)
        for n, (s, k) in where.items():
            if not any(e.startswith("unknown setting") for e in errs.get(n, [])):
                found.setdefault(s, set()).add(k)
    return {s: (None if NONCE in ks else ks) for s, ks in found.items()}


def main():
    if not os.access(TILLMESHD, os.X_OK):
        print(f"FAIL: no tillmeshd in {BIN} (set TM_BIN_DIR)")
        return 1
    # Candidates: every literal of the config module, wherever it lives
    # (node/config.c today; found by name so that a move does not blind the
    # test). The page's own names are candidates too, so a documented key
    # the parser lacks is reported.
    keys = set()
    files = []
    for d, dirs, names in os.walk(SRC):
        dirs[:] = [x for x in dirs if x not in ("build", "tests", ".git", "debian")
                   and not x.startswith("obj-")]
        files += [os.path.join(d, n) for n in names
                  if re.fullmatch(r"(tm_)?config\w*\.[ch]", n)]
    if not files:
        print(f"FAIL: no config*.c under {SRC}: where did the parser go?")
        return 1
    for path in files:
        with open(path) as f:
            keys |= set(re.findall(r'"([a-z][a-z0-9_]*)"', f.read()))
    sections = set(keys)
    page = read_page()
    for k in page.values():
        keys |= set(k)
    sections |= set(page)
    parsed = parser_keys(sorted(sections), sorted(keys))
    problems = []
    for s in sorted(set(parsed) | set(page)):
        if s not in page:
            problems.append(f"section [{s}] is read by the parser but has no '## [{s}]' on the page")
            continue
        if s not in parsed:
            problems.append(f"section [{s}] is on the page but the parser does not read it")
            continue
        if parsed[s] is None:  # free-form, like [peers]
            if page[s]:
                problems.append(f"[{s}] takes any key but the page lists fixed keys")
            continue
        for k in sorted(parsed[s] - set(page[s])):
            problems.append(f"[{s}] {k}: accepted by the parser, missing from the page")
        for k in sorted(set(page[s]) - parsed[s]):
            problems.append(f"[{s}] {k}: on the page, unknown to the parser")
    # Defaults and ranges, at the bounds, on the real parser.
    lines, expect = [], {}
    for s, keys in sorted(page.items()):
        if not keys or parsed.get(s) is None:
            continue
        lines.append(f"[{s}]")
        for k, text in sorted(keys.items()):
            flat = " ".join(text.split())
            if "Default:" not in flat:
                problems.append(f"[{s}] {k}: no 'Default:' on the page")
            rng = re.search(r"Range: (\d+) to (\d+)\.", flat)
            lines.append(f"{k} = x")
            expect[len(lines)] = (s, k, "x", "word" if not rng else "bad")
            if not rng:
                continue
            lo, hi = int(rng.group(1)), int(rng.group(2))
            dm = re.search(r"Default: (?:[^.]*?\()?(\d+)\)?\.", flat)
            if dm and not lo <= int(dm.group(1)) <= hi:
                problems.append(f"[{s}] {k}: default {dm.group(1)} outside {lo} to {hi}")
            for v, ok in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
                if v < 0:
                    continue
                lines.append(f"{k} = {v}")
                expect[len(lines)] = (s, k, str(v), "good" if ok else "bad")
    errs = run_check(lines)
    for n, (s, k, v, want) in sorted(expect.items()):
        got = [e for e in errs.get(n, []) if k in e]
        if want == "good" and got:
            problems.append(f"[{s}] {k} = {v}: in the page's range but refused: {got[0]}")
        elif want == "bad" and not got:
            problems.append(f"[{s}] {k} = {v}: outside the page's range but accepted")
        elif want == "word" and any("whole number" in e for e in got):
            problems.append(f"[{s}] {k}: the parser wants a number; give 'Range: LO to HI.'")
    nkeys = sum(len(k) for k in page.values())
    if problems:
        print(f"FAIL: {PAGE} and node/config.c disagree:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"man_config: {nkeys} keys in {len(page)} sections agree, "
          f"{sum(1 for e in expect.values() if e[3] != 'word')} bounds checked")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
