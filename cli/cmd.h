/* What elvisctl's command files share: the command table's types, the context a command
 * runs in, and the helpers they request and print with. Internal to the elvisctl binary. */
#pragma once
#include "client.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

enum elvis_exit {
        ELVIS_EXIT_OK = 0,
        ELVIS_EXIT_API = 1,             /* the daemon refused, or cannot be reached */
        ELVIS_EXIT_USAGE = 2,
};

enum elvis_output { ELVIS_OUT_TABLE, ELVIS_OUT_JSON };

struct elvis_command;

/* One run of elvisctl: how to reach the daemon, how to print, and what is running. */
struct elvis_ctl {
        struct elvis_client c;
        enum elvis_output out;
        const struct elvis_command *cmd;        /* the one running, for its usage line */
};

/* One line of the command table; commands of a group ("vm ...") are adjacent. */
struct elvis_command {
        const char *name;
        const char *sub;
        int (*fn)(struct elvis_ctl *x, int argc, char **argv);     /* returns the exit status */
        const char *args;
        const char *help;               /* NULL: hidden */
};

/* Global options: parsing, usage and completion all read this. */
struct elvis_global_option {
        const char *shrt;
        const char *name;
        const char *arg;
        const char *help;
};

/* elvisctl.c: the tables, each ending with an entry whose name is NULL. */
extern const struct elvis_command elvis_commands[];
extern const struct elvis_global_option elvis_global_options[];

/* ctl.c: requests and errors. A failed request is printed as one line and gives
 * ELVIS_EXIT_API; answers for table output have their control characters replaced.
 * Errors go to stderr: "elvisctl: <detail>" for table output, and for -o json one line
 * of JSON, a problem document (title, status when the daemon answered, detail, and the
 * daemon's other members) with the exit status as "exit". */
/* A usage error (exit status 2) with the running command's synopsis as the hint. x may
 * be NULL before the options are read. */
int elvis_ctl_usage_error(const struct elvis_ctl *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Any other error; returns status. */
int elvis_ctl_error(const struct elvis_ctl *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The failure r of the last request on x->c; returns ELVIS_EXIT_API. */
int elvis_ctl_api_error(const struct elvis_ctl *x, int r);
int elvis_ctl_call(struct elvis_ctl *x, const char *method, const char *path, const json_t *body, json_t **ret);
int elvis_ctl_get(struct elvis_ctl *x, const char *path, json_t **ret);
/* For a command that takes no arguments and shows what GET path answers: refuses arguments,
 * requests path, and prints the answer itself for JSON output. Returns the exit status; on
 * success *ret is the answer left to print as text, or NULL when nothing is left. */
int elvis_ctl_show(struct elvis_ctl *x, int argc, const char *path, json_t **ret);
/* DELETE path, then the answer for JSON output, else "<what> <name> removed". */
int elvis_ctl_remove(struct elvis_ctl *x, const char *path, const char *what, const char *name);

/* ctl.c: fields of JSON answers for text output. */
void elvis_json_print(const json_t *j);
const char *elvis_json_str(const json_t *o, const char *k);     /* "-" unless a string */
long long elvis_json_int(const json_t *o, const char *k);       /* 0 unless an integer */
double elvis_json_real(const json_t *o, const char *k);         /* 0 unless a number */
/* The integer v in buf, or "-" for null (an unplaced queue, a CPU without NUMA information). */
const char *elvis_json_int_text(const json_t *v, char *buf, size_t size);
#define ELVIS_INT_TEXT(v) elvis_json_int_text((v), (char[24]){ 0 }, 24)

/* usage.c: help generated from the tables. The whole help: commands, options, exit statuses. */
void elvis_usage_print(FILE *f);
/* The lines of one group's commands ("elvisctl vm --help"). */
void elvis_usage_print_group(const char *name, FILE *f);
/* One command's line of the help: its synopsis, then its help text in a column. */
void elvis_usage_print_command(const struct elvis_command *c, FILE *f);
/* "usage: elvisctl vm show ID|NAME", the hint after a usage error. */
void elvis_usage_print_synopsis(const struct elvis_command *c, FILE *f);

/* cmd_policy.c: "reason; max load 92% -> 61%, sidecores 1 -> 2" and the actions, one a
 * line after indent, for a plan or a control event. */
void elvis_plan_print_summary(const json_t *p, const char *indent);

/* The commands, one file per group. */
int elvis_cmd_status(struct elvis_ctl *x, int argc, char **argv);       /* cmd_host.c */
int elvis_cmd_topology(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_stats(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_metrics(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_vm_list(struct elvis_ctl *x, int argc, char **argv);      /* cmd_vm.c */
int elvis_cmd_vm_add(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_vm_show(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_vm_set(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_vm_remove(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_vm_xml(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_sidecore_list(struct elvis_ctl *x, int argc, char **argv);        /* cmd_sidecore.c */
int elvis_cmd_sidecore_add(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_sidecore_show(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_sidecore_remove(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_policy_show(struct elvis_ctl *x, int argc, char **argv);  /* cmd_policy.c */
int elvis_cmd_policy_set(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_plan(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_top(struct elvis_ctl *x, int argc, char **argv);  /* cmd_watch.c */
int elvis_cmd_events(struct elvis_ctl *x, int argc, char **argv);
int elvis_cmd_complete(struct elvis_ctl *x, int argc, char **argv);     /* usage.c */
