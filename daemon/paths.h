/* Validation of vhost-user socket paths that come from outside the daemon. */
#pragma once
#include <stddef.h>

/* The first n bytes of in, made canonical: "/a//b/./c" -> "/a/b/c" (an empty path is "/").
 * 0, -EINVAL when a ".." component is there (refused rather than resolved: links make it
 * mean something else), -ENAMETOOLONG when out (outlen bytes) is too short. */
int elvis_path_normalize(const char *in, size_t n, char *out, size_t outlen);

struct elvis_socket_rules {
        const char *run_dir;            /* always allowed */
        const char *extra_dirs;         /* vhost-user-dir entries, one per line, or NULL */
        const char *api_socket;         /* never allowed */
};

/* 0 with the canonical path in ret, or -EINVAL (malformed), -EACCES (outside the allowed
 * directories, through a symbolic link, the API socket), -EEXIST (a file that is not a
 * socket), -ENAMETOOLONG; why names the path and the rule. */
int elvis_socket_path_check(const char *path, const struct elvis_socket_rules *rules, char *ret, size_t len,
                            char *why, size_t whylen);
