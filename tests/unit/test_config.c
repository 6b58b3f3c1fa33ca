/* Unit tests: configuration parsing, golden bad-config cases with file:line messages. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "../../daemon/config.h"
#include "../../daemon/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA ELVIS_SOURCE_DIR "/tests/data/config"

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0;

        cr_assert_not_null(f, "open %s", path);
        cr_assert_geq(getdelim(&buf, &n, '\0', f), 0);
        fclose(f);
        return buf;
}

/* Replaces @DIR@ with the data directory. */
static char *expand(const char *text)
{
        char *out = malloc(strlen(text) * 4 + strlen(DATA) * 16 + 1), *o = out;

        for (const char *p = text; *p;) {
                if (strncmp(p, "@DIR@", 5) == 0) {
                        o += sprintf(o, "%s", DATA);
                        p += 5;
                } else {
                        *o++ = *p++;
                }
        }
        *o = '\0';
        return out;
}

static char *run_golden(const char *name, int *ret)
{
        char path[512];
        char *argv[] = { "elvis-manager", "--config", path, "--check-config", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };
        enum elvis_config_action action;
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        snprintf(path, sizeof(path), "%s/%s.conf", DATA, name);
        *ret = elvis_config_load(4, argv, &c, &action, &e);
        if (*ret == 0) {
                cr_assert(c.check_config);
                fprintf(f, "configuration OK\n");
                elvis_config_fini(&c);
        }
        elvis_config_errors_print(&e, f);
        elvis_config_errors_fini(&e);
        fclose(f);
        return out;
}

struct golden {
        char name[32];
};

ParameterizedTestParameters(config, golden)
{
        /* by value: Criterion may run each case in a fresh process where pointers differ */
        static struct golden names[] = {
                { "ok-minimal" },
                { "ok-full" },
                { "bad-unknown-key" },
                { "bad-cpulist" },
                { "bad-cpu-range" },
                { "bad-listen-no-tls" },
                { "bad-listen-port" },
                { "bad-syntax" },
                { "bad-relative-path" },
                { "bad-duplicate" },
                { "bad-loglevel" },
                { "bad-dataplane" },
                { "bad-flag-only" },
                { "bad-reserved-all" },
                { "bad-quote" },
                { "bad-bool" },
                { "bad-multiple" },
                { "bad-tls-missing" },
                { "bad-vhost-user-dir" },
                { "bad-image-dir" },
                { "bad-vmm-user" },
                { "bad-adopt-domains" },
                { "bad-vcpu-pinning" },
                { "bad-metrics-listen" },
                { "bad-metrics-tls" },
        };
        return cr_make_param_array(struct golden, names, sizeof(names) / sizeof(names[0]));
}

ParameterizedTest(struct golden *g, config, golden)
{
        const char *const *name = &(const char *){ g->name };
        char expected_path[512];
        char *got, *want, *raw;
        int r;

        snprintf(expected_path, sizeof(expected_path), "%s/%s.out", DATA, *name);
        raw = slurp(expected_path);
        want = expand(raw);
        got = run_golden(*name, &r);
        cr_assert_str_eq(got, want, "golden %s:\n--- got ---\n%s--- want ---\n%s", *name, got, want);
        if (strncmp(*name, "ok-", 3) == 0)
                cr_assert_eq(r, 0);
        else
                cr_assert_eq(r, -EINVAL, "%s: expected -EINVAL, got %d", *name, r);
        free(raw);
        free(want);
        free(got);
}

static int load_args(int argc, char **argv, struct elvis_config *c, struct elvis_config_errors *e)
{
        enum elvis_config_action action;
        return elvis_config_load(argc, argv, c, &action, e);
}

Test(config, defaults_without_file)
{
        char *argv[] = { "elvis-manager", "--config", "", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_eq(load_args(3, argv, &c, &e), 0);
        cr_assert_str_eq(c.socket, "/run/elvis/elvis.sock");
        cr_assert_str_eq(c.state_dir, "/var/lib/elvis");
        cr_assert_str_eq(c.run_dir, "/run/elvis");
        cr_assert_str_eq(c.dataplane, "auto");
        cr_assert_str_eq(c.libvirt_uri, "qemu:///system");
        cr_assert_str_eq(c.vcpu_pinning, "own", "ELVIS pins unless told an orchestrator does");
        cr_assert_not(elvis_config_respects_pins(&c));
        cr_assert_str_eq(c.listen, "");
        cr_assert(c.cpus_all);
        cr_assert(elvis_cpuset_has(&c.reserved_cpus, 0));
        cr_assert_eq(elvis_cpuset_count(&c.reserved_cpus), 1);
        cr_assert_eq(c.log_level, LOG_INFO);
        cr_assert_not(c.foreground);
        cr_assert_str_eq(c.adopt_domains, "", "metadata only unless the operator lists domains");
        elvis_config_fini(&c);
}

Test(config, flags_win_over_file)
{
        char *argv[] = { "elvis-manager", "--config", DATA "/ok-full.conf", "--state-dir=/tmp/x", "--log-level",
                         "err", "--cpus", "2-3", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_eq(load_args(8, argv, &c, &e), 0);
        cr_assert_str_eq(c.state_dir, "/tmp/x");
        cr_assert_eq(c.log_level, LOG_ERR);
        cr_assert_not(c.cpus_all);
        cr_assert_eq(elvis_cpuset_count(&c.cpus), 2);
        cr_assert_str_eq(c.socket_group, "kvm");      /* from the file */
        cr_assert(elvis_config_respects_pins(&c), "vcpu-pinning = respect from the file");
        cr_assert_eq(elvis_cpuset_count(&c.reserved_cpus), 2);
        elvis_config_fini(&c);
}

Test(config, flag_overrides_bad_file_value)
{
        char *argv[] = { "elvis-manager", "--config", DATA "/bad-loglevel.conf", "--log-level", "debug", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_eq(load_args(5, argv, &c, &e), 0, "a flag replaces the file's value, so its error does not apply");
        cr_assert_eq(c.log_level, LOG_DEBUG);
        elvis_config_fini(&c);
}

Test(config, usage_errors)
{
        char *a1[] = { "elvis-manager", "--nope", NULL };
        char *a2[] = { "elvis-manager", "--socket", NULL };
        char *a3[] = { "elvis-manager", "stray", NULL };
        char *a4[] = { "elvis-manager", "--foreground=yes", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_eq(load_args(2, a1, &c, &e), -E2BIG);
        cr_assert_str_eq(e.lines[0], "unknown option '--nope'");
        elvis_config_errors_fini(&e);
        cr_assert_eq(load_args(2, a2, &c, &e), -E2BIG);
        cr_assert_str_eq(e.lines[0], "--socket needs a value (PATH)");
        elvis_config_errors_fini(&e);
        cr_assert_eq(load_args(2, a3, &c, &e), -E2BIG);
        elvis_config_errors_fini(&e);
        cr_assert_eq(load_args(2, a4, &c, &e), -E2BIG);
        elvis_config_errors_fini(&e);
}

Test(config, missing_explicit_file_is_an_error)
{
        char *argv[] = { "elvis-manager", "--config", "/nonexistent/elvis.conf", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_lt(load_args(3, argv, &c, &e), 0);
        cr_assert_eq(e.n, 1);
        cr_assert(strstr(e.lines[0], "/nonexistent/elvis.conf: cannot open"), "%s", e.lines[0]);
        elvis_config_errors_fini(&e);
}

Test(config, flag_errors_name_the_flag)
{
        char *argv[] = { "elvis-manager", "--config", "", "--reserved-cpus", "0-", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_eq(load_args(5, argv, &c, &e), -EINVAL);
        cr_assert_str_eq(e.lines[0], "--reserved-cpus: reserved-cpus: invalid CPU list '0-'");
        elvis_config_errors_fini(&e);
}

struct seen {
        char names[16][32];
        bool live[16];
        int n;
};

static void collect(const char *name, bool live, void *userdata)
{
        struct seen *s = userdata;
        snprintf(s->names[s->n], 32, "%s", name);
        s->live[s->n++] = live;
}

Test(config, diff_marks_live_options)
{
        char *a1[] = { "elvis-manager", "--config", "", NULL };
        char *a2[] = { "elvis-manager", "--config", "", "--log-level", "debug", "--socket", "/tmp/other.sock", NULL };
        struct elvis_config c1, c2;
        struct elvis_config_errors e = { 0 };
        struct seen s = { 0 };

        cr_assert_eq(load_args(3, a1, &c1, &e), 0);
        cr_assert_eq(load_args(7, a2, &c2, &e), 0);
        elvis_config_diff(&c1, &c2, collect, &s);
        cr_assert_eq(s.n, 2);
        cr_assert_str_eq(s.names[0], "socket");
        cr_assert_not(s.live[0]);
        cr_assert_str_eq(s.names[1], "log-level");
        cr_assert(s.live[1]);
        elvis_config_fini(&c1);
        elvis_config_fini(&c2);
}

/* --metrics-listen repeats, up to ELVIS_METRICS_LISTEN_MAX listeners; its TLS files go together. */
Test(config, metrics_listen_repeats)
{
        char *argv[] = { "elvis-manager", "--config", "", "--metrics-listen", "127.0.0.1:9464", "--metrics-listen=[::1]:9465",
                         NULL };
        char *many[32] = { "elvis-manager", "--config", "" };
        char *key_only[] = { "elvis-manager", "--config", "", "--metrics-listen", "127.0.0.1:9464", "--metrics-tls-key",
                             "/etc/hostname", NULL };
        char *tls_alone[] = { "elvis-manager", "--config", "", "--metrics-tls-cert", "/etc/hostname", "--metrics-tls-key",
                              "/etc/hostname", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };
        enum elvis_config_action action;
        int n = 3;

        cr_assert_eq(elvis_config_load(6, argv, &c, &action, &e), 0);
        cr_assert_str_eq(c.metrics_listen, "127.0.0.1:9464\n[::1]:9465");
        cr_assert_str_eq(c.metrics_tls_cert, "");
        elvis_config_fini(&c);
        for (int i = 0; i <= ELVIS_METRICS_LISTEN_MAX; i++) {
                many[n++] = "--metrics-listen";
                many[n++] = "127.0.0.1:9464";
        }
        cr_assert_eq(elvis_config_load(n, many, &c, &action, &e), -EINVAL);
        cr_assert_eq(e.n, 1);
        cr_assert(strstr(e.lines[0], "metrics-listen is given 9 times; at most 8 listeners"), "%s", e.lines[0]);
        elvis_config_errors_fini(&e);
        cr_assert_eq(elvis_config_load(7, key_only, &c, &action, &e), -EINVAL);
        cr_assert_eq(e.n, 1);
        cr_assert_str_eq(e.lines[0], "--metrics-tls-key: metrics-tls-cert and metrics-tls-key go together (TLS needs both)");
        elvis_config_errors_fini(&e);
        cr_assert_eq(elvis_config_load(7, tls_alone, &c, &action, &e), -EINVAL);
        cr_assert_eq(e.n, 1);
        cr_assert_str_eq(e.lines[0], "--metrics-tls-cert: metrics-tls-cert is set but there is no metrics-listen to use it");
        elvis_config_errors_fini(&e);
}

/* --image-dir: /var/lib/elvis/images unless given; each occurrence adds one, replacing the default. */
Test(config, image_dir_default_and_repeats)
{
        char *none[] = { "elvis-manager", "--config", "", NULL };
        char *two[] = { "elvis-manager", "--config", "", "--image-dir", "/srv/a", "--image-dir=/srv/b", NULL };
        char *file[] = { "elvis-manager", "--config", DATA "/ok-full.conf", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };
        enum elvis_config_action action;

        cr_assert_eq(elvis_config_load(3, none, &c, &action, &e), 0);
        cr_assert_str_eq(c.image_dirs, "/var/lib/elvis/images");
        elvis_config_fini(&c);
        cr_assert_eq(elvis_config_load(6, two, &c, &action, &e), 0);
        cr_assert_str_eq(c.image_dirs, "/srv/a\n/srv/b");
        elvis_config_fini(&c);
        cr_assert_eq(elvis_config_load(3, file, &c, &action, &e), 0);
        cr_assert_str_eq(c.image_dirs, "/var/lib/elvis/images\n/srv/images");
        elvis_config_fini(&c);
        elvis_config_errors_fini(&e);
}

/* --vhost-user-dir repeats: every occurrence adds a directory, flags replace the file's list. */
Test(config, vhost_user_dir_repeats)
{
        char *argv[] = { "elvis-manager", "--config", "", "--vhost-user-dir", "/a", "--vhost-user-dir=/b/c",
                         "--vmm-user", "0:0", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };
        enum elvis_config_action action;
        bool us, gs;
        uint32_t u, g;

        cr_assert_eq(elvis_config_load(8, argv, &c, &action, &e), 0);
        cr_assert_str_eq(c.vhost_user_dirs, "/a\n/b/c");
        cr_assert_eq(elvis_identity_parse(c.vmm_user, &us, &u, &gs, &g), 0);
        cr_assert(us && u == 0 && gs && g == 0);
        cr_assert_eq(elvis_identity_parse("root", &us, &u, &gs, &g), 0);
        cr_assert(us && !gs);
        cr_assert_lt(elvis_identity_parse("4294967295", NULL, NULL, NULL, NULL), 0, "(uid_t)-1 is no identity");
        cr_assert_lt(elvis_identity_parse(":0", NULL, NULL, NULL, NULL), 0);
        elvis_config_fini(&c);
        elvis_config_errors_fini(&e);
}

/* adopt-domains: a glob list from a flag or the file, checked item by item, live on SIGHUP. */
Test(config, adopt_domains)
{
        char *a1[] = { "elvis-manager", "--config", "", NULL };
        char *a2[] = { "elvis-manager", "--config", "", "--adopt-domains", "web-*,db-?", NULL };
        char *a3[] = { "elvis-manager", "--config", "", "--adopt-domains", "web-*,", NULL };
        char *a4[] = { "elvis-manager", "--config", "", "--adopt-domains=../etc/*", NULL };
        char *a5[] = { "elvis-manager", "--config", DATA "/ok-full.conf", NULL };
        struct elvis_config c1, c2;
        struct elvis_config_errors e = { 0 };
        struct seen s = { 0 };

        cr_assert_eq(load_args(3, a1, &c1, &e), 0);
        cr_assert_eq(load_args(5, a2, &c2, &e), 0);
        cr_assert_str_eq(c2.adopt_domains, "web-*,db-?");
        elvis_config_diff(&c1, &c2, collect, &s);
        cr_assert_eq(s.n, 1);
        cr_assert_str_eq(s.names[0], "adopt-domains");
        cr_assert(s.live[0], "SIGHUP applies a new allow-list");
        elvis_config_fini(&c1);
        elvis_config_fini(&c2);
        cr_assert_eq(load_args(5, a3, &c1, &e), -EINVAL);
        cr_assert_str_eq(e.lines[0], "--adopt-domains: adopt-domains: empty item (two commas, or a comma at an end)");
        elvis_config_errors_fini(&e);
        cr_assert_eq(load_args(4, a4, &c1, &e), -EINVAL);
        cr_assert(strstr(e.lines[0], "'../etc/*': a domain name has no '/'"), "%s", e.lines[0]);
        elvis_config_errors_fini(&e);
        cr_assert_eq(load_args(3, a5, &c1, &e), 0);
        cr_assert_str_eq(c1.adopt_domains, "web-*, nova-[0-9]*");
        elvis_config_fini(&c1);
}

Test(config, vcpu_pinning_flag)
{
        char *a1[] = { "elvis-manager", "--config", "", "--vcpu-pinning", "respect", NULL };
        char *a2[] = { "elvis-manager", "--config", "", "--vcpu-pinning=Respect", NULL };
        struct elvis_config c;
        struct elvis_config_errors e = { 0 };

        cr_assert_eq(load_args(5, a1, &c, &e), 0);
        cr_assert(elvis_config_respects_pins(&c));
        elvis_config_fini(&c);
        cr_assert_eq(load_args(4, a2, &c, &e), -EINVAL, "the values are exact");
        cr_assert_str_eq(e.lines[0], "--vcpu-pinning: vcpu-pinning must be own or respect; got 'Respect'");
        elvis_config_errors_fini(&e);
}
