/* Aligned text tables for elvisctl's default output, and the column specs that fill them. */
#pragma once
#include <jansson.h>
#include <stddef.h>
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

/* How a column shows its value. Whatever the kind, a value that is absent, null or of
 * another JSON type shows as "-". */
enum elvis_column_kind {
        ELVIS_COL_STR,          /* a string as it is, "" included */
        ELVIS_COL_INT,          /* an integer */
        ELVIS_COL_CPUS,         /* a CPU list string; the empty list shows as "-" */
        ELVIS_COL_REAL,         /* a number with .decimals decimals */
        ELVIS_COL_PERCENT,      /* a ratio as a percentage: 0.25 shows as "25.0%" with 1 decimal */
        ELVIS_COL_BOOL,         /* .yes for true, .no for false ("yes" and "no" when NULL) */
        ELVIS_COL_FN,           /* what .fn writes */
};

/* Cells that .fn fills have this many bytes, the terminating NUL included. */
#define ELVIS_COLUMN_CELL_MAX 1024

struct elvis_column {
        const char *title;              /* NULL ends a spec */
        enum elvis_column_kind kind;
        const char *key;                /* "cpu", or "policy.weight" inside an object; NULL: the object itself */
        const char *each;               /* an array of the row whose elements hold key: see elvis_table_render */
        int decimals;                   /* ELVIS_COL_REAL, ELVIS_COL_PERCENT */
        const char *yes, *no;           /* ELVIS_COL_BOOL */
        void (*fn)(const json_t *v, char *buf, size_t size);   /* ELVIS_COL_FN; v is never NULL or null */
};

/* Prints the objects of the JSON array rows as a table with one column per entry of cols:
 * a line each, under the columns' titles. A column with .each shows the elements of the
 * row's array .each instead, one line each: the row then takes as many lines as its
 * longest such array (one when they are empty, the .each cells "-"), and the columns
 * without .each are filled on its first line only. */
void elvis_table_render(const struct elvis_column *cols, const json_t *rows, FILE *f);
