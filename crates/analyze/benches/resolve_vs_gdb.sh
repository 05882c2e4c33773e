#!/usr/bin/env bash
# Side-by-side: `ksw resolve` against `gdb -batch -ex 'info scope FUNC'` on
# the same debug vmlinux. Prints wall time and peak RSS of each run and the
# median of each side. Needs a release build (`cargo build --release -p ksw`),
# GNU time and gdb.
#
# usage: resolve_vs_gdb.sh [VMLINUX] [FUNC] [VAR] [RUNS]
set -euo pipefail
cache=${KSW_CACHE:-$HOME/.cache/ksw}
vmlinux=${1:-$(ls "$cache"/kernels/6.1/root/usr/lib/debug/boot/vmlinux-* | head -1)}
func=${2:-ksys_write}
var=${3:-}
runs=${4:-5}
here=$(cd "$(dirname "$0")/../../.." && pwd)
ksw=$here/target/release/ksw
[ -x "$ksw" ] || { echo "build first: cargo build --release -p ksw" >&2; exit 2; }
if [ -n "$var" ]; then args=("$func" "$var"); else args=("$func" --canary); fi

measure() { # label, command...
	local label=$1; shift
	local stats
	stats=$(mktemp)
	for _ in $(seq "$runs"); do
		/usr/bin/time -o "$stats" -f "%e %M" "$@" >/dev/null 2>&1 || true
		echo "$label $(tail -1 "$stats")"
	done
	rm -f "$stats"
}
{
	measure ksw "$ksw" resolve --vmlinux "$vmlinux" "${args[@]}"
	measure gdb gdb -batch -nx -ex "info scope $func" "$vmlinux"
} | sort -k1,1 -k2,2n | awk '
	{ printf "%-4s wall %6.2f s  rss %7d KB\n", $1, $2, $3
	  w[$1, ++n[$1]] = $2; if ($3 > rss[$1]) rss[$1] = $3 }
	END {
		for (k in n) {
			med[k] = w[k, int((n[k] + 1) / 2)]
			printf "%s: median wall %.2f s, peak RSS %d KB\n", k, med[k], rss[k]
		}
		if (med["ksw"] > 0) printf "gdb/ksw: wall x%.0f, RSS x%.1f\n", med["gdb"] / med["ksw"], rss["gdb"] / rss["ksw"]
	}'
