# kstackwatch.ko under stress on 4 vCPUs: 200 workers while the config is
# replaced 50 times, CPU hotplug while armed, then 50 unload/reload cycles
# while armed (with 20 workers between load and unload). Afterwards every
# hardware slot must be free again. The console is kept quiet (catch
# reports would flood the serial line), but for one line per step that
# shows the guest is alive; each phase's dmesg is saved instead, with the
# counters that let the tests check that phase alone.
# Every marker file says what happened, not what was planned.
#
# Variants, for measuring failure rates (testdata/pipeline stress-rate):
#   kstackwatch-stress-noconfig    the same load, kstackwatch never armed
#   kstackwatch-stress-exitwindow  the watch on a word the exit path
#                                  overwrites, so every call's return hits;
#                                  the victims return with IRQs off (QEMU
#                                  TCG loses an interrupt whose frame is
#                                  pushed onto a watched word)
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
ksw_load
dmesg -n 1
kv=$(ksw_cfg mthread kv)
pos=$(ksw_cfg mthread pos)
mt_flags=
case "$KSW_SCENARIO" in
*-exitwindow)
	mt_flags=irqoff
	# buf[191], the top of test_mthread_victim's frame, instead of buf[2]
	so=$(echo "$kv" | sed 's/.* so=\([0-9]*\).*/\1/')
	top=$((so + 189 * 8))
	kv=$(echo "$kv" | sed "s/ so=[0-9]*/ so=$top/")
	pos=$(echo "$pos" | sed "s/ [0-9]*:8\$/ $top:8/")
	;;
esac
echo "$kv" > "$OUT/stress.config"
noconfig=
case "$KSW_SCENARIO" in
*-noconfig) noconfig=1 ;;
esac
# ksw_arm CONFIG: as ksw_set, but a no-op in the noconfig variant
ksw_arm() {
	[ -n "$noconfig" ] || ksw_set "$1"
}
# ksw_phase NAME: keep what the kernel said during the phase (called
# often, so that the log buffer never wraps between two copies)
ksw_phase() {
	dmesg -c >> "$OUT/phase-$1.dmesg"
}
dmesg -c > /dev/null

# how many slots a config gets on an idle machine
ksw_set "$kv mw=0" > /dev/null
grep '^slots_total' /proc/kstackwatch > "$OUT/slots-before"
echo > /proc/kstackwatch

# keep 200 workers running: restart them whenever they are done
ksw_workers() {
	if [ -z "$workers" ] || ! kill -0 "$workers" 2> /dev/null; then
		echo "mthread 200 40 $mt_flags" > /proc/kstackwatch_test &
		workers=$!
		batches=$((batches + 1))
	fi
}

# the counters of the config about to be replaced (each config restarts
# them): its #DB hits, the exit-window hits among them, its catches
ksw_counters() {
	echo "$1 $(grep -E '^(hits|trampoline_filtered|catches|catch_log):' /proc/kstackwatch | tr -d ' ' | tr '\n' ' ')"
}

# 50 reconfigurations under 200 workers; the first config is installed
# before the workers start, so every reconfiguration keeps the probes and
# no text is patched under them (see the reload loop below)
ksw_arm "$kv" > /dev/null
workers=
batches=0
ok=0
i=0
while [ $i -lt 50 ]; do
	echo "ksw-stress: reconfiguration $i"
	ksw_workers
	if [ $((i % 2)) = 0 ]; then c=$kv; else c=$pos; fi
	[ -n "$noconfig" ] || ksw_counters "reconfig $i" >> "$OUT/reconfig.counters"
	err=$(ksw_arm "$c")
	if [ -z "$err" ]; then
		ok=$((ok + 1))
	else
		echo "reconfig $i: $err" >> "$OUT/reconfig.err"
	fi
	ksw_phase reconfig
	i=$((i + 1))
done
echo "ksw-stress: waiting for the workers"
wait $workers
echo "reconfigurations: $ok" > "$OUT/reconfig.done"
echo "worker batches: $batches" >> "$OUT/reconfig.done"
cat /proc/kstackwatch > "$OUT/after-reconfig.state"
echo > /proc/kstackwatch
ksw_phase reconfig

# CPU hotplug while armed: a catch on every CPU configuration
echo "ksw-stress: hotplug"
ksw_arm "$(ksw_cfg silent kv)" > /dev/null
{
	cat /sys/devices/system/cpu/online
	echo 0 > /sys/devices/system/cpu/cpu3/online
	echo "offline rc: $?"
	cat /sys/devices/system/cpu/online
	echo silent > /proc/kstackwatch_test
	echo 1 > /sys/devices/system/cpu/cpu3/online
	echo "online rc: $?"
	cat /sys/devices/system/cpu/online
	echo silent > /proc/kstackwatch_test
} > "$OUT/hotplug.log" 2>&1
cat /proc/kstackwatch > "$OUT/hotplug.state"
echo > /proc/kstackwatch
ksw_phase hotplug

# 50 unload/reload cycles while armed. The workers run in between but not
# while the module unloads or loads: registering and unregistering the
# probes patches the function's text, and under QEMU TCG on 6.12 a worker
# then executed a stale int3 of the ftrace patch (Oops: int3; 6.12's int3
# handler lacks 6.1's "the int3 vanished" fallback). See the README.
ok=0
i=0
while [ $i -lt 50 ]; do
	echo "ksw-stress: reload $i"
	err=$(ksw_arm "$kv")
	echo "mthread 20 2 $mt_flags" > /proc/kstackwatch_test
	ksw_counters "cycle $i" >> "$OUT/reload.counters"
	good=1
	[ -z "$err" ] || { echo "reload $i: $err" >> "$OUT/reload.err"; good=; }
	rmmod kstackwatch || { echo "rmmod $i failed" >> "$OUT/reload.err"; good=; }
	insmod /ksw/modules/kstackwatch.ko ||
		{ echo "insmod $i failed" >> "$OUT/reload.err"; good=; }
	[ -z "$good" ] || ok=$((ok + 1))
	ksw_phase reload
	i=$((i + 1))
done
echo "reloads: $ok" > "$OUT/reload.done"
ksw_phase reload

# every slot is free again
echo "ksw-stress: unload"
ksw_set "$kv mw=0" > /dev/null
grep '^slots_total' /proc/kstackwatch > "$OUT/slots-after"
echo > /proc/kstackwatch
rmmod kstackwatch_test
rmmod kstackwatch
ksw_phase unload
echo "ksw-scenario: $KSW_SCENARIO done"
