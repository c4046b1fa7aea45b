#!/bin/sh
# No include cycles between our .c files (issue 14): if a.c calls into b.c,
# b.c must not call back into a.c, directly or through other files. A cycle
# is what api.c/api_routes.c and daemon.c/backend.c/discover.c had: files
# calling each other both ways through one shared header, which a newcomer
# can only read all at once.
#   scripts/check-includes.sh [SOURCE_DIR]     (default .)
#   TM_INCLUDE_MAP=1 scripts/check-includes.sh  also prints every edge,
#       "a.c -> b.c (header: function)": who calls whom, for a newcomer.
# Checks the .c and .h files of $TM_INCLUDE_DIRS (default: node core storage
# record common). Needs universal-ctags.
#
# The graph, and how headers count:
# - Nodes are .c files. a.c -> b.c when a.c includes a header (directly or
#   through the headers it includes) that declares a function b.c defines,
#   AND a.c names that function (a call, or its address taken). Including a
#   header alone is no edge: every file of tm_api includes tm_api.h, whose
#   functions api.c defines, and that is no cycle. Calls are what bind.
# - A header belongs to the .c files that define what it declares; a header
#   declaring functions of several files makes each a target. A header
#   that declares no function (types, constants) belongs to nobody.
# - *_int.h headers count like any other: the functions they declare
#   belong to the .c that defines each. So files sharing an _int.h's struct
#   layout are not a cycle for that (daemon_int.h: daemon.c, housekeep.c,
#   notify.c), but files calling each other's _int.h functions both ways
#   are (api_int.h before api_reply.c).
# - A function defined in several files (alternatives, sd_none.c and
#   sd_systemd.c) makes an edge to each, but never from one to the other.
# - Names in string literals count as uses (rare; fix the string).
#
# Known cycles outside node/, left for their owners (issue 14), are listed
# in KNOWN: a strongly connected set of files that lies wholly within one
# known group is reported as known and passes; any other fails, naming a
# cycle with the header and function of every step. Groups are separated by
# ';', files in a group by spaces (shell patterns allowed).
set -eu
SRC=${1:-.}
DIRS=${TM_INCLUDE_DIRS:-"node core storage record common"}
KNOWN=${TM_INCLUDE_KNOWN-"storage/*.c; core/fwd.c core/fwd_catalogue.c"}
if ! ctags --version 2>/dev/null | grep -q 'Universal Ctags'; then
    echo "check-includes: universal-ctags not found (scripts/deps.sh installs it)" >&2
    exit 2
fi
cd "$SRC"
tmp=$(mktemp -d /tmp/tm-includes-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for d in $DIRS; do
    test ! -d "$d" || find "$d" -maxdepth 1 -name '*.[ch]'
done | sort >"$tmp/files"
if [ ! -s "$tmp/files" ]; then
    echo "check-includes: no sources under $DIRS in $(pwd)" >&2
    exit 2
fi
grep '\.c$' "$tmp/files" >"$tmp/cfiles" || true
grep '\.h$' "$tmp/files" >"$tmp/hfiles" || true

# "file header": #include "x.h" resolved next to the file, else in DIRS
# (as the build's include path does); system and generated headers are
# outside the graph.
while read -r f; do
    dir=$(dirname "$f")
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
        while read -r inc; do
            if [ -f "$dir/$inc" ]; then
                echo "$f $dir/$inc"
                continue
            fi
            for d in $DIRS; do
                if [ -f "$d/$inc" ]; then
                    echo "$f $d/$inc"
                    break
                fi
            done
        done
done <"$tmp/files" >"$tmp/inc"
# "function header" declared; "function file" defined (not static).
xargs ctags -x --kinds-C=p --language-force=C <"$tmp/hfiles" | awk '{ print $1, $4 }' >"$tmp/decl"
xargs ctags -x --kinds-C=f --language-force=C <"$tmp/cfiles" |
    awk '$5 != "static" { print $1, $4 }' >"$tmp/def"
# "file name": every identifier a .c names outside comments.
while read -r c; do
    awk '
        # Drops /* */ and // comments; string and character literals are
        # kept (a comment opener inside one is not a comment).
        {
            out = ""
            n = length($0)
            for (i = 1; i <= n; i++) {
                ch = substr($0, i, 1)
                two = substr($0, i, 2)
                if (incom) {
                    if (two == "*/") { incom = 0; i++ }
                    continue
                }
                if (quote != "") {
                    out = out ch
                    if (ch == "\\") { out = out substr($0, i + 1, 1); i++ }
                    else if (ch == quote) quote = ""
                    continue
                }
                if (two == "/*") { incom = 1; i++; continue }
                if (two == "//") break
                if (ch == "\"" || ch == "\047") quote = ch
                out = out ch
            }
            quote = ""
            print out
        }' "$c" | grep -o '[A-Za-z_][A-Za-z0-9_]*' | sort -u | sed "s|^|$c |"
done <"$tmp/cfiles" >"$tmp/uses"

awk -v known="$KNOWN" -v map="${TM_INCLUDE_MAP:-}" '
    FILENAME == ARGV[1] { inc[$1] = inc[$1] " " $2; next }
    FILENAME == ARGV[2] { decl[$2] = decl[$2] " " $1; next }
    FILENAME == ARGV[3] { defs[$1] = defs[$1] " " $2; defines[$2 SUBSEP $1] = 1; next }
    FILENAME == ARGV[4] { uses[$1 SUBSEP $2] = 1; next }
    { cs[++nc] = $1; cidx[$1] = nc }
    # Shell pattern (only * and ?) to an anchored regex.
    function glob_re(p) {
        gsub(/[.+^$(){}|\[\]\\]/, "\\\\&", p)
        gsub(/\*/, "[^/]*", p)
        gsub(/\?/, "[^/]", p)
        return "^" p "$"
    }
    function group_of(f,   g, j, n, pats) {
        for (g = 1; g <= ngroups; g++) {
            n = split(groups[g], pats, " ")
            for (j = 1; j <= n; j++)
                if (f ~ glob_re(pats[j]))
                    return g
        }
        return 0
    }
    END {
        ngroups = split(known, groups, ";")
        # Edges, with the header and function that make each.
        for (i = 1; i <= nc; i++) {
            c = cs[i]
            split("", seen)
            nq = 0
            n = split(inc[c], a, " ")
            for (j = 1; j <= n; j++)
                if (!(a[j] in seen)) { seen[a[j]] = 1; q[++nq] = a[j] }
            for (h = 1; h <= nq; h++) {
                n = split(inc[q[h]], a, " ")
                for (j = 1; j <= n; j++)
                    if (!(a[j] in seen)) { seen[a[j]] = 1; q[++nq] = a[j] }
            }
            for (h = 1; h <= nq; h++) {
                nf = split(decl[q[h]], fs, " ")
                for (j = 1; j <= nf; j++) {
                    f = fs[j]
                    if (!((c SUBSEP f) in uses) || ((c SUBSEP f) in defines))
                        continue
                    nd = split(defs[f], ds, " ")
                    for (k = 1; k <= nd; k++) {
                        t = ds[k]
                        if (!(t in cidx) || t == c || ((cidx[c], cidx[t]) in edge))
                            continue
                        edge[cidx[c], cidx[t]] = 1
                        why[cidx[c], cidx[t]] = q[h] ": " f
                        if (map != "")
                            print c " -> " t " (" q[h] ": " f ")"
                    }
                }
            }
        }
        # Reachability (Warshall; a few hundred files at most).
        for (i = 1; i <= nc; i++)
            for (j = 1; j <= nc; j++)
                if ((i, j) in edge)
                    reach[i, j] = 1
        for (k = 1; k <= nc; k++)
            for (i = 1; i <= nc; i++)
                if ((i, k) in reach)
                    for (j = 1; j <= nc; j++)
                        if ((k, j) in reach)
                            reach[i, j] = 1
        bad = 0
        for (i = 1; i <= nc; i++) {
            if (done[i] || !((i, i) in reach))
                continue
            # Its strongly connected set: the files on a cycle with it.
            members = ""
            g = group_of(cs[i])
            ok = g > 0
            for (j = 1; j <= nc; j++)
                if (j == i || (((i, j) in reach) && ((j, i) in reach))) {
                    done[j] = 1
                    members = members " " cs[j]
                    if (group_of(cs[j]) != g)
                        ok = 0
                }
            if (ok) {
                print "known cycle (issue 14, allowed for now):" members
                continue
            }
            bad = 1
            # One cycle through cs[i], shortest first (breadth-first back to i).
            split("", prev)
            split("", visited)
            nq = 1
            q[1] = i
            found = 0
            for (h = 1; h <= nq && !found; h++) {
                u = q[h]
                for (v = 1; v <= nc && !found; v++) {
                    if (!((u, v) in edge))
                        continue
                    if (v == i) { last = u; found = 1; break }
                    if ((v in visited) || !((v, i) in reach))
                        continue
                    visited[v] = 1
                    prev[v] = u
                    q[++nq] = v
                }
            }
            path = ""
            v = i
            u = last
            while (1) {
                path = " -> " cs[v] " (" why[u, v] ")" path
                if (u == i)
                    break
                v = u
                u = prev[u]
            }
            print "CYCLE: " cs[i] path
            print "  files on cycles with it:" members
        }
        exit bad
    }' "$tmp/inc" "$tmp/decl" "$tmp/def" "$tmp/uses" "$tmp/cfiles" && rc=0 || rc=$?
if [ "$rc" != 0 ]; then
    echo "check-includes: a .c calls back into a file that calls it: give the callee a narrow" \
        "interface (its own header, a context struct or callbacks) so calls go one way" >&2
    exit 1
fi
echo "no include cycles: $(wc -l <"$tmp/cfiles") .c files under $DIRS"
