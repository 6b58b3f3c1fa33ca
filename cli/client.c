/* libcurl transport for elvisctl: one request per call; problem documents and transport
 * failures become one line in c->error instead of a curl error dump. */
#include "client.h"

#include <elvis/version.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far above any real answer (a topology of 1024 CPUs is ~200 KiB); stops a wrong --url
 * from filling memory. */
#define MAX_ANSWER (64u << 20)

struct buf {
        char *data;
        size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct buf *b = userdata;
        size_t n = size * nmemb;
        char *p;

        if (b->len + n > MAX_ANSWER)
                return 0;
        p = realloc(b->data, b->len + n + 1);
        if (!p)
                return 0;
        b->data = p;
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static bool add_header(struct curl_slist **list, const char *line)
{
        struct curl_slist *l = curl_slist_append(*list, line);

        if (!l)
                return false;
        *list = l;
        return true;
}

static const char *where(const struct elvis_client *c)
{
        return c->url ? c->url : c->socket;
}

/* Copies a server-provided string, dropping anything that could drive the terminal. */
static void printable(char *dst, size_t size, const char *src)
{
        size_t n = 0;

        for (; *src && n + 1 < size; src++)
                dst[n++] = ((unsigned char)*src >= 0x20 && *src != 0x7f) ? *src : '?';
        dst[n] = '\0';
}

/* Turns a failed transfer into one line. The unix-socket cases name the two things an
 * operator can act on: the daemon is not running, or the socket's group excludes them. */
static int transport_error(struct elvis_client *c, CURLcode rc, long os_errno, const char *detail)
{
        const char *why = detail[0] ? detail : curl_easy_strerror(rc);

        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
                snprintf(c->error, sizeof(c->error), "elvis-manager at %s did not answer within %ld s", where(c),
                         c->timeout_s > 0 ? c->timeout_s : 30L);
                return -ETIMEDOUT;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                snprintf(c->error, sizeof(c->error), "elvis-manager at %s closed the connection without answering",
                         where(c));
                return -ECONNRESET;
        case CURLE_WRITE_ERROR:
                snprintf(c->error, sizeof(c->error), "the answer of %s is larger than %u MiB or memory ran out",
                         where(c), MAX_ANSWER >> 20);
                return -ENOMEM;
        default:
                break;
        }
        if (!c->url && (os_errno == EACCES || os_errno == EPERM))
                snprintf(c->error, sizeof(c->error),
                         "cannot reach elvis-manager at %s: permission denied (is your user in the socket's group?)",
                         c->socket);
        else if (!c->url)
                snprintf(c->error, sizeof(c->error),
                         "cannot reach elvis-manager at %s: is it running? (systemctl status elvis-manager)",
                         c->socket);
        else
                snprintf(c->error, sizeof(c->error), "cannot reach elvis-manager at %s: %s%s", c->url, why,
                         rc == CURLE_PEER_FAILED_VERIFICATION ? " (--cacert names the CA that signed it)" : "");
        return -ECONNREFUSED;
}

static int perform(struct elvis_client *c, const char *method, const char *path, const char *body, struct buf *out)
{
        char url[4096], auth[4200], errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *hdr = NULL;
        bool ok = true;
        long os_errno = 0;
        CURLcode rc;
        CURL *h;
        int r = 0;

        c->status = 0;
        c->error[0] = '\0';
        json_decref(c->problem);
        c->problem = NULL;
        h = curl_easy_init();
        if (!h) {
                snprintf(c->error, sizeof(c->error), "cannot initialise libcurl");
                return -ENOMEM;
        }
        if (c->url) {
                size_t n = strlen(c->url);
                while (n && c->url[n - 1] == '/')       /* "https://h:8443/" + "/v1/..." */
                        n--;
                snprintf(url, sizeof(url), "%.*s%s", (int)n, c->url, path);
                if (c->cacert)
                        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
                if (c->token) {
                        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
                        ok = add_header(&hdr, auth);
                }
        } else {
                snprintf(url, sizeof(url), "http://localhost%s", path);
                curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s > 0 ? c->timeout_s : 30L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "elvisctl/" ELVIS_VERSION);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        ok = ok && add_header(&hdr, "Accept: application/json, application/problem+json, text/plain");
        ok = ok && add_header(&hdr, "Expect:");        /* no 100-continue round trip */
        if (body) {
                ok = ok && add_header(&hdr, "Content-Type: application/json");
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        }
        if (!ok) {
                snprintf(c->error, sizeof(c->error), "out of memory");
                r = -ENOMEM;
                goto out;
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
                curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
                r = transport_error(c, rc, os_errno, errbuf);
                goto out;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
out:
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
        return r;
}

/* "<detail> (HTTP <status>)" from an application/problem+json body; the title, or
 * nothing, when a proxy or another server answered instead. The document itself is
 * kept in c->problem for JSON output. */
static int problem(struct elvis_client *c, const char *text)
{
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        const char *detail = json_string_value(json_object_get(j, "detail"));
        char clean[400];

        if (!detail || !*detail)
                detail = json_string_value(json_object_get(j, "title"));
        printable(clean, sizeof(clean), detail && *detail ? detail : "request failed");
        snprintf(c->error, sizeof(c->error), "%s (HTTP %ld)", clean, c->status);
        if (json_is_object(j))
                c->problem = j;
        else
                json_decref(j);
        return -EPROTO;
}

void elvis_client_fini(struct elvis_client *c)
{
        json_decref(c->problem);
        c->problem = NULL;
}

int elvis_client_call(struct elvis_client *c, const char *method, const char *path, const json_t *body,
                      json_t **ret)
{
        char *text = NULL;
        struct buf out = { 0 };
        json_error_t jerr;
        json_t *doc;
        int r;

        if (body) {
                text = json_dumps(body, JSON_COMPACT);
                if (!text) {
                        snprintf(c->error, sizeof(c->error), "cannot encode the request");
                        return -ENOMEM;
                }
        }
        r = perform(c, method, path, text, &out);
        free(text);
        if (r == 0 && c->status >= 400)
                r = problem(c, out.data);
        if (r == 0 && ret) {
                doc = out.data ? json_loadb(out.data, out.len, 0, &jerr) : NULL;
                if (!doc) {
                        snprintf(c->error, sizeof(c->error), "%s answered HTTP %ld with a body that is not JSON",
                                 where(c), c->status);
                        r = -EBADMSG;
                } else {
                        *ret = doc;
                }
        }
        free(out.data);
        return r;
}

int elvis_client_text(struct elvis_client *c, const char *path, char **ret)
{
        struct buf out = { 0 };
        int r = perform(c, "GET", path, NULL, &out);

        if (r == 0 && c->status >= 400)
                r = problem(c, out.data);
        if (r == 0 && !out.data) {
                out.data = strdup("");
                if (!out.data) {
                        snprintf(c->error, sizeof(c->error), "out of memory");
                        r = -ENOMEM;
                }
        }
        if (r == 0) {
                *ret = out.data;
                return 0;
        }
        free(out.data);
        return r;
}
