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
