# Not kstackwatch: four of the kernel's own perf breakpoints held on words
# nobody writes (kstackwatch_test's drhold scenario) while 200 kthreads
# are created and run again and again, as in the stress run, nothing
# armed by kstackwatch. The 6.12 stress failures died right after a
# cmpxchg16b in SLUB's allocation path with impossible RFLAGS (reserved
# bits set); `pipeline stress-rate` counts how often this alone fails.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
insmod /ksw/modules/kstackwatch_test.ko || ksw_fail "insmod kstackwatch_test.ko"
dmesg -n 1
echo "drhold 60" > /proc/kstackwatch_test &
hold=$!
sleep 1
i=0
while [ $i -lt 10 ]; do
	echo "ksw-tcg: drhold workers $i"
	echo "mthread 200 20" > /proc/kstackwatch_test
	dmesg -c >> "$OUT/phase-drhold.dmesg"
	i=$((i + 1))
done
wait $hold
dmesg -c >> "$OUT/phase-drhold.dmesg"
echo "ksw-scenario: $KSW_SCENARIO done"
