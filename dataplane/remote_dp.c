/* --dataplane user-process: the user data plane runs in elvis-dataplane, and this is
 * the manager's side of the data-plane protocol (proto.h) behind the data-plane
 * interface.
 *
 * Opening connects to RUN_DIR/dataplane.sock; when nothing answers there, it starts
 * elvis-dataplane (next to this executable, detached: it outlives the manager) and
 * waits for it to say it is ready. A data plane that answers is adopted: what it lists
 * is kept aside, and the manager's restore claims it operation by operation (an
 * identical device or sidecore is taken over without touching it, so guests keep their
 * connections and traffic). What the first sync finds unclaimed was not in the saved
 * state and is removed.
 *
 * A data plane of another protocol version is drained and replaced (drain()).
 *
 * Everything applied is also kept here (the mirror). When the data plane is lost (its
 * connection closes, a reply times out), health reports it failed and every sync
 * reconnects, or starts a new one, with exponential backoff, and replays the mirror
 * into it through the same adoption. All of it runs on the daemon's event-loop thread. */
#include "remote_dp.h"

#include "dp_log.h"
#include "proto.h"
#include "remote_obs.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALL_TIMEOUT_S 2
#define READY_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 10000u
#define STABLE_NS (10ull * 1000000000ull)       /* up this long: the next loss restarts at once */
#define DRAIN_TIMEOUT_MS 10000                  /* for a data plane of another version to stop */
#define UNRESPONSIVE_NS (1000ull * 1000000ull)  /* silent this long: failed, and changes are refused */
#define HUNG_NS (30ull * 1000000000ull)         /* silent this long: killed, and restarted as if lost */

struct rdev {
        struct elvis_dpp_device_item it;
        uint32_t unconfirmed;           /* queues whose adopted placement the manager has not restated */
        int image_fd;                   /* blk file: our duplicate of the manager's image, for replays; else -1 */
};

static void mirror_free(struct rdev *v, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                if (v[i].image_fd >= 0)
                        close(v[i].image_fd);
        free(v);
}

struct rdp {
        struct dpp_chan ch;             /* state-changing calls; ch.sock -1: lost */
        struct dpp_observer *obs;       /* health and counters (remote_obs.h); NULL in tests on a given fd */
        char run_dir[ELVIS_PATH_MAX];
        bool pin;
        pid_t pid;                      /* the data plane's, from HELLO */
        unsigned peer_version;          /* of a data plane that answered HELLO with another version */
        uint64_t connected_ns;
        char lost_reason[160];
        unsigned restarts;
        unsigned backoff_ms;
        uint64_t next_try_ns;
        bool swept;
        /* the mirror: what the manager applied */
        struct elvis_dpp_sidecore sc[ELVIS_MAX_SIDECORES];
        unsigned nsc;
        struct rdev *dev;
        unsigned ndev, capdev;
        struct elvis_dpp_params params;
        bool have_params;
        /* what the data plane had when we connected and nobody claimed yet */
        struct elvis_dpp_sidecore *pre_sc;
        unsigned npre_sc;
        struct elvis_dpp_device_item *pre_dev;
        unsigned npre_dev;
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lost(struct rdp *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lost(struct rdp *k, const char *fmt, ...)
{
        va_list ap;
        char why[128];

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        if (k->ch.sock >= 0)
                close(k->ch.sock);
        k->ch.sock = -1;
        if (now_ns() - k->connected_ns > STABLE_NS)
                k->backoff_ms = 0;
        k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (k->backoff_ms > BACKOFF_MAX_MS)
                k->backoff_ms = BACKOFF_MAX_MS;
        k->next_try_ns = now_ns() + (uint64_t)k->backoff_ms * 1000000u;
        snprintf(k->lost_reason, sizeof(k->lost_reason), "elvis-dataplane (pid %d) lost: %s", (int)k->pid, why);
        log_error("%s; reconnecting or restarting it in %u ms", k->lost_reason, k->backoff_ms);
}

/* One request (with nfds fds) and its reply. A transport failure loses the data plane
 * (-ENOTCONN; -EPROTO when it speaks another protocol version); a refusal returns its
 * errno. */
static int call_fds(struct rdp *k, uint16_t type, const void *payload, size_t len, const int *fds, unsigned nfds,
                    const struct elvis_dpp_result **ret_res, const void **ret_body, size_t *ret_len)
{
        const struct elvis_dpp_result *res;
        const void *body;
        size_t blen;
        char why[ELVIS_DPP_REASON_MAX];
        unsigned version = 0;
        uint64_t silent;
        int r;

        if (k->ch.sock < 0)
                return -ENOTCONN;
        /* the observer has waited on it for a while: no change waits too */
        if (k->obs && (silent = dpp_observer_silent_ns(k->obs, why, sizeof(why))) > UNRESPONSIVE_NS) {
                log_warning("elvis-dataplane pid %d has not answered for %.1f s: request %u not sent", (int)k->pid,
                            (double)silent / 1e9, type);
                return -ETIMEDOUT;
        }
        r = dpp_chan_call(&k->ch, type, payload, len, fds, nfds, &res, &body, &blen, &version, why, sizeof(why));
        if (r == -EPROTO && type == ELVIS_DPP_HELLO && version && version != ELVIS_DPP_VERSION) {
                /* another version: the connection stays, to drain it (attach_plane) */
                k->peer_version = version;
                return -EPROTO;
        }
        if (r < 0) {
                lost(k, "%s%s", r == -EPROTO ? "bad reply: " : "", why);
                return r;
        }
        if (res->error < 0) {
                log_info("elvis-dataplane refused request %u: %s", type, res->reason);
                return res->error;
        }
        if (ret_res)
                *ret_res = res;
        if (ret_body) {
                *ret_body = body;
                *ret_len = blen;
        }
        return 0;
}

static int call(struct rdp *k, uint16_t type, const void *payload, size_t len, const struct elvis_dpp_result **ret_res,
                const void **ret_body, size_t *ret_len)
{
        return call_fds(k, type, payload, len, NULL, 0, ret_res, ret_body, ret_len);
}

/* Reads a paged list into a fresh array (caller frees); a transport failure or pages
 * that do not add up lose the data plane. */
static int read_pages(struct rdp *k, uint16_t type, size_t item, void **ret, unsigned *ret_n)
{
        char why[160];
        int r;

        if (k->ch.sock < 0)
                return -ENOTCONN;
        r = dpp_chan_pages(&k->ch, type, item, ret, ret_n, why, sizeof(why));
        if (r == -ENOTCONN || r == -EPROTO || r == -EBADMSG) {
                lost(k, "%s", why);
                return r == -EPROTO ? -EPROTO : -ENOTCONN;
        }
        if (r < 0)
                log_info("elvis-dataplane refused list %u: %s", type, why);
        return r;
}

static int connect_to(const char *path)
{
        return dpp_connect(path, CALL_TIMEOUT_S * 1000);
}

/* Starts elvis-dataplane detached (it outlives us) and waits until it listens. */
static int spawn(struct rdp *k)
{
        char self[PATH_MAX], bin[PATH_MAX + 32], fdarg[16];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        int p[2], st;
        pid_t pid;
        char c;

        if (n < 0)
                return -errno;
        self[n] = '\0';
        snprintf(bin, sizeof(bin), "%s/elvis-dataplane", dirname(self));
        if (access(bin, X_OK) < 0) {
                int r = -errno;
                log_error("cannot start %s: %s", bin, strerror(-r));
                return r;
        }
        if (getenv("INVOCATION_ID"))
                log_warning("no elvis-dataplane.socket listens on %s: starting elvis-dataplane inside this unit, where "
                            "a restart of the manager ends it", k->run_dir);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0) {
                /* a new session, and a grandchild: init reaps it, no terminal signal reaches it */
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                setsid();
                if (fork() != 0)
                        _exit(0);
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull >= 0)
                        dup2(devnull, 0);
                if (dup2(p[1], 3) < 0)
                        _exit(127);
                snprintf(fdarg, sizeof(fdarg), "%d", 3);
                if (k->pin)
                        execl(bin, "elvis-dataplane", "--run-dir", k->run_dir, "--ready-fd", fdarg, (char *)NULL);
                else
                        execl(bin, "elvis-dataplane", "--run-dir", k->run_dir, "--no-pin", "--ready-fd", fdarg,
                              (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int r = poll(&pf, 1, READY_TIMEOUT_MS);
        r = r > 0 && read(p[0], &c, 1) == 1 ? 0 : -ETIMEDOUT;
        close(p[0]);
        if (r < 0)
                log_error("%s did not get ready (see its log above)", bin);
        else
                log_info("started %s", bin);
        return r;
}

static int handshake(struct rdp *k);

/* Whether pid is an elvis-dataplane (not PID 1, whose socket elvis-dataplane.socket is). */
static bool is_dataplane(pid_t pid)
{
        char path[64], comm[32] = "";
        FILE *f;

        if (pid <= 1 || pid == getpid())
                return false;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
        fclose(f);
        return strcmp(comm, "elvis-dataplane\n") == 0;
}

/* Until nobody holds RUN_DIR/dataplane.lock: the data plane that held it has exited. */
static int wait_unlocked(struct rdp *k)
{
        char path[ELVIS_PATH_MAX + 32];
        int fd, r = -ETIMEDOUT;

        snprintf(path, sizeof(path), "%s/%s", k->run_dir, ELVIS_DPP_LOCK_NAME);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        for (unsigned ms = 0; ms < DRAIN_TIMEOUT_MS; ms += 20) {
                if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
                        flock(fd, LOCK_UN);
                        r = 0;
                        break;
                }
                nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000000 }, NULL);
        }
        close(fd);
        return r;
}

/* A data plane of another protocol version answered HELLO: it is drained and replaced.
 * Its lists cannot be read in our layout, so what the new one gets is the manager's
 * state (its restore, or the mirror after a loss); its front ends see their sockets
 * close and reconnect to the new one. It is asked to STOP, which every version since 3
 * understands; an older one is sent SIGTERM (the peer of our connection, if that is an
 * elvis-dataplane). */
static int drain(struct rdp *k)
{
        _Alignas(8) unsigned char buf[ELVIS_DPP_MSG_MAX];
        const struct elvis_dpp_hdr *h = (const void *)buf;
        const struct elvis_dpp_result *res = (const void *)(buf + sizeof(*h));
        struct ucred cred = { 0 };
        socklen_t cl = sizeof(cred);
        uint32_t id = ++k->ch.next_id;
        size_t n = elvis_dpp_encode(k->ch.out, ELVIS_DPP_STOP, id, NULL, 0);
        bool stopped = false;
        ssize_t got;
        int r;

        if (getsockopt(k->ch.sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
                cred.pid = 0;
        log_warning("elvis-dataplane in %s (pid %d) speaks protocol version %u, this manager %u: draining and "
                    "replacing it; its guests reconnect to the new one", k->run_dir, (int)cred.pid, k->peer_version,
                    ELVIS_DPP_VERSION);
        if (elvis_dpp_send(k->ch.sock, k->ch.out, n, NULL, 0) == 0 &&
            (got = recv(k->ch.sock, buf, sizeof(buf), 0)) >= (ssize_t)(sizeof(*h) + sizeof(*res)))
                stopped = h->magic == ELVIS_DPP_MAGIC && h->type == (ELVIS_DPP_STOP | ELVIS_DPP_REPLY) && h->id == id &&
                          res->error == 0;
        close(k->ch.sock);
        k->ch.sock = -1;
        if (!stopped) {
                if (!is_dataplane(cred.pid)) {
                        log_error("elvis-dataplane in %s does not understand STOP and its process is unknown: stop "
                                  "it to have it replaced", k->run_dir);
                        return -EPROTO;
                }
                log_info("elvis-dataplane pid %d predates STOP: sending it SIGTERM", (int)cred.pid);
                if (kill(cred.pid, SIGTERM) < 0) {
                        r = -errno;
                        log_error("cannot stop elvis-dataplane pid %d: %s", (int)cred.pid, strerror(-r));
                        return r;
                }
        }
        if ((r = wait_unlocked(k)) < 0) {
                log_error("elvis-dataplane of protocol version %u did not stop within %u ms", k->peer_version,
                          DRAIN_TIMEOUT_MS);
                return r;
        }
        log_notice("elvis-dataplane of protocol version %u stopped (%s); starting this version's", k->peer_version,
                   stopped ? "STOP" : "SIGTERM");
        return 0;
}

/* Connects (starting a data plane when none answers), checks the version (a data plane
 * of another one is drained and replaced, once) and reads what the data plane has into
 * the adoption lists. */
static int attach_plane(struct rdp *k)
{
        char path[ELVIS_PATH_MAX + 32];
        int fd, r;

        snprintf(path, sizeof(path), "%s/%s", k->run_dir, ELVIS_DPP_SOCKET_NAME);
        for (int attempt = 0;; attempt++) {
                fd = connect_to(path);
                if (fd == -ENOENT || fd == -ECONNREFUSED) {
                        if ((r = spawn(k)) < 0)
                                return r;
                        fd = connect_to(path);
                }
                if (fd < 0) {
                        log_error("cannot connect to elvis-dataplane at %s: %s", path, strerror(-fd));
                        return fd;
                }
                k->ch.sock = fd;
                k->connected_ns = now_ns();
                r = handshake(k);
                /* only an older data plane is drained: a newer one came with a package this
                 * manager predates (restart the manager), and stopping it would be undone by
                 * its socket unit at once, over and over */
                if (r == -EPROTO && k->ch.sock >= 0 && k->peer_version > ELVIS_DPP_VERSION) {
                        log_error("elvis-dataplane in %s speaks protocol version %u, newer than this manager's %u: "
                                  "left running; restart elvis-manager to use it",
                                  k->run_dir, k->peer_version, ELVIS_DPP_VERSION);
                        goto fail;
                }
                if (r == -EPROTO && attempt == 0 && k->ch.sock >= 0 && (r = drain(k)) == 0)
                        continue;
                if (r < 0)
                        goto fail;
                return 0;
        }
fail:
        if (k->ch.sock >= 0)
                close(k->ch.sock);
        k->ch.sock = -1;
        return r;
}

/* HELLO (the version must match), then what the data plane has, for adoption. */
static int handshake(struct rdp *k)
{
        struct elvis_dpp_hello hello = { .version = ELVIS_DPP_VERSION, .pid = (uint32_t)getpid() };
        const void *body;
        size_t blen;
        void *arr;
        unsigned n;
        int r;

        r = call(k, ELVIS_DPP_HELLO, &hello, sizeof(hello), NULL, &body, &blen);
        if (r == -EPROTO && k->ch.sock >= 0)
                return r;       /* another version: attach_plane drains it */
        if (r < 0 || blen != sizeof(hello)) {
                r = r < 0 ? r : -EPROTO;
                goto fail;
        }
        memcpy(&hello, body, sizeof(hello));
        k->pid = (pid_t)hello.pid;
        free(k->pre_sc);
        free(k->pre_dev);
        k->pre_sc = NULL;
        k->pre_dev = NULL;
        k->npre_sc = k->npre_dev = 0;
        if ((r = read_pages(k, ELVIS_DPP_LIST_SIDECORES, sizeof(*k->pre_sc), &arr, &n)) < 0)
                goto fail;
        k->pre_sc = arr;
        k->npre_sc = n;
        if ((r = read_pages(k, ELVIS_DPP_LIST_DEVICES, sizeof(*k->pre_dev), &arr, &n)) < 0)
                goto fail;
        k->pre_dev = arr;
        k->npre_dev = n;
        k->swept = false;
        log_info("elvis-dataplane pid %d, protocol %u: %u sidecore(s) and %u device(s) already running", (int)k->pid,
                 hello.version, k->npre_sc, k->npre_dev);
        return 0;
fail:
        return r < 0 ? r : -EPROTO;
}

static struct rdev *find_dev(struct rdp *k, uint32_t vm, const char *id)
{
        for (unsigned i = 0; i < k->ndev; i++)
                if (k->dev[i].it.dev.vm_id == vm && strcmp(k->dev[i].it.dev.device_id, id) == 0)
                        return &k->dev[i];
        return NULL;
}

static int pre_dev_index(struct rdp *k, uint32_t vm, const char *id)
{
        for (unsigned i = 0; i < k->npre_dev; i++)
                if (k->pre_dev[i].dev.vm_id == vm && strcmp(k->pre_dev[i].dev.device_id, id) == 0)
                        return (int)i;
        return -1;
}

static int pre_sc_index(struct rdp *k, uint32_t id)
{
        for (unsigned i = 0; i < k->npre_sc; i++)
                if (k->pre_sc[i].id == id)
                        return (int)i;
        return -1;
}

static int assign(struct rdp *k, uint32_t vm, const char *id, unsigned q, uint32_t sc)
{
        struct elvis_dpp_queue_ref ref = { .vm_id = vm, .queue = q, .sidecore = sc };

        snprintf(ref.device_id, sizeof(ref.device_id), "%s", id);
        return call(k, ELVIS_DPP_QUEUE_ASSIGN, &ref, sizeof(ref), NULL, NULL, NULL);
}

/* Removes an unclaimed device of the data plane: its queues first, then the device. */
static int drop_pre_dev(struct rdp *k, unsigned i)
{
        struct elvis_dpp_device_item *it = &k->pre_dev[i];
        struct elvis_dpp_queue_ref ref = { .vm_id = it->dev.vm_id };
        int r;

        for (unsigned q = 0; q < it->dev.queues && q < ELVIS_MAX_QUEUES; q++)
                if (it->sidecore[q] && (r = assign(k, it->dev.vm_id, it->dev.device_id, q, 0)) < 0)
                        return r;
        snprintf(ref.device_id, sizeof(ref.device_id), "%s", it->dev.device_id);
        r = call(k, ELVIS_DPP_DEVICE_DETACH, &ref, sizeof(ref), NULL, NULL, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        log_info("removed device %s of VM %u that elvis-dataplane served but the state does not have",
                 it->dev.device_id, it->dev.vm_id);
        k->pre_dev[i] = k->pre_dev[--k->npre_dev];
        return 0;
}

/* Removes an unclaimed sidecore: the queues it serves (claimed or not) leave it first. */
static int drop_pre_sc(struct rdp *k, unsigned i)
{
        struct elvis_dpp_sidecore c = k->pre_sc[i];
        int r;

        for (unsigned d = 0; d < k->npre_dev; d++)
                for (unsigned q = 0; q < k->pre_dev[d].dev.queues && q < ELVIS_MAX_QUEUES; q++)
                        if (k->pre_dev[d].sidecore[q] == c.id) {
                                if ((r = assign(k, k->pre_dev[d].dev.vm_id, k->pre_dev[d].dev.device_id, q, 0)) < 0)
                                        return r;
                                k->pre_dev[d].sidecore[q] = 0;
                        }
        for (unsigned d = 0; d < k->ndev; d++)
                for (unsigned q = 0; q < k->dev[d].it.dev.queues; q++)
                        if (k->dev[d].it.sidecore[q] == c.id) {
                                if ((r = assign(k, k->dev[d].it.dev.vm_id, k->dev[d].it.dev.device_id, q, 0)) < 0)
                                        return r;
                                k->dev[d].it.sidecore[q] = 0;
                        }
        r = call(k, ELVIS_DPP_SIDECORE_DESTROY, &c, sizeof(c), NULL, NULL, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        k->pre_sc[i] = k->pre_sc[--k->npre_sc];
        return 0;
}

static int do_sidecore_create(struct rdp *k, uint32_t id, int cpu)
{
        struct elvis_dpp_sidecore c = { .id = id, .cpu = cpu };
        int i = pre_sc_index(k, id), r;

        if (k->nsc == ELVIS_MAX_SIDECORES)
                return -ENOSPC;
        if (i >= 0 && k->pre_sc[i].cpu == cpu) {
                log_info("sidecore %u: adopted, already running in elvis-dataplane on CPU %d", id, cpu);
                k->pre_sc[i] = k->pre_sc[--k->npre_sc];
        } else {
                if (i >= 0 && (r = drop_pre_sc(k, (unsigned)i)) < 0)
                        return r;
                if ((r = call(k, ELVIS_DPP_SIDECORE_CREATE, &c, sizeof(c), NULL, NULL, NULL)) < 0)
                        return r;
        }
        k->sc[k->nsc++] = c;
        return 0;
}

/* Identical but for weight and exitless mode: a blk device serves the same image (by
 * st_dev and st_ino, not only by name) or the same null disk. */
static bool same_device(const struct elvis_dpp_device *a, const struct elvis_dpp_device *b)
{
        return a->type == b->type && a->backend == b->backend && a->queues == b->queues && a->flags == b->flags &&
               a->vmm_uid == b->vmm_uid && a->vmm_gid == b->vmm_gid && strcmp(a->tap, b->tap) == 0 &&
               strcmp(a->socket_path, b->socket_path) == 0 && strcmp(a->vm_name, b->vm_name) == 0 &&
               a->size_bytes == b->size_bytes && a->image_dev == b->image_dev && a->image_ino == b->image_ino &&
               strcmp(a->path, b->path) == 0;
}

/* Takes image_fd over. */
static int mirror_add(struct rdp *k, const struct elvis_dpp_device_item *it, uint32_t unconfirmed, int image_fd)
{
        if (k->ndev == k->capdev) {
                unsigned cap = k->capdev ? k->capdev * 2 : 16;
                void *n = realloc(k->dev, (size_t)cap * sizeof(*k->dev));
                if (!n) {
                        if (image_fd >= 0)
                                close(image_fd);
                        return -ENOMEM;
                }
                k->dev = n;
                k->capdev = cap;
        }
        k->dev[k->ndev].it = *it;
        k->dev[k->ndev].unconfirmed = unconfirmed;
        k->dev[k->ndev].image_fd = image_fd;
        k->ndev++;
        return 0;
}

static int policy(struct rdp *k, uint32_t vm, const char *id, unsigned weight, unsigned exitless)
{
        struct elvis_dpp_policy p = { .vm_id = vm, .weight = weight, .exitless = exitless };

        snprintf(p.device_id, sizeof(p.device_id), "%s", id);
        return call(k, ELVIS_DPP_DEVICE_SET_POLICY, &p, sizeof(p), NULL, NULL, NULL);
}

/* DEVICE_ATTACH. A tap's queues are opened here, where CAP_NET_ADMIN is, under the rules
 * the in-process plane applies (tap.c), and passed along; elvis-dataplane keeps its
 * duplicates, ours are closed whatever the outcome. A blk file's image was opened by the
 * manager (image_fd) and goes along as it is. */
static int attach_with_taps(struct rdp *k, const struct elvis_dpp_device *w, int image_fd)
{
        int fds[ELVIS_MAX_QUEUES], r;
        unsigned n = w->type == ELVIS_DEVICE_NET && w->backend == ELVIS_BACKEND_TAP ? w->queues : 0;

        if (elvis_dpp_device_nfds(w) == 1 && w->type == ELVIS_DEVICE_BLK) {
                if (image_fd < 0)
                        return -EBADF;
                return call_fds(k, ELVIS_DPP_DEVICE_ATTACH, w, sizeof(*w), &image_fd, 1, NULL, NULL, NULL);
        }

        if (n && (r = elvis_tap_open(w->tap, n, w->flags & ELVIS_DPP_DEV_TAP_ADOPT, fds)) < 0) {
                if (r == -EEXIST)
                        log_error("VM %u device %s: interface '%s' already exists and the device does not adopt it",
                                  w->vm_id, w->device_id, w->tap);
                else
                        log_error("VM %u device %s: cannot open tap '%s': %s", w->vm_id, w->device_id, w->tap,
                                  strerror(-r));
                return r;
        }
        r = call_fds(k, ELVIS_DPP_DEVICE_ATTACH, w, sizeof(*w), fds, n, NULL, NULL, NULL);
        elvis_tap_close(fds, n);
        return r;
}

/* image_fd (blk file; else -1) is borrowed: the mirror keeps a duplicate. */
static int do_device_attach(struct rdp *k, const struct elvis_dpp_device *w, int image_fd)
{
        struct elvis_dpp_device_item it = { .dev = *w };
        uint32_t unconfirmed = 0;
        int i = pre_dev_index(k, w->vm_id, w->device_id), r, dup_fd = -1;

        if (find_dev(k, w->vm_id, w->device_id))
                return -EEXIST;
        if (image_fd >= 0 && (dup_fd = fcntl(image_fd, F_DUPFD_CLOEXEC, 3)) < 0)
                return -errno;
        if (i >= 0 && same_device(&k->pre_dev[i].dev, w)) {
                /* the guest keeps its connection: take the device over as it runs */
                it = k->pre_dev[i];
                if ((it.dev.weight != w->weight || it.dev.exitless != w->exitless) &&
                    (r = policy(k, w->vm_id, w->device_id, w->weight, w->exitless)) < 0)
                        goto fail;
                it.dev.weight = w->weight;
                it.dev.exitless = w->exitless;
                for (unsigned q = 0; q < w->queues; q++)
                        if (it.sidecore[q])
                                unconfirmed |= 1u << q;
                k->pre_dev[i] = k->pre_dev[--k->npre_dev];
                log_info("VM %u device %s: adopted, already served by elvis-dataplane", w->vm_id, w->device_id);
        } else {
                if (i >= 0 && (r = drop_pre_dev(k, (unsigned)i)) < 0)
                        goto fail;
                if ((r = attach_with_taps(k, w, image_fd)) < 0)
                        goto fail;
        }
        return mirror_add(k, &it, unconfirmed, dup_fd);
fail:
        if (dup_fd >= 0)
                close(dup_fd);
        return r;
}

/* A removal while the data plane is lost succeeds here: it leaves the mirror, so the
 * replay on reconnect does not restore it, and a data plane that survived still holding
 * it has it removed by the first sync (what the state does not restate goes). Failing
 * it instead would roll back the commit: a VM that left by migration, or a domain that
 * stopped, would stay held until something retried. */
static int forget_while_lost(struct rdp *k, const char *what, uint32_t id)
{
        (void)k;
        log_notice("elvis-dataplane is unreachable: %s %u removed here, and from the data plane when it is back", what,
                   id);
        return 0;
}

static int do_queue_assign(struct rdp *k, struct rdev *d, unsigned q, uint32_t sc)
{
        int r = assign(k, d->it.dev.vm_id, d->it.dev.device_id, q, sc);

        if (r == -ENOTCONN && sc == 0)
                r = forget_while_lost(k, "queue placement of VM", d->it.dev.vm_id);
        if (r == 0) {
                d->it.sidecore[q] = sc;
                d->unconfirmed &= ~(1u << q);
        }
        return r;
}

static int do_queue_poll(struct rdp *k, struct rdev *d, unsigned q, unsigned start, unsigned stop)
{
        struct elvis_dpp_queue_poll p = { .vm_id = d->it.dev.vm_id, .queue = q, .start_rate = start,
                                          .stop_idle_ms = stop };
        int r;

        snprintf(p.device_id, sizeof(p.device_id), "%s", d->it.dev.device_id);
        r = call(k, ELVIS_DPP_QUEUE_SET_POLL, &p, sizeof(p), NULL, NULL, NULL);
        if (r == 0) {
                d->it.start_rate[q] = start;
                d->it.stop_idle_ms[q] = stop;
        }
        return r;
}

/* After the manager has claimed what it knows: what is left was not in its state. */
static int sweep(struct rdp *k)
{
        int r;

        for (unsigned d = 0; d < k->ndev; d++)
                for (unsigned q = 0; q < k->dev[d].it.dev.queues; q++)
                        if ((k->dev[d].unconfirmed & (1u << q)) && (r = do_queue_assign(k, &k->dev[d], q, 0)) < 0)
                                return r;
        while (k->npre_dev)
                if ((r = drop_pre_dev(k, 0)) < 0)
                        return r;
        while (k->npre_sc) {
                uint32_t id = k->pre_sc[0].id;
                if ((r = drop_pre_sc(k, 0)) < 0)
                        return r;
                log_info("removed sidecore %u that elvis-dataplane ran but the state does not have", id);
        }
        k->swept = true;
        return 0;
}

/* A new connection (the old data plane still running, or a new one): the mirror is
 * claimed or re-created through the same adoption as at startup. */
static int replay(struct rdp *k)
{
        struct elvis_dpp_sidecore sc[ELVIS_MAX_SIDECORES];
        unsigned nsc = k->nsc, ndev = k->ndev;
        struct rdev *dev = k->dev;
        int r = 0;

        memcpy(sc, k->sc, sizeof(sc[0]) * nsc);
        k->nsc = 0;
        k->dev = NULL;
        k->ndev = k->capdev = 0;
        if (k->have_params)
                r = call(k, ELVIS_DPP_SET_PARAMS, &k->params, sizeof(k->params), NULL, NULL, NULL);
        for (unsigned i = 0; r == 0 && i < nsc; i++)
                r = do_sidecore_create(k, sc[i].id, sc[i].cpu);
        for (unsigned i = 0; r == 0 && i < ndev; i++) {
                struct elvis_dpp_device_item *it = &dev[i].it;
                struct rdev *d;
                r = do_device_attach(k, &it->dev, dev[i].image_fd);
                d = r == 0 ? find_dev(k, it->dev.vm_id, it->dev.device_id) : NULL;
                for (unsigned q = 0; d && r == 0 && q < it->dev.queues; q++) {
                        if (it->sidecore[q] != d->it.sidecore[q] || (d->unconfirmed & (1u << q)))
                                r = do_queue_assign(k, d, q, it->sidecore[q]);
                        if (r == 0 && (it->start_rate[q] != d->it.start_rate[q] ||
                                       it->stop_idle_ms[q] != d->it.stop_idle_ms[q]))
                                r = do_queue_poll(k, d, q, it->start_rate[q], it->stop_idle_ms[q]);
                }
        }
        if (r == 0)
                r = sweep(k);
        if (r < 0) {
                /* keep the full mirror for the next attempt */
                mirror_free(k->dev, k->ndev);
                k->dev = dev;
                k->ndev = k->capdev = ndev;
                memcpy(k->sc, sc, sizeof(sc[0]) * nsc);
                k->nsc = nsc;
                if (k->ch.sock >= 0)
                        lost(k, "re-creating its devices: %s", strerror(-r));
                return r;
        }
        mirror_free(dev, ndev);
        return 0;
}

static bool remote_available(void)
{
        return true;
}

int elvis_remote_dp_open_fd(int fd, const struct elvis_dp_config *cfg, void **ret)
{
        struct rdp *k = calloc(1, sizeof(*k));
        int r;

        if (!k)
                return -ENOMEM;
        k->ch.sock = -1;
        snprintf(k->run_dir, sizeof(k->run_dir), "%s", cfg->run_dir ? cfg->run_dir : "");
        k->pin = cfg->pin;
        if (fd >= 0) {
                /* tests: an already connected socket, nothing to start */
                k->ch.sock = fd;
                k->connected_ns = now_ns();
                r = handshake(k);
        } else {
                r = attach_plane(k);
        }
        if (r == 0 && fd < 0) {
                char path[ELVIS_PATH_MAX + 32];

                snprintf(path, sizeof(path), "%s/%s", k->run_dir, ELVIS_DPP_SOCKET_NAME);
                r = dpp_observer_start(path, &k->obs);
        }
        if (r < 0) {
                if (k->ch.sock >= 0)
                        close(k->ch.sock);
                free(k->pre_sc);
                free(k->pre_dev);
                free(k);
                return r;
        }
        *ret = k;
        return 0;
}

static int remote_open(const struct elvis_dp_config *cfg, void **ret)
{
        return elvis_remote_dp_open_fd(-1, cfg, ret);
}

static void remote_close(void *p)
{
        struct rdp *k = p;

        /* elvis-dataplane keeps serving: the next manager adopts it */
        dpp_observer_stop(k->obs);
        if (k->ch.sock >= 0)
                close(k->ch.sock);
        free(k->pre_sc);
        free(k->pre_dev);
        mirror_free(k->dev, k->ndev);
        free(k);
}

/* Observation no longer uses the main connection, so its end is looked for here: EOF (or
 * anything unasked for) means the data plane went. Never waits. */
static void check_closed(struct rdp *k)
{
        struct pollfd pf = { .fd = k->ch.sock, .events = POLLIN };

        if (k->ch.sock >= 0 && poll(&pf, 1, 0) > 0 && (pf.revents & (POLLIN | POLLHUP | POLLERR)))
                lost(k, "it closed the connection");
}

static int remote_health(void *p, char *detail, size_t len)
{
        struct rdp *k = p;
        const void *body;
        size_t blen;
        char d[ELVIS_DPP_DETAIL_MAX] = "";
        uint64_t silent;
        int r;

        check_closed(k);
        if (k->ch.sock < 0) {
                uint64_t now = now_ns();
                snprintf(detail, len, "failed: %s; restart %u in %llu ms", k->lost_reason, k->restarts + 1,
                         (unsigned long long)(k->next_try_ns > now ? (k->next_try_ns - now) / 1000000u : 0));
                return -ENOTCONN;
        }
        if (k->obs) {
                /* the observer's last answer: a health probe never waits on the data plane */
                if ((silent = dpp_observer_silent_ns(k->obs, d, sizeof(d))) > UNRESPONSIVE_NS) {
                        snprintf(detail, len, "elvis-dataplane pid %d: not answering for %.1f s%s%s", (int)k->pid,
                                 (double)silent / 1e9, d[0] ? ": " : "", d);
                        return -ETIMEDOUT;
                }
                r = dpp_observer_health(k->obs, d, sizeof(d));
                if (r == -EAGAIN) {
                        snprintf(detail, len, "elvis-dataplane pid %d: connected", (int)k->pid);
                        return 0;
                }
                snprintf(detail, len, "elvis-dataplane pid %d: %s", (int)k->pid, d);
                return r;
        }
        r = call(k, ELVIS_DPP_HEALTH, NULL, 0, NULL, &body, &blen);
        if (r == 0 && blen == sizeof(d))
                memcpy(d, body, sizeof(d) - 1);
        if (r < 0 && k->ch.sock < 0)
                return remote_health(p, detail, len);
        snprintf(detail, len, "elvis-dataplane pid %d: %s", (int)k->pid, r < 0 ? strerror(-r) : d);
        return r;
}

static int remote_sidecore_create(void *p, uint32_t id, int cpu)
{
        return do_sidecore_create(p, id, cpu);
}

static int remote_sidecore_destroy(void *p, uint32_t id)
{
        struct rdp *k = p;
        struct elvis_dpp_sidecore c = { .id = id };
        int r = call(k, ELVIS_DPP_SIDECORE_DESTROY, &c, sizeof(c), NULL, NULL, NULL);

        /* a lost data plane: the removal stands (see forget_while_lost) */
        if (r == -ENOTCONN)
                r = forget_while_lost(k, "sidecore", id);
        if (r == 0)
                for (unsigned i = 0; i < k->nsc; i++)
                        if (k->sc[i].id == id) {
                                k->sc[i] = k->sc[--k->nsc];
                                break;
                        }
        return r;
}

static int remote_device_attach(void *p, const struct elvis_dp_device *dev)
{
        struct elvis_dpp_device w;

        if (!dev->socket_path || !dev->socket_path[0] || dev->queues < 1 || dev->queues > ELVIS_MAX_QUEUES ||
            strlen(dev->socket_path) >= sizeof(w.socket_path))
                return -EINVAL;
        elvis_dpp_device_from(&w, dev);
        if (dev->type == ELVIS_DEVICE_BLK && dev->backend == ELVIS_BACKEND_FILE) {
                struct stat st;
                /* elvis-dataplane never opens an image: the manager passes it */
                if (!dev->image_fd || fstat(*dev->image_fd, &st) < 0)
                        return -EBADF;
                w.image_dev = (uint64_t)st.st_dev;
                w.image_ino = (uint64_t)st.st_ino;
                return do_device_attach(p, &w, *dev->image_fd);
        }
        return do_device_attach(p, &w, -1);
}

static int remote_device_detach(void *p, uint32_t vm, const char *id)
{
        struct rdp *k = p;
        struct elvis_dpp_queue_ref ref = { .vm_id = vm };
        struct rdev *d = find_dev(k, vm, id);
        int r;

        snprintf(ref.device_id, sizeof(ref.device_id), "%s", id);
        r = call(k, ELVIS_DPP_DEVICE_DETACH, &ref, sizeof(ref), NULL, NULL, NULL);
        if (r == -ENOTCONN)
                r = forget_while_lost(k, "device of VM", vm);
        if (r == 0 && d) {
                if (d->image_fd >= 0)
                        close(d->image_fd);
                *d = k->dev[--k->ndev];
        }
        return r;
}

static int remote_device_set_policy(void *p, uint32_t vm, const char *id, unsigned weight, enum elvis_exitless ex)
{
        struct rdp *k = p;
        struct rdev *d = find_dev(k, vm, id);
        int r = policy(k, vm, id, weight, ex);

        if (r == 0 && d) {
                d->it.dev.weight = weight;
                d->it.dev.exitless = ex;
        }
        return r;
}

static int remote_queue_assign(void *p, uint32_t vm, const char *id, unsigned queue, uint32_t sidecore)
{
        struct rdp *k = p;
        struct rdev *d = find_dev(k, vm, id);

        if (!d || queue >= d->it.dev.queues)
                return -ENOENT;
        return do_queue_assign(k, d, queue, sidecore);
}

static int remote_set_params(void *p, const struct elvis_dp_params *params)
{
        struct rdp *k = p;
        struct elvis_dpp_params w = { .budget_packets = params->budget_packets, .budget_bytes = params->budget_bytes,
                                      .poll_start_rate = params->poll_start_rate,
                                      .poll_stop_idle_ms = params->poll_stop_idle_ms,
                                      .vanilla_busyloop_us = params->vanilla_busyloop_us };
        int r = call(k, ELVIS_DPP_SET_PARAMS, &w, sizeof(w), NULL, NULL, NULL);

        if (r == 0) {
                k->params = w;
                k->have_params = true;
        }
        return r;
}

static int remote_queue_set_poll(void *p, uint32_t vm, const char *id, unsigned queue, unsigned start_rate,
                                 unsigned stop_idle_ms)
{
        struct rdp *k = p;
        struct rdev *d = find_dev(k, vm, id);

        if (!d || queue >= d->it.dev.queues)
                return -ENOENT;
        return do_queue_poll(k, d, queue, start_rate, stop_idle_ms);
}

static int remote_stats_read(void *p, struct elvis_dp_stats *st)
{
        struct rdp *k = p;
        void *sc = NULL, *qs = NULL;
        unsigned nsc = 0, nq = 0;
        int r;

        memset(st, 0, sizeof(*st));
        check_closed(k);
        if (k->ch.sock < 0)
                return -ENOTCONN;
        if (k->obs)
                return dpp_observer_stats(k->obs, st);
        if ((r = read_pages(k, ELVIS_DPP_STATS_SIDECORES, sizeof(struct elvis_dpp_sidecore_stats), &sc, &nsc)) < 0)
                return r;
        if ((r = read_pages(k, ELVIS_DPP_STATS_QUEUES, sizeof(struct elvis_dpp_queue_stats), &qs, &nq)) == 0)
                r = dpp_stats_build(st, sc, nsc, qs, nq, now_ns());
        free(sc);
        free(qs);
        return r;
}

/* The control tick: a lost data plane is reconnected or restarted (with backoff) and
 * given its devices back; after a (re)connection, what nobody claimed goes. */
static int remote_sync(void *p)
{
        struct rdp *k = p;

        check_closed(k);
        if (k->ch.sock < 0) {
                if (now_ns() < k->next_try_ns)
                        return -ENOTCONN;
                k->restarts++;
                if (attach_plane(k) < 0) {
                        lost(k, "reconnecting or restarting failed");
                        return -ENOTCONN;
                }
                log_notice("elvis-dataplane pid %d: connected again (attempt %u); re-applying %u sidecore(s) and %u "
                           "device(s)", (int)k->pid, k->restarts, k->nsc, k->ndev);
                return replay(k);
        }
        if (k->obs && dpp_observer_silent_ns(k->obs, NULL, 0) > HUNG_NS && is_dataplane(k->pid)) {
                /* alive but not answering (stopped, deadlocked): it serves nobody well; a
                 * new one gets the devices, and front ends reconnect */
                log_error("elvis-dataplane pid %d has not answered for %llu s: killing it", (int)k->pid,
                          (unsigned long long)(HUNG_NS / 1000000000ull));
                kill(k->pid, SIGKILL);
                lost(k, "hung, killed");
                return -ENOTCONN;
        }
        return k->swept ? 0 : sweep(k);
}

const struct elvis_dataplane_ops elvis_remote_dataplane = {
        .kind = "user-process",
        .available = remote_available,
        .open = remote_open,
        .close = remote_close,
        .health = remote_health,
        .sidecore_create = remote_sidecore_create,
        .sidecore_destroy = remote_sidecore_destroy,
        .device_attach = remote_device_attach,
        .device_detach = remote_device_detach,
        .device_set_policy = remote_device_set_policy,
        .queue_assign = remote_queue_assign,
        .set_params = remote_set_params,
        .queue_set_poll = remote_queue_set_poll,
        .stats_read = remote_stats_read,
        .sync = remote_sync,
};
