#!/bin/busybox sh
# First kernel's /init: bring up the disk, record ground truth, arm kdump
# when asked, then source the scenario. /ksw/run.conf says what to do.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /ksw/run.conf

ksw_log() { echo "ksw-guest: $*"; }
ksw_fail() {
	echo "KSW-GUEST-FAILED: $*"
	sync
	poweroff -f
}

for m in $(cat /ksw/kmod/order); do
	insmod "$m" || ksw_log "insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 /dev/vda /mnt || ksw_fail "cannot mount the output disk /dev/vda"
OUT=/mnt/out
mkdir -p "$OUT/ground-truth"

# What the guest saw, kept beside each dump: call again right before a
# panic so that module lists and symbols are those of the crash.
ksw_ground_truth() {
	gt="$OUT/ground-truth"
	cat /proc/kallsyms > "$gt/kallsyms"
	cat /proc/modules > "$gt/modules"
	uname -a > "$gt/uname"
	uname -r > "$gt/release"
	cat /sys/kernel/vmcoreinfo > "$gt/vmcoreinfo"
	# The head of /proc/kcore holds the VMCOREINFO note itself (4.19+):
	# the override for a QEMU dump taken without -device vmcoreinfo.
	head -c 65536 /proc/kcore > "$gt/kcore.head"
	cat /proc/cmdline > "$gt/cmdline"
	grep -c ^processor /proc/cpuinfo > "$gt/ncpus"
	sync
}

# The scenario's last words before it panics: outputs made durable and the
# disk released, so the capture kernel can mount it cleanly.
ksw_before_panic() {
	ksw_ground_truth
	cd /
	umount /mnt || ksw_fail "cannot unmount the output disk"
	echo "KSW-PANIC-NEXT"
}

ksw_ground_truth
if [ "$KSW_MODE" = kdump ]; then
	kexec -p /ksw/capture/vmlinuz --initrd=/ksw/capture/initrd.gz \
		--append="$KSW_CAPTURE_APPEND" || ksw_fail "kexec -p failed"
	[ "$(cat /sys/kernel/kexec_crash_loaded)" = 1 ] ||
		ksw_fail "capture kernel not loaded"
fi
ksw_log "scenario $KSW_SCENARIO starts"
. /ksw/scenario.sh
ksw_log "scenario $KSW_SCENARIO returned"
if mountpoint -q /mnt; then
	ksw_ground_truth
	umount /mnt
fi
echo "KSW-SCENARIO-DONE"
poweroff -f
