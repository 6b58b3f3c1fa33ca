# shellcheck shell=bash
# Sourced by the QEMU guest tests (guest-vhost-user, guest-reconnect): what they check
# before they start, and waits. Needs bash.

# Exits 77 with the reason when QEMU, /dev/net/tun or network namespaces are missing.
qemu_guest_prereqs() {
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "SKIP: qemu-system-x86_64 is not installed (scripts/deps installs it)"
		exit 77
	fi
	if [ ! -e /dev/net/tun ] || ! ip netns add "elvis-probe-$$" 2>/dev/null; then
		echo "SKIP: no /dev/net/tun or no permission for network namespaces"
		exit 77
	fi
	ip netns del "elvis-probe-$$"
}

# until SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds (0) or SECONDS pass (1).
until_ok() {
	local n=$(($1 * 5))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}
