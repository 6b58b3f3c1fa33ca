/* elvisctl's help, per-command usage lines and shell completion, all generated from the
 * command and global option tables. */
#include "args.h"
#include "cmd.h"

#include <stdbool.h>
#include <string.h>

#define HELP_COLUMN 25
#define LINE_WIDTH 79

/* Prints text's words from column col (after a blank when space_first), breaking lines
 * before LINE_WIDTH and indenting continuations; returns the column it ends in. */
static int wrap(FILE *f, int col, int indent, const char *text, bool space_first)
{
        bool fresh = !space_first;

        text += strspn(text, " ");
        while (*text) {
                /* "[--exitless auto|always|never]..." stays on one line */
                const char *close = *text == '[' ? strchr(text, ']') : NULL;
                int n = close ? (int)(close - text) + (int)strcspn(close, " ") : (int)strcspn(text, " ");
                if (!fresh && col + 1 + n > LINE_WIDTH) {
                        fprintf(f, "\n%*s", indent, "");
                        col = indent;
                        fresh = true;
                }
                if (!fresh)
                        col += fprintf(f, " ");
                col += fprintf(f, "%.*s", n, text);
                fresh = false;
                text += n;
                text += strspn(text, " ");
        }
        return col;
}

/* The help text in its column, on the next line when the left part is too wide. */
static void help_line(FILE *f, int col, const char *help)
{
        if (col + 2 > HELP_COLUMN) {
                fprintf(f, "\n%*s", HELP_COLUMN, "");
                col = HELP_COLUMN;
        } else {
                col += fprintf(f, "%*s", HELP_COLUMN - col, "");
        }
        wrap(f, col, HELP_COLUMN, help, false);
        fputc('\n', f);
}

void elvis_usage_print_command(const struct elvis_command *c, FILE *f)
{
        int col = fprintf(f, "  %s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");

        help_line(f, wrap(f, col, 8, c->args, true), c->help);
}

/* The short hint after a usage error inside a command. */
void elvis_usage_print_synopsis(const struct elvis_command *c, FILE *f)
{
        int col = fprintf(f, "usage: elvisctl %s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");

        wrap(f, col, 8, c->args, true);
        fputc('\n', f);
}

/* Every command of a group ("vm ..."), for "elvisctl vm" and "elvisctl vm --help". */
void elvis_usage_print_group(const char *name, FILE *f)
{
        fprintf(f, "Usage: elvisctl [OPTIONS] COMMAND [ARGS]\n\n");
        for (const struct elvis_command *c = elvis_commands; c->name; c++)
                if (c->help && !strcmp(c->name, name))
                        elvis_usage_print_command(c, f);
}

void elvis_usage_print(FILE *f)
{
        fprintf(f, "Usage: elvisctl [OPTIONS] COMMAND [ARGS]\n\nCommands:\n");
        for (const struct elvis_command *c = elvis_commands; c->name; c++)
                if (c->help)
                        elvis_usage_print_command(c, f);
        fprintf(f, "\nOptions:\n");
        for (const struct elvis_global_option *o = elvis_global_options; o->name; o++)
                help_line(f, fprintf(f, "  %s%s%s%s%s", o->shrt ? o->shrt : "", o->shrt ? ", " : "", o->name,
                                     o->arg ? " " : "", o->arg ? o->arg : ""), o->help);
        fprintf(f, "\nExit status: 0 success, 1 the daemon refused or cannot be reached, 2 usage\n"
                   "error. See elvisctl(1).\n");
}

/* An option of a command's synopsis: "[--exitless auto|always|never]" gives name
 * "--exitless" and value "auto|always|never"; flags have an empty value. */
struct synopsis_option {
        char name[32];
        char value[64];
};

static size_t synopsis_options(const char *args, struct synopsis_option *opts, size_t max)
{
        char copy[256], *save = NULL, *tok;
        size_t n = 0;

        snprintf(copy, sizeof(copy), "%s", args);
        for (tok = strtok_r(copy, " ", &save); tok && n < max; tok = strtok_r(NULL, " ", &save)) {
                bool flag;
                tok += strspn(tok, "[");
                if (strncmp(tok, "--", 2))
                        continue;
                flag = strchr(tok, ']') != NULL;
                snprintf(opts[n].name, sizeof(opts[n].name), "%.*s", (int)strcspn(tok, "]"), tok);
                opts[n].value[0] = '\0';
                if (!flag && (tok = strtok_r(NULL, " ", &save)))
                        snprintf(opts[n].value, sizeof(opts[n].value), "%.*s", (int)strcspn(tok, "]"), tok);
                n++;
        }
        return n;
}

/* "auto|always|never" -> one word a line; placeholders (N, SEC) have no candidates. */
static void print_choices(const char *value)
{
        char copy[64], *save = NULL, *w;

        if (!value[0] || strpbrk(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
                return;
        snprintf(copy, sizeof(copy), "%s", value);
        for (w = strtok_r(copy, "|", &save); w; w = strtok_r(NULL, "|", &save))
                puts(w);
}

static void print_keys(const struct elvis_arg_key *keys)
{
        for (const struct elvis_arg_key *k = keys; k->name; k++) {
                if (k->type != ELVIS_ARG_ENUM)
                        printf("%s=\n", k->name);
                else
                        for (const char *const *c = k->choices; *c; c++)
                                printf("%s=%s\n", k->name, *c);
        }
}

/* Names from a list the daemon serves; silent when it cannot be reached (a shell is waiting). */
static void print_names(struct elvis_ctl *x, const char *path, const char *array, const char *field)
{
        json_t *j = NULL, *o;
        size_t i;

        x->c.timeout_s = 2;
        if (elvis_client_call(&x->c, "GET", path, NULL, &j) < 0)
                return;
        json_array_foreach(json_object_get(j, array), i, o) {
                json_t *v = json_object_get(o, field);
                if (json_is_string(v))
                        puts(json_string_value(v));
                else if (json_is_integer(v))
                        printf("%lld\n", (long long)json_integer_value(v));
        }
        json_decref(j);
}

/* Hidden helper of the bash completion: given the words before the cursor (global options
 * removed), prints the candidates for the next word, one a line. "__complete --options"
 * lists the global options. Everything comes from the tables, so completion cannot drift
 * from the binary. */
int elvis_cmd_complete(struct elvis_ctl *x, int argc, char **argv)
{
        struct synopsis_option opts[16];
        const struct elvis_command *c = NULL;
        bool positional = false;
        size_t nopts;
        int first;

        if (argc == 1 && !strcmp(argv[0], "--options")) {
                for (const struct elvis_global_option *o = elvis_global_options; o->name; o++)
                        printf("%s%s%s\n", o->shrt ? o->shrt : "", o->shrt ? "\n" : "", o->name);
                return ELVIS_EXIT_OK;
        }
        for (const struct elvis_command *k = elvis_commands; k->name; k++) {
                if (!k->help)
                        continue;
                if (argc == 0 && (k == elvis_commands || strcmp(k->name, k[-1].name)))
                        puts(k->name);
                else if (argc == 1 && !strcmp(k->name, argv[0]) && k->sub)
                        puts(k->sub);
                else if (argc >= 1 && !strcmp(k->name, argv[0]) && (!k->sub || (argc >= 2 && !strcmp(k->sub, argv[1]))))
                        c = k;
        }
        if (!c || (c->sub && argc < 2))
                return ELVIS_EXIT_OK;
        first = c->sub ? 2 : 1;
        nopts = synopsis_options(c->args, opts, 16);
        for (int i = first; i < argc; i++) {
                bool value_next = false;
                for (size_t o = 0; o < nopts; o++)
                        if (!strcmp(argv[i], opts[o].name) && opts[o].value[0])
                                value_next = true;
                if (value_next && i + 1 == argc) {      /* the cursor is on this option's value */
                        if (!strcmp(argv[i], "--device"))
                                print_keys(elvis_arg_device_keys);
                        for (size_t o = 0; o < nopts; o++)
                                if (!strcmp(argv[i], opts[o].name))
                                        print_choices(opts[o].value);
                        return ELVIS_EXIT_OK;
                }
                if (value_next)
                        i++;
                else if (argv[i][0] != '-')
                        positional = true;
        }
        for (size_t o = 0; o < nopts; o++)
                puts(opts[o].name);
        if (!positional && !strncmp(c->args, "ID|NAME", 7))
                print_names(x, "/v1/vms", "vms", "name");
        else if (!positional && !strcmp(c->args, "ID"))
                print_names(x, "/v1/sidecores", "sidecores", "id");
        else if (positional && !strcmp(c->name, "vm") && !strcmp(c->sub, "set"))
                print_keys(elvis_arg_vm_set_keys);
        else if (!strcmp(c->name, "policy") && !strcmp(c->sub, "set"))
                print_keys(elvis_arg_policy_keys);
        return ELVIS_EXIT_OK;
}
