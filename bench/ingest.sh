#!/usr/bin/env bash
# Ingest benchmark: the SpamAssassin public corpus (6,046 real messages) imported with
# `arcactl import` into a fresh instance, against `notmuch new` indexing the same files.
# Prints the figures and rewrites the "ingest" section of bench/RESULTS.md.
#
# Usage: bench/ingest.sh            (no arguments; environment overrides below)
#   ARCACTL=path     arcactl binary            (default: build/src/cmd/arcactl)
#   SA_CORPUS=dir    where the corpus is kept  (default: bench/data/spamassassin, reused)
#   BENCH_OUT=dir    scratch directory         (default: bench/out/ingest, wiped each run)
#   NO_NOTMUCH=1     skip the notmuch reference
#   NO_RESULTS=1     do not touch bench/RESULTS.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ARCACTL=${ARCACTL:-$repo/build/src/cmd/arcactl}
corpus=${SA_CORPUS:-$here/data/spamassassin}
out=${BENCH_OUT:-$here/out/ingest}

need=()
command -v notmuch >/dev/null 2>&1 || [ -n "${NO_NOTMUCH:-}" ] || need+=(notmuch)
[ -x /usr/bin/time ] || need+=(time)
command -v npm >/dev/null 2>&1 || [ -f "$corpus/.complete" ] || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
	echo "ingest.sh: installing ${need[*]}" >&2
	apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
[ -x "$ARCACTL" ] || { echo "ingest.sh: $ARCACTL not built (meson compile -C build)" >&2; exit 1; }

# 1. corpus
bash "$repo/../shared/corpus/fetch-spamassassin" "$corpus"
shopt -s nullglob
files=("$corpus"/*.eml)
nfiles=${#files[@]}
raw_bytes=$(cat "${files[@]}" | wc -c)
echo "corpus: $nfiles messages, $raw_bytes bytes in $corpus"

rm -rf "$out"
mkdir -p "$out"
warm() { cat "${files[@]}" >/dev/null; }   # both tools read the corpus from the page cache

# 2. arca
base=$out/arca-base
key=$out/arca.key                 # outside the base directory, as docs/cli.md asks
A=("$ARCACTL" --base "$base" --key-file "$key")
"${A[@]}" init >"$out/arca-init.txt" 2>&1 || { cat "$out/arca-init.txt" >&2; exit 1; }
warm
sync
set +e
/usr/bin/time -v -o "$out/arca.time" "${A[@]}" import --archive bench --json --quiet "$corpus" \
	>"$out/arca-import.json" 2>"$out/arca-import.err"
arca_rc=$?
set -e
if [ $arca_rc -ne 0 ]; then
	echo "ingest.sh: arcactl import exited with $arca_rc:" >&2
	head -20 "$out/arca-import.err" >&2
fi
"${A[@]}" stats --json >"$out/arca-stats.json" 2>"$out/arca-stats.err" || true
du -sb "$base" | cut -f1 >"$out/arca-du.txt"
sync

# 3. notmuch (reference)
if [ -z "${NO_NOTMUCH:-}" ]; then
	nm=$out/notmuch
	mkdir -p "$nm/mail/cur" "$nm/mail/new" "$nm/mail/tmp"
	for f in "${files[@]}"; do
		b=${f##*/}
		ln "$f" "$nm/mail/cur/${b%.eml}:2,S" 2>/dev/null || cp "$f" "$nm/mail/cur/${b%.eml}:2,S"
	done
	cat >"$nm/config" <<EOF
[database]
path=$nm/mail
[user]
name=Bench
primary_email=bench@example.com
[new]
tags=unread;inbox;
ignore=
[search]
exclude_tags=
[maildir]
synchronize_flags=false
EOF
	warm
	sync
	set +e
	NOTMUCH_CONFIG=$nm/config /usr/bin/time -v -o "$out/notmuch.time" notmuch new --quiet \
		>"$out/notmuch-new.txt" 2>&1
	nm_rc=$?
	set -e
	[ $nm_rc -eq 0 ] || { echo "ingest.sh: notmuch new exited with $nm_rc" >&2; cat "$out/notmuch-new.txt" >&2; }
	NOTMUCH_CONFIG=$nm/config notmuch count '*' >"$out/notmuch-count.txt" 2>/dev/null || echo 0 >"$out/notmuch-count.txt"
	du -sb "$nm/mail/.notmuch" | cut -f1 >"$out/notmuch-du.txt"
fi

# 4. report
python3 - "$here" "$out" "$nfiles" "$raw_bytes" "$arca_rc" "$ARCACTL" <<'PY'
import json, os, sys
here, out, nfiles, raw, arca_rc, arcactl = sys.argv[1:7]
sys.path.insert(0, here)
import benchlib as B
nfiles, raw, arca_rc = int(nfiles), int(raw), int(arca_rc)

def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None

def num(name):
    try:
        return int(open(os.path.join(out, name)).read().split()[0])
    except (OSError, ValueError, IndexError):
        return None

def sum_key(obj, words):
    """Sums the numbers under keys containing all of `words`, in store-level objects of
    `arcactl stats --json` (whatever its exact shape)."""
    total, found = 0, False
    def walk(o, path):
        nonlocal total, found
        if isinstance(o, dict):
            for k, v in o.items():
                kl = k.lower()
                if isinstance(v, (int, float)) and all(w in kl for w in words) \
                        and "archive" not in path:
                    total += v
                    found = True
                else:
                    walk(v, path + (kl,))
        elif isinstance(o, list):
            for v in o:
                walk(v, path)
    if isinstance(obj, dict) and any(k.lower().startswith("store") for k in obj):
        obj = {k: v for k, v in obj.items() if k.lower().startswith("store")}
    walk(obj, ())
    return total if found else None

imp = load("arca-import.json") or {}
at = B.parse_time_v(os.path.join(out, "arca.time"))
stats = load("arca-stats.json")
nt = B.parse_time_v(os.path.join(out, "notmuch.time"))
nm_count = num("notmuch-count.txt")
arca_n = (imp.get("archived", 0) or 0) + (imp.get("duplicates", 0) or 0)
arca_wall = at.get("wall") or 0
arca_rate = arca_n / arca_wall if arca_wall else None
nm_rate = nfiles / nt["wall"] if nt.get("wall") else None
ratio = arca_rate / nm_rate if arca_rate and nm_rate else None
arca_du = num("arca-du.txt")
nm_du = num("notmuch-du.txt")
content = sum_key(stats, ["stored"]) if stats is not None else None
meta = sum_key(stats, ["meta"]) if stats is not None else None
index = sum_key(stats, ["index"]) if stats is not None else None

def pct(x):
    return "%.0f%% of raw" % (100.0 * x / raw) if x is not None and raw else "n/a"

def fmt(x, f="%.0f"):
    return f % x if x is not None else "n/a"

rows = [
    ("messages", "%d (archived %s, duplicates %s, errors %s, warnings %s)" % (
        arca_n, imp.get("archived", "?"), imp.get("duplicates", "?"), imp.get("errors", "?"),
        imp.get("warnings", "?")), "%s indexed" % fmt(nm_count)),
    ("wall time", fmt(arca_wall, "%.2f s") + " (arcactl's own: %s)" % fmt(imp.get("seconds"), "%.2f s"),
     fmt(nt.get("wall"), "%.2f s")),
    ("rate", fmt(arca_rate, "%.0f msgs/s"), fmt(nm_rate, "%.0f msgs/s")),
    ("CPU user+sys", fmt((at.get("user", 0) + at.get("sys", 0)) if at else None, "%.2f s"),
     fmt((nt.get("user", 0) + nt.get("sys", 0)) if nt else None, "%.2f s")),
    ("peak RSS", B.human(at["rss"]) if "rss" in at else "n/a",
     B.human(nt["rss"]) if "rss" in nt else "n/a"),
    ("on disk (du)", "%s (%s)" % (B.human(arca_du), pct(arca_du)) if arca_du else "n/a",
     "%s (%s)" % (B.human(nm_du), pct(nm_du)) if nm_du else "n/a"),
    ("  content (stats)", "%s (%s)" % (B.human(content), pct(content)) if content is not None else "n/a", ""),
    ("  metadata (stats)", "%s (%s)" % (B.human(meta), pct(meta)) if meta is not None else "n/a", ""),
    ("  index (stats)", "%s (%s)" % (B.human(index), pct(index)) if index is not None else "n/a", ""),
]
lines = []
lines.append("## Ingest: SpamAssassin corpus, arcactl import vs notmuch new")
lines.append("")
lines.append("- date: %s; revision: %s" % (B.now(), B.revision(arcactl)))
lines.append("- machine: %s" % B.machine())
lines.append("- command: `bench/ingest.sh` (arcactl: `%s`)" % os.path.relpath(arcactl, os.path.dirname(here)))
lines.append("- corpus: %d messages, %s raw (%d bytes), page cache warm for both tools" % (
    nfiles, B.human(raw), raw))
if arca_rc:
    lines.append("- **arcactl import exited with status %d** (see bench/out/ingest/arca-import.err)" % arca_rc)
lines.append("")
lines.append("| | arca (`arcactl import`) | notmuch (`notmuch new`) |")
lines.append("| --- | --- | --- |")
for r in rows:
    lines.append("| %s | %s | %s |" % r)
lines.append("")
lines.append("ratio arca/notmuch (msgs/s): %s" % fmt(ratio, "%.2f"))
if stats is not None:
    lines.append("")
    lines.append("`arcactl stats --json`:")
    lines.append("")
    lines.append("```json")
    lines.append(json.dumps(stats, indent=None)[:3000])
    lines.append("```")
text = "\n".join(lines) + "\n"
print(text)
open(os.path.join(out, "section.md"), "w").write(text)
PY
if [ -z "${NO_RESULTS:-}" ]; then
	python3 "$here/benchlib.py" section ingest "$out/section.md"
	echo "ingest.sh: wrote the ingest section of $here/RESULTS.md"
fi
