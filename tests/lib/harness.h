/* Functional-test harness: runs the real elvis-manager on temp dirs, waits for its
 * sd_notify READY=1 (no sleeps), talks HTTP over its unix socket and runs elvisctl. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct daemon {
        char dir[64];           /* temp root, kept across restarts */
        char sock[128];
        char state_dir[128];
        char run_dir[128];
        char log_path[128];
        char notify_path[128];
        int notify_fd;
        /* Every sd_notify datagram received, newline separated. A thread reads the socket
         * all the time, as systemd does: libsystemd's sd_notify blocks once the receiver's
         * queue (net.unix.max_dgram_qlen, 10 by default) is full. Written under
         * notify_lock; read it directly only once the daemon has stopped. */
        char notify_log[8192];
        pthread_mutex_t notify_lock;
        pthread_cond_t notify_cond;
        pthread_t notify_thread;
        bool notify_running;
        int notify_quit[2];     /* a pipe: a byte stops the thread */
        pid_t pid;
        const char *binary;     /* path of the daemon binary */
        const char *extra[16];  /* extra arguments, NULL terminated */
        const char *env[8];     /* extra environment "K=V", NULL terminated */
};

struct resp {
        long status;
        char *body;
        char content_type[128];
        char location[128];
        char allow[128];
        json_t *json;           /* parsed body when it is JSON */
};

#define ELVIS_MANAGER ELVIS_BIN_DIR "/elvis-manager"
#define ELVIS_MANAGER_FAKE ELVIS_SOURCE_BUILD_TESTS "/elvis-manager-fake"
#define ELVISCTL ELVIS_BIN_DIR "/elvisctl"
#define ELVIS_BUILD_DIR ELVIS_SOURCE_BUILD_TESTS "/.."

/* Prepares d (temp dirs) for binary; call once, then daemon_start (again after stops).
 * $ELVIS_TEST_MANAGER, when set, replaces ELVIS_MANAGER (the ThreadSanitizer run). */
void daemon_init(struct daemon *d, const char *binary);
void daemon_arg(struct daemon *d, const char *arg);
void daemon_env(struct daemon *d, const char *kv);
/* Starts and waits for READY=1 (10 s limit); returns 0 or -1 if it exited/never got ready. */
int daemon_start(struct daemon *d);
/* SIGTERM, wait; returns the exit status (or -1). */
int daemon_stop(struct daemon *d);
void daemon_kill9(struct daemon *d);
/* Waits up to ms for a notify message containing needle (already received ones count). */
bool daemon_wait_notify(struct daemon *d, const char *needle, int ms);
/* Forgets the notify messages received so far. */
void daemon_notify_reset(struct daemon *d);
bool daemon_alive(struct daemon *d);
void daemon_cleanup(struct daemon *d);
/* Returns the daemon's log so far (caller frees). */
char *daemon_log(struct daemon *d);
/* --dataplane user-process: the elvis-dataplane serving d, as /v1/health names it while
 * it is healthy; 0 otherwise. */
pid_t daemon_dataplane_pid(struct daemon *d);
/* Ends an elvis-dataplane (not our child, it outlives the manager): SIGTERM, then its
 * pidfd says when it is gone (SIGKILL after 10 s). */
void dataplane_end(pid_t pid);

/* HTTP over the daemon's socket. body may be NULL. Returns 0 when a response arrived. */
int http(struct daemon *d, const char *method, const char *path, const char *content_type, const char *body,
         size_t len, struct resp *r);
/* JSON request with Content-Type application/json. */
int http_json(struct daemon *d, const char *method, const char *path, const char *body, struct resp *r);
void resp_free(struct resp *r);
/* GET path and the size of the array under key in its JSON (the VMs of /v1/vms, say);
 * -1 when no JSON answer came or key is not an array. */
long http_count(struct daemon *d, const char *path, const char *key);

/* Runs elvisctl --socket SOCK ARGS; returns its exit status, output in out and err (caller frees). */
int run_cli(struct daemon *d, char **out, char **err, const char *const *args);
/* Runs any command, returns exit status; output captured. */
int run_cmd(const char *const *argv, const char *const *env, char **out, char **err);

char *slurp_file(const char *path);

/* A time-bounded sequence-numbered stream of the guest emulator (bench/elvis-guest) on a
 * vhost-user socket, run in a child while the test does something else (on a loaded CI
 * host the rate varies tenfold: what matters is that every frame sent comes back in
 * order). finish waits, asserts the emulator succeeded and returns its JSON verdict. */
struct bg_stream {
        pid_t pid;
        int fd;
};
void stream_start(struct bg_stream *b, const char *sock, const char *seconds);
json_t *stream_finish(struct bg_stream *b);

/* DPDK's testpmd with a virtio-user port on each socket (up to 8; no hugepages, both
 * lcores on CPU 0, 64-byte frames), stopped after seconds; returns what it printed. */
char *testpmd_run(const char *const *sockets, unsigned n, const char *mode, int seconds);

/* A thread that asks the REST API every 100 ms (GET /v1/health, then /v1/stats, in turn)
 * and keeps each answer's latency: the control plane must answer while the data plane
 * is under attack. A request that fails counts as a latency of 20 s. */
#define API_PROBE_MAX 4096
struct api_probe {
        struct daemon *d;
        pthread_t thread;
        volatile int stop;
        unsigned n, failed;
        double ms[API_PROBE_MAX];
};
void api_probe_start(struct api_probe *p, struct daemon *d);
void api_probe_stop(struct api_probe *p);
double api_probe_max_ms(const struct api_probe *p);
double api_probe_p99_ms(const struct api_probe *p);
