/* Column-aligned tables: cells are kept as strings, widths computed at print time; a column
 * spec fills them from an array of JSON objects. */
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

/* The value at key of o ("a.b" reaches into objects); o itself when key is NULL. */
static const json_t *lookup(const json_t *o, const char *key)
{
        const char *dot;

        for (; key && o; key = dot + 1) {
                dot = strchr(key, '.');
                if (!dot)
                        return json_object_get(o, key);
                o = json_object_getn(o, key, (size_t)(dot - key));
        }
        return o;
}

/* v as column c shows it: a constant, a string of v's, or buf. */
static const char *cell(const struct elvis_column *c, const json_t *v, char *buf, size_t size)
{
        if (!v || json_is_null(v))
                return "-";
        switch (c->kind) {
        case ELVIS_COL_STR:
                return json_is_string(v) ? json_string_value(v) : "-";
        case ELVIS_COL_CPUS:
                return json_is_string(v) && json_string_length(v) ? json_string_value(v) : "-";
        case ELVIS_COL_INT:
                if (!json_is_integer(v))
                        return "-";
                snprintf(buf, size, "%lld", (long long)json_integer_value(v));
                return buf;
        case ELVIS_COL_REAL:
                if (!json_is_number(v))
                        return "-";
                snprintf(buf, size, "%.*f", c->decimals, json_number_value(v));
                return buf;
        case ELVIS_COL_PERCENT:
                if (!json_is_number(v))
                        return "-";
                snprintf(buf, size, "%.*f%%", c->decimals, 100.0 * json_number_value(v));
                return buf;
        case ELVIS_COL_BOOL:
                if (!json_is_boolean(v))
                        return "-";
                if (json_is_true(v))
                        return c->yes ? c->yes : "yes";
                return c->no ? c->no : "no";
        case ELVIS_COL_FN:
                buf[0] = '\0';
                c->fn(v, buf, size);
                return buf;
        }
        return "-";
}

void elvis_table_render(const struct elvis_column *cols, const json_t *rows, FILE *f)
{
        const char *titles[MAX_COLS + 1];
        char buf[ELVIS_COLUMN_CELL_MAX];
        struct elvis_table *t;
        const json_t *row;
        size_t n = 0, i;

        while (n < MAX_COLS && cols[n].title) {
                titles[n] = cols[n].title;
                n++;
        }
        titles[n] = NULL;
        t = elvis_table_new(titles);
        json_array_foreach(rows, i, row) {
                size_t lines = 1;
                for (size_t c = 0; c < n; c++)
                        if (cols[c].each && json_array_size(lookup(row, cols[c].each)) > lines)
                                lines = json_array_size(lookup(row, cols[c].each));
                for (size_t l = 0; l < lines; l++)
                        for (size_t c = 0; c < n; c++) {
                                const json_t *v;
                                if (cols[c].each)
                                        v = lookup(json_array_get(lookup(row, cols[c].each), l), cols[c].key);
                                else if (l == 0)
                                        v = lookup(row, cols[c].key);
                                else {  /* the row's own columns only on its first line */
                                        elvis_table_add(t, "%s", "");
                                        continue;
                                }
                                elvis_table_add(t, "%s", cell(&cols[c], v, buf, sizeof(buf)));
                        }
        }
        elvis_table_print(t, f);
        elvis_table_free(t);
}
