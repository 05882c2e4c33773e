# kstackwatch.ko end to end, no panic: every scenario of kstackwatch_test
# in both grammars, clean runs, wrong-depth and loop cases, and bad
# configs. The host tests (testdata/tests/test_kstackwatch.py) compare
# the catch reports with the ground truth the test module prints.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: kstackwatch on $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
ksw_load

for g in kv pos; do
	ksw_case "fire-$g" "$(ksw_cfg fire $g)" "fire"
	ksw_case "recursion-$g" "$(ksw_cfg recursion $g)" "recursion 3"
	ksw_case "silent-$g" "$(ksw_cfg silent $g)" "silent"
	ksw_case "canary-$g" "$(ksw_cfg canary $g)" "canary"
	ksw_case "overflow-$g" "$(ksw_cfg overflow $g)" "overflow"
done
ksw_case "canary-kvso" "$(ksw_cfg canary kvso)" "canary"
ksw_case "overflow-kvso" "$(ksw_cfg overflow kvso)" "overflow"
ksw_case "loop-kv" "$(ksw_cfg loop kv)" "loop"
ksw_case "mthread-kv" "$(ksw_cfg mthread kv)" "mthread 8 8"

# the victim dies inside the watched function; then a task at its
# task_struct address is a victim that must be watched
ksw_case "exit-kv" "$(ksw_cfg exit kv)" "exit die" "exit reuse"
# canary of a function that task, hard IRQ and softirq context all run
ksw_case "irq-canary" "$(ksw_cfg irq kv)" "irq 200"
# a writer on another CPU while the victim holds a spin_lock_irq()
ksw_case "irqoff-kv" "$(ksw_cfg irqoff kv)" "irqoff"

# every word of a frame the exit path overwrites, one config each: the
# exit path's writes are never catches
span=$(grep '^exitpath span ' "$OUT/configs.txt" | cut -d' ' -f3)
base=$(ksw_cfg exitpath kv | sed 's/ so=[0-9]*//')
echo "span: $span" > "$OUT/exitpath.results"
dmesg -c > /dev/null
so=0
while [ "$so" -le "$span" ]; do
	err=$(ksw_set "$base so=$so mw=1")
	echo exitpath > /proc/kstackwatch_test
	echo "so=$so error=$err $(grep -E '^(arms|disarms|hits|catches|trampoline_filtered):' \
		/proc/kstackwatch | tr -d ' ' | tr '\n' ' ')" >> "$OUT/exitpath.results"
	so=$((so + 8))
done
echo > /proc/kstackwatch
dmesg -c > "$OUT/exitpath.dmesg"

# a new config for the same function and offset keeps the probes
ksw_set "$(ksw_cfg silent kv)" > /dev/null
ksw_case "silent-reconfig" "$(ksw_cfg silent pos)" "silent"

# clean runs: armed, but nothing corrupts
ksw_case "fire-clean" "$(ksw_cfg fire kv)" "fire clean"
ksw_case "recursion-clean" "$(ksw_cfg recursion kv)" "recursion 3 clean"
ksw_case "silent-clean" "$(ksw_cfg silent kv)" "silent clean"
ksw_case "canary-clean" "$(ksw_cfg canary kv)" "canary clean"
ksw_case "overflow-clean" "$(ksw_cfg overflow kv)" "overflow clean"
# watching depth 2 while depth 3 is corrupted: no catch
ksw_case "recursion-wrongdepth" "$(ksw_cfg recursion kv | sed 's/dp=3/dp=2/')" "recursion 3"
# depth 1 corrupted, depth 1 watched (positional form)
ksw_case "recursion-depth1" "$(ksw_cfg recursion pos | sed 's/+3 /+1 /')" "recursion 1"

# bad configs: each refused with its errno, nothing armed
fo=$(ksw_cfg silent kv | sed 's/.*fo=\(0x[0-9a-f]*\).*/\1/')
fo1=$(printf '0x%x' $((fo + 1)))
v=silent_corruption_victim
long=$(printf 'a%.0s' $(seq 70))
huge=$(printf 'fn=%s fo=0x10 ' $(seq 20))
ksw_bad empty-name EINVAL "fn= fo=0x10"
ksw_bad unknown-key EINVAL "fn=$v fo=$fo bogus=1"
ksw_bad no-equals EINVAL "fn=$v fo"
ksw_bad bad-number EINVAL "fn=$v fo=zz"
ksw_bad negative EINVAL "fn=$v fo=-1"
ksw_bad offset-overflow ERANGE "fn=$v fo=70000"
ksw_bad depth-overflow ERANGE "fn=$v fo=$fo dp=99999"
ksw_bad len-3 EINVAL "fn=$v fo=$fo so=0 wl=3"
ksw_bad len-0 EINVAL "fn=$v fo=$fo wl=0"
ksw_bad misaligned EINVAL "fn=$v fo=$fo so=4 wl=8"
ksw_bad beyond-stack ERANGE "fn=$v fo=$fo so=16384 wl=8"
ksw_bad duplicate-key EINVAL "fn=$v fo=$fo func_offset=$fo"
ksw_bad canary-conflict EINVAL "fn=$v fo=$fo ac=1 so=8"
ksw_bad max-watch ERANGE "fn=$v fo=$fo mw=5"
ksw_bad panic-hit-2 EINVAL "fn=$v fo=$fo ph=2"
ksw_bad bad-char EINVAL "fn=bad-name fo=1"
ksw_bad name-too-long ENAMETOOLONG "fn=$long fo=1"
ksw_bad too-long E2BIG "$huge"
ksw_bad unknown-function ENOENT "fn=no_such_function_ksw fo=0x10"
ksw_bad not-boundary EILSEQ "fn=$v fo=$fo1 so=0 wl=8"
ksw_bad beyond-function ERANGE "fn=$v fo=0x4000"
ksw_bad unprobeable EINVAL "fn=exc_int3 fo=0"
ksw_bad pos-no-offset EINVAL "$v"
ksw_bad pos-empty-name EINVAL "+0x10"
ksw_bad pos-too-many-plus EINVAL "$v+0x10+1+2"
ksw_bad pos-no-colon EINVAL "$v+0x10 8"
ksw_bad pos-len-3 EINVAL "$v+0x10 8:3"
ksw_bad pos-extra-field EINVAL "$v+0x10 0:8 extra"
ksw_bad pos-bad-depth EINVAL "$v+0x10+x 0:8"
# a bad write while a watch is active leaves that watch untouched
ksw_set "$(ksw_cfg silent kv)" > "$OUT/keep.set"
ksw_bad keep-active EINVAL "fn=$v fo=$fo wl=3"
echo > /proc/kstackwatch

# root without CAP_SYS_ADMIN (as in a default container) is refused
dmesg -c > /dev/null
/ksw/bin/capsh --shell=/bin/sh --drop=cap_sys_admin -- \
	-c 'cat /proc/kstackwatch; echo "rc: $?"' > "$OUT/nocap.out" 2>&1
/ksw/bin/capsh --shell=/bin/sh --drop=cap_sys_admin -- \
	-c 'echo "fn=test_watch_fire fo=0x10 ph=1" > /proc/kstackwatch; echo "rc: $?"' \
	> "$OUT/nocap-write.out" 2>&1
cat /proc/kstackwatch > "$OUT/nocap.state"
dmesg -c > "$OUT/nocap.dmesg"

# single opener
exec 3< /proc/kstackwatch
(cat /proc/kstackwatch > /dev/null) 2> "$OUT/second-open.err"
exec 3<&-
ls -l /proc/kstackwatch > "$OUT/proc-mode"

rmmod kstackwatch_test
rmmod kstackwatch
dmesg -c > "$OUT/unload.dmesg"
echo "ksw-scenario: kstackwatch done"
