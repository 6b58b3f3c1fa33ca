/* What every elvisctl command shares: requests with one-line errors (a JSON problem
 * line with -o json), usage errors, answers made safe for a terminal, and the fields of
 * JSON answers. */
#include "cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* With -o json an error is one line on stderr: a problem document (RFC 9457's title,
 * status, detail; type when the daemon gave one) with the exit status as "exit", so
 * that stdout holds answers only and a script can parse either. */
static int emit_problem(json_t *p, int status)
{
        char *line;

        json_object_set_new(p, "exit", json_integer(status));
        line = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(stderr, "%s\n", line ? line : "{\"title\":\"error\",\"detail\":\"out of memory\"}");
        free(line);
        json_decref(p);
        return status;
}

/* The synopsis of c on one line, without "usage: " ("elvisctl vm show ID|NAME"). */
static char *synopsis_line(const struct elvis_command *c)
{
        char *text = NULL, *w;
        const char *r;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return NULL;
        elvis_usage_print_synopsis(c, f);
        fclose(f);
        if (!text)
                return NULL;
        /* the help's line breaks and their indentation become single blanks */
        r = text + (strncmp(text, "usage: ", 7) ? 0 : 7);
        for (w = text; *r; r++)
                if (*r != ' ' && *r != '\n')
                        *w++ = *r;
                else if (w > text && w[-1] != ' ')
                        *w++ = ' ';
        while (w > text && w[-1] == ' ')
                w--;
        *w = '\0';
        return text;
}

static int vreport(const struct elvis_ctl *x, int status, const char *fmt, va_list ap)
{
        char msg[1024];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (x && x->out == ELVIS_OUT_JSON) {
                json_t *p = json_pack("{s:s, s:s}", "title", status == ELVIS_EXIT_USAGE ? "usage error" : "error",
                                      "detail", msg);
                if (status == ELVIS_EXIT_USAGE) {
                        char *usage = x->cmd ? synopsis_line(x->cmd) : NULL;
                        json_object_set_new(p, "usage", json_string(usage ? usage : "elvisctl --help"));
                        free(usage);
                }
                return emit_problem(p, status);
        }
        fprintf(stderr, "elvisctl: %s\n", msg);
        return status;
}

int elvis_ctl_error(const struct elvis_ctl *x, int status, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vreport(x, status, fmt, ap);
        va_end(ap);
        return status;
}

int elvis_ctl_usage_error(const struct elvis_ctl *x, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vreport(x, ELVIS_EXIT_USAGE, fmt, ap);
        va_end(ap);
        if (x && x->out == ELVIS_OUT_JSON)
                return ELVIS_EXIT_USAGE;
        if (x && x->cmd)
                elvis_usage_print_synopsis(x->cmd, stderr);
        else
                fputs("Try 'elvisctl --help'.\n", stderr);
        return ELVIS_EXIT_USAGE;
}

/* What went wrong before any answer: the title of a transport failure. */
static const char *transport_title(int r)
{
        switch (r) {
        case -ECONNREFUSED:
                return "cannot reach elvis-manager";
        case -ETIMEDOUT:
                return "elvis-manager did not answer in time";
        case -ECONNRESET:
                return "elvis-manager closed the connection";
        case -EBADMSG:
                return "the answer is not JSON";
        default:
                return "request failed";
        }
}

int elvis_ctl_api_error(const struct elvis_ctl *x, int r)
{
        json_t *p;

        if (x->out != ELVIS_OUT_JSON) {
                fprintf(stderr, "elvisctl: %s\n", x->c.error);
                return ELVIS_EXIT_API;
        }
        if (r == -EPROTO) {
                /* the daemon's own document, completed when another server answered */
                p = x->c.problem ? json_deep_copy(x->c.problem) : json_object();
                if (!json_is_string(json_object_get(p, "title")))
                        json_object_set_new(p, "title", json_string("request refused"));
                if (!json_is_integer(json_object_get(p, "status")))
                        json_object_set_new(p, "status", json_integer(x->c.status));
                if (!json_is_string(json_object_get(p, "detail")))
                        json_object_set_new(p, "detail", json_string(x->c.error));
        } else {
                p = json_pack("{s:s, s:s}", "title", transport_title(r), "detail", x->c.error);
                if (x->c.status)
                        json_object_set_new(p, "status", json_integer(x->c.status));
        }
        return emit_problem(p, ELVIS_EXIT_API);
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

        if (r < 0)
                return elvis_ctl_api_error(x, r);
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
