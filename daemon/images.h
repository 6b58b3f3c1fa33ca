/* Disk images of blk devices: where they may be (image-dir), how the manager opens them,
 * and the descriptors it holds while their devices exist. */
#pragma once
#include <elvis/model.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opens the image at path for a device: the path must be absolute, without "..", name a
 * file under one of dirs (one directory per line) that resolves beneath that directory
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: a relative symbolic link that stays
 * inside is followed, one that leads out or an absolute one is refused), and be a
 * regular file or a block device. O_RDONLY when readonly, else O_RDWR; O_CLOEXEC.
 * 0 with the fd and the normalized path in ret_path (ELVIS_IMAGE_PATH_MAX), or -EINVAL
 * (malformed, missing, not a file or block device), -EACCES (outside every directory,
 * through a link out, no permission), -ENAMETOOLONG; why names the path and the rule. */
int elvis_image_open(const char *path, const char *dirs, bool readonly, int *ret_fd, char *ret_path, char *why,
                     size_t whylen);

/* What the manager holds: one open image per blk file device, by (VM, device). */
struct elvis_image {
        uint32_t vm;
        char device[ELVIS_DEVICE_ID_MAX];
        int fd;
        dev_t dev;
        ino_t ino;
        bool readonly;
};

struct elvis_images {
        struct elvis_image *v;
        unsigned n, cap;
};

void elvis_images_fini(struct elvis_images *t);
struct elvis_image *elvis_images_find(struct elvis_images *t, uint32_t vm, const char *device);
/* Takes fd over (it is closed when the entry goes, or here on failure). -EEXIST when fd
 * is the same file as another entry and either of them is writable (the owner is named
 * in ret_owner when given), -ENOMEM. */
int elvis_images_add(struct elvis_images *t, uint32_t vm, const char *device, int fd, bool readonly,
                     const struct elvis_image **ret_owner);
/* Closes every image of vm. */
void elvis_images_drop_vm(struct elvis_images *t, uint32_t vm);
