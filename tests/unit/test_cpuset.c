/* Unit tests: CPU sets and cpu-list parsing/formatting. */
#include <criterion/criterion.h>
#include <elvis/cpuset.h>

#include <errno.h>

static void roundtrip(const char *in, const char *expect)
{
        elvis_cpuset s;
        char buf[256];

        cr_assert_eq(elvis_cpuset_parse(in, &s), 0, "parse '%s'", in);
        elvis_cpuset_format(&s, buf, sizeof(buf));
        cr_assert_str_eq(buf, expect, "'%s' formatted as '%s'", in, buf);
}

Test(cpuset, parse_and_format)
{
        roundtrip("", "");
        roundtrip("0", "0");
        roundtrip("0-3", "0-3");
        roundtrip(" 8, 0-2 ,3 ", "0-3,8");
        roundtrip("5,4,6", "4-6");
        roundtrip("1023", "1023");
        roundtrip("0-1023", "0-1023");
}

Test(cpuset, rejects_bad_lists)
{
        elvis_cpuset s;

        cr_assert_eq(elvis_cpuset_parse("1-", &s), -EINVAL);
        cr_assert_eq(elvis_cpuset_parse("3-1", &s), -EINVAL);
        cr_assert_eq(elvis_cpuset_parse("a", &s), -EINVAL);
        cr_assert_eq(elvis_cpuset_parse("1,,2", &s), -EINVAL);
        cr_assert_eq(elvis_cpuset_parse("-1", &s), -EINVAL);
        cr_assert_eq(elvis_cpuset_parse("1024", &s), -ERANGE);
        cr_assert_eq(elvis_cpuset_parse("99999999999999999999", &s), -ERANGE);
}

Test(cpuset, set_operations)
{
        elvis_cpuset a, b;

        elvis_cpuset_parse("0-7", &a);
        elvis_cpuset_parse("4-11", &b);
        cr_assert(elvis_cpuset_intersects(&a, &b));
        elvis_cpuset_andnot(&a, &b);
        cr_assert_eq(elvis_cpuset_count(&a), 4);
        cr_assert_eq(elvis_cpuset_next(&a, 0), 0);
        cr_assert_eq(elvis_cpuset_next(&a, 4), -1);
        elvis_cpuset_or(&a, &b);
        cr_assert_eq(elvis_cpuset_count(&a), 12);
        elvis_cpuset_and(&a, &b);
        cr_assert(elvis_cpuset_equal(&a, &b));
        elvis_cpuset_set(&a, 2000);     /* out of range: ignored */
        cr_assert_not(elvis_cpuset_has(&a, 2000));
}

Test(cpuset, format_reports_needed_length)
{
        elvis_cpuset s;
        char small[4];

        elvis_cpuset_parse("0,2,4,6,8", &s);
        cr_assert_eq(elvis_cpuset_format(&s, small, sizeof(small)), strlen("0,2,4,6,8"));
        cr_assert_lt(strlen(small), sizeof(small));
}
