# The cost of kstackwatch's probes: N calls of a probed function without
# probes, with probes that never arm (dp=1: no recursion, so depth 1 is
# never reached), and with probes that arm and disarm on every call.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: kstackwatch-bench on $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
ksw_load
n=20000
ksw_bench() {
	dmesg -c > /dev/null
	[ -n "$2" ] && ksw_set "$2" > "$OUT/bench-$1.err"
	echo "bench $n" > /proc/kstackwatch_test
	cat /proc/kstackwatch > "$OUT/bench-$1.state"
	echo > /proc/kstackwatch
	dmesg -c | grep 'bench calls=' > "$OUT/bench-$1.result"
}
ksw_bench none ""
ksw_bench probes "$(ksw_cfg bench kv | sed 's/dp=0/dp=1/')"
ksw_bench armed "$(ksw_cfg bench kv)"
echo "ksw-scenario: kstackwatch-bench done"
