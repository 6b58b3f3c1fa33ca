/* Functional test: 1,000+ malformed and hostile requests (bad JSON, deep nesting, huge
 * numbers, invalid UTF-8, oversized bodies, path traversal, garbage HTTP) leave the
 * daemon up, with every answer a 4xx and no state change. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct daemon d;
static unsigned long rng = 12345;

static unsigned rnd(void)
{
        rng = rng * 6364136223846793005ul + 1442695040888963407ul;
        return (unsigned)(rng >> 33);
}

static void setup(void)
{
        daemon_init(&d, ELVIS_MANAGER_FAKE);
        cr_assert_eq(daemon_start(&d), 0);
}

static void teardown(void)
{
        daemon_cleanup(&d);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 300);

static void expect_4xx(const char *method, const char *path, const char *ct, const char *body, size_t len,
                       const char *what)
{
        struct resp r;

        cr_assert_eq(http(&d, method, path, ct, body, len, &r), 0, "%s: no answer (daemon down?)", what);
        cr_assert(r.status >= 400 && r.status < 500, "%s: status %ld, body %.200s", what, r.status, r.body);
        resp_free(&r);
}

static const char *valid = "{\"name\":\"vmx\",\"vcpus\":1,\"policy\":{\"weight\":5},\"devices\":[{\"tap\":\"tx\"}]}";

static int case_body(int i, char *buf, size_t size, const char **path, const char **method, const char **ct)
{
        size_t n;

        *path = "/v1/vms";
        *method = "POST";
        *ct = "application/json";
        switch (i % 12) {
        case 0: /* truncated valid document (never complete) */
                n = (size_t)(i / 12) % strlen(valid);
                memcpy(buf, valid, n);
                return (int)n;
        case 1: { /* deep nesting */
                size_t depth = 500 + (size_t)(rnd() % 20000);
                if (depth > size - 8)
                        depth = size - 8;
                memset(buf, i & 1 ? '[' : '{', depth);
                if (!(i & 1))
                        for (size_t k = 0; k < depth; k++)
                                buf[k] = (k % 2) ? ':' : '{';
                return (int)depth;
        }
        case 2: {
                static const char *nums[] = { "1e999999", "184467440737095516160", "-9223372036854775809",
                                              "1.7976931348623157e309", "-1", "4294967296", "0x10", "NaN", "Infinity",
                                              "1.5", "--1", "1e-99999" };
                return snprintf(buf, size, "{\"name\":\"n%d\",\"vcpus\":%s}", i, nums[(i / 12) % 12]);
        }
        case 3: {
                static const char *bad[] = { "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "\xe2\x82",
                                             "\xc3", "\x80", "\xf4\x90\x80\x80" };
                return snprintf(buf, size, "{\"name\":\"u%s\"}", bad[(i / 12) % 8]);
        }
        case 4:
                return snprintf(buf, size, "{\"name\":\"z%d\\u0000\"}", i);
        case 5: { /* random bytes */
                n = 1 + rnd() % 512;
                for (size_t k = 0; k < n; k++)
                        buf[k] = (char)(rnd() & 0xff);
                return (int)n;
        }
        case 6: {
                static const char *types[] = { "{\"name\":[1,2]}", "{\"name\":null}", "{\"name\":\"ok\",\"devices\":\"x\"}",
                                               "{\"name\":\"ok\",\"devices\":[1]}", "{\"name\":\"ok\",\"policy\":[]}",
                                               "{\"name\":\"ok\",\"policy\":{\"weight\":true}}", "\"just a string\"",
                                               "null", "[]", "{\"name\":\"ok\",\"devices\":[{\"queues\":{}}]}",
                                               "{\"name\":\"ok\",\"domain\":7}", "{\"name\":\"a/../../b\"}" };
                return snprintf(buf, size, "%s", types[(i / 12) % 12]);
        }
        case 7: { /* hostile ids in paths */
                static const char *paths[] = { "/v1/vms/..%2F..%2Fetc%2Fpasswd", "/v1/vms/%00", "/v1/vms/-1",
                                                "/v1/vms/99999999999999999999", "/v1/sidecores/0",
                                                "/v1/sidecores/%2e%2e", "/v1/vms/a%20b", "/v1/vms/%ff%fe",
                                                "/v1/../v1/health/x", "/v1/vms//", "/v1/sidecores/1e3", "/metrics/x" };
                *path = paths[(i / 12) % 12];
                *method = (i / 12) % 2 ? "GET" : "DELETE";
                return -1;
        }
        case 8: {
                static const char *methods[] = { "BREW", "PROPFIND", "TRACE", "OPTIONS", "CONNECTX", "PUT" };
                *method = methods[(i / 12) % 6];
                return snprintf(buf, size, "%s", valid);
        }
        case 9: {
                static const char *cts[] = { "text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                                             "json", "multipart/form-data; boundary=x", "" };
                *ct = cts[(i / 12) % 6];
                return snprintf(buf, size, "%s", valid);
        }
        case 10: /* PATCH and PUT with junk */
                *path = (i / 12) % 2 ? "/v1/policy" : "/v1/sidecores";
                *method = (i / 12) % 2 ? "PUT" : "POST";
                return snprintf(buf, size, "{\"%s\":%d}", (i / 12) % 3 ? "cpu" : "interval_ms",
                                -(int)(rnd() % 100000) - 1);
        default: { /* long or odd names */
                size_t len = 64 + rnd() % 4000;
                buf[0] = '{';
                memcpy(buf + 1, "\"name\":\"", 8);
                memset(buf + 9, 'a' + (char)(i % 26), len);
                memcpy(buf + 9 + len, "\"}", 2);
                return (int)(len + 11);
        }
        }
}

Test(hostile, thousand_bad_requests)
{
        static char buf[64 * 1024];
        struct resp r;
        int total = 0;

        for (int i = 0; i < 1020; i++) {
                const char *path, *method, *ct;
                char what[96];
                int n = case_body(i, buf, sizeof(buf), &path, &method, &ct);

                snprintf(what, sizeof(what), "case %d (kind %d) %s %s", i, i % 12, method, path);
                expect_4xx(method, path, n >= 0 && *ct ? ct : NULL, n >= 0 ? buf : NULL, n >= 0 ? (size_t)n : 0, what);
                total++;
        }
        /* oversized bodies, a few of them */
        {
                size_t big = (1u << 20) + 1 + (rnd() % 4096);
                char *p = malloc(big);
                memset(p, '1', big);
                for (int i = 0; i < 5; i++, total++)
                        expect_4xx("POST", "/v1/vms", "application/json", p, big, "oversized body");
                free(p);
        }
        cr_log_info("%d hostile requests answered with 4xx", total);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert_eq(json_array_size(json_object_get(r.json, "vms")), 0, "no hostile request created a VM: %s", r.body);
        resp_free(&r);
        cr_assert(daemon_alive(&d));
        cr_assert_eq(daemon_stop(&d), 0, "clean shutdown after the barrage");
}

/* Sends raw bytes; returns the HTTP status of the answer, 0 if the connection closed without one. */
static int raw(const char *data, size_t len)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct pollfd p;
        char buf[512];
        int fd = socket(AF_UNIX, SOCK_STREAM, 0), status = 0;
        ssize_t n;

        memcpy(sa.sun_path, d.sock, strlen(d.sock) + 1);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        while (len) {
                ssize_t w = send(fd, data, len, MSG_NOSIGNAL);
                if (w <= 0)
                        break;
                data += w;
                len -= (size_t)w;
        }
        shutdown(fd, SHUT_WR);
        p = (struct pollfd){ .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 35000) > 0 && (n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0) {
                buf[n] = '\0';
                sscanf(buf, "HTTP/1.%*d %d", &status);
        }
        close(fd);
        return status;
}

Test(hostile, garbage_http)
{
        static char big[200000];
        const char *cases[] = {
                "GARBAGE\r\n\r\n",
                "GET\r\n\r\n",
                "GET /v1/health HTTP/9.9\r\n\r\n",
                "GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "POST /v1/vms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                "zz\r\n{}\r\n0\r\n\r\n",
        };
        int st;
        long t0;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                t0 = time(NULL);
                st = raw(cases[i], strlen(cases[i]));
                cr_log_info("raw case %zu: %d after %ld s", i, st, (long)time(NULL) - t0);
                /* libmicrohttpd answers an unknown protocol version with the standard 505 */
                if (i == 2 && st == 505)
                        continue;
                cr_assert(st == 0 || (st >= 400 && st < 500), "raw case %zu answered %d", i, st);
        }
        /* a request line and a header block far beyond the connection memory limit */
        memcpy(big, "GET /v1/", 8);
        memset(big + 8, 'a', sizeof(big) - 8);
        st = raw(big, sizeof(big));
        cr_assert(st == 0 || (st >= 400 && st < 500), "huge request line answered %d", st);
        memcpy(big, "GET /v1/health HTTP/1.1\r\nX-Long: ", 33);
        st = raw(big, sizeof(big));
        cr_assert(st == 0 || (st >= 400 && st < 500), "huge header answered %d", st);
        {
                struct resp r;
                cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
                cr_assert_eq(r.status, 200, "daemon still serves");
                resp_free(&r);
        }
        cr_assert_eq(daemon_stop(&d), 0);
}

/* A client that sends half a request and stalls must not hold up anyone else. */
Test(hostile, stalled_client_does_not_block_others)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *half = "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                           "Content-Type: application/json\r\n\r\n{\"na";
        int fds[20];
        struct resp r;

        memcpy(sa.sun_path, d.sock, strlen(d.sock) + 1);
        for (int i = 0; i < 20; i++) {
                fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
                cr_assert_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                cr_assert_gt(send(fds[i], half, strlen(half), MSG_NOSIGNAL), 0);
        }
        for (int i = 0; i < 20; i++) {
                cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
                cr_assert_eq(r.status, 200);
                resp_free(&r);
        }
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\":\"ok\"}", &r), 0);
        cr_assert_eq(r.status, 201, "writes go through while 20 clients stall");
        resp_free(&r);
        for (int i = 0; i < 20; i++)
                close(fds[i]);
        cr_assert_eq(daemon_stop(&d), 0, "shutdown does not wait forever for stalled clients");
}
