# Not kstackwatch: one of the kernel's own perf breakpoints on the stack
# words that interrupt entry pushes onto, a few seconds at a time, then
# idle (kstackwatch_test's irqentry scenario). Under QEMU TCG this alone
# stops a vCPU; `pipeline stress-rate` counts how often.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
insmod /ksw/modules/kstackwatch_test.ko || ksw_fail "insmod kstackwatch_test.ko"
for i in 1 2 3 4 5; do
	echo "ksw-tcg: irqentry round $i"
	echo "irqentry 3" > /proc/kstackwatch_test
	dmesg -c >> "$OUT/phase-irqentry.dmesg"
done
echo "ksw-scenario: $KSW_SCENARIO done"
