/* Where vhost-user socket paths from outside (the API, a domain XML, the qemu hook) may
 * point: a plain file name in a directory under run-dir or a configured vhost-user-dir,
 * reached without symbolic links, that is not the API socket and not an existing file
 * of another kind. The canonical spelling is what the state records, so a second
 * spelling of a path in use ("run//vm1.sock") is caught as the same path. */
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int elvis_path_normalize(const char *in, size_t n, char *out, size_t outlen)
{
        size_t o = 0, i = 0;

        while (i < n) {
                size_t k;
                while (i < n && in[i] == '/')
                        i++;
                k = i;
                while (k < n && in[k] != '/')
                        k++;
                if (k == i)
                        break;
                if (k - i == 1 && in[i] == '.') {
                        i = k;
                        continue;
                }
                if (k - i == 2 && in[i] == '.' && in[i + 1] == '.')
                        return -EINVAL;
                if (o + 1 + (k - i) + 1 > outlen)
                        return -ENAMETOOLONG;
                out[o++] = '/';
                memcpy(out + o, in + i, k - i);
                o += k - i;
                i = k;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = '\0';
        return 0;
}

static bool under(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        if (n == 1 && dir[0] == '/')
                return true;
        return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* realpath of a directory that must exist; NULL when it does not */
static char *real_dir(const char *dir, size_t n)
{
        char buf[PATH_MAX];

        if (n >= sizeof(buf))
                return NULL;
        memcpy(buf, dir, n);
        buf[n] = '\0';
        return realpath(buf, NULL);
}

static bool allowed_in(const char *canon, const char *dir, size_t n)
{
        char *real = real_dir(dir, n);
        bool ok = real && under(canon, real);

        free(real);
        return ok;
}

static int canonical(const char *path, char *ret, size_t len, char *why, size_t whylen)
{
        const char *slash = strrchr(path, '/');
        const char *base = slash + 1;
        char norm[PATH_MAX], *real;
        int r;

        if (path[0] != '/') {
                snprintf(why, whylen, "vhost-user socket path '%.200s' is not absolute", path);
                return -EINVAL;
        }
        if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
                snprintf(why, whylen, "vhost-user socket path '%.200s' does not end in a file name", path);
                return -EINVAL;
        }
        r = elvis_path_normalize(path, (size_t)(slash - path), norm, sizeof(norm));
        if (r < 0) {
                snprintf(why, whylen, "vhost-user socket path '%.200s' must not contain '..'", path);
                return -EINVAL;
        }
        real = realpath(norm, NULL);
        if (!real) {
                snprintf(why, whylen, "the directory of vhost-user socket path '%.200s' does not exist", path);
                return -EINVAL;
        }
        if (strcmp(real, norm) != 0) {
                snprintf(why, whylen,
                         "vhost-user socket path '%.200s' goes through a symbolic link (%.100s is really %.100s)", path,
                         norm, real);
                free(real);
                return -EACCES;
        }
        r = snprintf(ret, len, "%s/%s", strcmp(real, "/") ? real : "", base);
        free(real);
        if (r < 0 || (size_t)r >= len) {
                snprintf(why, whylen, "vhost-user socket path '%.200s' is too long", path);
                return -ENAMETOOLONG;
        }
        return 0;
}

int elvis_socket_path_check(const char *path, const struct elvis_socket_rules *rules, char *ret, size_t len,
                            char *why, size_t whylen)
{
        char canon[PATH_MAX], api[PATH_MAX];
        bool allowed = false;
        struct stat st;
        int r;

        r = canonical(path, canon, sizeof(canon), why, whylen);
        if (r < 0)
                return r;
        allowed = allowed_in(canon, rules->run_dir, strlen(rules->run_dir));
        for (const char *d = rules->extra_dirs; d && *d && !allowed;) {
                size_t n = strcspn(d, "\n");
                allowed = allowed_in(canon, d, n);
                d += n + (d[n] == '\n');
        }
        if (!allowed) {
                snprintf(why, whylen,
                         "vhost-user socket path '%.200s' is outside run-dir (%.100s) and every vhost-user-dir", path,
                         rules->run_dir);
                return -EACCES;
        }
        if (rules->api_socket && *rules->api_socket &&
            canonical(rules->api_socket, api, sizeof(api), why, whylen) == 0 && strcmp(api, canon) == 0) {
                snprintf(why, whylen, "vhost-user socket path '%.200s' is the daemon's own API socket", path);
                return -EACCES;
        }
        if (lstat(canon, &st) == 0 && !S_ISSOCK(st.st_mode)) {
                snprintf(why, whylen, "vhost-user socket path '%.200s' exists and is not a socket", path);
                return -EEXIST;
        }
        if (strlen(canon) >= len) {
                snprintf(why, whylen, "vhost-user socket path '%.200s' is too long", path);
                return -ENAMETOOLONG;
        }
        memcpy(ret, canon, strlen(canon) + 1);
        return 0;
}
