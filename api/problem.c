/* Problem details (RFC 9457) and errno to HTTP status mapping. */
#include "problem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

unsigned elvis_http_status_for_errno(int err)
{
        switch (abs(err)) {
        case ENOENT:
        case ENXIO:
                return 404;
        case EEXIST:
        case EBUSY:
        case EALREADY:
                return 409;
        case EINVAL:
        case ENAMETOOLONG:
        case ERANGE:
        case EDOM:
        case EPROTONOSUPPORT:
                return 400;
        case ENOSPC:
                return 507;
        case E2BIG:
        case EMSGSIZE:
        case EFBIG:
                return 413;
        case EPERM:
        case EACCES:
                return 403;
        case EOPNOTSUPP:
                return 405;
        case EMEDIUMTYPE:
                return 415;
        case ENODEV:
        case EAGAIN:
        case ENOTCONN:          /* the data plane is lost (restarting) */
        case ETIMEDOUT:         /* the data plane does not answer */
                return 503;
        default:
                return 500;
        }
}

const char *elvis_http_reason(unsigned status)
{
        switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 409: return "Conflict";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 503: return "Service Unavailable";
        case 507: return "Insufficient Storage";
        default: return status >= 500 ? "Internal Server Error" : "Error";
        }
}

static const char *slug(unsigned status)
{
        switch (status) {
        case 400: return "bad-request";
        case 401: return "unauthorized";
        case 403: return "forbidden";
        case 404: return "not-found";
        case 405: return "method-not-allowed";
        case 409: return "conflict";
        case 411: return "length-required";
        case 413: return "too-large";
        case 415: return "unsupported-media-type";
        case 503: return "unavailable";
        case 507: return "no-capacity";
        default: return "internal-error";
        }
}

/* Details may quote client input (an id from the URL): keep them printable ASCII so
 * the document always encodes. */
static void sanitize(char *dst, size_t size, const char *src)
{
        size_t n = 0;

        for (; *src && n + 1 < size; src++)
                dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
        dst[n] = '\0';
}

json_t *elvis_problem_new(unsigned status, const char *detail)
{
        char type[64], clean[1024];

        snprintf(type, sizeof(type), "urn:elvis:problem:%s", slug(status));
        sanitize(clean, sizeof(clean), detail ? detail : elvis_http_reason(status));
        return json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", elvis_http_reason(status), "status",
                         (int)status, "detail", clean);
}
