/* What ELVIS needs from a libvirt domain XML: identity, vCPU count, vhost-user
 * interfaces and the ELVIS policy in <metadata>. Pure parsing, no libvirt calls, so the
 * qemu hook can hand the XML over while libvirtd is busy starting the domain. */
#pragma once
#include <elvis/model.h>

#include <stddef.h>

#define ELVIS_XMLNS "https://elvis.dev/xmlns/1"

struct elvis_domain_info {
        char name[ELVIS_DOMAIN_MAX];
        char uuid[40];
        unsigned vcpus;
        bool has_policy;                /* an <elvis:policy> element in <metadata> */
        struct elvis_vm_policy policy;  /* valid when has_policy */
        bool vmm_uid_set, vmm_gid_set;  /* the DAC label QEMU runs with (<seclabel model='dac'>) */
        uint32_t vmm_uid, vmm_gid;
        unsigned nifaces;
        char sockets[ELVIS_MAX_DEVICES][ELVIS_PATH_MAX];        /* vhostuser source paths */
};

/* A valid ELVIS VM name derived from a domain name (letters first, odd characters '-'). */
void elvis_domxml_vm_name(const char *domain, char *out, size_t size);

/* 0, or -EINVAL with a message. Bad policy attributes are errors, not defaults. */
int elvis_domxml_parse(const char *xml, size_t len, struct elvis_domain_info *ret, char *err, size_t errlen);
