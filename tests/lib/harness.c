/* Functional-test harness implementation. */
#include "harness.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_notify_reader(struct daemon *d);

void daemon_init(struct daemon *d, const char *binary)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        memset(d, 0, sizeof(*d));
        d->binary = binary;
        /* the ThreadSanitizer run: the same tests against a TSan-built daemon (Criterion
         * itself does not run under TSan) */
        if (!strcmp(binary, ELVIS_MANAGER) && getenv("ELVIS_TEST_MANAGER") && *getenv("ELVIS_TEST_MANAGER"))
                d->binary = getenv("ELVIS_TEST_MANAGER");
        d->pid = -1;
        snprintf(d->dir, sizeof(d->dir), "/tmp/elvis-ft-XXXXXX");
        cr_assert_not_null(mkdtemp(d->dir));
        snprintf(d->sock, sizeof(d->sock), "%s/api.sock", d->dir);
        snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->dir);
        snprintf(d->run_dir, sizeof(d->run_dir), "%s/run", d->dir);
        snprintf(d->log_path, sizeof(d->log_path), "%s/daemon.log", d->dir);
        snprintf(d->notify_path, sizeof(d->notify_path), "%s/notify", d->dir);
        d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(d->notify_fd, 0);
        cr_assert_lt(strlen(d->notify_path), sizeof(sa.sun_path));
        memcpy(sa.sun_path, d->notify_path, strlen(d->notify_path) + 1);
        cr_assert_eq(bind(d->notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        start_notify_reader(d);
}

void daemon_arg(struct daemon *d, const char *arg)
{
        size_t i = 0;
        while (d->extra[i])
                i++;
        cr_assert_lt(i, 15);
        d->extra[i] = arg;
}

void daemon_env(struct daemon *d, const char *kv)
{
        size_t i = 0;
        while (d->env[i])
                i++;
        cr_assert_lt(i, 7);
        d->env[i] = kv;
}

/* Moves every datagram waiting on the notify socket into notify_log; notify_lock held. */
static void drain_locked(struct daemon *d)
{
        char buf[4096];
        bool got = false;
        ssize_t n;

        while ((n = recv(d->notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) >= 0) {
                buf[n] = '\0';
                if (strlen(d->notify_log) + (size_t)n + 2 < sizeof(d->notify_log)) {
                        strcat(d->notify_log, buf);
                        strcat(d->notify_log, "\n");
                }
                got = true;
        }
        if (got)
                pthread_cond_broadcast(&d->notify_cond);
}

static void drain(struct daemon *d)
{
        pthread_mutex_lock(&d->notify_lock);
        drain_locked(d);
        pthread_mutex_unlock(&d->notify_lock);
}

static void *notify_reader(void *userdata)
{
        struct daemon *d = userdata;
        struct pollfd p[2] = { { .fd = d->notify_fd, .events = POLLIN }, { .fd = d->notify_quit[0], .events = POLLIN } };

        for (;;) {
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        break;
                if (p[1].revents)
                        break;
                if (p[0].revents)
                        drain(d);
        }
        return NULL;
}

static void start_notify_reader(struct daemon *d)
{
        pthread_condattr_t ca;

        pthread_mutex_init(&d->notify_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&d->notify_cond, &ca);
        pthread_condattr_destroy(&ca);
        cr_assert_eq(pipe2(d->notify_quit, O_CLOEXEC), 0);
        cr_assert_eq(pthread_create(&d->notify_thread, NULL, notify_reader, d), 0);
        d->notify_running = true;
}

static void stop_notify_reader(struct daemon *d)
{
        if (!d->notify_running)
                return;
        if (write(d->notify_quit[1], "q", 1) != 1)
                cr_log_warn("cannot stop the notify reader");
        pthread_join(d->notify_thread, NULL);
        close(d->notify_quit[0]);
        close(d->notify_quit[1]);
        pthread_cond_destroy(&d->notify_cond);
        pthread_mutex_destroy(&d->notify_lock);
        d->notify_running = false;
}

bool daemon_wait_notify(struct daemon *d, const char *needle, int ms)
{
        long deadline = now_ms() + ms;
        bool found;

        pthread_mutex_lock(&d->notify_lock);
        for (;;) {
                long left;
                struct timespec until;

                drain_locked(d);
                found = strstr(d->notify_log, needle) != NULL;
                left = deadline - now_ms();
                if (found || left <= 0)
                        break;
                if (!daemon_alive(d)) {
                        drain_locked(d);        /* whatever it said before it exited */
                        found = strstr(d->notify_log, needle) != NULL;
                        break;
                }
                /* wakes on a message, or after 100 ms to see whether the daemon still runs */
                clock_gettime(CLOCK_MONOTONIC, &until);
                left = left < 100 ? left : 100;
                until.tv_nsec += left * 1000000;
                until.tv_sec += until.tv_nsec / 1000000000;
                until.tv_nsec %= 1000000000;
                pthread_cond_timedwait(&d->notify_cond, &d->notify_lock, &until);
        }
        pthread_mutex_unlock(&d->notify_lock);
        return found;
}

void daemon_notify_reset(struct daemon *d)
{
        pthread_mutex_lock(&d->notify_lock);
        drain_locked(d);
        d->notify_log[0] = '\0';
        pthread_mutex_unlock(&d->notify_lock);
}

bool daemon_alive(struct daemon *d)
{
        int status;

        if (d->pid <= 0)
                return false;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
                d->pid = -1;
                return false;
        }
        return true;
}

int daemon_start(struct daemon *d)
{
        const char *argv[48];
        char *envp[256];
        char notify_env[160];
        size_t n = 0, e = 0;
        posix_spawn_file_actions_t fa;
        pid_t pid;

        argv[n++] = d->binary;
        argv[n++] = "--foreground";
        argv[n++] = "--config";
        argv[n++] = "";
        argv[n++] = "--socket";
        argv[n++] = d->sock;
        argv[n++] = "--state-dir";
        argv[n++] = d->state_dir;
        argv[n++] = "--run-dir";
        argv[n++] = d->run_dir;
        argv[n++] = "--libvirt-uri";
        argv[n++] = "none";
        argv[n++] = "--log-level";
        argv[n++] = "debug";
        for (size_t i = 0; d->extra[i]; i++)
                argv[n++] = d->extra[i];
        argv[n] = NULL;
        snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", d->notify_path);
        for (char **v = environ; *v && e < 200; v++)
                if (strncmp(*v, "NOTIFY_SOCKET=", 14) && strncmp(*v, "WATCHDOG_", 9) && strncmp(*v, "ELVIS_", 6) &&
                    strncmp(*v, "JOURNAL_STREAM=", 15))
                        envp[e++] = *v;
        envp[e++] = notify_env;
        for (size_t i = 0; d->env[i]; i++)
                envp[e++] = (char *)d->env[i];
        envp[e] = NULL;
        daemon_notify_reset(d);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (posix_spawn(&pid, d->binary, &fa, NULL, (char **)argv, envp) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -1;
        }
        posix_spawn_file_actions_destroy(&fa);
        d->pid = pid;
        if (!daemon_wait_notify(d, "READY=1", 15000)) {
                char *log = daemon_log(d);
                fprintf(stderr, "daemon did not become ready; log:\n%s", log);
                free(log);
                if (daemon_alive(d))
                        daemon_kill9(d);
                return -1;
        }
        return 0;
}

static int wait_exit(struct daemon *d, int ms)
{
        long deadline = now_ms() + ms;
        int status;

        while (now_ms() < deadline) {
                pid_t r = waitpid(d->pid, &status, WNOHANG);
                if (r == d->pid) {
                        d->pid = -1;
                        drain(d);       /* every message it sent is in notify_log now */
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
                poll(NULL, 0, 20);      /* no event for a child's exit here: bounded polling */
        }
        return -1;
}

int daemon_stop(struct daemon *d)
{
        int r;

        if (d->pid <= 0)
                return -1;
        kill(d->pid, SIGTERM);
        r = wait_exit(d, 15000);
        if (r < 0)
                daemon_kill9(d);
        return r;
}

void daemon_kill9(struct daemon *d)
{
        if (d->pid <= 0)
                return;
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = -1;
}

void daemon_cleanup(struct daemon *d)
{
        char cmd[128];

        daemon_kill9(d);
        stop_notify_reader(d);
        if (d->notify_fd > 0)
                close(d->notify_fd);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
        if (d->dir[0] && system(cmd) != 0)
                cr_log_warn("cannot remove %s", d->dir);
}

char *slurp_file(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0;

        if (!f)
                return strdup("");
        if (getdelim(&buf, &n, '\0', f) < 0) {
                free(buf);
                buf = strdup("");
        }
        fclose(f);
        return buf;
}

char *daemon_log(struct daemon *d)
{
        return slurp_file(d->log_path);
}

struct buf {
        char *data;
        size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct buf *b = userdata;
        size_t n = size * nmemb;
        char *p = realloc(b->data, b->len + n + 1);

        if (!p)
                return 0;
        b->data = p;
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static void copy_header(const char *line, size_t n, const char *name, char *dst, size_t size)
{
        size_t k = strlen(name);

        if (n > k && strncasecmp(line, name, k) == 0) {
                size_t len = n - k;
                while (len && (line[k + len - 1] == '\r' || line[k + len - 1] == '\n'))
                        len--;
                snprintf(dst, size, "%.*s", (int)len, line + k);
        }
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct resp *r = userdata;
        size_t n = size * nmemb;

        copy_header(ptr, n, "Content-Type: ", r->content_type, sizeof(r->content_type));
        copy_header(ptr, n, "Location: ", r->location, sizeof(r->location));
        copy_header(ptr, n, "Allow: ", r->allow, sizeof(r->allow));
        return n;
}

int http(struct daemon *d, const char *method, const char *path, const char *content_type, const char *body,
         size_t len, struct resp *r)
{
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        struct buf b = { 0 };
        char url[4096], ct[160];
        CURLcode rc;

        memset(r, 0, sizeof(*r));
        snprintf(url, sizeof(url), "http://localhost%s", path);
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
        if (strcmp(method, "HEAD") == 0)
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        /* small bodies go at once; big ones wait for 100-continue so an early 413 arrives cleanly */
        if (len < 65536)
                h = curl_slist_append(h, "Expect:");
        if (content_type) {
                snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
                h = curl_slist_append(h, ct);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        rc = curl_easy_perform(c);
        /* a server may answer (413) and close before the whole body is sent: the answer counts */
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        if (rc != CURLE_OK && r->status > 0)
                rc = CURLE_OK;
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        r->body = b.data ? b.data : strdup("");
        if (strstr(r->content_type, "json"))
                r->json = json_loads(r->body, 0, NULL);
        return rc == CURLE_OK ? 0 : -1;
}

int http_json(struct daemon *d, const char *method, const char *path, const char *body, struct resp *r)
{
        return http(d, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0, r);
}

long http_count(struct daemon *d, const char *path, const char *key)
{
        struct resp r;
        long n = -1;

        if (http_json(d, "GET", path, NULL, &r) == 0 && json_is_array(json_object_get(r.json, key)))
                n = (long)json_array_size(json_object_get(r.json, key));
        resp_free(&r);
        return n;
}

void resp_free(struct resp *r)
{
        free(r->body);
        json_decref(r->json);
        memset(r, 0, sizeof(*r));
}

static char *read_all(int fd)
{
        struct buf b = { 0 };
        char tmp[4096];
        ssize_t n;

        while ((n = read(fd, tmp, sizeof(tmp))) > 0)
                on_data(tmp, 1, (size_t)n, &b);
        return b.data ? b.data : strdup("");
}

int run_cmd(const char *const *argv, const char *const *env, char **out, char **err)
{
        char opath[] = "/tmp/elvis-cmd-out-XXXXXX", epath[] = "/tmp/elvis-cmd-err-XXXXXX";
        int ofd = mkstemp(opath), efd = mkstemp(epath), status = -1;
        posix_spawn_file_actions_t fa;
        char *envp[256];
        size_t e = 0;
        pid_t pid;

        cr_assert(ofd >= 0 && efd >= 0);
        for (char **v = environ; *v && e < 200; v++)
                envp[e++] = *v;
        for (size_t i = 0; env && env[i]; i++)
                envp[e++] = (char *)env[i];
        envp[e] = NULL;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, ofd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
        if (posix_spawn(&pid, argv[0], &fa, NULL, (char **)argv, envp) == 0 && waitpid(pid, &status, 0) == pid)
                status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        posix_spawn_file_actions_destroy(&fa);
        lseek(ofd, 0, SEEK_SET);
        lseek(efd, 0, SEEK_SET);
        if (out)
                *out = read_all(ofd);
        if (err)
                *err = read_all(efd);
        close(ofd);
        close(efd);
        unlink(opath);
        unlink(epath);
        return status;
}

int run_cli(struct daemon *d, char **out, char **err, const char *const *args)
{
        const char *argv[64];
        size_t n = 0;

        argv[n++] = ELVISCTL;
        argv[n++] = "--socket";
        argv[n++] = d->sock;
        for (size_t i = 0; args[i] && n < 62; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        return run_cmd(argv, NULL, out, err);
}

static double mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *probe_main(void *arg)
{
        struct api_probe *p = arg;

        for (unsigned i = 0; !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE) && p->n < API_PROBE_MAX; i++) {
                struct timespec ts = { 0, 100 * 1000000L };
                struct resp r;
                double t0 = mono_ms(), dt;
                int rc = http_json(p->d, "GET", i % 2 ? "/v1/stats" : "/v1/health", NULL, &r);

                dt = mono_ms() - t0;
                if (rc < 0 || r.status != 200) {
                        p->failed++;
                        dt = 20000;
                }
                resp_free(&r);
                p->ms[p->n++] = dt;
                nanosleep(&ts, NULL);
        }
        return NULL;
}

void api_probe_start(struct api_probe *p, struct daemon *d)
{
        memset(p, 0, sizeof(*p));
        p->d = d;
        if (pthread_create(&p->thread, NULL, probe_main, p) != 0)
                cr_assert_fail("cannot start the API probe thread");
}

void api_probe_stop(struct api_probe *p)
{
        __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
        pthread_join(p->thread, NULL);
}

double api_probe_max_ms(const struct api_probe *p)
{
        double m = 0;

        for (unsigned i = 0; i < p->n; i++)
                if (p->ms[i] > m)
                        m = p->ms[i];
        return m;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

double api_probe_p99_ms(const struct api_probe *p)
{
        double sorted[API_PROBE_MAX];

        if (!p->n)
                return 0;
        memcpy(sorted, p->ms, p->n * sizeof(sorted[0]));
        qsort(sorted, p->n, sizeof(sorted[0]), cmp_double);
        return sorted[(p->n * 99) / 100 < p->n ? (p->n * 99) / 100 : p->n - 1];
}

char *testpmd_run(const char *const *sockets, unsigned n, const char *mode, int seconds)
{
        static const char *const tail[] = { "--txpkts=64", "--total-num-mbufs=16384", "--auto-start", "--nb-cores=1",
                                            "--stats-period", "1", "--tx-first", NULL };
        char vdev[8][256], secs[8], prefix[32];
        const char *argv[48] = { "/usr/bin/timeout", secs, "/usr/bin/dpdk-testpmd", "--no-huge", "-m", "256",
                                 "--no-pci", "--file-prefix", prefix, "--lcores", "0@0,1@0" };
        char *out = NULL, *err = NULL;
        unsigned a = 11;

        snprintf(secs, sizeof(secs), "%d", seconds);
        snprintf(prefix, sizeof(prefix), "elvis-ft-%d", getpid());
        for (unsigned i = 0; i < n && i < 8; i++) {
                snprintf(vdev[i], sizeof(vdev[i]), "net_virtio_user%u,path=%s,queues=1,packed_vq=0,in_order=0", i,
                         sockets[i]);
                argv[a++] = "--vdev";
                argv[a++] = vdev[i];
        }
        argv[a++] = "--log-level";
        argv[a++] = "lib.eal:error";
        argv[a++] = "--";
        argv[a++] = "--forward-mode";
        argv[a++] = mode;
        for (unsigned i = 0; tail[i]; i++)
                argv[a++] = tail[i];
        argv[a] = NULL;
        run_cmd(argv, NULL, &out, &err);
        free(err);
        return out;
}

void stream_start(struct bg_stream *b, const char *sock, const char *seconds)
{
        int pipefd[2];

        cr_assert_eq(pipe(pipefd), 0);
        b->pid = fork();
        if (b->pid == 0) {
                const char *argv[] = { ELVIS_BUILD_DIR "/bench/elvis-guest", "--socket", sock, "--mode", "stream",
                                       "--seconds", seconds, NULL };
                char *out;
                int rc = run_cmd(argv, NULL, &out, NULL);
                if (write(pipefd[1], out, strlen(out)) < 0)
                        rc = 9;
                _exit(rc);
        }
        close(pipefd[1]);
        b->fd = pipefd[0];
}

json_t *stream_finish(struct bg_stream *b)
{
        char out[4096] = "";
        ssize_t got;
        json_t *j;
        int wst;

        cr_assert_eq(waitpid(b->pid, &wst, 0), b->pid);
        got = read(b->fd, out, sizeof(out) - 1);
        close(b->fd);
        out[got > 0 ? got : 0] = '\0';
        j = json_loads(out, 0, NULL);
        cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "the stream failed: %s", out);
        cr_assert_not_null(j, "%s", out);
        return j;
}

pid_t daemon_dataplane_pid(struct daemon *d)
{
        static const char key[] = "elvis-dataplane pid ";
        struct resp r;
        const char *det, *p;
        pid_t pid = 0;

        if (http_json(d, "GET", "/v1/health", NULL, &r) < 0)
                return 0;
        det = json_string_value(json_object_get(json_object_get(r.json, "dataplane"), "detail"));
        if (r.status == 200 && det && (p = strstr(det, key)) &&
            strcmp(json_string_value(json_object_get(r.json, "status")), "ok") == 0)
                pid = (pid_t)atoi(p + strlen(key));
        resp_free(&r);
        return pid;
}

void dataplane_end(pid_t pid)
{
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct pollfd p = { .fd = pfd, .events = POLLIN };

        if (pfd < 0)
                return;         /* already gone */
        kill(pid, SIGTERM);
        if (poll(&p, 1, 10000) != 1) {
                kill(pid, SIGKILL);
                poll(&p, 1, 5000);
        }
        close(pfd);
}
