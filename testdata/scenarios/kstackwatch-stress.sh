# kstackwatch.ko under stress on 4 vCPUs: 200 workers while the config is
# replaced 50 times, CPU hotplug while armed, then 50 unload/reload cycles
# while armed (with 20 workers between load and unload). Afterwards every hardware slot must
# be free again. The console is kept quiet (catch reports would flood the
# serial line); dmesg is saved instead.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: kstackwatch-stress on $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
ksw_load
dmesg -n 1
cat "$OUT/load.dmesg" > "$OUT/stress.dmesg"
kv=$(ksw_cfg mthread kv)
pos=$(ksw_cfg mthread pos)

# how many slots a config gets on an idle machine
ksw_set "$kv mw=0" > /dev/null
grep '^slots_total' /proc/kstackwatch > "$OUT/slots-before"
echo > /proc/kstackwatch

# keep 200 workers running: restart them whenever they are done
ksw_workers() {
	if [ -z "$workers" ] || ! kill -0 "$workers" 2> /dev/null; then
		echo "mthread 200 40" > /proc/kstackwatch_test &
		workers=$!
	fi
}

# 50 reconfigurations under 200 workers; the first config is installed
# before the workers start, so every reconfiguration keeps the probes and
# no text is patched under them (see the reload loop below)
ksw_set "$kv" > /dev/null
workers=
i=0
while [ $i -lt 50 ]; do
	ksw_workers
	if [ $((i % 2)) = 0 ]; then c=$kv; else c=$pos; fi
	err=$(ksw_set "$c")
	[ -z "$err" ] || echo "reconfig $i: $err" >> "$OUT/reconfig.err"
	dmesg -c >> "$OUT/stress.dmesg"
	i=$((i + 1))
done
wait $workers
dmesg -c >> "$OUT/stress.dmesg"
echo "reconfigurations: 50" > "$OUT/reconfig.done"
cat /proc/kstackwatch > "$OUT/after-reconfig.state"

# CPU hotplug while armed: a catch on every CPU configuration
ksw_set "$(ksw_cfg silent kv)" > /dev/null
echo 0 > /sys/devices/system/cpu/cpu3/online
echo silent > /proc/kstackwatch_test
echo 1 > /sys/devices/system/cpu/cpu3/online
echo silent > /proc/kstackwatch_test
cat /proc/kstackwatch > "$OUT/hotplug.state"
echo > /proc/kstackwatch
dmesg -c >> "$OUT/stress.dmesg"

# 50 unload/reload cycles while armed. The workers run in between but not
# while the module unloads or loads: registering and unregistering the
# probes patches the function's text, and under QEMU TCG on 6.12 a worker
# then executed a stale int3 of the ftrace patch (Oops: int3; 6.12's int3
# handler lacks 6.1's "the int3 vanished" fallback). See the README.
workers=
i=0
while [ $i -lt 50 ]; do
	err=$(ksw_set "$kv")
	echo "mthread 20 2" > /proc/kstackwatch_test
	[ -z "$err" ] || echo "reload $i: $err" >> "$OUT/reload.err"
	rmmod kstackwatch || echo "rmmod $i failed" >> "$OUT/reload.err"
	insmod /ksw/modules/kstackwatch.ko || echo "insmod $i failed" >> "$OUT/reload.err"
	dmesg -c >> "$OUT/stress.dmesg"
	i=$((i + 1))
done
echo "reloads: 50" > "$OUT/reload.done"

# every slot is free again
ksw_set "$kv mw=0" > /dev/null
grep '^slots_total' /proc/kstackwatch > "$OUT/slots-after"
echo > /proc/kstackwatch
rmmod kstackwatch_test
rmmod kstackwatch
dmesg -c >> "$OUT/stress.dmesg"
grep -c 'Caught stack corruption' "$OUT/stress.dmesg" > "$OUT/catches"
echo "ksw-scenario: kstackwatch-stress done"
