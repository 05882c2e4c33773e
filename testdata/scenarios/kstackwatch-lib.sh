# Helpers shared by the kstackwatch-* scenarios (sourced by them).
# Outputs: $OUT/configs.txt (what kstackwatch_test proposes), and per case
# $OUT/cases/NAME.{dmesg,state,status}.

ksw_load() {
	insmod /ksw/modules/kstackwatch.ko || ksw_fail "insmod kstackwatch.ko"
	insmod /ksw/modules/kstackwatch_test.ko || ksw_fail "insmod kstackwatch_test.ko"
	mkdir -p "$OUT/cases"
	cat /proc/kstackwatch_test > "$OUT/configs.txt"
	dmesg > "$OUT/load.dmesg"
	dmesg -c > /dev/null
}

# ksw_cfg SCENARIO GRAMMAR: the config kstackwatch_test proposes
ksw_cfg() {
	grep "^$1 $2 " "$OUT/configs.txt" | cut -d' ' -f3-
}

# ksw_set CONFIG: write it, print the shell's error text (empty on success)
ksw_set() {
	(echo "$1" > /proc/kstackwatch) 2>&1 | sed 's/.*write error: //'
}

# ksw_case NAME CONFIG TRIGGER: arm CONFIG, run TRIGGER, keep dmesg/state
ksw_case() {
	d="$OUT/cases"
	echo "ksw-case: $1 config '$2' trigger '$3'"
	dmesg -c > /dev/null
	err=$(ksw_set "$2")
	echo "$2" > "$d/$1.config"
	echo "$3" > "$d/$1.trigger"
	echo "config_error: $err" > "$d/$1.status"
	echo "$3" > /proc/kstackwatch_test
	echo "trigger_rc: $?" >> "$d/$1.status"
	cat /proc/kstackwatch > "$d/$1.state"
	echo > /proc/kstackwatch
	cat /proc/kstackwatch > "$d/$1.after"
	dmesg -c > "$d/$1.dmesg"
	sync
}

# ksw_bad NAME EXPECTED-ERRNO-NAME CONFIG: a config that must be refused
ksw_bad() {
	d="$OUT/bad"
	mkdir -p "$d"
	dmesg -c > /dev/null
	err=$(ksw_set "$3")
	{
		echo "config: $3"
		echo "expect: $2"
		echo "error: $err"
	} > "$d/$1.result"
	cat /proc/kstackwatch > "$d/$1.state"
	dmesg -c > "$d/$1.dmesg"
}
