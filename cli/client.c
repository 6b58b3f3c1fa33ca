/* libcurl transport for elvisctl: one request per call, problem documents turned into
 * one-line errors, an unreachable daemon into a hint instead of a curl error. */
#include "client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
        char *data;
        size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct buf *b = userdata;
        size_t n = size * nmemb;
        char *p = realloc(b->data, b->len + n + 1);

        if (!p)
                return 0;
        b->data = p;
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static int perform(const struct client *c, const char *method, const char *path, const char *body, long *status,
                   struct buf *out)
{
        CURL *h = curl_easy_init();
        struct curl_slist *hdr = NULL;
        char url[2048], auth[512];
        CURLcode rc;

        if (!h) {
                fprintf(stderr, "elvisctl: cannot initialise libcurl\n");
                return EXIT_API;
        }
        if (c->url) {
                snprintf(url, sizeof(url), "%s%s", c->url, path);
                if (c->cacert)
                        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
                if (c->token) {
                        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
                        hdr = curl_slist_append(hdr, auth);
                }
        } else {
                snprintf(url, sizeof(url), "http://localhost%s", path);
                curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        hdr = curl_slist_append(hdr, "Expect:");
        if (body) {
                hdr = curl_slist_append(hdr, "Content-Type: application/json");
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
        if (rc != CURLE_OK) {
                if (c->url)
                        fprintf(stderr, "elvisctl: cannot reach elvis-manager at %s: %s\n", c->url,
                                curl_easy_strerror(rc));
                else
                        fprintf(stderr,
                                "elvisctl: cannot reach elvis-manager at %s: is it running? (systemctl status elvis-manager)\n",
                                c->socket);
                return EXIT_API;
        }
        return EXIT_OK;
}

static int problem(long status, const char *text)
{
        json_t *j = json_loads(text ? text : "", 0, NULL);
        const char *detail = json_string_value(json_object_get(j, "detail"));

        fprintf(stderr, "elvisctl: %s (HTTP %ld)\n", detail ? detail : "request failed", status);
        json_decref(j);
        return EXIT_API;
}

int client_call(const struct client *c, const char *method, const char *path, json_t *body, json_t **ret)
{
        struct buf out = { 0 };
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        long status = 0;
        int r = perform(c, method, path, text, &status, &out);

        free(text);
        if (r == EXIT_OK && status >= 400)
                r = problem(status, out.data);
        if (r == EXIT_OK && ret) {
                json_error_t jerr;
                *ret = out.data ? json_loads(out.data, 0, &jerr) : NULL;
                if (!*ret) {
                        fprintf(stderr, "elvisctl: the daemon sent a body that is not JSON\n");
                        r = EXIT_API;
                }
        }
        free(out.data);
        return r;
}

int client_text(const struct client *c, const char *path, char **ret)
{
        struct buf out = { 0 };
        long status = 0;
        int r = perform(c, "GET", path, NULL, &status, &out);

        if (r == EXIT_OK && status >= 400)
                r = problem(status, out.data);
        if (r == EXIT_OK)
                *ret = out.data ? out.data : strdup("");
        else
                free(out.data);
        return r;
}
