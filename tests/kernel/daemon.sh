#!/bin/sh
# Inside the test guest: elvis-manager --dataplane kernel drives elvis.ko through the REST
# API. A stand-in VMM (elvis-vtest --vmm) sends sequence-numbered traffic on tap ed0 all
# along; the daemon must put its queue on a module sidecore of its own, show the module's
# counters in /v1/stats, move the queue live when a sidecore is removed, adopt its
# sidecores across a restart, park queues it no longer manages, and lose no frame.
set -u
ctl() { elvisctl --socket /tmp/elvis/api.sock "$@"; }
log=/tmp/elvis/manager.log
fail() {
	echo "DAEMON-FAIL: $*"
	echo "--- elvis-vtest --list"; elvis-vtest --list
	echo "--- elvis-manager log (tail)"; tail -n 30 "$log"
	exit 1
}
# until_ok TENTHS COMMAND...: retries COMMAND every 0.1 s, at most TENTHS times
until_ok() {
	n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
# start_manager DATAPLANE
start_manager() {
	elvis-manager --foreground --dataplane "$1" --libvirt-uri none --reserved-cpus "" --log-level debug \
		--state-dir /tmp/elvis/state --run-dir /tmp/elvis/run --socket /tmp/elvis/api.sock >>"$log" 2>&1 &
	mpid=$!
	until_ok 300 ctl status || fail "elvis-manager did not answer within 30 s"
}
stop_manager() {
	kill -TERM "$mpid"
	wait "$mpid" || fail "elvis-manager exited with $? on SIGTERM"
}
# the module sidecore serving module device $1, and that sidecore's CPU and flags
ksidecore() { elvis-vtest --list | awk -v d="$1" '$1 == "device" && $2 == d { print $8 }'; }
kcpu() { elvis-vtest --list | awk -v s="$1" '$1 == "sidecore" && $2 == s { print $4 }'; }
# the daemon's sidecore with CPU $1 serves module device $2
served_on_cpu() { k=$(ksidecore "$2"); [ -n "$k" ] && [ "$(kcpu "$k")" = "$1" ]; }
parked() { k=$(ksidecore "$1"); [ -n "$k" ] && [ "$(kcpu "$k")" = -1 ]; }
bound_sidecores() { elvis-vtest --list | awk '$1 == "sidecore" && $4 != -1' | wc -l; }
unbound_sidecores() { elvis-vtest --list | awk '$1 == "sidecore" && $4 == -1' | wc -l; }
no_unbound() { [ "$(unbound_sidecores)" = 0 ]; }

mkdir -p /tmp/elvis
: >"$log"
elvis-vtest --vmm ed0 120 >/tmp/vmm.out 2>&1 &
vpid=$!
until_ok 200 grep -q "^vmm: device" /tmp/vmm.out || fail "the stand-in VMM did not start: $(cat /tmp/vmm.out)"
kdev=$(sed -n 's/^vmm: device \([0-9]*\) .*/\1/p' /tmp/vmm.out)
parked "$kdev" || fail "before the daemon, module device $kdev is not on the module's default sidecore"

start_manager kernel
ctl status | grep -q "data plane: kernel (running)" || fail "not the kernel data plane: $(ctl status)"
# the module's back end is a tap: other back ends are refused, and nothing is recorded
out=$(ctl vm add lo --vcpus 0 --device id=n0,backend=loopback 2>&1) && fail "a loopback device was accepted"
echo "$out" | grep -q "not supported" || fail "unclear refusal of a loopback device: $out"
ctl vm show lo >/dev/null 2>&1 && fail "the refused VM was recorded"
ctl vm add web --vcpus 0 --weight 300 --device id=n0,backend=tap,tap=ed0 >/dev/null || fail "vm add"
sc=$(ctl sidecore list | awk '$5 == "web/n0/0" { print $1 }')
cpu=$(ctl sidecore list | awk '$5 == "web/n0/0" { print $2 }')
[ -n "$sc" ] || fail "the VM's queue got no sidecore: $(ctl sidecore list)"
until_ok 50 served_on_cpu "$cpu" "$kdev" || fail "module device $kdev did not move to a sidecore on CPU $cpu"
[ "$(bound_sidecores)" = 1 ] || fail "expected exactly the daemon's one bound module sidecore"
# the module's default sidecore, now empty, would only attract new devices: removed
until_ok 30 no_unbound || fail "the module's empty default sidecore was not removed"
elvis-vtest --list | grep -q "^device $kdev .* weight 300 " || fail "the VM's weight did not reach the module"
echo "DAEMON: VM web's queue (module device $kdev) is on daemon sidecore $sc, module sidecore $(ksidecore "$kdev"), CPU $cpu"

# /v1/stats carries the module's counters for that queue, and they grow
# (columns: VM DEVICE TYPE Q SIDECORE STATE POLLING TX-PKTS ...)
row() { ctl stats | awk '$1 == "web" && $2 == "n0" && $3 == "net" && $4 == 0'; }
grows() {
	a=$(row | awk '{ print $8 }')
	sleep 0.5
	b=$(row | awk '{ print $8 }')
	[ -n "$a" ] && [ "$b" -gt "$a" ]
}
until_ok 30 grows || fail "/v1/stats does not show web/n0/0 transmitting: $(row)"
# shellcheck disable=SC2046 # the row's columns become $1...
set -- $(row)
{ [ "$5" = "$sc" ] && [ "$6" = ready ]; } || fail "/v1/stats row: $*"
mtx() { elvis-vtest --list | awk -v d="$kdev" '$1 == "device" && $2 == d { print $18 }'; }
# the daemon's figure lies between two readings of the module's, taken before and after
before_tx=$(mtx)
daemon_tx=$(row | awk '{ print $8 }')
module_tx=$(mtx)
{ [ "$before_tx" -le "$daemon_tx" ] && [ "$daemon_tx" -le "$module_tx" ] && [ "$daemon_tx" -gt 0 ]; } ||
	fail "/v1/stats tx_packets $daemon_tx is not between the module's $before_tx and $module_tx"
ctl -o json stats | grep -q '"dataplane": "kernel"' || fail "/v1/stats does not name the kernel data plane"
ctl -o json stats | grep -q '"wait_samples": [1-9]' || fail "/v1/stats has no wait time from the module"
echo "DAEMON: /v1/stats tx_packets $daemon_tx, the module's $module_tx a moment later"
# a policy change is in the module when the API answers, not a control tick later
ctl vm set web weight=500 exitless=always >/dev/null || fail "vm set"
elvis-vtest --list | grep -q "^device $kdev .* weight 500 exitless 1 " ||
	fail "weight 500 / exitless always not in the module when the API answered"
ctl vm set web weight=300 exitless=auto >/dev/null || fail "vm set back"

# reads never write: a device a VMM opens is bound to its VM (the VM's weight applied, its
# queue moved to the VM's sidecore) by the control tick only, never by GET /v1/stats or
# a /metrics scrape
ctl policy set interval_ms=60000 >/dev/null || fail "policy set interval_ms"
ctl vm add rd --vcpus 0 --weight 700 --device id=n0,backend=tap,tap=ed1 >/dev/null || fail "vm add rd"
elvis-vtest --vmm ed1 30 >/tmp/vmm2.out 2>&1 &
v2pid=$!
until_ok 200 grep -q "^vmm: device" /tmp/vmm2.out || fail "the second VMM did not start: $(cat /tmp/vmm2.out)"
kdev2=$(sed -n 's/^vmm: device \([0-9]*\) .*/\1/p' /tmp/vmm2.out)
weight2() { elvis-vtest --list | awk -v d="$kdev2" '$1 == "device" && $2 == d { for (i = 1; i < NF; i++) if ($i == "weight") print $(i + 1) }'; }
before2=$(weight2)
for _ in 1 2 3 4 5; do
	ctl stats >/dev/null || fail "stats"
	ctl metrics >/dev/null || fail "metrics"
	ctl -o json stats >/dev/null || fail "stats json"
done
{ [ "$(weight2)" = "$before2" ] && [ "$before2" != 700 ]; } ||
	fail "reading /v1/stats or /metrics bound module device $kdev2 (weight $before2 -> $(weight2))"
ctl policy set interval_ms=100 >/dev/null || fail "policy set interval_ms back"
rd_bound() { [ "$(weight2)" = 700 ]; }
until_ok 50 rd_bound || fail "the control tick did not bind module device $kdev2 (weight $(weight2))"
ctl vm remove rd >/dev/null || fail "vm remove rd"
kill -TERM "$v2pid"
wait "$v2pid" || fail "the second VMM's traffic broke: $(cat /tmp/vmm2.out)"
echo "DAEMON: reads left module device $kdev2 at weight $before2; the control tick gave it the VM's 700"

# a restart (with --dataplane auto, which must pick the module) adopts the module sidecore:
# same sidecore, same queue, no new thread
before=$(ksidecore "$kdev")
nbound=$(bound_sidecores)
stop_manager
start_manager auto
ctl status | grep -q "data plane: kernel (running)" || fail "auto did not choose elvis.ko: $(ctl status)"
[ "$(ksidecore "$kdev")" = "$before" ] || fail "the restart moved module device $kdev off sidecore $before"
[ "$(bound_sidecores)" = "$nbound" ] || fail "the restart changed the number of bound module sidecores"
ctl sidecore list | grep -q "web/n0/0" || fail "the restored state lost the assignment"
grep -q "adopted module sidecore $before already running" "$log" || fail "the log does not say the sidecore was adopted"
# steady state is quiet: no log line per control tick (100 ms)
lines=$(wc -l <"$log")
sleep 2
[ $(($(wc -l <"$log") - lines)) -lt 5 ] || fail "the daemon logs on every control tick: $(tail -n 5 "$log")"
echo "DAEMON: restart adopted module sidecore $before"

# removing the VM's sidecore moves its queue live to the other one
other=$((1 - cpu))
ctl sidecore add --cpu "$other" >/dev/null || fail "sidecore add --cpu $other"
ctl sidecore remove "$sc" >/dev/null || fail "sidecore remove $sc"
until_ok 50 served_on_cpu "$other" "$kdev" || fail "the queue did not move to the sidecore on CPU $other"
[ "$(bound_sidecores)" = "$nbound" ] || fail "module sidecore $before was not destroyed"
echo "DAEMON: removing sidecore $sc moved module device $kdev to CPU $other"

# a removed VM's queue keeps being served; removing its last sidecore parks it on an
# unbound sidecore created for it (the module's default one is gone)
ctl vm remove web >/dev/null || fail "vm remove"
a=$(mtx)
sleep 0.5
{ [ -n "$(ksidecore "$kdev")" ] && [ "$(mtx)" -gt "$a" ]; } || fail "the removed VM's queue is no longer served"
no_unbound || fail "an unbound module sidecore exists before parking"
last=$(ctl sidecore list | awk '$2 == '"$other"' { print $1 }')
ctl sidecore remove "$last" >/dev/null || fail "sidecore remove $last after the VM left"
until_ok 50 parked "$kdev" || fail "module device $kdev is not parked on an unbound sidecore"
grep -q "created unbound module sidecore" "$log" || fail "the park was not created by the daemon"
[ "$(bound_sidecores)" = 0 ] || fail "bound module sidecores remain after the daemon removed its last"
echo "DAEMON: the unmanaged queue was parked on an unbound sidecore"

stop_manager
kill -TERM "$vpid"
wait "$vpid" || fail "the VMM's traffic broke: $(cat /tmp/vmm.out)"
cat /tmp/vmm.out
grep -q "none lost" /tmp/vmm.out || fail "the VMM did not confirm its traffic"
grep -E "elvis.ko|module" "$log" | sed 's/^/daemon-log: /'
echo "DAEMON-OK"
