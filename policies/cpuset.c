/* CPU set operations and cpu-list parsing. */
#include <elvis/cpuset.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define NWORDS (ELVIS_MAX_CPUS / 64)

unsigned elvis_cpuset_count(const elvis_cpuset *s)
{
        unsigned n = 0;
        for (size_t i = 0; i < NWORDS; i++)
                n += (unsigned)__builtin_popcountll(s->bits[i]);
        return n;
}

bool elvis_cpuset_empty(const elvis_cpuset *s)
{
        for (size_t i = 0; i < NWORDS; i++)
                if (s->bits[i])
                        return false;
        return true;
}

bool elvis_cpuset_equal(const elvis_cpuset *a, const elvis_cpuset *b)
{
        for (size_t i = 0; i < NWORDS; i++)
                if (a->bits[i] != b->bits[i])
                        return false;
        return true;
}

bool elvis_cpuset_intersects(const elvis_cpuset *a, const elvis_cpuset *b)
{
        for (size_t i = 0; i < NWORDS; i++)
                if (a->bits[i] & b->bits[i])
                        return true;
        return false;
}

void elvis_cpuset_or(elvis_cpuset *dst, const elvis_cpuset *src)
{
        for (size_t i = 0; i < NWORDS; i++)
                dst->bits[i] |= src->bits[i];
}

void elvis_cpuset_andnot(elvis_cpuset *dst, const elvis_cpuset *src)
{
        for (size_t i = 0; i < NWORDS; i++)
                dst->bits[i] &= ~src->bits[i];
}

void elvis_cpuset_and(elvis_cpuset *dst, const elvis_cpuset *src)
{
        for (size_t i = 0; i < NWORDS; i++)
                dst->bits[i] &= src->bits[i];
}

int elvis_cpuset_next(const elvis_cpuset *s, int from)
{
        if (from < 0)
                from = 0;
        for (int w = from / 64; w < (int)NWORDS; w++) {
                uint64_t word = s->bits[w];
                if (w == from / 64)
                        word &= ~UINT64_C(0) << (from % 64);
                if (word)
                        return w * 64 + __builtin_ctzll(word);
        }
        return -1;
}

static int parse_cpu(const char **p, int *ret)
{
        const char *s = *p;
        long v = 0;

        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        while (isdigit((unsigned char)*s)) {
                v = v * 10 + (*s - '0');
                if (v >= ELVIS_MAX_CPUS)
                        return -ERANGE;
                s++;
        }
        *p = s;
        *ret = (int)v;
        return 0;
}

static void skip_space(const char **p)
{
        while (**p == ' ' || **p == '\t')
                (*p)++;
}

int elvis_cpuset_parse(const char *text, elvis_cpuset *ret)
{
        elvis_cpuset set;
        const char *p = text;
        int r;

        elvis_cpuset_zero(&set);
        skip_space(&p);
        if (*p == '\0') {
                *ret = set;
                return 0;
        }
        for (;;) {
                int lo, hi;

                skip_space(&p);
                r = parse_cpu(&p, &lo);
                if (r < 0)
                        return r;
                hi = lo;
                skip_space(&p);
                if (*p == '-') {
                        p++;
                        skip_space(&p);
                        r = parse_cpu(&p, &hi);
                        if (r < 0)
                                return r;
                        if (hi < lo)
                                return -EINVAL;
                }
                for (int c = lo; c <= hi; c++)
                        elvis_cpuset_set(&set, c);
                skip_space(&p);
                if (*p == '\0')
                        break;
                if (*p != ',')
                        return -EINVAL;
                p++;
        }
        *ret = set;
        return 0;
}

size_t elvis_cpuset_format(const elvis_cpuset *s, char *buf, size_t size)
{
        size_t len = 0;
        int cpu = elvis_cpuset_next(s, 0);

        if (size)
                buf[0] = '\0';
        while (cpu >= 0) {
                int end = cpu;
                char item[32];
                int n;

                while (elvis_cpuset_has(s, end + 1))
                        end++;
                if (end == cpu)
                        n = snprintf(item, sizeof(item), "%s%d", len ? "," : "", cpu);
                else
                        n = snprintf(item, sizeof(item), "%s%d-%d", len ? "," : "", cpu, end);
                if (len + (size_t)n < size)
                        snprintf(buf + len, size - len, "%s", item);
                len += (size_t)n;
                cpu = elvis_cpuset_next(s, end + 1);
        }
        return len;
}
