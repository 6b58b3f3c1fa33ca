#!/bin/sh
# Inside the test guest: elvis-vtest's transcript scenarios replayed against the user-space
# data plane. This build's elvis-manager runs with --dataplane user; every device of a
# scenario is a VM it creates through its REST API (tap back end), driven over the VM's
# vhost-user socket, and each transcript must equal stock vhost-net's byte for byte. In
# every exitless mode: queues polled by a sidecore (always), each device served by its own
# thread woken by kicks (never), and the default that switches between the two (auto). The
# notify scenario switches its VM to never live in each.
set -u
dir=/tmp/elvis-user
api=$dir/api.sock
log=$dir/manager.log
# each mode runs all 21: tx (2), rx (3), offload, qemu (2), restart, notify (2), hostile (10)
scenarios="tx rx offload qemu restart notify hostile"
expect=21
mpid=""
# the daemon goes too: its sidecores must not spin under the elvis.ko scenarios that follow
fail() {
	echo "USERPLANE-FAIL: $*"
	if [ -n "$mpid" ]; then
		kill -TERM "$mpid"
		wait "$mpid"
	fi
	echo "--- elvis-manager log (tail)"
	tail -n 40 "$log" | sed 's/^/daemon-log: /'
	exit 1
}
ctl() { elvisctl --socket "$api" "$@"; }

mkdir -p "$dir"
: >"$log"
elvis-manager --foreground --config "" --dataplane user --libvirt-uri none --reserved-cpus "" \
	--state-dir "$dir/state" --run-dir "$dir/run" --socket "$api" >>"$log" 2>&1 &
mpid=$!
n=300
until ctl status >/dev/null 2>&1; do
	n=$((n - 1))
	[ $n -gt 0 ] || fail "elvis-manager did not answer within 30 s"
	kill -0 "$mpid" 2>/dev/null || fail "elvis-manager exited"
	sleep 0.1
done
ctl status | grep -q "data plane: user (running)" || fail "not the user data plane: $(ctl status)"
for mode in always never auto; do
	# shellcheck disable=SC2086 # scenario names are words
	elvis-vtest --user-plane="$api" --exitless="$mode" $scenarios >"$dir/vtest.out" 2>&1
	rc=$?
	cat "$dir/vtest.out"
	[ $rc -eq 0 ] || fail "transcripts differ from vhost-net's, or a scenario failed (exitless $mode)"
	passed=$(grep -c '^PASS ' "$dir/vtest.out")
	[ "$passed" = $expect ] || fail "$passed of $expect scenarios passed (exitless $mode)"
	# every scenario removed the VMs it added
	left=$(ctl vm list | grep -c vtest)
	[ "$left" = 0 ] || fail "$left VMs left behind: $(ctl vm list)"
	echo "USERPLANE: $passed transcripts of the user data plane equal vhost-net's (exitless $mode)"
done
kill -TERM "$mpid"
wait "$mpid"
rc=$?
mpid=""
[ $rc -eq 0 ] || fail "elvis-manager exited with $rc on SIGTERM"
echo "USERPLANE-OK"
