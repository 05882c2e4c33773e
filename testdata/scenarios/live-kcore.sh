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
err=$(ksw_set "$(ksw_cfg silent kv)")
[ -z "$err" ] || ksw_fail "silent config refused: $err"
echo silent > /proc/kstackwatch_test
/ksw/bin/ksw analyze --json --module-dir /ksw/modules /proc/kcore \
	> "$OUT/ksw-analyze.json" 2> "$OUT/ksw-analyze.err"
echo $? > "$OUT/ksw-analyze.rc"
echo > /proc/kstackwatch
