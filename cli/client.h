/* elvisctl's HTTP client: JSON requests to elvis-manager over its unix socket (or TLS). */
#pragma once
#include <jansson.h>
#include <stdbool.h>

struct elvis_client {
        const char *socket;     /* unix socket path */
        const char *url;        /* https://host:port, used instead of the socket when set */
        const char *token;      /* bearer token for url */
        const char *cacert;     /* CA bundle that signed the daemon's certificate */
        long timeout_s;         /* whole-request limit; 0 means 30 s */
        long status;            /* HTTP status of the last answer, 0 when none arrived */
        char error[512];        /* one line, without "elvisctl: ", set when a call fails */
        json_t *problem;        /* the last error answer's problem document, when it was one */
};

/* Performs one request. body may be NULL; ret may be NULL when the answer does not matter.
 * Returns 0 and the parsed answer in *ret, or:
 *   -ECONNREFUSED  the daemon cannot be reached (socket missing, refused, no permission, TLS),
 *   -ETIMEDOUT     it did not answer in time,
 *   -EPROTO        it answered with an error status (c->error holds the problem detail),
 *   -EBADMSG       the answer is not JSON,
 *   -ENOMEM.
 * c->error always describes the failure. */
int elvis_client_call(struct elvis_client *c, const char *method, const char *path, const json_t *body,
                      json_t **ret);
/* Same for text answers (metrics); *ret is NUL-terminated, caller frees. */
int elvis_client_text(struct elvis_client *c, const char *path, char **ret);
/* Frees what the last call kept (c->problem). */
void elvis_client_fini(struct elvis_client *c);
