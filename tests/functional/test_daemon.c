/* Functional tests of the elvis-manager process: sd_notify protocol, signals, SIGHUP
 * reload, --check-config goldens, usage errors, single instance, TLS listener,
 * daemonizing, the metrics listener, structured journal fields. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "../lib/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONFDIR ELVIS_SOURCE_DIR "/tests/data/config"

static struct daemon d;

static void setup(void)
{
        daemon_init(&d, ELVIS_MANAGER_FAKE);
}

static void teardown(void)
{
        daemon_cleanup(&d);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 90);

Test(daemon, notify_ready_status_stopping)
{
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert(daemon_wait_notify(&d, "STATUS=0 VMs, 0 sidecores, user-process data plane running", 5000), "%s",
                  d.notify_log);
        {
                struct resp r;
                cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\":\"a\",\"devices\":[{\"backend\":\"loopback\"}]}",
                                       &r), 0);
                cr_assert_eq(r.status, 201);
                resp_free(&r);
        }
        cr_assert(daemon_wait_notify(&d, "STATUS=1 VMs, 1 sidecores", 5000), "%s", d.notify_log);
        cr_assert_eq(daemon_stop(&d), 0);
        cr_assert(strstr(d.notify_log, "STOPPING=1"), "%s", d.notify_log);
        cr_assert_lt(strstr(d.notify_log, "READY=1") - d.notify_log, strstr(d.notify_log, "STOPPING=1") - d.notify_log);
}

/* auto prefers elvis.ko, but a module the daemon cannot drive must not leave it serving
 * nothing; asking for the kernel data plane explicitly reports the failure instead. */
Test(daemon, auto_falls_back_to_user_process_when_the_module_cannot_be_driven)
{
        struct resp r;

        daemon_env(&d, "ELVIS_FAKE_KERNEL=unusable");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert(daemon_wait_notify(&d, "user-process data plane running", 5000), "%s", d.notify_log);
        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "kind")),
                         "user-process");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "state")), "running");
        resp_free(&r);
        cr_assert_eq(daemon_stop(&d), 0);
}

/* The in-process plane stays an explicit choice (development, tests, benchmarks), and
 * the daemon says what it costs. */
Test(daemon, explicit_user_is_the_in_process_plane_and_says_so)
{
        struct resp r;
        char *log;

        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "kind")), "user");
        resp_free(&r);
        log = daemon_log(&d);
        cr_assert(strstr(log, "the in-process data plane"), "%s", log);
        free(log);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, explicit_kernel_that_cannot_be_driven_reports_it)
{
        struct resp r;
        const char *detail;

        daemon_env(&d, "ELVIS_FAKE_KERNEL=unusable");
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "kernel");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "state")), "failed",
                         "%s", json_dumps(r.json, 0));
        detail = json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "detail"));
        cr_assert(detail && strstr(detail, "Permission denied"), "%s", detail ? detail : "(none)");
        resp_free(&r);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, watchdog_pings)
{
        daemon_env(&d, "WATCHDOG_USEC=200000");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert(daemon_wait_notify(&d, "WATCHDOG=1", 3000), "no WATCHDOG=1 within 3 s: %s", d.notify_log);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, no_watchdog_without_watchdog_usec)
{
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_not(daemon_wait_notify(&d, "WATCHDOG=1", 500));
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, sigint_is_graceful_too)
{
        int status;

        cr_assert_eq(daemon_start(&d), 0);
        kill(d.pid, SIGINT);
        cr_assert_eq(waitpid(d.pid, &status, 0), d.pid);
        d.pid = -1;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        cr_assert_neq(access(d.sock, F_OK), 0, "socket removed on exit");
}

Test(daemon, sighup_reloads_config)
{
        char conf[160], arg[200], *log;
        FILE *f;

        snprintf(conf, sizeof(conf), "%s/elvis.conf", d.dir);
        f = fopen(conf, "w");
        fputs("log-level = info\n", f);
        fclose(f);
        /* the harness passes --config ""; a later flag wins */
        snprintf(arg, sizeof(arg), "--config=%s", conf);
        daemon_arg(&d, arg);
        cr_assert_eq(daemon_start(&d), 0);
        f = fopen(conf, "w");
        fputs("reserved-cpus = 0\npid-file = /tmp/elsewhere.pid\n", f);
        fclose(f);
        daemon_notify_reset(&d);
        kill(d.pid, SIGHUP);
        cr_assert(daemon_wait_notify(&d, "RELOADING=1", 5000));
        cr_assert(daemon_wait_notify(&d, "READY=1", 5000));
        f = fopen(conf, "w");
        fputs("cpus = banana\n", f);
        fclose(f);
        daemon_notify_reset(&d);
        kill(d.pid, SIGHUP);
        cr_assert(daemon_wait_notify(&d, "READY=1", 5000));
        cr_assert(daemon_alive(&d), "a bad config on reload does not kill the daemon");
        cr_assert_eq(daemon_stop(&d), 0);
        log = daemon_log(&d);
        cr_assert(strstr(log, "'pid-file' changed; it takes effect when elvis-manager restarts"), "%s", log);
        cr_assert(strstr(log, "/elvis.conf: 0 change(s) applied, 1 at the next restart"), "%s", log);
        cr_assert(strstr(log, "cpus: invalid CPU list 'banana'"), "%s", log);
        cr_assert(strstr(log, "configuration not reloaded"), "%s", log);
        free(log);
}

/* --config "": a SIGHUP has nothing to read, and the log says that rather than
 * "reloading " and silence. */
Test(daemon, sighup_without_a_config_file_says_so)
{
        char *log;

        cr_assert_eq(daemon_start(&d), 0);
        d.notify_log[0] = '\0';
        kill(d.pid, SIGHUP);
        cr_assert(daemon_wait_notify(&d, "RELOADING=1", 5000));
        cr_assert(daemon_wait_notify(&d, "READY=1", 5000), "%s", d.notify_log);
        cr_assert_eq(daemon_stop(&d), 0);
        log = daemon_log(&d);
        cr_assert(strstr(log, "received SIGHUP: no configuration file to reload (started with --config \"\"); "
                              "the command line's settings stay in effect"), "%s", log);
        cr_assert_null(strstr(log, "reloading"), "%s", log);
        free(log);
}

/* Runs the daemon on a topology file that is not XML, so that it logs one error and
 * exits, with stderr on a pseudo-terminal (tty) or a pipe; returns what it wrote. */
static char *log_of_failed_start(bool tty)
{
        char topo[160], buf[4096], *out = NULL;
        const char *argv[] = { ELVIS_MANAGER_FAKE, "--foreground", "--config", "", "--libvirt-uri", "none",
                               "--topology-xml", topo, NULL };
        size_t len = 0;
        int fds[2], status;
        ssize_t n;
        FILE *f;
        pid_t pid;

        snprintf(topo, sizeof(topo), "%s/not-xml", d.dir);
        f = fopen(topo, "w");
        cr_assert_not_null(f);
        fputs("not an hwloc topology\n", f);
        fclose(f);
        if (tty)
                cr_assert_eq(openpty(&fds[0], &fds[1], NULL, NULL, NULL), 0);
        else
                cr_assert_eq(pipe(fds), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                dup2(fds[1], STDERR_FILENO);
                close(fds[0]);
                close(fds[1]);
                execv(argv[0], (char **)argv);
                _exit(127);
        }
        close(fds[1]);
        /* a pty's master reads EIO once the last slave is closed: that is its end of file */
        while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
                out = realloc(out, len + (size_t)n + 1);
                memcpy(out + len, buf, (size_t)n);
                len += (size_t)n;
        }
        close(fds[0]);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
        cr_assert_not_null(out, "the daemon logged nothing");
        out[len] = '\0';
        return out;
}

/* "<3>" tells journald a line's priority; on a terminal it is noise. */
Test(daemon, a_terminal_gets_no_priority_prefixes)
{
        char *log = log_of_failed_start(true);

        cr_assert(strstr(log, "topology: "), "%s", log);
        cr_assert_null(strchr(log, '<'), "priority prefix on a terminal: %s", log);
        free(log);
        log = log_of_failed_start(false);
        cr_assert_eq(strncmp(log, "<3>topology: ", 13), 0, "journald (a pipe) keeps the prefixes: %s", log);
        free(log);
}

Test(daemon, second_instance_refuses_the_socket)
{
        struct daemon two;
        char *log;

        cr_assert_eq(daemon_start(&d), 0);
        daemon_init(&two, ELVIS_MANAGER_FAKE);
        snprintf(two.sock, sizeof(two.sock), "%s", d.sock);
        cr_assert_neq(daemon_start(&two), 0);
        log = daemon_log(&two);
        cr_assert(strstr(log, "another elvis-manager is already listening"), "%s", log);
        free(log);
        daemon_cleanup(&two);
        cr_assert(daemon_alive(&d));
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, stale_socket_is_replaced)
{
        cr_assert_eq(daemon_start(&d), 0);
        daemon_kill9(&d);
        cr_assert_eq(access(d.sock, F_OK), 0, "kill -9 leaves the socket file");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(daemon_stop(&d), 0);
}

struct golden {
        char name[32];
        int status;
};

ParameterizedTestParameters(check_config, golden)
{
        static struct golden g[] = {
                { "ok-minimal", 0 }, { "ok-full", 0 }, { "bad-unknown-key", 1 }, { "bad-cpulist", 1 },
                { "bad-listen-no-tls", 1 }, { "bad-multiple", 1 }, { "bad-tls-missing", 1 }, { "bad-duplicate", 1 },
        };
        return cr_make_param_array(struct golden, g, sizeof(g) / sizeof(g[0]));
}

ParameterizedTest(struct golden *g, check_config, golden)
{
        char conf[256], expected[256], *out, *err, *want, *p;
        const char *argv[] = { ELVIS_MANAGER, "--config", conf, "--check-config", NULL };
        int st;

        snprintf(conf, sizeof(conf), "%s/%s.conf", CONFDIR, g->name);
        snprintf(expected, sizeof(expected), "%s/%s.out", CONFDIR, g->name);
        st = run_cmd(argv, NULL, &out, &err);
        cr_assert_eq(st, g->status, "%s: exit %d\n%s%s", g->name, st, out, err);
        want = slurp_file(expected);
        /* the golden files name the config directory @DIR@ */
        while ((p = strstr(g->status ? err : out, CONFDIR))) {
                memmove(p + 5, p + strlen(CONFDIR), strlen(p + strlen(CONFDIR)) + 1);
                memcpy(p, "@DIR@", 5);
        }
        cr_assert_str_eq(g->status ? err : out, want, "%s", g->name);
        free(out);
        free(err);
        free(want);
}

Test(cli_flags, version_help_usage)
{
        const char *v[] = { ELVIS_MANAGER, "--version", NULL };
        const char *h[] = { ELVIS_MANAGER, "--help", NULL };
        const char *u[] = { ELVIS_MANAGER, "--frobnicate", NULL };
        char *out, *err;

        cr_assert_eq(run_cmd(v, NULL, &out, &err), 0);
        cr_assert(strncmp(out, "elvis-manager ", 14) == 0, "%s", out);
        free(out);
        free(err);
        cr_assert_eq(run_cmd(h, NULL, &out, &err), 0);
        cr_assert(strstr(out, "--reserved-cpus LIST"), "%s", out);
        cr_assert(strstr(out, "--check-config"));
        free(out);
        free(err);
        cr_assert_eq(run_cmd(u, NULL, &out, &err), 2, "usage errors exit 2");
        cr_assert(strstr(err, "unknown option '--frobnicate'"), "%s", err);
        free(out);
        free(err);
}

Test(daemon, daemonizes_and_returns_when_ready)
{
        char pidfile[160], pidarg[200], *pidtext;
        const char *argv[] = { ELVIS_MANAGER_FAKE, "--config", "", "--socket", d.sock, "--state-dir", d.state_dir,
                               "--run-dir", d.run_dir, "--libvirt-uri", "none", pidarg, NULL };
        struct resp r;
        pid_t pid;

        snprintf(pidfile, sizeof(pidfile), "%s/elvis.pid", d.dir);
        snprintf(pidarg, sizeof(pidarg), "--pid-file=%s", pidfile);
        cr_assert_eq(run_cmd(argv, NULL, NULL, NULL), 0, "the parent exits 0 once the API is up");
        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0, "API answers right after the parent returned");
        cr_assert_eq(r.status, 200);
        resp_free(&r);
        pidtext = slurp_file(pidfile);
        pid = (pid_t)atoi(pidtext);
        free(pidtext);
        cr_assert_gt(pid, 1);
        cr_assert_eq(kill(pid, SIGTERM), 0);
        for (int i = 0; i < 500 && kill(pid, 0) == 0; i++)
                usleep(10000);  /* not our child: no waitpid; bounded */
        cr_assert_neq(kill(pid, 0), 0, "daemon stopped");
}

Test(daemon, daemonize_reports_startup_failure)
{
        const char *argv[] = { ELVIS_MANAGER_FAKE, "--config", "", "--socket", "/proc/nonexistent/elvis.sock",
                               "--state-dir", d.state_dir, "--run-dir", d.run_dir, "--libvirt-uri", "none", NULL };

        cr_assert_eq(run_cmd(argv, NULL, NULL, NULL), 1, "the parent reports a child that failed to start");
}

/* A TCP port on 127.0.0.1 that nothing uses now (the kernel's pick), for a listener of the
 * daemon: tests running side by side never share one. */
static int free_port(void)
{
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        port = ntohs(sa.sin_port);
        close(fd);
        return port;
}

static void make_tls(const char *dir, char *cert, char *key, char *token, size_t len)
{
        char cmd[1024];
        FILE *f;

        snprintf(cert, len, "%s/cert.pem", dir);
        snprintf(key, len, "%s/key.pem", dir);
        snprintf(token, len, "%s/token", dir);
        snprintf(cmd, sizeof(cmd),
                 "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj /CN=localhost "
                 "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1", key, cert);
        cr_assert_eq(system(cmd), 0, "openssl is needed for this test (scripts/deps installs it)");
        f = fopen(token, "w");
        fputs("s3cret-token-0123456789\n", f);
        fclose(f);
}

static long tls_get(const char *url, const char *cacert, const char *auth)
{
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        long status = -1;

        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fwrite);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, stderr);
        if (auth) {
                h = curl_slist_append(h, auth);
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        }
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return status;
}

/* Starts the daemon with a TLS listener on 127.0.0.1:port; the certificate's path in cert. */
static void start_tls(int port, char *cert, size_t len)
{
        static char key[160], token[160], a1[200], a2[200], a3[200], listen[64];

        make_tls(d.dir, cert, key, token, len < sizeof(key) ? len : sizeof(key));
        snprintf(a1, sizeof(a1), "--tls-cert=%s", cert);
        snprintf(a2, sizeof(a2), "--tls-key=%s", key);
        snprintf(a3, sizeof(a3), "--token-file=%s", token);
        snprintf(listen, sizeof(listen), "--listen=127.0.0.1:%d", port);
        daemon_arg(&d, listen);
        daemon_arg(&d, a1);
        daemon_arg(&d, a2);
        daemon_arg(&d, a3);
        cr_assert_eq(daemon_start(&d), 0);
}

Test(daemon, tls_listener_requires_token)
{
        char cert[160], url[64];
        int port = free_port();

        start_tls(port, cert, sizeof(cert));
        snprintf(url, sizeof(url), "https://localhost:%d/v1/health", port);
        cr_assert_eq(tls_get(url, cert, NULL), 401, "no token");
        cr_assert_eq(tls_get(url, cert, "Authorization: Bearer wrong-token-0123456789"), 401);
        cr_assert_eq(tls_get(url, cert, "Authorization: Bearer s3cret-token-0123456789"), 200);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/health", port);
        cr_assert_neq(tls_get(url, cert, "Authorization: Bearer s3cret-token-0123456789"), 200, "plain HTTP refused");
        cr_assert_eq(daemon_stop(&d), 0);
}

static int tcp_connect(int port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* The server closed it: EOF or a reset within ms. */
static bool closed_by_server(int fd, int ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char c;
        int r;

        do
                r = poll(&p, 1, ms);
        while (r < 0 && errno == EINTR);
        if (r != 1)
                return false;
        /* whatever it says on the way out (a TLS alert), then end of stream */
        for (int i = 0; i < 64; i++) {
                r = (int)read(fd, &c, 1);
                if (r <= 0)
                        return true;
                if (poll(&p, 1, 1000) != 1)
                        return false;
        }
        return false;
}

/* Unauthenticated clients on the TCP listener: one address holds at most 8 connections,
 * silent ones (no TLS handshake) are dropped after the listener's 10 s timeout, and the
 * unix API answers promptly all along. */
/* 40 connections from one address: those beyond the per-address cap are dropped at once,
 * and one that never speaks goes when the handshake timeout passes, not before. */
static void listener_limits_hold(int port)
{
        int fds[40], nfd = 0, dropped = 0, silent;
        struct timespec t0, t1;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        silent = tcp_connect(port);
        cr_assert_geq(silent, 0);
        for (int i = 0; i < 40; i++) {
                int fd = tcp_connect(port);
                if (fd >= 0)
                        fds[nfd++] = fd;
        }
        for (int i = 0; i < nfd; i++)
                dropped += closed_by_server(fds[i], i < 8 ? 50 : 1000);
        cr_assert_geq(dropped, nfd - 7, "%d of %d connections beyond the per-address cap were dropped", dropped, nfd);
        for (int i = 0; i < nfd; i++)
                close(fds[i]);
        /* the silent one goes within the handshake timeout */
        cr_assert(closed_by_server(silent, 15000), "a client that never speaks keeps its connection");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_geq(t1.tv_sec - t0.tv_sec, 8, "dropped only after the timeout, not at once");
        close(silent);
}

Test(daemon, tcp_listener_limits_unauthenticated_clients)
{
        char cert[160], url[64];
        int port = free_port();
        struct api_probe probe;

        start_tls(port, cert, sizeof(cert));
        api_probe_start(&probe, &d);
        listener_limits_hold(port);
        api_probe_stop(&probe);
        cr_assert_eq(probe.failed, 0);
        cr_assert_lt(api_probe_max_ms(&probe), 1000.0, "an API request took %.0f ms", api_probe_max_ms(&probe));
        /* a real client still gets in */
        snprintf(url, sizeof(url), "https://localhost:%d/v1/health", port);
        cr_assert_eq(tls_get(url, cert, "Authorization: Bearer s3cret-token-0123456789"), 200);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, tcp_without_tls_refuses_to_start)
{
        const char *argv[] = { ELVIS_MANAGER, "--config", "", "--foreground", "--listen", "127.0.0.1:1", "--socket",
                               d.sock, "--state-dir", d.state_dir, "--run-dir", d.run_dir, NULL };
        char *out, *err;

        cr_assert_eq(run_cmd(argv, NULL, &out, &err), 1);
        cr_assert(strstr(err, "listen requires tls-cert, tls-key and token-file"), "%s", err);
        free(out);
        free(err);
}

/* The unit runs the daemon with UMask=0077: what others must reach keeps its mode (run-dir
 * 0755 for the VMMs, the API socket 0660 and its directory 0755 for socket-group). */
Test(daemon, modes_do_not_depend_on_the_umask)
{
        char sock[200], arg[220];
        struct stat st;
        mode_t old = umask(0077);

        snprintf(sock, sizeof(sock), "%s/api/elvis.sock", d.dir);
        snprintf(arg, sizeof(arg), "--socket=%s", sock);
        daemon_arg(&d, arg);
        cr_assert_eq(daemon_start(&d), 0);
        umask(old);
        cr_assert_eq(stat(d.run_dir, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0755, "run-dir is %o", st.st_mode & 07777);
        *strrchr(sock, '/') = '\0';
        cr_assert_eq(stat(sock, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0755, "the API socket's directory is %o", st.st_mode & 07777);
        strcat(sock, "/elvis.sock");
        cr_assert_eq(stat(sock, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0660, "the API socket is %o", st.st_mode & 07777);
        cr_assert_eq(daemon_stop(&d), 0);
}

/* A request to a TCP URL: status (-1 when no answer), body and Allow header in r. */
static long url_request(const char *method, const char *url, const char *cacert, const char *body, struct resp *r)
{
        CURL *c = curl_easy_init();
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        char *data = NULL, *headers = NULL;
        size_t dlen = 0, hlen = 0;
        FILE *df = open_memstream(&data, &dlen), *hf = open_memstream(&headers, &hlen);
        const char *allow;

        memset(r, 0, sizeof(*r));
        r->status = -1;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, df);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, hf);
        if (cacert)
                curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
        if (!strcmp(method, "HEAD"))
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        if (body) {
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        }
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        fclose(df);
        fclose(hf);
        r->body = data;
        allow = strcasestr(headers, "\nAllow: ");
        if (allow)
                snprintf(r->allow, sizeof(r->allow), "%.*s", (int)strcspn(allow + 8, "\r\n"), allow + 8);
        free(headers);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return r->status;
}


/* --metrics-listen: GET /metrics without a token; nothing else of the API, read or write. */
Test(daemon, metrics_listener_serves_metrics_only)
{
        static char listen[64];
        int port = free_port();
        char base[64], url[128];
        struct resp r;

        snprintf(listen, sizeof(listen), "--metrics-listen=127.0.0.1:%d", port);
        daemon_arg(&d, listen);
        cr_assert_eq(daemon_start(&d), 0);
        snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

        snprintf(url, sizeof(url), "%s/metrics", base);
        cr_assert_eq(url_request("GET", url, NULL, NULL, &r), 200);
        cr_assert(strstr(r.body, "\nelvis_vms 0\n"), "%s", r.body);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\":\"m1\",\"devices\":[{\"backend\":\"loopback\"}]}", &r), 0);
        cr_assert_eq(r.status, 201);
        resp_free(&r);
        cr_assert_eq(url_request("GET", url, NULL, NULL, &r), 200, "no token needed");
        cr_assert(strstr(r.body, "\nelvis_vms 1\n"), "live figures: %s", r.body);
        cr_assert(strstr(r.body, "elvis_vm_weight{vm=\"1\",vm_name=\"m1\"}"), "%s", r.body);
        resp_free(&r);
        cr_assert_eq(url_request("HEAD", url, NULL, NULL, &r), 200);
        resp_free(&r);
        cr_assert_eq(url_request("POST", url, NULL, "{}", &r), 405);
        cr_assert_str_eq(r.allow, "GET, HEAD");
        resp_free(&r);

        /* the read-write API is not there */
        snprintf(url, sizeof(url), "%s/v1/vms", base);
        cr_assert_eq(url_request("POST", url, NULL, "{\"name\":\"m2\",\"devices\":[{\"backend\":\"loopback\"}]}", &r),
                     404);
        resp_free(&r);
        cr_assert_eq(url_request("GET", url, NULL, NULL, &r), 404);
        resp_free(&r);
        snprintf(url, sizeof(url), "%s/v1/vms/1", base);
        cr_assert_eq(url_request("DELETE", url, NULL, NULL, &r), 404);
        resp_free(&r);
        snprintf(url, sizeof(url), "%s/v1/policy", base);
        cr_assert_eq(url_request("PUT", url, NULL, "{\"mode\":\"dynamic\"}", &r), 404);
        resp_free(&r);
        snprintf(url, sizeof(url), "%s/v1/health", base);
        cr_assert_eq(url_request("GET", url, NULL, NULL, &r), 404);
        resp_free(&r);
        cr_assert_eq(http_count(&d, "/v1/vms", "vms"), 1, "nothing changed through the metrics listener");
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, metrics_listener_with_tls)
{
        static char listen[64], a1[200], a2[200];
        char cert[160], key[160], token[160], url[128];
        int port = free_port();
        struct resp r;

        make_tls(d.dir, cert, key, token, sizeof(cert));
        snprintf(listen, sizeof(listen), "--metrics-listen=127.0.0.1:%d", port);
        snprintf(a1, sizeof(a1), "--metrics-tls-cert=%s", cert);
        snprintf(a2, sizeof(a2), "--metrics-tls-key=%s", key);
        daemon_arg(&d, listen);
        daemon_arg(&d, a1);
        daemon_arg(&d, a2);
        cr_assert_eq(daemon_start(&d), 0);
        snprintf(url, sizeof(url), "https://localhost:%d/metrics", port);
        cr_assert_eq(url_request("GET", url, cert, NULL, &r), 200, "TLS, no token");
        cr_assert(strstr(r.body, "# TYPE elvis_vms gauge"), "%s", r.body);
        resp_free(&r);
        snprintf(url, sizeof(url), "https://localhost:%d/v1/vms", port);
        cr_assert_eq(url_request("GET", url, cert, NULL, &r), 404);
        resp_free(&r);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
        cr_assert_neq(url_request("GET", url, NULL, NULL, &r), 200, "plain HTTP refused");
        resp_free(&r);
        cr_assert_eq(daemon_stop(&d), 0);
}

/* The metrics listener takes the TCP API's limits: 8 connections from one address, and
 * a connection that says nothing goes after 10 s. */
Test(daemon, metrics_listener_limits_clients)
{
        static char listen[64];
        int port = free_port();
        char url[128];
        struct resp r;

        snprintf(listen, sizeof(listen), "--metrics-listen=127.0.0.1:%d", port);
        daemon_arg(&d, listen);
        cr_assert_eq(daemon_start(&d), 0);
        listener_limits_hold(port);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
        cr_assert_eq(url_request("GET", url, NULL, NULL, &r), 200, "a real scraper still gets in");
        resp_free(&r);
        cr_assert_eq(daemon_stop(&d), 0);
}

/* journald, played by the test: a datagram socket at /run/systemd/journal/socket in a
 * private mount namespace (the host's journal never sees these messages). A thread decodes
 * every datagram of the native protocol into "KEY=value\n" lines, as journald reads them. */
struct fake_journal {
        int fd;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *entries[512];
        unsigned n;
};

static char *journal_decode(const char *p, size_t len)
{
        char *out = NULL;
        size_t outlen = 0;
        FILE *f = open_memstream(&out, &outlen);
        const char *end = p + len;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p)), *eq;
                uint64_t size = 0;

                if (!nl)
                        break;
                eq = memchr(p, '=', (size_t)(nl - p));
                if (eq) {                               /* KEY=value\n */
                        fwrite(p, 1, (size_t)(nl - p) + 1, f);
                        p = nl + 1;
                        continue;
                }
                /* KEY\n, a little-endian 64-bit size, the value, \n */
                if ((size_t)(end - nl - 1) < 8)
                        break;
                for (int i = 7; i >= 0; i--)
                        size = size << 8 | (unsigned char)nl[1 + i];
                if (size > (uint64_t)(end - nl - 9))
                        break;
                fprintf(f, "%.*s=%.*s\n", (int)(nl - p), p, (int)size, nl + 9);
                p = nl + 9 + size + 1;
        }
        fclose(f);
        return out;
}

static void *journal_reader(void *userdata)
{
        struct fake_journal *j = userdata;
        static char buf[65536];
        ssize_t n;

        while ((n = recv(j->fd, buf, sizeof(buf), 0)) >= 0) {
                char *e = journal_decode(buf, (size_t)n);
                pthread_mutex_lock(&j->lock);
                if (j->n < sizeof(j->entries) / sizeof(j->entries[0]))
                        j->entries[j->n++] = e;
                else
                        free(e);
                pthread_cond_broadcast(&j->cond);
                pthread_mutex_unlock(&j->lock);
        }
        return NULL;
}

static void fake_journal_start(struct fake_journal *j)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket" };
        const char *top = access("/run/systemd", F_OK) == 0 ? "/run/systemd" : "/run";
        pthread_condattr_t ca;
        pthread_t t;

        /* a mount namespace is per thread: the daemon, spawned from this one, inherits it */
        if (unshare(CLONE_NEWNS) < 0)
                cr_skip_test("no private mount namespace for a fake journald (%s): this test needs root",
                             strerror(errno));
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
        cr_assert_eq(mount("tmpfs", top, "tmpfs", 0, "mode=0755"), 0, "%s", strerror(errno));
        cr_assert(mkdir("/run/systemd", 0755) == 0 || errno == EEXIST);
        cr_assert_eq(mkdir("/run/systemd/journal", 0755), 0);
        j->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(bind(j->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
        pthread_mutex_init(&j->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cond, &ca);
        cr_assert_eq(pthread_create(&t, NULL, journal_reader, j), 0);
        pthread_detach(t);              /* blocked in recv until the test's process ends */
}

/* The first entry containing every needle (NULL terminated), waiting up to ms; a copy. */
static char *journal_wait(struct fake_journal *j, int ms, const char *const *needles)
{
        struct timespec until;
        char *found = NULL;
        unsigned seen = 0;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&j->lock);
        while (!found) {
                for (; seen < j->n && !found; seen++) {
                        bool all = true;
                        for (const char *const *nd = needles; *nd && all; nd++)
                                all = strstr(j->entries[seen], *nd) != NULL;
                        if (all)
                                found = strdup(j->entries[seen]);
                }
                if (!found && pthread_cond_timedwait(&j->cond, &j->lock, &until) != 0)
                        break;
        }
        pthread_mutex_unlock(&j->lock);
        return found;
}

/* Under journald (stderr is the stream $JOURNAL_STREAM names), messages go through the
 * native protocol with their priority, code location and what they concern. */
Test(daemon, journal_gets_structured_fields)
{
        static struct fake_journal j;
        static char stream[96];
        struct stat st;
        struct resp r;
        char sc_field[64], *e, *log;
        int fd;

        fake_journal_start(&j);
        fd = open(d.log_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(fstat(fd, &st), 0);
        close(fd);
        snprintf(stream, sizeof(stream), "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        daemon_env(&d, stream);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml");
        cr_assert_eq(daemon_start(&d), 0);

        cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\":\"jv\",\"devices\":[{\"backend\":\"loopback\"}]}", &r),
                     0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        resp_free(&r);
        e = journal_wait(&j, 5000, (const char *const[]){ "MESSAGE=VM 1 'jv' added", NULL });
        cr_assert_not_null(e, "no journal entry for the new VM");
        cr_assert(strstr(e, "\nPRIORITY=5\n"), "%s", e);
        cr_assert(strstr(e, "\nELVIS_VM=jv\n"), "%s", e);
        cr_assert(strstr(e, "\nELVIS_VM_ID=1\n"), "%s", e);
        cr_assert(strstr(e, "\nSYSLOG_IDENTIFIER=elvis-manager-fake\n"), "%s", e);
        cr_assert(strstr(e, "daemon/manager.c\n"), "CODE_FILE: %s", e);
        cr_assert(strstr(e, "\nCODE_FUNC=elvis_manager_vm_add\n"), "%s", e);
        cr_assert(strstr(e, "\nCODE_LINE="), "%s", e);
        cr_assert_null(strstr(e, "ELVIS_SIDECORE="), "%s", e);
        free(e);

        cr_assert_eq(http_json(&d, "POST", "/v1/sidecores", NULL, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        snprintf(sc_field, sizeof(sc_field), "\nELVIS_SIDECORE=%lld\n", json_integer_value(json_object_get(r.json, "id")));
        resp_free(&r);
        e = journal_wait(&j, 5000, (const char *const[]){ "MESSAGE=sidecore ", sc_field, NULL });
        cr_assert_not_null(e, "no journal entry with%s", sc_field);
        cr_assert_null(strstr(e, "ELVIS_VM="), "%s", e);
        free(e);

        cr_assert_eq(daemon_stop(&d), 0);
        e = journal_wait(&j, 5000, (const char *const[]){ "MESSAGE=elvis-manager stopped\n", "\nPRIORITY=5\n", NULL });
        cr_assert_not_null(e, "the last message reaches the journal too");
        free(e);
        log = daemon_log(&d);
        cr_assert_null(strstr(log, "'jv' added"), "journald got it, stderr did not: %s", log);
        free(log);
}

/* The same daemon, with $JOURNAL_STREAM naming another file: stderr lines with priority
 * prefixes, as before. */
Test(daemon, journal_stream_of_another_file_keeps_prefixed_stderr)
{
        static char stream[96];
        struct stat st;
        struct resp r;
        char *log;

        cr_assert_eq(stat("/dev/null", &st), 0);
        snprintf(stream, sizeof(stream), "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        daemon_env(&d, stream);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\":\"pv\",\"devices\":[{\"backend\":\"loopback\"}]}", &r),
                     0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(daemon_stop(&d), 0);
        log = daemon_log(&d);
        cr_assert(strstr(log, "<5>VM 1 'pv' added"), "%s", log);
        free(log);
}
