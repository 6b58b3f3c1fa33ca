/* elvis-manager configuration: one declarative table gives every option's name, type,
 * default and whether SIGHUP applies it live. Flags and the config file share the keys;
 * flags win. */
#pragma once
#include <elvis/cpuset.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define ELVIS_DEFAULT_CONFIG "/etc/elvis/elvis.conf"
#define ELVIS_CONFIG_PATH_MAX 4096
#define ELVIS_METRICS_LISTEN_MAX 8

struct elvis_config {
        char *config_file;
        char *socket;
        char *socket_group;
        char *listen;
        char *tls_cert;
        char *tls_key;
        char *token_file;
        char *metrics_listen;           /* ADDR:PORT, one per line; empty: none */
        char *metrics_tls_cert;
        char *metrics_tls_key;
        char *state_dir;
        char *run_dir;
        char *vhost_user_dirs;          /* more directories for vhost-user sockets, one per line */
        char *image_dirs;               /* where blk images may be, one per line */
        char *vmm_user;                 /* USER[:GROUP] */
        char *dataplane;
        char *libvirt_uri;
        char *adopt_domains;            /* comma-separated globs; empty: domains with ELVIS metadata only */
        char *topology_xml;
        char *vcpu_pinning;             /* "own" or "respect" */
        char *pid_file;
        elvis_cpuset cpus;
        bool cpus_all;                  /* --cpus not given: every online CPU */
        elvis_cpuset reserved_cpus;
        int log_level;
        bool foreground;
        bool check_config;
        bool config_given;              /* --config named a file: it must exist */
};

enum elvis_config_action {
        ELVIS_CONFIG_RUN,
        ELVIS_CONFIG_EXIT_OK,           /* --help / --version printed */
};

/* One error per line, "file:line: message" or "--flag: message". */
struct elvis_config_errors {
        char **lines;
        size_t n;
};
void elvis_config_errors_fini(struct elvis_config_errors *e);
void elvis_config_errors_print(const struct elvis_config_errors *e, FILE *f);

void elvis_config_fini(struct elvis_config *c);
/* Parses argv, then the config file, then validates the result. Returns 0 with
 * ret_action set, -EINVAL with errors collected (usage errors included), or -errno. */
int elvis_config_load(int argc, char **argv, struct elvis_config *ret, enum elvis_config_action *ret_action,
                      struct elvis_config_errors *errors);
/* Re-reads the file keeping the flags of the original argv; used by SIGHUP. */
int elvis_config_reload(int argc, char **argv, struct elvis_config *ret, struct elvis_config_errors *errors);
/* Names of options whose values differ and that only take effect on restart. */
void elvis_config_diff(const struct elvis_config *old, const struct elvis_config *new,
                       void (*cb)(const char *name, bool live, void *userdata), void *userdata);
void elvis_config_usage(FILE *f);

/* vcpu-pinning = respect: an orchestrator (Nova, KubeVirt) owns the vCPU, emulator and
 * iothread pins; ELVIS reads them and never changes them. */
bool elvis_config_respects_pins(const struct elvis_config *c);

/* "USER[:GROUP]" with names (looked up) or numbers: 0 with the parts that were given, or
 * -EINVAL. Any out-parameter may be NULL. */
int elvis_identity_parse(const char *s, bool *ret_uid_set, uint32_t *ret_uid, bool *ret_gid_set, uint32_t *ret_gid);
