#!/usr/bin/env bash
# Idle IMAP sessions: the resident memory that 1,000 concurrent, authenticated, idle TLS IMAP
# connections add to one `arcad instance` process (goal: at most 64 MB). Prints the table and
# rewrites the "imap-conns" section of bench/RESULTS.md. Details: bench/README.md.
#
# Usage: bench/imap-conns.sh [--conns N] [--concurrency C] [--settle S] [--corpus DIR]
#                            [--env K=V]...
#   --conns N        connections (default 1000)
#   --concurrency C  logins in flight at a time (default 8: each verifies a 64 MiB Argon2id hash)
#   --settle S       seconds to wait before each reading (default 5)
#   --corpus DIR     .eml files imported into the user's INBOX, which every session then
#                    SELECTs (default: the SpamAssassin corpus in bench/data/spamassassin)
#   --env K=V        environment for arcad (e.g. MALLOC_ARENA_MAX=2); the section is then
#                    "imap-conns-K=V" so that the default run's section stays
# Environment: ARCA_BUILD (build directory, default build/), ARCAD, ARCACTL, BENCH_OUT
#   (default bench/out/imap-conns), NO_RESULTS=1, BENCH_REVISION.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${ARCA_BUILD:-$repo/build}
ARCAD=${ARCAD:-$build/src/server/arcad}
ARCACTL=${ARCACTL:-$build/src/cmd/arcactl}
corpus=${SA_CORPUS:-$here/data/spamassassin}
out=${BENCH_OUT:-$here/out/imap-conns}
cmdline="bench/imap-conns.sh${*:+ $*}"
args=() given= section=imap-conns
while [ $# -gt 0 ]; do
	case $1 in
	--conns | --concurrency | --settle) args+=("$1" "$2"); shift 2 ;;
	--corpus) corpus=$2; given=1; shift 2 ;;
	--env) args+=(--env "$2"); section="$section-$2"; shift 2 ;;
	*) echo "usage: $0 [--conns N] [--concurrency C] [--settle S] [--corpus DIR] [--env K=V]..." >&2; exit 2 ;;
	esac
done
for b in "$ARCAD" "$ARCACTL"; do
	[ -x "$b" ] || { echo "imap-conns.sh: $b not built (meson compile -C build)" >&2; exit 1; }
done
[ -n "$given" ] || bash "$repo/../shared/corpus/fetch-spamassassin" "$corpus"
# one descriptor per connection on both sides (client and arcad inherit this limit)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
args+=(--arcad "$ARCAD" --arcactl "$ARCACTL" --corpus "$corpus" --out "$out" --section "$section"
	--command "$cmdline")
[ -z "${NO_RESULTS:-}" ] || args+=(--no-results)
exec python3 "$here/imap-conns.py" "${args[@]}"
