# kstackwatch.ko with panic: the silent-corruption catch panics the guest,
# so the dumps hold the catch record (ksw_catch_log) of the catch the
# console reports. The run "kstackwatch-panic" asks with ph=1 in the
# config; runs whose name ends in -param (or -qemu) use the module
# parameter panic_on_catch=1 instead. In runs whose name ends in -irqoff
# the writer keeps IRQs off for two seconds after its write: the panic
# must come at once, from the #DB, not when IRQs are back. In runs whose
# name ends in -init the catch happens inside a module's init function
# (kstackwatch_test_init.ko's writer, IRQs off, in its .init.text), so the
# panic CPU's stack runs from the #DB through .init.text to do_init_module.
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
*-init)
	ksw_load
	cfg="$(ksw_cfg initcall kv) ph=1"
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
case "$KSW_SCENARIO" in
*-init) insmod /ksw/modules/kstackwatch_test_init.ko ;;
*) echo "$trigger" > /proc/kstackwatch_test ;;
esac
echo "ksw-scenario: still alive after the catch"
