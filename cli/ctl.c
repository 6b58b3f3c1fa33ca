/* What every elvisctl command shares: requests with one-line errors, usage errors, answers
 * made safe for a terminal, and the fields of JSON answers. */
#include "cmd.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int elvis_ctl_usage_error(const struct elvis_ctl *x, const char *fmt, ...)
{
        va_list ap;

        fputs("elvisctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (x && x->cmd)
                elvis_usage_print_synopsis(x->cmd, stderr);
        else
                fputs("Try 'elvisctl --help'.\n", stderr);
        return ELVIS_EXIT_USAGE;
}

static bool has_control(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static char *scrubbed(const char *s)
{
        char *copy = strdup(s);

        for (char *p = copy; p && *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return copy;
}

/* Replaces control characters in every string and key of doc with '?'. Text output prints
 * names that libvirt or a hostile client chose; an escape sequence in one must not drive
 * the terminal. (JSON output needs nothing: the encoder escapes them.) */
static void scrub(json_t *doc)
{
        const char *k;
        json_t *v;
        void *tmp;
        size_t i;

        if (json_is_string(doc) && has_control(json_string_value(doc))) {
                char *clean = scrubbed(json_string_value(doc));
                if (clean)
                        json_string_set(doc, clean);
                free(clean);
        } else if (json_is_array(doc)) {
                json_array_foreach(doc, i, v)
                        scrub(v);
        } else if (json_is_object(doc)) {
                json_object_foreach_safe(doc, tmp, k, v) {
                        scrub(v);
                        if (has_control(k)) {
                                char *clean = scrubbed(k);
                                if (clean)
                                        json_object_set(doc, clean, v); /* clean keys are never visited twice */
                                json_object_del(doc, k);
                                free(clean);
                        }
                }
        }
}

/* One request; a failure is printed as one line and becomes exit status 1. */
int elvis_ctl_call(struct elvis_ctl *x, const char *method, const char *path, const json_t *body, json_t **ret)
{
        int r = elvis_client_call(&x->c, method, path, body, ret);

        if (r < 0) {
                fprintf(stderr, "elvisctl: %s\n", x->c.error);
                return ELVIS_EXIT_API;
        }
        if (ret && x->out == ELVIS_OUT_TABLE)
                scrub(*ret);
        return ELVIS_EXIT_OK;
}

int elvis_ctl_get(struct elvis_ctl *x, const char *path, json_t **ret)
{
        return elvis_ctl_call(x, "GET", path, NULL, ret);
}

int elvis_ctl_show(struct elvis_ctl *x, int argc, const char *path, json_t **ret)
{
        const struct elvis_command *c = x->cmd;
        json_t *doc;
        int r;

        if (argc)
                return elvis_ctl_usage_error(x, "%s%s%s takes no arguments", c->name, c->sub ? " " : "",
                                             c->sub ? c->sub : "");
        if ((r = elvis_ctl_get(x, path, &doc)))
                return r;
        if (x->out == ELVIS_OUT_JSON) {
                elvis_json_print(doc);
                json_decref(doc);
                doc = NULL;
        }
        *ret = doc;
        return ELVIS_EXIT_OK;
}

int elvis_ctl_remove(struct elvis_ctl *x, const char *path, const char *what, const char *name)
{
        json_t *res;
        int r;

        if ((r = elvis_ctl_call(x, "DELETE", path, NULL, &res)))
                return r;
        if (x->out == ELVIS_OUT_JSON)
                elvis_json_print(res);
        else
                printf("%s %s removed\n", what, name);
        json_decref(res);
        return ELVIS_EXIT_OK;
}

void elvis_json_print(const json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(12));

        if (s)
                puts(s);
        free(s);
}

const char *elvis_json_str(const json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));

        return s ? s : "-";
}

long long elvis_json_int(const json_t *o, const char *k)
{
        return (long long)json_integer_value(json_object_get(o, k));
}

double elvis_json_real(const json_t *o, const char *k)
{
        return json_number_value(json_object_get(o, k));
}

const char *elvis_json_int_text(const json_t *v, char *buf, size_t size)
{
        if (!json_is_integer(v))
                return "-";
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return buf;
}
