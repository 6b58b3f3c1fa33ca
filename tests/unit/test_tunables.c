/* Unit test: the policy tunables table (include/elvis/tunables.h) is the one source of
 * defaults and bounds; everything that repeats them agrees with it: the model, the
 * OpenAPI schema, elvisctl's keys and man page, and elvis.ko's ABI header. */
#include <criterion/criterion.h>

#include <elvis/model.h>
#include <elvis/tunables.h>
#include <uapi/elvis.h>

#include "../../cli/args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        char *buf;
        long n;

        cr_assert_not_null(f, "%s", path);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf = calloc(1, (size_t)n + 1);
        cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        return buf;
}

Test(tunables, defaults_and_bounds_come_from_the_table)
{
        struct elvis_policy p;
        char err[256];

        elvis_policy_defaults(&p);
        cr_assert_eq(elvis_policy_validate(&p, err, sizeof(err)), 0, "%s", err);
        for (size_t i = 0; i < elvis_ntunables; i++) {
                const struct elvis_tunable *t = &elvis_tunables[i];
                struct elvis_policy q = p;
                char *f = (char *)&q + t->offset;

                if (t->kind != ELVIS_TUNABLE_UINT)
                        continue;
                cr_assert_eq(*(unsigned *)((char *)&p + t->offset), (unsigned)t->def, "%s default", t->name);
                if (t->max < 4294967295.0) {
                        *(unsigned *)f = (unsigned)t->max + 1;
                        if (strcmp(t->name, "min_sidecores") == 0)
                                q.max_sidecores = ELVIS_MAX_SIDECORES;
                        cr_assert_lt(elvis_policy_validate(&q, err, sizeof(err)), 0, "%s above its maximum", t->name);
                        cr_assert(strstr(err, t->name), "%s", err);
                }
                if (t->min > 0) {
                        *(unsigned *)f = (unsigned)t->min - 1;
                        cr_assert_lt(elvis_policy_validate(&q, err, sizeof(err)), 0, "%s below its minimum", t->name);
                }
        }
}

Test(tunables, the_kernel_abi_has_the_same_defaults_and_ranges)
{
        const struct elvis_tunable *bp = elvis_tunable_find("budget_packets"),
                                   *bb = elvis_tunable_find("budget_bytes"),
                                   *sr = elvis_tunable_find("poll_start_rate"),
                                   *si = elvis_tunable_find("poll_stop_idle_ms");

        cr_assert(bp && bb && sr && si);
        cr_assert_eq(bp->def, ELVIS_BUDGET_PACKETS_DEFAULT);
        cr_assert_eq(bp->min, ELVIS_BUDGET_PACKETS_MIN);
        cr_assert_eq(bp->max, ELVIS_BUDGET_PACKETS_MAX);
        cr_assert_eq(bb->def, ELVIS_BUDGET_BYTES_DEFAULT);
        cr_assert_eq(bb->min, ELVIS_BUDGET_BYTES_MIN);
        cr_assert_eq(bb->max, ELVIS_BUDGET_BYTES_MAX);
        cr_assert_eq(sr->def, ELVIS_POLL_START_RATE_DEFAULT);
        cr_assert_eq(si->def, ELVIS_POLL_STOP_IDLE_MS_DEFAULT);
        cr_assert_null(elvis_tunable_find("no_such_knob"));
}

/* "        name: { type: integer, minimum: A, maximum: B, default: C ..." in the Policy schema */
Test(tunables, the_openapi_schema_agrees)
{
        char *y = slurp(ELVIS_SOURCE_DIR "/api/openapi.yaml"), *policy = strstr(y, "\n    Policy:\n");

        cr_assert_not_null(policy, "no Policy schema");
        for (size_t i = 0; i < elvis_ntunables; i++) {
                const struct elvis_tunable *t = &elvis_tunables[i];
                char key[64], *line, *end, *v;
                double got;

                snprintf(key, sizeof(key), "\n        %s: {", t->name);
                line = strstr(policy, key);
                cr_assert_not_null(line, "%s is not in the Policy schema", t->name);
                end = strchr(line + 1, '\n');
                cr_assert_not_null(end);
                *end = 0;
                cr_assert(strstr(line, t->kind == ELVIS_TUNABLE_UINT ? "type: integer" : "type: number"), "%s", line);
                v = strstr(line, "minimum: ");
                cr_assert_not_null(v, "%s: no minimum", t->name);
                got = strtod(v + 9, NULL);
                cr_assert_eq(got, t->min, "%s minimum %g, table %g", t->name, got, t->min);
                v = strstr(line, "maximum: ");
                cr_assert_not_null(v, "%s: no maximum", t->name);
                got = strtod(v + 9, NULL);
                cr_assert_eq(got, t->max, "%s maximum %g, table %g", t->name, got, t->max);
                v = strstr(line, "default: ");
                cr_assert_not_null(v, "%s: no default", t->name);
                got = strtod(v + 9, NULL);
                cr_assert_eq(got, t->def, "%s default %g, table %g", t->name, got, t->def);
                cr_assert_eq(strstr(line, "exclusiveMinimum: true") != NULL, t->min_open != 0, "%s", line);
                cr_assert_eq(strstr(line, "exclusiveMaximum: true") != NULL, t->max_open != 0, "%s", line);
                *end = '\n';
        }
        free(y);
}

Test(tunables, elvisctl_knows_every_tunable_and_its_man_page_names_them)
{
        char *man = slurp(ELVIS_SOURCE_DIR "/packaging/man/elvisctl.1");

        for (size_t i = 0; i < elvis_ntunables; i++) {
                const struct elvis_tunable *t = &elvis_tunables[i];
                bool found = false;
                char word[80];

                for (const struct elvis_arg_key *k = elvis_arg_policy_keys; k->name && !found; k++)
                        found = strcmp(k->name, t->name) == 0 &&
                                k->type == (t->kind == ELVIS_TUNABLE_UINT ? ELVIS_ARG_INT : ELVIS_ARG_NUMBER);
                cr_assert(found, "elvisctl policy set does not take %s as a %s", t->name,
                          t->kind == ELVIS_TUNABLE_UINT ? "integer" : "number");
                snprintf(word, sizeof(word), " %s", t->name);
                cr_assert(strstr(man, word), "elvisctl(1) does not name %s", t->name);
        }
        for (const struct elvis_arg_key *k = elvis_arg_policy_keys; k->name; k++)
                cr_assert(elvis_tunable_find(k->name) || !strcmp(k->name, "mode") || !strcmp(k->name, "exitless"),
                          "elvisctl takes %s, which is no tunable", k->name);
        free(man);
}
