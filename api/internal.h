/* Shared between the HTTP server and the route handlers. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

struct MHD_Connection;
struct elvis_manager;

struct api_ctx {
        struct elvis_manager *m;
        struct elvis_api *api;
        struct MHD_Connection *conn;
        const char *method;
        const char *id;                 /* the {id} path segment, if the route has one */
        const json_t *body;             /* parsed request body, NULL if none */
        /* outputs */
        unsigned status;
        json_t *out;                    /* response document (JSON or problem) */
        char *text;                     /* or a plain-text body (metrics) */
        const char *text_type;
        char location[128];
        /* long polls */
        bool waited_out;                /* a previous suspension reached its deadline */
        bool suspended;                 /* set by api_suspend: no response now */
        uint64_t *deadline_ns;          /* the request's own deadline, kept across resumes */
};

/* Parks the request until elvis_api_wake() or its deadline; the handler runs again then. */
void api_suspend(struct api_ctx *x, uint64_t deadline_ns);

typedef void (*api_handler)(struct api_ctx *x);

struct api_route {
        const char *method;
        const char *path;               /* "{id}" matches one segment */
        api_handler handler;
        bool body;                      /* expects a JSON body (may be empty when body_optional) */
        bool body_optional;
};

extern const struct api_route elvis_api_route_table[];
extern const size_t elvis_api_route_count;

/* Sets a problem response from a negative errno and a detail. */
void api_fail(struct api_ctx *x, int err, const char *detail);
void api_fail_status(struct api_ctx *x, unsigned status, const char *detail);
void api_ok(struct api_ctx *x, unsigned status, json_t *doc);
/* Prometheus text rendering of a stats document from elvis_manager_stats(). */
char *elvis_metrics_render(struct elvis_manager *m, const json_t *stats);
/* The stats read and rendered: the body of GET /metrics, or NULL (out of memory). */
char *elvis_metrics_scrape(struct elvis_manager *m);
#define ELVIS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
