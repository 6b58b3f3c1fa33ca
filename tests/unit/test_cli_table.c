/* Unit tests: elvisctl's aligned text tables. */
#include <criterion/criterion.h>

#include "../../cli/table.h"

#include <stdlib.h>
#include <string.h>

static char *render(const struct elvis_table *t)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        cr_assert_not_null(f);
        elvis_table_print(t, f);
        fclose(f);
        return buf;
}

Test(cli_table, columns_align_under_the_header)
{
        static const char *const h[] = { "ID", "NAME", "CPUS", NULL };
        struct elvis_table *t = elvis_table_new(h);
        char *out;

        elvis_table_add(t, "%d", 1);
        elvis_table_add(t, "%s", "web1");
        elvis_table_add(t, "%s", "2-3");
        elvis_table_add(t, "%d", 12);
        elvis_table_add(t, "%s", "a-much-longer-name");
        elvis_table_add(t, "%s", "-");
        out = render(t);
        cr_assert_str_eq(out, "ID  NAME                CPUS\n"
                              "1   web1                2-3\n"
                              "12  a-much-longer-name  -\n");
        free(out);
        elvis_table_free(t);
}

Test(cli_table, empty_trailing_cells_leave_no_blanks)
{
        static const char *const h[] = { "A", "B", "C", NULL };
        struct elvis_table *t = elvis_table_new(h);
        char *out;

        elvis_table_add(t, "x");
        elvis_table_add(t, "%s", "");
        elvis_table_add(t, "%s", "");
        elvis_table_add(t, "%s", "");
        elvis_table_add(t, "yyyy");
        elvis_table_add(t, "z");
        out = render(t);
        cr_assert_str_eq(out, "A  B     C\n"
                              "x\n"
                              "   yyyy  z\n");
        free(out);
        elvis_table_free(t);
}

Test(cli_table, header_only_and_control_characters)
{
        static const char *const h[] = { "VM", "DEVICE", NULL };
        struct elvis_table *t = elvis_table_new(h);
        char *out = render(t);

        cr_assert_str_eq(out, "VM  DEVICE\n");
        free(out);
        elvis_table_add(t, "%s", "a\033[2Jb");
        elvis_table_add(t, "%s", "tab\there");
        out = render(t);
        cr_assert_str_eq(out, "VM      DEVICE\na?[2Jb  tab?here\n");
        free(out);
        elvis_table_free(t);
        elvis_table_free(NULL);
        elvis_table_add(NULL, "ignored");
}

Test(cli_table, many_rows)
{
        static const char *const h[] = { "N", NULL };
        struct elvis_table *t = elvis_table_new(h);
        char *out;
        size_t lines = 0;

        for (int i = 0; i < 1000; i++)
                elvis_table_add(t, "%d", i);
        out = render(t);
        for (char *p = out; *p; p++)
                lines += *p == '\n';
        cr_assert_eq(lines, 1001);
        cr_assert(strstr(out, "\n999\n"));
        free(out);
        elvis_table_free(t);
}

/* ---- column specs over JSON objects ---- */

static json_t *doc(const char *text)
{
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        cr_assert_not_null(j, "%s", e.text);
        return j;
}

static char *render_spec(const struct elvis_column *cols, const char *rows)
{
        json_t *j = doc(rows);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        cr_assert_not_null(f);
        elvis_table_render(cols, j, f);
        fclose(f);
        json_decref(j);
        return buf;
}

static const char *text(const json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));

        return s ? s : "?";
}

static void pair(const json_t *v, char *buf, size_t size)
{
        snprintf(buf, size, "%s:%s", text(v, "a"), text(v, "b"));
}

Test(cli_table, every_kind_and_dash_for_what_is_missing)
{
        static const struct elvis_column cols[] = {
                { "S", ELVIS_COL_STR, .key = "s" },
                { "I", ELVIS_COL_INT, .key = "i" },
                { "CPUS", ELVIS_COL_CPUS, .key = "cpus" },
                { "R", ELVIS_COL_REAL, .key = "r", .decimals = 2 },
                { "P", ELVIS_COL_PERCENT, .key = "p", .decimals = 1 },
                { "B", ELVIS_COL_BOOL, .key = "b" },
                { "STATE", ELVIS_COL_BOOL, .key = "b", .yes = "sleeping", .no = "polling" },
                { "AB", ELVIS_COL_FN, .key = "o", .fn = pair },
                { NULL },
        };
        char *out = render_spec(cols, "["
                                "{\"s\":\"x\",\"i\":-7,\"cpus\":\"2-3\",\"r\":1.25,\"p\":0.25,\"b\":true,"
                                " \"o\":{\"a\":\"8086\",\"b\":\"1572\"}},"
                                "{\"s\":\"\",\"i\":0,\"cpus\":\"\",\"r\":3,\"p\":1,\"b\":false,\"o\":{\"a\":\"x\"}},"
                                "{\"s\":null,\"i\":null,\"cpus\":null,\"r\":null,\"p\":null,\"b\":null,\"o\":null},"
                                "{\"s\":1,\"i\":1.5,\"cpus\":[],\"r\":\"1\",\"p\":true,\"b\":1,\"o\":\"str\"},"
                                "{}]");

        /* an empty string stays empty; only what is not there at all becomes "-" */
        cr_assert_str_eq(out, "S  I   CPUS  R     P       B    STATE     AB\n"
                              "x  -7  2-3   1.25  25.0%   yes  sleeping  8086:1572\n"
                              "   0   -     3.00  100.0%  no   polling   x:?\n"
                              "-  -   -     -     -       -    -         -\n"
                              "-  -   -     -     -       -    -         ?:?\n"
                              "-  -   -     -     -       -    -         -\n",
                          "%s", out);
        free(out);
}

/* vm list: a VM's columns, then one line per device */
static void device(const json_t *v, char *buf, size_t size)
{
        snprintf(buf, size, "%s:%s", text(v, "id"), text(v, "backend"));
}

Test(cli_table, each_gives_a_line_per_element_and_nested_keys)
{
        static const struct elvis_column cols[] = {
                { "ID", ELVIS_COL_INT, .key = "id" },
                { "WEIGHT", ELVIS_COL_INT, .key = "policy.weight" },
                { "MODE", ELVIS_COL_STR, .key = "policy.x.mode" },
                { "DEVICE", ELVIS_COL_FN, .each = "devices", .fn = device },
                { "QUEUES", ELVIS_COL_INT, .key = "queues", .each = "devices" },
                { "TAP", ELVIS_COL_STR, .key = "tap", .each = "taps" },
                { NULL },
        };
        char *out = render_spec(cols, "["
                                "{\"id\":1,\"policy\":{\"weight\":300,\"x\":{\"mode\":\"m\"}},\"devices\":["
                                " {\"id\":\"net0\",\"backend\":\"loopback\",\"queues\":2},"
                                " {\"id\":\"mgmt\",\"backend\":\"tap\",\"queues\":1}],"
                                " \"taps\":[{\"tap\":\"a\"},{\"tap\":\"b\"},{\"tap\":\"c\"}]},"
                                "{\"id\":2,\"policy\":{\"weight\":5},\"devices\":[]},"
                                "{\"id\":3,\"policy\":7,\"devices\":[{\"id\":\"d\",\"backend\":\"null\"}],\"taps\":{}}"
                                "]");

        cr_assert_str_eq(out, "ID  WEIGHT  MODE  DEVICE         QUEUES  TAP\n"
                              "1   300     m     net0:loopback  2       a\n"
                              "                  mgmt:tap       1       b\n"
                              "                  -              -       c\n"
                              "2   5       -     -              -       -\n"
                              "3   -       -     d:null         -       -\n",
                          "%s", out);
        free(out);
}

Test(cli_table, no_rows_gives_the_header_and_cells_are_scrubbed)
{
        static const struct elvis_column cols[] = {
                { "VM", ELVIS_COL_STR, .key = "name" },
                { "STATE", ELVIS_COL_STR, .key = "state" },
                { NULL },
        };
        char *out = render_spec(cols, "[]");

        cr_assert_str_eq(out, "VM  STATE\n");
        free(out);
        out = render_spec(cols, "[{\"name\":\"a\\u001b[2Jb\",\"state\":\"\"},{\"name\":\"c\",\"state\":\"ready\"}]");
        cr_assert_str_eq(out, "VM      STATE\na?[2Jb\nc       ready\n", "%s", out);
        free(out);
        out = render_spec(cols, "{\"not\":\"an array\"}");
        cr_assert_str_eq(out, "VM  STATE\n");
        free(out);
}
