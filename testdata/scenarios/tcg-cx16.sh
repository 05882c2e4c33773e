# Not kstackwatch, not even a module: QEMU 7.2 TCG's cmpxchg16b reads a
# stale flags state and leaves impossible RFLAGS (tcg-cx16.c explains).
# This is the 6.12 stress failure's mechanism: SLUB's this_cpu_cmpxchg16b
# after a return from #DB. `pipeline stress-rate --variant tcg-cx16`
# counts a boot that reproduced it as failed.
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
# the guest kernel's view (booted with clearcpuid=cx16, it has none)
echo "cpuinfo: cx16 $(grep -c -w cx16 /proc/cpuinfo) of $(grep -c ^processor /proc/cpuinfo) CPUs"
out=$(/ksw/bin/tcg-cx16 100000)
rc=$?
echo "$out" | tee "$OUT/tcg-cx16.txt"
[ $rc = 0 ] || ksw_fail "$out"
echo "ksw-scenario: $KSW_SCENARIO done"
