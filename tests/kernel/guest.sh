#!/bin/sh
# Runs inside the test guest (busybox): the user data plane's replay, the driver, QEMU's init,
# the daemon on elvis.ko, then unload/reload cycles.
set -u
user_failed=""
fail() {
	echo "GUEST-FAIL: $*"
	[ -z "$user_failed" ] || echo "GUEST-FAIL: and the user data plane's transcripts (USERPLANE-FAIL above)"
	exit 1
}
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
if [ ! -c /dev/elvis-net ] || [ ! -c /dev/elvis ]; then
	fail "elvis.ko did not create its devices"
fi
[ -c /dev/vhost-net ] || fail "no /dev/vhost-net (the oracle)"
args=$(cat /etc/elvis-vtest-args)
# the same transcripts from the user data plane (elvis-manager --dataplane user over
# vhost-user, elvis.ko unused), first and judged at the end: a timing failure of an elvis.ko
# scenario under host load must not hide its result
if [ -z "$args" ] || echo " $args " | grep -q " user "; then
	elvis-userplane-test || user_failed=1
fi
# shellcheck disable=SC2086 # scenario names are words
elvis-vtest $args || fail "elvis-vtest failed"
# real QEMU accepts the device as a vhostfd
if [ -z "$args" ] || echo " $args " | grep -q " qemu "; then
	elvis-qemu-init || fail "QEMU did not take /dev/elvis-net as its vhost device"
fi
# elvis-manager --dataplane kernel through the REST API
if [ -z "$args" ] || echo " $args " | grep -q " daemon "; then
	elvis-daemon-test || fail "elvis-manager did not drive elvis.ko"
fi
# DPDK's virtio-user drives /dev/elvis-net (vhost-kernel back end): weighted shares
if [ -z "$args" ] || echo " $args " | grep -q " dpdk-weights "; then
	mkdir -p /var/run    # DPDK's runtime directory for root
	elvis-dpdk-weights || fail "weights do not hold with DPDK's virtio-user as the driver"
fi
# unloading is refused while a device is open, then works; reload and run again
exec 3<>/dev/elvis-net
rmmod elvis 2>/dev/null && fail "rmmod succeeded with /dev/elvis-net open"
exec 3>&-
for i in 1 2 3; do
	rmmod elvis || fail "rmmod elvis (cycle $i)"
	insmod /lib/extra0.ko || fail "insmod elvis.ko (cycle $i)"
	elvis-vtest abi tx >/dev/null || fail "elvis-vtest after reload $i"
done
if [ -n "$user_failed" ]; then
	echo "GUEST-FAIL: the user data plane's transcripts differ from vhost-net's, or its replay failed (above)"
	exit 1
fi
echo "GUEST-OK"
