# Live analysis: read /proc/kcore inside the running guest.
# The ELF head of /proc/kcore (file header, program headers and notes)
# is kept for the host to check; ksw itself reads kcore where it can.
head -c 65536 /proc/kcore > "$OUT/kcore.head"
for cmd in info dmesg; do
	/ksw/bin/ksw $cmd /proc/kcore > "$OUT/ksw-$cmd.txt" 2> "$OUT/ksw-$cmd.err"
	echo $? > "$OUT/ksw-$cmd.rc"
done
/ksw/bin/ksw info --json /proc/kcore > "$OUT/ksw-info.json" 2>/dev/null
dmesg > "$OUT/dmesg.txt"

# A kstackwatch catch without a panic (ph=0), explained live from
# /proc/kcore by `ksw analyze`; the console has the kernel's own report.
# After the log above is saved: loading clears the log buffer.
. /ksw/kstackwatch-lib.sh
ksw_load

# `ksw live --watch` ends by itself when kstackwatch is unloaded under it,
# and cleanly on SIGINT (Ctrl-C); a stuck one is killed after 10 s.  (A
# read of kcore takes about a second under TCG: 6 s give several views.)
live_watch() {
	/ksw/bin/ksw live --watch 0.5 > "$OUT/ksw-live-watch-$1.txt" \
		2> "$OUT/ksw-live-watch-$1.err" &
	pid=$!
	sleep 6
	case $1 in
	unload) rmmod kstackwatch_test kstackwatch ;;
	sigint) kill -INT "$pid" ;;
	esac
	n=0
	while kill -0 "$pid" 2> /dev/null && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill -9 "$pid" 2> /dev/null && echo "still running after 10 s" >> "$OUT/ksw-live-watch-$1.err"
	wait "$pid"
	echo $? > "$OUT/ksw-live-watch-$1.rc"
}
live_watch sigint
live_watch unload
ksw_load

err=$(ksw_set "$(ksw_cfg silent kv)")
[ -z "$err" ] || ksw_fail "silent config refused: $err"
echo silent > /proc/kstackwatch_test
/ksw/bin/ksw analyze --json --module-dir /ksw/modules /proc/kcore \
	> "$OUT/ksw-analyze.json" 2> "$OUT/ksw-analyze.err"
echo $? > "$OUT/ksw-analyze.rc"
# the module's state after the catch, between two reads of its own view
cat /proc/kstackwatch > "$OUT/proc-state-catch-before"
/ksw/bin/ksw live --json --module-dir /ksw/modules \
	> "$OUT/ksw-live-catch.json" 2> "$OUT/ksw-live-catch.err"
cat /proc/kstackwatch > "$OUT/proc-state-catch-after"
echo > /proc/kstackwatch

# The everyday commands on the running kernel, each between two reads of
# the kernel's own view of the same thing.
threads() {
	for s in /proc/[0-9]*/task/[0-9]*/stat; do cat "$s" 2> /dev/null; done
}
threads > "$OUT/threads-before"
/ksw/bin/ksw tasks --json /proc/kcore > "$OUT/ksw-tasks.json" 2> "$OUT/ksw-tasks.err"
threads > "$OUT/threads-after"
cat /proc/modules > "$OUT/proc-modules"
for n in /sys/module/*/notes/.note.gnu.build-id; do
	m=${n#/sys/module/}
	echo "${m%%/*} $(od -An -tx1 -v "$n" | tr -d ' \n')"
done > "$OUT/module-notes"
/ksw/bin/ksw modules --json /proc/kcore > "$OUT/ksw-modules.json" 2> "$OUT/ksw-modules.err"
cat /proc/kallsyms > "$OUT/kallsyms-now"
awk 'NR % 61 == 0 { print $1 }' "$OUT/kallsyms-now" | head -1000 > "$OUT/sym-addresses"
# shellcheck disable=SC2046
/ksw/bin/ksw sym --json /proc/kcore $(cat "$OUT/sym-addresses") \
	> "$OUT/ksw-sym.json" 2> "$OUT/ksw-sym.err"

# `ksw print`: a typed global twice (jiffies moves on between the reads),
# and a member of init_task.
for n in 1 2; do
	/ksw/bin/ksw print --json /proc/kcore jiffies \
		> "$OUT/ksw-print-jiffies$n.json" 2> "$OUT/ksw-print-jiffies$n.err"
	sleep 0.1
done
/ksw/bin/ksw print /proc/kcore init_task.comm \
	> "$OUT/ksw-print-comm.txt" 2> "$OUT/ksw-print-comm.err"

# Refusals: an unprivileged user (kcore is root's, mode 0400), and root
# without CAP_SYS_RAWIO (which opening kcore needs).
/ksw/bin/capsh --shell=/bin/sh --gid=65534 --uid=65534 -- \
	-c '/ksw/bin/ksw tasks /proc/kcore' \
	> "$OUT/ksw-nonroot.out" 2> "$OUT/ksw-nonroot.err"
echo $? > "$OUT/ksw-nonroot.rc"
/ksw/bin/capsh --shell=/bin/sh --drop=cap_sys_rawio -- \
	-c '/ksw/bin/ksw tasks /proc/kcore' \
	> "$OUT/ksw-norawio.out" 2> "$OUT/ksw-norawio.err"
echo $? > "$OUT/ksw-norawio.rc"

# A thread asleep in a known module function, with kstackwatch armed on
# its local: `ksw bt --pid` (the module's .ko for file:line), and
# `ksw live` between two reads of the module's own view.
err=$(ksw_set "$(ksw_cfg park kv)")
[ -z "$err" ] || ksw_fail "park config refused: $err"
echo park > /proc/kstackwatch_test
n=0
while ! dmesg | grep -q 'park: pid .* asleep' && [ $n -lt 50 ]; do
	sleep 0.1
	n=$((n + 1))
done
dmesg | grep 'park: pid .* asleep' | tail -n 1 > "$OUT/parked-line"
parked=$(sed -n 's/.*park: pid \([0-9]*\) asleep.*/\1/p' "$OUT/parked-line")
echo "$parked" > "$OUT/parked-pid"
/ksw/bin/ksw bt --json --pid "$parked" --module-dir /ksw/modules /proc/kcore \
	> "$OUT/ksw-bt-parked.json" 2> "$OUT/ksw-bt-parked.err"
cat /proc/kstackwatch > "$OUT/proc-state-park-before"
/ksw/bin/ksw live --json > "$OUT/ksw-live-park.json" 2> "$OUT/ksw-live-park.err"
cat /proc/kstackwatch > "$OUT/proc-state-park-after"
/ksw/bin/ksw live > "$OUT/ksw-live-park.txt" 2>&1
echo unpark > /proc/kstackwatch_test
echo > /proc/kstackwatch

# With kdump armed (the fixture's mode), the run ends in a panic, and the
# dump taken right after is read with the same commands.
if [ "$KSW_MODE" = kdump ]; then
	/ksw/bin/ksw live --json > "$OUT/ksw-live-final.json" 2> "$OUT/ksw-live-final.err"
	ksw_before_panic
	echo c > /proc/sysrq-trigger
fi
