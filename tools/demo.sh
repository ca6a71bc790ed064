#!/usr/bin/env bash
# The README's run command: installs dependencies, builds Arca, creates a demo instance in
# ./demo, archives the SpamAssassin public corpus (6,046 real messages) into it, runs a few
# searches, creates the user "demo" and runs the instance server (arcad instance) in the
# foreground: IMAP (STARTTLS) on 127.0.0.1:10143, IMAPS on 127.0.0.1:10993 and the JSON API
# over HTTPS on 127.0.0.1:10443 with a self-signed certificate. Ctrl-C stops it.
# Unprivileged ports on loopback on purpose: the Client Access Server (a later issue) is what
# faces the network on 143/993/443. ARCA_LISTEN_HOST=0.0.0.0 listens on every address.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash tools/install-deps.sh
meson setup build -Dbuildtype=release >/dev/null 2>&1 || meson setup build --reconfigure -Dbuildtype=release >/dev/null
ninja -C build >build/ninja.log 2>&1 || { cat build/ninja.log; echo "demo: build failed" >&2; exit 1; }
CORPUS=${ARCA_CORPUS:-$ROOT/demo/corpus}
bash "$ROOT/../shared/corpus/fetch-spamassassin" "$CORPUS" 2>/dev/null || bash tools/fetch-corpus.sh "$CORPUS"
mkdir -p "$ROOT/demo"
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
PWFILE=$ROOT/demo/demo-password
if [ ! -s "$PWFILE" ]; then
	(umask 077; head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$PWFILE")
	"$A" user create demo --full-name "Demo User" --password-stdin <"$PWFILE" >/dev/null
fi
PW=$(cat "$PWFILE")
HOST=${ARCA_LISTEN_HOST:-127.0.0.1}
CERT=$ARCA_BASE/tls/cert.pem
cat <<TXT

Arca demo instance ready.
  base directory : $ARCA_BASE
  instance key   : $ARCA_KEY_FILE
Offline tool (works while the server runs, too):
  export ARCA_BASE=$ARCA_BASE ARCA_KEY_FILE=$ARCA_KEY_FILE
  $A search 'from:example.com subject:meeting'     (query language: docs/search.md)
  $A get 1:42 > message.eml                         (byte-identical original)
  $A verify ; $A --help                              (all commands: docs/cli.md)

Starting the instance server (Ctrl-C stops it). Connect with any IMAP client (read-only):
  IMAPS  $HOST:10993   (or IMAP with STARTTLS on $HOST:10143)
  user   demo
  pass   $PW            (also in $PWFILE)
  TLS    self-signed certificate $CERT (its SHA-256 fingerprint is printed below)
  e.g.   curl --cacert $CERT --resolve localhost:10993:127.0.0.1 -u demo:$PW imaps://localhost:10993/SpamAssassin;UID=1
JSON API (docs/api.md), e.g.:
  curl --cacert $CERT --resolve localhost:10443:127.0.0.1 -u demo:$PW -X POST -d '{"query":"razor"}' https://localhost:10443/api/invoke/Search
TXT
exec "$ROOT/build/src/server/arcad" instance --base "$ARCA_BASE" --key-file "$ARCA_KEY_FILE" \
	--imap "$HOST:10143" --imaps "$HOST:10993" --https "$HOST:10443"
