/* Option table, argv and config-file parsing, validation with file:line messages. */
#include "config.h"

#include <elvis/version.h>

#include "domxml.h"
#include "log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

enum opt_type {
        T_PATH,         /* absolute path or empty */
        T_PATHS,        /* repeatable: each occurrence adds an absolute path */
        T_IDENTITY,     /* USER[:GROUP], names or numbers, or empty */
        T_STRING,
        T_CPULIST,
        T_LOGLEVEL,
        T_DATAPLANE,
        T_PINNING,      /* own|respect */
        T_LISTEN,       /* ADDR:PORT or empty */
        T_LISTENS,      /* repeatable: each occurrence adds an ADDR:PORT */
        T_BOOL,         /* flag without argument; yes/no/true/false/1/0 in the file */
        T_GLOBS,        /* comma-separated shell globs of libvirt domain names, or empty */
};

struct option_def {
        const char *name;
        enum opt_type type;
        size_t offset;          /* into struct elvis_config; unused for cpulists and bools */
        const char *def;
        bool live;              /* SIGHUP applies it without a restart */
        bool flag_only;         /* not accepted in the config file */
        const char *arg;
        const char *help;
};

#define OFF(field) offsetof(struct elvis_config, field)
#define NO_OFFSET ((size_t)-1)

static bool repeatable(enum opt_type t)
{
        return t == T_PATHS || t == T_LISTENS;
}

static const struct option_def options[] = {
        { "config", T_PATH, OFF(config_file), ELVIS_DEFAULT_CONFIG, false, true, "FILE",
          "configuration file (keys are the long option names)" },
        { "socket", T_PATH, OFF(socket), "/run/elvis/elvis.sock", false, false, "PATH",
          "REST API unix socket" },
        { "socket-group", T_STRING, OFF(socket_group), "", false, false, "GROUP",
          "group owning the API socket (mode 0660)" },
        { "listen", T_LISTEN, OFF(listen), "", false, false, "ADDR:PORT",
          "also serve the API over TCP with TLS (needs tls-cert, tls-key, token-file)" },
        { "tls-cert", T_PATH, OFF(tls_cert), "", false, false, "FILE", "TLS certificate (PEM) for --listen" },
        { "tls-key", T_PATH, OFF(tls_key), "", false, false, "FILE", "TLS private key (PEM) for --listen" },
        { "token-file", T_PATH, OFF(token_file), "", false, false, "FILE",
          "bearer token required on the TCP listener" },
        { "metrics-listen", T_LISTENS, OFF(metrics_listen), "", false, false, "ADDR:PORT",
          "serve GET /metrics only, without a token, over TCP (repeatable)" },
        { "metrics-tls-cert", T_PATH, OFF(metrics_tls_cert), "", false, false, "FILE",
          "TLS certificate (PEM) for --metrics-listen (default: plain HTTP)" },
        { "metrics-tls-key", T_PATH, OFF(metrics_tls_key), "", false, false, "FILE",
          "TLS private key (PEM) for --metrics-listen" },
        { "state-dir", T_PATH, OFF(state_dir), "/var/lib/elvis", false, false, "DIR", "persistent state" },
        { "run-dir", T_PATH, OFF(run_dir), "/run/elvis", false, false, "DIR", "runtime files, vhost-user sockets" },
        { "vhost-user-dir", T_PATHS, OFF(vhost_user_dirs), "", false, false, "DIR",
          "also allow vhost-user sockets here (repeatable; run-dir is always allowed)" },
        { "image-dir", T_PATHS, OFF(image_dirs), "/var/lib/elvis/images", false, false, "DIR",
          "blk devices' images must be under one of these (repeatable; replaces the default)" },
        { "vmm-user", T_IDENTITY, OFF(vmm_user), "", false, false, "USER[:GROUP]",
          "who may connect to vhost-user sockets when a VM does not say (root always may)" },
        { "dataplane", T_DATAPLANE, OFF(dataplane), "auto", false, false, "auto|user-process|kernel|user",
          "data plane (auto: kernel if /dev/elvis exists, else user-process, the user-space data plane in "
          "elvis-dataplane; user: in elvis-manager itself, for development, tests and benchmarks)" },
        { "libvirt-uri", T_STRING, OFF(libvirt_uri), "qemu:///system", false, false, "URI|none",
          "libvirt connection for vCPU pinning" },
        { "adopt-domains", T_GLOBS, OFF(adopt_domains), "", true, false, "GLOB[,GLOB...]",
          "also adopt these libvirt domains (names or UUIDs) without ELVIS metadata" },
        { "vcpu-pinning", T_PINNING, OFF(vcpu_pinning), "own", false, false, "own|respect",
          "own: pin vCPUs, emulator and iothreads and correct drift; respect: leave an orchestrator's pins alone" },
        { "topology-xml", T_PATH, OFF(topology_xml), "", false, false, "FILE",
          "use an hwloc XML topology instead of the live host" },
        { "cpus", T_CPULIST, NO_OFFSET, "", true, false, "LIST", "CPUs ELVIS may use (default: all)" },
        { "reserved-cpus", T_CPULIST, NO_OFFSET, "0", true, false, "LIST",
          "housekeeping CPUs ELVIS never uses" },
        { "log-level", T_LOGLEVEL, NO_OFFSET, "info", true, false, "LEVEL", "err, warning, notice, info, debug" },
        { "pid-file", T_PATH, OFF(pid_file), "", false, false, "FILE", "write the daemon's pid here" },
        { "foreground", T_BOOL, NO_OFFSET, "no", false, false, NULL, "do not detach" },
        { "check-config", T_BOOL, NO_OFFSET, "no", false, true, NULL, "validate the configuration and exit" },
        { "version", T_BOOL, NO_OFFSET, "no", false, true, NULL, "print the version and exit" },
        { "help", T_BOOL, NO_OFFSET, "no", false, true, NULL, "print this help and exit" },
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

struct raw {
        char *value;
        char origin[300];       /* "--name" or "file:line" */
};

static void add_error(struct elvis_config_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_error(struct elvis_config_errors *e, const char *fmt, ...)
{
        va_list ap;
        char *line = NULL, **lines;

        va_start(ap, fmt);
        if (vasprintf(&line, fmt, ap) < 0)
                line = NULL;
        va_end(ap);
        if (!line)
                return;
        lines = realloc(e->lines, (e->n + 1) * sizeof(*lines));
        if (!lines) {
                free(line);
                return;
        }
        e->lines = lines;
        e->lines[e->n++] = line;
}

void elvis_config_errors_fini(struct elvis_config_errors *e)
{
        for (size_t i = 0; i < e->n; i++)
                free(e->lines[i]);
        free(e->lines);
        e->lines = NULL;
        e->n = 0;
}

void elvis_config_errors_print(const struct elvis_config_errors *e, FILE *f)
{
        for (size_t i = 0; i < e->n; i++)
                fprintf(f, "%s\n", e->lines[i]);
}

void elvis_config_fini(struct elvis_config *c)
{
        for (size_t i = 0; i < NOPTIONS; i++)
                if (options[i].offset != NO_OFFSET)
                        free(*(char **)((char *)c + options[i].offset));
        memset(c, 0, sizeof(*c));
}

static int find_option(const char *name, size_t len)
{
        for (size_t i = 0; i < NOPTIONS; i++)
                if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
                        return (int)i;
        return -1;
}

static void raw_set(struct raw *r, const char *value, const char *origin)
{
        free(r->value);
        r->value = strdup(value);
        snprintf(r->origin, sizeof(r->origin), "%s", origin);
}

/* Repeatable options collect their values one per line. */
static void raw_append(struct raw *r, const char *value, const char *origin)
{
        char *joined = NULL;

        if (!r->value) {
                raw_set(r, value, origin);
                return;
        }
        if (asprintf(&joined, "%s\n%s", r->value, value) < 0)
                return;
        free(r->value);
        r->value = joined;
}

static void raw_fini(struct raw *raws)
{
        for (size_t i = 0; i < NOPTIONS; i++)
                free(raws[i].value);
}

static int parse_argv(int argc, char **argv, struct raw *raws, struct elvis_config_errors *errors)
{
        int bad = 0;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *eq, *value = NULL;
                char origin[96];
                int o;

                if (strcmp(a, "-h") == 0)
                        a = "--help";
                else if (strcmp(a, "-V") == 0)
                        a = "--version";
                if (strncmp(a, "--", 2) != 0) {
                        add_error(errors, "unexpected argument '%s'", a);
                        bad = -EINVAL;
                        continue;
                }
                a += 2;
                eq = strchr(a, '=');
                o = find_option(a, eq ? (size_t)(eq - a) : strlen(a));
                if (o < 0) {
                        add_error(errors, "unknown option '--%.*s'", eq ? (int)(eq - a) : (int)strlen(a), a);
                        bad = -EINVAL;
                        continue;
                }
                snprintf(origin, sizeof(origin), "--%s", options[o].name);
                if (options[o].type == T_BOOL) {
                        if (eq) {
                                add_error(errors, "%s takes no value", origin);
                                bad = -EINVAL;
                                continue;
                        }
                        value = "yes";
                } else if (eq) {
                        value = eq + 1;
                } else if (i + 1 < argc) {
                        value = argv[++i];
                } else {
                        add_error(errors, "%s needs a value (%s)", origin, options[o].arg);
                        bad = -EINVAL;
                        continue;
                }
                if (repeatable(options[o].type))
                        raw_append(&raws[o], value, origin);
                else
                        raw_set(&raws[o], value, origin);
        }
        return bad;
}

static char *trim(char *s)
{
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
                *--end = '\0';
        return s;
}

/* Parses "key = value" lines; '#' starts a comment line; values may be double-quoted. */
static int parse_file(const char *path, bool must_exist, struct raw *raws, const struct raw *flags,
                      struct elvis_config_errors *errors)
{
        FILE *f = fopen(path, "re");
        char line[4096];
        unsigned lineno = 0;
        int bad = 0;

        if (!f) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                add_error(errors, "%s: cannot open: %s", path, strerror(errno));
                return -errno;
        }
        while (fgets(line, sizeof(line), f)) {
                char *s, *key, *value, *eq, origin[300];
                size_t len = strlen(line);
                int o;

                lineno++;
                if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
                        add_error(errors, "%s:%u: line too long", path, lineno);
                        bad = -EINVAL;
                        int c;
                        while ((c = fgetc(f)) != EOF && c != '\n')
                                ;
                        continue;
                }
                s = trim(line);
                if (*s == '\0' || *s == '#')
                        continue;
                eq = strchr(s, '=');
                if (!eq) {
                        add_error(errors, "%s:%u: expected 'key = value'", path, lineno);
                        bad = -EINVAL;
                        continue;
                }
                *eq = '\0';
                key = trim(s);
                value = trim(eq + 1);
                len = strlen(value);
                if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
                        value[len - 1] = '\0';
                        value++;
                } else if (len && (value[0] == '"' || value[len - 1] == '"')) {
                        add_error(errors, "%s:%u: unbalanced quote in value of '%s'", path, lineno, key);
                        bad = -EINVAL;
                        continue;
                }
                o = find_option(key, strlen(key));
                if (o < 0) {
                        add_error(errors, "%s:%u: unknown key '%s'", path, lineno, key);
                        bad = -EINVAL;
                        continue;
                }
                if (options[o].flag_only) {
                        add_error(errors, "%s:%u: '%s' is a command-line option only", path, lineno, key);
                        bad = -EINVAL;
                        continue;
                }
                snprintf(origin, sizeof(origin), "%s:%u", path, lineno);
                if (repeatable(options[o].type)) {
                        if (!flags[o].value)
                                raw_append(&raws[o], value, origin);
                        continue;
                }
                if (raws[o].value && strncmp(raws[o].origin, "--", 2) != 0) {
                        add_error(errors, "%s: '%s' already set at %s", origin, key, raws[o].origin);
                        bad = -EINVAL;
                        continue;
                }
                if (!flags[o].value)
                        raw_set(&raws[o], value, origin);
        }
        fclose(f);
        return bad;
}

static int parse_bool(const char *v)
{
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
                return 1;
        if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
                return 0;
        return -EINVAL;
}

static bool listen_valid(const char *v)
{
        const char *colon = strrchr(v, ':');
        char *end;
        long port;

        if (!colon || colon == v)
                return false;
        port = strtol(colon + 1, &end, 10);
        if (*end || port < 1 || port > 65535 || end == colon + 1)
                return false;
        return true;
}

static int apply(const struct option_def *o, const char *v, const char *origin, struct elvis_config *c,
                 struct elvis_config_errors *errors)
{
        char **field = o->offset != NO_OFFSET ? (char **)((char *)c + o->offset) : NULL;
        int r;

        switch (o->type) {
        case T_PATH:
                if (*v && v[0] != '/') {
                        add_error(errors, "%s: %s must be an absolute path, got '%s'", origin, o->name, v);
                        return -EINVAL;
                }
                if (strlen(v) >= 4096) {
                        add_error(errors, "%s: %s is too long", origin, o->name);
                        return -EINVAL;
                }
                break;
        case T_PATHS:
                for (const char *p = v; *p;) {
                        size_t n = strcspn(p, "\n");
                        if (p[0] != '/' || n >= ELVIS_CONFIG_PATH_MAX) {
                                add_error(errors, "%s: %s must be an absolute path, got '%.*s'", origin, o->name,
                                          (int)(n > 200 ? 200 : n), p);
                                return -EINVAL;
                        }
                        p += n + (p[n] == '\n');
                }
                break;
        case T_IDENTITY:
                if (*v && elvis_identity_parse(v, NULL, NULL, NULL, NULL) < 0) {
                        add_error(errors, "%s: %s must be USER or USER:GROUP (names that exist, or numbers); got '%s'",
                                  origin, o->name, v);
                        return -EINVAL;
                }
                break;
        case T_STRING:
                break;
        case T_CPULIST: {
                elvis_cpuset set;
                r = elvis_cpuset_parse(v, &set);
                if (r < 0) {
                        add_error(errors, "%s: %s: invalid CPU list '%s'%s", origin, o->name, v,
                                  r == -ERANGE ? " (CPU number too large)" : "");
                        return -EINVAL;
                }
                if (strcmp(o->name, "cpus") == 0) {
                        c->cpus = set;
                        c->cpus_all = elvis_cpuset_empty(&set);
                } else {
                        c->reserved_cpus = set;
                }
                return 0;
        }
        case T_LOGLEVEL:
                r = elvis_log_level_parse(v);
                if (r < 0) {
                        add_error(errors, "%s: log-level must be one of err, warning, notice, info, debug; got '%s'",
                                  origin, v);
                        return r;
                }
                c->log_level = r;
                return 0;
        case T_DATAPLANE:
                if (strcmp(v, "auto") && strcmp(v, "user") && strcmp(v, "kernel") && strcmp(v, "user-process")) {
                        add_error(errors, "%s: dataplane must be auto, user-process, kernel or user; got '%s'", origin,
                                  v);
                        return -EINVAL;
                }
                break;
        case T_GLOBS: {
                char why[200];
                if (elvis_domxml_globs_check(v, why, sizeof(why)) < 0) {
                        add_error(errors, "%s: %s: %s", origin, o->name, why);
                        return -EINVAL;
                }
                break;
        }
        case T_PINNING:
                if (strcmp(v, "own") && strcmp(v, "respect")) {
                        add_error(errors, "%s: vcpu-pinning must be own or respect; got '%s'", origin, v);
                        return -EINVAL;
                }
                break;
        case T_LISTEN:
                if (*v && !listen_valid(v)) {
                        add_error(errors, "%s: listen must be ADDR:PORT with a port in 1-65535; got '%s'", origin, v);
                        return -EINVAL;
                }
                break;
        case T_LISTENS: {
                unsigned n = 0;
                for (const char *p = v; *p; n++) {
                        size_t len = strcspn(p, "\n");
                        char one[300];
                        snprintf(one, sizeof(one), "%.*s", (int)(len < sizeof(one) ? len : sizeof(one) - 1), p);
                        if (len >= sizeof(one) || !listen_valid(one)) {
                                add_error(errors, "%s: %s must be ADDR:PORT with a port in 1-65535; got '%.200s'", origin,
                                          o->name, one);
                                return -EINVAL;
                        }
                        p += len + (p[len] == '\n');
                }
                if (n > ELVIS_METRICS_LISTEN_MAX) {
                        add_error(errors, "%s: %s is given %u times; at most %d listeners", origin, o->name, n,
                                  ELVIS_METRICS_LISTEN_MAX);
                        return -EINVAL;
                }
                break;
        }
        case T_BOOL:
                r = parse_bool(v);
                if (r < 0) {
                        add_error(errors, "%s: %s must be yes or no; got '%s'", origin, o->name, v);
                        return r;
                }
                if (!strcmp(o->name, "foreground"))
                        c->foreground = r;
                else if (!strcmp(o->name, "check-config"))
                        c->check_config = r;
                return 0;
        }
        if (field) {
                free(*field);
                *field = strdup(v);
                if (!*field)
                        return -ENOMEM;
        }
        return 0;
}

static const char *origin_of(const struct raw *const *win, const char *name)
{
        int o = find_option(name, strlen(name));
        return win[o] ? win[o]->origin : "default";
}

static int validate(const struct elvis_config *c, const struct raw *const *raws, struct elvis_config_errors *errors)
{
        int bad = 0;

        if (*c->listen && (!*c->tls_cert || !*c->tls_key || !*c->token_file)) {
                add_error(errors, "%s: listen requires tls-cert, tls-key and token-file (the TCP API is TLS and token only)",
                          origin_of(raws, "listen"));
                bad = -EINVAL;
        }
        if (*c->listen) {
                const char *files[][2] = { { "tls-cert", c->tls_cert }, { "tls-key", c->tls_key },
                                           { "token-file", c->token_file } };
                for (size_t i = 0; i < 3; i++)
                        if (*files[i][1] && access(files[i][1], R_OK) < 0) {
                                add_error(errors, "%s: %s: cannot read %s: %s", origin_of(raws, files[i][0]),
                                          files[i][0], files[i][1], strerror(errno));
                                bad = -EINVAL;
                        }
        }
        if (!*c->metrics_tls_cert != !*c->metrics_tls_key) {
                add_error(errors, "%s: metrics-tls-cert and metrics-tls-key go together (TLS needs both)",
                          origin_of(raws, *c->metrics_tls_cert ? "metrics-tls-cert" : "metrics-tls-key"));
                bad = -EINVAL;
        } else if (*c->metrics_tls_cert && !*c->metrics_listen) {
                add_error(errors, "%s: metrics-tls-cert is set but there is no metrics-listen to use it",
                          origin_of(raws, "metrics-tls-cert"));
                bad = -EINVAL;
        }
        {
                const char *files[][2] = { { "metrics-tls-cert", c->metrics_tls_cert },
                                           { "metrics-tls-key", c->metrics_tls_key } };
                for (size_t i = 0; i < 2; i++)
                        if (*files[i][1] && access(files[i][1], R_OK) < 0) {
                                add_error(errors, "%s: %s: cannot read %s: %s", origin_of(raws, files[i][0]),
                                          files[i][0], files[i][1], strerror(errno));
                                bad = -EINVAL;
                        }
        }
        if (*c->topology_xml && access(c->topology_xml, R_OK) < 0) {
                add_error(errors, "%s: topology-xml: cannot read %s: %s", origin_of(raws, "topology-xml"),
                          c->topology_xml, strerror(errno));
                bad = -EINVAL;
        }
        if (!*c->state_dir || !*c->run_dir || !*c->socket) {
                add_error(errors, "%s: state-dir, run-dir and socket must not be empty",
                          !*c->socket ? origin_of(raws, "socket") :
                          !*c->state_dir ? origin_of(raws, "state-dir") : origin_of(raws, "run-dir"));
                bad = -EINVAL;
        }
        if (strlen(c->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                add_error(errors, "%s: socket path is longer than %zu bytes", origin_of(raws, "socket"),
                          sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
                bad = -EINVAL;
        }
        /* vhost-user sockets are run-dir/vm-<id>-<device>.sock: keep room for them */
        if (strlen(c->run_dir) > 60) {
                add_error(errors, "%s: run-dir is longer than 60 bytes; vhost-user socket paths would not fit",
                          origin_of(raws, "run-dir"));
                bad = -EINVAL;
        }
        if (!c->cpus_all) {
                elvis_cpuset usable = c->cpus;
                elvis_cpuset_andnot(&usable, &c->reserved_cpus);
                if (elvis_cpuset_empty(&usable)) {
                        add_error(errors, "%s: every CPU in cpus is also in reserved-cpus; nothing left to manage",
                                  origin_of(raws, "cpus"));
                        bad = -EINVAL;
                }
        }
        return bad;
}

static int load(int argc, char **argv, struct elvis_config *ret, enum elvis_config_action *ret_action,
                struct elvis_config_errors *errors, bool *usage_error)
{
        struct raw flags[NOPTIONS] = { 0 }, file[NOPTIONS] = { 0 };
        const struct raw *win[NOPTIONS];
        struct elvis_config c = { 0 };
        const char *path;
        int r, bad = 0;

        r = parse_argv(argc, argv, flags, errors);
        if (r < 0) {
                *usage_error = true;
                raw_fini(flags);
                return r;
        }
        if (flags[find_option("help", 4)].value) {
                elvis_config_usage(stdout);
                raw_fini(flags);
                *ret_action = ELVIS_CONFIG_EXIT_OK;
                return 0;
        }
        if (flags[find_option("version", 7)].value) {
                printf("elvis-manager %s\n", ELVIS_VERSION);
                raw_fini(flags);
                *ret_action = ELVIS_CONFIG_EXIT_OK;
                return 0;
        }
        c.config_given = flags[0].value != NULL;
        path = flags[0].value ? flags[0].value : options[0].def;
        if (path[0] == '\0') {
                /* --config "" : run on built-in defaults and flags only */
        } else if (path[0] != '/') {
                add_error(errors, "--config: must be an absolute path, got '%s'", path);
                bad = -EINVAL;
        } else {
                r = parse_file(path, c.config_given, file, flags, errors);
                if (r < 0)
                        bad = r;
        }
        for (size_t i = 0; i < NOPTIONS; i++) {
                const struct raw *src = flags[i].value ? &flags[i] : file[i].value ? &file[i] : NULL;
                win[i] = src;
                r = apply(&options[i], src ? src->value : options[i].def, src ? src->origin : "default", &c, errors);
                if (r < 0)
                        bad = r;
        }
        if (!bad)
                bad = validate(&c, win, errors);
        raw_fini(flags);
        raw_fini(file);
        if (bad) {
                elvis_config_fini(&c);
                return bad;
        }
        *ret = c;
        *ret_action = ELVIS_CONFIG_RUN;
        return 0;
}

int elvis_config_load(int argc, char **argv, struct elvis_config *ret, enum elvis_config_action *ret_action,
                      struct elvis_config_errors *errors)
{
        bool usage = false;
        int r = load(argc, argv, ret, ret_action, errors, &usage);
        return r < 0 && usage ? -E2BIG : r;
}

int elvis_config_reload(int argc, char **argv, struct elvis_config *ret, struct elvis_config_errors *errors)
{
        enum elvis_config_action action;
        bool usage = false;

        return load(argc, argv, ret, &action, errors, &usage);
}

static bool field_equal(const struct option_def *o, const struct elvis_config *a, const struct elvis_config *b)
{
        if (o->offset != NO_OFFSET)
                return strcmp(*(char *const *)((const char *)a + o->offset),
                              *(char *const *)((const char *)b + o->offset)) == 0;
        if (!strcmp(o->name, "cpus"))
                return a->cpus_all == b->cpus_all && elvis_cpuset_equal(&a->cpus, &b->cpus);
        if (!strcmp(o->name, "reserved-cpus"))
                return elvis_cpuset_equal(&a->reserved_cpus, &b->reserved_cpus);
        if (!strcmp(o->name, "log-level"))
                return a->log_level == b->log_level;
        if (!strcmp(o->name, "foreground"))
                return a->foreground == b->foreground;
        return true;
}

void elvis_config_diff(const struct elvis_config *old, const struct elvis_config *new,
                       void (*cb)(const char *name, bool live, void *userdata), void *userdata)
{
        for (size_t i = 0; i < NOPTIONS; i++)
                if (!options[i].flag_only && !field_equal(&options[i], old, new))
                        cb(options[i].name, options[i].live, userdata);
}

static int id_part(const char *s, size_t n, bool user, uint32_t *ret)
{
        char buf[64], *end;
        unsigned long long v;

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (buf[0] >= '0' && buf[0] <= '9') {
                v = strtoull(buf, &end, 10);
                if (*end || v >= UINT32_MAX)
                        return -EINVAL;
                *ret = (uint32_t)v;
                return 0;
        }
        if (user) {
                struct passwd *pw = getpwnam(buf);
                if (!pw)
                        return -EINVAL;
                *ret = pw->pw_uid;
        } else {
                struct group *gr = getgrnam(buf);
                if (!gr)
                        return -EINVAL;
                *ret = gr->gr_gid;
        }
        return 0;
}

int elvis_identity_parse(const char *s, bool *ret_uid_set, uint32_t *ret_uid, bool *ret_gid_set, uint32_t *ret_gid)
{
        const char *colon = strchr(s, ':');
        uint32_t uid = 0, gid = 0;

        if (id_part(s, colon ? (size_t)(colon - s) : strlen(s), true, &uid) < 0)
                return -EINVAL;
        if (colon && id_part(colon + 1, strlen(colon + 1), false, &gid) < 0)
                return -EINVAL;
        if (ret_uid_set)
                *ret_uid_set = true;
        if (ret_uid)
                *ret_uid = uid;
        if (ret_gid_set)
                *ret_gid_set = colon != NULL;
        if (ret_gid)
                *ret_gid = gid;
        return 0;
}

bool elvis_config_respects_pins(const struct elvis_config *c)
{
        return c->vcpu_pinning && strcmp(c->vcpu_pinning, "respect") == 0;
}

void elvis_config_usage(FILE *f)
{
        fprintf(f, "Usage: elvis-manager [OPTION]...\n"
                   "Exit-less virtual I/O manager: places vCPUs, runs polling sidecores, serves the REST API.\n\n");
        for (size_t i = 0; i < NOPTIONS; i++) {
                char left[64];
                const struct option_def *o = &options[i];
                snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
                fprintf(f, "  %-32s %s", left, o->help);
                if (o->type != T_BOOL && o->def[0])
                        fprintf(f, " [%s]", o->def);
                fprintf(f, "%s\n", o->live ? " (SIGHUP reloads)" : "");
        }
        fprintf(f, "\nEvery option but config, check-config, version and help can be set in the config file\n"
                   "as 'name = value'; command-line flags win. See elvis-manager(8).\n");
}
