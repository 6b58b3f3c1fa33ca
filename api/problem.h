/* RFC 9457 problem details and the errno -> HTTP status map. */
#pragma once
#include <jansson.h>

/* HTTP status for a negative errno (ENOENT 404, EEXIST/EBUSY 409, EINVAL 400, ENOSPC 507, ...). */
unsigned elvis_http_status_for_errno(int err);
const char *elvis_http_reason(unsigned status);
/* {"type","title","status","detail"}; type is a urn naming the problem class. */
json_t *elvis_problem_new(unsigned status, const char *detail);
