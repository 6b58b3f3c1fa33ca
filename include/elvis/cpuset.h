/* Fixed-size CPU sets and the Linux cpu-list syntax ("0-3,8,10-11"). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ELVIS_MAX_CPUS 1024

typedef struct elvis_cpuset {
        uint64_t bits[ELVIS_MAX_CPUS / 64];
} elvis_cpuset;

static inline void elvis_cpuset_zero(elvis_cpuset *s) { *s = (elvis_cpuset){ { 0 } }; }

static inline bool elvis_cpuset_valid_cpu(int cpu) { return cpu >= 0 && cpu < ELVIS_MAX_CPUS; }

static inline void elvis_cpuset_set(elvis_cpuset *s, int cpu)
{
        if (elvis_cpuset_valid_cpu(cpu))
                s->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}

static inline void elvis_cpuset_clear(elvis_cpuset *s, int cpu)
{
        if (elvis_cpuset_valid_cpu(cpu))
                s->bits[cpu / 64] &= ~(UINT64_C(1) << (cpu % 64));
}

static inline bool elvis_cpuset_has(const elvis_cpuset *s, int cpu)
{
        return elvis_cpuset_valid_cpu(cpu) && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

unsigned elvis_cpuset_count(const elvis_cpuset *s);
bool elvis_cpuset_empty(const elvis_cpuset *s);
bool elvis_cpuset_equal(const elvis_cpuset *a, const elvis_cpuset *b);
bool elvis_cpuset_intersects(const elvis_cpuset *a, const elvis_cpuset *b);
void elvis_cpuset_or(elvis_cpuset *dst, const elvis_cpuset *src);
void elvis_cpuset_andnot(elvis_cpuset *dst, const elvis_cpuset *src);
void elvis_cpuset_and(elvis_cpuset *dst, const elvis_cpuset *src);
/* Lowest CPU >= from in s, or -1. */
int elvis_cpuset_next(const elvis_cpuset *s, int from);
#define ELVIS_CPUSET_FOREACH(cpu, set) \
        for (int cpu = elvis_cpuset_next((set), 0); cpu >= 0; cpu = elvis_cpuset_next((set), cpu + 1))

/* Parses "0-3,8" (whitespace around items allowed, empty string = empty set).
 * Returns 0 or -EINVAL (syntax, reversed range) / -ERANGE (cpu >= ELVIS_MAX_CPUS). */
int elvis_cpuset_parse(const char *text, elvis_cpuset *ret);
/* Formats as a compact list into buf; returns the length it needed (like snprintf). */
size_t elvis_cpuset_format(const elvis_cpuset *s, char *buf, size_t size);
