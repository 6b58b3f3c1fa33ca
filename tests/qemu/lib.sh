# Shared pieces of the QEMU guest tests (sourced, not run): what they need to run at all,
# an elvis-manager with the user data plane, a VM's vhost-user socket, and QEMU's
# monitor (QMP over TCP, so that bash alone can speak it).
# shellcheck shell=bash

# Exits 77 with the reason when QEMU, /dev/net/tun or network namespaces are missing.
qemu_require() {
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

# elvis_manager_start BUILD WORK [ARGS...]: runs the manager with the user data plane
# (ELVIS_DATAPLANE: user, the default, or user-process for elvis-dataplane) in the
# background (log in WORK/manager.log), sets $manager to its pid and exports ELVIS_SOCKET;
# returns once the API answers (10 s at most).
elvis_manager_start() {
        local build=$1 work=$2
        shift 2
        export ELVIS_SOCKET=$work/api.sock
        "$build/bin/elvis-manager" --foreground --config "" --socket "$ELVIS_SOCKET" --state-dir "$work/state" \
                --run-dir "$work/run" --libvirt-uri none --dataplane "${ELVIS_DATAPLANE:-user}" "$@" \
                >/dev/null 2>"$work/manager.log" &
        # shellcheck disable=SC2034 # the caller's, for its cleanup
        manager=$!
        for _ in $(seq 100); do
                "$build/bin/elvisctl" status >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        echo "elvis-manager did not answer within 10 s:" >&2
        tail -n 20 "$work/manager.log" >&2
        return 1
}

# elvis_manager_stop WORK: stops the manager and, with user-process, the elvis-dataplane
# it started (which outlives a manager by design: the next one adopts it).
elvis_manager_stop() {
        local work=$1 dp
        if [ -n "${manager:-}" ]; then
                kill "$manager" 2>/dev/null && wait "$manager" 2>/dev/null
                manager=""
        fi
        sed -n 's/.*elvis-dataplane \([0-9]*\): protocol.*/\1/p' "$work/manager.log" 2>/dev/null | while read -r dp; do
                kill "$dp" 2>/dev/null || continue
                for _ in $(seq 50); do
                        kill -0 "$dp" 2>/dev/null || break
                        sleep 0.1
                done
        done
        return 0
}

# elvis_vm_socket BUILD NAME: the vhost-user socket of the VM's first device.
elvis_vm_socket() {
        "$1/bin/elvisctl" -o json vm show "$2" | sed -n 's/.*"socket": "\(.*\)".*/\1/p'
}

# qmp PORT JSON: sends one QMP command to a QEMU started with
# -qmp tcp:127.0.0.1:PORT,server=on,wait=off and prints its answer (the line with
# "return" or "error"); events before it are skipped. 10 s per line at most.
qmp() {
        local port=$1 cmd=$2 fd line
        exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
        if ! read -r -t 10 -u "$fd" line; then
                exec {fd}>&-
                return 1
        fi
        for c in '{"execute":"qmp_capabilities"}' "$cmd"; do
                printf '%s\n' "$c" >&"$fd"
                while read -r -t 10 -u "$fd" line; do
                        case $line in *'"return"'* | *'"error"'*) break ;; esac
                done
        done
        exec {fd}>&-
        printf '%s\n' "$line"
}

# until_ok SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds (0) or SECONDS pass (1).
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
