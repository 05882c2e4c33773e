# The stress run's CPU hotplug phase alone, 30 times, with the console at
# full log level (a measurement for `pipeline stress-rate`, not a
# fixture): the stress run froze twice in 75 boots inside this phase with
# its console quiet. Each step prints a line first, so a freeze names the
# step it happened in.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
ksw_load
cfg=$(ksw_cfg silent kv)
# the module's state, through the kernel's log: printk reaches the
# console without interrupts, which a tty write needs
ksw_state() {
	while read -r l; do
		echo "ksw-state $1: $l" > /dev/kmsg
	done < /proc/kstackwatch
}
i=0
while [ $i -lt 30 ]; do
	echo "ksw-hotplug: cycle $i arm"
	err=$(ksw_set "$cfg")
	[ -z "$err" ] || ksw_fail "config refused: $err"
	echo "ksw-hotplug: cycle $i offline"
	echo 0 > /sys/devices/system/cpu/cpu3/online || ksw_fail "offline"
	echo "ksw-hotplug: cycle $i catch while offline"
	echo silent > /proc/kstackwatch_test
	ksw_state "cycle $i offline"
	echo "ksw-hotplug: cycle $i online"
	echo 1 > /sys/devices/system/cpu/cpu3/online || ksw_fail "online"
	echo "ksw-hotplug: cycle $i catch while online"
	echo silent > /proc/kstackwatch_test
	ksw_state "cycle $i online"
	echo "ksw-hotplug: cycle $i disarm"
	echo > /proc/kstackwatch
	i=$((i + 1))
done
echo "ksw-scenario: $KSW_SCENARIO done"
