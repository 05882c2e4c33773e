#!/bin/busybox sh
# Capture kernel's /init: save /proc/vmcore with makedumpfile in every
# format asked for onto the output disk, then power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /ksw/run.conf

for m in $(cat /ksw/kmod/order); do
	insmod "$m" || echo "ksw-capture: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 /dev/vda /mnt; then
	echo "KSW-CAPTURE-FAILED: cannot mount /dev/vda"
	poweroff -f
fi
D=/mnt/dumps
mkdir -p $D
status() { echo "$1 $2" >> $D/status; }

# -d 31 drops zero, cache, user and free pages, as kdump-tools does.
makedumpfile -c -d 31 /proc/vmcore $D/dump.kdump-zlib; status dump.kdump-zlib $?
makedumpfile -l -d 31 /proc/vmcore $D/dump.kdump-lzo; status dump.kdump-lzo $?
makedumpfile -F -c -d 31 /proc/vmcore > $D/dump.flat; status dump.flat $?
makedumpfile -E -d 31 /proc/vmcore $D/dump.elf; status dump.elf $?
if [ "$KSW_RAW_VMCORE" = 1 ]; then
	cp /proc/vmcore $D/vmcore.raw; status vmcore.raw $?
fi
cd /
sync
umount /mnt
echo "KSW-CAPTURE-DONE"
poweroff -f
