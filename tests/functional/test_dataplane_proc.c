/* elvis-dataplane, the user data plane in its own process (--dataplane user-process):
 * it links nothing that parses HTTP, TLS or XML; a sequence-numbered stream keeps
 * flowing, losing nothing, while elvis-manager is killed with -9 and restarted (the same
 * data plane is adopted, the VM still listed); and when the data plane is killed with
 * -9 the manager stays up, starts a new one and serves the device again. */
#include <criterion/criterion.h>

#include "../lib/harness.h"
#include "../../dataplane/proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST ELVIS_BUILD_DIR "/bench/elvis-guest"
#define DATAPLANE ELVIS_BIN_DIR "/elvis-dataplane"
#define PROBE ELVIS_SOURCE_BUILD_TESTS "/elvis-dataplane-probe"

static struct daemon d;
static pid_t dp_pid;            /* the elvis-dataplane this test saw last */

static void setup(void)
{
        daemon_init(&d, ELVIS_MANAGER);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user-process");
        cr_assert_eq(daemon_start(&d), 0);
}

static pid_t health_pid(char *detail, size_t len, bool *ret_ok, double *ms);

static void teardown(void)
{
        char detail[256];
        bool ok;
        double ms;

        if (daemon_alive(&d) && !dp_pid)
                dp_pid = health_pid(detail, sizeof(detail), &ok, &ms);
        if (daemon_alive(&d))
                cr_expect_eq(daemon_stop(&d), 0, "clean exit (and no leaks under ASan)");
        if (dp_pid > 0)
                dataplane_end(dp_pid);
        daemon_cleanup(&d);
}

TestSuite(dpproc, .init = setup, .fini = teardown, .timeout = 180);

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The data plane's pid as health reports it, 0 when it is not healthy; the request's
 * latency in *ms. */
static pid_t health_pid(char *detail, size_t len, bool *ret_ok, double *ms)
{
        struct resp r;
        uint64_t t0 = now_ms();
        const char *det, *p;
        pid_t pid = 0;

        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0, "the API answers");
        *ms = (double)(now_ms() - t0);
        cr_assert_eq(r.status, 200);
        det = json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "detail"));
        *ret_ok = strcmp(json_string_value(json_object_get(r.json, "status")), "ok") == 0;
        snprintf(detail, len, "%s", det ? det : "");
        if (*ret_ok && det && (p = strstr(det, "elvis-dataplane pid ")))
                pid = (pid_t)atoi(p + strlen("elvis-dataplane pid "));
        resp_free(&r);
        return pid;
}

static char *add_vm(const char *name)
{
        char body[256], *sock;
        struct resp r;

        snprintf(body, sizeof(body),
                 "{\"name\":\"%s\",\"devices\":[{\"backend\":\"loopback\"}],\"policy\":{\"exitless\":\"always\"}}",
                 name);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        sock = strdup(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0),
                                                        "socket")));
        resp_free(&r);
        return sock;
}

static long long queue_packets(void)
{
        struct resp r;
        long long n;

        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        n = json_integer_value(json_object_get(json_array_get(json_object_get(r.json, "queues"), 0), "rx_packets"));
        resp_free(&r);
        return n;
}

static long long n(json_t *j, const char *k)
{
        return (long long)json_integer_value(json_object_get(j, k));
}

/* Runs the emulator (args, a loopback stream) and expects its frames back: over 1000 sent,
 * every one received, none lost. */
static void expect_echo(const char *const *args, const char *what)
{
        char *out = NULL;
        json_t *j;

        cr_assert_eq(run_cmd(args, NULL, &out, NULL), 0, "%s: %s", what, out);
        j = json_loads(out, 0, NULL);
        cr_assert_not_null(j, "%s", out);
        cr_assert_gt(n(j, "tx_packets"), 1000, "%s: %s", what, out);
        cr_assert_eq(n(j, "rx_packets"), n(j, "tx_packets"), "%s: %s", what, out);
        cr_assert_eq(n(j, "lost"), 0, "%s: %s", what, out);
        json_decref(j);
        free(out);
}

Test(dpproc, links_no_http_tls_libvirt_or_xml)
{
        const char *argv[] = { "/usr/bin/ldd", DATAPLANE, NULL };
        static const char *const banned[] = { "libvirt", "microhttpd", "gnutls", "libssl", "libcrypto", "xml2",
                                              "curl", "jansson", "libsystemd", "hwloc", "libnl", "libcap" };
        char *out, *err;

        cr_assert_eq(run_cmd(argv, NULL, &out, &err), 0, "ldd %s: %s", DATAPLANE, err);
        cr_assert(strstr(out, "libc.so"), "ldd printed no libraries: %s", out);
        cr_assert(strstr(out, "libseccomp"), "the sandbox's library: %s", out);
        for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
                cr_assert_null(strstr(out, banned[i]), "elvis-dataplane links %s:\n%s", banned[i], out);
        free(out);
        free(err);
}

/* A stream through the data plane while the manager goes (kill -9, or SIGTERM: a clean
 * stop, as systemctl restart does) and a new one starts: nothing lost, the same data
 * plane adopted, the VM still listed. */
static void manager_restart_loses_nothing(bool sigterm)
{
        char *sock = add_vm("survivor"), detail[256], *log;
        struct bg_stream bg;
        pid_t before, after;
        bool ok;
        double ms;
        json_t *j;
        struct resp r;

        before = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && before > 0, "%s", detail);
        dp_pid = before;
        stream_start(&bg, sock, "8");
        /* the stream is flowing through the data plane before the manager goes */
        for (uint64_t t0 = now_ms(); queue_packets() < 10000; )
                cr_assert_lt(now_ms() - t0, 20000, "the stream never started");
        if (sigterm)
                cr_assert_eq(daemon_stop(&d), 0, "the manager stops cleanly on SIGTERM");
        else
                daemon_kill9(&d);
        cr_assert_eq(kill(before, 0), 0, "elvis-dataplane outlives the manager");
        cr_assert_eq(daemon_start(&d), 0);
        after = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok, "%s", detail);
        cr_assert_eq(after, before, "the same elvis-dataplane is adopted (%s)", detail);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "vms")), 1, "%s", r.body);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "vms"), 0), "name")),
                         "survivor");
        resp_free(&r);
        j = stream_finish(&bg);
        cr_assert_gt(n(j, "tx_packets"), 10000);
        cr_assert_eq(n(j, "rx_packets"), n(j, "tx_packets"), "every frame sent came back");
        cr_assert_eq(n(j, "lost"), 0);
        cr_assert_eq(n(j, "dup_or_reordered"), 0);
        log = daemon_log(&d);
        cr_assert(strstr(log, "adopted, already served by elvis-dataplane"), "%s", log);
        free(log);
        json_decref(j);
        free(sock);
}

Test(dpproc, manager_kill9_and_restart_lose_nothing)
{
        manager_restart_loses_nothing(false);
}

Test(dpproc, manager_sigterm_and_restart_lose_nothing)
{
        manager_restart_loses_nothing(true);
}

Test(dpproc, dataplane_kill9_is_contained_and_restarted)
{
        char *sock = add_vm("phoenix"), detail[256], *log;
        const char *args[] = { GUEST, "--socket", NULL, "--mode", "stream", "--seconds", "2", NULL };
        pid_t before, now = 0;
        double ms, worst = 0;
        bool ok = false;

        args[2] = sock;
        before = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && before > 0, "%s", detail);
        dp_pid = before;
        cr_assert_eq(kill(before, SIGKILL), 0);
        for (uint64_t t0 = now_ms(); !(ok && now > 0 && now != before); ) {
                cr_assert_lt(now_ms() - t0, 15000, "no new data plane: %s", detail);
                now = health_pid(detail, sizeof(detail), &ok, &ms);
                worst = ms > worst ? ms : worst;
        }
        dp_pid = now;
        cr_assert(daemon_alive(&d), "the manager stays up");
        cr_assert_lt(worst, 1000, "the API answered within 1 s throughout (worst %.0f ms)", worst);
        log = daemon_log(&d);
        cr_assert(strstr(log, "lost: "), "the loss is logged:\n%s", log);
        cr_assert(strstr(log, "connected again"), "%s", log);
        free(log);
        /* a front end that (re)connects is served by the new data plane */
        expect_echo(args, "served");
        free(sock);
}

/* One API request, timed: its status; it must answer within 1 s. */
static long timed(const char *method, const char *path, const char *body, char **ret_body)
{
        struct resp r;
        uint64_t t0 = now_ms();
        long status;

        cr_assert_eq(http_json(&d, method, path, body, &r), 0, "%s %s: the API answers", method, path);
        cr_assert_lt(now_ms() - t0, 1000, "%s %s took %llu ms", method, path, (unsigned long long)(now_ms() - t0));
        status = r.status;
        if (ret_body)
                *ret_body = strdup(r.body ? r.body : "");
        resp_free(&r);
        return status;
}

/* elvis-dataplane stops answering (SIGSTOP) without closing anything: the API keeps
 * answering within 1 s, health says so after a second of silence, changes are refused
 * with 503 at once instead of waiting; it is served again once it answers; and one that
 * stays silent for 30 s is killed and replaced, its front ends served by the new one. */
Test(dpproc, a_silent_data_plane_never_stalls_the_api)
{
        char *sock = add_vm("frozen"), detail[256], *body = NULL, *log;
        const char *args[] = { GUEST, "--socket", NULL, "--mode", "stream", "--seconds", "2", NULL };
        const char *vm = "{\"name\":\"late\",\"devices\":[{\"backend\":\"null\"}]}";
        pid_t dp, now = 0;
        bool ok = false;
        double ms;

        args[2] = sock;
        dp = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && dp > 0, "%s", detail);
        dp_pid = dp;
        cr_assert_eq(kill(dp, SIGSTOP), 0);
        for (uint64_t t0 = now_ms(); !strstr(detail, "not answering");) {
                cr_assert_lt(now_ms() - t0, 5000, "health never said the data plane is silent: %s", detail);
                health_pid(detail, sizeof(detail), &ok, &ms);
                cr_assert_lt(ms, 1000, "GET /v1/health took %.0f ms", ms);
        }
        cr_assert_not(ok, "a silent data plane is not healthy: %s", detail);
        cr_assert_eq(timed("GET", "/v1/stats", NULL, NULL), 200);
        cr_assert_eq(timed("GET", "/v1/vms", NULL, NULL), 200);
        cr_assert_eq(timed("GET", "/metrics", NULL, NULL), 200);
        cr_assert_eq(timed("POST", "/v1/vms", vm, &body), 503, "a change is refused while it is silent: %s", body);
        free(body);
        cr_assert_eq(kill(dp, SIGCONT), 0);
        for (uint64_t t0 = now_ms(); !ok;) {
                cr_assert_lt(now_ms() - t0, 5000, "not healthy again: %s", detail);
                now = health_pid(detail, sizeof(detail), &ok, &ms);
        }
        cr_assert_eq(now, dp, "the same data plane, answering again");
        cr_assert_eq(timed("POST", "/v1/vms", vm, &body), 201, "%s", body);
        free(body);
        /* silent for good: killed after 30 s and replaced */
        cr_assert_eq(kill(dp, SIGSTOP), 0);
        ok = false;
        for (uint64_t t0 = now_ms(); !(ok && now > 0 && now != dp);) {
                cr_assert_lt(now_ms() - t0, 60000, "the hung data plane was not replaced: %s", detail);
                now = health_pid(detail, sizeof(detail), &ok, &ms);
                cr_assert_lt(ms, 1000, "GET /v1/health took %.0f ms", ms);
                usleep(200000);
        }
        dp_pid = now;
        log = daemon_log(&d);
        cr_assert(strstr(log, "killing it"), "%s", log);
        free(log);
        expect_echo(args, "served by the data plane that replaced the hung one");
        free(sock);
}

/* Removing a VM while elvis-dataplane does not answer (stopped here with SIGSTOP) is not
 * refused: the VM goes from the state at once, and from the data plane once it answers
 * again (its socket disappears). */
Test(dpproc, a_vm_removed_while_the_data_plane_is_lost_goes_everywhere)
{
        char *sock = add_vm("leaving"), detail[256];
        struct resp r;
        pid_t dp;
        bool ok = false;
        double ms;

        dp = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && dp > 0, "%s", detail);
        dp_pid = dp;
        cr_assert_eq(access(sock, F_OK), 0, "the VM's socket exists");
        cr_assert_eq(kill(dp, SIGSTOP), 0);
        cr_assert_eq(http_json(&d, "DELETE", "/v1/vms/leaving", NULL, &r), 0);
        cr_assert_eq(r.status, 200, "removed although the data plane is lost: %s", r.body);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "vms")), 0, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(kill(dp, SIGCONT), 0);
        for (uint64_t t0 = now_ms(); access(sock, F_OK) == 0;) {
                cr_assert_lt(now_ms() - t0, 20000, "the data plane still serves the removed VM's socket");
                usleep(100000);
        }
        health_pid(detail, sizeof(detail), &ok, &ms);
        for (uint64_t t0 = now_ms(); !ok;) {
                cr_assert_lt(now_ms() - t0, 20000, "the data plane did not come back: %s", detail);
                usleep(100000);
                dp_pid = health_pid(detail, sizeof(detail), &ok, &ms);
        }
        free(sock);
}

/* Whether process pid holds a /dev/net/tun file descriptor. */
static bool holds_tun(pid_t pid)
{
        char dir[64], link[320], target[128];
        struct dirent *e;
        bool found = false;
        DIR *fds;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        fds = opendir(dir);
        cr_assert_not_null(fds, "%s: %s", dir, strerror(errno));
        while (!found && (e = readdir(fds))) {
                ssize_t n;
                snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
                n = readlink(link, target, sizeof(target) - 1);
                if (n > 0) {
                        target[n] = '\0';
                        found = strcmp(target, "/dev/net/tun") == 0;
                }
        }
        closedir(fds);
        return found;
}

#define CAP_NET_ADMIN_BIT (1ull << 12)
#define CAP_SYS_ADMIN_BIT (1ull << 21)
#define KEPT_CAPS 0xbull        /* CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER */

static unsigned long long status_caps(pid_t pid, const char *key);

static void link_up(const char *ifname)
{
        struct ifreq ifr = { 0 };
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0, "%s: %s", ifname, strerror(errno));
        ifr.ifr_flags |= IFF_UP;
        cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "%s up: %s", ifname, strerror(errno));
        close(fd);
}

/* A tap device: elvis-manager creates the interface and passes its queues, which only
 * elvis-dataplane then holds; after the data plane is killed, the manager opens them
 * anew for its successor. */
Test(dpproc, taps_are_opened_by_the_manager_and_held_by_the_data_plane)
{
        const char *args[] = { GUEST, "--socket", NULL, "--mode", "stream", "--seconds", "1", "--queues", "2", NULL };
        char tap[IFNAMSIZ], body[256], detail[256], path[128], *out, *stat, *log, *sock, *p;
        long long sent;
        pid_t pid, now = 0;
        struct resp r;
        bool ok = false;
        double ms;

        snprintf(tap, sizeof(tap), "edpt%d", (int)getpid() % 100000);
        snprintf(body, sizeof(body),
                 "{\"name\":\"tapped\",\"devices\":[{\"backend\":\"tap\",\"tap\":\"%s\",\"queues\":2}]}", tap);
        if (!(status_caps(d.pid, "CapEff") & CAP_NET_ADMIN_BIT))
                cr_skip_test("the manager cannot create taps here: it lacks CAP_NET_ADMIN");
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        sock = strdup(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0),
                                                        "socket")));
        args[2] = sock;
        resp_free(&r);
        pid = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && pid > 0, "%s", detail);
        dp_pid = pid;
        cr_assert_neq(if_nametoindex(tap), 0, "interface %s exists", tap);
        cr_assert(holds_tun(pid), "elvis-dataplane holds the tap's queues");
        cr_assert_not(holds_tun(d.pid), "elvis-manager keeps none");
        /* the passed queues carry the guest's frames, header and offloads set under the
         * sandbox (a refused ioctl would be logged); a tap that is down drops them */
        link_up(tap);
        cr_assert_eq(run_cmd(args, NULL, &out, NULL), 0, "%s", out);
        /* only what it sent: the host's own frames (IPv6 neighbour discovery) reach the
         * emulator too, and its loss figures are meaningless here */
        cr_assert_not_null(p = strstr(out, "\"tx_packets\": "), "%s", out);
        sent = strtoll(p + strlen("\"tx_packets\": "), NULL, 10);
        snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/rx_packets", tap);
        stat = slurp_file(path);
        cr_assert_not_null(stat, "%s", path);
        cr_assert_gt(sent, 1000, "%s", out);
        cr_assert_geq(strtoll(stat, NULL, 10), sent, "the tap received what the guest sent: %s", stat);
        log = daemon_log(&d);
        cr_assert_not(strstr(log, "rejected header size"), "%s", log);
        free(log);
        free(stat);
        free(out);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        for (uint64_t t0 = now_ms(); !(ok && now > 0 && now != pid); ) {
                cr_assert_lt(now_ms() - t0, 15000, "no new data plane: %s", detail);
                now = health_pid(detail, sizeof(detail), &ok, &ms);
        }
        dp_pid = now;
        cr_assert_neq(if_nametoindex(tap), 0, "interface %s made again", tap);
        cr_assert(holds_tun(now), "the new elvis-dataplane holds the tap's queues");
        cr_assert_not(holds_tun(d.pid));
        free(sock);
}

/* A line of /proc/PID/status (or of a task's), the value after "Key:". */
static bool status_field(const char *path, const char *key, char *val, size_t len)
{
        char *text = slurp_file(path), *p, *e;
        size_t k = strlen(key);
        bool found = false;

        cr_assert_not_null(text, "%s", path);
        for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, key, k) == 0 && p[k] == ':') {
                        p += k + 1;
                        p += strspn(p, " \t");
                        e = strchr(p, '\n');
                        snprintf(val, len, "%.*s", (int)(e ? e - p : (ptrdiff_t)strlen(p)), p);
                        found = true;
                        break;
                }
        free(text);
        return found;
}

static unsigned long long status_caps(pid_t pid, const char *key)
{
        char path[64], val[64];

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        cr_assert(status_field(path, key, val, sizeof(val)), "%s has no %s", path, key);
        return strtoull(val, NULL, 16);
}

/* Whether inode is in one of the kernel's tables of network sockets (this namespace). */
static bool inet_socket(unsigned long ino)
{
        static const char *const tables[] = { "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6",
                                              "netlink", "packet" };
        char path[64], needle[32];
        bool found = false;

        snprintf(needle, sizeof(needle), " %lu ", ino);
        for (size_t i = 0; !found && i < sizeof(tables) / sizeof(tables[0]); i++) {
                snprintf(path, sizeof(path), "/proc/net/%s", tables[i]);
                char *t = slurp_file(path);
                found = t && strstr(t, needle);
                free(t);
        }
        return found;
}

/* The data plane the manager started: no capability beyond what its sockets need (no
 * CAP_NET_ADMIN: taps come as fds), no new privileges, the seccomp filter on every
 * thread, and no network socket at all, let alone a listener. */
Test(dpproc, the_spawned_data_plane_runs_with_least_privilege)
{
        char detail[256], dir[64], path[400], val[64], target[64];
        char *sock = add_vm("boxed");
        unsigned long long eff, bnd, mgr;
        unsigned tasks = 0, sockets = 0;
        struct dirent *e;
        bool ok;
        double ms;
        pid_t pid;
        DIR *dd;

        pid = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && pid > 0, "%s", detail);
        dp_pid = pid;
        eff = status_caps(pid, "CapEff");
        bnd = status_caps(pid, "CapBnd");
        mgr = status_caps(d.pid, "CapEff");
        cr_assert_eq(eff & CAP_NET_ADMIN_BIT, 0, "CapEff %llx has CAP_NET_ADMIN", eff);
        cr_assert_eq(eff & CAP_SYS_ADMIN_BIT, 0, "CapEff %llx has CAP_SYS_ADMIN", eff);
        cr_assert_eq(status_caps(pid, "CapPrm") & ~KEPT_CAPS, 0);
        cr_assert_eq(status_caps(pid, "CapAmb"), 0);
        if (geteuid() == 0 && (mgr & CAP_NET_ADMIN_BIT)) {
                /* the manager ran as root with CAP_NET_ADMIN: what it started kept only these */
                cr_assert_eq(eff, KEPT_CAPS, "CapEff %llx (manager's %llx)", eff, mgr);
                cr_assert_eq(bnd, KEPT_CAPS, "CapBnd %llx", bnd);
        } else {
                cr_log_warn("the manager lacks CAP_NET_ADMIN (CapEff %llx): only the upper bound is checked", mgr);
        }
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        cr_assert(status_field(path, "NoNewPrivs", val, sizeof(val)) && strcmp(val, "1") == 0, "NoNewPrivs %s", val);
        /* every thread, the sidecore's included, runs under the filter (mode 2) */
        snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
        cr_assert_not_null(dd = opendir(dir));
        while ((e = readdir(dd))) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
                cr_assert(status_field(path, "Seccomp", val, sizeof(val)), "%s", path);
                cr_assert_str_eq(val, "2", "thread %s: Seccomp %s", e->d_name, val);
                cr_assert_eq(status_caps(pid, "CapEff") & CAP_NET_ADMIN_BIT, 0);
                tasks++;
        }
        closedir(dd);
        cr_assert_gt(tasks, 2, "the plane's threads were seen (%u)", tasks);
        /* its sockets are unix sockets: none is in the kernel's network tables */
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        cr_assert_not_null(dd = opendir(dir));
        while ((e = readdir(dd))) {
                ssize_t n;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                n = readlink(path, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = '\0';
                if (strncmp(target, "socket:[", 8) != 0)
                        continue;
                sockets++;
                cr_assert_not(inet_socket(strtoul(target + 8, NULL, 10)), "fd %s is a network socket (%s)", e->d_name,
                              target);
        }
        closedir(dd);
        cr_assert_geq(sockets, 2, "the protocol's and the VM's sockets were seen (%u)", sockets);
        free(sock);
}

static pid_t probes[2];          /* the probe data planes this suite started */

/* elvis-dataplane-probe (tests/lib/dp_probe.c) on run_dir: its stderr comes back on
 * *ret_err, and it has said it is ready. */
static pid_t probe_start(const char *run_dir, const char *opt, const char *val, int *ret_err)
{
        const char *argv[] = { "elvis-dataplane", "--run-dir", run_dir, "--ready-fd", "3", opt, val, NULL };
        int ready[2], err[2];
        struct pollfd p;
        pid_t pid;
        char c;

        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (dup2(err[1], 2) < 0 || dup2(ready[1], 3) < 0)
                        _exit(127);
                execv(PROBE, (char *const *)argv);
                _exit(127);
        }
        close(ready[1]);
        close(err[1]);
        p = (struct pollfd){ .fd = ready[0], .events = POLLIN };
        cr_assert_eq(poll(&p, 1, 10000), 1, "the probe data plane never got ready");
        cr_assert_eq(read(ready[0], &c, 1), 1, "the probe data plane exited before it was ready");
        close(ready[0]);
        *ret_err = err[0];
        return pid;
}

/* SIGUSR1, then what the probe printed up to "probe: done" (caller frees). */
static char *probe_run(pid_t pid, int err)
{
        size_t cap = 65536, len = 0;
        char *out = calloc(1, cap);

        cr_assert_eq(kill(pid, SIGUSR1), 0);
        while (!strstr(out, "probe: done")) {
                struct pollfd p = { .fd = err, .events = POLLIN };
                ssize_t n;
                cr_assert_eq(poll(&p, 1, 10000), 1, "no probe report; so far:\n%s", out);
                n = read(err, out + len, cap - 1 - len);
                cr_assert_gt(n, 0, "the probe data plane died; its output:\n%s", out);
                len += (size_t)n;
                cr_assert_lt(len, cap - 1);
        }
        return out;
}

static void probe_stop(pid_t pid, int err)
{
        int st;

        kill(pid, SIGTERM);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        for (int i = 0; i < 2; i++)
                if (probes[i] == pid)
                        probes[i] = 0;
        cr_expect(WIFEXITED(st), "the probe data plane ended by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        close(err);
}

/* After a failure too: no probe data plane, and no data plane the manager started for
 * want of one, outlives the test. */
static void sandbox_fini(void)
{
        char detail[256];
        bool ok;
        double ms;
        pid_t spawned = 0;

        if (daemon_alive(&d)) {
                spawned = health_pid(detail, sizeof(detail), &ok, &ms);
                daemon_stop(&d);
        }
        for (int i = 0; i < 2; i++)
                if (probes[i] > 0) {
                        kill(probes[i], SIGKILL);
                        waitpid(probes[i], NULL, 0);
                        probes[i] = 0;
                }
        if (spawned > 0)
                dataplane_end(spawned);
        daemon_cleanup(&d);
}

TestSuite(dpsandbox, .fini = sandbox_fini, .timeout = 120);

/* The running data plane under its allow-list: the manager adopts it, a stream through
 * it loses nothing, and then network sockets, programs, processes, signals to others and
 * tap creation are refused while unix sockets still work. Without the filter the same
 * probe gets through, so the refusals are the filter's. */
Test(dpsandbox, calls_outside_the_allow_list_are_refused_in_the_running_data_plane)
{
        static const char *const refused[] = { "socket(AF_INET)", "socket(AF_INET6)", "socket(AF_NETLINK)",
                                               "execve", "fork", "kill(another process)", "ioctl(TUNSETIFF)" };
        const char *args[] = { GUEST, "--socket", NULL, "--mode", "stream", "--seconds", "2", NULL };
        char line[96], other[96], *out, *sock, *log;
        int err, err2;
        pid_t pid, pid2;

        daemon_init(&d, ELVIS_MANAGER);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user-process");
        cr_assert_eq(mkdir(d.run_dir, 0755), 0);
        pid = probes[0] = probe_start(d.run_dir, NULL, NULL, &err);
        cr_assert_eq(daemon_start(&d), 0);
        sock = add_vm("probed");
        log = daemon_log(&d);
        cr_assert(strstr(log, "already running"), "the manager adopted the probe data plane:\n%s", log);
        free(log);
        args[2] = sock;
        expect_echo(args, "served");
        out = probe_run(pid, err);
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                snprintf(line, sizeof(line), "probe: %s refused: Operation not permitted", refused[i]);
                cr_assert(strstr(out, line), "expected \"%s\":\n%s", line, out);
        }
        cr_assert(strstr(out, "probe: socket(AF_UNIX) allowed"), "%s", out);
        free(out);
        /* still serving after the refusals */
        cr_assert_eq(kill(pid, 0), 0);
        cr_assert_eq(daemon_stop(&d), 0);
        probe_stop(pid, err);
        /* the control: the same probe without the filter */
        snprintf(other, sizeof(other), "%s/nofilter", d.dir);
        cr_assert_eq(mkdir(other, 0755), 0);
        pid2 = probes[1] = probe_start(other, "--no-seccomp", NULL, &err2);
        out = probe_run(pid2, err2);
        cr_assert(strstr(out, "probe: socket(AF_INET) allowed"), "%s", out);
        cr_assert(strstr(out, "probe: fork allowed"), "%s", out);
        cr_assert(strstr(out, "probe: execve refused: No such file or directory"), "%s", out);
        cr_assert(strstr(out, "probe: kill(another process) allowed"), "%s", out);
        free(out);
        probe_stop(pid2, err2);
        free(sock);
}

/* What fd gives until EOF (the probe has exited), at most 10 s (caller frees). */
static char *read_to_eof(int fd)
{
        size_t cap = 65536, len = 0;
        char *out = calloc(1, cap);
        ssize_t got;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                cr_assert_eq(poll(&p, 1, 10000), 1, "the probe did not end; so far:\n%s", out);
                got = read(fd, out + len, cap - 1 - len);
                if (got <= 0)
                        break;
                len += (size_t)got;
                cr_assert_lt(len, cap - 1);
        }
        return out;
}

/* A data plane of another protocol version is found on the run directory when the
 * manager starts: it is drained (asked to STOP, or sent SIGTERM when its version
 * predates STOP), a data plane of this version is started in its place, the saved VM is
 * created there again and a front end that reconnects is served. */
static void other_version_is_replaced(const char *version, const char *how, const char *probe_says)
{
        const char *args[] = { GUEST, "--socket", NULL, "--mode", "stream", "--seconds", "2", NULL };
        char detail[256], *sock, *log, *said;
        pid_t old, now;
        bool ok;
        double ms;
        int err, st;

        daemon_init(&d, ELVIS_MANAGER);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user-process");
        cr_assert_eq(daemon_start(&d), 0);
        sock = add_vm("upgraded");
        now = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && now > 0, "%s", detail);
        cr_assert_eq(daemon_stop(&d), 0);
        dataplane_end(now);
        /* the run directory is served by a data plane of another version */
        old = probes[0] = probe_start(d.run_dir, "--probe-speak", version, &err);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(waitpid(old, &st, 0), old, "the old data plane was stopped");
        probes[0] = 0;
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "it stopped cleanly (status %#x)", st);
        said = read_to_eof(err);
        close(err);
        cr_assert(strstr(said, probe_says), "the old data plane's log:\n%s", said);
        now = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && now > 0 && now != old, "a data plane of this version serves: %s", detail);
        log = daemon_log(&d);
        cr_assert(strstr(log, "draining and replacing it"), "%s", log);
        cr_assert(strstr(log, how), "%s", log);
        free(log);
        args[2] = sock;
        expect_echo(args, "served");
        free(said);
        free(sock);
}

TestSuite(dpversion, .fini = sandbox_fini, .timeout = 120);

Test(dpversion, a_data_plane_of_version_2_is_sent_sigterm_and_replaced)
{
        char says[64];

        snprintf(says, sizeof(says), "answered request 64 of version %u\n", ELVIS_DPP_VERSION);
        other_version_is_replaced("2", "stopped (SIGTERM)", says);
}

/* the upgrade from the previous release: version 3 knows STOP */
Test(dpversion, a_data_plane_of_version_3_is_sent_stop_and_replaced)
{
        char says[64];

        snprintf(says, sizeof(says), "answered request 64 of version %u: stopping\n", ELVIS_DPP_VERSION);
        other_version_is_replaced("3", "stopped (STOP)", says);
}

/* A newer data plane came with a package this manager predates: stopping it would be
 * undone by its socket unit at once, over and over. It is left serving, and the manager
 * says to restart itself. */
Test(dpversion, a_data_plane_of_a_later_version_is_left_running)
{
        char detail[256], later[16], *log = NULL;
        pid_t newer;
        bool ok = true;
        double ms;
        int err;

        daemon_init(&d, ELVIS_MANAGER);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user-process");
        /* a first run lays out the run directory; its data plane goes with it */
        cr_assert_eq(daemon_start(&d), 0);
        dp_pid = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && dp_pid > 0, "%s", detail);
        cr_assert_eq(daemon_stop(&d), 0);
        dataplane_end(dp_pid);
        dp_pid = 0;
        snprintf(later, sizeof(later), "%u", ELVIS_DPP_VERSION + 1);
        newer = probes[0] = probe_start(d.run_dir, "--probe-speak", later, &err);
        cr_assert_eq(daemon_start(&d), 0);
        /* the manager's attempt is logged; the data plane is never stopped */
        for (int i = 0; i < 100; i++) {
                free(log);
                log = daemon_log(&d);
                if (strstr(log, "newer than this manager's"))
                        break;
                usleep(100000);
        }
        cr_assert(strstr(log, "newer than this manager's"), "%s", log);
        cr_assert(strstr(log, "restart elvis-manager"), "%s", log);
        cr_assert_null(strstr(log, "draining and replacing it"), "%s", log);
        free(log);
        health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert_not(ok, "health says the data plane is not usable: %s", detail);
        cr_assert_eq(kill(newer, 0), 0, "the newer data plane still runs");
        cr_assert_eq(waitpid(newer, NULL, WNOHANG), 0, "and has not exited");
        close(err);
}

TestSuite(dpdefault, .fini = teardown, .timeout = 120);

/* The default (no --dataplane, no elvis.ko): the user-space data plane runs in an
 * elvis-dataplane process the manager starts, never inside the manager. */
Test(dpdefault, without_elvis_ko_the_default_is_the_elvis_dataplane_process)
{
        const char *args[] = { GUEST, "--socket", NULL, "--mode", "stream", "--seconds", "2", NULL };
        char detail[256], path[64], comm[32] = "", *sock, *log;
        struct resp r;
        bool ok;
        double ms;
        FILE *f;

        if (access("/dev/elvis", F_OK) == 0)
                cr_skip_test("elvis.ko is loaded here: auto picks the kernel data plane");
        daemon_init(&d, ELVIS_MANAGER);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "kind")),
                         "user-process", "%s", r.body);
        resp_free(&r);
        dp_pid = health_pid(detail, sizeof(detail), &ok, &ms);
        cr_assert(ok && dp_pid > 0, "health names the elvis-dataplane pid: %s", detail);
        cr_assert_neq(dp_pid, d.pid, "the data plane is not the manager");
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)dp_pid);
        f = fopen(path, "r");
        cr_assert_not_null(f, "pid %d runs", (int)dp_pid);
        cr_assert_not_null(fgets(comm, sizeof(comm), f));
        fclose(f);
        cr_assert_str_eq(comm, "elvis-dataplane\n");
        sock = add_vm("default");
        args[2] = sock;
        expect_echo(args, "served by the default data plane");
        log = daemon_log(&d);
        cr_assert_null(strstr(log, "in-process data plane"), "no in-process warning by default:\n%s", log);
        free(log);
        free(sock);
        cr_assert_eq(daemon_stop(&d), 0);
        cr_assert_eq(kill(dp_pid, 0), 0, "the data plane outlives the manager");
        dataplane_end(dp_pid);
        dp_pid = 0;
}
