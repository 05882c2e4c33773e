# kstackwatch.ko with panic: the silent-corruption catch panics the guest
# (ph=1), so the dumps hold the catch record (ksw_catch_log) of the catch
# the console reports.
. /ksw/kstackwatch-lib.sh
echo "ksw-scenario: kstackwatch-panic on $(uname -r)"
ksw_load
cfg="$(ksw_cfg silent kv) ph=1"
err=$(ksw_set "$cfg")
[ -z "$err" ] || ksw_fail "config '$cfg' refused: $err"
echo "$cfg" > "$OUT/config"
cat /proc/kstackwatch > "$OUT/state"
ksw_before_panic
echo silent > /proc/kstackwatch_test
echo "ksw-scenario: still alive after the catch"
