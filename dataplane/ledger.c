/* The ledger of vhost-user socket files this data plane created, by path, device and
 * inode, kept in run-dir so that a restarted daemon still knows them. A socket file is
 * replaced or unlinked only when the ledger names that very inode: never another VM's
 * socket under a second spelling, never the API socket, never someone else's file.
 * run-dir is a tmpfs in production, so the ledger and the sockets vanish together at
 * boot. Callers hold dp->lock. */
#include "dp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEDGER_NAME "vhost-user-sockets"
#define LEDGER_MAX 4096

struct dp_ledger_entry {
        uint64_t dev, ino;
        char path[ELVIS_PATH_MAX];
};

static void ledger_path(const struct dp_user *dp, char *buf, size_t len)
{
        snprintf(buf, len, "%s/%s", dp->run_dir, LEDGER_NAME);
}

void dp_ledger_load(struct dp_user *dp)
{
        char path[ELVIS_PATH_MAX + 32], line[ELVIS_PATH_MAX + 64];
        FILE *f;

        ledger_path(dp, path, sizeof(path));
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f) && dp->nledger < LEDGER_MAX) {
                struct dp_ledger_entry e = { 0 };
                int off = 0;
                size_t n;

                if (sscanf(line, "%" SCNu64 " %" SCNu64 " %n", &e.dev, &e.ino, &off) != 2 || off == 0)
                        continue;
                n = strcspn(line + off, "\n");
                if (n == 0 || n >= sizeof(e.path) || line[off] != '/')
                        continue;
                memcpy(e.path, line + off, n);
                e.path[n] = '\0';
                {
                        struct dp_ledger_entry *grown = realloc(dp->ledger, (dp->nledger + 1) * sizeof(*grown));
                        if (!grown)
                                break;
                        dp->ledger = grown;
                        dp->ledger[dp->nledger++] = e;
                }
        }
        fclose(f);
}

/* Rewritten whole and renamed into place: a crash leaves the old or the new ledger. */
static void ledger_save(struct dp_user *dp)
{
        char path[ELVIS_PATH_MAX + 32], tmp[ELVIS_PATH_MAX + 40];
        FILE *f;
        int fd;

        ledger_path(dp, path, sizeof(path));
        snprintf(tmp, sizeof(tmp), "%s.new", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || !(f = fdopen(fd, "w"))) {
                if (fd >= 0)
                        close(fd);
                log_warning("cannot write the socket ledger %s: %m", tmp);
                return;
        }
        for (unsigned i = 0; i < dp->nledger; i++)
                fprintf(f, "%" PRIu64 " %" PRIu64 " %s\n", dp->ledger[i].dev, dp->ledger[i].ino, dp->ledger[i].path);
        if (fclose(f) != 0 || rename(tmp, path) < 0) {
                log_warning("cannot write the socket ledger %s: %m", path);
                unlink(tmp);
        }
}

bool dp_ledger_owns(const struct dp_user *dp, const char *path, uint64_t dev, uint64_t ino)
{
        for (unsigned i = 0; i < dp->nledger; i++)
                if (dp->ledger[i].dev == dev && dp->ledger[i].ino == ino && strcmp(dp->ledger[i].path, path) == 0)
                        return true;
        return false;
}

void dp_ledger_del(struct dp_user *dp, const char *path)
{
        unsigned k = 0;

        for (unsigned i = 0; i < dp->nledger; i++)
                if (strcmp(dp->ledger[i].path, path) != 0)
                        dp->ledger[k++] = dp->ledger[i];
        if (k == dp->nledger)
                return;
        dp->nledger = k;
        ledger_save(dp);
}

void dp_ledger_add(struct dp_user *dp, const char *path, uint64_t dev, uint64_t ino)
{
        struct dp_ledger_entry *grown;

        dp_ledger_del(dp, path);
        if (dp->nledger >= LEDGER_MAX)
                return;
        grown = realloc(dp->ledger, (dp->nledger + 1) * sizeof(*grown));
        if (!grown)
                return;
        dp->ledger = grown;
        dp->ledger[dp->nledger] = (struct dp_ledger_entry){ .dev = dev, .ino = ino };
        snprintf(dp->ledger[dp->nledger].path, sizeof(dp->ledger[0].path), "%s", path);
        dp->nledger++;
        ledger_save(dp);
}

void dp_ledger_fini(struct dp_user *dp)
{
        free(dp->ledger);
        dp->ledger = NULL;
        dp->nledger = 0;
}
