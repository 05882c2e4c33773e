# kstackwatch.ko under kernel lockdown. Booted with lockdown=integrity
# (run kstackwatch-lockdown-boot), the kernel itself refuses the unsigned
# module, so nothing can be armed. Booted without it (run
# kstackwatch-lockdown), the module loads and lockdown is raised at run
# time: "integrity" still allows kprobes and kernel breakpoints, as it does
# for tracefs and perf, and "confidentiality" makes the control file
# refuse its opener.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
mkdir -p /sys/kernel/security
mount -t securityfs securityfs /sys/kernel/security ||
	ksw_fail "cannot mount securityfs"
cat /sys/kernel/security/lockdown > "$OUT/lockdown.boot"
if grep -q 'lockdown=' /proc/cmdline; then
	insmod /ksw/modules/kstackwatch.ko > "$OUT/insmod.out" 2>&1
	echo "rc: $?" >> "$OUT/insmod.out"
	[ -e /proc/kstackwatch ] && echo present > "$OUT/proc-file"
	dmesg > "$OUT/lockdown.dmesg"
	return 0
fi
ksw_load
cfg=$(ksw_cfg silent kv)
for level in integrity confidentiality; do
	dmesg -c > /dev/null
	echo $level > /sys/kernel/security/lockdown
	cat /sys/kernel/security/lockdown > "$OUT/$level.level"
	(echo "$cfg" > /proc/kstackwatch) > "$OUT/$level.out" 2>&1
	echo "rc: $?" >> "$OUT/$level.out"
	cat /proc/kstackwatch >> "$OUT/$level.out" 2>&1
	echo "rc: $?" >> "$OUT/$level.out"
	dmesg -c > "$OUT/$level.dmesg"
done
rmmod kstackwatch_test
rmmod kstackwatch
dmesg -c > "$OUT/unload.dmesg"
echo "ksw-scenario: $KSW_SCENARIO done"
