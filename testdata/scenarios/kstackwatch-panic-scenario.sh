# One panic dump per test-module scenario, for `ksw analyze`. The run's
# name ($KSW_SCENARIO) says which:
#
#   kstackwatch-panic-SCENARIO  kstackwatch armed with the config that
#       kstackwatch_test proposes for SCENARIO (key=value grammar) plus
#       ph=1, then SCENARIO triggered: the catch panics the guest and kdump
#       keeps the dump (catch record, writer and victim stacks).
#       SCENARIO is fire, canary, recursion (K=3, the depth the listing's
#       config watches), mthread, overflow or loop; silent has its runs in
#       kstackwatch-panic.sh.
#   stack-protector  both modules loaded, kstackwatch never configured,
#       `canary fatal` triggered: the canary stays overwritten and the
#       kernel panics in __stack_chk_fail ("stack-protector: Kernel stack
#       is corrupted in: test_canary_overflow+...").
#
# Outputs: $OUT/configs.txt, $OUT/config (empty without kstackwatch),
# $OUT/trigger and $OUT/state (/proc/kstackwatch right before the trigger).
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: $KSW_SCENARIO on $(uname -r)"
ksw_load
case "$KSW_SCENARIO" in
stack-protector)
	cfg=""
	trigger="canary fatal"
	;;
kstackwatch-panic-*)
	scenario=${KSW_SCENARIO#kstackwatch-panic-}
	case "$scenario" in
	fire | canary | mthread | overflow | loop) trigger=$scenario ;;
	recursion) trigger="recursion 3" ;;
	*) ksw_fail "no such scenario: $scenario" ;;
	esac
	cfg="$(ksw_cfg "$scenario" kv)"
	[ -n "$cfg" ] || ksw_fail "kstackwatch_test lists no config for $scenario"
	cfg="$cfg ph=1"
	err=$(ksw_set "$cfg")
	[ -z "$err" ] || ksw_fail "config '$cfg' refused: $err"
	;;
*)
	ksw_fail "run $KSW_SCENARIO: no scenario for it"
	;;
esac
echo "$cfg" > "$OUT/config"
echo "$trigger" > "$OUT/trigger"
cat /proc/kstackwatch > "$OUT/state"
ksw_before_panic
echo "$trigger" > /proc/kstackwatch_test
ksw_fail "'$trigger' returned and nothing panicked"
