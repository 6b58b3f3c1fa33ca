/* elvisctl sidecore: list, add, show and remove sidecores. */
#include "args.h"
#include "cmd.h"
#include "table.h"

#include <string.h>

/* "web1/net0/0 web1/net0/1": the queues a sidecore serves; "-" for none */
static void sidecore_queues(const json_t *sc, char *buf, size_t size)
{
        size_t k, n = 0;
        json_t *q;

        snprintf(buf, size, "-");
        json_array_foreach(json_object_get(sc, "queues"), k, q) {
                int w = snprintf(buf + n, size - n, "%s%s/%s/%lld", k ? " " : "", elvis_json_str(q, "vm_name"),
                                 elvis_json_str(q, "device"), elvis_json_int(q, "queue"));
                if (w < 0 || (size_t)w >= size - n) {
                        snprintf(buf + n, size - n, " ...");
                        break;
                }
                n += (size_t)w;
        }
}

static const struct elvis_column sidecore_columns[] = {
        { "ID", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "NODE", ELVIS_COL_INT, .key = "numa_node" },
        { "ORIGIN", ELVIS_COL_BOOL, .key = "automatic", .yes = "automatic", .no = "operator" },
        { "QUEUES", ELVIS_COL_FN, .fn = sidecore_queues },
        { NULL },
};

int elvis_cmd_sidecore_list(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *j;
        int r;

        if ((r = elvis_ctl_show(x, argc, "/v1/sidecores", &j)) || !j)
                return r;
        elvis_table_render(sidecore_columns, json_object_get(j, "sidecores"), stdout);
        json_decref(j);
        return ELVIS_EXIT_OK;
}

static void print_sidecore(struct elvis_ctl *x, const json_t *sc)
{
        char qs[4096];

        if (x->out == ELVIS_OUT_JSON) {
                elvis_json_print(sc);
                return;
        }
        sidecore_queues(sc, qs, sizeof(qs));
        printf("sidecore %lld on CPU %lld\n  NUMA node: %s\n  origin:    %s\n  queues:    %s\n",
               elvis_json_int(sc, "id"), elvis_json_int(sc, "cpu"), ELVIS_INT_TEXT(json_object_get(sc, "numa_node")),
               json_is_true(json_object_get(sc, "automatic")) ? "automatic" : "operator", qs);
}

int elvis_cmd_sidecore_add(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *body = json_object(), *sc;
        unsigned long cpu;
        const char *val;
        int r = ELVIS_EXIT_OK;

        for (int i = 0; i < argc && r == ELVIS_EXIT_OK; i++) {
                int m = elvis_arg_option(argc, argv, &i, "--cpu", &val);
                if (m < 0)
                        r = elvis_ctl_usage_error(x, "--cpu needs a CPU number");
                else if (m == 0)
                        r = elvis_ctl_usage_error(x, "sidecore add: unexpected argument '%s'", argv[i]);
                else if (elvis_arg_uint(val, 1u << 20, &cpu) < 0)
                        r = elvis_ctl_usage_error(x, "--cpu must be a CPU number, got '%s'", val);
                else
                        json_object_set_new(body, "cpu", json_integer((json_int_t)cpu));
        }
        if (r == ELVIS_EXIT_OK)
                r = elvis_ctl_call(x, "POST", "/v1/sidecores", body, &sc);
        json_decref(body);
        if (r)
                return r;
        print_sidecore(x, sc);
        json_decref(sc);
        return ELVIS_EXIT_OK;
}

/* The path of the one sidecore that sidecore show and remove name. */
static int sidecore_path(struct elvis_ctl *x, int argc, char **argv, char *path, size_t size)
{
        unsigned long id;

        if (argc != 1 || elvis_arg_uint(argv[0], 0xffffffffu, &id) < 0 || id == 0)
                return elvis_ctl_usage_error(x, "sidecore %s needs one sidecore ID (a positive number)", x->cmd->sub);
        snprintf(path, size, "/v1/sidecores/%lu", id);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_sidecore_show(struct elvis_ctl *x, int argc, char **argv)
{
        char path[64];
        json_t *sc;
        int r;

        if ((r = sidecore_path(x, argc, argv, path, sizeof(path))) || (r = elvis_ctl_get(x, path, &sc)))
                return r;
        print_sidecore(x, sc);
        json_decref(sc);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_sidecore_remove(struct elvis_ctl *x, int argc, char **argv)
{
        char path[64];
        int r;

        if ((r = sidecore_path(x, argc, argv, path, sizeof(path))))
                return r;
        return elvis_ctl_remove(x, path, "sidecore", argv[0]);
}
