/* Unit test: every route the server serves is documented in api/openapi.yaml and every
 * documented operation is served. */
#include <criterion/criterion.h>

#include "../../api/api.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

struct op {
        char path[128];
        char method[16];
};

/* Reads "  /path:" lines and the "    get:" style method keys below them. */
static size_t documented(struct op *ops, size_t max)
{
        FILE *f = fopen(ELVIS_SOURCE_DIR "/api/openapi.yaml", "r");
        char line[512], path[128] = "";
        bool in_paths = false;
        size_t n = 0;

        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "paths:", 6) == 0) {
                        in_paths = true;
                        continue;
                }
                if (in_paths && isalpha((unsigned char)line[0]))
                        break;
                if (!in_paths)
                        continue;
                if (strncmp(line, "  /", 3) == 0) {
                        sscanf(line + 2, "%127[^:]", path);
                        continue;
                }
                static const char *const methods[] = { "get", "post", "put", "patch", "delete" };
                for (size_t i = 0; i < 5; i++) {
                        char key[16];
                        snprintf(key, sizeof(key), "    %s:", methods[i]);
                        if (strncmp(line, key, strlen(key)) == 0 && n < max) {
                                snprintf(ops[n].path, sizeof(ops[n].path), "%s", path);
                                for (size_t k = 0; k <= strlen(methods[i]); k++)
                                        ops[n].method[k] = (char)toupper((unsigned char)methods[i][k]);
                                n++;
                        }
                }
        }
        fclose(f);
        return n;
}

Test(openapi, routes_match_documentation)
{
        struct op ops[64];
        size_t nops = documented(ops, 64), nroutes;
        const struct elvis_api_route_info *routes = elvis_api_routes(&nroutes);

        cr_assert_geq(nroutes, 18);
        cr_assert_eq(nops, nroutes, "%zu documented operations, %zu routes", nops, nroutes);
        for (size_t i = 0; i < nroutes; i++) {
                bool found = false;
                for (size_t k = 0; k < nops && !found; k++)
                        found = !strcmp(ops[k].path, routes[i].path) && !strcmp(ops[k].method, routes[i].method);
                cr_assert(found, "route %s %s is not in api/openapi.yaml", routes[i].method, routes[i].path);
        }
        for (size_t k = 0; k < nops; k++) {
                bool found = false;
                for (size_t i = 0; i < nroutes && !found; i++)
                        found = !strcmp(ops[k].path, routes[i].path) && !strcmp(ops[k].method, routes[i].method);
                cr_assert(found, "documented %s %s is not served", ops[k].method, ops[k].path);
        }
}
