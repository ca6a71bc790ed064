#!/usr/bin/env bash
# Search benchmark: a generated corpus (default 1,000,000 messages of ~4 KB) imported into one
# archive, then a fixed set of queries timed in one process per order with `arcactl search-bench`
# (newest first and --relevance). Prints the figures and rewrites the "search-N" section of
# bench/RESULTS.md.
#
# Usage: bench/search.sh [--count N] [--avg-size BYTES] [--seed S] [--runs R] [--fresh]
#   --count N       messages to generate (default 1000000)
#   --avg-size B    average message size (default 4000: 1M messages = ~4 GB of mbox; the
#                   75 KB "reference sizing" average would need ~75 GB and hours to generate)
#   --seed S        generator seed (default 1)
#   --runs R        timed runs per query and order (default 5; one untimed warm-up run first)
#   --fresh         regenerate the corpus and re-import even if bench/data/ has them
# Environment: ARCACTL (default build/src/cmd/arcactl), BENCH_DATA (default bench/data),
#   NO_RESULTS=1 (do not touch RESULTS.md), BENCH_REVISION (revision to record; default: the
#   text of $ARCACTL.rev if it exists, else git HEAD; set it when ARCACTL is a copied binary).
# Reuse: the corpus (bench/data/search-N-A-sS.mbox + .json manifest) and the imported instance
# (bench/data/search-N-A-sS.arca/ + .key + import.json) are kept and reused by later runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ARCACTL=${ARCACTL:-$repo/build/src/cmd/arcactl}
data=${BENCH_DATA:-$here/data}
count=1000000 avg=4000 seed=1 runs=5 fresh=
while [ $# -gt 0 ]; do
	case $1 in
	--count) count=$2; shift 2 ;;
	--avg-size) avg=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--fresh) fresh=1; shift ;;
	*) echo "usage: $0 [--count N] [--avg-size B] [--seed S] [--runs R] [--fresh]" >&2; exit 2 ;;
	esac
done
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null 2>&1 ||
	{ apt-get update >/dev/null && apt-get install -y time >/dev/null; }
[ -x "$ARCACTL" ] || { echo "search.sh: $ARCACTL not built (meson compile -C build)" >&2; exit 1; }

name=search-$count-$avg-s$seed
mbox=$data/$name.mbox
base=$data/$name.arca
key=$data/$name.key
mkdir -p "$data"

# 1. corpus (one mboxrd file: creating a million small files costs ~1 ms each on this
#    machine's ext4, which would measure the file system rather than the archiver)
if [ -n "$fresh" ] || [ ! -f "$mbox.json" ]; then
	rm -f "$mbox" "$mbox.json"
	rm -rf "$base" "$key" "$base.import.json"
	echo "search.sh: generating $count messages (avg $avg B) -> $mbox" >&2
	python3 "$here/gen-corpus.py" --count "$count" --avg-size "$avg" --seed "$seed" \
		--format mbox --out "$mbox"
fi

# 2. import (timed once; reused afterwards)
if [ ! -f "$base.import.json" ]; then
	rm -rf "$base" "$key"
	"$ARCACTL" --base "$base" --key-file "$key" init >"$base.init.txt" 2>&1 ||
		{ cat "$base.init.txt" >&2; exit 1; }
	echo "search.sh: importing $mbox (progress on stderr)" >&2
	sync
	/usr/bin/time -v -o "$base.import.time" \
		"$ARCACTL" --base "$base" --key-file "$key" import --archive bench --folder INBOX \
		--format mbox --json "$mbox" >"$base.import.out" &
	tpid=$!
	# time -v's peak RSS counts the mapped mbox pages too: also sample the anonymous memory;
	# and the load average every 30 s (other work on the machine slows the import down)
	peak=0 tick=0
	: >"$base.load"
	while kill -0 $tpid 2>/dev/null; do
		[ $((tick % 30)) -eq 0 ] && echo "$(date +%T) $(cat /proc/loadavg)" >>"$base.load"
		tick=$((tick + 1))
		for c in $(pgrep -P $tpid); do
			a=$(awk '/^RssAnon:/{print $2}' /proc/$c/status 2>/dev/null || true)
			[ "${a:-0}" -gt "$peak" ] && peak=$a
		done
		sleep 1
	done
	wait $tpid
	echo $((peak * 1024)) >"$base.rssanon"
	"$ARCACTL" --base "$base" --key-file "$key" stats --json >"$base.stats.json" || true
	du -sb "$base" | cut -f1 >"$base.du"
	mv "$base.import.out" "$base.import.json"
fi

# 3. queries
args=(--arcactl "$ARCACTL" --base "$base" --key-file "$key" --seed "$seed" --runs "$runs"
	--manifest "$mbox.json" --import "$base.import.json" --import-time "$base.import.time"
	--stats "$base.stats.json" --du "$base.du" --rss-anon "$base.rssanon" --import-load "$base.load"
	--command "bench/search.sh --count $count --avg-size $avg --seed $seed --runs $runs")
[ -n "${NO_RESULTS:-}" ] && args+=(--no-results)
python3 "$here/search.py" "${args[@]}"
