# Not kstackwatch: ftrace patches a hot function's entry in and out while
# 200 kthreads run it (kstackwatch_test's mthread workers, nothing armed).
# On 6.12 under QEMU TCG a worker can then execute a stale int3 of the
# text patch ("Oops: int3"); `pipeline stress-rate` counts how often.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
insmod /ksw/modules/kstackwatch_test.ko || ksw_fail "insmod kstackwatch_test.ko"
mount -t tracefs tracefs /sys/kernel/tracing || ksw_fail "cannot mount tracefs"
t=/sys/kernel/tracing
echo test_mthread_victim > $t/set_ftrace_filter || ksw_fail "no ftrace filter"
dmesg -n 1
workers=
i=0
while [ $i -lt 50 ]; do
	echo "ksw-tcg: ftrace toggle $i"
	if [ -z "$workers" ] || ! kill -0 "$workers" 2> /dev/null; then
		echo "mthread 200 40" > /proc/kstackwatch_test &
		workers=$!
	fi
	echo function > $t/current_tracer
	echo nop > $t/current_tracer
	dmesg -c >> "$OUT/phase-ftrace.dmesg"
	i=$((i + 1))
done
wait $workers
dmesg -c >> "$OUT/phase-ftrace.dmesg"
echo "ksw-scenario: $KSW_SCENARIO done"
