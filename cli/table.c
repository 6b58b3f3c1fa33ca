/* Column-aligned tables: rows are kept as strings, widths computed at print time. */
#include "table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 16

struct table {
        unsigned ncols, nrows, cap;
        char **cells;           /* nrows * ncols, row 0 is the header */
};

struct table *table_new(const char *const *headers)
{
        struct table *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        while (headers[t->ncols] && t->ncols < MAX_COLS)
                t->ncols++;
        t->cap = 16;
        t->cells = calloc((size_t)t->cap * t->ncols, sizeof(char *));
        for (unsigned i = 0; i < t->ncols; i++)
                t->cells[i] = strdup(headers[i]);
        t->nrows = 1;
        return t;
}

void table_row(struct table *t, const char *fmt, ...)
{
        char *line = NULL, *save = NULL, *tok;
        va_list ap;
        unsigned c = 0;

        va_start(ap, fmt);
        if (vasprintf(&line, fmt, ap) < 0)
                line = NULL;
        va_end(ap);
        if (!line)
                return;
        if (t->nrows == t->cap) {
                char **cells = realloc(t->cells, (size_t)t->cap * 2 * t->ncols * sizeof(char *));
                if (!cells) {
                        free(line);
                        return;
                }
                t->cells = cells;
                t->cap *= 2;
        }
        /* strsep keeps empty fields */
        save = line;
        while ((tok = strsep(&save, "|")) && c < t->ncols)
                t->cells[t->nrows * t->ncols + c++] = strdup(tok);
        while (c < t->ncols)
                t->cells[t->nrows * t->ncols + c++] = strdup("");
        t->nrows++;
        free(line);
}

void table_print(struct table *t, FILE *f)
{
        size_t w[MAX_COLS] = { 0 };

        for (unsigned r = 0; r < t->nrows; r++)
                for (unsigned c = 0; c < t->ncols; c++) {
                        size_t n = strlen(t->cells[r * t->ncols + c]);
                        if (n > w[c])
                                w[c] = n;
                }
        for (unsigned r = 0; r < t->nrows; r++) {
                for (unsigned c = 0; c < t->ncols; c++) {
                        const char *cell = t->cells[r * t->ncols + c];
                        if (c + 1 == t->ncols)
                                fprintf(f, "%s", cell);
                        else
                                fprintf(f, "%-*s  ", (int)w[c], cell);
                }
                fputc('\n', f);
        }
}

void table_free(struct table *t)
{
        if (!t)
                return;
        for (unsigned i = 0; i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}
