#!/usr/bin/env bash
# The README's run command: installs dependencies, builds Arca, creates a demo instance in
# ./demo, archives the SpamAssassin public corpus (6,046 real messages) into it and runs a
# few searches. At this stage Arca is the archive engine with its offline tool, arcactl;
# the servers (instance, host, CAS, management) come with later issues.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash tools/install-deps.sh
meson setup build -Dbuildtype=release >/dev/null 2>&1 || meson setup build --reconfigure -Dbuildtype=release >/dev/null
ninja -C build >build/ninja.log 2>&1 || { cat build/ninja.log; echo "demo: build failed" >&2; exit 1; }
CORPUS=${ARCA_CORPUS:-$ROOT/demo/corpus}
bash "$ROOT/../shared/corpus/fetch-spamassassin" "$CORPUS" 2>/dev/null || bash tools/fetch-corpus.sh "$CORPUS"
export ARCA_BASE=$ROOT/demo/instance ARCA_KEY_FILE=$ROOT/demo/instance.key
A=$ROOT/build/src/cmd/arcactl
if [ ! -f "$ARCA_BASE/instance.db" ]; then
	"$A" init
	"$A" import --archive demo --folder SpamAssassin "$CORPUS"
fi
echo
"$A" stats
for q in 'subject:"free"' 'from:linux.ie' '"spam filter"' 'razor AND -spam' 'has:attachment after:2002-09-01'; do
	echo
	echo "\$ arcactl search --per-page 3 '$q'"
	"$A" search --per-page 3 "$q"
done
cat <<TXT

Arca demo instance ready.
  base directory : $ARCA_BASE
  instance key   : $ARCA_KEY_FILE
Try:
  export ARCA_BASE=$ARCA_BASE ARCA_KEY_FILE=$ARCA_KEY_FILE
  $A search 'from:example.com subject:meeting'     (query language: docs/search.md)
  $A get 1:42 > message.eml                         (byte-identical original)
  $A export --archive demo --format mbox --out demo.mbox
  $A verify
  $A --help                                          (all commands: docs/cli.md)
TXT
