/* Aligned text tables for elvisctl's default output. */
#pragma once
#include <stdio.h>

struct elvis_table;

/* headers is NULL-terminated (at most 16 columns). Returns NULL when out of memory. */
struct elvis_table *elvis_table_new(const char *const *headers);
/* Appends the next cell, printf-style; after the last column the next cell starts a new
 * row. Control characters in cells are shown as '?'. Accepts a NULL table. */
void elvis_table_add(struct elvis_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the header and the rows, columns two spaces apart, no trailing blanks. */
void elvis_table_print(const struct elvis_table *t, FILE *f);
void elvis_table_free(struct elvis_table *t);
