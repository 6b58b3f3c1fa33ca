/* RFC 9457 problem details and the errno -> HTTP status map. */
#pragma once
#include <jansson.h>

/* HTTP status for a negative errno (ENOENT 404, EEXIST/EBUSY 409, EINVAL 400, ENOSPC 507, ...). */
unsigned elvis_http_status_for_errno(int err);
const char *elvis_http_reason(unsigned status);
/* The type of a 403 to POST /v1/vms with a domain_xml that carries no ELVIS metadata and
 * that adopt-domains does not name: the domain is left alone (the qemu hook lets it start). */
#define ELVIS_PROBLEM_NOT_OPTED_IN "urn:elvis:problem:not-opted-in"

/* {"type","title","status","detail"}; type is a urn naming the problem class. */
json_t *elvis_problem_new(unsigned status, const char *detail);
