/* elvisctl policy and plan: the global policy, and what the dynamic policies would change. */
#include "args.h"
#include "cmd.h"
#include "table.h"

#include <string.h>

static void print_policy(struct elvis_ctl *x, const json_t *p)
{
        const char *k;
        json_t *v;

        if (x->out == ELVIS_OUT_JSON) {
                elvis_json_print(p);
                return;
        }
        json_object_foreach((json_t *)p, k, v) {
                if (json_is_string(v))
                        printf("%-22s %s\n", k, json_string_value(v));
                else if (json_is_real(v))
                        printf("%-22s %g\n", k, json_real_value(v));
                else if (json_is_integer(v))
                        printf("%-22s %lld\n", k, (long long)json_integer_value(v));
                else if (json_is_boolean(v))
                        printf("%-22s %s\n", k, json_is_true(v) ? "true" : "false");
                else
                        printf("%-22s -\n", k);
        }
}

int elvis_cmd_policy_show(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *p;
        int r;

        if ((r = elvis_ctl_show(x, argc, "/v1/policy", &p)) || !p)
                return r;
        print_policy(x, p);
        json_decref(p);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_policy_set(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *body, *p;
        char err[512];
        int r = ELVIS_EXIT_OK;

        if (!argc)
                return elvis_ctl_usage_error(x, "policy set needs key=value pairs");
        body = json_object();
        for (int i = 0; i < argc && r == ELVIS_EXIT_OK; i++)
                if (elvis_arg_parse_pair(elvis_arg_policy_keys, "policy", argv[i], body, err, sizeof(err)) < 0)
                        r = elvis_ctl_usage_error(x, "%s", err);
        if (r == ELVIS_EXIT_OK && (r = elvis_ctl_call(x, "PUT", "/v1/policy", body, &p)) == ELVIS_EXIT_OK) {
                print_policy(x, p);
                json_decref(p);
        }
        json_decref(body);
        return r;
}

static void describe_action(const json_t *a, char *buf, size_t size)
{
        const char *kind = elvis_json_str(a, "action");
        long long to = elvis_json_int(a, "to_sidecore");

        if (!strcmp(kind, "add_sidecore"))
                snprintf(buf, size, "add a sidecore on CPU %lld", elvis_json_int(a, "cpu"));
        else if (!strcmp(kind, "remove_sidecore"))
                snprintf(buf, size, "remove sidecore %lld", elvis_json_int(a, "sidecore"));
        else if (!strcmp(kind, "move_queue") && to > 0)
                snprintf(buf, size, "move VM %lld %s queue %lld to sidecore %lld", elvis_json_int(a, "vm"),
                         elvis_json_str(a, "device"), elvis_json_int(a, "queue"), to);
        else if (!strcmp(kind, "move_queue"))   /* -1 - n: the n-th sidecore this plan adds */
                snprintf(buf, size, "move VM %lld %s queue %lld to new sidecore #%lld", elvis_json_int(a, "vm"),
                         elvis_json_str(a, "device"), elvis_json_int(a, "queue"), -to);
        else
                snprintf(buf, size, "%s", kind);
}

void elvis_plan_print_summary(const json_t *p, const char *indent)
{
        const json_t *b = json_object_get(p, "before"), *a = json_object_get(p, "after"), *act;
        char line[256];
        size_t i;

        printf("%s: %s; max load %.0f%% -> %.0f%%, sidecores %lld -> %lld\n", elvis_json_str(p, "policy"),
               elvis_json_str(p, "reason"), 100.0 * elvis_json_real(b, "max_load"),
               100.0 * elvis_json_real(a, "max_load"), elvis_json_int(b, "sidecores"), elvis_json_int(a, "sidecores"));
        json_array_foreach(json_object_get(p, "actions"), i, act) {
                describe_action(act, line, sizeof(line));
                printf("%s%s\n", indent, line);
        }
}

static const struct elvis_column plan_sidecore_columns[] = {
        { "SIDECORE", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "LOAD", ELVIS_COL_PERCENT, .key = "load", .decimals = 1 },
        { "WAIT(us)", ELVIS_COL_REAL, .key = "wait_us", .decimals = 1 },
        { NULL },
};

static const struct elvis_column plan_queue_columns[] = {
        { "VM", ELVIS_COL_INT, .key = "vm" },
        { "DEVICE", ELVIS_COL_STR, .key = "device" },
        { "Q", ELVIS_COL_INT, .key = "queue" },
        { "SIDECORE", ELVIS_COL_INT, .key = "sidecore" },
        { "PKTS/S", ELVIS_COL_REAL, .key = "pps" },
        { "KICKS/S", ELVIS_COL_REAL, .key = "kicks_ps" },
        { "COST", ELVIS_COL_REAL, .key = "cost", .decimals = 4 },
        { "WAIT(us)", ELVIS_COL_REAL, .key = "wait_us", .decimals = 1 },
        { NULL },
};

/* Queues without a sidecore get no I/O, and no plan moves them: said after the plan. */
static void print_unserved(const json_t *doc)
{
        const json_t *a = json_object_get(doc, "unserved"), *q;
        size_t i;

        if (!json_array_size(a))
                return;
        printf("unserved: %zu queue(s) have no sidecore and get no I/O:", json_array_size(a));
        json_array_foreach(a, i, q)
                printf(" %s/%s/%lld", elvis_json_str(q, "vm_name"), elvis_json_str(q, "device"), elvis_json_int(q, "queue"));
        printf("\n          %s\n", elvis_json_str(doc, "unserved_reason"));
}

int elvis_cmd_plan(struct elvis_ctl *x, int argc, char **argv)
{
        const json_t *snap, *plan;
        json_t *doc;
        int r;

        if ((r = elvis_ctl_show(x, argc, "/v1/plan", &doc)) || !doc)
                return r;
        snap = json_object_get(doc, "snapshot");
        plan = json_object_get(doc, "plan");
        if (!json_is_object(snap)) {
                printf("no plan: %s\n", elvis_json_str(doc, "note"));
                print_unserved(doc);
                json_decref(doc);
                return ELVIS_EXIT_OK;
        }
        printf("mode %s; the last sample, over %.2f s, with %lld free core(s):\n\n", elvis_json_str(doc, "mode"),
               elvis_json_real(snap, "interval_s"), elvis_json_int(snap, "free_cores"));
        elvis_table_render(plan_sidecore_columns, json_object_get(snap, "sidecores"), stdout);
        putchar('\n');
        elvis_table_render(plan_queue_columns, json_object_get(snap, "queues"), stdout);
        putchar('\n');
        if (json_is_object(plan)) {
                printf("plan: ");
                elvis_plan_print_summary(plan, "  ");
        } else if (json_array_size(json_object_get(doc, "unserved"))) {
                printf("plan: nothing the policies can change\n");
        } else {
                printf("plan: nothing to change\n");
        }
        print_unserved(doc);
        if (strcmp(elvis_json_str(doc, "mode"), "dynamic"))
                printf("(mode %s: the control loop applies nothing; elvisctl policy set mode=dynamic)\n",
                       elvis_json_str(doc, "mode"));
        json_decref(doc);
        return ELVIS_EXIT_OK;
}
