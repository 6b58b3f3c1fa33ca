/* libvirt domain XML parsing with libxml2 (no network, no entities, bounded size). */
#include "domxml.h"

#include <errno.h>
#include <fnmatch.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_XML (4u << 20)

static char *xpath_string(xmlXPathContextPtr ctx, const char *expr)
{
        xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
        char *s = NULL;

        if (o && o->type == XPATH_STRING && o->stringval && o->stringval[0])
                s = strdup((const char *)o->stringval);
        xmlXPathFreeObject(o);
        return s;
}

static int copy(char *dst, size_t size, const char *src, const char *what, char *err, size_t errlen)
{
        if (strlen(src) >= size) {
                snprintf(err, errlen, "domain XML: %s is longer than %zu characters", what, size - 1);
                return -EINVAL;
        }
        memcpy(dst, src, strlen(src) + 1);
        return 0;
}

/* One side of a DAC label: "+N" or "N" is a number; a name is left for the caller's
 * configuration (1), anything else is malformed (-1). */
static int dac_id(const char *s, size_t n, uint32_t *ret)
{
        char buf[16], *end;
        unsigned long long v;

        if (n && s[0] == '+') {
                s++;
                n--;
        }
        if (n == 0 || n >= sizeof(buf))
                return -1;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (buf[0] < '0' || buf[0] > '9') {
                for (size_t i = 0; i < n; i++)
                        if (!(buf[i] == '_' || buf[i] == '-' || (buf[i] >= 'a' && buf[i] <= 'z') ||
                              (buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= '0' && buf[i] <= '9')))
                                return -1;
                return 1;
        }
        v = strtoull(buf, &end, 10);
        if (*end || v >= UINT32_MAX)
                return -1;
        *ret = (uint32_t)v;
        return 0;
}

static int dac_label(const char *label, struct elvis_domain_info *info)
{
        const char *colon = strchr(label, ':');
        int u, g;

        if (!colon)
                return -EINVAL;
        u = dac_id(label, (size_t)(colon - label), &info->vmm_uid);
        g = dac_id(colon + 1, strlen(colon + 1), &info->vmm_gid);
        if (u < 0 || g < 0)
                return -EINVAL;
        info->vmm_uid_set = u == 0;
        info->vmm_gid_set = g == 0;
        return 0;
}

/* Calls fn on each item of a comma-separated list, trimmed of spaces; stops at a non-zero
 * return and passes it on. */
static int each_glob(const char *list, int (*fn)(const char *item, size_t len, void *ud), void *ud)
{
        if (!list || !*list)
                return 0;
        for (const char *p = list;; p++) {
                size_t n = strcspn(p, ","), len = n;
                const char *item = p;
                int r;
                while (len && (*item == ' ' || *item == '\t'))
                        item++, len--;
                while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
                        len--;
                if ((r = fn(item, len, ud)) != 0)
                        return r;
                p += n;
                if (!*p)
                        return 0;
        }
}

static int match_one(const char *item, size_t len, void *ud)
{
        const struct elvis_domain_info *info = ud;
        char glob[ELVIS_DOMAIN_MAX];

        if (len == 0 || len >= sizeof(glob))
                return 0;
        memcpy(glob, item, len);
        glob[len] = '\0';
        return (info->name[0] && fnmatch(glob, info->name, 0) == 0) ||
               (info->uuid[0] && fnmatch(glob, info->uuid, FNM_CASEFOLD) == 0);
}

bool elvis_domxml_opted_in(const struct elvis_domain_info *info, const char *allow)
{
        return info->has_policy || each_glob(allow, match_one, (void *)info) > 0;
}

struct check_ctx {
        char *err;
        size_t errlen;
};

static int check_one(const char *item, size_t len, void *ud)
{
        struct check_ctx *c = ud;

        if (len == 0) {
                snprintf(c->err, c->errlen, "empty item (two commas, or a comma at an end)");
                return -EINVAL;
        }
        if (len >= ELVIS_DOMAIN_MAX) {
                snprintf(c->err, c->errlen, "'%.40s...' is longer than %d characters", item, ELVIS_DOMAIN_MAX - 1);
                return -EINVAL;
        }
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)item[i] < 0x20 || item[i] == 0x7f || item[i] == '/') {
                        snprintf(c->err, c->errlen, "'%.*s': a domain name has no '/' or control characters",
                                 (int)len, item);
                        return -EINVAL;
                }
        return 0;
}

int elvis_domxml_globs_check(const char *allow, char *err, size_t errlen)
{
        struct check_ctx c = { err, errlen };

        return each_glob(allow, check_one, &c);
}

/* libvirt's cpuset syntax: cpu-list items, and "^N" items that take CPUs out again
 * ("0-7,^3"). */
static int cpuset_parse(const char *text, elvis_cpuset *ret)
{
        elvis_cpuset in, out;
        char *copy = strdup(text), *rest = copy, *item;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        elvis_cpuset_zero(&in);
        elvis_cpuset_zero(&out);
        while (r == 0 && (item = strsep(&rest, ",")) != NULL) {
                elvis_cpuset one;
                while (*item == ' ')
                        item++;
                r = elvis_cpuset_parse(item[0] == '^' ? item + 1 : item, &one);
                if (r == 0 && elvis_cpuset_empty(&one))
                        r = -EINVAL;
                if (r == 0)
                        elvis_cpuset_or(item[0] == '^' ? &out : &in, &one);
        }
        free(copy);
        if (r == 0 && elvis_cpuset_empty(&in))
                r = -EINVAL;
        if (r < 0)
                return r;
        elvis_cpuset_andnot(&in, &out);
        *ret = in;
        return 0;
}

/* <vcpu cpuset> and every <cputune><vcpupin>. */
static int parse_pins(xmlXPathContextPtr ctx, struct elvis_domain_info *info, char *err, size_t errlen)
{
        xmlXPathObjectPtr pins = NULL;
        elvis_cpuset pinned_vcpus;
        char *s = xpath_string(ctx, "string(/domain/vcpu/@cpuset)");
        int r = 0;

        if (s && cpuset_parse(s, &info->vcpu_cpuset) < 0) {
                snprintf(err, errlen, "domain XML: <vcpu cpuset='%.64s'> is not a CPU list", s);
                free(s);
                return -EINVAL;
        }
        free(s);
        elvis_cpuset_zero(&pinned_vcpus);
        pins = xmlXPathEvalExpression((const xmlChar *)"/domain/cputune/vcpupin", ctx);
        for (int i = 0; pins && pins->nodesetval && i < pins->nodesetval->nodeNr && r == 0; i++) {
                xmlNodePtr n = pins->nodesetval->nodeTab[i];
                xmlChar *vcpu = xmlGetProp(n, (const xmlChar *)"vcpu"), *set = xmlGetProp(n, (const xmlChar *)"cpuset");
                elvis_cpuset one;
                char *end = NULL;
                unsigned long v = vcpu ? strtoul((const char *)vcpu, &end, 10) : 0;

                if (!vcpu || !vcpu[0] || *end || v >= ELVIS_MAX_VCPUS) {
                        snprintf(err, errlen, "domain XML: a <vcpupin> has no valid vcpu number");
                        r = -EINVAL;
                } else if (!set || cpuset_parse((const char *)set, &one) < 0) {
                        snprintf(err, errlen, "domain XML: <vcpupin vcpu='%lu' cpuset='%.64s'> is not a CPU list", v,
                                 set ? (const char *)set : "");
                        r = -EINVAL;
                } else {
                        elvis_cpuset_or(&info->vcpupin, &one);
                        elvis_cpuset_set(&pinned_vcpus, (int)v);
                }
                xmlFree(vcpu);
                xmlFree(set);
        }
        xmlXPathFreeObject(pins);
        if (r == 0 && !elvis_cpuset_empty(&info->vcpu_cpuset))
                info->vcpu_cpuset_applies = elvis_cpuset_count(&pinned_vcpus) < (info->vcpus ? info->vcpus : 1);
        return r;
}

void elvis_domxml_vm_name(const char *domain, char *out, size_t size)
{
        size_t n = 0;

        if (!((domain[0] >= 'a' && domain[0] <= 'z') || (domain[0] >= 'A' && domain[0] <= 'Z')))
                n = (size_t)snprintf(out, size, "vm-");
        for (const char *c = domain; *c && n + 1 < size; c++)
                out[n++] = (strchr("-_.", *c) || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                            (*c >= 'A' && *c <= 'Z')) ? *c : '-';
        out[n] = '\0';
}

unsigned elvis_domxml_devices(const struct elvis_domain_info *info, struct elvis_device devs[ELVIS_MAX_DEVICES])
{
        unsigned n = 0;

        for (unsigned i = 0; i < info->nifaces && n < ELVIS_MAX_DEVICES; i++, n++) {
                struct elvis_device *d = &devs[n];
                memset(d, 0, sizeof(*d));
                snprintf(d->id, sizeof(d->id), "net%u", i);
                d->type = ELVIS_DEVICE_NET;
                d->backend = ELVIS_BACKEND_TAP;
                d->queues = 1;
                snprintf(d->socket, sizeof(d->socket), "%s", info->sockets[i]);
        }
        for (unsigned i = 0; i < info->ndisks && n < ELVIS_MAX_DEVICES; i++, n++) {
                const struct elvis_domain_disk *k = &info->disks[i];
                struct elvis_device *d = &devs[n];
                memset(d, 0, sizeof(*d));
                if (k->id[0])
                        snprintf(d->id, sizeof(d->id), "%s", k->id);
                else
                        snprintf(d->id, sizeof(d->id), "blk%u", n);
                d->type = ELVIS_DEVICE_BLK;
                d->backend = k->backend;
                d->readonly = k->readonly;
                d->size_bytes = k->size_bytes;
                d->queues = k->queues;
                snprintf(d->path, sizeof(d->path), "%s", k->path);
                snprintf(d->socket, sizeof(d->socket), "%s", k->socket);
        }
        return n;
}

/* An unsigned attribute of n in lo..hi; 0 when absent (*ret untouched), 1, or -EINVAL. */
static int uint_prop(xmlNodePtr n, const char *name, unsigned long long lo, unsigned long long hi,
                     unsigned long long *ret)
{
        xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
        unsigned long long x;
        char *end;
        int r = 0;

        if (!v)
                return 0;
        x = strtoull((const char *)v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end || x < lo || x > hi)
                r = -EINVAL;
        else
                *ret = x, r = 1;
        xmlFree(v);
        return r;
}

/* <elvis:disk target= id= backend= path= size= readonly= queues=/> for disk k, whose
 * target and socket are set; 0, or -EINVAL with a message. */
static int disk_meta(xmlNodePtr n, struct elvis_domain_disk *k, char *err, size_t errlen)
{
        xmlChar *v;
        unsigned long long u;
        int r = 0;

        k->backend = ELVIS_BACKEND_FILE;
        if ((v = xmlGetProp(n, (const xmlChar *)"backend"))) {
                if (!strcmp((const char *)v, "null"))
                        k->backend = ELVIS_BACKEND_NULL;
                else if (strcmp((const char *)v, "file"))
                        r = -EINVAL;
                xmlFree(v);
                if (r < 0) {
                        snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> backend is not file or null",
                                 k->target);
                        return r;
                }
        }
        if ((v = xmlGetProp(n, (const xmlChar *)"id"))) {
                if (!elvis_device_id_valid((const char *)v) || strlen((const char *)v) >= sizeof(k->id))
                        r = -EINVAL;
                else
                        snprintf(k->id, sizeof(k->id), "%s", (const char *)v);
                xmlFree(v);
                if (r < 0) {
                        snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> id is not a device id",
                                 k->target);
                        return r;
                }
        }
        if ((v = xmlGetProp(n, (const xmlChar *)"path"))) {
                if (v[0] != '/' || strlen((const char *)v) >= sizeof(k->path) || k->backend != ELVIS_BACKEND_FILE)
                        r = -EINVAL;
                else
                        snprintf(k->path, sizeof(k->path), "%s", (const char *)v);
                xmlFree(v);
                if (r < 0) {
                        snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> path must be an absolute "
                                 "image path (backend file only)", k->target);
                        return r;
                }
        }
        if (k->backend == ELVIS_BACKEND_FILE && !k->path[0]) {
                snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> needs the image's path", k->target);
                return -EINVAL;
        }
        u = 1ull << 30;
        r = uint_prop(n, "size", 512, 1ull << 50, &u);
        if (r < 0 || (r > 0 && (k->backend != ELVIS_BACKEND_NULL || u % 512))) {
                snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> size must be bytes in whole "
                         "512-byte sectors (backend null only)", k->target);
                return -EINVAL;
        }
        if (k->backend == ELVIS_BACKEND_NULL)
                k->size_bytes = u;
        if ((v = xmlGetProp(n, (const xmlChar *)"readonly"))) {
                if (!strcmp((const char *)v, "yes"))
                        k->readonly = true;
                else if (strcmp((const char *)v, "no"))
                        r = -EINVAL;
                xmlFree(v);
                if (r < 0) {
                        snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> readonly is not yes or no",
                                 k->target);
                        return r;
                }
        }
        u = 0;
        if (uint_prop(n, "queues", 1, ELVIS_MAX_QUEUES, &u) < 0 || (u && k->queues && u != k->queues)) {
                snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> queues must be 1 to %d and agree "
                         "with the disk's <driver queues>", k->target, ELVIS_MAX_QUEUES);
                return -EINVAL;
        }
        if (!k->queues)
                k->queues = u ? (unsigned)u : 1;
        return 0;
}

/* <disk type='vhostuser'> elements with an <elvis:disk> naming their target. The
 * <elvis:disk> elements are children of <elvis:policy>: libvirt keeps one element per
 * namespace in <metadata> (the first), and what is inside it. */
static int parse_disks(xmlXPathContextPtr ctx, struct elvis_domain_info *info, char *err, size_t errlen)
{
        xmlXPathObjectPtr meta = xmlXPathEvalExpression((const xmlChar *)"/domain/metadata/elvis:policy/elvis:disk", ctx);
        int r = 0;

        for (int i = 0; meta && meta->nodesetval && i < meta->nodesetval->nodeNr && r == 0; i++) {
                xmlNodePtr n = meta->nodesetval->nodeTab[i];
                xmlChar *target = xmlGetProp(n, (const xmlChar *)"target");
                struct elvis_domain_disk k = { 0 };
                char expr[200];
                char *sock, *q;

                if (!target || !target[0] || strlen((const char *)target) >= sizeof(k.target) ||
                    strchr((const char *)target, '\'')) {
                        snprintf(err, errlen, "domain metadata: an <elvis:disk> has no valid target (vdX)");
                        xmlFree(target);
                        r = -EINVAL;
                        break;
                }
                snprintf(k.target, sizeof(k.target), "%s", (const char *)target);
                xmlFree(target);
                for (unsigned d = 0; d < info->ndisks; d++)
                        if (!strcmp(info->disks[d].target, k.target)) {
                                snprintf(err, errlen, "domain metadata: two <elvis:disk> name target '%s'", k.target);
                                r = -EINVAL;
                        }
                if (r < 0)
                        break;
                snprintf(expr, sizeof(expr), "string(/domain/devices/disk[@type='vhostuser'][target/@dev='%s']"
                         "/source/@path)", k.target);
                sock = xpath_string(ctx, expr);
                if (!sock || sock[0] != '/' || strlen(sock) >= sizeof(k.socket)) {
                        snprintf(err, errlen, "domain metadata: <elvis:disk target='%s'> names no <disk "
                                 "type='vhostuser'> with that target and an absolute socket path", k.target);
                        free(sock);
                        r = -EINVAL;
                        break;
                }
                snprintf(k.socket, sizeof(k.socket), "%s", sock);
                free(sock);
                snprintf(expr, sizeof(expr), "string(/domain/devices/disk[@type='vhostuser'][target/@dev='%s']"
                         "/driver/@queues)", k.target);
                if ((q = xpath_string(ctx, expr))) {
                        char *end;
                        unsigned long v = strtoul(q, &end, 10);
                        if (*end || v < 1 || v > ELVIS_MAX_QUEUES) {
                                snprintf(err, errlen, "domain XML: disk %s has <driver queues='%.16s'>, not 1 to %d",
                                         k.target, q, ELVIS_MAX_QUEUES);
                                r = -EINVAL;
                        }
                        k.queues = (unsigned)v;
                        free(q);
                        if (r < 0)
                                break;
                }
                if ((r = disk_meta(n, &k, err, errlen)) < 0)
                        break;
                if (info->nifaces + info->ndisks >= ELVIS_MAX_DEVICES) {
                        snprintf(err, errlen, "domain XML: more than %d ELVIS devices", ELVIS_MAX_DEVICES);
                        r = -EINVAL;
                        break;
                }
                info->disks[info->ndisks++] = k;
        }
        xmlXPathFreeObject(meta);
        return r;
}

int elvis_domxml_parse(const char *xml, size_t len, struct elvis_domain_info *ret, char *err, size_t errlen)
{
        struct elvis_domain_info info = { .policy = { ELVIS_WEIGHT_DEFAULT, ELVIS_EXITLESS_AUTO } };
        xmlDocPtr doc;
        xmlXPathContextPtr ctx = NULL;
        xmlXPathObjectPtr ifs = NULL;
        char *s;
        int r = -EINVAL;

        if (len > MAX_XML) {
                snprintf(err, errlen, "domain XML is larger than %u bytes", MAX_XML);
                return -EINVAL;
        }
        doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc) {
                snprintf(err, errlen, "domain XML is not well-formed");
                return -EINVAL;
        }
        ctx = xmlXPathNewContext(doc);
        if (!ctx || xmlXPathRegisterNs(ctx, (const xmlChar *)"elvis", (const xmlChar *)ELVIS_XMLNS) != 0) {
                snprintf(err, errlen, "out of memory");
                goto out;
        }
        s = xpath_string(ctx, "string(/domain/name)");
        if (!s) {
                snprintf(err, errlen, "domain XML has no <name>");
                goto out;
        }
        r = copy(info.name, sizeof(info.name), s, "name", err, errlen);
        free(s);
        if (r < 0)
                goto out;
        r = -EINVAL;
        if ((s = xpath_string(ctx, "string(/domain/uuid)"))) {
                int c = copy(info.uuid, sizeof(info.uuid), s, "uuid", err, errlen);
                free(s);
                if (c < 0)
                        goto out;
        }
        /* the current vCPU count: <vcpu current='N'>MAX</vcpu> or <vcpu>N</vcpu> */
        s = xpath_string(ctx, "string(/domain/vcpu/@current)");
        if (!s)
                s = xpath_string(ctx, "string(/domain/vcpu)");
        if (s) {
                char *end;
                unsigned long v = strtoul(s, &end, 10);
                if (*end || v == 0 || v > ELVIS_MAX_VCPUS) {
                        snprintf(err, errlen, "domain XML: vcpu count '%.16s' is not between 1 and %d", s,
                                 ELVIS_MAX_VCPUS);
                        free(s);
                        goto out;
                }
                info.vcpus = (unsigned)v;
                free(s);
        }
        r = parse_pins(ctx, &info, err, errlen);
        if (r < 0)
                goto out;
        r = -EINVAL;
        {
                xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)"/domain/metadata/elvis:policy", ctx);
                info.has_policy = o && o->nodesetval && o->nodesetval->nodeNr > 0;
                xmlXPathFreeObject(o);
        }
        if (info.has_policy) {
                char *w = xpath_string(ctx, "string(/domain/metadata/elvis:policy/@weight)");
                char *x = xpath_string(ctx, "string(/domain/metadata/elvis:policy/@exitless)");
                if (w) {
                        char *end;
                        unsigned long v = strtoul(w, &end, 10);
                        if (*end || v < ELVIS_WEIGHT_MIN || v > ELVIS_WEIGHT_MAX) {
                                snprintf(err, errlen, "domain metadata: weight '%.16s' is not between %d and %d", w,
                                         ELVIS_WEIGHT_MIN, ELVIS_WEIGHT_MAX);
                                free(w);
                                free(x);
                                goto out;
                        }
                        info.policy.weight = (unsigned)v;
                        free(w);
                }
                if (x) {
                        int e = elvis_exitless_parse(x);
                        if (e < 0) {
                                snprintf(err, errlen, "domain metadata: exitless '%.16s' is not auto, always or never", x);
                                free(x);
                                goto out;
                        }
                        info.policy.exitless = (enum elvis_exitless)e;
                        free(x);
                }
        }
        /* a running domain's XML names the uid:gid QEMU runs as: "+64055:+994" */
        if ((s = xpath_string(ctx, "string(/domain/seclabel[@model='dac']/label)")) && *s) {
                if (dac_label(s, &info) < 0) {
                        snprintf(err, errlen, "domain XML: DAC label '%.32s' is not uid:gid", s);
                        free(s);
                        goto out;
                }
        }
        free(s);
        s = NULL;
        ifs = xmlXPathEvalExpression((const xmlChar *)"/domain/devices/interface[@type='vhostuser']/source/@path", ctx);
        if (ifs && ifs->nodesetval) {
                for (int i = 0; i < ifs->nodesetval->nodeNr; i++) {
                        xmlChar *path = xmlNodeGetContent(ifs->nodesetval->nodeTab[i]);
                        int c = 0;
                        if (info.nifaces == ELVIS_MAX_DEVICES) {
                                snprintf(err, errlen, "domain XML: more than %d vhost-user interfaces", ELVIS_MAX_DEVICES);
                                c = -EINVAL;
                        } else if (!path || path[0] != '/') {
                                snprintf(err, errlen, "domain XML: a vhost-user source path is not absolute");
                                c = -EINVAL;
                        } else {
                                c = copy(info.sockets[info.nifaces++], ELVIS_PATH_MAX, (const char *)path,
                                         "vhost-user socket path", err, errlen);
                        }
                        xmlFree(path);
                        if (c < 0)
                                goto out;
                }
        }
        r = parse_disks(ctx, &info, err, errlen);
        if (r < 0)
                goto out;
        *ret = info;
        r = 0;
out:
        xmlXPathFreeObject(ifs);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        return r;
}
