/* Column-aligned tables: cells are kept as strings, widths computed at print time. */
#include "table.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 16

struct elvis_table {
        size_t ncols, ncells, cap;
        char **cells;           /* row-major, the first ncols are the header */
        bool failed;            /* a cell was lost: the columns no longer line up */
};

static bool push(struct elvis_table *t, char *cell)
{
        if (!cell) {
                t->failed = true;
                return false;
        }
        if (t->ncells == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                char **cells = realloc(t->cells, cap * sizeof(*cells));
                if (!cells) {
                        free(cell);
                        t->failed = true;
                        return false;
                }
                t->cells = cells;
                t->cap = cap;
        }
        for (char *p = cell; *p; p++)   /* a name must not move the cursor or the columns */
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        t->cells[t->ncells++] = cell;
        return true;
}

struct elvis_table *elvis_table_new(const char *const *headers)
{
        struct elvis_table *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        while (headers[t->ncols] && t->ncols < MAX_COLS)
                t->ncols++;
        for (size_t i = 0; i < t->ncols; i++)
                if (!push(t, strdup(headers[i]))) {
                        elvis_table_free(t);
                        return NULL;
                }
        return t;
}

void elvis_table_add(struct elvis_table *t, const char *fmt, ...)
{
        char *cell = NULL;
        va_list ap;

        if (!t)
                return;
        va_start(ap, fmt);
        if (vasprintf(&cell, fmt, ap) < 0)
                cell = NULL;
        va_end(ap);
        push(t, cell);
}

/* True when the cells after i up to the end of its row are all empty. */
static bool rest_empty(const struct elvis_table *t, size_t i)
{
        for (size_t j = i + 1; j < t->ncells && j % t->ncols; j++)
                if (t->cells[j][0])
                        return false;
        return true;
}

void elvis_table_print(const struct elvis_table *t, FILE *f)
{
        size_t w[MAX_COLS] = { 0 };

        if (!t || !t->ncols)
                return;
        if (t->failed) {
                fputs("(out of memory)\n", f);
                return;
        }
        for (size_t i = 0; i < t->ncells; i++) {
                size_t n = strlen(t->cells[i]);
                if (n > w[i % t->ncols])
                        w[i % t->ncols] = n;
        }
        for (size_t i = 0; i < t->ncells; i++) {
                size_t c = i % t->ncols;
                if (c && !t->cells[i][0] && rest_empty(t, i - 1))
                        continue;
                if (rest_empty(t, i))
                        fprintf(f, "%s\n", t->cells[i]);
                else
                        fprintf(f, "%-*s  ", (int)w[c], t->cells[i]);
        }
}

void elvis_table_free(struct elvis_table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->ncells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}
