/* A test-only data plane: records every operation, enforces the interface contract
 * (unknown ids, -EBUSY on a sidecore with queues), fails on demand and reports
 * synthetic counters. Never linked into the product.
 *   ELVIS_FAKE_LOG=FILE   append one line per operation
 *   ELVIS_FAKE_FAIL=OP    make operation OP (e.g. queue_assign) fail with -EIO */
#include "fake_dataplane.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_SC 256
#define MAX_DEV 1024

struct fake_dev {
        bool used;
        uint32_t vm;
        char id[ELVIS_DEVICE_ID_MAX];
        unsigned queues;
        uint32_t sc[ELVIS_MAX_QUEUES];
        unsigned weight;
        enum elvis_exitless exitless;
        enum elvis_device_type type;
};

struct fake {
        uint32_t sc_id[MAX_SC];
        int sc_cpu[MAX_SC];
        unsigned nsc;
        struct fake_dev devs[MAX_DEV];
        uint64_t reads;
};

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
        const char *path = getenv("ELVIS_FAKE_LOG");
        va_list ap;
        FILE *f;

        if (!path || !(f = fopen(path, "ae")))
                return;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
        fclose(f);
}

static int injected(const char *op)
{
        const char *fail = getenv("ELVIS_FAKE_FAIL");
        return fail && strcmp(fail, op) == 0 ? -EIO : 0;
}

static bool fake_available(void) { return true; }

static int fake_open(const struct elvis_dp_config *cfg, void **ret)
{
        struct fake *f = calloc(1, sizeof(*f));
        int r = injected("open");

        if (r < 0 || !f) {
                free(f);
                return r < 0 ? r : -ENOMEM;
        }
        record("open %s", cfg->run_dir);
        *ret = f;
        return 0;
}

static void fake_close(void *dp)
{
        record("close");
        free(dp);
}

static int fake_health(void *dp, char *detail, size_t len)
{
        snprintf(detail, len, "fake data plane (tests only)");
        return 0;
}

static int sc_index(struct fake *f, uint32_t id)
{
        for (unsigned i = 0; i < f->nsc; i++)
                if (f->sc_id[i] == id)
                        return (int)i;
        return -1;
}

static struct fake_dev *dev_find(struct fake *f, uint32_t vm, const char *id)
{
        for (unsigned i = 0; i < MAX_DEV; i++)
                if (f->devs[i].used && f->devs[i].vm == vm && strcmp(f->devs[i].id, id) == 0)
                        return &f->devs[i];
        return NULL;
}

static int fake_sidecore_create(void *dp, uint32_t id, int cpu)
{
        struct fake *f = dp;
        int r = injected("sidecore_create");

        if (r < 0)
                return r;
        if (sc_index(f, id) >= 0)
                return -EEXIST;
        if (f->nsc == MAX_SC)
                return -ENOSPC;
        f->sc_id[f->nsc] = id;
        f->sc_cpu[f->nsc++] = cpu;
        record("sidecore_create %u %d", id, cpu);
        return 0;
}

static int fake_sidecore_destroy(void *dp, uint32_t id)
{
        struct fake *f = dp;
        int i = sc_index(f, id), r = injected("sidecore_destroy");

        if (r < 0)
                return r;
        if (i < 0)
                return -ENOENT;
        for (unsigned d = 0; d < MAX_DEV; d++)
                for (unsigned q = 0; f->devs[d].used && q < f->devs[d].queues; q++)
                        if (f->devs[d].sc[q] == id)
                                return -EBUSY;
        f->sc_id[i] = f->sc_id[f->nsc - 1];
        f->sc_cpu[i] = f->sc_cpu[f->nsc - 1];
        f->nsc--;
        record("sidecore_destroy %u", id);
        return 0;
}

static int fake_device_attach(void *dp, const struct elvis_dp_device *dev)
{
        struct fake *f = dp;
        int r = injected("device_attach");

        if (r < 0)
                return r;
        if (dev_find(f, dev->vm_id, dev->device_id))
                return -EEXIST;
        for (unsigned i = 0; i < MAX_DEV; i++)
                if (!f->devs[i].used) {
                        struct fake_dev *d = &f->devs[i];
                        memset(d, 0, sizeof(*d));
                        d->used = true;
                        d->vm = dev->vm_id;
                        snprintf(d->id, sizeof(d->id), "%s", dev->device_id);
                        d->queues = dev->queues;
                        d->weight = dev->weight;
                        d->exitless = dev->exitless;
                        d->type = dev->type;
                        if (dev->type == ELVIS_DEVICE_BLK) {
                                /* what a blk device got: its image as the manager opened it */
                                struct stat st = { 0 };
                                int mode = dev->image_fd ? fcntl(*dev->image_fd, F_GETFL) : -1;
                                if (dev->image_fd && fstat(*dev->image_fd, &st) < 0)
                                        return -EBADF;
                                record("device_attach %u %s type=blk queues=%u backend=%s socket=%s path=%s "
                                       "readonly=%d size=%llu image_fd=%s ino=%llu", dev->vm_id, dev->device_id,
                                       dev->queues, elvis_backend_name(dev->backend),
                                       dev->socket_path && *dev->socket_path ? dev->socket_path : "-",
                                       dev->path ? dev->path : "-", dev->readonly,
                                       (unsigned long long)dev->size_bytes,
                                       mode < 0 ? "none" : (mode & O_ACCMODE) == O_RDONLY ? "rdonly" :
                                       (mode & O_ACCMODE) == O_RDWR ? "rdwr" : "other",
                                       (unsigned long long)st.st_ino);
                                return 0;
                        }
                        record("device_attach %u %s queues=%u backend=%s socket=%s%s", dev->vm_id, dev->device_id,
                               dev->queues, elvis_backend_name(dev->backend),
                               dev->socket_path && *dev->socket_path ? dev->socket_path : "-",
                               dev->tap_fds ? " tap_fds=passed" : "");
                        return 0;
                }
        return -ENOSPC;
}

static int fake_device_detach(void *dp, uint32_t vm, const char *id)
{
        struct fake *f = dp;
        struct fake_dev *d = dev_find(f, vm, id);
        int r = injected("device_detach");

        if (r < 0)
                return r;
        if (!d)
                return -ENOENT;
        for (unsigned q = 0; q < d->queues; q++)
                if (d->sc[q])
                        return -EBUSY;
        d->used = false;
        record("device_detach %u %s", vm, id);
        return 0;
}

static int fake_device_set_policy(void *dp, uint32_t vm, const char *id, unsigned weight, enum elvis_exitless ex)
{
        struct fake_dev *d = dev_find(dp, vm, id);
        int r = injected("device_set_policy");

        if (r < 0)
                return r;
        if (!d)
                return -ENOENT;
        d->weight = weight;
        d->exitless = ex;
        record("device_set_policy %u %s weight=%u exitless=%s", vm, id, weight, elvis_exitless_name(ex));
        return 0;
}

static int fake_queue_assign(void *dp, uint32_t vm, const char *id, unsigned queue, uint32_t sc)
{
        struct fake *f = dp;
        struct fake_dev *d = dev_find(f, vm, id);
        int r = injected("queue_assign");

        if (r < 0)
                return r;
        if (!d || queue >= d->queues || (sc && sc_index(f, sc) < 0))
                return -ENOENT;
        d->sc[queue] = sc;
        record("queue_assign %u %s %u %u", vm, id, queue, sc);
        return 0;
}

static int fake_set_params(void *dp, const struct elvis_dp_params *p)
{
        int r = injected("set_params");

        if (r < 0)
                return r;
        record("set_params budget_packets=%u budget_bytes=%u poll_start_rate=%u poll_stop_idle_ms=%u "
               "vanilla_busyloop_us=%u",
               p->budget_packets, p->budget_bytes, p->poll_start_rate, p->poll_stop_idle_ms, p->vanilla_busyloop_us);
        return 0;
}

/* Counters grow by a fixed step per read so rate computations can be checked. */
static int fake_stats_read(void *dp, struct elvis_dp_stats *ret)
{
        struct fake *f = dp;
        struct timespec ts;
        unsigned nq = 0, k = 0;

        f->reads++;
        for (unsigned i = 0; i < MAX_DEV; i++)
                if (f->devs[i].used)
                        nq += f->devs[i].queues;
        memset(ret, 0, sizeof(*ret));
        ret->sidecores = calloc(f->nsc ? f->nsc : 1, sizeof(*ret->sidecores));
        ret->queues = calloc(nq ? nq : 1, sizeof(*ret->queues));
        if (!ret->sidecores || !ret->queues) {
                elvis_dp_stats_fini(ret);
                return -ENOMEM;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ret->timestamp_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        for (unsigned i = 0; i < f->nsc; i++) {
                struct elvis_dp_sidecore_stats *s = &ret->sidecores[i];
                s->id = f->sc_id[i];
                s->cpu = f->sc_cpu[i];
                s->polls = f->reads * 1000;
                s->empty_polls = f->reads * 400;
                s->busy_ns = f->reads * 600000;
                s->idle_ns = f->reads * 400000;
                for (unsigned d = 0; d < MAX_DEV; d++)
                        for (unsigned q = 0; f->devs[d].used && q < f->devs[d].queues; q++)
                                s->nqueues += f->devs[d].sc[q] == s->id;
        }
        ret->nsidecores = f->nsc;
        for (unsigned d = 0; d < MAX_DEV; d++)
                for (unsigned q = 0; f->devs[d].used && q < f->devs[d].queues; q++) {
                        struct elvis_dp_queue_stats *s = &ret->queues[k++];
                        s->vm_id = f->devs[d].vm;
                        snprintf(s->device, sizeof(s->device), "%s", f->devs[d].id);
                        s->type = f->devs[d].type;
                        s->queue = q;
                        s->sidecore = f->devs[d].sc[q];
                        s->state = ELVIS_QUEUE_READY;
                        s->polling = s->sidecore != 0;
                        s->tx_packets = f->reads * 100;
                        s->tx_bytes = f->reads * 6400;
                        s->rx_packets = f->reads * 50;
                        s->rx_bytes = f->reads * 3200;
                        s->kicks = f->reads * (s->polling ? 1 : 100);
                        s->interrupts = f->reads * 2;
                        s->busy_ns = f->reads * 1000 * f->devs[d].weight;
                }
        ret->nqueues = k;
        return 0;
}

const struct elvis_dataplane_ops elvis_fake_dataplane = {
        .kind = "fake",
        .available = fake_available,
        .open = fake_open,
        .close = fake_close,
        .health = fake_health,
        .sidecore_create = fake_sidecore_create,
        .sidecore_destroy = fake_sidecore_destroy,
        .device_attach = fake_device_attach,
        .device_detach = fake_device_detach,
        .device_set_policy = fake_device_set_policy,
        .queue_assign = fake_queue_assign,
        .set_params = fake_set_params,
        .stats_read = fake_stats_read,
};
