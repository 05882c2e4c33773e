# Panic through sysrq: the simplest crash, with no module involved.
echo "ksw-scenario: sysrq crash on $(uname -r)"
ksw_before_panic
echo c > /proc/sysrq-trigger
