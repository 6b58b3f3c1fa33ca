#!/bin/sh
# Inside the test guest: real QEMU takes /dev/elvis-net as a tap's vhostfd and sets the
# device up (vhost_net_init: owner, features, ring call/err eventfds). A machine with no
# guest never starts the rings; that part is covered by elvis-vtest. Prints what failed.
set -u
out=/tmp/qemu.out
{
	printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"query-version"}' \
		'{"execute":"human-monitor-command","arguments":{"command-line":"info network"}}'
	sleep 3
	printf '%s\n' '{"execute":"quit"}'
} | timeout 60 sh -c 'exec qemu-system-x86_64 -M none -nodefaults -display none -qmp stdio \
	-netdev tap,id=n0,ifname=qt0,script=no,downscript=no,vhost=on,vhostforce=on,vhostfd=3 \
	3<>/dev/elvis-net' >$out 2>&1 &
qpid=$!
sleep 2
# while QEMU runs, /dev/elvis lists its device: owned (pid set), not started (state 0)
elvis-vtest --list >/tmp/list.out
wait $qpid
rc=$?
cat $out /tmp/list.out
grep -q "^device [0-9]* pid [1-9][0-9]* state 0 " /tmp/list.out || { echo "QEMU-INIT-FAIL: QEMU did not own a device"; exit 1; }
[ $rc -eq 0 ] || { echo "QEMU-INIT-FAIL: qemu exited with $rc"; exit 1; }
grep -qi "vhost.*\(fail\|error\|could not\)" $out && { echo "QEMU-INIT-FAIL: vhost refused"; exit 1; }
grep -q "qt0" $out || { echo "QEMU-INIT-FAIL: the tap netdev is missing"; exit 1; }
# QEMU's exit released the device (the device is opened after timeout forks its watcher)
refs=$(awk '$1 == "elvis" { print $3 }' /proc/modules)
[ "$refs" = 0 ] || { echo "QEMU-INIT-FAIL: elvis.ko still has $refs users after QEMU exited"; exit 1; }
echo "QEMU-INIT-OK"
