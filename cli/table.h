/* Aligned text tables for elvisctl's default output. */
#pragma once
#include <stdio.h>

struct table;

struct table *table_new(const char *const *headers);
/* Adds a row; the values are formatted with printf-style formats, one per column,
 * separated by '|' in fmt (e.g. "%u|%s|%.1f"). */
void table_row(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void table_print(struct table *t, FILE *f);
void table_free(struct table *t);
