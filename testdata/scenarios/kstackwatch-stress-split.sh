# The reconfiguration phase of kstackwatch-stress.sh alone, split in two
# to tell which half brings the 6.12 failures (a measurement for
# `pipeline stress-rate`, not a fixture): 200 workers run
# test_mthread_victim while, 50 times,
#   kstackwatch-split-full         the watch on it is replaced (as in the
#                                  stress run: probes kept, perf events
#                                  freed and created, catches go on)
#   kstackwatch-split-reconfonly   a watch on a function the workers never
#                                  call is replaced (perf events freed and
#                                  created, no arm, no catch)
#   kstackwatch-split-armedonly    the watch on it is set once and kept
#                                  (arms, catches and retargeting IPIs, no
#                                  perf event created or freed)
#   kstackwatch-split-prelude      full, after the stress run's prelude (a
#                                  config with mw=0 to count the slots,
#                                  then cleared)
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
ksw_load
dmesg -n 1
kv=$(ksw_cfg mthread kv)
pos=$(ksw_cfg mthread pos)
case "$KSW_SCENARIO" in
*-reconfonly)
	kv=$(ksw_cfg silent kv)
	pos=$(ksw_cfg silent pos)
	;;
esac
dmesg -c > /dev/null
case "$KSW_SCENARIO" in
*-prelude)
	ksw_set "$kv mw=0" > /dev/null
	echo > /proc/kstackwatch
	;;
esac
workers=
ksw_workers() {
	if [ -z "$workers" ] || ! kill -0 "$workers" 2> /dev/null; then
		echo "mthread 200 40" > /proc/kstackwatch_test &
		workers=$!
	fi
}
ksw_set "$kv" > /dev/null
i=0
while [ $i -lt 50 ]; do
	echo "ksw-stress: step $i"
	ksw_workers
	case "$KSW_SCENARIO" in
	*-armedonly) sleep 0.3 ;;
	*)
		if [ $((i % 2)) = 0 ]; then c=$kv; else c=$pos; fi
		err=$(ksw_set "$c")
		[ -z "$err" ] || echo "step $i: $err" >> "$OUT/reconfig.err"
		;;
	esac
	dmesg -c >> "$OUT/phase-split.dmesg"
	i=$((i + 1))
done
echo "ksw-stress: waiting for the workers"
wait $workers
grep -E '^(arms|catches|hits):' /proc/kstackwatch > "$OUT/counters"
echo > /proc/kstackwatch
dmesg -c >> "$OUT/phase-split.dmesg"
echo "ksw-scenario: $KSW_SCENARIO done"
