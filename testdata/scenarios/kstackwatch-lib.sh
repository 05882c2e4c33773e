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

# ksw_case NAME CONFIG TRIGGER [TRIGGER...]: arm CONFIG, run each TRIGGER
# (the state after trigger K < last is kept as NAME.stateK), keep dmesg and
# the final state
ksw_case() {
	d="$OUT/cases"
	name=$1
	echo "ksw-case: $name config '$2' trigger '$3'"
	dmesg -c > /dev/null
	err=$(ksw_set "$2")
	echo "$2" > "$d/$name.config"
	echo "$3" > "$d/$name.trigger"
	echo "config_error: $err" > "$d/$name.status"
	shift 2
	k=1
	for t in "$@"; do
		echo "$t" > /proc/kstackwatch_test
		echo "trigger_rc: $?" >> "$d/$name.status"
		[ $k = $# ] || cat /proc/kstackwatch > "$d/$name.state$k"
		k=$((k + 1))
	done
	cat /proc/kstackwatch > "$d/$name.state"
	echo > /proc/kstackwatch
	cat /proc/kstackwatch > "$d/$name.after"
	dmesg -c > "$d/$name.dmesg"
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
