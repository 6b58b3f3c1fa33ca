/* The policy's tunables, one table: name, kind, bounds, default and meaning of each.
 * The model's defaults and validation, the API codec and `elvisctl policy` come from it;
 * the OpenAPI schema, the man page and elvis.ko's defaults (kernel/uapi/elvis.h) are
 * checked against it (test_tunables). Enumerations (mode, exitless) and the checks
 * between two tunables stay in model.c. */
#pragma once
#include <stddef.h>

enum elvis_tunable_kind {
        ELVIS_TUNABLE_UINT,     /* unsigned in struct elvis_policy */
        ELVIS_TUNABLE_DOUBLE,   /* double; min/max exclusive where the flags say */
};

struct elvis_tunable {
        const char *name;       /* JSON key, `elvisctl policy set` key */
        enum elvis_tunable_kind kind;
        size_t offset;          /* in struct elvis_policy */
        double min, max, def;
        unsigned char min_open, max_open;       /* DOUBLE: the bound itself is excluded */
        const char *unit;
        const char *doc;
};

extern const struct elvis_tunable elvis_tunables[];
extern const size_t elvis_ntunables;

/* NULL when there is no tunable of that name. */
const struct elvis_tunable *elvis_tunable_find(const char *name);
