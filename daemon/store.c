/* Atomic, durable persistence of the managed state as JSON. */
#include "store.h"

#include "codec.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_FILE "state.json"
#define STATE_TMP "state.json.tmp"
#define STATE_MAX_BYTES (64u << 20)

static int mkdir_p(const char *path, mode_t mode)
{
        char buf[4096];
        size_t len = strlen(path);

        if (len >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, len + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int elvis_store_open(const char *dir, struct elvis_store *ret)
{
        struct elvis_store st = { .dirfd = -1 };
        int r;

        r = mkdir_p(dir, 0700);
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "cannot create state directory %s: %s", dir, strerror(-r));
        st.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (st.dirfd < 0)
                return elvis_log_errno(LOG_ERR, errno, "cannot open state directory %s: %m", dir);
        st.dir = strdup(dir);
        if (asprintf(&st.path, "%s/%s", dir, STATE_FILE) < 0)
                st.path = NULL;
        if (!st.dir || !st.path) {
                elvis_store_close(&st);
                return -ENOMEM;
        }
        *ret = st;
        return 0;
}

void elvis_store_close(struct elvis_store *st)
{
        if (st->dirfd >= 0)
                close(st->dirfd);
        free(st->dir);
        free(st->path);
        memset(st, 0, sizeof(*st));
        st->dirfd = -1;
}

static int move_aside(struct elvis_store *st, char *moved, size_t len)
{
        char name[64];
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(name, sizeof(name), STATE_FILE ".corrupt-%lld", (long long)ts.tv_sec);
        if (renameat(st->dirfd, STATE_FILE, st->dirfd, name) < 0)
                return -errno;
        fsync(st->dirfd);
        snprintf(moved, len, "%s/%s", st->dir, name);
        return 0;
}

int elvis_store_load(struct elvis_store *st, struct elvis_state *s, char *moved, size_t len)
{
        struct elvis_err e = { 0 };
        json_error_t jerr;
        struct stat sb;
        json_t *j;
        int fd, r;

        if (len)
                moved[0] = '\0';
        /* a temp file is a write that never got renamed: the old state is the valid one */
        unlinkat(st->dirfd, STATE_TMP, 0);
        fd = openat(st->dirfd, STATE_FILE, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &sb) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (sb.st_size > STATE_MAX_BYTES) {
                close(fd);
                log_error("state file %s is %lld bytes, more than the %u allowed: treating it as corrupt", st->path,
                          (long long)sb.st_size, STATE_MAX_BYTES);
                goto corrupt;
        }
        j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
        close(fd);
        if (!j) {
                log_error("state file %s is corrupt at line %d column %d: %s", st->path, jerr.line, jerr.column,
                          jerr.text);
                goto corrupt;
        }
        r = elvis_state_from_json(j, s, &e);
        json_decref(j);
        if (r < 0) {
                log_error("state file %s is invalid: %s", st->path, e.detail);
                goto corrupt;
        }
        return 1;
corrupt:
        r = move_aside(st, moved, len);
        if (r < 0)
                return elvis_log_errno(LOG_ERR, r, "cannot move corrupt state file %s aside: %s", st->path,
                                       strerror(-r));
        log_error("moved corrupt state file to %s; starting with an empty state", moved);
        return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
        while (len) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

int elvis_store_save(struct elvis_store *st, const struct elvis_state *s)
{
        json_t *j = elvis_state_to_json(s);
        char *text;
        int fd, r;

        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(12));
        json_decref(j);
        if (!text)
                return -ENOMEM;
        fd = openat(st->dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        r = write_all(fd, text, strlen(text));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(st->dirfd, STATE_TMP, st->dirfd, STATE_FILE) < 0)
                r = -errno;
        if (r == 0 && fsync(st->dirfd) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(st->dirfd, STATE_TMP, 0);
                log_error("cannot save state to %s: %s", st->path, strerror(-r));
        }
out:
        free(text);
        return r;
}
