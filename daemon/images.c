/* Disk images: the image-dir rules, opening beneath a directory with openat2, and the
 * table of images the manager holds open (the data planes get duplicates). */
#include "images.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_beneath(int dirfd, const char *rel, int flags)
{
        struct open_how how = {
                .flags = (uint64_t)flags,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));

        return fd < 0 ? -errno : (int)fd;
}

/* Opens rel beneath dir; the error says why in terms of the rules. */
static int open_in(const char *path, const char *dir, const char *rel, bool readonly, char *why, size_t whylen)
{
        int dfd, fd, flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
        struct stat st = { 0 };

        dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                snprintf(why, whylen, "image-dir %.200s of image '%.200s' cannot be opened: %s", dir, path,
                         strerror(errno));
                return -EINVAL;
        }
        fd = open_beneath(dfd, rel, flags);
        close(dfd);
        switch (fd) {
        case -EXDEV:
        case -ELOOP:
                snprintf(why, whylen,
                         "image '%.200s' resolves outside image-dir %.200s (a symbolic link leads out of it, or is "
                         "absolute)", path, dir);
                return -EACCES;
        case -ENOENT:
        case -ENOTDIR:
                snprintf(why, whylen, "image '%.200s' does not exist", path);
                return -EINVAL;
        case -EISDIR:
                snprintf(why, whylen, "image '%.200s' is a directory, not a regular file or block device", path);
                return -EINVAL;
        case -EACCES:
        case -EPERM:
        case -EROFS:
        case -ETXTBSY:
                snprintf(why, whylen, "image '%.200s' cannot be opened %s: %s%s", path,
                         readonly ? "for reading" : "for reading and writing", strerror(-fd),
                         readonly ? "" : " (readonly=true opens it for reading only)");
                return -EACCES;
        case -ENOSYS:
                snprintf(why, whylen, "image '%.200s': this kernel has no openat2 (Linux 5.6 or later is needed)",
                         path);
                return -EOPNOTSUPP;
        default:
                if (fd < 0) {
                        snprintf(why, whylen, "image '%.200s' cannot be opened: %s", path, strerror(-fd));
                        return -EINVAL;
                }
        }
        if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
                snprintf(why, whylen, "image '%.200s' is not a regular file or block device (%s)", path,
                         S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a fifo" :
                         S_ISSOCK(st.st_mode) ? "a socket" : S_ISCHR(st.st_mode) ? "a character device" : "other");
                close(fd);
                return -EINVAL;
        }
        /* O_NONBLOCK only kept a fifo from blocking the open */
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
                snprintf(why, whylen, "image '%.200s': %s", path, strerror(errno));
                close(fd);
                return -EINVAL;
        }
        return fd;
}

int elvis_image_open(const char *path, const char *dirs, bool readonly, int *ret_fd, char *ret_path, char *why,
                     size_t whylen)
{
        char norm[ELVIS_IMAGE_PATH_MAX], dir[4096];
        size_t nlen;
        int r;

        if (path[0] != '/') {
                snprintf(why, whylen, "image path '%.200s' is not absolute", path);
                return -EINVAL;
        }
        r = elvis_path_normalize(path, strlen(path), norm, sizeof(norm));
        if (r == -EINVAL) {
                snprintf(why, whylen, "image path '%.200s' must not contain '..'", path);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(why, whylen, "image path '%.200s' is longer than %d characters", path,
                         ELVIS_IMAGE_PATH_MAX - 1);
                return -ENAMETOOLONG;
        }
        nlen = strlen(norm);
        for (const char *d = dirs; d && *d;) {
                size_t n = strcspn(d, "\n"), dl;
                const char *rel;

                r = elvis_path_normalize(d, n, dir, sizeof(dir));
                d += n + (d[n] == '\n');
                if (r != 0)
                        continue;       /* config validation refuses these */
                dl = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
                if (nlen <= dl + 1 || strncmp(norm, dir, dl) != 0 || norm[dl] != '/')
                        continue;
                rel = norm + dl + 1;
                r = open_in(path, dir, rel, readonly, why, whylen);
                if (r < 0)
                        return r;
                *ret_fd = r;
                memcpy(ret_path, norm, nlen + 1);
                return 0;
        }
        if (!dirs || !*dirs)
                snprintf(why, whylen, "image '%.200s' cannot be used: no image-dir is configured", path);
        else
                snprintf(why, whylen, "image '%.200s' is outside every image-dir (%.200s)", path, dirs);
        for (char *p = why; *p; p++)
                if (*p == '\n')
                        *p = ',';
        return -EACCES;
}

void elvis_images_fini(struct elvis_images *t)
{
        for (unsigned i = 0; i < t->n; i++)
                close(t->v[i].fd);
        free(t->v);
        *t = (struct elvis_images){ 0 };
}

struct elvis_image *elvis_images_find(struct elvis_images *t, uint32_t vm, const char *device)
{
        for (unsigned i = 0; i < t->n; i++)
                if (t->v[i].vm == vm && strcmp(t->v[i].device, device) == 0)
                        return &t->v[i];
        return NULL;
}

int elvis_images_add(struct elvis_images *t, uint32_t vm, const char *device, int fd, bool readonly,
                     const struct elvis_image **ret_owner)
{
        struct stat st;

        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        for (unsigned i = 0; i < t->n; i++)
                if (t->v[i].dev == st.st_dev && t->v[i].ino == st.st_ino && (!readonly || !t->v[i].readonly)) {
                        if (ret_owner)
                                *ret_owner = &t->v[i];
                        close(fd);
                        return -EEXIST;
                }
        if (t->n == t->cap) {
                unsigned cap = t->cap ? t->cap * 2 : 8;
                void *n = realloc(t->v, cap * sizeof(*t->v));
                if (!n) {
                        close(fd);
                        return -ENOMEM;
                }
                t->v = n;
                t->cap = cap;
        }
        t->v[t->n] = (struct elvis_image){ .vm = vm, .fd = fd, .dev = st.st_dev, .ino = st.st_ino,
                                           .readonly = readonly };
        snprintf(t->v[t->n].device, sizeof(t->v[t->n].device), "%s", device);
        t->n++;
        return 0;
}

void elvis_images_drop_vm(struct elvis_images *t, uint32_t vm)
{
        for (unsigned i = 0; i < t->n;) {
                if (t->v[i].vm == vm) {
                        close(t->v[i].fd);
                        t->v[i] = t->v[--t->n];
                } else {
                        i++;
                }
        }
}
