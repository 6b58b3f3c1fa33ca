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
