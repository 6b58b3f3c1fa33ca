/* elvis-vtest: runs inside a QEMU test guest and plays both VMM and virtio-net guest
 * (like the kernel's tools/virtio/virtio_test) against /dev/vhost-net, the stock
 * oracle, and /dev/elvis-net: memory, split rings and a tap per device. Each scenario
 * produces a transcript (frames seen on the tap, guest receive buffers, notification
 * decisions); the elvis transcript must equal the vhost one byte for byte.
 * Scenarios that only make sense for elvis.ko (sidecores, moves) check invariants.
 * With --user-plane=SOCKET the same transcript scenarios replay against the user-space
 * data plane instead: each device is a VM that this build's elvis-manager (its REST API on
 * SOCKET) creates with a tap back end, driven over its vhost-user socket (see "the
 * vhost-user transport" below), and its transcript must equal vhost-net's.
 * Usage: elvis-vtest [--soak-seconds=N] [scenario...]  (default: all but bench)
 *        elvis-vtest --user-plane=SOCKET [--exitless=auto|always|never] [scenario...]
 *                     (default: every transcript scenario: tx rx offload qemu restart notify hostile)
 *        elvis-vtest --list   (the devices and sidecores /dev/elvis lists, one per line)
 *        elvis-vtest --vmm TAP SECONDS   (a VMM sending traffic for the daemon test)
 * Scenarios: abi tx rx offload qemu restart notify hostile log poll busyloop busyloop-bound auto ndev
 * weights move move-rx churn leak kill fault-tx fault-rx fault-used fault-ioctl soak bench.
 * Exit status 0 only if all selected scenarios pass, 2 on bad arguments. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/userfaultfd.h>
#include <linux/vhost.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/elvis.h"

#define VHOST_PATH "/dev/vhost-net"
#define ELVIS_PATH "/dev/elvis-net"
#define USER_PATH "vhost-user"  /* the user data plane: a VM of elvis-manager, see user_plane */
#define NUM 256
#define BUFSZ 2048
#define MEMSZ (4u << 20)
#define GPA_BASE 0x40000000ull
#define ETHERTYPE 0x88b5        /* IEEE local experimental: nothing in the stack answers it */
#define MAXFRAME 1514

static int failures;
static const char *scenario = "";

#define CHECK(cond, ...)                                                                                  \
	do {                                                                                              \
		if (!(cond)) {                                                                            \
			fail_at(__LINE__, #cond, __VA_ARGS__);                                           \
			return -1;                                                                        \
		}                                                                                         \
	} while (0)

/* The same for scenarios with a cleanup label "out" (r stays -1). */
#define CHECK_OUT(cond, ...)                                                                              \
	do {                                                                                              \
		if (!(cond)) {                                                                            \
			fail_at(__LINE__, #cond, __VA_ARGS__);                                           \
			goto out;                                                                         \
		}                                                                                         \
	} while (0)

static void fail_at(int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL [%s] line %d (%s): ", scenario, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (errno %s)\n", strerror(errno));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- the guest side of one split ring ---- */
struct gring {
	struct vring vr;
	uint64_t ring_off;      /* offset of the ring in the device memory */
	uint64_t buf_off;       /* NUM buffers of BUFSZ */
	uint16_t avail_idx, last_used;
	bool event_idx;
};

struct dev {
	const char *path;
	int fd, tap_fd, cap_fd, tx_fd, ifindex;
	char tap[IFNAMSIZ];
	int kick[2], call[2], err[2];
	uint8_t *mem;
	uint64_t features;
	struct gring rx, tx;    /* vq 0, vq 1 */
	uint32_t id;            /* elvis device id */
	unsigned kicks_sent;
	int hl;                 /* virtio-net header length: 12 with VERSION_1 or MRG_RXBUF, else 10 */
	/* vhost-user (USER_PATH): fd is the connection, the VM is elvis-manager's */
	int mem_fd;             /* the memfd behind mem, passed in SET_MEM_TABLE */
	char vm[32];            /* the VM to remove when the device closes */
	char sock[108];         /* its vhost-user socket */
	bool reply_ack;         /* VHOST_USER_PROTOCOL_F_REPLY_ACK negotiated */
};

static uint64_t off_gpa(uint64_t off)
{
	return GPA_BASE + off;
}

static void ring_setup(struct dev *d, struct gring *g, uint64_t ring_off, uint64_t buf_off)
{
	g->ring_off = ring_off;
	g->buf_off = buf_off;
	vring_init(&g->vr, NUM, d->mem + ring_off, 4096);
	g->avail_idx = g->last_used = 0;
	g->event_idx = d->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	/* used_event far away by default is not what a guest does: ask for every interrupt */
	vring_used_event(&g->vr) = 0;
}

/* ---- the vhost-user transport: the user data plane, through elvis-manager ----
 * Each device is a VM the daemon creates through its REST API (POST /v1/vms, one tap-backed
 * device; DELETE when the device closes), with a fresh tap name so that a tap the previous
 * VM's removal is still tearing down is never in the way. The scenario then talks to the
 * VM's vhost-user socket as QEMU does, and vioctl() below turns each vhost-net ioctl into
 * its vhost-user message, so every scenario runs the same steps on both transports:
 * SET_OWNER, GET/SET_FEATURES (plus VHOST_USER_F_PROTOCOL_FEATURES), SET_MEM_TABLE (the
 * memory is a memfd passed with SCM_RIGHTS, the region offset is its position in mem),
 * SET_VRING_NUM/BASE/ADDR, GET_VRING_BASE, SET_VRING_KICK/CALL/ERR. vhost-user has no
 * back-end ioctl: VHOST_NET_SET_BACKEND with a tap becomes SET_VRING_ENABLE 1 and
 * without one SET_VRING_ENABLE 0, vhost-user's switch for a ring's traffic (QEMU enables
 * a vhost-user device's rings once it started it). REPLY_ACK is negotiated and asked for
 * on every request that has no answer of its own, so a request returns once the daemon
 * applied it and a refusal fails the step that made it, like a failed ioctl. */
static const char *user_api;            /* --user-plane=SOCKET: elvis-manager's API */
static const char *user_exitless;       /* --exitless=MODE for the VMs created, NULL: the default */
static unsigned user_serial;            /* VM and tap names are never reused */

enum {
	VU_GET_FEATURES = 1, VU_SET_FEATURES = 2, VU_SET_OWNER = 3, VU_SET_MEM_TABLE = 5, VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9, VU_SET_VRING_BASE = 10, VU_GET_VRING_BASE = 11, VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13, VU_SET_VRING_ERR = 14, VU_GET_PROTOCOL_FEATURES = 15, VU_SET_PROTOCOL_FEATURES = 16,
	VU_SET_VRING_ENABLE = 18,
};
#define VU_F_PROTOCOL_FEATURES (1ull << 30)
#define VU_PF_REPLY_ACK (1ull << 3)
#define VU_FLAG_VERSION 0x1
#define VU_FLAG_REPLY 0x4
#define VU_FLAG_NEED_REPLY 0x8
#define VU_VRING_NOFD 0x100
#define VU_HDR 12
#define VU_TIMEOUT_MS 10000

static bool is_user(const struct dev *d)
{
	return d->path && strcmp(d->path, USER_PATH) == 0;
}

/* One HTTP/1.1 exchange on the API socket. Returns the status (body in resp, NUL
 * terminated) or -1. */
static int api(const char *method, const char *target, const char *body, char *resp, size_t cap)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char req[2048];
	size_t have = 0;
	uint64_t end = now_ms() + 30000;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), n, status = -1;
	char *p;

	resp[0] = 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", user_api);
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     method, target, body ? strlen(body) : 0, body ? body : "");
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || n >= (int)sizeof(req) ||
	    write(fd, req, (size_t)n) != n) {
		fprintf(stderr, "  api: %s %s: cannot reach %s: %s\n", method, target, user_api, strerror(errno));
		goto out;
	}
	while (have + 1 < cap) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t k;

		if (now_ms() > end || poll(&pf, 1, 1000) < 0) {
			fprintf(stderr, "  api: %s %s: no answer within 30 s\n", method, target);
			goto out;
		}
		if (!pf.revents)
			continue;
		k = read(fd, resp + have, cap - 1 - have);
		if (k < 0)
			goto out;
		if (k == 0)
			break;
		have += (size_t)k;
	}
	resp[have] = 0;
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
		fprintf(stderr, "  api: %s %s: not an HTTP answer\n", method, target);
		status = -1;
		goto out;
	}
	p = strstr(resp, "\r\n\r\n");
	memmove(resp, p ? p + 4 : resp + have, strlen(p ? p + 4 : resp + have) + 1);
out:
	if (fd >= 0)
		close(fd);
	return status;
}

/* The string value of the first "key": "value" in a JSON text, or NULL. */
static const char *json_str(const char *json, const char *key, char *ret, size_t cap)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	p = strstr(json, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= cap)
		return NULL;
	memcpy(ret, p, (size_t)(e - p));
	ret[e - p] = 0;
	return ret;
}

/* A VM with one tap-backed device; its name, tap and vhost-user socket go into d. */
static int user_vm_add(struct dev *d, const char *tapname)
{
	char body[512], resp[8192], policy[64] = "";
	unsigned n = ++user_serial;
	bool vanilla = user_exitless && strcmp(user_exitless, "never") == 0;
	const char *sc;
	int st;

	snprintf(d->vm, sizeof(d->vm), "vtest%u", n);
	snprintf(d->tap, sizeof(d->tap), "%.8s-u%u", tapname, n % 100000);
	if (user_exitless)
		snprintf(policy, sizeof(policy), "\"policy\": { \"exitless\": \"%s\" }, ", user_exitless);
	snprintf(body, sizeof(body),
		 "{ \"name\": \"%s\", \"vcpus\": 0, %s\"devices\": [ { \"backend\": \"tap\", \"tap\": \"%s\" } ] }", d->vm,
		 policy, d->tap);
	st = api("POST", "/v1/vms", body, resp, sizeof(resp));
	if (st != 201) {
		fprintf(stderr, "  api: adding VM %s (tap %s) answered %d: %s\n", d->vm, d->tap, st, resp);
		d->vm[0] = 0;
		return -1;
	}
	if (!json_str(resp, "socket", d->sock, sizeof(d->sock))) {
		fprintf(stderr, "  api: VM %s has no vhost-user socket: %s\n", d->vm, resp);
		return -1;
	}
	/* the mode asked for is the one that serves it: a sidecore, unless vanilla */
	sc = strstr(resp, "\"sidecores\": [");
	if (sc) {
		sc += strlen("\"sidecores\": [");
		sc += strspn(sc, " \n");
	}
	if (!sc || (strncmp(sc, "null", 4) == 0) != vanilla) {
		fprintf(stderr, "  api: VM %s (exitless %s) is served %s: %s\n", d->vm,
			user_exitless ? user_exitless : "default", vanilla ? "by a sidecore" : "by no sidecore", resp);
		return -1;
	}
	return 0;
}

static void user_vm_del(struct dev *d)
{
	char target[64], resp[4096];
	int st;

	if (!d->vm[0])
		return;
	snprintf(target, sizeof(target), "/v1/vms/%s", d->vm);
	st = api("DELETE", target, NULL, resp, sizeof(resp));
	if (st != 204 && st != 200) {
		/* the next scenario must not inherit it: the run fails here */
		fprintf(stderr, "FAIL [%s]: removing VM %s answered %d: %s\n", scenario, d->vm, st, resp);
		failures++;
	}
	d->vm[0] = 0;
}

/* The VM's exitless mode changes live (PATCH), as set_exitless() does on /dev/elvis. */
static int user_set_exitless(struct dev *d, const char *mode)
{
	char target[64], body[96], resp[8192];
	int st;

	snprintf(target, sizeof(target), "/v1/vms/%s", d->vm);
	snprintf(body, sizeof(body), "{ \"policy\": { \"exitless\": \"%s\" } }", mode);
	st = api("PATCH", target, body, resp, sizeof(resp));
	if (st != 200) {
		fprintf(stderr, "  api: exitless=%s for VM %s answered %d: %s\n", mode, d->vm, st, resp);
		return -1;
	}
	return 0;
}

/* The queue row of d's VM in /v1/stats: its state and error count. */
static int user_queue_state(const struct dev *d, char *state, size_t cap, unsigned *ret_errors)
{
	char resp[65536], pat[64];
	const char *p, *e;

	if (api("GET", "/v1/stats", NULL, resp, sizeof(resp)) != 200)
		return -1;
	snprintf(pat, sizeof(pat), "\"vm_name\": \"%s\"", d->vm);
	p = strstr(resp, pat);
	if (!p || !json_str(p, "state", state, cap) || !(e = strstr(p, "\"errors\": ")))
		return -1;
	*ret_errors = (unsigned)strtoul(e + 10, NULL, 10);
	return 0;
}

static int vu_send(struct dev *d, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
		   unsigned nfds)
{
	uint8_t buf[VU_HDR + 512];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} cbuf = { { 0 } };
	struct iovec iov = { buf, VU_HDR + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (size > sizeof(buf) - VU_HDR || nfds > 8) {
		errno = EMSGSIZE;
		return -1;
	}
	flags |= VU_FLAG_VERSION;
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	memcpy(buf + VU_HDR, payload, size);
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(d->fd, &mh, MSG_NOSIGNAL) == (ssize_t)(VU_HDR + size) ? 0 : -1;
}

static int read_full(int fd, void *p, size_t n, uint64_t end)
{
	size_t have = 0;

	while (have < n) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t k;

		if (now_ms() > end) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pf, 1, 200) <= 0)
			continue;
		k = read(fd, (uint8_t *)p + have, n - have);
		if (k <= 0) {
			if (k == 0)
				errno = ECONNRESET;
			return -1;
		}
		have += (size_t)k;
	}
	return 0;
}

/* The answer to request req: a payload of exactly size bytes. */
static int vu_recv(struct dev *d, uint32_t req, void *ret, uint32_t size)
{
	uint32_t h[3];
	uint64_t end = now_ms() + VU_TIMEOUT_MS;

	if (read_full(d->fd, h, sizeof(h), end) < 0)
		goto bad;
	if (h[0] != req || !(h[1] & VU_FLAG_REPLY) || h[2] != size) {
		fprintf(stderr, "  vhost-user: answer to request %u is request %u flags %#x size %u (want size %u)\n",
			req, h[0], h[1], h[2], size);
		errno = EPROTO;
		return -1;
	}
	if (read_full(d->fd, ret, size, end) < 0)
		goto bad;
	return 0;
bad:
	fprintf(stderr, "  vhost-user: no answer to request %u from %s: %s\n", req, d->sock, strerror(errno));
	return -1;
}

/* A request without an answer of its own: with REPLY_ACK, 0 once applied. */
static int vu_set(struct dev *d, uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
	uint64_t ack;

	if (vu_send(d, req, d->reply_ack ? VU_FLAG_NEED_REPLY : 0, payload, size, fds, nfds) < 0)
		return -1;
	if (!d->reply_ack)
		return 0;
	if (vu_recv(d, req, &ack, 8) < 0)
		return -1;
	if (ack) {
		fprintf(stderr, "  vhost-user: request %u refused by elvis-manager (ack %llu; its log says why)\n", req,
			(unsigned long long)ack);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int vu_get(struct dev *d, uint32_t req, const void *payload, uint32_t size, void *ret, uint32_t ret_size)
{
	return vu_send(d, req, 0, payload, size, NULL, 0) < 0 ? -1 : vu_recv(d, req, ret, ret_size);
}

/* Creates the VM, connects to its socket and negotiates the protocol features (REPLY_ACK),
 * as QEMU does before SET_OWNER. */
static int user_connect(struct dev *d, const char *tapname)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t feat, pf;

	if (user_vm_add(d, tapname) < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->sock);
	d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->fd < 0 || connect(d->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "  vhost-user: cannot connect to %s: %s\n", d->sock, strerror(errno));
		return -1;
	}
	if (vu_get(d, VU_GET_FEATURES, NULL, 0, &feat, 8) < 0)
		return -1;
	if (!(feat & VU_F_PROTOCOL_FEATURES)) {
		fprintf(stderr, "  vhost-user: %s does not offer protocol features (%#llx)\n", d->sock,
			(unsigned long long)feat);
		return -1;
	}
	if (vu_get(d, VU_GET_PROTOCOL_FEATURES, NULL, 0, &pf, 8) < 0)
		return -1;
	if (!(pf & VU_PF_REPLY_ACK)) {
		fprintf(stderr, "  vhost-user: %s does not offer REPLY_ACK (%#llx)\n", d->sock, (unsigned long long)pf);
		return -1;
	}
	pf = VU_PF_REPLY_ACK;
	if (vu_send(d, VU_SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0) < 0)
		return -1;
	d->reply_ack = true;
	return 0;
}

/* A vhost-net ioctl as the vhost-user message QEMU sends for it. */
static int vu_ioctl(struct dev *d, unsigned long cmd, void *arg)
{
	switch (cmd) {
	case VHOST_SET_OWNER:
		return vu_set(d, VU_SET_OWNER, NULL, 0, NULL, 0);
	case VHOST_GET_FEATURES:
		return vu_get(d, VU_GET_FEATURES, NULL, 0, arg, 8);
	case VHOST_SET_FEATURES: {
		uint64_t f = *(uint64_t *)arg | VU_F_PROTOCOL_FEATURES;
		return vu_set(d, VU_SET_FEATURES, &f, 8, NULL, 0);
	}
	case VHOST_SET_MEM_TABLE: {
		const struct vhost_memory *m = arg;
		uint8_t p[8 + 8 * 32] = { 0 };
		int fds[8];

		if (m->nregions > 8) {
			errno = E2BIG;
			return -1;
		}
		memcpy(p, &m->nregions, 4);
		for (uint32_t i = 0; i < m->nregions; i++) {
			const struct vhost_memory_region *r = &m->regions[i];
			uint64_t reg[4] = { r->guest_phys_addr, r->memory_size, r->userspace_addr,
					    r->userspace_addr - (uintptr_t)d->mem };

			/* every region lies in mem, the one memfd there is */
			if (r->userspace_addr < (uintptr_t)d->mem ||
			    r->userspace_addr + r->memory_size > (uintptr_t)d->mem + MEMSZ) {
				errno = EINVAL;
				return -1;
			}
			memcpy(p + 8 + 32 * i, reg, sizeof(reg));
			fds[i] = d->mem_fd;
		}
		return vu_set(d, VU_SET_MEM_TABLE, p, 8 + 32 * m->nregions, fds, m->nregions);
	}
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_BASE:
		return vu_set(d, cmd == VHOST_SET_VRING_NUM ? VU_SET_VRING_NUM : VU_SET_VRING_BASE, arg,
			      sizeof(struct vhost_vring_state), NULL, 0);
	case VHOST_GET_VRING_BASE:
		return vu_get(d, VU_GET_VRING_BASE, arg, sizeof(struct vhost_vring_state), arg,
			      sizeof(struct vhost_vring_state));
	case VHOST_SET_VRING_ADDR:
		/* the same 40 bytes: index, flags, desc, used, avail, log */
		return vu_set(d, VU_SET_VRING_ADDR, arg, sizeof(struct vhost_vring_addr), NULL, 0);
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR: {
		const struct vhost_vring_file *f = arg;
		uint64_t v = f->index | (f->fd < 0 ? VU_VRING_NOFD : 0);
		uint32_t req = cmd == VHOST_SET_VRING_KICK ? VU_SET_VRING_KICK :
			       cmd == VHOST_SET_VRING_CALL ? VU_SET_VRING_CALL : VU_SET_VRING_ERR;

		return vu_set(d, req, &v, 8, &f->fd, f->fd < 0 ? 0 : 1);
	}
	default:
		break;
	}
	errno = ENOTTY;
	return -1;
}

static int vioctl(struct dev *d, unsigned long cmd, void *arg)
{
	return is_user(d) ? vu_ioctl(d, cmd, arg) : ioctl(d->fd, cmd, arg);
}

/* Ring i gets its back end (on) or loses it: VHOST_NET_SET_BACKEND with the tap or -1;
 * over vhost-user, whose back end is the daemon's own tap, SET_VRING_ENABLE 1 or 0. */
static int dev_backend(struct dev *d, unsigned i, bool on)
{
	struct vhost_vring_file f = { i, on ? d->tap_fd : -1 };
	struct vhost_vring_state s = { i, on };

	if (is_user(d))
		return vu_set(d, VU_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0);
	return vioctl(d, VHOST_NET_SET_BACKEND, &f);
}

/* Brings a tap up and opens the capture and send sockets on it: capture what the tap
 * delivers to the host (guest TX), send what the host transmits on it (guest RX). */
static int tap_attach(struct dev *d, const char *name)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rcv = 4 << 20;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0 || ioctl(s, SIOCGIFINDEX, &ifr) < 0)
		return -1;
	close(s);
	d->ifindex = ifr.ifr_ifindex;
	/* protocol 0 until bound: an ETH_P_ALL socket would queue every interface's frames
	 * (another device's traffic) between socket() and bind() */
	d->cap_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	d->tx_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (d->cap_fd < 0 || d->tx_fd < 0)
		return -1;
	setsockopt(d->cap_fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
	sll.sll_ifindex = d->ifindex;
	if (bind(d->cap_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
	    bind(d->tx_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return -1;
	return 0;
}

/* Creates a tap with a virtio-net header, as QEMU does, and attaches to it. */
static int tap_open(struct dev *d, const char *name)
{
	struct ifreq ifr = { 0 };
	int hdr = d->hl;

	d->tap_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (d->tap_fd < 0)
		return -1;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(d->tap_fd, TUNSETIFF, &ifr) < 0 || ioctl(d->tap_fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return -1;
	snprintf(d->tap, IFNAMSIZ, "%s", ifr.ifr_name);
	return tap_attach(d, d->tap);
}

/* Opens and configures a device the way QEMU does. want: feature bits to ack. */
static int dev_open(struct dev *d, const char *path, const char *tapname, uint64_t want)
{
	struct vhost_memory *m = calloc(1, sizeof(*m) + sizeof(m->regions[0]));
	uint64_t have, zero = 0;

	memset(d, 0, sizeof(*d));
	d->path = path;
	if (is_user(d)) {
		d->tap_fd = -1;         /* the daemon's */
		CHECK(user_connect(d, tapname) == 0, "vhost-user device for tap %s", tapname);
	} else {
		d->fd = open(path, O_RDWR | O_CLOEXEC);
		CHECK(d->fd >= 0, "open %s", path);
	}
	CHECK(vioctl(d, VHOST_SET_OWNER, NULL) == 0, "SET_OWNER");
	CHECK(vioctl(d, VHOST_GET_FEATURES, &have) == 0, "GET_FEATURES");
	CHECK((have & want) == want, "%s lacks features %#llx", path, (unsigned long long)(want & ~have));
	d->features = want;
	d->hl = want & ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
	CHECK(vioctl(d, VHOST_SET_FEATURES, &d->features) == 0, "SET_FEATURES");
	if (strcmp(path, ELVIS_PATH) == 0) {
		CHECK(vioctl(d, VHOST_SET_BACKEND_FEATURES, &zero) == 0, "SET_BACKEND_FEATURES");
		CHECK(ioctl(d->fd, ELVIS_NET_IOC_GET_ID, &d->id) == 0 && d->id, "GET_ID");
	}
	if (is_user(d)) {
		/* another process maps it: a memfd, as QEMU's memory-backend-memfd */
		d->mem_fd = memfd_create("elvis-vtest-guest", MFD_CLOEXEC);
		CHECK(d->mem_fd >= 0 && ftruncate(d->mem_fd, MEMSZ) == 0, "memfd");
		d->mem = mmap(NULL, MEMSZ, PROT_READ | PROT_WRITE, MAP_SHARED, d->mem_fd, 0);
	} else {
		d->mem = mmap(NULL, MEMSZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	}
	CHECK(d->mem != MAP_FAILED, "mmap");
	m->nregions = 1;
	m->regions[0].guest_phys_addr = GPA_BASE;
	m->regions[0].memory_size = MEMSZ;
	m->regions[0].userspace_addr = (uintptr_t)d->mem;
	CHECK(vioctl(d, VHOST_SET_MEM_TABLE, m) == 0, "SET_MEM_TABLE");
	free(m);
	ring_setup(d, &d->rx, 0, 64 << 10);
	ring_setup(d, &d->tx, 32 << 10, (64 << 10) + NUM * BUFSZ);
	for (unsigned i = 0; i < 2; i++) {
		struct gring *g = i ? &d->tx : &d->rx;
		struct vhost_vring_state s = { i, NUM };
		struct vhost_vring_addr a = { .index = i };
		struct vhost_vring_file f = { .index = i };

		CHECK(vioctl(d, VHOST_SET_VRING_NUM, &s) == 0, "SET_VRING_NUM");
		s.num = 0;
		CHECK(vioctl(d, VHOST_SET_VRING_BASE, &s) == 0, "SET_VRING_BASE");
		a.desc_user_addr = (uintptr_t)g->vr.desc;
		a.avail_user_addr = (uintptr_t)g->vr.avail;
		a.used_user_addr = (uintptr_t)g->vr.used;
		CHECK(vioctl(d, VHOST_SET_VRING_ADDR, &a) == 0, "SET_VRING_ADDR");
		d->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->err[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		f.fd = d->kick[i];
		CHECK(vioctl(d, VHOST_SET_VRING_KICK, &f) == 0, "SET_VRING_KICK");
		f.fd = d->call[i];
		CHECK(vioctl(d, VHOST_SET_VRING_CALL, &f) == 0, "SET_VRING_CALL");
		f.fd = d->err[i];
		CHECK(vioctl(d, VHOST_SET_VRING_ERR, &f) == 0, "SET_VRING_ERR");
	}
	if (is_user(d))
		CHECK(tap_attach(d, d->tap) == 0, "the daemon's tap %s", d->tap);
	else
		CHECK(tap_open(d, tapname) == 0, "tap %s", tapname);
	for (unsigned i = 0; i < 2; i++)
		CHECK(dev_backend(d, i, true) == 0, "SET_BACKEND");
	return 0;
}

static void dev_close(struct dev *d)
{
	if (d->fd > 0)
		close(d->fd);
	/* after the connection: the VM goes with its tap */
	user_vm_del(d);
	if (d->mem_fd > 0)
		close(d->mem_fd);
	for (int i = 0; i < 2; i++) {
		if (d->kick[i] > 0)
			close(d->kick[i]);
		if (d->call[i] > 0)
			close(d->call[i]);
		if (d->err[i] > 0)
			close(d->err[i]);
	}
	if (d->tap_fd > 0)
		close(d->tap_fd);
	if (d->cap_fd > 0)
		close(d->cap_fd);
	if (d->tx_fd > 0)
		close(d->tx_fd);
	if (d->mem && d->mem != MAP_FAILED)
		munmap(d->mem, MEMSZ);
	memset(d, 0, sizeof(*d));
}

static uint64_t efd_read(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* Guest publishes new avail entries and kicks when the device wants it. */
static void guest_publish(struct dev *d, struct gring *g, unsigned vq, uint16_t new_idx)
{
	uint16_t old = g->avail_idx;
	bool kick;

	__atomic_thread_fence(__ATOMIC_RELEASE);
	g->vr.avail->idx = new_idx;
	g->avail_idx = new_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (g->event_idx)
		kick = vring_need_event(vring_avail_event(&g->vr), new_idx, old);
	else
		kick = !(g->vr.used->flags & VRING_USED_F_NO_NOTIFY);
	if (kick) {
		eventfd_write(d->kick[vq], 1);
		d->kicks_sent++;
	}
}

/* Waits until the device used everything the guest made available. */
static int wait_used(struct gring *g, uint16_t idx, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while ((uint16_t)(__atomic_load_n(&g->vr.used->idx, __ATOMIC_ACQUIRE) - idx) > 0x8000 ||
	       __atomic_load_n(&g->vr.used->idx, __ATOMIC_ACQUIRE) != idx) {
		if (now_ms() > end)
			return -1;
		usleep(200);
	}
	return 0;
}

/* A test frame: broadcast to a local ethertype, tagged with (flow, seq), sized len. */
static size_t make_frame(uint8_t *p, size_t len, uint32_t flow, uint32_t seq)
{
	memset(p, 0xff, 6);
	memcpy(p + 6, "\x52\x54\x00\xe1\x51\x01", 6);
	p[12] = ETHERTYPE >> 8;
	p[13] = ETHERTYPE & 0xff;
	memcpy(p + 14, &flow, 4);
	memcpy(p + 18, &seq, 4);
	for (size_t i = 22; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seq);
	return len;
}

/* Queues one TX frame in slot (avail_idx % NUM): layout 0 one buffer, 1 header and
 * frame in two chained descriptors, 2 the same through an indirect table. */
static void tx_add(struct dev *d, const uint8_t *frame, size_t len, const struct virtio_net_hdr_v1 *hdr,
		   int layout)
{
	struct gring *g = &d->tx;
	uint16_t slot = g->avail_idx % NUM;
	uint64_t buf = g->buf_off + (uint64_t)slot * BUFSZ;
	struct vring_desc *desc = &g->vr.desc[slot];
	struct virtio_net_hdr_v1 h = { 0 };

	if (hdr)
		h = *hdr;
	memcpy(d->mem + buf, &h, d->hl);
	memcpy(d->mem + buf + 64, frame, len);
	if (layout == 0) {
		memmove(d->mem + buf + d->hl, d->mem + buf + 64, len);
		*desc = (struct vring_desc){ off_gpa(buf), (uint32_t)(d->hl + len), 0, 0 };
	} else if (layout == 1) {
		/* two descriptors: this slot and slot + NUM/2 as its tail */
		uint16_t tail = (uint16_t)((slot + NUM / 2) % NUM);
		*desc = (struct vring_desc){ off_gpa(buf), (uint32_t)d->hl, VRING_DESC_F_NEXT, tail };
		g->vr.desc[tail] = (struct vring_desc){ off_gpa(buf + 64), (uint32_t)len, 0, 0 };
	} else {
		struct vring_desc *ind = (struct vring_desc *)(d->mem + buf + 1600);
		ind[0] = (struct vring_desc){ off_gpa(buf), (uint32_t)d->hl, VRING_DESC_F_NEXT, 1 };
		ind[1] = (struct vring_desc){ off_gpa(buf + 64), (uint32_t)len, 0, 0 };
		*desc = (struct vring_desc){ off_gpa(buf + 1600), 2 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0 };
	}
	g->vr.avail->ring[slot] = slot;
}

/* Posts n receive buffers of size sz. */
static void rx_post(struct dev *d, unsigned n, uint32_t sz)
{
	struct gring *g = &d->rx;
	uint16_t idx = g->avail_idx;

	for (unsigned i = 0; i < n; i++, idx++) {
		uint16_t slot = idx % NUM;
		uint64_t buf = g->buf_off + (uint64_t)slot * BUFSZ;

		memset(d->mem + buf, 0xa5, sz);
		g->vr.desc[slot] = (struct vring_desc){ off_gpa(buf), sz, VRING_DESC_F_WRITE, 0 };
		g->vr.avail->ring[slot] = slot;
	}
	guest_publish(d, g, 0, idx);
}

/* transcripts: bytes appended as they are observed, and notes saying what the bytes
 * from an offset on are (for the diff) */
struct tr_note {
	size_t off;
	char what[64];
};

struct tr {
	uint8_t *p;
	size_t len, cap;
	struct tr_note *notes;
	size_t nnotes;
	unsigned frames;        /* tap frames recorded so far */
};

static void __attribute__((format(printf, 2, 3))) tr_note(struct tr *t, const char *fmt, ...)
{
	va_list ap;

	if (!t)
		return;
	t->notes = realloc(t->notes, (t->nnotes + 1) * sizeof(*t->notes));
	t->notes[t->nnotes].off = t->len;
	va_start(ap, fmt);
	vsnprintf(t->notes[t->nnotes].what, sizeof(t->notes[0].what), fmt, ap);
	va_end(ap);
	t->nnotes++;
}

/* What the byte at off belongs to, and where in it. */
static const char *tr_what(const struct tr *t, size_t off, char *buf, size_t cap)
{
	const struct tr_note *n = NULL;

	for (size_t i = 0; i < t->nnotes && t->notes[i].off <= off; i++)
		n = &t->notes[i];
	if (off >= t->len)
		snprintf(buf, cap, "nothing (its transcript ends)");
	else if (n)
		snprintf(buf, cap, "%s, its byte %zu", n->what, off - n->off);
	else
		snprintf(buf, cap, "byte %zu", off);
	return buf;
}

static void tr_add(struct tr *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 4096;
		t->p = realloc(t->p, t->cap);
	}
	memcpy(t->p + t->len, p, n);
	t->len += n;
}

static void tr_u32(struct tr *t, uint32_t v)
{
	tr_add(t, &v, 4);
}

/* Reads the frames the tap handed to the host with our ethertype, waiting up to ms
 * for want of them. */
static int capture(struct dev *d, unsigned want, unsigned ms, struct tr *t, uint32_t *seqs)
{
	uint64_t end = now_ms() + ms;
	unsigned got = 0;
	uint8_t buf[65536];

	while (got < want) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(d->cap_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

		if (n < 0) {
			if (now_ms() >= end)
				break;
			usleep(500);
			continue;
		}
		/* ours: the test ethertype, or IPv4 (the offload frames; the tap has no
		 * address and IPv6 is off, so nothing else speaks IPv4 here) */
		if (from.sll_pkttype == PACKET_OUTGOING || n < 22 ||
		    !((buf[12] == ETHERTYPE >> 8 && buf[13] == (ETHERTYPE & 0xff)) || (buf[12] == 8 && buf[13] == 0)))
			continue;
		if (t) {
			tr_note(t, "tap frame %u (%zd bytes)", t->frames++, n);
			tr_u32(t, (uint32_t)n);
			tr_add(t, buf, (size_t)n);
		}
		if (seqs)
			memcpy(&seqs[got], buf + 18, 4);
		got++;
	}
	return (int)got;
}

static int host_send(struct dev *d, const uint8_t *frame, size_t len)
{
	return send(d->tx_fd, frame, len, 0) == (ssize_t)len ? 0 : -1;
}

static bool is_elvis(const struct dev *d)
{
	return strcmp(d->path, ELVIS_PATH) == 0;
}

/* ---- /dev/elvis helpers ---- */
static int ctl_fd = -1;

static int ctl(unsigned long cmd, void *arg)
{
	if (ctl_fd < 0)
		ctl_fd = open(ELVIS_CONTROL_DEVICE, O_RDWR | O_CLOEXEC);
	return ioctl(ctl_fd, cmd, arg);
}

static int sidecore_new(int cpu, uint32_t *ret)
{
	struct elvis_ioc_sidecore s = { .cpu = cpu };

	if (ctl(ELVIS_IOC_SIDECORE_CREATE, &s) < 0)
		return -errno;
	*ret = s.id;
	return 0;
}

static int sidecore_del(uint32_t id)
{
	struct elvis_ioc_sidecore s = { .id = id };

	return ctl(ELVIS_IOC_SIDECORE_DESTROY, &s) < 0 ? -errno : 0;
}

static int queue_move(uint32_t dev, uint32_t sc)
{
	struct elvis_ioc_queue_move m = { .device = dev, .queue = 0, .sidecore = sc };

	return ctl(ELVIS_IOC_QUEUE_MOVE, &m) < 0 ? -errno : 0;
}

static int set_exitless(uint32_t dev, uint32_t mode)
{
	struct elvis_ioc_poll p = { .scope = ELVIS_POLL_SCOPE_QUEUE, .device = dev, .mask = ELVIS_POLL_SET_EXITLESS,
				    .exitless = mode };

	return ctl(ELVIS_IOC_SET_POLL, &p) < 0 ? -errno : 0;
}

/* Fills *ret with the counters (or info) of device id; -ENOENT when absent. */
static int read_array(unsigned long cmd, void *elems, uint32_t elem_size, uint32_t cap, uint32_t *count)
{
	struct elvis_ioc_array a = { .ptr = (uintptr_t)elems, .elem_size = elem_size, .capacity = cap };

	if (ctl(cmd, &a) < 0)
		return -errno;
	*count = a.count;
	return 0;
}

/* The element of a list command whose first field (device or sidecore id) is id. */
static int find_elem(unsigned long cmd, size_t elem_size, uint32_t id, void *ret)
{
	static unsigned char buf[64 * 256];
	uint32_t n = 0, key;

	if (elem_size > 256 || read_array(cmd, buf, elem_size, 64, &n) < 0)
		return -1;
	for (uint32_t i = 0; i < n && i < 64; i++) {
		memcpy(&key, buf + i * elem_size, sizeof(key));
		if (key == id) {
			memcpy(ret, buf + i * elem_size, elem_size);
			return 0;
		}
	}
	return -ENOENT;
}

static int counters_of(uint32_t dev, struct elvis_queue_counters *ret)
{
	return find_elem(ELVIS_IOC_READ_COUNTERS, sizeof(*ret), dev, ret);
}

static int info_of(uint32_t dev, struct elvis_queue_info *ret)
{
	return find_elem(ELVIS_IOC_LIST_QUEUES, sizeof(*ret), dev, ret);
}

static int sidecore_info(uint32_t id, struct elvis_sidecore_info *ret)
{
	return find_elem(ELVIS_IOC_LIST_SIDECORES, sizeof(*ret), id, ret);
}

/* The sidecore serving device dev goes to sleep within a second: nothing left to poll
 * must not keep a CPU busy. */
static bool sidecore_sleeps(uint32_t dev)
{
	struct elvis_queue_info qi;
	struct elvis_sidecore_info si = { 0 };
	uint64_t end = now_ms() + 1500;

	if (info_of(dev, &qi) < 0 || !qi.sidecore)
		return false;
	while (now_ms() < end) {
		if (sidecore_info(qi.sidecore, &si) == 0 && (si.flags & ELVIS_SIDECORE_F_SLEEPING))
			return true;
		msleep(20);
	}
	fprintf(stderr, "  sidecore %u of device %u does not sleep (%u queues)\n", qi.sidecore, dev, si.nqueues);
	return false;
}

/* ---- scenarios: each runs against one device path and writes a transcript ---- */
#define F_V1 (1ull << VIRTIO_F_VERSION_1)
#define F_EVIDX (1ull << VIRTIO_RING_F_EVENT_IDX)
#define F_MRG (1ull << VIRTIO_NET_F_MRG_RXBUF)
#define F_IND (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define F_ALL (F_V1 | F_EVIDX | F_MRG | F_IND)
/* The offloads QEMU acks for a guest using them. vhost-net never sees these (QEMU sets the
 * tap's offloads itself); a vhost-user back end gets them and configures its tap. */
#define F_OFFLOADS                                                                                        \
	((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |    \
	 (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_HOST_TSO4))

static const size_t sizes[] = { 60, 64, 100, 128, 255, 256, 500, 1000, 1400, 1514 };

/* Guest TX, every descriptor layout and several sizes, plus a header asking for a
 * checksum offload: the tap must hand the host identical frames. */
static int sc_tx(const char *path, uint64_t feat, struct tr *t)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	unsigned n = 0;
	int r = -1;

	if (dev_open(&d, path, "vt0", feat) < 0)
		goto out;
	for (unsigned round = 0; round < 3; round++) {
		uint16_t start = d.tx.avail_idx;
		for (unsigned i = 0; i < 10; i++) {
			size_t len = make_frame(f, sizes[i], 1, n++);
			/* indirect tables only when negotiated: elvis rejects them otherwise
			 * (a guest bug vhost-net tolerates) */
			tx_add(&d, f, len, NULL, (int)((i + round) % (feat & F_IND ? 3 : 2)));
			d.tx.avail_idx++;
		}
		d.tx.avail_idx = start;
		guest_publish(&d, &d.tx, 1, (uint16_t)(start + 10));
		if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0) {
			fail_at(__LINE__, "wait_used", "%s: TX round %u not completed (used %u avail %u)", path, round,
				d.tx.vr.used->idx, d.tx.avail_idx);
			goto out;
		}
		for (uint16_t k = start; k != d.tx.avail_idx; k++) {
			struct vring_used_elem *u = &d.tx.vr.used->ring[k % NUM];
			tr_note(t, "TX used entry %u (id, len)", k);
			tr_u32(t, u->id);
			tr_u32(t, u->len);
		}
	}
	if (capture(&d, 30, 3000, t, NULL) != 30) {
		fail_at(__LINE__, "capture", "%s: fewer than 30 frames on the tap", path);
		goto out;
	}
	r = 0;
out:
	dev_close(&d);
	return r;
}

/* Host frames into guest receive buffers: small buffers force mergeable chains. */
static int sc_rx(const char *path, uint64_t feat, uint32_t bufsz, struct tr *t)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	int r = -1;
	uint16_t seen = 0;

	if (dev_open(&d, path, "vt0", feat) < 0)
		goto out;
	rx_post(&d, 200, bufsz);
	for (unsigned i = 0; i < 10; i++) {
		size_t len = make_frame(f, sizes[i], 2, i);
		if (host_send(&d, f, len) < 0) {
			fail_at(__LINE__, "send", "%s: cannot send on the tap", path);
			goto out;
		}
	}
	{
		uint64_t end = now_ms() + 3000;
		unsigned frames = 0;
		while (frames < 10 && now_ms() < end) {
			uint16_t used = __atomic_load_n(&d.rx.vr.used->idx, __ATOMIC_ACQUIRE);
			while (seen != used) {
				struct vring_used_elem *u = &d.rx.vr.used->ring[seen % NUM];
				uint8_t *b = d.mem + d.rx.buf_off + (uint64_t)(u->id % NUM) * BUFSZ;
				tr_note(t, "guest RX used entry %u (id, len, buffer)", seen);
				tr_u32(t, u->id);
				tr_u32(t, u->len);
				tr_add(t, b, u->len <= BUFSZ ? u->len : BUFSZ);
				/* the header's num_buffers (or the first buffer's) says where frames end */
				seen++;
			}
			frames = 0;
			for (uint16_t k = 0, i = 0; k != seen; i++) {
				struct vring_used_elem *u = &d.rx.vr.used->ring[k % NUM];
				uint8_t *b = d.mem + d.rx.buf_off + (uint64_t)(u->id % NUM) * BUFSZ;
				uint16_t nb = (feat & F_MRG) ? (uint16_t)(b[10] | b[11] << 8) : 1;
				if (!nb || (uint16_t)(seen - k) < nb)
					break;
				k = (uint16_t)(k + nb);
				frames++;
				(void)i;
			}
			usleep(500);
		}
		if (frames < 10) {
			fail_at(__LINE__, "frames", "%s: %u of 10 frames reached the guest", path, frames);
			goto out;
		}
	}
	r = 0;
out:
	dev_close(&d);
	return r;
}

static uint16_t ip_csum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* An Ethernet/IPv4/TCP frame with payload bytes, checksum left to the offload. */
static size_t make_tcp(uint8_t *p, size_t payload, uint32_t seq)
{
	size_t len = 14 + 20 + 20 + payload;

	memset(p, 0, 54);
	memcpy(p, "\x52\x54\x00\xe1\x51\x02", 6);
	memcpy(p + 6, "\x52\x54\x00\xe1\x51\x01", 6);
	p[12] = 8;
	p[14] = 0x45;
	p[16] = (uint8_t)((len - 14) >> 8);
	p[17] = (uint8_t)(len - 14);
	p[22] = 64;
	p[23] = 6;
	memcpy(p + 26, "\x0a\xfd\x00\x02\x0a\xfd\x00\x01", 8);
	{
		uint16_t c = ip_csum(p + 14, 20);
		p[24] = (uint8_t)(c >> 8);
		p[25] = (uint8_t)c;
	}
	p[34] = 0x30;
	p[35] = 0x39;
	p[36] = 0x00;
	p[37] = 0x50;
	memcpy(p + 38, &seq, 4);
	p[46] = 0x50;
	p[47] = 0x18;
	p[48] = 0xff;
	for (size_t i = 54; i < len; i++)
		p[i] = (uint8_t)(i + seq);
	return len;
}

/* The virtio-net header's offloads pass through: guest TX with checksum offload and
 * TSO, host RX of a TSO frame into mergeable buffers (tap offloads on, as QEMU sets
 * them for a guest that acked GUEST_TSO4). */
static int sc_offload(const char *path, struct tr *t)
{
	struct dev d;
	uint8_t f[8192];
	struct virtio_net_hdr_v1 h = { 0 };
	int r = -1;

	if (dev_open(&d, path, "vt0", F_ALL | (strcmp(path, USER_PATH) == 0 ? F_OFFLOADS : 0)) < 0)
		goto out;
	/* checksum offload */
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = 34;
	h.csum_offset = 16;
	tx_add(&d, f, make_tcp(f, 300, 1), &h, 1);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	/* TSO: one 1400-byte segment train of 500-byte segments */
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.gso_size = 500;
	h.hdr_len = 54;
	tx_add(&d, f, make_tcp(f, 1400, 2), &h, 0);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0) {
		fail_at(__LINE__, "wait_used", "%s: offload frames not completed", path);
		goto out;
	}
	if (capture(&d, 2, 3000, t, NULL) != 2) {
		fail_at(__LINE__, "capture", "%s: offload frames missing on the tap", path);
		goto out;
	}
	/* RX: a 4000-byte TSO frame from the host */
	{
		unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
		int one = 1;
		struct virtio_net_hdr vh = { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 1000, 34, 16 };
		size_t len;
		uint64_t end;
		uint16_t seen = 0;

		/* over vhost-user the daemon set them from the features acked (GUEST_CSUM, GUEST_TSO4/6) */
		if ((!is_user(&d) && ioctl(d.tap_fd, TUNSETOFFLOAD, off) < 0) ||
		    setsockopt(d.tx_fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) {
			fail_at(__LINE__, "offload setup", "%s: tap offloads / PACKET_VNET_HDR", path);
			goto out;
		}
		rx_post(&d, 64, 2048);
		memcpy(f, &vh, sizeof(vh));
		len = make_tcp(f + sizeof(vh), 4000, 3);
		if (send(d.tx_fd, f, sizeof(vh) + len, 0) != (ssize_t)(sizeof(vh) + len)) {
			fail_at(__LINE__, "send", "%s: cannot send the TSO frame", path);
			goto out;
		}
		end = now_ms() + 3000;
		while (now_ms() < end) {
			uint16_t used = __atomic_load_n(&d.rx.vr.used->idx, __ATOMIC_ACQUIRE);
			if (used != seen) {
				uint8_t *b = d.mem + d.rx.buf_off + (uint64_t)(d.rx.vr.used->ring[0].id % NUM) * BUFSZ;
				uint16_t nb = (uint16_t)(b[10] | b[11] << 8);
				if (nb && used >= nb)
					break;
			}
			usleep(500);
		}
		seen = d.rx.vr.used->idx;
		if (seen < 2) {
			fail_at(__LINE__, "rx", "%s: the TSO frame did not arrive in several buffers (%u used)", path, seen);
			goto out;
		}
		for (uint16_t k = 0; k < seen; k++) {
			struct vring_used_elem *u = &d.rx.vr.used->ring[k];
			tr_note(t, "guest RX used entry %u (id, len, buffer)", k);
			tr_u32(t, u->id);
			tr_u32(t, u->len);
			tr_add(t, d.mem + d.rx.buf_off + (uint64_t)(u->id % NUM) * BUFSZ, u->len <= 2048 ? u->len : 2048);
		}
	}
	r = 0;
out:
	dev_close(&d);
	return r;
}

/* Interrupt suppression as the guest asks for it, and the device's kick requests
 * once idle. Transcript: which completions interrupted, flags/avail_event when idle. */
/* QEMU's stop/start (guest driver reload, migration source): back ends removed, ring
 * positions read back, then everything configured again from those positions. Traffic
 * before, between and after must come out once and in order. */
/* ---- real QEMU as the VMM, driven through its qtest protocol ----
 * QEMU runs a PC whose only firmware halts the CPU; this program plays the guest driver
 * of a legacy virtio-net-pci device by poking I/O ports and guest memory through qtest.
 * So QEMU itself negotiates, builds the memory table, starts vhost on the given device
 * (vhostfd=) and configures the tap, exactly as for a real guest. */
struct qt {
	pid_t pid;
	FILE *to;
	int from;
	char line[16384];
	char buf[16384];
	size_t have;
};

/* One response line, or -1 after 20 s: a hung QEMU fails the scenario, not the run. */
static int qt_line(struct qt *q)
{
	uint64_t end = now_ms() + 20000;

	for (;;) {
		char *nl = memchr(q->buf, '\n', q->have);
		struct pollfd p = { q->from, POLLIN, 0 };
		ssize_t n;

		if (nl) {
			size_t len = (size_t)(nl - q->buf) + 1;
			if (len >= sizeof(q->line))
				return -1;
			memcpy(q->line, q->buf, len);
			q->line[len] = 0;
			memmove(q->buf, nl + 1, q->have - len);
			q->have -= len;
			return 0;
		}
		if (q->have == sizeof(q->buf) || now_ms() > end || poll(&p, 1, 1000) < 0)
			return -1;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(q->from, q->buf + q->have, sizeof(q->buf) - q->have);
		if (n <= 0)
			return -1;
		q->have += (size_t)n;
	}
}

#define QT_IO 0xc000
#define QT_RX_PFN 0x100
#define QT_TX_PFN 0x110
#define QT_RX_BUF 0x400000
#define QT_TX_BUF 0x300000

static int qt_cmd(struct qt *q, uint64_t *ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(q->to, fmt, ap);
	va_end(ap);
	fputc('\n', q->to);
	fflush(q->to);
	for (;;) {
		if (qt_line(q) < 0) {
			fprintf(stderr, "qtest: no answer to '%s'\n", fmt);
			return -1;
		}
		if (strncmp(q->line, "IRQ", 3) == 0)
			continue;
		if (strncmp(q->line, "OK", 2) != 0) {
			fprintf(stderr, "qtest: %s", q->line);
			return -1;
		}
		if (ret)
			*ret = strtoull(q->line + 2, NULL, 0);
		return 0;
	}
}

static int qt_write(struct qt *q, uint64_t addr, const void *p, size_t n)
{
	char *hex = malloc(n * 2 + 1);
	int r;

	for (size_t i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", ((const uint8_t *)p)[i]);
	hex[2 * n] = 0;
	r = qt_cmd(q, NULL, "write 0x%llx 0x%zx 0x%s", (unsigned long long)addr, n, hex);
	free(hex);
	return r;
}

static int qt_read(struct qt *q, uint64_t addr, void *p, size_t n)
{
	const char *h;

	if (n * 2 + 8 > sizeof(q->line) || qt_cmd(q, NULL, "read 0x%llx 0x%zx", (unsigned long long)addr, n) < 0)
		return -1;
	h = strstr(q->line, "0x");
	if (!h)
		return -1;
	h += 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		((uint8_t *)p)[i] = (uint8_t)v;
	}
	return 0;
}

/* vu_sock: a vhost-user netdev on that socket (the tap is the daemon's), guest memory a
 * shared memfd; NULL: a tap netdev with vhost (the device at path vhost as vhostfd). */
static int qt_start(struct qt *q, const char *vhost, const char *tap, bool modern, const char *vu_sock)
{
	char device[160];

	int in[2], out[2];
	uint8_t *bios;
	int fd;

	/* firmware: cli; hlt; jmp at the reset vector */
	bios = malloc(65536);
	memset(bios, 0xf4, 65536);
	memcpy(bios + 65536 - 16, "\xfa\xf4\xeb\xfd", 4);
	fd = open("/tmp/elvis-halt.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, bios, 65536) != 65536)
		return -1;
	close(fd);
	free(bios);
	mkdir("/tmp/elvis-qemu-data", 0755);
	snprintf(device, sizeof(device), "virtio-net-pci,netdev=n0,%s,vectors=0,addr=04.0,romfile=",
		 modern ? "disable-legacy=on,disable-modern=off" : "disable-modern=on");
	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	q->pid = fork();
	if (q->pid == 0) {
		char netdev[256], chardev[160];
		const char *argv[40] = { "qemu-system-x86_64", "-L", "/tmp/elvis-qemu-data", "-M", "pc", "-accel", "tcg",
					 "-bios", "/tmp/elvis-halt.bin", "-qtest", "stdio", "-qtest-log", "/dev/null",
					 "-display", "none", "-nodefaults", "-m", "64", "-netdev", netdev, "-device",
					 device };
		int argc = 22;
		int vfd = getenv("ELVIS_QT_NO_VHOST") || vu_sock ? open("/dev/null", O_RDWR) : open(vhost, O_RDWR);

		/* the pipes first: one of them may be fd 3 */
		if (vfd < 0 || dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(vfd, 3) < 0)
			_exit(126);
		if (vu_sock) {
			snprintf(chardev, sizeof(chardev), "socket,id=c0,path=%s", vu_sock);
			snprintf(netdev, sizeof(netdev), "vhost-user,id=n0,chardev=c0");
			argv[argc++] = "-chardev";
			argv[argc++] = chardev;
			argv[argc++] = "-object";
			argv[argc++] = "memory-backend-memfd,id=m0,size=64M,share=on";
			argv[argc++] = "-machine";
			argv[argc++] = "memory-backend=m0";
		} else {
			/* the modern run also asks for poll-us: QEMU then sets a busy-loop timeout */
			snprintf(netdev, sizeof(netdev), "tap,id=n0,ifname=%s,script=no,downscript=no,%s%s", tap,
				 getenv("ELVIS_QT_NO_VHOST") ? "vhost=off" : "vhost=on,vhostforce=on,vhostfd=3",
				 modern && !getenv("ELVIS_QT_NO_VHOST") ? ",poll-us=50" : "");
		}
		argv[argc] = NULL;
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	q->to = fdopen(in[1], "w");
	q->from = out[0];
	return q->pid > 0 && q->to ? 0 : -1;
}

static int qt_stop(struct qt *q)
{
	int st = 0;
	uint64_t end = now_ms() + 10000;

	/* QEMU stops vhost and exits cleanly on SIGTERM */
	if (q->to)
		fclose(q->to);
	kill(q->pid, SIGTERM);
	while (waitpid(q->pid, &st, WNOHANG) == 0) {
		if (now_ms() > end) {
			kill(q->pid, SIGKILL);
			waitpid(q->pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	if (q->from > 0)
		close(q->from);
	return st;
}

static uint64_t qt_ring(uint32_t pfn, unsigned num, int part)
{
	uint64_t desc = (uint64_t)pfn << 12, avail = desc + 16ull * num;

	return part == 0 ? desc : part == 1 ? avail : (avail + 6 + 2ull * num + 4095) & ~4095ull;
}

static int qt_wait_used(struct qt *q, uint64_t used, uint16_t want, unsigned ms)
{
	uint64_t end = now_ms() + ms, v = 0;

	while (now_ms() < end) {
		if (qt_cmd(q, &v, "readw 0x%llx", (unsigned long long)(used + 2)) < 0)
			return -1;
		if ((uint16_t)v == want)
			return 0;
		usleep(2000);
	}
	return -1;
}

#define QT_CFG (0x80000000u | (4u << 11))        /* config space of 00:04.0 through 0xcf8/0xcfc */
#define QT_MMIO 0xe0000000ull                   /* where the modern device's BAR 4 goes */

/* How the driver notifies queue i: a legacy I/O port write, or a write to the modern
 * notification area. */
struct qt_transport {
	bool modern;
	uint64_t notify[2];
};

static int qt_notify(struct qt *q, const struct qt_transport *x, unsigned i)
{
	if (x->modern)
		return qt_cmd(q, NULL, "writew 0x%llx %u", (unsigned long long)x->notify[i], i);
	return qt_cmd(q, NULL, "outw 0x%x %u", QT_IO + 0x10, i);
}

static int qt_cfg_read(struct qt *q, unsigned off, unsigned size, uint64_t *ret)
{
	uint64_t v;

	if (qt_cmd(q, NULL, "outl 0xcf8 0x%x", QT_CFG | (off & ~3u)) < 0 || qt_cmd(q, &v, "inl 0xcfc") < 0)
		return -1;
	v >>= (off & 3) * 8;
	*ret = size == 4 ? (uint32_t)v : size == 2 ? (uint16_t)v : (uint8_t)v;
	return 0;
}

static int qt_cfg_write(struct qt *q, unsigned off, uint32_t v)
{
	return qt_cmd(q, NULL, "outl 0xcf8 0x%x", QT_CFG | off) < 0 || qt_cmd(q, NULL, "outl 0xcfc 0x%x", v) < 0 ? -1 : 0;
}

/* The legacy virtio-net driver's steps, up to DRIVER_OK (vhost starts there). */
static int qt_legacy_setup(struct qt *q, const char *path, uint64_t *ret_feat, uint64_t num[2])
{
	uint64_t v, feat;

	/* the device, its I/O BAR, I/O and bus mastering on */
	if (qt_cfg_read(q, 0, 4, &v) < 0 || v != 0x10001af4) {
		fail_at(__LINE__, "pci", "%s: no legacy virtio-net at 00:04.0 (%#llx)", path, (unsigned long long)v);
		return -1;
	}
	if (qt_cfg_write(q, 0x10, QT_IO) < 0 || qt_cfg_write(q, 0x04, 0x5) < 0)
		return -1;
	/* reset, acknowledge, driver; features; rings */
	if (qt_cmd(q, NULL, "outb 0x%x 0", QT_IO + 0x12) < 0 || qt_cmd(q, NULL, "outb 0x%x 3", QT_IO + 0x12) < 0 ||
	    qt_cmd(q, &feat, "inl 0x%x", QT_IO) < 0)
		return -1;
	/* everything a legacy device can negotiate that both back ends offer */
	feat &= (1u << VIRTIO_NET_F_MRG_RXBUF) | (1u << VIRTIO_RING_F_EVENT_IDX) | (1u << VIRTIO_RING_F_INDIRECT_DESC);
	if (qt_cmd(q, NULL, "outl 0x%x 0x%llx", QT_IO + 4, (unsigned long long)feat) < 0)
		return -1;
	for (unsigned i = 0; i < 2; i++)
		if (qt_cmd(q, NULL, "outw 0x%x %u", QT_IO + 0x0e, i) < 0 || qt_cmd(q, &num[i], "inw 0x%x", QT_IO + 0x0c) < 0 ||
		    qt_cmd(q, NULL, "outl 0x%x 0x%x", QT_IO + 0x08, i ? QT_TX_PFN : QT_RX_PFN) < 0)
			return -1;
	if (num[0] == 0 || num[1] == 0 || num[0] > 1024 || num[1] > 1024)
		return -1;
	*ret_feat = feat;
	return qt_cmd(q, NULL, "outb 0x%x 7", QT_IO + 0x12);
}

/* The modern (virtio 1.x) PCI driver's steps: find the common and notification
 * structures through the vendor capabilities, map BAR 4, negotiate VERSION_1 with
 * FEATURES_OK, give each queue its three addresses and enable it, DRIVER_OK. */
static int qt_modern_setup(struct qt *q, const char *path, uint64_t *ret_feat, uint64_t num[2],
			   struct qt_transport *x)
{
	uint64_t v, ptr, common = 0, notify = 0, mult = 0, lo, hi, feat, st, noff;
	const uint64_t want = F_V1 | F_MRG | F_EVIDX | F_IND;

	if (qt_cfg_read(q, 0, 4, &v) < 0 || v != 0x10411af4) {
		fail_at(__LINE__, "pci", "%s: no modern virtio-net at 00:04.0 (%#llx)", path, (unsigned long long)v);
		return -1;
	}
	if (qt_cfg_write(q, 0x20, (uint32_t)QT_MMIO) < 0 || qt_cfg_write(q, 0x24, 0) < 0 ||
	    qt_cfg_write(q, 0x04, 0x6) < 0 || qt_cfg_read(q, 0x34, 1, &ptr) < 0)
		return -1;
	for (unsigned n = 0; ptr && n < 32; n++) {
		uint64_t id, type, bar, off;
		if (qt_cfg_read(q, (unsigned)ptr, 1, &id) < 0 || qt_cfg_read(q, (unsigned)ptr + 3, 1, &type) < 0 ||
		    qt_cfg_read(q, (unsigned)ptr + 4, 1, &bar) < 0 || qt_cfg_read(q, (unsigned)ptr + 8, 4, &off) < 0)
			return -1;
		if (id == 0x09 && bar == 4 && type == 1)
			common = QT_MMIO + off;
		if (id == 0x09 && bar == 4 && type == 2) {
			notify = QT_MMIO + off;
			if (qt_cfg_read(q, (unsigned)ptr + 16, 4, &mult) < 0)
				return -1;
		}
		if (qt_cfg_read(q, (unsigned)ptr + 1, 1, &ptr) < 0)
			return -1;
	}
	if (!common || !notify) {
		fail_at(__LINE__, "caps", "%s: no common or notify capability in BAR 4", path);
		return -1;
	}
	/* reset, acknowledge + driver, the 64 feature bits */
	if (qt_cmd(q, NULL, "writeb 0x%llx 0", (unsigned long long)common + 0x14) < 0 ||
	    qt_cmd(q, NULL, "writeb 0x%llx 3", (unsigned long long)common + 0x14) < 0 ||
	    qt_cmd(q, NULL, "writel 0x%llx 0", (unsigned long long)common) < 0 ||
	    qt_cmd(q, &lo, "readl 0x%llx", (unsigned long long)common + 4) < 0 ||
	    qt_cmd(q, NULL, "writel 0x%llx 1", (unsigned long long)common) < 0 ||
	    qt_cmd(q, &hi, "readl 0x%llx", (unsigned long long)common + 4) < 0)
		return -1;
	feat = ((hi << 32) | lo) & want;
	if (!(feat & F_V1)) {
		fail_at(__LINE__, "features", "%s: the modern device does not offer VERSION_1", path);
		return -1;
	}
	if (qt_cmd(q, NULL, "writel 0x%llx 0", (unsigned long long)common + 0x08) < 0 ||
	    qt_cmd(q, NULL, "writel 0x%llx 0x%x", (unsigned long long)common + 0x0c, (uint32_t)feat) < 0 ||
	    qt_cmd(q, NULL, "writel 0x%llx 1", (unsigned long long)common + 0x08) < 0 ||
	    qt_cmd(q, NULL, "writel 0x%llx 0x%x", (unsigned long long)common + 0x0c, (uint32_t)(feat >> 32)) < 0 ||
	    qt_cmd(q, NULL, "writeb 0x%llx 11", (unsigned long long)common + 0x14) < 0 ||
	    qt_cmd(q, &st, "readb 0x%llx", (unsigned long long)common + 0x14) < 0)
		return -1;
	if (!(st & 8)) {
		fail_at(__LINE__, "features", "%s: FEATURES_OK not accepted (%#llx)", path, (unsigned long long)st);
		return -1;
	}
	for (unsigned i = 0; i < 2; i++) {
		uint32_t pfn = i ? QT_TX_PFN : QT_RX_PFN;
		if (qt_cmd(q, NULL, "writew 0x%llx %u", (unsigned long long)common + 0x16, i) < 0 ||
		    qt_cmd(q, &num[i], "readw 0x%llx", (unsigned long long)common + 0x18) < 0 || num[i] == 0 ||
		    num[i] > 1024 ||
		    qt_cmd(q, NULL, "writeq 0x%llx 0x%llx", (unsigned long long)common + 0x20,
			   (unsigned long long)qt_ring(pfn, (unsigned)num[i], 0)) < 0 ||
		    qt_cmd(q, NULL, "writeq 0x%llx 0x%llx", (unsigned long long)common + 0x28,
			   (unsigned long long)qt_ring(pfn, (unsigned)num[i], 1)) < 0 ||
		    qt_cmd(q, NULL, "writeq 0x%llx 0x%llx", (unsigned long long)common + 0x30,
			   (unsigned long long)qt_ring(pfn, (unsigned)num[i], 2)) < 0 ||
		    qt_cmd(q, &noff, "readw 0x%llx", (unsigned long long)common + 0x1e) < 0 ||
		    qt_cmd(q, NULL, "writew 0x%llx 1", (unsigned long long)common + 0x1c) < 0)
			return -1;
		x->notify[i] = notify + noff * mult;
	}
	*ret_feat = feat;
	return qt_cmd(q, NULL, "writeb 0x%llx 15", (unsigned long long)common + 0x14);
}

/* A virtio-net driver (legacy, or modern with VERSION_1) on QEMU's device; then TX and
 * RX through it. */
static int sc_qemu(const char *path, bool modern, struct tr *t)
{
	struct qt q = { 0 };
	struct qt_transport x = { .modern = modern };
	struct dev d;
	uint64_t feat, num[2];
	uint8_t f[MAXFRAME + 12];
	unsigned hl;
	int r = -1;

	memset(&d, 0, sizeof(d));
	d.path = path;
	snprintf(d.tap, sizeof(d.tap), "qq0");
	if (is_user(&d) && user_vm_add(&d, "qq0") < 0) {
		fail_at(__LINE__, "vm", "no VM for QEMU's vhost-user netdev");
		goto out;
	}
	if (qt_start(&q, path, d.tap, modern, is_user(&d) ? d.sock : NULL) < 0)
		goto out;
	if ((modern ? qt_modern_setup(&q, path, &feat, num, &x) : qt_legacy_setup(&q, path, &feat, num)) < 0)
		goto out;
	hl = feat & (F_MRG | F_V1) ? 12 : 10;
	tr_note(t, "features the guest driver negotiated");
	tr_u32(t, (uint32_t)feat);
	tr_u32(t, (uint32_t)(feat >> 32));
	fprintf(stderr, "  qemu %s: %s, features %#llx, rings %llu/%llu, DRIVER_OK\n", path, modern ? "modern" : "legacy",
		(unsigned long long)feat, (unsigned long long)num[0], (unsigned long long)num[1]);
	if (tap_attach(&d, d.tap) < 0) {
		fail_at(__LINE__, "tap", "%s: the tap %s", path, d.tap);
		goto out;
	}
	if (is_elvis(&d)) {
		/* QEMU's device is live: owned, features acked, ready */
		struct elvis_queue_info qi[16];
		uint32_t n = 0;
		bool ready = false;
		if (read_array(ELVIS_IOC_LIST_QUEUES, qi, sizeof(qi[0]), 16, &n) == 0)
			for (uint32_t i = 0; i < n && i < 16; i++)
				ready |= qi[i].state == ELVIS_QUEUE_STATE_READY && strcmp(qi[i].tap, "qq0") == 0;
		if (!ready) {
			fail_at(__LINE__, "ready", "QEMU did not start the elvis-net device");
			goto out;
		}
	}
	/* TX: five frames from the guest, one kick */
	for (unsigned i = 0; i < 5; i++) {
		struct vring_desc desc = { QT_TX_BUF + i * 2048ull, (uint32_t)(hl + sizes[i * 2]), 0, 0 };
		uint16_t slot = (uint16_t)i;
		memset(f, 0, hl);
		make_frame(f + hl, sizes[i * 2], 12, i);
		if (qt_write(&q, QT_TX_BUF + i * 2048ull, f, hl + sizes[i * 2]) < 0 ||
		    qt_write(&q, qt_ring(QT_TX_PFN, (unsigned)num[1], 0) + 16ull * i, &desc, sizeof(desc)) < 0 ||
		    qt_write(&q, qt_ring(QT_TX_PFN, (unsigned)num[1], 1) + 4 + 2ull * i, &slot, 2) < 0)
			goto out;
	}
	if (qt_cmd(&q, NULL, "writew 0x%llx 5", (unsigned long long)qt_ring(QT_TX_PFN, (unsigned)num[1], 1) + 2) < 0 ||
	    qt_notify(&q, &x, 1) < 0)
		goto out;
	if (qt_wait_used(&q, qt_ring(QT_TX_PFN, (unsigned)num[1], 2), 5, 5000) < 0 || capture(&d, 5, 3000, t, NULL) != 5) {
		fail_at(__LINE__, "tx", "%s: guest frames through QEMU did not reach the tap", path);
		goto out;
	}
	/* RX: eight guest buffers, three host frames */
	for (unsigned i = 0; i < 8; i++) {
		struct vring_desc desc = { QT_RX_BUF + i * 2048ull, 2048, VRING_DESC_F_WRITE, 0 };
		uint16_t slot = (uint16_t)i;
		if (qt_write(&q, qt_ring(QT_RX_PFN, (unsigned)num[0], 0) + 16ull * i, &desc, sizeof(desc)) < 0 ||
		    qt_write(&q, qt_ring(QT_RX_PFN, (unsigned)num[0], 1) + 4 + 2ull * i, &slot, 2) < 0)
			goto out;
	}
	if (qt_cmd(&q, NULL, "writew 0x%llx 8", (unsigned long long)qt_ring(QT_RX_PFN, (unsigned)num[0], 1) + 2) < 0 ||
	    qt_notify(&q, &x, 0) < 0)
		goto out;
	for (unsigned i = 0; i < 3; i++)
		if (host_send(&d, f, make_frame(f, sizes[i * 3 + 1], 13, i)) < 0)
			goto out;
	if (qt_wait_used(&q, qt_ring(QT_RX_PFN, (unsigned)num[0], 2), 3, 5000) < 0) {
		fail_at(__LINE__, "rx", "%s: host frames did not reach the guest through QEMU", path);
		goto out;
	}
	for (unsigned i = 0; i < 3; i++) {
		struct vring_used_elem u;
		uint8_t b[2048];
		if (qt_read(&q, qt_ring(QT_RX_PFN, (unsigned)num[0], 2) + 4 + 8ull * i, &u, sizeof(u)) < 0 || u.len > 2048 ||
		    qt_read(&q, QT_RX_BUF + (u.id % 8) * 2048ull, b, u.len) < 0)
			goto out;
		tr_note(t, "guest RX used entry %u (id, len, buffer)", i);
		tr_u32(t, u.id);
		tr_u32(t, u.len);
		tr_add(t, b, u.len);
	}
	r = 0;
out:
	if (q.pid > 0) {
		int st = qt_stop(&q);
		if (st != 0) {
			fprintf(stderr, "  qemu %s: exit status %#x\n", path, st);
			if (r == 0)
				fail_at(__LINE__, "qemu exit", "%s: QEMU did not exit cleanly", path);
			r = -1;
		}
	}
	if (d.cap_fd > 0)
		close(d.cap_fd);
	if (d.tx_fd > 0)
		close(d.tx_fd);
	user_vm_del(&d);
	return r;
}

static int sc_restart(const char *path, struct tr *t)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	struct vhost_vring_state st[2];
	int r = -1;
	unsigned seq = 0;

	if (dev_open(&d, path, "vt0", F_ALL) < 0)
		goto out;
	for (unsigned phase = 0; phase < 3; phase++) {
		for (unsigned i = 0; i < 20; i++) {
			tx_add(&d, f, make_frame(f, 300, 10, seq++), NULL, (int)(i % 3));
			guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
		}
		if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0 || capture(&d, 20, 3000, t, NULL) != 20) {
			fail_at(__LINE__, "traffic", "%s: phase %u traffic incomplete", path, phase);
			goto out;
		}
		if (phase == 2)
			break;
		/* stop: as QEMU's vhost_net_stop */
		for (unsigned i = 0; i < 2; i++) {
			st[i] = (struct vhost_vring_state){ i, 0 };
			if (dev_backend(&d, i, false) < 0 || vioctl(&d, VHOST_GET_VRING_BASE, &st[i]) < 0) {
				fail_at(__LINE__, "stop", "%s: stop", path);
				goto out;
			}
			tr_note(t, "ring %u base read back at stop %u", i, phase);
			tr_u32(t, st[i].num);
		}
		if (st[1].num != d.tx.avail_idx) {
			fail_at(__LINE__, "base", "%s: TX base %u after %u buffers", path, st[1].num, d.tx.avail_idx);
			goto out;
		}
		if (is_elvis(&d) && !sidecore_sleeps(d.id)) {
			fail_at(__LINE__, "sleep", "a stopped device keeps its sidecore busy");
			goto out;
		}
		/* frames queued while stopped wait for the restart */
		tx_add(&d, f, make_frame(f, 300, 10, seq++), NULL, 0);
		guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
		msleep(50);
		if (d.tx.vr.used->idx != (uint16_t)(d.tx.avail_idx - 1)) {
			fail_at(__LINE__, "stopped", "%s: a stopped device used a buffer", path);
			goto out;
		}
		/* start: as vhost_dev_start + vhost_net_start_one */
		if (vioctl(&d, VHOST_SET_FEATURES, &d.features) < 0)
			goto out;
		for (unsigned i = 0; i < 2; i++) {
			struct gring *g = i ? &d.tx : &d.rx;
			struct vhost_vring_state n = { i, NUM };
			struct vhost_vring_addr a = { .index = i, .desc_user_addr = (uintptr_t)g->vr.desc,
						      .used_user_addr = (uintptr_t)g->vr.used,
						      .avail_user_addr = (uintptr_t)g->vr.avail };
			struct vhost_vring_file kf = { i, d.kick[i] }, cf = { i, d.call[i] };
			if (vioctl(&d, VHOST_SET_VRING_NUM, &n) < 0 || vioctl(&d, VHOST_SET_VRING_BASE, &st[i]) < 0 ||
			    vioctl(&d, VHOST_SET_VRING_ADDR, &a) < 0 || vioctl(&d, VHOST_SET_VRING_KICK, &kf) < 0 ||
			    vioctl(&d, VHOST_SET_VRING_CALL, &cf) < 0) {
				fail_at(__LINE__, "start", "%s: ring %u setup", path, i);
				goto out;
			}
		}
		for (unsigned i = 0; i < 2; i++) {
			if (dev_backend(&d, i, true) < 0) {
				fail_at(__LINE__, "start", "%s: back end %u", path, i);
				goto out;
			}
		}
		/* a kick as QEMU gives after start; the queued frame goes first */
		eventfd_write(d.kick[1], 1);
		if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0 || capture(&d, 1, 3000, t, NULL) != 1) {
			fail_at(__LINE__, "restart", "%s: the frame queued while stopped was not sent", path);
			goto out;
		}
	}
	r = 0;
out:
	dev_close(&d);
	return r;
}

static int sc_notify(const char *path, uint64_t feat, struct tr *t)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	int r = -1;
	bool evidx = feat & F_EVIDX;

	if (dev_open(&d, path, "vt0", feat) < 0)
		goto out;
	if ((is_elvis(&d) && set_exitless(d.id, ELVIS_EXITLESS_MODE_NEVER) < 0) ||
	    (is_user(&d) && user_set_exitless(&d, "never") < 0)) {
		fail_at(__LINE__, "set_exitless", "cannot make the queue notification driven");
		goto out;
	}
	for (unsigned step = 0; step < 6; step++) {
		/* steps 0, 2, 4 want an interrupt, 1, 3, 5 suppress it */
		bool suppress = step & 1;
		uint64_t calls;

		if (evidx)
			vring_used_event(&d.tx.vr) = suppress ? (uint16_t)(d.tx.avail_idx + 1000) : d.tx.avail_idx;
		else
			d.tx.vr.avail->flags = suppress ? VRING_AVAIL_F_NO_INTERRUPT : 0;
		efd_read(d.call[1]);
		tx_add(&d, f, make_frame(f, 100, 3, step), NULL, 0);
		guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
		if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0) {
			fail_at(__LINE__, "wait_used", "%s: step %u not completed", path, step);
			goto out;
		}
		msleep(50);
		calls = efd_read(d.call[1]);
		tr_note(t, "step %u: interrupted or not", step);
		tr_u32(t, step);
		tr_u32(t, calls ? 1 : 0);
		if ((calls != 0) == suppress) {
			fail_at(__LINE__, "calls", "%s: step %u: %s interrupt", path, step,
				suppress ? "unwanted" : "missing");
			goto out;
		}
	}
	/* idle: the device must want the next kick */
	msleep(100);
	if (evidx) {
		uint16_t ae = vring_avail_event(&d.tx.vr);
		tr_note(t, "idle avail_event");
		tr_u32(t, ae);
		if (ae != d.tx.avail_idx) {
			fail_at(__LINE__, "avail_event", "%s: idle avail_event %u, expected %u", path, ae, d.tx.avail_idx);
			goto out;
		}
	} else {
		tr_note(t, "idle used flags");
		tr_u32(t, d.tx.vr.used->flags);
		if (d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY) {
			fail_at(__LINE__, "flags", "%s: idle device suppresses kicks", path);
			goto out;
		}
	}
	r = capture(&d, 6, 2000, NULL, NULL) == 6 ? 0 : -1;
	if (r)
		fail_at(__LINE__, "capture", "%s: frames missing on the tap", path);
out:
	dev_close(&d);
	return r;
}

/* Hostile rings: each kind must signal that queue's error eventfd and leave another
 * device (same process, same sidecore for elvis) working. */
enum hostile { H_LOOP, H_OOB_ADDR, H_HEAD_RANGE, H_AVAIL_JUMP, H_INDIRECT_LEN, H_NEXT_RANGE, H_TX_WRITABLE,
	       H_INDIRECT_OOB, H_ADDR_WRAP, H_RX_READONLY, H_MAX };
static const char *const hostile_name[] = { "descriptor loop", "buffer outside memory", "head out of ring",
					    "avail index jump", "indirect table length", "next out of ring",
					    "writable buffer in TX", "indirect table outside memory",
					    "address wraps around", "read-only buffer in RX" };

static int sc_hostile(const char *path, enum hostile kind, struct tr *t)
{
	struct dev bad, good;
	uint8_t f[MAXFRAME];
	struct gring *g;
	uint64_t e = 0, end;
	int r = -1;

	memset(&good, 0, sizeof(good));
	if (dev_open(&bad, path, "vtbad", F_ALL) < 0 || dev_open(&good, path, "vtgood", F_ALL) < 0)
		goto out;
	g = &bad.tx;
	tx_add(&bad, f, make_frame(f, 100, 4, 0), NULL, 0);
	switch (kind) {
	case H_LOOP:
		g->vr.desc[0] = (struct vring_desc){ off_gpa(g->buf_off), 50, VRING_DESC_F_NEXT, 1 };
		g->vr.desc[1] = (struct vring_desc){ off_gpa(g->buf_off), 50, VRING_DESC_F_NEXT, 0 };
		break;
	case H_OOB_ADDR:
		g->vr.desc[0].addr = GPA_BASE + MEMSZ + 4096;
		break;
	case H_HEAD_RANGE:
		g->vr.avail->ring[0] = NUM + 3;
		break;
	case H_AVAIL_JUMP:
		break;
	case H_INDIRECT_LEN:
		g->vr.desc[0] = (struct vring_desc){ off_gpa(g->buf_off), 17, VRING_DESC_F_INDIRECT, 0 };
		break;
	case H_NEXT_RANGE:
		g->vr.desc[0] = (struct vring_desc){ off_gpa(g->buf_off), 50, VRING_DESC_F_NEXT, NUM + 1 };
		break;
	case H_TX_WRITABLE:
		g->vr.desc[0].flags = VRING_DESC_F_WRITE;
		break;
	case H_INDIRECT_OOB:
		g->vr.desc[0] = (struct vring_desc){ GPA_BASE + MEMSZ - 16, 32, VRING_DESC_F_INDIRECT, 0 };
		break;
	case H_ADDR_WRAP:
		g->vr.desc[0] = (struct vring_desc){ ~0ull - 10, 100, 0, 0 };
		break;
	case H_RX_READONLY:
		/* a receive buffer the device may not write, then a frame for it */
		rx_post(&bad, 4, 2048);
		bad.rx.vr.desc[2].flags = 0;
		make_frame(f, 100, 4, 1);
		host_send(&bad, f, 100);
		host_send(&bad, f, 100);
		host_send(&bad, f, 100);
		break;
	default:
		break;
	}
	if (kind != H_RX_READONLY)
		guest_publish(&bad, g, 1, kind == H_AVAIL_JUMP ? (uint16_t)(NUM + 5) : 1);
	end = now_ms() + 3000;
	while (!(e = efd_read(bad.err[kind == H_RX_READONLY ? 0 : 1])) && now_ms() < end)
		usleep(1000);
	tr_note(t, "error eventfd signalled or not");
	tr_u32(t, kind);
	tr_u32(t, e ? 1 : 0);
	if (!e) {
		fail_at(__LINE__, "err eventfd", "%s: %s: no error signalled", path, hostile_name[kind]);
		goto out;
	}
	if (is_elvis(&bad)) {
		struct elvis_queue_info qi;
		struct elvis_queue_counters c;
		if (info_of(bad.id, &qi) < 0 || qi.state != ELVIS_QUEUE_STATE_ERROR || counters_of(bad.id, &c) < 0 ||
		    c.errors < 1) {
			fail_at(__LINE__, "state", "%s: queue not reported in error", hostile_name[kind]);
			goto out;
		}
	}
	if (is_user(&bad)) {
		char state[32] = "";
		unsigned errors = 0;
		if (user_queue_state(&bad, state, sizeof(state), &errors) < 0 || strcmp(state, "error") != 0 ||
		    errors < 1) {
			fail_at(__LINE__, "state", "%s: /v1/stats shows the queue %s with %u errors", hostile_name[kind],
				state, errors);
			goto out;
		}
	}
	/* the other device still works */
	for (unsigned i = 0; i < 5; i++) {
		tx_add(&good, f, make_frame(f, 200, 5, i), NULL, 0);
		guest_publish(&good, &good.tx, 1, (uint16_t)(good.tx.avail_idx + 1));
	}
	if (wait_used(&good.tx, good.tx.avail_idx, 3000) < 0 || capture(&good, 5, 3000, t, NULL) != 5) {
		fail_at(__LINE__, "good device", "%s: %s: the healthy device stopped", path, hostile_name[kind]);
		goto out;
	}
	/* a kick on the broken queue must not make its sidecore spin */
	if (is_elvis(&bad)) {
		eventfd_write(bad.kick[1], 1);
		eventfd_write(bad.kick[0], 1);
		if (!sidecore_sleeps(bad.id)) {
			fail_at(__LINE__, "sleep", "%s: a queue in error keeps its sidecore busy", hostile_name[kind]);
			goto out;
		}
	}
	r = 0;
out:
	dev_close(&bad);
	dev_close(&good);
	return r;
}

/* ---- dirty logging (live migration) ----
 * The VMM's log, vhost's layout: bit (gpa / 4096) % 8 of byte gpa / 32768 marks a guest page
 * the device wrote. Logging goes on while the rings run, the way QEMU starts a migration
 * (VHOST_SET_LOG_FD, VHOST_SET_LOG_BASE, VHOST_SET_FEATURES with VHOST_F_LOG_ALL,
 * VHOST_SET_VRING_ADDR with VHOST_VRING_F_LOG and the same addresses), and off again. The
 * bitmap after the same traffic must be vhost-net's, bit for bit. So that a wrong bit shows,
 * the structures written sit on pages of their own: the used ring is placed against a page
 * boundary (its index alone on one page, or its avail event alone on one page), the
 * address the log is told for it (log_guest_addr) is not where it is (a device logging the
 * ring's real address sets other bits), receive buffers straddle page boundaries (a device
 * logging whole buffers rather than the bytes it wrote sets the second page for small
 * frames), transmit buffers are on pages nothing writes (a device logging what it read
 * sets their bits). */
#define LOG_SIZE (64u << 10)                    /* covers guest physical 0 to 2 GiB */
#define LOG_MEM_BYTE (GPA_BASE >> 15)           /* the first log byte of the device memory */
#define LOG_MEM_BYTES (MEMSZ >> 15)
#define LOG_RX_USED 0x118000ull                 /* page boundaries the used rings are put against */
#define LOG_TX_USED 0x128000ull
#define LOG_USED_SHIFT 0x2c0000ull              /* log_guest_addr: the used ring's address plus this */
#define LOG_RX_BUFS 0x140000ull                 /* receive buffers, one per 8 KiB, across a page end */
#define USED_LEN (4 + 8 * NUM)                  /* flags, index, entries: the avail event follows */

enum log_split { SPLIT_INDEX, SPLIT_EVENT };    /* which part of the used ring is alone on its page */

static uint64_t used_gpa(const struct dev *d, const struct gring *g)
{
	return off_gpa((uint64_t)((uint8_t *)g->vr.used - d->mem));
}

/* Moves ring vq's used ring (still untouched) to offset used_off, the back end detached
 * meanwhile as QEMU does to change a ring's addresses. */
static int log_place_used(struct dev *d, unsigned vq, uint64_t used_off)
{
	struct gring *g = vq ? &d->tx : &d->rx;
	struct vhost_vring_addr a = { .index = vq };

	CHECK(dev_backend(d, vq, false) == 0, "back end %u off", vq);
	g->vr.used = (struct vring_used *)(d->mem + used_off);
	memset(g->vr.used, 0, USED_LEN + 2);
	a.desc_user_addr = (uintptr_t)g->vr.desc;
	a.avail_user_addr = (uintptr_t)g->vr.avail;
	a.used_user_addr = (uintptr_t)g->vr.used;
	CHECK(vioctl(d, VHOST_SET_VRING_ADDR, &a) == 0, "SET_VRING_ADDR %u", vq);
	CHECK(dev_backend(d, vq, true) == 0, "back end %u on", vq);
	return 0;
}

/* The used ring against page boundary at (offset): its index alone on the page before, or
 * its avail event alone on the page after. */
static uint64_t log_used_off(uint64_t boundary, enum log_split split)
{
	return split == SPLIT_INDEX ? boundary - 4 : boundary - USED_LEN;
}

/* VHOST_SET_VRING_ADDR for ring vq with its current addresses and the log flag. */
static int log_ring(struct dev *d, unsigned vq, bool on)
{
	struct gring *g = vq ? &d->tx : &d->rx;
	struct vhost_vring_addr a = { .index = vq, .flags = on ? 1u << VHOST_VRING_F_LOG : 0,
				      .desc_user_addr = (uintptr_t)g->vr.desc, .avail_user_addr = (uintptr_t)g->vr.avail,
				      .used_user_addr = (uintptr_t)g->vr.used,
				      .log_guest_addr = used_gpa(d, g) + LOG_USED_SHIFT };

	return vioctl(d, VHOST_SET_VRING_ADDR, &a);
}

/* Logging on (log, its eventfd, LOG_ALL, the used rings in mask) or off, as QEMU does. */
static int log_switch(struct dev *d, uint8_t *log, int efd, unsigned mask, bool on)
{
	uint64_t base = (uintptr_t)log, feat = d->features | (on ? 1ull << VHOST_F_LOG_ALL : 0);

	if (on) {
		CHECK(vioctl(d, VHOST_SET_LOG_FD, &efd) == 0, "SET_LOG_FD");
		CHECK(vioctl(d, VHOST_SET_LOG_BASE, &base) == 0, "SET_LOG_BASE");
	}
	CHECK(vioctl(d, VHOST_SET_FEATURES, &feat) == 0, "SET_FEATURES %s LOG_ALL", on ? "with" : "without");
	for (unsigned i = 0; i < 2; i++)
		if (mask & (1u << i))
			CHECK(log_ring(d, i, on) == 0, "SET_VRING_ADDR %u log %d", i, on);
	return 0;
}

/* Waits until ring g used idx and then wrote avail event idx (the last thing both devices
 * write when a ring goes idle), then takes the ring's lock through an ioctl (vhost-net's vq
 * mutex, elvis's device mutex, both held across a turn): what that turn logged is in the
 * bitmap once this returns. */
static int log_settle(struct dev *d, struct gring *g, unsigned vq, uint16_t idx)
{
	uint64_t end = now_ms() + 3000;
	struct vhost_vring_state s = { vq, 0 };

	CHECK(wait_used(g, idx, 3000) == 0, "ring %u used %u, not %u", vq, g->vr.used->idx, idx);
	while (__atomic_load_n(&vring_avail_event(&g->vr), __ATOMIC_ACQUIRE) != idx) {
		CHECK(now_ms() < end, "ring %u avail event %u, not %u", vq, vring_avail_event(&g->vr), idx);
		usleep(200);
	}
	CHECK(vioctl(d, VHOST_GET_VRING_BASE, &s) == 0, "GET_VRING_BASE %u", vq);
	return 0;
}

/* The bitmap into the transcript (the bytes covering the device memory; nothing else may
 * be set), the dirty pages listed on stdout. */
static int log_record(struct tr *t, const char *path, const uint8_t *log, const char *what)
{
	char pages[512] = "";
	size_t n = 0;

	for (size_t i = 0; i < LOG_SIZE; i++)
		CHECK(log[i] == 0 || (i >= LOG_MEM_BYTE && i < LOG_MEM_BYTE + LOG_MEM_BYTES),
		      "%s: %s: log byte %zu (outside the device memory) is %#x", path, what, i, log[i]);
	for (size_t p = 0; p < LOG_MEM_BYTES * 8; p++)
		if ((log[LOG_MEM_BYTE + p / 8] & (1u << (p % 8))) && n < sizeof(pages) - 8)
			n += (size_t)snprintf(pages + n, sizeof(pages) - n, " %#zx", p);
	printf("  %s: %s: dirty pages (4 KiB, from the start of memory):%s\n", path, what, n ? pages : " none");
	tr_note(t, "dirty log (%s), byte k: pages 8k to 8k+7", what);
	tr_add(t, log + LOG_MEM_BYTE, LOG_MEM_BYTES);
	return 0;
}

/* Was the log eventfd signalled (and reset it)? */
static void log_fd_record(struct tr *t, int efd, const char *what)
{
	tr_note(t, "log eventfd signalled %s", what);
	tr_u32(t, efd_read(efd) ? 1 : 0);
}

/* count TX frames (every layout), completed and idle; their used entries into t. */
static int log_tx_round(struct dev *d, unsigned count, unsigned *seq, struct tr *t)
{
	uint8_t f[MAXFRAME];
	uint16_t start = d->tx.avail_idx;

	for (unsigned i = 0; i < count; i++) {
		size_t len = make_frame(f, sizes[i % 10], 6, (*seq)++);

		tx_add(d, f, len, NULL, (int)(i % 3));
		d->tx.avail_idx++;
	}
	d->tx.avail_idx = start;
	guest_publish(d, &d->tx, 1, (uint16_t)(start + count));
	if (log_settle(d, &d->tx, 1, d->tx.avail_idx) < 0)
		return -1;
	for (uint16_t k = start; k != d->tx.avail_idx; k++) {
		tr_note(t, "TX used entry %u (id, len)", k);
		tr_u32(t, d->tx.vr.used->ring[k % NUM].id);
		tr_u32(t, d->tx.vr.used->ring[k % NUM].len);
	}
	return 0;
}

static int log_open(struct dev *d, const char *path, uint64_t feat, uint8_t **log, int *efd)
{
	CHECK(dev_open(d, path, "vt0", feat) == 0, "open %s", path);
	/* notifications throughout: when polling, elvis refreshes the avail event on its own
	 * schedule, which vhost-net has no counterpart of */
	CHECK(!is_elvis(d) || set_exitless(d->id, ELVIS_EXITLESS_MODE_NEVER) == 0, "exitless never");
	*log = mmap(NULL, LOG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	*efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(*log != MAP_FAILED && *efd >= 0, "log");
	return 0;
}

/* The end of a logging scenario: the device, the log mapping, the log eventfd. */
static void log_dev_close(struct dev *d, uint8_t *log, int efd)
{
	dev_close(d);
	if (log != MAP_FAILED)
		munmap(log, LOG_SIZE);
	if (efd >= 0)
		close(efd);
}

/* Guest TX with the TX ring logged: its used ring only (TX writes nothing else). Before:
 * traffic without a log; then logging on, traffic, bitmap; logging off, traffic, no bits. */
static int sc_log_tx(const char *path, enum log_split split, struct tr *t)
{
	struct dev d;
	uint8_t *log = MAP_FAILED;
	int efd = -1, r = -1;
	unsigned seq = 0;

	memset(&d, 0, sizeof(d));
	if (log_open(&d, path, F_ALL, &log, &efd) < 0 || log_place_used(&d, 1, log_used_off(LOG_TX_USED, split)) < 0 ||
	    log_tx_round(&d, 10, &seq, t) < 0)
		goto out;
	if (log_switch(&d, log, efd, 1u << 1, true) < 0 || log_tx_round(&d, 10, &seq, t) < 0 ||
	    log_record(t, path, log, "TX, logging on") < 0)
		goto out;
	log_fd_record(t, efd, "after TX with logging on");
	if (log_switch(&d, log, efd, 1u << 1, false) < 0)
		goto out;
	efd_read(efd);
	memset(log, 0, LOG_SIZE);
	if (log_tx_round(&d, 10, &seq, t) < 0 || log_record(t, path, log, "TX, logging off") < 0)
		goto out;
	log_fd_record(t, efd, "after TX with logging off");
	CHECK_OUT(capture(&d, 30, 3000, t, NULL) == 30, "%s: fewer than 30 frames on the tap", path);
	r = 0;
out:
	log_dev_close(&d, log, efd);
	return r;
}

/* n receive buffers of sz bytes, each starting cross bytes before a page end. */
static void log_rx_post(struct dev *d, unsigned n, uint32_t sz, uint32_t cross)
{
	struct gring *g = &d->rx;
	uint16_t idx = g->avail_idx;

	for (unsigned i = 0; i < n; i++, idx++) {
		uint16_t slot = idx % NUM;
		uint64_t buf = LOG_RX_BUFS + (uint64_t)(slot % 128) * 8192 + 4096 - cross;

		g->vr.desc[slot] = (struct vring_desc){ off_gpa(buf), sz, VRING_DESC_F_WRITE, 0 };
		g->vr.avail->ring[slot] = slot;
	}
	guest_publish(d, g, 0, idx);
}

/* The used entries from *seen on, and the bytes written into their buffers, into t. */
static void log_rx_entries(struct dev *d, uint16_t *seen, struct tr *t)
{
	for (uint16_t used = d->rx.vr.used->idx; *seen != used; (*seen)++) {
		struct vring_used_elem *u = &d->rx.vr.used->ring[*seen % NUM];
		struct vring_desc *desc = &d->rx.vr.desc[u->id % NUM];

		tr_note(t, "guest RX used entry %u (id, len, buffer)", *seen);
		tr_u32(t, u->id);
		tr_u32(t, u->len);
		tr_add(t, d->mem + (desc->addr - GPA_BASE), u->len <= desc->len ? u->len : desc->len);
	}
}

/* Host frames into guest buffers with the RX ring logged and LOG_ALL: the bytes each used
 * entry covers and the used ring. The buffers posted with logging on are exactly what the
 * ten frames take, and an eleventh finds none: both devices then want a kick and write
 * the avail event (elvis also writes it at the first turn after a ring starts, vhost-net
 * only when buffers run out, so it is compared where both write it). */
static int sc_log_rx(const char *path, uint64_t feat, enum log_split split, struct tr *t)
{
	struct dev d;
	uint8_t f[MAXFRAME], *log = MAP_FAILED;
	bool mrg = feat & F_MRG;
	uint32_t sz = mrg ? 1024 : 2048, cross = mrg ? 512 : 1000;
	unsigned need = 0;
	uint16_t seen = 0;
	int efd = -1, r = -1;

	memset(&d, 0, sizeof(d));
	if (log_open(&d, path, feat, &log, &efd) < 0 || log_place_used(&d, 0, log_used_off(LOG_RX_USED, split)) < 0)
		goto out;
	/* before: two frames without a log */
	log_rx_post(&d, 2, sz, cross);
	for (unsigned i = 0; i < 2; i++)
		CHECK_OUT(host_send(&d, f, make_frame(f, 300, 7, i)) == 0, "send");
	CHECK_OUT(wait_used(&d.rx, 2, 3000) == 0, "%s: RX before logging: used %u of 2", path, d.rx.vr.used->idx);
	{
		struct vhost_vring_state s = { 0, 0 };
		CHECK_OUT(vioctl(&d, VHOST_GET_VRING_BASE, &s) == 0, "GET_VRING_BASE");
	}
	log_rx_entries(&d, &seen, t);
	if (log_switch(&d, log, efd, 1u << 0, true) < 0)
		goto out;
	for (unsigned i = 0; i < 10; i++)
		need += mrg ? (unsigned)(sizes[i] + d.hl + sz - 1) / sz : 1;
	log_rx_post(&d, need, sz, cross);
	for (unsigned i = 0; i < 11; i++)
		CHECK_OUT(host_send(&d, f, make_frame(f, i < 10 ? sizes[i] : 100, 7, 10 + i)) == 0, "send");
	if (log_settle(&d, &d.rx, 0, (uint16_t)(2 + need)) < 0)
		goto out;
	log_rx_entries(&d, &seen, t);
	if (log_record(t, path, log, mrg ? "RX mergeable, logging on" : "RX, logging on") < 0)
		goto out;
	log_fd_record(t, efd, "after RX with logging on");
	if (log_switch(&d, log, efd, 1u << 0, false) < 0)
		goto out;
	efd_read(efd);
	memset(log, 0, LOG_SIZE);
	/* the eleventh frame goes into the next buffer */
	log_rx_post(&d, 2, sz, cross);
	CHECK_OUT(wait_used(&d.rx, (uint16_t)(3 + need), 3000) == 0, "%s: the held frame was not delivered", path);
	{
		struct vhost_vring_state s = { 0, 0 };
		CHECK_OUT(vioctl(&d, VHOST_GET_VRING_BASE, &s) == 0, "GET_VRING_BASE");
	}
	log_rx_entries(&d, &seen, t);
	if (log_record(t, path, log, "RX, logging off") < 0)
		goto out;
	log_fd_record(t, efd, "after RX with logging off");
	r = 0;
out:
	log_dev_close(&d, log, efd);
	return r;
}

/* Hostile logs. elvis: the queue stops with an error (eventfd, state), the guest gets
 * nothing more from it (used index unchanged), nothing is set in a log it cannot write,
 * another device on the same sidecore carries on and the sidecore sleeps. vhost-net takes
 * the same ioctls (their answers are the transcript) and, at run time, ignores a log write
 * that fails: its queue goes on, the pages unlogged; that is printed, not required.
 *   unmapped-tx, unmapped-rx: the log is an address with nothing mapped (LOG_ALL and the
 *       used ring logged; LOG_ALL alone);
 *   overflow: the used ring's bits run past the end of the user address space: the log
 *       byte of the ring's start is the last one below it (mapped), so vhost's check of
 *       ceil(2052 / 32 KiB) bytes passes, and the ring's end is logged in the byte past it. */
enum log_hostile { LH_UNMAPPED_TX, LH_UNMAPPED_RX, LH_OVERFLOW, LH_MAX };
static const char *const log_hostile_name[] = { "log unmapped (TX)", "log unmapped (RX)", "log past user space" };

/* The end of the user address space (x86-64's TASK_SIZE_MAX: 5-level page tables under
 * -cpu max, else 4-level), where the last page can be mapped and the next cannot; 0 if
 * neither. */
static uint64_t user_top(void)
{
	static const uint64_t tops[] = { (1ull << 56) - 4096, (1ull << 47) - 4096 };

	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
		void *last = mmap((void *)(uintptr_t)(tops[i] - 4096), 4096, PROT_READ,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		void *past;

		if (last == MAP_FAILED)
			continue;
		munmap(last, 4096);
		if (last != (void *)(uintptr_t)(tops[i] - 4096))
			continue;
		past = mmap((void *)(uintptr_t)tops[i], 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			    -1, 0);
		if (past != MAP_FAILED) {
			munmap(past, 4096);
			continue;
		}
		return tops[i];
	}
	return 0;
}

static int sc_log_hostile(const char *path, enum log_hostile kind, struct tr *t)
{
	struct dev bad, good;
	uint8_t f[MAXFRAME], *top = MAP_FAILED;
	unsigned vq = kind == LH_UNMAPPED_RX ? 0 : 1;
	struct gring *g = vq ? &bad.tx : &bad.rx;
	uint64_t base, feat, e = 0, end, utop = user_top();
	/* overflow: log byte 2 is the last below the top; the used ring's log address starts
	 * 1 KiB before the end of that byte's 32 KiB, so its tail is logged in byte 3 */
	uint64_t ring_log = 3 * 32768ull - 1024;
	int ret[3], r = -1;

	memset(&good, 0, sizeof(good));
	if (dev_open(&bad, path, "vtbad", F_ALL) < 0 || dev_open(&good, path, "vtgood", F_ALL) < 0)
		goto out;
	CHECK_OUT(!is_elvis(&bad) || set_exitless(bad.id, ELVIS_EXITLESS_MODE_NEVER) == 0, "exitless never");
	if (kind == LH_OVERFLOW) {
		CHECK_OUT(utop, "cannot find the end of the user address space");
		top = mmap((void *)(uintptr_t)(utop - 4096), 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		CHECK_OUT(top == (void *)(uintptr_t)(utop - 4096), "cannot map the top page of user space");
		base = utop - 1 - 2;
	} else {
		void *p = mmap(NULL, LOG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		CHECK_OUT(p != MAP_FAILED, "mmap");
		munmap(p, LOG_SIZE);
		base = (uintptr_t)p;
	}
	/* QEMU's order; each answer is compared with vhost-net's */
	feat = bad.features | (kind == LH_OVERFLOW ? 0 : 1ull << VHOST_F_LOG_ALL);
	ret[0] = vioctl(&bad, VHOST_SET_LOG_BASE, &base) < 0 ? errno : 0;
	ret[1] = vioctl(&bad, VHOST_SET_FEATURES, &feat) < 0 ? errno : 0;
	ret[2] = 0;
	if (kind != LH_UNMAPPED_RX) {
		struct vhost_vring_addr a = { .index = 1, .flags = 1u << VHOST_VRING_F_LOG,
					      .desc_user_addr = (uintptr_t)g->vr.desc,
					      .avail_user_addr = (uintptr_t)g->vr.avail,
					      .used_user_addr = (uintptr_t)g->vr.used,
					      .log_guest_addr = kind == LH_OVERFLOW ? ring_log : used_gpa(&bad, g) };
		ret[2] = vioctl(&bad, VHOST_SET_VRING_ADDR, &a) < 0 ? errno : 0;
	}
	tr_note(t, "SET_LOG_BASE, SET_FEATURES, SET_VRING_ADDR errno");
	for (int i = 0; i < 3; i++)
		tr_u32(t, (uint32_t)ret[i]);
	if (ret[0] || ret[1] || ret[2]) {
		/* refused up front (a kernel whose access_ok ends lower): nothing to run */
		printf("  %s: %s: refused by the ioctls (errno %d %d %d)\n", path, log_hostile_name[kind], ret[0], ret[1],
		       ret[2]);
		r = 0;
		goto out;
	}
	if (vq) {
		tx_add(&bad, f, make_frame(f, 100, 8, 0), NULL, 0);
		guest_publish(&bad, g, 1, 1);
	} else {
		rx_post(&bad, 4, 2048);
		CHECK_OUT(host_send(&bad, f, make_frame(f, 100, 8, 0)) == 0, "send");
	}
	if (!is_elvis(&bad)) {
		wait_used(g, 1, 3000);
		printf("  vhost-net: %s: used index %u, error eventfd %s: a log write that fails is ignored\n",
		       log_hostile_name[kind], g->vr.used->idx, efd_read(bad.err[vq]) ? "signalled" : "silent");
		r = 0;
		goto out;
	}
	end = now_ms() + 3000;
	while (!(e = efd_read(bad.err[vq])) && now_ms() < end)
		usleep(1000);
	CHECK_OUT(e, "%s: no error signalled", log_hostile_name[kind]);
	{
		struct elvis_queue_info qi;
		CHECK_OUT(info_of(bad.id, &qi) == 0 && qi.state == ELVIS_QUEUE_STATE_ERROR, "%s: queue not in error",
			  log_hostile_name[kind]);
	}
	CHECK_OUT(g->vr.used->idx == 0, "%s: the guest got %u used entries from a queue that cannot log",
		  log_hostile_name[kind], g->vr.used->idx);
	if (top != MAP_FAILED)
		for (unsigned i = 0; i < 4096; i++)
			CHECK_OUT(top[i] == 0, "%s: byte %u of the log's last page set (%#x)", log_hostile_name[kind], i,
				  top[i]);
	for (unsigned i = 0; i < 5; i++) {
		tx_add(&good, f, make_frame(f, 200, 9, i), NULL, 0);
		guest_publish(&good, &good.tx, 1, (uint16_t)(good.tx.avail_idx + 1));
	}
	CHECK_OUT(wait_used(&good.tx, good.tx.avail_idx, 3000) == 0 && capture(&good, 5, 3000, NULL, NULL) == 5,
		  "%s: the healthy device stopped", log_hostile_name[kind]);
	eventfd_write(bad.kick[0], 1);
	eventfd_write(bad.kick[1], 1);
	CHECK_OUT(sidecore_sleeps(bad.id), "%s: a queue in error keeps its sidecore busy", log_hostile_name[kind]);
	printf("  elvis-net: %s: queue stopped with an error, nothing used, nothing logged\n", log_hostile_name[kind]);
	r = 0;
out:
	dev_close(&bad);
	dev_close(&good);
	if (top != MAP_FAILED)
		munmap(top, 4096);
	return r;
}

/* The log ioctls' error paths, each answer compared with vhost-net's: eventfds, flags,
 * alignment, bases whose bits leave user space (for the memory with LOG_ALL, for a used
 * ring with VHOST_VRING_F_LOG, checked at SET_LOG_BASE, SET_FEATURES, SET_VRING_ADDR,
 * SET_MEM_TABLE and SET_BACKEND, the last with -1 too), then traffic still flows. */
static int sc_log_abi(const char *path, struct tr *t)
{
	struct dev d;
	uint8_t f[MAXFRAME], *log = MAP_FAILED;
	struct vhost_memory *m = calloc(1, sizeof(*m) + 2 * sizeof(m->regions[0]));
	uint64_t utop = user_top(), high = utop - 16, top = utop - LOG_SIZE, wrap = ~0ull, good, feat_log;
	void *toplog = MAP_FAILED;
	int efd = -1, r = -1, k = 0;
	int res[32];

	memset(&d, 0, sizeof(d));
	CHECK_OUT(utop, "cannot find the end of the user address space");
	toplog = mmap((void *)(uintptr_t)top, LOG_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK_OUT(toplog == (void *)(uintptr_t)top, "cannot map a log at the top of user space");
	if (log_open(&d, path, F_ALL, &log, &efd) < 0)
		goto out;
	good = (uintptr_t)log;
	feat_log = d.features | 1ull << VHOST_F_LOG_ALL;
#define TRY(call) (res[k++] = (call) < 0 ? errno : 0)
	{
		int fd = d.tap_fd, none = -1, bad = -5;
		TRY(vioctl(&d, VHOST_SET_LOG_FD, &fd));         /* not an eventfd */
		TRY(vioctl(&d, VHOST_SET_LOG_FD, &bad));
		TRY(vioctl(&d, VHOST_SET_LOG_FD, &none));
	}
	{
		struct vhost_vring_addr a = { .index = 1, .flags = 2, .desc_user_addr = (uintptr_t)d.tx.vr.desc,
					      .avail_user_addr = (uintptr_t)d.tx.vr.avail,
					      .used_user_addr = (uintptr_t)d.tx.vr.used };
		TRY(vioctl(&d, VHOST_SET_VRING_ADDR, &a));      /* an unknown flag */
		a.flags = 1u << VHOST_VRING_F_LOG;
		a.log_guest_addr = used_gpa(&d, &d.tx) + 2;
		TRY(vioctl(&d, VHOST_SET_VRING_ADDR, &a));      /* misaligned */
	}
	/* a base 16 bytes below the top: fine without LOG_ALL or a logged ring */
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &high));
	TRY(vioctl(&d, VHOST_SET_FEATURES, &feat_log));
	TRY(log_ring(&d, 1, true));
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &wrap));
	/* a real log, then the bad ones again */
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &good));
	TRY(vioctl(&d, VHOST_SET_FEATURES, &feat_log));
	TRY(log_ring(&d, 1, true));
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &high));
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &wrap));
	/* a log that ends at the top of user space: memory whose bits lie beyond it */
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &top));
	m->nregions = 2;
	m->regions[0] = (struct vhost_memory_region){ GPA_BASE, MEMSZ, (uintptr_t)d.mem, 0 };
	m->regions[1] = (struct vhost_memory_region){ 1ull << 40, 4096, (uintptr_t)d.mem, 0 };
	TRY(vioctl(&d, VHOST_SET_MEM_TABLE, m));
	/* without back ends nothing is checked; getting one, or dropping it, is */
	TRY(dev_backend(&d, 0, false));
	TRY(dev_backend(&d, 1, false));
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &high));
	TRY(dev_backend(&d, 0, true));
	TRY(dev_backend(&d, 1, false));
	TRY(vioctl(&d, VHOST_SET_LOG_BASE, &good));
	TRY(dev_backend(&d, 0, true));
	TRY(dev_backend(&d, 1, true));
#undef TRY
	tr_note(t, "errno of each log ioctl");
	for (int i = 0; i < k; i++)
		tr_u32(t, (uint32_t)res[i]);
	{
		char list[256] = "";
		size_t n = 0;
		for (int i = 0; i < k; i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, " %d", res[i]);
		printf("  %s: errno:%s\n", path, list);
	}
	/* the device still works, logging */
	tx_add(&d, f, make_frame(f, 100, 11, 0), NULL, 0);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	if (log_settle(&d, &d.tx, 1, d.tx.avail_idx) < 0 || log_record(t, path, log, "TX after the errors") < 0)
		goto out;
	CHECK_OUT(capture(&d, 1, 3000, t, NULL) == 1, "%s: the frame did not reach the tap", path);
	r = 0;
out:
	dev_close(&d);
	free(m);
	if (toplog != MAP_FAILED)
		munmap(toplog, LOG_SIZE);
	if (log != MAP_FAILED)
		munmap(log, LOG_SIZE);
	if (efd >= 0)
		close(efd);
	return r;
}

/* Sends count sequence-numbered frames as fast as the ring allows; every move_every
 * frames calls mover(arg). Returns frames sent or -1. */
static int blast(struct dev *d, unsigned count, unsigned move_every, void (*mover)(void *), void *arg,
		 uint32_t *seqs, unsigned *ret_got)
{
	uint8_t f[MAXFRAME];
	unsigned sent = 0, got = 0;
	uint64_t end = now_ms() + 60000;

	while ((sent < count || got < count) && now_ms() < end) {
		uint16_t used = __atomic_load_n(&d->tx.vr.used->idx, __ATOMIC_ACQUIRE);
		unsigned batch = 0;

		while (sent < count && (uint16_t)(d->tx.avail_idx - used) < NUM / 2 && batch < 16) {
			tx_add(d, f, make_frame(f, 120, 6, sent), NULL, 0);
			d->tx.avail_idx++;
			sent++;
			batch++;
			if (mover && sent % move_every == 0)
				break;
		}
		if (batch) {
			d->tx.avail_idx = (uint16_t)(d->tx.avail_idx - batch);
			guest_publish(d, &d->tx, 1, (uint16_t)(d->tx.avail_idx + batch));
		}
		if (mover && batch && sent % move_every == 0)
			mover(arg);
		got += (unsigned)capture(d, count - got, batch ? 0 : 2, NULL, seqs + got);
		if (!batch && sent == count && got < count)
			usleep(200);
	}
	*ret_got = got;
	return (int)sent;
}

struct mover_arg {
	uint32_t dev, sc[2];
	unsigned n;
	int err;
};

static void mover(void *p)
{
	struct mover_arg *m = p;
	int r = queue_move(m->dev, m->sc[++m->n % 2]);

	if (r < 0)
		m->err = r;
}

static int check_seqs(const uint32_t *seqs, unsigned n, unsigned count)
{
	if (n != count) {
		fprintf(stderr, "FAIL [%s]: %u of %u frames arrived\n", scenario, n, count);
		return -1;
	}
	for (unsigned i = 0; i < n; i++)
		if (seqs[i] != i) {
			fprintf(stderr, "FAIL [%s]: frame %u carries sequence %u (loss, duplication or reordering)\n",
				scenario, i, seqs[i]);
			return -1;
		}
	return 0;
}

/* Logging switched on and off every 100 frames while sequence-numbered frames flow (elvis
 * only: no transcript to compare, vhost-net's timing differs): every frame arrives once and
 * in order, the queue stays healthy, and the periods with logging on left bits. Exitless
 * stays auto, so the switch also meets a polling queue. */
struct log_toggle {
	struct dev *d;
	uint8_t *log;
	int efd;
	unsigned n;
	int err;
};

static void log_toggler(void *p)
{
	struct log_toggle *lt = p;

	if (log_switch(lt->d, lt->log, lt->efd, 3, ++lt->n % 2) < 0)
		lt->err = -1;
}

static int sc_log_switch(void)
{
	struct dev d;
	unsigned count = 3000, got = 0;
	uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
	struct log_toggle lt = { .d = &d };
	struct elvis_queue_info qi;
	int r = -1;
	bool bits = false;

	memset(&d, 0, sizeof(d));
	CHECK_OUT(seqs && dev_open(&d, ELVIS_PATH, "vt0", F_ALL) == 0, "open");
	lt.log = mmap(NULL, LOG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lt.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_OUT(lt.log != MAP_FAILED && lt.efd >= 0, "log");
	blast(&d, count, 100, log_toggler, &lt, seqs, &got);
	CHECK_OUT(!lt.err, "switching the log failed");
	if (check_seqs(seqs, got, count) < 0)
		goto out;
	CHECK_OUT(info_of(d.id, &qi) == 0 && qi.state == ELVIS_QUEUE_STATE_READY, "queue state %u", qi.state);
	for (size_t i = 0; i < LOG_MEM_BYTES; i++)
		bits |= lt.log[LOG_MEM_BYTE + i] != 0;
	CHECK_OUT(bits && efd_read(lt.efd), "nothing was logged while logging was on");
	printf("  %u frames, logging switched %u times: none lost, duplicated or reordered\n", count, lt.n);
	r = 0;
out:
	dev_close(&d);
	if (lt.log && lt.log != MAP_FAILED)
		munmap(lt.log, LOG_SIZE);
	if (lt.efd > 0)
		close(lt.efd);
	free(seqs);
	return r;
}

/* A queue moved between two sidecores every 50 frames: nothing lost, duplicated or
 * reordered. */
static int sc_move(void)
{
	struct dev d;
	struct mover_arg m = { 0 };
	unsigned count = 3000, got = 0;
	uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
	int r = -1;

	CHECK(sidecore_new(0, &m.sc[0]) == 0 && sidecore_new(1, &m.sc[1]) == 0, "create sidecores");
	if (dev_open(&d, ELVIS_PATH, "vtmove", F_ALL) < 0)
		goto out;
	m.dev = d.id;
	if (queue_move(d.id, m.sc[0]) < 0) {
		fail_at(__LINE__, "move", "initial move");
		goto out;
	}
	blast(&d, count, 50, mover, &m, seqs, &got);
	if (m.err) {
		fprintf(stderr, "FAIL [%s]: QUEUE_MOVE failed: %s\n", scenario, strerror(-m.err));
		goto out;
	}
	printf("  %u moves, %u frames\n", m.n, got);
	if (check_seqs(seqs, got, count) < 0)
		goto out;
	{
		struct elvis_sidecore_info a, b;
		if (sidecore_info(m.sc[0], &a) < 0 || sidecore_info(m.sc[1], &b) < 0 || a.nqueues + b.nqueues != 1) {
			fprintf(stderr, "FAIL [%s]: sidecores do not list the queue once\n", scenario);
			goto out;
		}
		if (sidecore_del(m.sc[0]) == -EBUSY || sidecore_del(m.sc[1]) == -EBUSY) {
			/* one of them serves the queue: expected; the other is gone */
		}
	}
	r = 0;
out:
	dev_close(&d);
	/* with the device gone both must be destroyable */
	sidecore_del(m.sc[0]);
	sidecore_del(m.sc[1]);
	free(seqs);
	return r;
}

/* The receive direction under moves: the host sends sequence-numbered frames in windows
 * (so the tap's own queue never overflows), the guest reposts buffers, and the queue
 * moves between two sidecores every window. */
static int sc_move_rx(void)
{
	struct dev d;
	struct mover_arg m = { 0 };
	unsigned count = 2000, got = 0, win = 32;
	uint8_t f[MAXFRAME];
	int r = -1;

	CHECK(sidecore_new(0, &m.sc[0]) == 0 && sidecore_new(1, &m.sc[1]) == 0, "create sidecores");
	if (dev_open(&d, ELVIS_PATH, "vtmrx", F_ALL) < 0 || queue_move(d.id, m.sc[0]) < 0)
		goto out;
	m.dev = d.id;
	rx_post(&d, NUM, 2048);
	for (unsigned sent = 0; sent < count;) {
		uint64_t end;

		for (unsigned i = 0; i < win; i++, sent++)
			if (host_send(&d, f, make_frame(f, 200, 8, sent)) < 0) {
				fail_at(__LINE__, "send", "host send %u", sent);
				goto out;
			}
		mover(&m);
		end = now_ms() + 5000;
		while (got < sent && now_ms() < end) {
			uint16_t used = __atomic_load_n(&d.rx.vr.used->idx, __ATOMIC_ACQUIRE);
			while (d.rx.last_used != used) {
				struct vring_used_elem *u = &d.rx.vr.used->ring[d.rx.last_used % NUM];
				uint8_t *b = d.mem + d.rx.buf_off + (uint64_t)(u->id % NUM) * BUFSZ;
				uint32_t seq;

				memcpy(&seq, b + d.hl + 18, 4);
				if (u->len != (uint32_t)d.hl + 200 || seq != got) {
					fprintf(stderr, "FAIL [%s]: frame %u: seq %u len %u\n", scenario, got, seq, u->len);
					goto out;
				}
				got++;
				d.rx.last_used++;
				rx_post(&d, 1, 2048);
			}
			usleep(200);
		}
		if (got < sent) {
			fprintf(stderr, "FAIL [%s]: %u of %u frames reached the guest\n", scenario, got, sent);
			goto out;
		}
	}
	if (m.err) {
		fprintf(stderr, "FAIL [%s]: QUEUE_MOVE failed: %s\n", scenario, strerror(-m.err));
		goto out;
	}
	printf("  %u moves, %u frames received in order\n", m.n, got);
	r = 0;
out:
	dev_close(&d);
	sidecore_del(m.sc[0]);
	sidecore_del(m.sc[1]);
	return r;
}

/* Sidecores created and destroyed under load: each step moves the queue to a fresh
 * sidecore and destroys the one it left. */
static void churner(void *p)
{
	struct mover_arg *m = p;
	uint32_t fresh = 0;
	int r = sidecore_new((int)(m->n % 2), &fresh);

	if (r == 0)
		r = queue_move(m->dev, fresh);
	if (r == 0)
		r = sidecore_del(m->sc[0]);
	if (r < 0) {
		if (!m->err) {
			m->err = r;
			fprintf(stderr, "  churn step %u: new sidecore %u, old %u: %s\n", m->n, fresh, m->sc[0],
				strerror(-r));
		}
		return;
	}
	m->sc[0] = fresh;
	m->n++;
}

static int sc_churn(void)
{
	struct dev d;
	struct mover_arg m = { 0 };
	unsigned count = 2000, got = 0;
	uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
	int r = -1;

	CHECK(sidecore_new(1, &m.sc[0]) == 0, "create sidecore");
	if (dev_open(&d, ELVIS_PATH, "vtchurn", F_ALL) < 0 || queue_move(d.id, m.sc[0]) < 0)
		goto out;
	m.dev = d.id;
	blast(&d, count, 40, churner, &m, seqs, &got);
	if (m.err) {
		fprintf(stderr, "FAIL [%s]: create/move/destroy under load failed: %s\n", scenario, strerror(-m.err));
		goto out;
	}
	printf("  %u sidecores created and destroyed under load\n", m.n);
	r = check_seqs(seqs, got, count);
out:
	dev_close(&d);
	sidecore_del(m.sc[0]);
	free(seqs);
	return r;
}

/* N devices in N processes (N address spaces) on one sidecore. */
static int sc_ndev(void)
{
	enum { N = 4 };
	uint32_t sc;
	int pipes[N][2], go[N][2];
	pid_t pids[N];
	int r = 0;

	CHECK(sidecore_new(1, &sc) == 0, "create sidecore");
	for (int i = 0; i < N; i++) {
		if (pipe(pipes[i]) < 0 || pipe(go[i]) < 0)
			return -1;
		pids[i] = fork();
		if (pids[i] == 0) {
			struct dev d;
			char name[IFNAMSIZ], c;
			unsigned count = 500, got = 0;
			uint32_t *seqs = calloc(count + 16, sizeof(*seqs));

			snprintf(name, sizeof(name), "vtn%d", i);
			if (dev_open(&d, ELVIS_PATH, name, F_ALL) < 0)
				_exit(2);
			if (write(pipes[i][1], &d.id, 4) != 4 || read(go[i][0], &c, 1) != 1)
				_exit(3);
			blast(&d, count, 0, NULL, NULL, seqs, &got);
			_exit(check_seqs(seqs, got, count) < 0 ? 4 : 0);
		}
	}
	for (int i = 0; i < N; i++) {
		uint32_t id;
		if (read(pipes[i][0], &id, 4) != 4 || queue_move(id, sc) < 0) {
			fprintf(stderr, "FAIL [%s]: child %d did not set up or could not be moved\n", scenario, i);
			r = -1;
		}
	}
	{
		struct elvis_sidecore_info si;
		if (sidecore_info(sc, &si) < 0 || si.nqueues != N) {
			fprintf(stderr, "FAIL [%s]: sidecore serves %u queues, expected %d\n", scenario, si.nqueues, N);
			r = -1;
		}
		if (sidecore_del(sc) != -EBUSY) {
			fprintf(stderr, "FAIL [%s]: destroying a busy sidecore did not fail with EBUSY\n", scenario);
			r = -1;
		}
	}
	for (int i = 0; i < N; i++)
		if (write(go[i][1], "g", 1) != 1)
			r = -1;
	for (int i = 0; i < N; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "FAIL [%s]: child %d exited with status %#x\n", scenario, i, st);
			r = -1;
		}
	}
	{
		struct elvis_sidecore_info si;
		if (sidecore_info(sc, &si) < 0 || si.nqueues != 0 || si.packets < N * 500) {
			fprintf(stderr, "FAIL [%s]: after exit: %u queues, %llu packets\n", scenario, si.nqueues,
				(unsigned long long)si.packets);
			r = -1;
		}
	}
	if (sidecore_del(sc) < 0) {
		fprintf(stderr, "FAIL [%s]: cannot destroy the idle sidecore\n", scenario);
		r = -1;
	}
	return r;
}

/* Keeps the TX rings of nd devices full (polled, so no kicks) until stop, round robin:
 * one process serving several devices never leaves a ring waiting for its time slice.
 * With every ring full it sleeps 100 us rather than yield: a yield hands the sidecore
 * sharing its CPU a whole tick, long enough to drain a ring, while the wake-up of a
 * higher-priority flooder preempts the sidecore at its next round. */
static void flood_many(struct dev *ds, int nd, uint64_t stop)
{
	uint8_t f[MAXFRAME];
	unsigned seq = 0;

	make_frame(f, 120, 11, 0);
	while (now_ms() < stop) {
		unsigned total = 0;

		for (int k = 0; k < nd; k++) {
			struct dev *d = &ds[k];
			uint16_t used = __atomic_load_n(&d->tx.vr.used->idx, __ATOMIC_ACQUIRE);
			unsigned n = 0;

			while ((uint16_t)(d->tx.avail_idx + n - used) < NUM - 1) {
				d->tx.avail_idx = (uint16_t)(d->tx.avail_idx + n);
				memcpy(f + 18, &seq, 4);
				seq++;
				tx_add(d, f, 120, NULL, 0);
				d->tx.avail_idx = (uint16_t)(d->tx.avail_idx - n);
				n++;
			}
			if (n)
				guest_publish(d, &d->tx, 1, (uint16_t)(d->tx.avail_idx + n));
			total += n;
		}
		if (!total)
			usleep(100);
	}
}

/* Weights: two saturated devices on one sidecore share it in proportion to their
 * weights (deficit round robin over per-turn budgets). */
static int sc_weights(void)
{
	enum { N = 2 };
	static const uint32_t weight[N] = { 100, 300 };
	uint32_t sc, ids[N];
	int pipe_id[2], go[2];
	pid_t pid;
	struct elvis_ioc_poll gp = { .scope = ELVIS_POLL_SCOPE_GLOBAL, .mask = ELVIS_POLL_SET_BUDGET_PACKETS,
				     .budget_packets = 8 };
	struct elvis_queue_counters c0[N], c1[N];
	double ratio;
	bool saturated = false;
	int r = 0;

	CHECK(sidecore_new(1, &sc) == 0, "create sidecore");
	CHECK(ctl(ELVIS_IOC_SET_POLL, &gp) == 0, "budget");
	/* one process keeps both rings full (two processes on one CPU would each leave its
	 * ring empty while the other runs, and the shares would follow the time slices). It
	 * runs on the sidecore's CPU at nice -10: under TCG it is no faster than the sidecore,
	 * and on a vCPU of its own it loses that vCPU to host load for longer than a ring
	 * lasts. Sharing the CPU, it refills whenever it wakes and a host that takes the vCPU
	 * stops both */
	CHECK(pipe(pipe_id) == 0 && pipe(go) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		static struct dev d[N];
		char name[IFNAMSIZ], c;
		cpu_set_t cpus;

		CPU_ZERO(&cpus);
		CPU_SET(1, &cpus);
		sched_setaffinity(0, sizeof(cpus), &cpus);
		errno = 0;
		if (nice(-10) == -1 && errno)
			_exit(4);
		for (int i = 0; i < N; i++) {
			snprintf(name, sizeof(name), "vtw%d", i);
			if (dev_open(&d[i], ELVIS_PATH, name, F_V1 | F_MRG) < 0)
				_exit(2);
			if (write(pipe_id[1], &d[i].id, 4) != 4)
				_exit(3);
		}
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		flood_many(d, N, now_ms() + 9000);
		_exit(0);
	}
	for (int i = 0; i < N; i++) {
		CHECK(read(pipe_id[0], &ids[i], 4) == 4, "device %d", i);
		struct elvis_ioc_poll qp = { .scope = ELVIS_POLL_SCOPE_QUEUE, .device = ids[i],
					     .mask = ELVIS_POLL_SET_WEIGHT | ELVIS_POLL_SET_EXITLESS, .weight = weight[i],
					     .exitless = ELVIS_EXITLESS_MODE_ALWAYS };
		CHECK(ctl(ELVIS_IOC_SET_POLL, &qp) == 0 && queue_move(ids[i], sc) == 0, "weight, move");
	}
	CHECK(write(go[1], "g", 1) == 1, "go");
	msleep(1000);
	/* shares only mean something while the sidecore is the bottleneck: a window in which
	 * a ring was often found empty (the flooder's vCPU starved by the host) is measured
	 * again rather than judged */
	for (int w = 0; w < 4; w++) {
		saturated = true;
		for (int i = 0; i < N; i++)
			counters_of(ids[i], &c0[i]);
		msleep(1500);
		for (int i = 0; i < N; i++) {
			uint64_t polls, empty;
			counters_of(ids[i], &c1[i]);
			polls = c1[i].polls - c0[i].polls;
			empty = c1[i].empty_polls - c0[i].empty_polls;
			if (!polls || empty * 4 > polls) {
				printf("  window %d: device %u found its ring empty in %llu of %llu turns: measuring again\n",
				       w, ids[i], (unsigned long long)empty, (unsigned long long)polls);
				saturated = false;
			}
		}
		if (saturated)
			break;
	}
	{
		int st;
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			r = -1;
	}
	gp.budget_packets = 128;
	ctl(ELVIS_IOC_SET_POLL, &gp);
	sidecore_del(sc);
	ratio = (double)(c1[1].tx_packets - c0[1].tx_packets) / (double)(c1[0].tx_packets - c0[0].tx_packets + 1);
	printf("  weights %u:%u -> %llu:%llu packets (ratio %.2f), busy %llu:%llu ms\n", weight[0], weight[1],
	       (unsigned long long)(c1[0].tx_packets - c0[0].tx_packets),
	       (unsigned long long)(c1[1].tx_packets - c0[1].tx_packets), ratio,
	       (unsigned long long)(c1[0].busy_ns - c0[0].busy_ns) / 1000000,
	       (unsigned long long)(c1[1].busy_ns - c0[1].busy_ns) / 1000000);
	if (!r && !saturated) {
		fprintf(stderr, "FAIL [%s]: in no window did the flooder keep both rings full (the guest's vCPUs "
			"were starved by load on the host): the shares cannot be judged\n", scenario);
		return -1;
	}
	/* each queue waited for its turn while the other had the sidecore */
	for (int i = 0; i < N; i++) {
		uint64_t ws = c1[i].wait_samples - c0[i].wait_samples;
		printf("  device %u: mean wait for a turn %.1f us over %llu turns\n", ids[i],
		       ws ? (double)(c1[i].wait_ns - c0[i].wait_ns) / (double)ws / 1e3 : 0.0, (unsigned long long)ws);
		if (!ws || c1[i].wait_ns <= c0[i].wait_ns) {
			fprintf(stderr, "FAIL [%s]: no wait time counted for device %u\n", scenario, ids[i]);
			return -1;
		}
	}
	/* per-VM accounting: the heavier device consumed more sidecore time */
	if (c1[1].busy_ns - c0[1].busy_ns <= c1[0].busy_ns - c0[0].busy_ns) {
		fprintf(stderr, "FAIL [%s]: busy time does not follow the work done\n", scenario);
		return -1;
	}
	if (r || ratio < 2.0 || ratio > 4.5) {
		fprintf(stderr, "FAIL [%s]: packets are not shared 1:3 (flooder %s)\n", scenario, r ? "failed" : "ok");
		return -1;
	}
	return 0;
}

/* The owner killed in the middle of traffic: the module cleans up. */
static int sc_kill(void)
{
	pid_t pid = fork();
	int st;
	uint32_t before = 0, after = 0;

	if (pid == 0) {
		struct dev d;
		unsigned got;
		uint32_t *seqs = calloc(1 << 20, sizeof(*seqs));
		if (dev_open(&d, ELVIS_PATH, "vtkill", F_ALL) < 0)
			_exit(2);
		if (set_exitless(d.id, ELVIS_EXITLESS_MODE_ALWAYS) < 0)
			_exit(3);
		blast(&d, 1 << 20, 0, NULL, NULL, seqs, &got);
		_exit(0);
	}
	msleep(1500);
	CHECK(read_array(ELVIS_IOC_LIST_QUEUES, NULL, sizeof(struct elvis_queue_info), 0, &before) == 0, "list");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st), "child was not killed (status %#x)", st);
	CHECK(read_array(ELVIS_IOC_LIST_QUEUES, NULL, sizeof(struct elvis_queue_info), 0, &after) == 0, "list");
	CHECK(before >= 1 && after == before - 1, "queues before %u after %u", before, after);
	return 0;
}

/* Polling: with exitless always the device suppresses kicks and still serves. */
static int sc_poll(void)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	struct elvis_queue_info qi;
	struct elvis_queue_counters c0, c1;
	int r = -1;

	if (dev_open(&d, ELVIS_PATH, "vtpoll", F_V1 | F_MRG) < 0)
		goto out;
	if (info_of(d.id, &qi) < 0 || strcmp(qi.tap, d.tap) != 0 || qi.tap_ifindex != (uint32_t)d.ifindex ||
	    qi.owner_pid != getpid() || qi.backends != 3 || qi.ring_num[0] != NUM || qi.state != ELVIS_QUEUE_STATE_READY ||
	    qi.features != (F_V1 | F_MRG)) {
		fprintf(stderr, "FAIL [%s]: queue info: tap '%s' ifindex %u (want '%s' %d), pid %d, backends %u, state %u\n",
			scenario, qi.tap, qi.tap_ifindex, d.tap, d.ifindex, qi.owner_pid, qi.backends, qi.state);
		goto out;
	}
	if (set_exitless(d.id, ELVIS_EXITLESS_MODE_ALWAYS) < 0)
		goto out;
	tx_add(&d, f, make_frame(f, 100, 7, 0), NULL, 0);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0)
		goto out;
	msleep(20);
	if (!(d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY) || info_of(d.id, &qi) < 0 ||
	    !(qi.flags & ELVIS_QUEUE_F_POLLING)) {
		fprintf(stderr, "FAIL [%s]: polled queue does not suppress kicks\n", scenario);
		goto out;
	}
	counters_of(d.id, &c0);
	d.kicks_sent = 0;
	for (unsigned i = 1; i <= 200; i++) {
		tx_add(&d, f, make_frame(f, 100, 7, i), NULL, 0);
		guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
		if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0)
			goto out;
	}
	counters_of(d.id, &c1);
	if (d.kicks_sent != 0 || c1.kicks != c0.kicks || c1.tx_packets - c0.tx_packets != 200) {
		fprintf(stderr, "FAIL [%s]: polled: %u kicks sent, kicks %llu->%llu, tx %llu->%llu\n", scenario,
			d.kicks_sent, (unsigned long long)c0.kicks, (unsigned long long)c1.kicks,
			(unsigned long long)c0.tx_packets, (unsigned long long)c1.tx_packets);
		goto out;
	}
	/* back to notifications: kicks are wanted again once idle */
	if (set_exitless(d.id, ELVIS_EXITLESS_MODE_NEVER) < 0)
		goto out;
	msleep(100);
	if (d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY) {
		fprintf(stderr, "FAIL [%s]: notification mode still suppresses kicks\n", scenario);
		goto out;
	}
	r = capture(&d, 201, 3000, NULL, NULL) == 201 ? 0 : -1;
	if (r)
		fprintf(stderr, "FAIL [%s]: frames missing on the tap\n", scenario);
out:
	dev_close(&d);
	return r;
}

/* ---- module parameters ---- */
static int param_write(const char *name, unsigned v)
{
	char path[128];
	int fd, r;

	snprintf(path, sizeof(path), "/sys/module/elvis/parameters/%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	r = dprintf(fd, "%u\n", v) < 0 ? -errno : 0;
	if (close(fd) < 0 && !r)
		r = -errno;
	return r;
}

static long param_read(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/elvis/parameters/%s", name);
	f = fopen(path, "r");
	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

/* QEMU's poll-us on a notification-driven queue: after its last work the sidecore
 * keeps looking at the ring, kicks off, for the busy-loop timeout, then wants kicks
 * again. A frame published inside that window without a kick is still taken. */
static int sc_busyloop(void)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	struct vhost_vring_state st = { 1, 400000 };    /* 400 ms, long enough to see under TCG */
	uint64_t t0;
	int r = -1;

	/* above the default bound (50 ms): raise it for this scenario */
	if (param_write("busyloop_max_us", ELVIS_NET_BUSYLOOP_MAX_US_LIMIT) < 0) {
		fprintf(stderr, "FAIL [%s]: cannot raise busyloop_max_us\n", scenario);
		return -1;
	}
	if (dev_open(&d, ELVIS_PATH, "vtbusy", F_V1 | F_MRG) < 0)
		goto out;
	if (set_exitless(d.id, ELVIS_EXITLESS_MODE_NEVER) < 0 || vioctl(&d, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st) < 0)
		goto out;
	tx_add(&d, f, make_frame(f, 100, 9, 0), NULL, 0);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0)
		goto out;
	t0 = now_ms();
	msleep(50);
	if (!(d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY)) {
		fprintf(stderr, "FAIL [%s]: kicks wanted again 50 ms after work despite a 400 ms busy loop\n", scenario);
		goto out;
	}
	/* published without a kick (the flag says none is needed) */
	d.kicks_sent = 0;
	tx_add(&d, f, make_frame(f, 100, 9, 1), NULL, 0);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	if (d.kicks_sent || wait_used(&d.tx, d.tx.avail_idx, 300) < 0) {
		fprintf(stderr, "FAIL [%s]: a frame published during the busy loop was not taken\n", scenario);
		goto out;
	}
	while (now_ms() - t0 < 2000 && (d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY))
		msleep(20);
	if (d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY) {
		fprintf(stderr, "FAIL [%s]: kicks still suppressed 2 s after the last work\n", scenario);
		goto out;
	}
	printf("  busy loop held kicks off for ~%llu ms after the last frame\n", (unsigned long long)(now_ms() - t0));
	r = capture(&d, 2, 3000, NULL, NULL) == 2 ? 0 : -1;
	if (r)
		fprintf(stderr, "FAIL [%s]: frames missing on the tap\n", scenario);
out:
	dev_close(&d);
	param_write("busyloop_max_us", ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT);
	return r;
}

/* ---- fault containment: guest memory its VMM never serves ----
 * A page of a device's guest memory is taken away (MADV_REMOVE) and registered with
 * userfaultfd: the next access to it, the kernel's included, sleeps until the page is
 * given back with UFFDIO_COPY, the way postcopy migration or a FUSE-backed file can
 * keep a VMM's memory from its device for as long as the VMM likes. Only that device
 * may stall: its sidecore serves the others, /dev/elvis answers, and when the page comes
 * the device goes on where it stopped, nothing lost or repeated. */
static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0)
		return -1;
	return fd;
}

/* Makes page p absent (punch: it is shared memory with content, saved into keep) and
 * registers it with uffd. */
static int uffd_arm(int uffd, void *p, void *keep, bool punch)
{
	struct uffdio_register reg = { .range = { (uintptr_t)p, 4096 }, .mode = UFFDIO_REGISTER_MODE_MISSING };

	if (keep)
		memcpy(keep, p, 4096);
	if (punch && madvise(p, 4096, MADV_REMOVE) < 0)
		return -1;
	return ioctl(uffd, UFFDIO_REGISTER, &reg);
}

/* Someone (the device's slow path, an ioctl) is asleep on page p within ms. */
static bool uffd_faulted(int uffd, void *p, unsigned ms)
{
	struct pollfd pfd = { uffd, POLLIN, 0 };
	struct uffd_msg msg;
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		if (poll(&pfd, 1, 100) == 1 && read(uffd, &msg, sizeof(msg)) == sizeof(msg) &&
		    msg.event == UFFD_EVENT_PAGEFAULT && (msg.arg.pagefault.address & ~4095ull) == (uintptr_t)p)
			return true;
	return false;
}

/* Serves the fault: page p gets content, its sleepers wake. */
static int uffd_serve(int uffd, void *p, const void *content)
{
	struct uffdio_copy c = { .dst = (uintptr_t)p, .src = (uintptr_t)content, .len = 4096 };

	return ioctl(uffd, UFFDIO_COPY, &c);
}

/* A kernel thread called comm exists. */
static bool kthread_exists(const char *comm)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d))) {
		char path[300], name[32] = "";
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(name, sizeof(name), f))
			found = strncmp(name, comm, strlen(comm)) == 0 && name[strlen(comm)] == '\n';
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* The commands a daemon issues every tick, each timed: listings, counters, moving the
 * stalled device away and back, its parameters. None may wait for that device. */
static int control_prompt(uint32_t dev, const uint32_t sc[2])
{
	static const char *const what[] = { "LIST_QUEUES", "LIST_SIDECORES", "READ_COUNTERS", "QUEUE_MOVE away",
					     "QUEUE_MOVE back", "SET_POLL" };
	static unsigned char buf[128 * 64];
	struct elvis_ioc_poll p = { .scope = ELVIS_POLL_SCOPE_QUEUE, .device = dev, .mask = ELVIS_POLL_SET_WEIGHT,
				    .weight = ELVIS_WEIGHT_DEFAULT };
	uint64_t worst = 0;
	uint32_t n;

	for (int k = 0; k < 6; k++) {
		uint64_t t0 = now_ms(), t;
		int r;

		switch (k) {
		case 0:
			r = read_array(ELVIS_IOC_LIST_QUEUES, buf, sizeof(struct elvis_queue_info), 64, &n);
			break;
		case 1:
			r = read_array(ELVIS_IOC_LIST_SIDECORES, buf, sizeof(struct elvis_sidecore_info), 64, &n);
			break;
		case 2:
			r = read_array(ELVIS_IOC_READ_COUNTERS, buf, sizeof(struct elvis_queue_counters), 64, &n);
			break;
		case 3:
		case 4:
			r = queue_move(dev, sc[k == 3 ? 1 : 0]);
			break;
		default:
			r = ctl(ELVIS_IOC_SET_POLL, &p) < 0 ? -errno : 0;
			break;
		}
		t = now_ms() - t0;
		CHECK(r == 0 && t < 1000, "%s on a stalled device: %s after %llu ms", what[k], strerror(-r),
		      (unsigned long long)t);
		if (t > worst)
			worst = t;
	}
	printf("  control commands while device %u is stalled: slowest %llu ms\n", dev, (unsigned long long)worst);
	return 0;
}

/* While bad is stalled: /dev/elvis answers, good (same sidecore) carries sequence-
 * numbered traffic, and the sidecore still goes to sleep when good is idle. */
static int while_stalled(struct dev *bad, struct dev *good, const uint32_t sc[2], bool slow_path)
{
	struct elvis_queue_info qi = { 0 };
	unsigned count = 500, got = 0;
	uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
	int r = -1;

	if (slow_path && (info_of(bad->id, &qi) < 0 || !(qi.flags & ELVIS_QUEUE_F_SLOW_PATH) ||
			  qi.state != ELVIS_QUEUE_STATE_READY)) {
		fprintf(stderr, "FAIL [%s]: the stalled device is not listed on its slow path (flags %#x state %u)\n",
			scenario, qi.flags, qi.state);
		goto out;
	}
	if (control_prompt(bad->id, sc) < 0)
		goto out;
	blast(good, count, 0, NULL, NULL, seqs, &got);
	if (check_seqs(seqs, got, count) < 0)
		goto out;
	printf("  device %u on the same sidecore: %u frames in order meanwhile\n", good->id, got);
	if (!sidecore_sleeps(good->id)) {
		fprintf(stderr, "FAIL [%s]: the stalled device keeps its sidecore busy\n", scenario);
		goto out;
	}
	r = 0;
out:
	free(seqs);
	return r;
}

/* After the fault is served: off the slow path, no error, and count more frames flow. */
static int recovered(struct dev *d, unsigned count)
{
	struct elvis_queue_info qi = { 0 };
	struct elvis_queue_counters c = { 0 };
	uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
	uint64_t end = now_ms() + 2000;
	unsigned got = 0;
	int r = -1;

	while (now_ms() < end && (info_of(d->id, &qi) < 0 || (qi.flags & ELVIS_QUEUE_F_SLOW_PATH)))
		msleep(20);
	if ((qi.flags & ELVIS_QUEUE_F_SLOW_PATH) || qi.state != ELVIS_QUEUE_STATE_READY || counters_of(d->id, &c) < 0 ||
	    c.errors) {
		fprintf(stderr, "FAIL [%s]: after the fault: flags %#x state %u errors %llu\n", scenario, qi.flags,
			qi.state, (unsigned long long)c.errors);
		goto out;
	}
	blast(d, count, 0, NULL, NULL, seqs, &got);
	if (check_seqs(seqs, got, count) < 0)
		goto out;
	printf("  device %u after the fault was served: %u more frames in order\n", d->id, got);
	r = 0;
out:
	free(seqs);
	return r;
}

/* Opens bad and good, both served by sc[0]; sc[1] is there to move to. */
static int fault_setup(struct dev *bad, struct dev *good, uint64_t bad_feat, uint32_t sc[2])
{
	memset(bad, 0, sizeof(*bad));
	memset(good, 0, sizeof(*good));
	CHECK(sidecore_new(1, &sc[0]) == 0 && sidecore_new(0, &sc[1]) == 0, "create sidecores");
	CHECK(dev_open(bad, ELVIS_PATH, "vtfbad", bad_feat) == 0 && dev_open(good, ELVIS_PATH, "vtfgood", F_ALL) == 0,
	      "open devices");
	CHECK(queue_move(bad->id, sc[0]) == 0 && queue_move(good->id, sc[0]) == 0, "move both to sidecore %u", sc[0]);
	return 0;
}

static void fault_teardown(struct dev *bad, struct dev *good, uint32_t sc[2], int uffd)
{
	dev_close(bad);
	dev_close(good);
	if (uffd >= 0)
		close(uffd);
	sidecore_del(sc[0]);
	sidecore_del(sc[1]);
}

/* TX: the page holding a frame the guest queued is absent. The frame reaches the tap
 * once, after the page does. Then the same again, and the VMM closes the device while
 * it waits: close answers at once, the device leaves the listing, and its thread goes
 * away once the fault can be resolved (here: the userfaultfd closes, as when the VMM
 * exits). */
static int sc_fault_tx(void)
{
	static uint8_t keep[4096] __attribute__((aligned(4096)));
	struct dev bad, good;
	struct elvis_queue_info qi;
	uint32_t sc[2] = { 0 }, seq[4] = { ~0u };
	uint8_t f[MAXFRAME], *page;
	char comm[32];
	uint64_t t0, t_close, end;
	int uffd = -1, r = -1;

	if (fault_setup(&bad, &good, F_ALL, sc) < 0)
		goto out;
	tx_add(&bad, f, make_frame(f, 200, 20, 0), NULL, 0);
	page = bad.mem + ((bad.tx.buf_off + (uint64_t)(bad.tx.avail_idx % NUM) * BUFSZ) & ~4095ull);
	uffd = uffd_open();
	CHECK_OUT(uffd >= 0 && uffd_arm(uffd, page, keep, true) == 0, "userfaultfd on the TX buffer page");
	guest_publish(&bad, &bad.tx, 1, (uint16_t)(bad.tx.avail_idx + 1));
	CHECK_OUT(uffd_faulted(uffd, page, 5000), "the device never waited for its TX buffer page");
	if (while_stalled(&bad, &good, sc, true) < 0)
		goto out;
	CHECK_OUT(capture(&bad, 1, 200, NULL, NULL) == 0 && bad.tx.vr.used->idx == 0, "a frame left before its page came");
	CHECK_OUT(uffd_serve(uffd, page, keep) == 0, "UFFDIO_COPY");
	CHECK_OUT(wait_used(&bad.tx, bad.tx.avail_idx, 5000) == 0, "the TX chain was not completed after the page came");
	CHECK_OUT(capture(&bad, 2, 1000, NULL, seq) == 1 && seq[0] == 0, "the frame did not reach the tap once");
	if (recovered(&bad, 300) < 0)
		goto out;

	/* again, and the VMM closes the device while its slow path waits */
	tx_add(&bad, f, make_frame(f, 200, 20, 1), NULL, 0);
	page = bad.mem + ((bad.tx.buf_off + (uint64_t)(bad.tx.avail_idx % NUM) * BUFSZ) & ~4095ull);
	CHECK_OUT(uffd_arm(uffd, page, NULL, true) == 0, "userfaultfd on another TX buffer page");
	guest_publish(&bad, &bad.tx, 1, (uint16_t)(bad.tx.avail_idx + 1));
	CHECK_OUT(uffd_faulted(uffd, page, 5000), "the device never waited for its TX buffer page");
	snprintf(comm, sizeof(comm), "elvis-net%u", bad.id);
	CHECK_OUT(kthread_exists(comm), "no thread %s", comm);
	t0 = now_ms();
	close(bad.fd);
	bad.fd = 0;
	t_close = now_ms() - t0;
	CHECK_OUT(t_close < 1000, "close waited %llu ms for the stalled device", (unsigned long long)t_close);
	CHECK_OUT(info_of(bad.id, &qi) == -ENOENT, "a closed device is still listed");
	close(uffd);
	uffd = -1;
	end = now_ms() + 5000;
	while (kthread_exists(comm) && now_ms() < end)
		msleep(20);
	CHECK_OUT(!kthread_exists(comm), "%s outlived its device and its fault", comm);
	printf("  closed while stalled: close took %llu ms, %s gone once the fault resolved\n",
	       (unsigned long long)t_close, comm);
	r = 0;
out:
	fault_teardown(&bad, &good, sc, uffd);
	return r;
}

/* RX: the guest's receive buffer page is absent when frames arrive from the tap. They
 * wait in the device (the first one in its bounce buffer, the next in the tap) and reach
 * the guest once each, in order, after the page does. */
static int sc_fault_rx(void)
{
	static uint8_t keep[4096] __attribute__((aligned(4096)));
	struct dev bad, good;
	uint32_t sc[2] = { 0 };
	uint8_t f[MAXFRAME], *page;
	int uffd = -1, r = -1;

	if (fault_setup(&bad, &good, F_ALL, sc) < 0)
		goto out;
	rx_post(&bad, 8, 2048);
	page = bad.mem + bad.rx.buf_off;        /* buffers 0 and 1 */
	uffd = uffd_open();
	CHECK_OUT(uffd >= 0 && uffd_arm(uffd, page, keep, true) == 0, "userfaultfd on the RX buffer page");
	CHECK_OUT(host_send(&bad, f, make_frame(f, 300, 21, 0)) == 0 && host_send(&bad, f, make_frame(f, 300, 21, 1)) == 0,
	          "host send");
	CHECK_OUT(uffd_faulted(uffd, page, 5000), "the device never waited for its RX buffer page");
	if (while_stalled(&bad, &good, sc, true) < 0)
		goto out;
	CHECK_OUT(bad.rx.vr.used->idx == 0, "a receive buffer was used before its page came");
	CHECK_OUT(uffd_serve(uffd, page, keep) == 0, "UFFDIO_COPY");
	CHECK_OUT(wait_used(&bad.rx, 2, 5000) == 0, "%u of 2 frames delivered after the page came", bad.rx.vr.used->idx);
	for (uint32_t i = 0; i < 2; i++) {
		struct vring_used_elem *u = &bad.rx.vr.used->ring[i];
		uint8_t *b = bad.mem + bad.rx.buf_off + (uint64_t)u->id * BUFSZ;
		uint32_t seq;

		memcpy(&seq, b + bad.hl + 18, 4);
		CHECK_OUT(u->id == i && u->len == (uint32_t)bad.hl + 300 && seq == i && b[10] == 1 && b[11] == 0,
		          "frame %u: buffer %u, length %u, sequence %u", i, u->id, u->len, seq);
	}
	msleep(100);
	CHECK_OUT(bad.rx.vr.used->idx == 2, "a frame was delivered twice");
	printf("  2 frames held back by the absent page delivered once each, in order\n");
	if (recovered(&bad, 300) < 0)
		goto out;
	r = 0;
out:
	fault_teardown(&bad, &good, sc, uffd);
	return r;
}

/* The used ring: its entries start on a page of their own, which is absent. The frame
 * has already gone to the tap when the used entry cannot be written: it is completed
 * after the page comes, and not sent again. */
static int sc_fault_used(void)
{
	static uint8_t zero[4096] __attribute__((aligned(4096)));
	struct dev bad, good;
	struct gring *g;
	uint32_t sc[2] = { 0 }, seq[4] = { ~0u };
	uint64_t used_off = 0x200000 - 4;       /* flags and idx end one page, the entries start the next */
	struct vhost_vring_addr a = { .index = 1 };
	struct elvis_queue_counters c;
	uint8_t f[MAXFRAME], *page;
	int uffd = -1, r = -1;

	/* no EVENT_IDX: the avail event would live behind the entries, on the absent page */
	if (fault_setup(&bad, &good, F_V1 | F_MRG, sc) < 0)
		goto out;
	g = &bad.tx;
	g->vr.used = (struct vring_used *)(bad.mem + used_off);
	a.desc_user_addr = (uintptr_t)g->vr.desc;
	a.avail_user_addr = (uintptr_t)g->vr.avail;
	a.used_user_addr = (uintptr_t)g->vr.used;
	CHECK_OUT(vioctl(&bad, VHOST_SET_VRING_ADDR, &a) == 0, "move the TX used ring");
	page = bad.mem + used_off + 4;
	uffd = uffd_open();
	CHECK_OUT(uffd >= 0 && uffd_arm(uffd, page, NULL, true) == 0, "userfaultfd on the used entries' page");
	tx_add(&bad, f, make_frame(f, 200, 22, 0), NULL, 0);
	guest_publish(&bad, g, 1, (uint16_t)(g->avail_idx + 1));
	CHECK_OUT(uffd_faulted(uffd, page, 5000), "the device never waited for its used ring page");
	CHECK_OUT(capture(&bad, 2, 1000, NULL, seq) == 1 && seq[0] == 0,
	          "the frame did not leave once before its used entry");
	if (while_stalled(&bad, &good, sc, true) < 0)
		goto out;
	CHECK_OUT(g->vr.used->idx == 0, "used index moved without its entry");
	CHECK_OUT(uffd_serve(uffd, page, zero) == 0, "UFFDIO_COPY");
	CHECK_OUT(wait_used(g, g->avail_idx, 5000) == 0, "the chain was not completed after the page came");
	CHECK_OUT(g->vr.used->ring[0].id == 0 && capture(&bad, 1, 300, NULL, NULL) == 0,
	          "completed wrongly or sent twice");
	CHECK_OUT(counters_of(bad.id, &c) == 0 && c.tx_packets == 1, "tx_packets %llu", (unsigned long long)c.tx_packets);
	printf("  a frame sent before its used entry could be written: sent once, completed after the page came\n");
	if (recovered(&bad, 300) < 0)
		goto out;
	r = 0;
out:
	fault_teardown(&bad, &good, sc, uffd);
	return r;
}

/* The VMM's own ioctl on the device is asleep on a fault (its argument is on a page
 * nobody serves) while holding the device: the same as above must hold, and the device
 * works again once the ioctl completes. */
struct stuck_ioctl {
	struct dev *d;
	void *arg;
	int ret;
};

static void *stuck_ioctl_main(void *p)
{
	struct stuck_ioctl *s = p;

	s->ret = vioctl(s->d, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, s->arg);
	return NULL;
}

static int sc_fault_ioctl(void)
{
	static struct vhost_vring_state content[4096 / sizeof(struct vhost_vring_state)] __attribute__((aligned(4096)));
	struct dev bad, good;
	struct stuck_ioctl s = { 0 };
	struct vhost_vring_state st = { 1, 0 };
	uint32_t sc[2] = { 0 };
	uint8_t f[MAXFRAME];
	pthread_t th = 0;
	bool started = false;
	void *page = MAP_FAILED;
	int uffd = -1, r = -1;

	if (fault_setup(&bad, &good, F_ALL, sc) < 0)
		goto out;
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uffd = uffd_open();
	CHECK_OUT(page != MAP_FAILED && uffd >= 0 && uffd_arm(uffd, page, NULL, false) == 0,
	          "userfaultfd on a fresh page");
	s.d = &bad;
	s.arg = page;
	CHECK_OUT(pthread_create(&th, NULL, stuck_ioctl_main, &s) == 0, "thread");
	started = true;
	CHECK_OUT(uffd_faulted(uffd, page, 5000), "the ioctl never waited for its argument");
	/* a frame queued meanwhile waits for the device */
	tx_add(&bad, f, make_frame(f, 200, 23, 0), NULL, 0);
	guest_publish(&bad, &bad.tx, 1, (uint16_t)(bad.tx.avail_idx + 1));
	if (while_stalled(&bad, &good, sc, false) < 0)
		goto out;
	content[0] = (struct vhost_vring_state){ 1, 50 };
	CHECK_OUT(uffd_serve(uffd, page, content) == 0, "UFFDIO_COPY");
	pthread_join(th, NULL);
	started = false;
	CHECK_OUT(s.ret == 0, "the ioctl failed once its argument came");
	CHECK_OUT(vioctl(&bad, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st) == 0 && st.num == 50, "busyloop %u", st.num);
	CHECK_OUT(wait_used(&bad.tx, bad.tx.avail_idx, 5000) == 0 && capture(&bad, 1, 2000, NULL, NULL) == 1,
	          "the frame queued during the stall was not sent");
	if (recovered(&bad, 300) < 0)
		goto out;
	r = 0;
out:
	if (started) {
		uffd_serve(uffd, page, content);
		pthread_join(th, NULL);
	}
	fault_teardown(&bad, &good, sc, uffd);
	if (page != MAP_FAILED)
		munmap(page, 4096);
	return r;
}

/* VHOST_SET_VRING_BUSYLOOP_TIMEOUT is clamped to busyloop_max_us (50 ms by default,
 * root may raise it to 1 s and no further); GET answers the value in effect. */
static int sc_busyloop_bound(void)
{
	struct vhost_vring_state st;
	int fd = open(ELVIS_PATH, O_RDWR | O_CLOEXEC), r = -1;
	static const struct {
		uint32_t set, max, want;
	} cases[] = {
		{ 50, ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT, 50 },
		{ 400000, ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT, ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT },
		{ 0xffffffffu, ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT, ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT },
		{ 0xffffffffu, ELVIS_NET_BUSYLOOP_MAX_US_LIMIT, ELVIS_NET_BUSYLOOP_MAX_US_LIMIT },
		{ 400000, ELVIS_NET_BUSYLOOP_MAX_US_LIMIT, 400000 },
		{ 400000, 1000, 1000 },         /* lowered after the fact: the new bound holds */
	};

	CHECK_OUT(fd >= 0 && ioctl(fd, VHOST_SET_OWNER) == 0, "open and own");
	CHECK_OUT(param_read("busyloop_max_us") == ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT, "default bound %ld",
	          param_read("busyloop_max_us"));
	CHECK_OUT(param_write("busyloop_max_us", ELVIS_NET_BUSYLOOP_MAX_US_LIMIT + 1) == -EINVAL, "bound above the limit");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_OUT(param_write("busyloop_max_us", cases[i].max) == 0, "bound %u", cases[i].max);
		st = (struct vhost_vring_state){ 1, cases[i].set };
		if (i < sizeof(cases) / sizeof(cases[0]) - 1)
			CHECK_OUT(ioctl(fd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st) == 0, "set %u", cases[i].set);
		st = (struct vhost_vring_state){ 1, 0 };
		CHECK_OUT(ioctl(fd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st) == 0 && st.num == cases[i].want,
		          "bound %u, asked %u: got %u, want %u", cases[i].max, cases[i].set, st.num, cases[i].want);
	}
	printf("  busy-loop timeouts clamped to busyloop_max_us (default %u us, at most %u us)\n",
	       ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT, ELVIS_NET_BUSYLOOP_MAX_US_LIMIT);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	param_write("busyloop_max_us", ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT);
	return r;
}

/* Full load for seconds: two processes flood TX from a polled sidecore while the
 * queues move between two sidecores every second and counters are read all along.
 * The guest kernel must not report a soft lockup, RCU stall or warning. */
static int sc_soak(unsigned seconds)
{
	enum { N = 2 };
	uint32_t sc[2];
	int pipes[N][2];
	pid_t pids[N];
	uint32_t ids[N];
	int r = 0;
	uint64_t end;
	unsigned moves = 0;

	CHECK(sidecore_new(0, &sc[0]) == 0 && sidecore_new(1, &sc[1]) == 0, "create sidecores");
	for (int i = 0; i < N; i++) {
		CHECK(pipe(pipes[i]) == 0, "pipe");
		pids[i] = fork();
		if (pids[i] == 0) {
			struct dev d;
			char name[IFNAMSIZ];
			unsigned count = 2000, got, rounds = 0;
			uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
			/* outlives the parent's moves, which must all find the device */
			uint64_t stop = now_ms() + seconds * 1000ull + 2000;

			snprintf(name, sizeof(name), "vts%d", i);
			if (dev_open(&d, ELVIS_PATH, name, F_ALL) < 0 || set_exitless(d.id, ELVIS_EXITLESS_MODE_ALWAYS) < 0)
				_exit(2);
			if (write(pipes[i][1], &d.id, 4) != 4)
				_exit(3);
			while (now_ms() < stop) {
				/* sequence numbers restart each round: the tap sees them in order */
				got = 0;
				blast(&d, count, 0, NULL, NULL, seqs, &got);
				if (check_seqs(seqs, got, count) < 0)
					_exit(4);
				rounds++;
			}
			printf("  soak device %u: %u frames\n", d.id, rounds * count);
			dev_close(&d);
			_exit(0);
		}
		CHECK(read(pipes[i][0], &ids[i], 4) == 4, "child %d set up", i);
	}
	end = now_ms() + seconds * 1000ull;
	while (now_ms() < end) {
		struct elvis_queue_counters c;
		for (int k = 0; k < 10; k++) {
			for (int i = 0; i < N; i++)
				counters_of(ids[i], &c);
			msleep(100);
		}
		for (int i = 0; i < N; i++)
			if (queue_move(ids[i], sc[(moves + i) % 2]) < 0) {
				fprintf(stderr, "FAIL [%s]: moving device %u: %s\n", scenario, ids[i], strerror(errno));
				r = -1;
			}
		moves++;
	}
	for (int i = 0; i < N; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "FAIL [%s]: child %d exited with status %#x\n", scenario, i, st);
			r = -1;
		}
	}
	printf("  soak: %u s, %u move rounds\n", seconds, moves);
	if (sidecore_del(sc[0]) < 0 || sidecore_del(sc[1]) < 0) {
		fprintf(stderr, "FAIL [%s]: sidecores not destroyable after the devices closed\n", scenario);
		r = -1;
	}
	return r;
}

/* Relative numbers only (TCG guest, functional, not a performance claim): packets per
 * second and guest kicks per packet for the same sequence-numbered TX flood. */
static int sc_bench(void)
{
	const char *paths[] = { VHOST_PATH, ELVIS_PATH, ELVIS_PATH, ELVIS_PATH };
	const char *modes[] = { "", "auto", "notify", "poll" };
	unsigned count = 20000;

	for (int i = 0; i < 4; i++) {
		struct dev d;
		unsigned got = 0;
		uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
		uint64_t t0, t1;

		if (dev_open(&d, paths[i], "vtb", F_ALL) < 0)
			return -1;
		if (i >= 2 && set_exitless(d.id, i == 2 ? ELVIS_EXITLESS_MODE_NEVER : ELVIS_EXITLESS_MODE_ALWAYS) < 0)
			return -1;
		d.kicks_sent = 0;
		t0 = now_ms();
		blast(&d, count, 0, NULL, NULL, seqs, &got);
		t1 = now_ms();
		printf("  bench %-15s %-6s %u frames of 120 bytes in %llu ms: %.0f packets/s, %.3f kicks/packet\n", paths[i],
		       modes[i], got, (unsigned long long)(t1 - t0), got * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1),
		       (double)d.kicks_sent / (got ? got : 1));
		dev_close(&d);
		if (check_seqs(seqs, got, count) < 0)
			return -1;
		free(seqs);
	}
	return 0;
}

/* Adaptive polling (exitless auto): a queue kicked faster than its start rate gets
 * polled with kicks suppressed, and goes back to notifications after its idle time. */
static int sc_auto(void)
{
	struct dev d;
	uint8_t f[MAXFRAME];
	struct elvis_queue_info qi;
	struct elvis_ioc_poll p = { .scope = ELVIS_POLL_SCOPE_QUEUE, .mask = ELVIS_POLL_SET_START_RATE |
				    ELVIS_POLL_SET_STOP_IDLE, .poll_start_rate = 200, .poll_stop_idle_ns = 200000000 };
	bool polled = false;
	int r = -1;

	if (dev_open(&d, ELVIS_PATH, "vtauto", F_V1 | F_MRG) < 0)
		goto out;
	p.device = d.id;
	if (ctl(ELVIS_IOC_SET_POLL, &p) < 0) {
		fail_at(__LINE__, "SET_POLL", "per-queue thresholds");
		goto out;
	}
	for (unsigned i = 0; i < 200 && !polled; i++) {
		tx_add(&d, f, make_frame(f, 100, 9, i), NULL, 0);
		guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
		if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0)
			goto out;
		polled = (d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY) && info_of(d.id, &qi) == 0 &&
			 (qi.flags & ELVIS_QUEUE_F_POLLING);
	}
	if (!polled) {
		fprintf(stderr, "FAIL [%s]: a queue kicked at a high rate was never polled\n", scenario);
		goto out;
	}
	msleep(600);
	if ((d.tx.vr.used->flags & VRING_USED_F_NO_NOTIFY) || info_of(d.id, &qi) < 0 ||
	    (qi.flags & ELVIS_QUEUE_F_POLLING)) {
		fprintf(stderr, "FAIL [%s]: an idle queue is still polled after its stop time\n", scenario);
		goto out;
	}
	/* and it still works in notification mode */
	tx_add(&d, f, make_frame(f, 100, 9, 999), NULL, 0);
	guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
	r = wait_used(&d.tx, d.tx.avail_idx, 3000);
	if (r)
		fprintf(stderr, "FAIL [%s]: no service after returning to notifications\n", scenario);
out:
	dev_close(&d);
	return r;
}

static long mem_available_kb(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* Devices opened, used and closed many times give their memory back: a leaked device
 * (about 100 KiB) or a leaked owner address space per cycle would show. */
static int sc_leak(void)
{
	uint8_t f[MAXFRAME];
	long before, after;
	unsigned cycles = 300;

	for (int warm = 0; warm < 2; warm++) {
		before = mem_available_kb();
		for (unsigned i = 0; i < cycles; i++) {
			struct dev d;
			if (dev_open(&d, ELVIS_PATH, "vtleak", F_ALL) < 0)
				return -1;
			tx_add(&d, f, make_frame(f, 100, 14, i), NULL, (int)(i % 3));
			guest_publish(&d, &d.tx, 1, (uint16_t)(d.tx.avail_idx + 1));
			rx_post(&d, 4, 2048);
			if (wait_used(&d.tx, d.tx.avail_idx, 3000) < 0) {
				fprintf(stderr, "FAIL [%s]: cycle %u: no service\n", scenario, i);
				dev_close(&d);
				return -1;
			}
			dev_close(&d);
		}
		after = mem_available_kb();
		printf("  %u open/use/close cycles: MemAvailable %ld -> %ld kB\n", cycles, before, after);
	}
	/* the second pass, after caches warmed up, must not lose memory */
	if (before - after > 8 * 1024) {
		fprintf(stderr, "FAIL [%s]: %ld kB lost over %u cycles\n", scenario, before - after, cycles);
		return -1;
	}
	return 0;
}

/* The ABI's error paths. */
static int sc_abi(void)
{
	struct elvis_ioc_version v;
	struct elvis_ioc_sidecore s = { .id = 9999 };
	struct elvis_ioc_poll p = { .scope = ELVIS_POLL_SCOPE_GLOBAL, .pad = 1 };
	struct elvis_ioc_array a = { .elem_size = 8 };
	int fd = open(ELVIS_PATH, O_RDWR);
	uint64_t feat, bad = 1ull << 40;

	CHECK(ctl(ELVIS_IOC_VERSION, &v) == 0 && v.abi == ELVIS_IOC_ABI_VERSION, "ABI version");
	CHECK(ctl(ELVIS_IOC_SIDECORE_DESTROY, &s) < 0 && errno == ENOENT, "destroy unknown");
	s = (struct elvis_ioc_sidecore){ .cpu = 4096 };
	CHECK(ctl(ELVIS_IOC_SIDECORE_CREATE, &s) < 0 && errno == EINVAL, "create on a missing cpu");
	s = (struct elvis_ioc_sidecore){ .cpu = -1 };
	CHECK(ctl(ELVIS_IOC_SIDECORE_CREATE, &s) < 0 && errno == EINVAL, "unbound without F_DEFAULT");
	s = (struct elvis_ioc_sidecore){ .cpu = 0, .flags = ELVIS_SIDECORE_F_DEFAULT };
	CHECK(ctl(ELVIS_IOC_SIDECORE_CREATE, &s) < 0 && errno == EINVAL, "F_DEFAULT on a cpu");
	s = (struct elvis_ioc_sidecore){ .cpu = -1, .flags = ELVIS_SIDECORE_F_SLEEPING };
	CHECK(ctl(ELVIS_IOC_SIDECORE_CREATE, &s) < 0 && errno == EINVAL, "unknown create flag");
	s = (struct elvis_ioc_sidecore){ .cpu = -1, .flags = ELVIS_SIDECORE_F_DEFAULT };
	CHECK(ctl(ELVIS_IOC_SIDECORE_CREATE, &s) == 0 && s.id, "unbound sidecore on request");
	{
		struct elvis_sidecore_info si;
		CHECK(sidecore_info(s.id, &si) == 0 && si.cpu == -1 && (si.flags & ELVIS_SIDECORE_F_DEFAULT),
		      "the unbound sidecore lists as cpu -1, default");
		CHECK(sidecore_del(s.id) == 0, "destroy the unbound sidecore");
	}
	CHECK(ctl(ELVIS_IOC_SET_POLL, &p) < 0 && errno == EINVAL, "padding not zero");
	CHECK(ctl(ELVIS_IOC_LIST_QUEUES, &a) < 0 && errno == EINVAL, "element size too small");
	CHECK(ctl(_IO(ELVIS_IOC_MAGIC, 0x7f), NULL) < 0 && errno == ENOTTY, "unknown control ioctl");
	CHECK(fd >= 0, "open elvis-net");
	CHECK(ioctl(fd, VHOST_GET_FEATURES, &feat) == 0 && feat == ELVIS_NET_FEATURES, "features");
	CHECK(ioctl(fd, VHOST_SET_MEM_TABLE, &feat) < 0 && errno == EPERM, "not owner");
	CHECK(ioctl(fd, VHOST_SET_OWNER) == 0, "owner");
	CHECK(ioctl(fd, VHOST_SET_OWNER) < 0 && errno == EBUSY, "owner twice");
	CHECK(ioctl(fd, VHOST_SET_FEATURES, &bad) < 0 && errno == EOPNOTSUPP, "unknown feature");
	CHECK(ioctl(fd, VHOST_SET_VRING_ENDIAN, &feat) < 0 && errno == ENOTTY, "unsupported vhost ioctl");
	CHECK(ioctl(fd, _IO(0x12, 0x34)) < 0 && errno == ENOTTY, "foreign ioctl");
	{
		struct vhost_vring_state st = { 5, 256 };
		CHECK(ioctl(fd, VHOST_SET_VRING_NUM, &st) < 0 && errno == ENOBUFS, "vq index");
		st = (struct vhost_vring_state){ 0, 100 };
		CHECK(ioctl(fd, VHOST_SET_VRING_NUM, &st) < 0 && errno == EINVAL, "ring size");
	}
	{
		struct vhost_memory *m = calloc(1, sizeof(*m) + 65 * sizeof(m->regions[0]));
		uint8_t *big = mmap(NULL, 64 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		m->nregions = 0;
		CHECK(ioctl(fd, VHOST_SET_MEM_TABLE, m) == 0, "empty memory table");
		m->nregions = 65;
		CHECK(ioctl(fd, VHOST_SET_MEM_TABLE, m) < 0 && errno == E2BIG, "more than 64 regions");
		/* 64 regions (vhost-net's default limit), as QEMU sends with many memory slots */
		CHECK(big != MAP_FAILED, "mmap");
		for (unsigned i = 0; i < 64; i++)
			m->regions[i] = (struct vhost_memory_region){ (uint64_t)i << 20, 1 << 16,
								      (uintptr_t)big + ((uint64_t)i << 16), 0 };
		m->nregions = 64;
		CHECK(ioctl(fd, VHOST_SET_MEM_TABLE, m) == 0, "64 regions");
		munmap(big, 64 << 16);
		m->nregions = 2;
		m->regions[0] = (struct vhost_memory_region){ 0, 1 << 20, 1 << 20, 0 };
		m->regions[1] = (struct vhost_memory_region){ 4096, 1 << 20, 8 << 20, 0 };
		CHECK(ioctl(fd, VHOST_SET_MEM_TABLE, m) < 0 && errno == EINVAL, "overlapping regions");
		m->regions[1] = (struct vhost_memory_region){ 2 << 20, 1 << 20, ~0ull - 4096, 0 };
		CHECK(ioctl(fd, VHOST_SET_MEM_TABLE, m) < 0 && errno == EFAULT, "region outside user space");
		free(m);
	}
	CHECK(ioctl(fd, VHOST_RESET_OWNER) == 0, "reset owner");
	CHECK(ioctl(fd, VHOST_SET_OWNER) == 0, "owner after reset");
	close(fd);
	/* QEMU's tap poll-us: the busy-loop timeout answers as on vhost-net */
	for (int k = 0; k < 2; k++) {
		const char *path = k ? ELVIS_PATH : VHOST_PATH;
		struct vhost_vring_state st = { 1, 50 };
		int bfd = open(path, O_RDWR);

		CHECK(bfd >= 0, "open %s", path);
		CHECK(ioctl(bfd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st) < 0 && errno == EPERM, "%s: busyloop, not owner",
		      path);
		CHECK(ioctl(bfd, VHOST_SET_OWNER) == 0, "%s: owner", path);
		CHECK(ioctl(bfd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st) == 0, "%s: set busyloop", path);
		st = (struct vhost_vring_state){ 1, 0 };
		CHECK(ioctl(bfd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st) == 0 && st.index == 1 && st.num == 50,
		      "%s: get busyloop (%u)", path, st.num);
		st = (struct vhost_vring_state){ 5, 50 };
		CHECK(ioctl(bfd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st) < 0 && errno == ENOBUFS, "%s: busyloop vq index",
		      path);
		CHECK(ioctl(bfd, VHOST_RESET_OWNER) == 0 && ioctl(bfd, VHOST_SET_OWNER) == 0, "%s: reset", path);
		st = (struct vhost_vring_state){ 1, 7 };
		CHECK(ioctl(bfd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st) == 0 && st.num == 0, "%s: reset clears busyloop",
		      path);
		close(bfd);
	}
	return 0;
}

/* --vmm TAP SECONDS: a stand-in VMM for the daemon test: one /dev/elvis-net device on
 * tap TAP sending sequence-numbered frames in rounds of 1000 until SECONDS have passed
 * or SIGTERM arrives, while elvis-manager moves its queue; every round must arrive whole
 * and in order. */
static volatile sig_atomic_t vmm_stop;

static void on_vmm_stop(int sig)
{
	(void)sig;
	vmm_stop = 1;
}

static int vmm(const char *tap, unsigned seconds)
{
	struct dev d = { 0 };
	unsigned count = 1000, rounds = 0, got = 0;
	uint32_t *seqs = calloc(count + 16, sizeof(*seqs));
	uint64_t end = now_ms() + seconds * 1000ull;
	int r = -1;

	scenario = "vmm";
	if (!seqs || dev_open(&d, ELVIS_PATH, tap, F_ALL) < 0)
		goto out;
	signal(SIGTERM, on_vmm_stop);
	printf("vmm: device %u on tap %s\n", d.id, d.tap);
	while (!vmm_stop && now_ms() < end) {
		blast(&d, count, 0, NULL, NULL, seqs, &got);
		if (check_seqs(seqs, got, count) < 0)
			goto out;
		rounds++;
	}
	printf("vmm: %u rounds of %u frames, none lost, duplicated or reordered\n", rounds, count);
	r = rounds ? 0 : -1;
out:
	dev_close(&d);
	free(seqs);
	return r;
}

static const char *plane_path = ELVIS_PATH;     /* what the oracle is compared with */

static const char *plane_name(void)
{
	return strcmp(plane_path, USER_PATH) == 0 ? "vhost-user (elvis-manager)" : "elvis-net";
}

/* A row of 16 transcript bytes, "--" past the end. */
static void hex_row(const char *who, const struct tr *t, size_t row)
{
	fprintf(stderr, "    %06zx %-26s", row, who);
	for (size_t k = row; k < row + 16; k++)
		k < t->len ? fprintf(stderr, " %02x", t->p[k]) : fprintf(stderr, " --");
	fprintf(stderr, "\n");
}

/* Equal, or a failure with the diff: where the transcripts part, what the bytes there
 * are, both sides in hex around it with the differing bytes marked. */
static int compare(const char *what, struct tr *a, struct tr *b)
{
	size_t i = 0, common = a->len < b->len ? a->len : b->len, ndiff = 0;
	char wa[128], wb[128];

	if (a->len == b->len && memcmp(a->p, b->p, a->len) == 0) {
		printf("  %s: %zu transcript bytes identical to vhost-net\n", what, a->len);
		return 0;
	}
	while (i < common && a->p[i] == b->p[i])
		i++;
	for (size_t k = i; k < common; k++)
		ndiff += a->p[k] != b->p[k];
	fprintf(stderr, "FAIL [%s]: %s: %s differs from vhost-net at byte %zu (vhost-net %zu bytes, %s %zu; "
		"%zu of the %zu bytes both have differ)\n", scenario, what, plane_name(), i, a->len, plane_name(), b->len,
		ndiff, common);
	fprintf(stderr, "  at byte %zu: vhost-net has %s; %s has %s\n", i, tr_what(a, i, wa, sizeof(wa)), plane_name(),
		tr_what(b, i, wb, sizeof(wb)));
	for (size_t row = (i & ~(size_t)15) >= 16 ? (i & ~(size_t)15) - 16 : 0, n = 0; n < 4; row += 16, n++) {
		if (row >= a->len && row >= b->len)
			break;
		hex_row("vhost-net", a, row);
		hex_row(plane_name(), b, row);
		fprintf(stderr, "    %6s %-26s", "", "");
		for (size_t k = row; k < row + 16; k++)
			fprintf(stderr, (k < a->len) != (k < b->len) || (k < common && a->p[k] != b->p[k]) ? " ^^" : "   ");
		fprintf(stderr, "\n");
	}
	return -1;
}

static void tr_free(struct tr *t)
{
	free(t->p);
	free(t->notes);
	memset(t, 0, sizeof(*t));
}

/* Runs fn against vhost-net and the plane under test and compares the transcripts. */
#define ORACLE(name, call)                                                                                \
	do {                                                                                              \
		struct tr tv = { 0 }, te = { 0 };                                                         \
		const char *path = VHOST_PATH;                                                            \
		struct tr *cur = &tv;                                                                     \
		int rv = call;                                                                            \
		path = plane_path;                                                                        \
		cur = &te;                                                                                \
		int re = call;                                                                            \
		if (rv < 0)                                                                               \
			fprintf(stderr, "FAIL [%s]: the oracle (vhost-net) failed\n", scenario);          \
		if (re < 0)                                                                               \
			fprintf(stderr, "FAIL [%s]: %s failed\n", scenario, plane_name());                \
		r = rv < 0 || re < 0 ? -1 : compare(name, &tv, &te);                                      \
		tr_free(&tv);                                                                             \
		tr_free(&te);                                                                             \
	} while (0)

/* Scenario names select; none selects all but bench. Options start with "--". */
static bool wanted(int argc, char **argv, const char *name)
{
	bool any = false;

	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		any = true;
		if (strcmp(argv[i], name) == 0)
			return true;
	}
	return !any && strcmp(name, "bench") != 0;
}

/* --user-plane=SOCKET and --exitless=MODE; with them, only the scenarios that have a
 * vhost-user replay may be named. 0, or -1 after saying what is wrong. */
static int user_plane_args(int argc, char **argv)
{
	static const char *const replayed[] = { "tx", "rx", "offload", "qemu", "restart", "notify", "hostile" };

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--user-plane=", 13) == 0 && argv[i][13])
			user_api = argv[i] + 13;
		else if (strncmp(argv[i], "--exitless=", 11) == 0)
			user_exitless = argv[i] + 11;
	}
	if (user_exitless && (!user_api || (strcmp(user_exitless, "auto") && strcmp(user_exitless, "always") &&
					    strcmp(user_exitless, "never")))) {
		fprintf(stderr, "elvis-vtest: --exitless=%s: needs --user-plane and one of auto, always, never\n",
			user_exitless);
		return -1;
	}
	if (!user_api)
		return 0;
	for (int i = 1; i < argc; i++) {
		bool ok = false;

		if (argv[i][0] == '-')
			continue;
		for (size_t k = 0; k < sizeof(replayed) / sizeof(replayed[0]); k++)
			ok |= strcmp(argv[i], replayed[k]) == 0;
		if (!ok) {
			/* abi checks the ioctl ABIs of /dev/elvis-net and /dev/elvis; the others
			 * drive elvis.ko's sidecores through /dev/elvis and check invariants, with no
			 * vhost-net transcript to compare */
			fprintf(stderr, "elvis-vtest: scenario '%s' has no user-plane replay (replayed: tx rx offload qemu "
				"restart notify hostile; the others are specific to elvis.ko and its ioctls)\n", argv[i]);
			return -1;
		}
	}
	plane_path = USER_PATH;
	printf("elvis-vtest: comparing vhost-net with the user data plane of the elvis-manager on %s (exitless %s)\n",
	       user_api, user_exitless ? user_exitless : "default");
	return 0;
}

static void run(const char *name, int r)
{
	printf("%s %s\n", r == 0 ? "PASS" : "FAIL", name);
	fflush(stdout);
	if (r)
		failures++;
}

int main(int argc, char **argv)
{
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		/* one line per /dev/elvis-net device, for scripts */
		struct elvis_queue_info q[64];
		uint32_t n = 0;

		if (read_array(ELVIS_IOC_LIST_QUEUES, q, sizeof(q[0]), 64, &n) < 0)
			return 1;
		for (uint32_t i = 0; i < n && i < 64; i++) {
			struct elvis_queue_counters c = { 0 };
			counters_of(q[i].device, &c);
			printf("device %u pid %d state %u sidecore %u features %#llx tap '%s' weight %u exitless %u "
			       "tx_packets %llu\n",
			       q[i].device, q[i].owner_pid, q[i].state, q[i].sidecore, (unsigned long long)q[i].features,
			       q[i].tap, q[i].weight, q[i].exitless, (unsigned long long)c.tx_packets);
		}
		{
			struct elvis_sidecore_info sc[64];
			if (read_array(ELVIS_IOC_LIST_SIDECORES, sc, sizeof(sc[0]), 64, &n) < 0)
				return 1;
			for (uint32_t i = 0; i < n && i < 64; i++)
				printf("sidecore %u cpu %d queues %u flags %#x\n", sc[i].id, sc[i].cpu, sc[i].nqueues,
				       sc[i].flags);
		}
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "--vmm") == 0)
		return vmm(argv[2], (unsigned)atoi(argv[3])) == 0 ? 0 : 1;
	if (user_plane_args(argc, argv) < 0)
		return 2;
	if (!user_api && wanted(argc, argv, "abi")) {
		scenario = "abi";
		run(scenario, sc_abi());
	}
	if (wanted(argc, argv, "tx")) {
		scenario = "tx";
		ORACLE("tx all features", sc_tx(path, F_ALL, cur));
		run(scenario, r);
		scenario = "tx-legacy";
		ORACLE("tx no features", sc_tx(path, 0, cur));
		run(scenario, r);
	}
	if (wanted(argc, argv, "rx")) {
		scenario = "rx-mrg";
		ORACLE("rx mergeable 256-byte buffers", sc_rx(path, F_ALL, 256, cur));
		run(scenario, r);
		scenario = "rx-v1";
		ORACLE("rx version 1 without mergeable", sc_rx(path, F_V1 | F_EVIDX, 2048, cur));
		run(scenario, r);
		scenario = "rx-legacy";
		ORACLE("rx legacy header", sc_rx(path, 0, 2048, cur));
		run(scenario, r);
	}
	if (wanted(argc, argv, "offload")) {
		scenario = "offload";
		ORACLE("checksum/TSO offloads", sc_offload(path, cur));
		run(scenario, r);
	}
	if (wanted(argc, argv, "qemu")) {
		scenario = "qemu";
		ORACLE("QEMU as the VMM (qtest-driven legacy virtio-net-pci)", sc_qemu(path, false, cur));
		run(scenario, r);
		scenario = "qemu-modern";
		ORACLE("QEMU as the VMM (qtest-driven modern virtio-net-pci, VERSION_1)", sc_qemu(path, true, cur));
		run(scenario, r);
	}
	if (wanted(argc, argv, "restart")) {
		scenario = "restart";
		ORACLE("stop/start", sc_restart(path, cur));
		run(scenario, r);
	}
	if (wanted(argc, argv, "notify")) {
		scenario = "notify-event-idx";
		ORACLE("EVENT_IDX", sc_notify(path, F_ALL, cur));
		run(scenario, r);
		scenario = "notify-flags";
		ORACLE("NO_INTERRUPT/NO_NOTIFY", sc_notify(path, F_V1 | F_MRG, cur));
		run(scenario, r);
	}
	if (wanted(argc, argv, "hostile")) {
		for (int k = 0; k < H_MAX; k++) {
			char name[64];
			snprintf(name, sizeof(name), "hostile %s", hostile_name[k]);
			scenario = hostile_name[k];
			ORACLE(name, sc_hostile(path, (enum hostile)k, cur));
			run(name, r);
		}
	}
	if (!user_api && wanted(argc, argv, "log")) {
		/* dirty logging: not replayed over vhost-user (its log is a shared memfd) */
		static const struct {
			const char *name;
			uint64_t feat;          /* 0: TX */
		} logged[] = { { "log-tx", 0 }, { "log-rx-mrg", F_ALL }, { "log-rx", F_V1 | F_EVIDX } };
		static const char *const split_name[] = { "used index alone on its page", "avail event alone on its page" };

		for (size_t k = 0; k < sizeof(logged) / sizeof(logged[0]); k++)
			for (int sp = SPLIT_INDEX; sp <= SPLIT_EVENT; sp++) {
				char name[96];

				snprintf(name, sizeof(name), "%s (%s)", logged[k].name, split_name[sp]);
				scenario = logged[k].name;
				if (logged[k].feat)
					ORACLE(name, sc_log_rx(path, logged[k].feat, (enum log_split)sp, cur));
				else
					ORACLE(name, sc_log_tx(path, (enum log_split)sp, cur));
				run(name, r);
			}
		for (int k = 0; k < LH_MAX; k++) {
			char name[64];

			snprintf(name, sizeof(name), "hostile %s", log_hostile_name[k]);
			scenario = log_hostile_name[k];
			ORACLE(name, sc_log_hostile(path, (enum log_hostile)k, cur));
			run(name, r);
		}
		scenario = "log-abi";
		ORACLE("log ioctls' errors", sc_log_abi(path, cur));
		run(scenario, r);
		scenario = "log-switch";
		run(scenario, sc_log_switch());
	}
	{
		/* elvis-only scenarios, in this order */
		static const struct {
			const char *name;
			int (*fn)(void);
		} only_elvis[] = {
			{ "poll", sc_poll },   { "busyloop", sc_busyloop }, { "busyloop-bound", sc_busyloop_bound },
			{ "auto", sc_auto },   { "ndev", sc_ndev },   { "weights", sc_weights },
			{ "move", sc_move },   { "move-rx", sc_move_rx }, { "churn", sc_churn }, { "leak", sc_leak },
			{ "kill", sc_kill },   { "fault-tx", sc_fault_tx }, { "fault-rx", sc_fault_rx },
			{ "fault-used", sc_fault_used }, { "fault-ioctl", sc_fault_ioctl },
		};
		for (size_t k = 0; k < sizeof(only_elvis) / sizeof(only_elvis[0]) && !user_api; k++)
			if (wanted(argc, argv, only_elvis[k].name)) {
				scenario = only_elvis[k].name;
				run(scenario, only_elvis[k].fn());
			}
	}
	if (!user_api && wanted(argc, argv, "soak")) {
		unsigned secs = 60;
		for (int i = 1; i < argc; i++)
			if (strncmp(argv[i], "--soak-seconds=", 15) == 0)
				secs = (unsigned)atoi(argv[i] + 15);
		scenario = "soak";
		run(scenario, sc_soak(secs));
	}
	if (!user_api && wanted(argc, argv, "bench")) {
		scenario = "bench";
		run(scenario, sc_bench());
	}
	printf("elvis-vtest: %d failure%s\n", failures, failures == 1 ? "" : "s");
	return failures ? 1 : 0;
}
