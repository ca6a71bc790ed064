#!/usr/bin/env bash
# IMAP benchmark: arcad side by side with a private Dovecot (Debian's dovecot-imapd) serving a
# Maildir of the same messages, both over TLS on loopback, in one run: mbsync full pull,
# FETCH 1:* metadata, FETCH 1:* BODY.PEEK[], SEARCH TEXT / SUBJECT. Prints the table and
# rewrites the "imap" section of bench/RESULTS.md. Details: bench/README.md.
#
# Usage: bench/imap.sh [--corpus DIR] [--reps N] [--fsync]
#   --corpus DIR   a directory of .eml files (default: the SpamAssassin corpus in
#                  bench/data/spamassassin, fetched once with ../shared/corpus/fetch-spamassassin)
#   --reps N       timed repetitions of each measurement (default 5)
#   --fsync        mbsync with FSync yes (its default; the bench uses FSync no)
# Environment: ARCA_BUILD (build directory, default build/), ARCAD, ARCACTL (binaries; default
#   in ARCA_BUILD), BENCH_OUT (scratch, default bench/out/imap, wiped each run),
#   NO_RESULTS=1 (do not touch RESULTS.md), BENCH_REVISION (revision to record; default the
#   text of $ARCAD.rev if it exists, else git HEAD).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${ARCA_BUILD:-$repo/build}
ARCAD=${ARCAD:-$build/src/server/arcad}
ARCACTL=${ARCACTL:-$build/src/cmd/arcactl}
corpus=${SA_CORPUS:-$here/data/spamassassin}
out=${BENCH_OUT:-$here/out/imap}
reps=5 extra=() given=
cmdline="bench/imap.sh${*:+ $*}"
while [ $# -gt 0 ]; do
	case $1 in
	--corpus) corpus=$2; given=1; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--fsync) extra+=(--fsync); shift ;;
	*) echo "usage: $0 [--corpus DIR] [--reps N] [--fsync]" >&2; exit 2 ;;
	esac
done

need=()
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-imapd)
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	echo "imap.sh: installing ${need[*]}" >&2
	apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
for b in "$ARCAD" "$ARCACTL"; do
	[ -x "$b" ] || { echo "imap.sh: $b not built (meson compile -C build)" >&2; exit 1; }
done
[ -n "$given" ] || bash "$repo/../shared/corpus/fetch-spamassassin" "$corpus"

args=(--arcad "$ARCAD" --arcactl "$ARCACTL" --corpus "$corpus" --reps "$reps" --out "$out"
	--command "$cmdline" "${extra[@]}")
[ -z "${NO_RESULTS:-}" ] || args+=(--no-results)
exec python3 "$here/imap.py" "${args[@]}"
