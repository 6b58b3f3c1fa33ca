/* libmicrohttpd front end driven by the manager's epoll loop: unix socket listener,
 * optional TLS+token TCP listener, read-only metrics listeners, body limits, content
 * types, routing. */
#include "api.h"
#include "internal.h"
#include "problem.h"

#include "../daemon/log.h"
#include "../daemon/manager.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The TCP listeners (the API's and the metrics listeners) are reachable by clients that
 * have not authenticated (or never will: metrics need no token): they limit what one
 * address can hold (connections) and start (new connections, each maybe a TLS handshake
 * done on the daemon's thread), and how long a handshake or an idle connection may take.
 * The unix socket is guarded by its file mode and keeps the generous limits. */
#define TCP_CONNECTIONS 64              /* in all */
#define TCP_PER_ADDRESS 8
#define TCP_TIMEOUT_S 10                /* handshake, request, idle keep-alive */
#define TCP_NEW_PER_S 20                /* per address, with a burst of twice that */
#define TCP_NEW_TOTAL_PER_S 200         /* all addresses: bounds handshake work per second */
#define TCP_BUCKETS 256

struct accept_bucket {
        struct sockaddr_storage addr;   /* address only (port zeroed) */
        double tokens;
        uint64_t last_ns;
};

enum listener_kind {
        LISTENER_UNIX,                  /* the API, guarded by the socket's file mode */
        LISTENER_API_TCP,               /* the API, TLS and bearer token */
        LISTENER_METRICS,               /* GET /metrics and nothing else; no token */
};

struct listener {
        struct elvis_api *api;
        struct MHD_Daemon *mhd;
        struct elvis_loop_source *src;
        enum listener_kind kind;
        char name[96];                  /* for log lines */
        bool quiesced;
        struct accept_bucket buckets[TCP_BUCKETS];
        double total_tokens;
        uint64_t total_last_ns;
        uint64_t refused;
        struct elvis_ratelimit refuse_rl;
};

#define MAX_WAITERS 64

struct waiter {
        struct MHD_Connection *conn;
        struct listener *l;
};

struct elvis_api {
        struct elvis_manager *m;
        struct listener ul, tl;
        struct listener ml[ELVIS_METRICS_LISTEN_MAX];
        unsigned nml;
        struct waiter waiters[MAX_WAITERS];
        unsigned nwaiters;
        bool in_run;                    /* inside MHD_run: resumed connections are picked up there */
        struct elvis_loop_source *wait_timer;
        char *socket_path;
        bool listening;                 /* subscribed to the manager's journal events */
        char *token;
        char *cert, *key;
        char *metrics_cert, *metrics_key;       /* NULL: metrics over plain HTTP */
};

struct request {
        char *body;
        size_t len;
        bool too_large;
        bool started;
        uint64_t deadline_ns;           /* long poll: 0 when not waiting */
};

static void json_response(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                          const struct api_ctx *x)
{
        struct MHD_Response *rs = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);

        if (!rs) {
                free(text);
                return;
        }
        MHD_add_response_header(rs, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(rs, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (x && x->location[0])
                MHD_add_response_header(rs, MHD_HTTP_HEADER_LOCATION, x->location);
        if (status == 401)
                MHD_add_response_header(rs, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"elvis\"");
        MHD_queue_response(c, status, rs);
        MHD_destroy_response(rs);
}

static enum MHD_Result send_doc(struct MHD_Connection *c, unsigned status, json_t *doc, const struct api_ctx *x,
                                const char *allow)
{
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));
        const char *type = status >= 400 ? "application/problem+json" : "application/json";
        struct MHD_Response *rs;

        json_decref(doc);
        if (!text)
                return MHD_NO;
        if (!allow) {
                size_t n = strlen(text);
                char *t = realloc(text, n + 2);
                if (t) {
                        text = t;
                        memcpy(text + n, "\n", 2);
                }
                json_response(c, status, type, text, x);
                return MHD_YES;
        }
        rs = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!rs) {
                free(text);
                return MHD_NO;
        }
        MHD_add_response_header(rs, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(rs, MHD_HTTP_HEADER_ALLOW, allow);
        MHD_queue_response(c, status, rs);
        MHD_destroy_response(rs);
        return MHD_YES;
}

static enum MHD_Result send_problem(struct MHD_Connection *c, unsigned status, const char *detail)
{
        return send_doc(c, status, elvis_problem_new(status, detail), NULL, NULL);
}

/* "/v1/vms/12" against "/v1/vms/{id}"; sets *id to the matched segment (in buf). */
static bool match(const char *pattern, const char *path, char *buf, size_t size, const char **id)
{
        while (*pattern && *path) {
                if (strncmp(pattern, "{id}", 4) == 0) {
                        size_t n = strcspn(path, "/");
                        if (n == 0 || n >= size)
                                return false;
                        memcpy(buf, path, n);
                        buf[n] = '\0';
                        *id = buf;
                        path += n;
                        pattern += 4;
                        continue;
                }
                if (*pattern != *path)
                        return false;
                pattern++;
                path++;
        }
        return *pattern == '\0' && *path == '\0';
}

static bool content_type_json(struct MHD_Connection *c)
{
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        size_t n;

        if (!ct)
                return false;
        n = strcspn(ct, ";");
        while (n && ct[n - 1] == ' ')
                n--;
        return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
               (n == 28 && strncasecmp(ct, "application/merge-patch+json", 28) == 0);
}

static struct listener *listener_of(struct elvis_api *api, struct MHD_Connection *c);

void api_suspend(struct api_ctx *x, uint64_t deadline_ns)
{
        struct elvis_api *api = x->api;

        if (!api || api->nwaiters == MAX_WAITERS)
                return;         /* no room: the handler answers at once */
        *x->deadline_ns = deadline_ns;
        api->waiters[api->nwaiters++] = (struct waiter){ x->conn, listener_of(api, x->conn) };
        /* a long poll outlives the TCP listener's short idle timeout: give this connection
         * the wait plus the usual margin */
        {
                uint64_t now = elvis_now_ns(), left = deadline_ns > now ? (deadline_ns - now) / 1000000000u : 0;
                MHD_set_connection_option(x->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)left + 30u);
        }
        MHD_suspend_connection(x->conn);
        x->suspended = true;
}

/* Waiters run their handler again: it answers if there is news or its deadline passed,
 * and suspends again otherwise. */
static void run_listener(struct elvis_api *api, struct listener *l)
{
        bool nested = api->in_run;

        api->in_run = true;
        MHD_run(l->mhd);
        api->in_run = nested;
}

/* Outside MHD_run nothing makes the daemon's epoll descriptor readable after a resume (there is
 * no inter-thread channel in external-epoll mode), so the listeners are run here. */
static void resume_all(struct elvis_api *api)
{
        bool ul = false, tl = false;

        while (api->nwaiters) {
                struct waiter *w = &api->waiters[--api->nwaiters];
                MHD_resume_connection(w->conn);
                if (w->l == &api->tl)
                        tl = true;
                else
                        ul = true;
        }
        if (api->in_run)
                return;
        if (ul && api->ul.mhd)
                run_listener(api, &api->ul);
        if (tl && api->tl.mhd)
                run_listener(api, &api->tl);
}

void elvis_api_wake(struct elvis_api *api)
{
        if (api)
                resume_all(api);
}

static void on_wait_timer(struct elvis_loop_source *src, void *userdata)
{
        struct elvis_api *api = userdata;

        if (api->nwaiters)
                resume_all(api);
}

static enum MHD_Result dispatch(struct elvis_api *api, struct MHD_Connection *c, const char *url,
                                const char *method, struct request *rq)
{
        const struct api_route *route = NULL;
        struct api_ctx x = { .m = api->m, .api = api, .conn = c, .method = method, .deadline_ns = &rq->deadline_ns,
                             .waited_out = rq->deadline_ns && elvis_now_ns() >= rq->deadline_ns };
        char idbuf[256], allow[128] = "";
        json_t *body = NULL;
        bool path_known = false;

        if (strcmp(method, "HEAD") == 0)
                method = "GET";
        for (size_t i = 0; i < elvis_api_route_count; i++) {
                const char *id = NULL;
                if (!match(elvis_api_route_table[i].path, url, idbuf, sizeof(idbuf), &id))
                        continue;
                path_known = true;
                if (!strstr(allow, elvis_api_route_table[i].method)) {
                        if (allow[0])
                                strcat(allow, ", ");
                        strcat(allow, elvis_api_route_table[i].method);
                }
                if (strcmp(elvis_api_route_table[i].method, method) == 0) {
                        route = &elvis_api_route_table[i];
                        x.id = id;
                }
        }
        if (!path_known)
                return send_problem(c, 404, "no such resource");
        if (!route) {
                char detail[200];
                if (strstr(allow, "GET"))
                        strcat(allow, ", HEAD");
                snprintf(detail, sizeof(detail), "method %.16s is not allowed here; allowed: %s", method, allow);
                return send_doc(c, 405, elvis_problem_new(405, detail), NULL, allow);
        }
        if (rq->len && !route->body)
                return send_problem(c, 400, "this request takes no body");
        if (route->body && rq->len) {
                json_error_t jerr;
                char detail[300];
                if (!content_type_json(c))
                        return send_problem(c, 415, "the body must be application/json");
                body = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr);
                if (!body) {
                        snprintf(detail, sizeof(detail), "malformed JSON at line %d column %d: %s", jerr.line,
                                 jerr.column, jerr.text);
                        return send_problem(c, 400, detail);
                }
        } else if (route->body && !route->body_optional) {
                return send_problem(c, 400, "a JSON body is required");
        }
        x.body = body;
        route->handler(&x);
        json_decref(body);
        if (x.suspended)
                return MHD_YES;         /* answered when it runs again after a wake-up or its deadline */
        if (x.text) {
                json_response(c, x.status, x.text_type, x.text, &x);
                return MHD_YES;
        }
        if (!x.out)
                return send_problem(c, 500, "handler produced no response");
        return send_doc(c, x.status, x.out, &x, NULL);
}

static bool token_ok(struct elvis_api *api, struct MHD_Connection *c)
{
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        size_t n = strlen(api->token);
        unsigned char diff = 0;

        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return false;
        h += 7;
        if (strlen(h) != n)
                return false;
        for (size_t i = 0; i < n; i++)          /* constant time */
                diff |= (unsigned char)(h[i] ^ api->token[i]);
        return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
        struct listener *l = cls;
        struct elvis_api *api = l->api;
        struct request *rq = *con_cls;

        if (!rq) {
                const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                *con_cls = rq;
                if (l->kind == LISTENER_API_TCP && !token_ok(api, c))
                        return send_problem(c, 401, "a valid bearer token is required");
                if (cl && strtoull(cl, NULL, 10) > ELVIS_API_MAX_BODY)
                        return send_problem(c, 413, "request body is larger than 1 MiB");
                return MHD_YES;
        }
        if (*upload_size) {
                if (!rq->too_large && rq->len + *upload_size <= ELVIS_API_MAX_BODY) {
                        char *b = realloc(rq->body, rq->len + *upload_size + 1);
                        if (!b)
                                return MHD_NO;
                        rq->body = b;
                        memcpy(rq->body + rq->len, upload_data, *upload_size);
                        rq->len += *upload_size;
                        rq->body[rq->len] = '\0';
                } else {
                        rq->too_large = true;
                }
                *upload_size = 0;
                return MHD_YES;
        }
        if (rq->too_large)
                return send_problem(c, 413, "request body is larger than 1 MiB");
        return dispatch(api, c, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;

        if (rq) {
                free(rq->body);
                free(rq);
                *con_cls = NULL;
        }
}

/* The metrics listener never looks at the route table: nothing else of the API is
 * reachable through it. Anything but GET or HEAD of /metrics is refused on the first
 * call, before a body is read; a scrape is answered once the request is complete, so the
 * connection can stay open for the next one. */
static enum MHD_Result on_metrics_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                          const char *version, const char *upload_data, size_t *upload_size,
                                          void **con_cls)
{
        struct listener *l = cls;
        char detail[128], *text;

        if (!*con_cls) {
                if (strcmp(url, "/metrics") != 0)
                        return send_problem(c, 404, "no such resource: this listener serves GET /metrics only");
                if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                        snprintf(detail, sizeof(detail), "method %.16s is not allowed here; allowed: GET, HEAD",
                                 method);
                        return send_doc(c, 405, elvis_problem_new(405, detail), NULL, "GET, HEAD");
                }
                *con_cls = l;           /* headers seen */
                return MHD_YES;
        }
        if (*upload_size) {
                *upload_size = 0;       /* a body on a GET means nothing: dropped */
                return MHD_YES;
        }
        text = elvis_metrics_scrape(l->api->m);
        if (!text)
                return send_problem(c, 500, "cannot render metrics");
        json_response(c, 200, ELVIS_METRICS_CONTENT_TYPE, text, NULL);
        return MHD_YES;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char buf[512];

        vsnprintf(buf, sizeof(buf), fmt, ap);
        elvis_log(LOG_DEBUG, "http: %s", buf);
}

static void on_mhd_ready(struct elvis_loop_source *src, int fd, uint32_t events, void *userdata)
{
        struct listener *l = userdata;
        run_listener(l->api, l);
}

static int mhd_timeout(void *userdata)
{
        struct listener *l = userdata;
        MHD_UNSIGNED_LONG_LONG t;

        if (!l->mhd || MHD_get_timeout(l->mhd, &t) != MHD_YES)
                return -1;
        if (t == 0)
                run_listener(l->api, l);        /* work left over from the last run */
        return t > 1000 ? 1000 : (int)t;
}

static uint64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool take_token(double *tokens, uint64_t *last, uint64_t now, double rate, double burst)
{
        *tokens += (double)(now - *last) / 1e9 * rate;
        if (*tokens > burst)
                *tokens = burst;
        *last = now;
        if (*tokens < 1.0)
                return false;
        *tokens -= 1.0;
        return true;
}

static void addr_key(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *key)
{
        memset(key, 0, sizeof(*key));
        memcpy(key, sa, len < sizeof(*key) ? len : sizeof(*key));
        if (key->ss_family == AF_INET)
                ((struct sockaddr_in *)key)->sin_port = 0;
        else if (key->ss_family == AF_INET6) {
                ((struct sockaddr_in6 *)key)->sin6_port = 0;
                ((struct sockaddr_in6 *)key)->sin6_flowinfo = 0;
        }
}

/* MHD's accept policy: a token bucket per client address (a small table; an address
 * that finds no room shares the oldest entry) and one for the whole listener. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *sa, socklen_t len)
{
        struct listener *l = cls;
        struct sockaddr_storage key;
        struct accept_bucket *b = NULL, *oldest = &l->buckets[0];
        uint64_t now = mono_ns();
        bool ok;

        addr_key(sa, len, &key);
        for (unsigned i = 0; i < TCP_BUCKETS && !b; i++) {
                if (memcmp(&l->buckets[i].addr, &key, sizeof(key)) == 0 && l->buckets[i].last_ns)
                        b = &l->buckets[i];
                else if (l->buckets[i].last_ns < oldest->last_ns)
                        oldest = &l->buckets[i];
        }
        if (!b) {
                b = oldest;
                b->addr = key;
                b->tokens = 2.0 * TCP_NEW_PER_S;
                b->last_ns = now;
        }
        ok = take_token(&b->tokens, &b->last_ns, now, TCP_NEW_PER_S, 2.0 * TCP_NEW_PER_S) &&
             take_token(&l->total_tokens, &l->total_last_ns, now, TCP_NEW_TOTAL_PER_S, TCP_NEW_TOTAL_PER_S);
        if (!ok) {
                l->refused++;
                if (elvis_ratelimit_ok(&l->refuse_rl, now))
                        log_warning("%s: refusing new connections beyond %d/s per address or %d/s in all (%llu so far)",
                                    l->name, TCP_NEW_PER_S, TCP_NEW_TOTAL_PER_S, (unsigned long long)l->refused);
        }
        return ok ? MHD_YES : MHD_NO;
}

/* cert and key (PEM text) make it a TLS listener. */
static int start_listener(struct elvis_api *api, struct listener *l, int fd, enum listener_kind kind,
                          const char *cert, const char *key)
{
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        bool tcp = kind != LISTENER_UNIX, tls = cert && key;
        int r;

        l->api = api;
        l->kind = kind;
        l->total_tokens = TCP_NEW_TOTAL_PER_S;
        l->total_last_ns = mono_ns();
        l->refuse_rl = (struct elvis_ratelimit)ELVIS_RATELIMIT_INIT(10000, 1);
        if (tls)
                flags |= MHD_USE_TLS;
        l->mhd = MHD_start_daemon(flags, 0, tcp ? accept_policy : NULL, l,
                                  kind == LISTENER_METRICS ? on_metrics_request : on_request, l,
                                  MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_LIMIT, tcp ? (unsigned)TCP_CONNECTIONS : 256u,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, tcp ? (unsigned)TCP_PER_ADDRESS : 0u,
                                  MHD_OPTION_CONNECTION_TIMEOUT, tcp ? (unsigned)TCP_TIMEOUT_S : 30u,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                                  MHD_OPTION_NOTIFY_COMPLETED, kind == LISTENER_METRICS ? NULL : on_completed, NULL,
                                  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                  tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, key,
                                  MHD_OPTION_HTTPS_MEM_CERT, cert,
                                  MHD_OPTION_END);
        if (!l->mhd) {
                close(fd);
                return elvis_log_errno(LOG_ERR, EINVAL, "cannot start the HTTP server for %s%s", l->name,
                                       tls ? " (TLS)" : "");
        }
        info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                MHD_stop_daemon(l->mhd);
                l->mhd = NULL;
                return -EINVAL;
        }
        r = elvis_loop_add_fd(api->m->loop, info->epoll_fd, EPOLLIN, on_mhd_ready, l, &l->src);
        if (r < 0)
                return r;
        return elvis_loop_add_prepare(api->m->loop, mhd_timeout, l);
}

/* A socket file nobody listens on is stale and may be replaced; a live one means
 * another manager runs with the same configuration. */
static int check_stale(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int fd, r;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        if (r == 0)
                return -EADDRINUSE;
        unlink(path);
        return 0;
}

static int bind_unix(struct elvis_api *api, const char *path, const char *group)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[sizeof(sa.sun_path)];
        mode_t old;
        int fd, r;

        snprintf(dir, sizeof(dir), "%s", path);
        if (strrchr(dir, '/') && strrchr(dir, '/') != dir) {
                *strrchr(dir, '/') = '\0';
                if (mkdir(dir, 0755) == 0) {
                        /* whatever the umask (the unit's is 0077): socket-group members pass */
                        if (chmod(dir, 0755) < 0)
                                log_warning("cannot make %s mode 0755: %m", dir);
                } else if (errno != EEXIST) {
                        return elvis_log_errno(LOG_ERR, errno, "cannot create %s: %m", dir);
                }
        }
        r = check_stale(path);
        if (r == -EADDRINUSE)
                return elvis_log_errno(LOG_ERR, r, "another elvis-manager is already listening on %s", path);
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "%s exists and is not a stale socket: %s", path, strerror(-r));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        old = umask(0117);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0) {
                r = elvis_log_errno(LOG_ERR, errno, "cannot bind %s: %m", path);
                close(fd);
                return r;
        }
        if (group && *group) {
                struct group *g = getgrnam(group);
                if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
                        r = elvis_log_errno(LOG_ERR, g ? errno : ENOENT, "cannot give %s to group '%s'%s", path, group,
                                            g ? "" : ": no such group");
                        close(fd);
                        unlink(path);
                        return r;
                }
        }
        if (chmod(path, 0660) < 0 || listen(fd, 64) < 0) {
                r = elvis_log_errno(LOG_ERR, errno, "cannot listen on %s: %m", path);
                close(fd);
                unlink(path);
                return r;
        }
        api->socket_path = strdup(path);
        return fd;
}

static int bind_tcp(const char *addr)
{
        char host[256], *port;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *ai = NULL;
        int fd = -1, r, one = 1;

        snprintf(host, sizeof(host), "%s", addr);
        port = strrchr(host, ':');
        if (!port)
                return -EINVAL;
        *port++ = '\0';
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
                memmove(host, host + 1, strlen(host));
                host[strlen(host) - 1] = '\0';
        }
        r = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
        if (r != 0) {
                log_error("cannot resolve listen address %s: %s", addr, gai_strerror(r));
                return -EINVAL;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
                r = elvis_log_errno(LOG_ERR, errno, "cannot listen on %s: %m", addr);
                if (fd >= 0)
                        close(fd);
                freeaddrinfo(ai);
                return r;
        }
        freeaddrinfo(ai);
        return fd;
}

static char *read_file(const char *path, size_t max)
{
        FILE *f = fopen(path, "re");
        char *buf;
        size_t n;

        if (!f)
                return NULL;
        buf = calloc(1, max + 1);
        n = buf ? fread(buf, 1, max + 1, f) : 0;
        fclose(f);
        if (!buf || n == 0 || n > max) {
                free(buf);
                errno = n > max ? EFBIG : errno ? errno : EINVAL;
                return NULL;
        }
        return buf;
}

static int load_tls(struct elvis_api *api, const struct elvis_config *cfg)
{
        char *t;

        api->cert = read_file(cfg->tls_cert, 1 << 20);
        if (!api->cert)
                return elvis_log_errno(LOG_ERR, errno, "cannot read tls-cert %s: %m", cfg->tls_cert);
        api->key = read_file(cfg->tls_key, 1 << 20);
        if (!api->key)
                return elvis_log_errno(LOG_ERR, errno, "cannot read tls-key %s: %m", cfg->tls_key);
        api->token = read_file(cfg->token_file, 4096);
        if (!api->token)
                return elvis_log_errno(LOG_ERR, errno, "cannot read token-file %s: %m", cfg->token_file);
        for (t = api->token + strlen(api->token); t > api->token && strchr(" \t\r\n", t[-1]); t--)
                t[-1] = '\0';
        if (strlen(api->token) < 16)
                return elvis_log_errno(LOG_ERR, EINVAL, "token in %s is shorter than 16 characters", cfg->token_file);
        return 0;
}

/* One listener per --metrics-listen address, TLS when metrics-tls-cert is set. */
static int start_metrics(struct elvis_api *api, const struct elvis_config *cfg)
{
        bool tls = cfg->metrics_tls_cert[0] != '\0';

        if (!cfg->metrics_listen[0])
                return 0;
        if (tls) {
                api->metrics_cert = read_file(cfg->metrics_tls_cert, 1 << 20);
                if (!api->metrics_cert)
                        return elvis_log_errno(LOG_ERR, errno, "cannot read metrics-tls-cert %s: %m", cfg->metrics_tls_cert);
                api->metrics_key = read_file(cfg->metrics_tls_key, 1 << 20);
                if (!api->metrics_key)
                        return elvis_log_errno(LOG_ERR, errno, "cannot read metrics-tls-key %s: %m", cfg->metrics_tls_key);
        }
        for (const char *p = cfg->metrics_listen; *p && api->nml < ELVIS_METRICS_LISTEN_MAX;) {
                size_t len = strcspn(p, "\n");
                struct listener *l = &api->ml[api->nml];
                char addr[256];
                int fd, r;

                snprintf(addr, sizeof(addr), "%.*s", (int)(len < sizeof(addr) ? len : sizeof(addr) - 1), p);
                p += len + (p[len] == '\n');
                fd = bind_tcp(addr);
                if (fd < 0)
                        return fd;
                snprintf(l->name, sizeof(l->name), "metrics listener %.70s", addr);
                r = start_listener(api, l, fd, LISTENER_METRICS, api->metrics_cert, api->metrics_key);
                if (r < 0)
                        return r;
                api->nml++;
                log_info("metrics on %s (%s, GET /metrics only, no token)", addr, tls ? "TLS" : "plain HTTP");
        }
        return 0;
}

static struct listener *listener_of(struct elvis_api *api, struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

        return ci && ci->daemon == api->tl.mhd ? &api->tl : &api->ul;
}

/* A journal event: requests waiting for one answer now. */
static void on_manager_event(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old, void *userdata)
{
        if (ev == ELVIS_EVENT_JOURNAL)
                elvis_api_wake(userdata);
}

int elvis_api_start(struct elvis_manager *m, struct elvis_api **ret)
{
        struct elvis_api *api = calloc(1, sizeof(*api));
        int fd, r;

        if (!api)
                return -ENOMEM;
        api->m = m;
        /* long polls are re-checked twice a second for their deadlines */
        r = elvis_loop_add_timer(m->loop, 500000, true, on_wait_timer, api, &api->wait_timer);
        if (r < 0) {
                free(api);
                return r;
        }
        fd = bind_unix(api, m->cfg.socket, m->cfg.socket_group);
        if (fd < 0) {
                r = fd;
                goto fail;
        }
        snprintf(api->ul.name, sizeof(api->ul.name), "API socket %s", m->cfg.socket);
        r = start_listener(api, &api->ul, fd, LISTENER_UNIX, NULL, NULL);
        if (r < 0)
                goto fail;
        if (m->cfg.listen[0]) {
                r = load_tls(api, &m->cfg);
                if (r < 0)
                        goto fail;
                fd = bind_tcp(m->cfg.listen);
                if (fd < 0) {
                        r = fd;
                        goto fail;
                }
                snprintf(api->tl.name, sizeof(api->tl.name), "TCP API %s", m->cfg.listen);
                r = start_listener(api, &api->tl, fd, LISTENER_API_TCP, api->cert, api->key);
                if (r < 0)
                        goto fail;
                log_info("API also listening on %s (TLS, bearer token)", m->cfg.listen);
        }
        r = start_metrics(api, &m->cfg);
        if (r < 0)
                goto fail;
        r = elvis_manager_listen(m, on_manager_event, api);
        if (r < 0)
                goto fail;
        api->listening = true;
        *ret = api;
        return 0;
fail:
        elvis_api_stop(api);
        return r;
}

static void quiesce(struct listener *l)
{
        MHD_socket fd;

        if (!l->mhd || l->quiesced)
                return;
        fd = MHD_quiesce_daemon(l->mhd);
        if (fd != MHD_INVALID_SOCKET)
                close(fd);
        l->quiesced = true;
}

void elvis_api_quiesce(struct elvis_api *api)
{
        if (!api)
                return;
        quiesce(&api->ul);
        quiesce(&api->tl);
        for (unsigned i = 0; i < api->nml; i++)
                quiesce(&api->ml[i]);
        if (api->socket_path)
                unlink(api->socket_path);
}

static unsigned connections(const struct listener *l)
{
        const union MHD_DaemonInfo *info;

        if (!l->mhd)
                return 0;
        info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return info ? info->num_connections : 0;
}

/* Metrics connections are not waited for: a scrape changes nothing, and a scraper's idle
 * keep-alive connection would hold every shutdown for the whole drain timeout. */
unsigned elvis_api_connections(const struct elvis_api *api)
{
        return api ? connections(&api->ul) + connections(&api->tl) : 0;
}

static void stop_listener(struct listener *l)
{
        if (l->api)
                elvis_loop_remove_prepare(l->api->m->loop, mhd_timeout, l);
        elvis_loop_source_free(l->src);
        l->src = NULL;
        if (l->mhd)
                MHD_stop_daemon(l->mhd);
        l->mhd = NULL;
}

void elvis_api_stop(struct elvis_api *api)
{
        if (!api)
                return;
        if (api->listening)
                elvis_manager_unlisten(api->m, on_manager_event, api);
        /* suspended connections must be resumed before MHD stops */
        while (api->nwaiters)
                MHD_resume_connection(api->waiters[--api->nwaiters].conn);
        elvis_loop_source_free(api->wait_timer);
        stop_listener(&api->ul);
        stop_listener(&api->tl);
        for (unsigned i = 0; i < ELVIS_METRICS_LISTEN_MAX; i++)
                stop_listener(&api->ml[i]);
        if (api->socket_path)
                unlink(api->socket_path);
        free(api->socket_path);
        free(api->token);
        free(api->cert);
        free(api->key);
        free(api->metrics_cert);
        free(api->metrics_key);
        free(api);
}

static int fe_start(struct elvis_manager *m, void **ret)
{
        return elvis_api_start(m, (struct elvis_api **)ret);
}

static void fe_quiesce(void *fe)
{
        elvis_api_quiesce(fe);
}

static unsigned fe_connections(const void *fe)
{
        return elvis_api_connections(fe);
}

static void fe_stop(void *fe)
{
        elvis_api_stop(fe);
}

const struct elvis_frontend_ops elvis_api_frontend = {
        .start = fe_start,
        .quiesce = fe_quiesce,
        .connections = fe_connections,
        .stop = fe_stop,
};

const struct elvis_api_route_info *elvis_api_routes(size_t *ret_n)
{
        static struct elvis_api_route_info infos[64];
        size_t n = elvis_api_route_count < 64 ? elvis_api_route_count : 64;

        for (size_t i = 0; i < n; i++)
                infos[i] = (struct elvis_api_route_info){ elvis_api_route_table[i].method,
                                                          elvis_api_route_table[i].path };
        *ret_n = n;
        return infos;
}
