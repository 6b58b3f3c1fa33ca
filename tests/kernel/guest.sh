#!/bin/sh
# Runs inside the test guest (busybox): the driver, then unload/reload cycles.
set -u
fail() { echo "GUEST-FAIL: $*"; exit 1; }
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
if [ ! -c /dev/elvis-net ] || [ ! -c /dev/elvis ]; then
	fail "elvis.ko did not create its devices"
fi
[ -c /dev/vhost-net ] || fail "no /dev/vhost-net (the oracle)"
args=$(cat /etc/elvis-vtest-args)
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
echo "GUEST-OK"
