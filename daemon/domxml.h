/* What ELVIS needs from a libvirt domain XML: identity, vCPU count and pins, vhost-user
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
        /* vhost-user-blk disks: a <disk type='vhostuser'> is ELVIS's when an <elvis:disk>
         * inside <elvis:policy> names its target (libvirt's disk has no image to name); other
         * vhostuser disks are someone else's and left out. nifaces + ndisks is at most
         * ELVIS_MAX_DEVICES. */
        unsigned ndisks;
        struct elvis_domain_disk {
                char socket[ELVIS_PATH_MAX];    /* <source path> */
                char target[16];                /* <target dev> */
                char id[ELVIS_DEVICE_ID_MAX];   /* metadata id, or empty */
                enum elvis_backend backend;     /* file or null */
                char path[ELVIS_IMAGE_PATH_MAX];        /* file: the image */
                uint64_t size_bytes;            /* null: the size */
                bool readonly;
                unsigned queues;
        } disks[ELVIS_MAX_DEVICES];
        /* The pins the XML states (an orchestrator's, under vcpu-pinning respect): the union
         * of <cputune><vcpupin cpuset>, and <vcpu cpuset>, which applies to every vCPU
         * without a vcpupin of its own (when some vCPU lacks one, vcpu_cpuset_applies). */
        elvis_cpuset vcpupin, vcpu_cpuset;
        bool vcpu_cpuset_applies;
};

/* How an operator opts a domain in, for messages that say why one was left alone. */
#define ELVIS_DOMXML_OPT_IN                                                                                  \
        "add <elvis:policy xmlns:elvis='" ELVIS_XMLNS "'/> to its <metadata>, or its name to adopt-domains"

/* Whether ELVIS may take a domain it was not explicitly asked for (libvirt events, the
 * qemu hook): it carries an <elvis:policy>, or its name or UUID matches one of the
 * comma-separated shell globs of allow (fnmatch; spaces around commas ignored; NULL or
 * empty: metadata only). */
bool elvis_domxml_opted_in(const struct elvis_domain_info *info, const char *allow);
/* 0 when every item of an adopt-domains list is a usable glob, else -EINVAL with a message. */
int elvis_domxml_globs_check(const char *allow, char *err, size_t errlen);

/* A valid ELVIS VM name derived from a domain name (letters first, odd characters '-'). */
void elvis_domxml_vm_name(const char *domain, char *out, size_t size);

/* The devices a domain brings: its vhost-user interfaces (net0, net1, ...) then its
 * ELVIS disks (their metadata id, or blk<index>); returns how many were written. */
unsigned elvis_domxml_devices(const struct elvis_domain_info *info, struct elvis_device devs[ELVIS_MAX_DEVICES]);

/* 0, or -EINVAL with a message. Bad policy attributes are errors, not defaults; so are
 * bad <elvis:disk> attributes and an <elvis:disk> whose target is no vhostuser disk. */
int elvis_domxml_parse(const char *xml, size_t len, struct elvis_domain_info *ret, char *err, size_t errlen);
