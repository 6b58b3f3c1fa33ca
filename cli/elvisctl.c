/* elvisctl: command-line client of elvis-manager. Every command comes from one table,
 * from which the usage text and the shell completion are generated. */
#include "args.h"
#include "cmd.h"

#include <elvis/version.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const struct elvis_global_option elvis_global_options[] = {
        { "-o", "--output", "table|json", "table (default), or json: the API's documents" },
        { NULL, "--socket", "PATH", "default $ELVIS_SOCKET, else /run/elvis/elvis.sock" },
        { NULL, "--url", "URL", "the TCP listener instead, e.g. https://host:8443" },
        { NULL, "--token-file", "FILE", "bearer token for --url (default $ELVIS_TOKEN)" },
        { NULL, "--cacert", "FILE", "CA that signed the daemon's TLS certificate" },
        { "-h", "--help", NULL, "show this help (one command's: COMMAND --help)" },
        { "-V", "--version", NULL, "print the version" },
        { NULL, NULL, NULL, NULL },
};

const struct elvis_command elvis_commands[] = {
        { "status", NULL, elvis_cmd_status, "[--ready]",
          "daemon health, version, data-plane state and warnings; --ready: exit 0 only when ready" },
        { "topology", NULL, elvis_cmd_topology, "", "each CPU's core, NUMA node, siblings and role; NICs" },
        { "vm", "list", elvis_cmd_vm_list, "", "VMs with their CPUs, policy, devices and sidecores" },
        { "vm", "add", elvis_cmd_vm_add,
          "NAME [--vcpus N] [--domain D] [--weight W] [--exitless auto|always|never] [--vmm-uid UID] [--vmm-gid GID] "
          "[--device SPEC]... [--dry-run]",
          "add a VM; SPEC is key=value,... with keys id, type (net|blk), backend (net: tap|loopback|null; "
          "blk: file|null), tap, adopt, path, readonly, size, queues" },
        { "vm", "show", elvis_cmd_vm_show, "ID|NAME", "show a VM" },
        { "vm", "set", elvis_cmd_vm_set, "ID|NAME key=value...", "change a VM's name, weight or exitless" },
        { "vm", "remove", elvis_cmd_vm_remove, "ID|NAME", "remove a VM, releasing its CPUs and queues" },
        { "vm", "xml", elvis_cmd_vm_xml, "ID|NAME", "libvirt domain XML that connects the VM to ELVIS" },
        { "sidecore", "list", elvis_cmd_sidecore_list, "", "list sidecores and the queues they serve" },
        { "sidecore", "add", elvis_cmd_sidecore_add, "[--cpu N]", "add a sidecore (on a free core unless --cpu)" },
        { "sidecore", "show", elvis_cmd_sidecore_show, "ID", "show a sidecore" },
        { "sidecore", "remove", elvis_cmd_sidecore_remove, "ID", "remove a sidecore; its queues move to the others" },
        { "policy", "show", elvis_cmd_policy_show, "", "show the global policy" },
        { "policy", "set", elvis_cmd_policy_set, "key=value...", "change global policy parameters" },
        { "stats", NULL, elvis_cmd_stats, "", "data-plane counters per sidecore and queue" },
        { "top", NULL, elvis_cmd_top, "[--interval SEC] [--count N] [--once]",
          "refreshing load, packets/s, kicks/s, interrupts/s" },
        { "events", NULL, elvis_cmd_events, "[--since SEQ] [--follow]", "journal of control decisions and changes" },
        { "plan", NULL, elvis_cmd_plan, "", "what the dynamic policies would change now (dry run)" },
        { "metrics", NULL, elvis_cmd_metrics, "", "Prometheus metrics as served on /metrics" },
        { "__complete", NULL, elvis_cmd_complete, "[WORD...]", NULL },
        { NULL, NULL, NULL, NULL, NULL },
};

static char *read_token(const struct elvis_ctl *x, const char *path)
{
        char buf[4097];
        size_t n;
        FILE *f = fopen(path, "re");

        if (!f) {
                elvis_ctl_error(x, ELVIS_EXIT_API, "cannot read token file %s: %s", path, strerror(errno));
                return NULL;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n && strchr(" \t\r\n", buf[n - 1]))
                buf[--n] = '\0';
        return strdup(buf);
}

/* A token goes into an HTTP header: a line break in it would add headers of its own. */
static bool token_ok(const struct elvis_ctl *x, const char *token, const char *origin)
{
        for (const char *p = token; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                        elvis_ctl_error(x, ELVIS_EXIT_API, "the token in %s contains control characters", origin);
                        return false;
                }
        if (!*token) {
                elvis_ctl_error(x, ELVIS_EXIT_API, "the token in %s is empty", origin);
                return false;
        }
        return true;
}

/* Parses the global options before the command; returns the index of the command word,
 * or -exit status when the program is done (help, version, errors). */
static int parse_globals(struct elvis_ctl *x, int argc, char **argv, const char **ret_token_file)
{
        int i;

        for (i = 1; i < argc && argv[i][0] == '-'; i++) {
                const char *a = argv[i], *v = NULL;
                int m;

                if (!strcmp(a, "--"))
                        return i + 1;
                if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        elvis_usage_print(stdout);
                        return -ELVIS_EXIT_OK;
                }
                if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
                        printf("elvisctl %s\n", ELVIS_VERSION);
                        return -ELVIS_EXIT_OK;
                }
                if (!strncmp(a, "-o", 2) && a[2] && a[2] != '=') {
                        v = a + 2;      /* -ojson */
                        m = 1;
                } else if (!(m = elvis_arg_option(argc, argv, &i, "-o", &v))) {
                        m = elvis_arg_option(argc, argv, &i, "--output", &v);
                }
                if (m) {
                        if (m < 0 || (strcmp(v, "table") && strcmp(v, "json")))
                                return -elvis_ctl_usage_error(x, "-o takes table or json");
                        x->out = strcmp(v, "json") ? ELVIS_OUT_TABLE : ELVIS_OUT_JSON;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--socket", &v))) {
                        if (m < 0 || !*v)
                                return -elvis_ctl_usage_error(x, "--socket needs a PATH");
                        x->c.socket = v;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--url", &v))) {
                        if (m < 0 || (strncmp(v, "https://", 8) && strncmp(v, "http://", 7)))
                                return -elvis_ctl_usage_error(x, "--url needs an http:// or https:// URL");
                        x->c.url = v;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--token-file", &v))) {
                        if (m < 0)
                                return -elvis_ctl_usage_error(x, "--token-file needs a FILE");
                        *ret_token_file = v;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--cacert", &v))) {
                        if (m < 0)
                                return -elvis_ctl_usage_error(x, "--cacert needs a FILE");
                        x->c.cacert = v;
                } else {
                        return -elvis_ctl_usage_error(x, "unknown option '%s'", a);
                }
        }
        return i;
}

static bool is_help(const char *a)
{
        return !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* Finds the command argv[0] names and runs it; returns the exit status. */
static int dispatch(struct elvis_ctl *x, int argc, char **argv)
{
        const struct elvis_command *group = NULL, *c = NULL;
        int skip;

        for (const struct elvis_command *k = elvis_commands; k->name && !group; k++)
                if (!strcmp(k->name, argv[0]))
                        group = k;
        if (!group)
                return elvis_ctl_usage_error(x, "unknown command '%s'", argv[0]);
        if (group->sub && (argc < 2 || is_help(argv[1]))) {
                if (argc >= 2) {
                        elvis_usage_print_group(group->name, stdout);
                        return ELVIS_EXIT_OK;
                }
                elvis_ctl_error(x, ELVIS_EXIT_USAGE, "%s needs a subcommand", group->name);
                if (x->out == ELVIS_OUT_TABLE)
                        elvis_usage_print_group(group->name, stderr);
                return ELVIS_EXIT_USAGE;
        }
        for (c = group; c->name && !strcmp(c->name, group->name); c++)
                if (!c->sub || !strcmp(c->sub, argv[1]))
                        break;
        if (!c->name || strcmp(c->name, group->name)) {
                elvis_ctl_error(x, ELVIS_EXIT_USAGE, "unknown %s subcommand '%s'", group->name, argv[1]);
                if (x->out == ELVIS_OUT_TABLE)
                        elvis_usage_print_group(group->name, stderr);
                return ELVIS_EXIT_USAGE;
        }
        skip = c->sub ? 2 : 1;
        for (int i = skip; i < argc && c->help; i++) {
                if (is_help(argv[i])) {
                        elvis_usage_print_command(c, stdout);
                        return ELVIS_EXIT_OK;
                }
                /* "elvisctl vm list -o json": say where it goes rather than "unknown option" */
                for (const struct elvis_global_option *o = elvis_global_options; o->name; o++)
                        if (o->arg && (!strcmp(argv[i], o->name) || (o->shrt && !strcmp(argv[i], o->shrt)) ||
                                       (!strncmp(argv[i], o->name, strlen(o->name)) &&
                                        argv[i][strlen(o->name)] == '=')))
                                return elvis_ctl_usage_error(x, "%s is a global option and goes before the "
                                                             "command: elvisctl [OPTIONS] COMMAND [ARGS]", o->name);
        }
        x->cmd = c;
        return c->fn(x, argc - skip, argv + skip);
}

int main(int argc, char **argv)
{
        struct elvis_ctl x = { .c = { .socket = getenv("ELVIS_SOCKET"), .token = getenv("ELVIS_TOKEN") } };
        const char *token_file = NULL;
        char *token = NULL;
        int i, r;

        if (!x.c.socket || !*x.c.socket)
                x.c.socket = "/run/elvis/elvis.sock";
        if (x.c.token && !*x.c.token)
                x.c.token = NULL;
        i = parse_globals(&x, argc, argv, &token_file);
        if (i <= 0)
                return -i;
        if (i == argc) {
                if (x.out == ELVIS_OUT_JSON)
                        return elvis_ctl_usage_error(&x, "a command is needed");
                elvis_usage_print(stderr);
                return ELVIS_EXIT_USAGE;
        }
        if (token_file) {
                token = read_token(&x, token_file);
                if (!token || !token_ok(&x, token, token_file)) {
                        free(token);
                        return ELVIS_EXIT_API;
                }
                x.c.token = token;
        } else if (x.c.token && !token_ok(&x, x.c.token, "ELVIS_TOKEN")) {
                return ELVIS_EXIT_API;
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                free(token);
                return elvis_ctl_error(&x, ELVIS_EXIT_API, "cannot initialise libcurl");
        }
        r = dispatch(&x, argc - i, argv + i);
        elvis_client_fini(&x.c);
        curl_global_cleanup();
        free(token);
        return r;
}
