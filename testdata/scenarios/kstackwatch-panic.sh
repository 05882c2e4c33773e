# kstackwatch.ko with panic: the silent-corruption catch panics the guest,
# so the dumps hold the catch record (ksw_catch_log) of the catch the
# console reports. The run "kstackwatch-panic" asks with ph=1 in the
# config; runs whose name ends in -param (or -qemu) use the module
# parameter panic_on_catch=1 instead. In runs whose name ends in -irqoff
# the writer keeps IRQs off for two seconds after its write: the panic
# must come at once, from the #DB, not when IRQs are back.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
case "$KSW_SCENARIO" in
*-param | *-qemu)
	insmod /ksw/modules/kstackwatch.ko panic_on_catch=1 ||
		ksw_fail "insmod kstackwatch.ko panic_on_catch=1"
	insmod /ksw/modules/kstackwatch_test.ko || ksw_fail "insmod kstackwatch_test.ko"
	mkdir -p "$OUT/cases"
	cat /proc/kstackwatch_test > "$OUT/configs.txt"
	cfg="$(ksw_cfg silent kv)"
	;;
*)
	ksw_load
	cfg="$(ksw_cfg silent kv) ph=1"
	;;
esac
err=$(ksw_set "$cfg")
[ -z "$err" ] || ksw_fail "config '$cfg' refused: $err"
echo "$cfg" > "$OUT/config"
cat /proc/kstackwatch > "$OUT/state"
trigger=silent
case "$KSW_SCENARIO" in
*-irqoff) trigger="silent irqoff" ;;
esac
ksw_before_panic
echo "$trigger" > /proc/kstackwatch_test
echo "ksw-scenario: still alive after the catch"
