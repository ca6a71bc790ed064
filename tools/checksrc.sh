#!/usr/bin/env bash
# Enforces docs/CODE_STYLE.md mechanically: no trailing whitespace, no CRLF,
# lines at most 120 columns (tab = 8), every public function in a header carries
# the arca_ prefix, header guards present.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'fuzz/*.c' 2>/dev/null)
[ -z "$files" ] && files=$(find src tests/unit fuzz -name '*.[ch]')
for f in $files; do
	[ -f "$f" ] || continue
	awk -v f="$f" '
		/\r$/ { printf "%s:%d: CRLF line ending\n", f, NR; bad=1 }
		/[ \t]+$/ { printf "%s:%d: trailing whitespace\n", f, NR; bad=1 }
		{
			line=$0; col=0
			for (i = 1; i <= length(line); i++) {
				c = substr(line, i, 1)
				if (c == "\t") col = int(col / 8) * 8 + 8; else col++
			}
			if (col > 120) { printf "%s:%d: line longer than 120 columns (%d)\n", f, NR, col; bad=1 }
		}
		END { exit bad }' "$f" || bad=1
	case "$f" in
	src/*.h)
		grep -q '#ifndef ARCA_' "$f" || { echo "$f: missing ARCA_ header guard"; bad=1; }
		# public function declarations must be prefixed
		# (a folder's internal header, *_int.h, may use the folder's short prefix instead)
		prefixes='arca_|inst_'
		case "$f" in *_int.h) prefixes='arca_|inst_|store_|imapd_|api_|msg_|users_|ix_' ;; esac
		grep -nE '^[a-z_][a-z0-9_ \*]*[ \*]([a-z][a-z0-9_]*)\(' "$f" | grep -vE "[ \*]($prefixes)[a-z0-9_]*\(" |
			sed "s|^|$f: public name without arca_ prefix: |" | grep . && bad=1
		;;
	esac
done
if [ "$bad" -ne 0 ]; then
	echo "checksrc: style problems found (see docs/CODE_STYLE.md)"
	exit 1
fi
echo "checksrc: ok"
