/* elvisctl's HTTP client: JSON requests to elvis-manager over its unix socket (or TLS). */
#pragma once
#include <jansson.h>
#include <stdbool.h>

struct client {
        const char *socket;     /* unix socket path */
        const char *url;        /* https://host:port, instead of the socket */
        const char *token;      /* bearer token for url */
        const char *cacert;
};

enum {
        EXIT_OK = 0,
        EXIT_API = 1,           /* the daemon refused, or cannot be reached */
        EXIT_USAGE = 2,
};

/* Performs a request; on success returns 0 and the parsed body in *ret (may be NULL).
 * On failure prints one line to stderr and returns EXIT_API. */
int client_call(const struct client *c, const char *method, const char *path, json_t *body, json_t **ret);
/* Same for text bodies (metrics). */
int client_text(const struct client *c, const char *path, char **ret);
