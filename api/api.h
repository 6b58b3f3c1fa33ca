/* The REST API front end: HTTP over a unix socket (and optionally TLS over TCP), routed
 * to one manager call per request. Runs on the manager's event loop. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct elvis_manager;
struct elvis_api;

#define ELVIS_API_MAX_BODY (1u << 20)

/* Binds the configured listeners; -errno with the reason logged. */
int elvis_api_start(struct elvis_manager *m, struct elvis_api **ret);
/* Stops accepting new connections; in-flight requests continue. */
void elvis_api_quiesce(struct elvis_api *api);
unsigned elvis_api_connections(const struct elvis_api *api);
/* Something changed (a journal event, which the API hears as a manager subscriber):
 * resume requests waiting for it. NULL is fine. */
void elvis_api_wake(struct elvis_api *api);
void elvis_api_stop(struct elvis_api *api);

/* The API as the daemon's front end (elvis_manager_main's frontend argument). */
struct elvis_frontend_ops;
extern const struct elvis_frontend_ops elvis_api_frontend;

/* The route table, for documentation checks: method and path pattern ("{id}" segments). */
struct elvis_api_route_info {
        const char *method;
        const char *path;
};
const struct elvis_api_route_info *elvis_api_routes(size_t *ret_n);
