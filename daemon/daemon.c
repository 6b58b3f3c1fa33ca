/* elvis-manager process life cycle: configuration, startup, signals, systemd
 * notification, graceful shutdown. */
#include "manager.h"

#include <elvis/version.h>

#include "control.h"
#include "libvirt.h"
#include "log.h"
#include "topology_hwloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_NS (10ull * 1000000000ull)

int elvis_manager_new(int argc, char **argv, const struct elvis_dataplane_entry *dataplanes,
                      struct elvis_manager **ret)
{
        struct elvis_manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        m->argc = argc;
        m->argv = argv;
        m->dataplanes = dataplanes;
        m->store.dirfd = -1;
        r = elvis_state_init(&m->state);
        if (r == 0)
                r = elvis_loop_new(&m->loop);
        if (r < 0) {
                elvis_manager_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void elvis_manager_free(struct elvis_manager *m)
{
        if (!m)
                return;
        if (m->fe_ops && m->fe)
                m->fe_ops->stop(m->fe);
        m->fe = NULL;
        elvis_libvirt_stop(m);
        elvis_control_stop(m);
        if (m->dp_ops && m->dp)
                m->dp_ops->close(m->dp);
        elvis_images_fini(&m->images);
        elvis_loop_free(m->loop);
        elvis_state_fini(&m->state);
        if (m->store.dirfd >= 0)
                elvis_store_close(&m->store);
        elvis_topology_free(&m->topo);
        elvis_config_fini(&m->cfg);
        free(m);
}

static void compute_allowed(struct elvis_manager *m)
{
        m->allowed = m->topo.online;
        if (!m->cfg.cpus_all) {
                elvis_cpuset missing = m->cfg.cpus;
                char buf[256];
                elvis_cpuset_andnot(&missing, &m->topo.online);
                if (!elvis_cpuset_empty(&missing)) {
                        elvis_cpuset_format(&missing, buf, sizeof(buf));
                        log_warning("cpus lists CPUs %s that this host does not have; ignoring them", buf);
                }
                elvis_cpuset_and(&m->allowed, &m->cfg.cpus);
        }
        elvis_cpuset_andnot(&m->allowed, &m->cfg.reserved_cpus);
}

static const struct elvis_dataplane_ops *find_dataplane(struct elvis_manager *m, const char *kind)
{
        for (const struct elvis_dataplane_entry *d = m->dataplanes; d && d->kind; d++)
                if (strcmp(d->kind, kind) == 0)
                        return d->ops;
        return NULL;
}

static void dataplane_open(struct elvis_manager *m)
{
        const struct elvis_dataplane_ops *ops;
        struct elvis_dp_config cfg = { .run_dir = m->cfg.run_dir,
                                       .pin = !(m->cfg.topology_xml && m->cfg.topology_xml[0]) };
        const char *kind = m->cfg.dataplane;
        bool automatic = strcmp(kind, "auto") == 0;
        int r;

        /* auto: elvis.ko when it is loaded, else elvis-dataplane; never the in-process
         * plane, which maps guest memory into the process that parses HTTP, TLS and XML
         * and whose restart disconnects every guest */
        if (automatic) {
                ops = find_dataplane(m, "kernel");
                kind = ops && ops->available && ops->available() ? "kernel" : "user-process";
        }
        if (strcmp(kind, "user") == 0)
                log_warning("dataplane = user: the in-process data plane (for development, tests and benchmarks) maps "
                            "guest memory into elvis-manager, and restarting it disconnects every vhost-user guest; "
                            "the default, user-process, runs it in elvis-dataplane");
        snprintf(m->dp_kind, sizeof(m->dp_kind), "%s", kind);
        ops = find_dataplane(m, kind);
        if (!ops) {
                m->dp_status = ELVIS_DP_ABSENT;
                snprintf(m->dp_detail, sizeof(m->dp_detail), "this build has no %s data plane", kind);
                log_warning("no %s data plane in this build: VMs and sidecores are recorded but no I/O is served",
                            kind);
                return;
        }
        if (ops->available && !ops->available()) {
                m->dp_status = ELVIS_DP_ABSENT;
                snprintf(m->dp_detail, sizeof(m->dp_detail), "%s data plane is not available on this host", kind);
                log_warning("%s", m->dp_detail);
                return;
        }
        elvis_dp_set_logger(elvis_logv);        /* the data plane logs through the daemon's logger */
        r = ops->open(&cfg, &m->dp);
        if (r < 0 && automatic && strcmp(kind, "kernel") == 0 && (ops = find_dataplane(m, "user-process"))) {
                /* auto: a module that cannot be driven (permissions, another ABI) is no
                 * reason to serve nothing */
                log_warning("elvis.ko is loaded but cannot be driven (%s): using the user-space data plane in "
                            "elvis-dataplane",
                            strerror(-r));
                kind = "user-process";
                snprintf(m->dp_kind, sizeof(m->dp_kind), "%s", kind);
                r = ops->open(&cfg, &m->dp);
        }
        if (r < 0) {
                m->dp_status = ELVIS_DP_FAILED;
                snprintf(m->dp_detail, sizeof(m->dp_detail), "%s data plane failed to start: %s", kind, strerror(-r));
                log_error("%s", m->dp_detail);
                return;
        }
        m->dp_ops = ops;
        m->dp_status = ELVIS_DP_RUNNING;
        snprintf(m->dp_detail, sizeof(m->dp_detail), "%s data plane (%s) running", kind, ops->kind);
}

/* Replays the restored state into a fresh data plane; failures are logged, the state is kept. */
static void dataplane_restore(struct elvis_manager *m)
{
        struct elvis_state empty;
        struct elvis_err e = { 0 };
        struct elvis_dp_params p = {
                .budget_packets = m->state.policy.budget_packets,
                .budget_bytes = m->state.policy.budget_bytes,
                .poll_start_rate = m->state.policy.poll_start_rate,
                .poll_stop_idle_ms = m->state.policy.poll_stop_idle_ms,
                .vanilla_busyloop_us = m->state.policy.vanilla_busyloop_us,
        };

        if (m->dp_status != ELVIS_DP_RUNNING)
                return;
        if (m->dp_ops->set_params(m->dp, &p) < 0)
                log_warning("data plane rejected the policy parameters");
        if (elvis_state_init(&empty) < 0)
                return;
        empty.policy = m->state.policy;
        if (elvis_manager_reconcile(m, &empty, &m->state, &e) < 0)
                log_error("restoring the data plane from the saved state: %s", e.detail);
        elvis_state_fini(&empty);
}


static unsigned frontend_connections(const struct elvis_manager *m)
{
        return m->fe_ops && m->fe ? m->fe_ops->connections(m->fe) : 0;
}

static void on_drain(struct elvis_loop_source *src, void *userdata)
{
        struct elvis_manager *m = userdata;
        static uint64_t deadline;

        if (!deadline)
                deadline = elvis_now_ns() + DRAIN_TIMEOUT_NS;
        if (frontend_connections(m) == 0 || elvis_now_ns() > deadline) {
                if (frontend_connections(m))
                        log_warning("shutting down with %u API connection(s) still open", frontend_connections(m));
                elvis_loop_exit(m->loop, 0);
        }
}

static void reload(struct elvis_manager *m);

static void on_signal(struct elvis_loop_source *src, int signo, void *userdata)
{
        struct elvis_manager *m = userdata;

        if (signo == SIGHUP) {
                reload(m);
                return;
        }
        if (m->stopping)
                return;
        m->stopping = true;
        log_notice("received %s: finishing in-flight requests and stopping", strsignal(signo));
        sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
        if (m->fe_ops && m->fe)
                m->fe_ops->quiesce(m->fe);
        if (elvis_loop_add_timer(m->loop, 20000, true, on_drain, m, NULL) < 0)
                elvis_loop_exit(m->loop, 0);
}

static void on_watchdog(struct elvis_loop_source *src, void *userdata)
{
        sd_notify(0, "WATCHDOG=1");
}

struct diff_ctx {
        struct elvis_manager *m;
        struct elvis_config *next;
        unsigned applied, deferred;
};

static void on_diff(const char *name, bool live, void *userdata)
{
        struct diff_ctx *d = userdata;

        if (!live) {
                log_warning("config: '%s' changed; it takes effect when elvis-manager restarts", name);
                d->deferred++;
                return;
        }
        log_notice("config: applying new '%s'", name);
        d->applied++;
        if (!strcmp(name, "log-level")) {
                d->m->cfg.log_level = d->next->log_level;
                elvis_log_set_level(d->next->log_level);
        } else if (!strcmp(name, "cpus")) {
                d->m->cfg.cpus = d->next->cpus;
                d->m->cfg.cpus_all = d->next->cpus_all;
        } else if (!strcmp(name, "reserved-cpus")) {
                d->m->cfg.reserved_cpus = d->next->reserved_cpus;
        } else if (!strcmp(name, "adopt-domains")) {
                char *was = d->m->cfg.adopt_domains;
                d->m->cfg.adopt_domains = d->next->adopt_domains;
                d->next->adopt_domains = was;   /* freed with next */
                elvis_libvirt_adopt_running(d->m);
        }
}

/* Every SIGHUP ends with one line saying what became of it. */
static void reload(struct elvis_manager *m)
{
        struct elvis_config next = { 0 };
        struct elvis_config_errors errors = { 0 };
        struct diff_ctx d = { m, &next, 0, 0 };
        const char *file = m->cfg.config_file;

        sd_notify(0, "RELOADING=1");
        if (!file[0]) {
                /* the flags are all there is, and they cannot have changed */
                log_notice("received SIGHUP: no configuration file to reload (started with --config \"\"); "
                           "the command line's settings stay in effect");
        } else {
                log_notice("received SIGHUP: reloading %s", file);
                if (elvis_config_reload(m->argc, m->argv, &next, &errors) < 0) {
                        for (size_t i = 0; i < errors.n; i++)
                                log_error("config: %s", errors.lines[i]);
                        log_error("configuration not reloaded; the previous one stays in effect");
                } else {
                        elvis_config_diff(&m->cfg, &next, on_diff, &d);
                        compute_allowed(m);
                        elvis_config_fini(&next);
                        if (!d.applied && !d.deferred)
                                log_notice("configuration reloaded from %s: nothing changed", file);
                        else
                                log_notice("configuration reloaded from %s: %u change(s) applied, %u at the next "
                                           "restart", file, d.applied, d.deferred);
                }
        }
        elvis_config_errors_fini(&errors);
        sd_notify(0, "READY=1");
        elvis_manager_changed(m);
}

int elvis_manager_start(struct elvis_manager *m)
{
        char err[256], moved[512];
        uint64_t wd_usec = 0;
        int r;

        if (m->cfg.topology_xml && m->cfg.topology_xml[0])
                r = elvis_topology_load(ELVIS_TOPOLOGY_XML, m->cfg.topology_xml, &m->topo, err, sizeof(err));
        else
                r = elvis_topology_load(ELVIS_TOPOLOGY_LIVE, NULL, &m->topo, err, sizeof(err));
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "topology: %s", err);
        compute_allowed(m);
        log_info("topology from %s: %zu CPUs, %zu cores, %zu NUMA nodes, %zu NICs", m->topo.source, m->topo.npus,
                 m->topo.ncores, m->topo.nnuma, m->topo.nnics);
        r = elvis_store_open(m->cfg.state_dir, &m->store);
        if (r < 0)
                return r;
        r = elvis_store_load(&m->store, &m->state, moved, sizeof(moved));
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "cannot read state from %s: %s", m->store.path, strerror(-r));
        if (r > 0)
                log_info("state: %u VMs, %u sidecores restored from %s", m->state.nvms, m->state.nsidecores,
                         m->store.path);
        else if (!moved[0])     /* a corrupt file was logged where it was moved aside */
                log_info("state: no %s yet (first start): starting with no VMs and no sidecores", m->store.path);
        if (mkdir(m->cfg.run_dir, 0755) == 0) {
                /* 0755 whatever the umask (the unit's is 0077): VMMs reach their sockets through it */
                if (chmod(m->cfg.run_dir, 0755) < 0)
                        log_warning("cannot make run-dir %s mode 0755: %m", m->cfg.run_dir);
        } else if (errno != EEXIST) {
                return elvis_log_errno(LOG_ERR, errno, "cannot create run-dir %s: %m", m->cfg.run_dir);
        }
        elvis_manager_images_reopen(m);
        dataplane_open(m);
        dataplane_restore(m);
        r = elvis_loop_add_signal(m->loop, SIGTERM, on_signal, m, NULL);
        if (r == 0)
                r = elvis_loop_add_signal(m->loop, SIGINT, on_signal, m, NULL);
        if (r == 0)
                r = elvis_loop_add_signal(m->loop, SIGHUP, on_signal, m, NULL);
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "cannot set up signal handling: %s", strerror(-r));
        signal(SIGPIPE, SIG_IGN);
        if (m->fe_ops) {
                r = m->fe_ops->start(m, &m->fe);
                if (r < 0)
                        return r;
        }
        r = elvis_control_start(m);
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "cannot start the control loop: %s", strerror(-r));
        r = elvis_libvirt_start(m);
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "cannot set up libvirt: %s", strerror(-r));
        if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec) {
                r = elvis_loop_add_timer(m->loop, wd_usec / 2, true, on_watchdog, m, &m->watchdog);
                if (r < 0)
                        return elvis_log_errno(LOG_ERR, r, "cannot start the watchdog timer");
        }
        m->start_ns = elvis_now_ns();
        m->start_wall = time(NULL);
        log_notice("elvis-manager %s ready: API on %s, %s data plane %s", ELVIS_VERSION, m->cfg.socket, m->dp_kind,
                   m->dp_status == ELVIS_DP_RUNNING ? "running" : "NOT running");
        return 0;
}


/* Forks; the parent exits once the child reports readiness (or failure) on a pipe, so
 * "elvis-manager" returning 0 means the API is up. */
static int daemonize(int *ret_ready_fd)
{
        int p[2];
        pid_t pid;
        char c;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid > 0) {
                close(p[1]);
                exit(read(p[0], &c, 1) == 1 && c == '1' ? 0 : 1);
        }
        close(p[0]);
        if (setsid() < 0)
                return -errno;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                close(null);
        }
        if (chdir("/") < 0)
                return -errno;
        *ret_ready_fd = p[1];
        return 0;
}

static int write_pid_file(const char *path)
{
        FILE *f = fopen(path, "we");

        if (!f)
                return elvis_log_errno(LOG_ERR, errno, "cannot write pid file %s: %m", path);
        fprintf(f, "%d\n", (int)getpid());
        return fclose(f) == 0 ? 0 : -errno;
}

int elvis_manager_main(int argc, char **argv, const struct elvis_dataplane_entry *dataplanes,
                       const struct elvis_frontend_ops *frontend)
{
        struct elvis_config_errors errors = { 0 };
        enum elvis_config_action action;
        struct elvis_manager *m = NULL;
        struct elvis_config cfg;
        int ready_fd = -1, r;

        /* 0-2 must be open: a socket that landed on them would get stray output */
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
                        return 1;
        r = elvis_config_load(argc, argv, &cfg, &action, &errors);
        if (r < 0) {
                elvis_config_errors_print(&errors, stderr);
                if (r == -E2BIG)
                        fprintf(stderr, "Try 'elvis-manager --help'.\n");
                elvis_config_errors_fini(&errors);
                return r == -E2BIG ? 2 : 1;
        }
        elvis_config_errors_fini(&errors);
        if (action == ELVIS_CONFIG_EXIT_OK)
                return 0;
        if (cfg.check_config) {
                printf("configuration OK\n");
                elvis_config_fini(&cfg);
                return 0;
        }
        elvis_log_set_level(cfg.log_level);
        {
                /* blocked before any thread exists, so data-plane threads inherit the mask
                 * and only the event loop's signalfd ever sees these */
                sigset_t mask;
                sigemptyset(&mask);
                sigaddset(&mask, SIGTERM);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGHUP);
                sigprocmask(SIG_BLOCK, &mask, NULL);
                signal(SIGPIPE, SIG_IGN);
        }
        if (!cfg.foreground && !getenv("NOTIFY_SOCKET") && !getenv("INVOCATION_ID")) {
                r = daemonize(&ready_fd);
                if (r < 0) {
                        fprintf(stderr, "cannot daemonize: %s\n", strerror(-r));
                        return 1;
                }
        }
        r = elvis_manager_new(argc, argv, dataplanes, &m);
        if (r < 0) {
                elvis_config_fini(&cfg);
                log_error("out of memory");
                return 1;
        }
        m->cfg = cfg;
        m->fe_ops = frontend;
        r = elvis_manager_start(m);
        if (r < 0) {
                sd_notifyf(0, "STATUS=Failed to start: %s\nERRNO=%d", strerror(-r), -r);
                elvis_manager_free(m);
                return 1;
        }
        if (cfg.pid_file && cfg.pid_file[0] && write_pid_file(cfg.pid_file) < 0) {
                elvis_manager_free(m);
                return 1;
        }
        sd_notify(0, "READY=1");
        elvis_manager_changed(m);
        if (ready_fd >= 0) {
                if (write(ready_fd, "1", 1) != 1)
                        log_warning("cannot tell the parent process that the daemon is ready");
                close(ready_fd);
        }
        r = elvis_loop_run(m->loop);
        if (r < 0)
                log_error("event loop failed: %s", strerror(-r));
        r = r < 0 ? 1 : 0;
        if (elvis_store_save(&m->store, &m->state) < 0)
                r = 1;
        if (m->cfg.pid_file && m->cfg.pid_file[0])
                unlink(m->cfg.pid_file);
        log_notice("elvis-manager stopped");
        elvis_manager_free(m);
        return r;
}
