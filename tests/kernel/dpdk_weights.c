/* elvis-dpdk-weights: weighted shares in the kernel plane with a driver nobody here wrote.
 * Runs inside the kernel test guest. DPDK's testpmd (txonly, 64-byte frames) floods N
 * /dev/elvis-net devices through virtio-user's vhost-kernel back end: DPDK opens a path that
 * is a misc character device as vhost-net, one fd per queue pair, and makes the tap named by
 * iface= its back end. The devices are weighted, made always-polled and moved onto one
 * sidecore through /dev/elvis, with the module's default budgets. Their shares of that
 * sidecore must follow the weights: 1:2:3:4 on 256-entry rings and 1:10 on 1024-entry rings,
 * each within 5%. Either way the heavier weights' default quanta (128 packets per 100 of
 * weight) exceed what their rings hold, so only quanta sized to the rings (elvis_drr.h) pass.
 *
 * A work-conserving scheduler applies weights only while every queue stays backlogged. In
 * a TCG guest testpmd is emulated code like the sidecore, and on a CPU of its own it could
 * not keep a heavy port's ring full: it spends equal effort on every port, full or not, and
 * loses its vCPU to the host for longer than the sidecore takes to drain a ring. So its
 * forwarding thread shares the sidecore's CPU at nice -10: the sidecore runs a tick at a
 * time, testpmd refills every ring in between, and when the host takes the vCPU both stop.
 * (The heavy ring of 1:10 takes 10/11 of each round: at 256 entries a tick of the sidecore
 * drains it.) The counters are read every second and a window counts only when every queue
 * took at least MIN_POLLS turns and found its ring empty in at most 2% of them; the shares
 * are judged over WANT_WINDOWS such windows. Finding too few within MAX_SECONDS is a failure
 * ("cannot be judged"), never a pass.
 * Usage: elvis-dpdk-weights [--testpmd PATH] [--pmd-dir DIR]
 * (defaults: /usr/bin/dpdk-testpmd, DPDK's drivers in /usr/lib/elvis-dpdk).
 * Exit status 0 only if both ratios hold. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/elvis.h"

#define MAXQ 8
#define WINDOW_MS 1000
#define WANT_WINDOWS 6                  /* judged: 6 s of flood in which every ring stayed backlogged */
#define MAX_SECONDS 40                  /* of flood, to find them */
#define MAX_EMPTY_DIV 50                /* a queue may find its ring empty in 1/50 of its turns */
#define MIN_POLLS 8                     /* per queue and window */
#define TOLERANCE 0.05
#define TESTPMD_NICE (-10)
#define SC_CPU 1                        /* and testpmd's forwarding lcore; its main lcore on 0 */

static const char *testpmd = "/usr/bin/dpdk-testpmd";
static const char *pmd_dir = "/usr/lib/elvis-dpdk";
static int ctl_fd = -1;
static const char *label = "";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL [dpdk-weights %s]: ", label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int ctl(unsigned long cmd, void *arg)
{
	return ioctl(ctl_fd, cmd, arg) < 0 ? -errno : 0;
}

/* An array command into buf (cap elements of elem bytes); *ret_n: the elements written. */
static int list(unsigned long cmd, void *buf, uint32_t elem, uint32_t cap, uint32_t *ret_n)
{
	struct elvis_ioc_array a = { .ptr = (uintptr_t)buf, .elem_size = elem, .capacity = cap };
	int r = ctl(cmd, &a);

	if (r == 0)
		*ret_n = a.count < cap ? a.count : cap;
	return r;
}

/* The counters of the n devices ids[], in that order, from one READ_COUNTERS. */
static int counters(const uint32_t *ids, unsigned n, struct elvis_queue_counters *ret)
{
	static struct elvis_queue_counters all[64];
	uint32_t cnt = 0;
	unsigned found = 0;

	if (list(ELVIS_IOC_READ_COUNTERS, all, sizeof(all[0]), 64, &cnt) < 0)
		return -1;
	for (unsigned k = 0; k < n; k++)
		for (uint32_t i = 0; i < cnt; i++)
			if (all[i].device == ids[k]) {
				ret[k] = all[i];
				found++;
				break;
			}
	return found == n ? 0 : -1;
}

static int tap_up(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	if (s >= 0)
		close(s);
	return r;
}

/* testpmd's output, for a failure's context */
static void show_log(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");
	unsigned n = 0;

	if (!f)
		return;
	fprintf(stderr, "  --- %s (last lines):\n", path);
	while (fgets(line, sizeof(line), f))
		n++;
	rewind(f);
	for (unsigned i = 0; fgets(line, sizeof(line), f); i++)
		if (i + 30 >= n)
			fprintf(stderr, "  | %s", line);
	fclose(f);
}

/* testpmd at TESTPMD_NICE: its forwarding lcore on the sidecore's CPU, its main lcore (stats
 * once a second) on the other, sending 64-byte frames on n virtio-user ports with rings of
 * ring entries, port k on /dev/elvis-net with tap kw<k>. No hugepages. */
static pid_t testpmd_start(unsigned n, unsigned ring, const char *log)
{
	char vdev[MAXQ][160], lcores[32];
	const char *argv[64];
	unsigned a = 0;
	pid_t pid;

	snprintf(lcores, sizeof(lcores), "0@%d,1@%d", !SC_CPU, SC_CPU);
	argv[a++] = testpmd;
	argv[a++] = "--no-huge";
	argv[a++] = "-m";
	argv[a++] = "256";
	argv[a++] = "--no-pci";
	argv[a++] = "--no-telemetry";
	argv[a++] = "--file-prefix";
	argv[a++] = "elvis-kw";
	argv[a++] = "--lcores";
	argv[a++] = lcores;
	argv[a++] = "-d";
	argv[a++] = pmd_dir;
	for (unsigned k = 0; k < n; k++) {
		snprintf(vdev[k], sizeof(vdev[k]),
			 "net_virtio_user%u,path=" ELVIS_NET_DEVICE ",iface=kw%u,queues=1,queue_size=%u,packed_vq=0,in_order=0",
			 k, k, ring);
		argv[a++] = "--vdev";
		argv[a++] = vdev[k];
	}
	argv[a++] = "--log-level";
	argv[a++] = "lib.eal:error";
	argv[a++] = "--";
	argv[a++] = "--forward-mode=txonly";
	argv[a++] = "--txpkts=64";
	argv[a++] = "--total-num-mbufs=16384";
	argv[a++] = "--nb-cores=1";
	argv[a++] = "--auto-start";
	argv[a++] = "--stats-period";
	argv[a++] = "1";
	argv[a] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), nul = open("/dev/null", O_RDONLY);

		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (setpriority(PRIO_PROCESS, 0, TESTPMD_NICE) < 0)
			perror("elvis-dpdk-weights: setpriority");
		execv(testpmd, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Stops testpmd (SIGINT: it closes its ports and exits), SIGKILL after 20 s. */
static void testpmd_stop(pid_t pid)
{
	uint64_t end = now_ms() + 20000;
	int st;

	kill(pid, SIGINT);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ms() > end) {
			fprintf(stderr, "  testpmd ignored SIGINT for 20 s: killing it\n");
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return;
		}
		msleep(50);
	}
}

/* The devices of testpmd's n ports, by their taps, once all have their back ends. */
static int find_devices(pid_t pid, unsigned n, uint32_t *ids, const char *log)
{
	static struct elvis_queue_info q[64];
	uint64_t end = now_ms() + 60000;
	int st;

	for (;;) {
		uint32_t cnt = 0;
		unsigned found = 0;

		if (list(ELVIS_IOC_LIST_QUEUES, q, sizeof(q[0]), 64, &cnt) < 0) {
			fail("LIST_QUEUES: %s", strerror(errno));
			return -1;
		}
		for (unsigned k = 0; k < n; k++) {
			char tap[IFNAMSIZ];

			ids[k] = 0;
			snprintf(tap, sizeof(tap), "kw%u", k);
			for (uint32_t i = 0; i < cnt; i++)
				if (q[i].owner_pid == pid && q[i].backends == 3 && q[i].state == ELVIS_QUEUE_STATE_READY &&
				    strcmp(q[i].tap, tap) == 0)
					ids[k] = q[i].device;
			found += ids[k] != 0;
		}
		if (found == n)
			return 0;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fail("testpmd exited (status %#x) before its %u ports were on /dev/elvis-net", st, n);
			show_log(log);
			return -1;
		}
		if (now_ms() > end) {
			fail("after 60 s, only %u of testpmd's %u ports are /dev/elvis-net devices with a tap back end",
			     found, n);
			show_log(log);
			return -1;
		}
		msleep(100);
	}
}

static int sidecore_destroy(uint32_t id)
{
	struct elvis_ioc_sidecore s = { .id = id };
	uint64_t end = now_ms() + 5000;
	int r;

	/* testpmd's devices went with it; their queues leave the sidecore as the files close */
	while ((r = ctl(ELVIS_IOC_SIDECORE_DESTROY, &s)) == -EBUSY && now_ms() < end)
		msleep(50);
	return r;
}

/* One flood: n ports with these weights and ring size, until WANT_WINDOWS windows could be
 * judged or MAX_SECONDS have passed. 0 when the shares hold. */
static int weights_hold(const unsigned *weight, unsigned n, unsigned ring)
{
	struct elvis_ioc_sidecore sc = { .cpu = SC_CPU };
	struct elvis_queue_counters prev[MAXQ], cur[MAXQ];
	uint32_t ids[MAXQ];
	double moved[MAXQ] = { 0 }, total = 0, wsum = 0;
	unsigned windows = 0, w;
	uint64_t deadline, t0 = now_ms(), t1;
	char log[64], name[IFNAMSIZ];
	int r = -1;
	pid_t pid;

	snprintf(log, sizeof(log), "/tmp/testpmd-%u.log", n);
	if (ctl(ELVIS_IOC_SIDECORE_CREATE, &sc) < 0) {
		fail("cannot create a sidecore on CPU %d: %s", SC_CPU, strerror(errno));
		return -1;
	}
	pid = testpmd_start(n, ring, log);
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		goto out_sc;
	}
	if (find_devices(pid, n, ids, log) < 0)
		goto out_pmd;
	t1 = now_ms();
	for (unsigned k = 0; k < n; k++) {
		struct elvis_ioc_poll p = { .scope = ELVIS_POLL_SCOPE_QUEUE, .device = ids[k],
					    .mask = ELVIS_POLL_SET_WEIGHT | ELVIS_POLL_SET_EXITLESS, .weight = weight[k],
					    .exitless = ELVIS_EXITLESS_MODE_ALWAYS };
		struct elvis_ioc_queue_move m = { .device = ids[k], .queue = 0, .sidecore = sc.id };

		snprintf(name, sizeof(name), "kw%u", k);
		if (ctl(ELVIS_IOC_SET_POLL, &p) < 0 || ctl(ELVIS_IOC_QUEUE_MOVE, &m) < 0 || tap_up(name) < 0) {
			fail("device %u (port %u): weight %u, move to sidecore %u, tap up: %s", ids[k], k, weight[k], sc.id,
			     strerror(errno));
			goto out_pmd;
		}
		wsum += weight[k];
	}
	/* until every port sends through the shared sidecore */
	if (counters(ids, n, prev) < 0) {
		fail("READ_COUNTERS lacks testpmd's devices");
		goto out_pmd;
	}
	for (uint64_t end = now_ms() + 30000;;) {
		bool all = true;

		msleep(WINDOW_MS);
		if (counters(ids, n, cur) < 0) {
			fail("READ_COUNTERS lacks testpmd's devices");
			goto out_pmd;
		}
		for (unsigned k = 0; k < n; k++)
			all &= cur[k].tx_packets > prev[k].tx_packets && cur[k].sidecore == sc.id;
		if (!all && now_ms() > end) {
			fail("testpmd's ports did not all send through sidecore %u within 30 s", sc.id);
			for (unsigned k = 0; k < n; k++)
				fprintf(stderr, "  port %u: device %u on sidecore %u, %llu packets in the last second, "
					"%llu turns (%llu empty), %llu errors\n", k, ids[k], cur[k].sidecore,
					(unsigned long long)(cur[k].tx_packets - prev[k].tx_packets),
					(unsigned long long)(cur[k].polls - prev[k].polls),
					(unsigned long long)(cur[k].empty_polls - prev[k].empty_polls),
					(unsigned long long)cur[k].errors);
			show_log(log);
			goto out_pmd;
		}
		memcpy(prev, cur, sizeof(prev));
		if (all)
			break;
	}
	printf("  testpmd's ports were devices after %.1f s and all sent through sidecore %u after %.1f s more\n",
	       (double)(t1 - t0) / 1e3, sc.id, (double)(now_ms() - t1) / 1e3);
	deadline = now_ms() + MAX_SECONDS * 1000;
	for (w = 0; windows < WANT_WINDOWS && now_ms() < deadline; w++) {
		bool backlogged = true;
		char line[320];
		int o = 0;

		msleep(WINDOW_MS);
		if (counters(ids, n, cur) < 0) {
			fail("READ_COUNTERS lacks testpmd's devices (did testpmd exit?)");
			show_log(log);
			goto out_pmd;
		}
		for (unsigned k = 0; k < n; k++) {
			uint64_t polls = cur[k].polls - prev[k].polls, empty = cur[k].empty_polls - prev[k].empty_polls;

			if (cur[k].sidecore != sc.id) {
				fail("device %u left sidecore %u for %u", ids[k], sc.id, cur[k].sidecore);
				goto out_pmd;
			}
			if (polls < MIN_POLLS || empty * MAX_EMPTY_DIV > polls)
				backlogged = false;
			if (o < (int)sizeof(line))
				o += snprintf(line + o, sizeof(line) - (size_t)o, " w%u %llu/%llu/%llu", weight[k],
					      (unsigned long long)(cur[k].tx_packets - prev[k].tx_packets),
					      (unsigned long long)empty, (unsigned long long)polls);
		}
		printf("  window %2u:%s (packets/empty/turns): %s\n", w, line,
		       backlogged ? "every ring backlogged" : "not judged");
		if (backlogged) {
			windows++;
			for (unsigned k = 0; k < n; k++)
				moved[k] += (double)(cur[k].tx_packets - prev[k].tx_packets);
		}
		memcpy(prev, cur, sizeof(prev));
	}
	if (windows < WANT_WINDOWS) {
		fail("in only %u of %u one-second windows did every ring stay backlogged (the guest's vCPUs were "
		     "starved by load on the host): the shares cannot be judged", windows, w);
		goto out_pmd;
	}
	for (unsigned k = 0; k < n; k++)
		total += moved[k];
	if (total < 1000) {
		fail("only %.0f packets in %u judged windows", total, windows);
		goto out_pmd;
	}
	r = 0;
	for (unsigned k = 0; k < n; k++) {
		double share = moved[k] / total, want = weight[k] / wsum, dev = share > want ? share / want - 1 : 1 - share / want;

		printf("  weight %u: %.0f packets in %u windows, share %.4f, want %.4f (off by %.1f%%)\n", weight[k],
		       moved[k], windows, share, want, dev * 100);
		if (dev >= TOLERANCE) {
			fail("weight %u: share %.4f, want %.4f (not within 5%%)", weight[k], share, want);
			r = -1;
		}
	}
out_pmd:
	testpmd_stop(pid);
out_sc:
	if (sidecore_destroy(sc.id) < 0) {
		fail("cannot destroy sidecore %u after testpmd exited: %s", sc.id, strerror(errno));
		r = -1;
	}
	return r;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *label;
		unsigned n, ring, weight[MAXQ];
	} ratios[] = {
		{ "1:2:3:4", 4, 256, { 100, 200, 300, 400 } },
		/* the heavy queue takes 10/11 of each round: a tick of the sidecore drains 256 entries */
		{ "1:10", 2, 1024, { 100, 1000 } },
	};
	/* the module's defaults, which the shares must hold at (elvis_drr.h) */
	struct elvis_ioc_poll g = { .scope = ELVIS_POLL_SCOPE_GLOBAL,
				    .mask = ELVIS_POLL_SET_BUDGET_PACKETS | ELVIS_POLL_SET_BUDGET_BYTES,
				    .budget_packets = 128, .budget_bytes = 128 * 1024 };
	int failures = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--testpmd") == 0)
			testpmd = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--pmd-dir") == 0)
			pmd_dir = argv[++i];
		else {
			fprintf(stderr, "usage: elvis-dpdk-weights [--testpmd PATH] [--pmd-dir DIR]\n");
			return 2;
		}
	}
	if (access(testpmd, X_OK) < 0) {
		fprintf(stderr, "FAIL [dpdk-weights]: no %s: %s\n", testpmd, strerror(errno));
		return 1;
	}
	ctl_fd = open(ELVIS_CONTROL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl_fd < 0 || ctl(ELVIS_IOC_SET_POLL, &g) < 0) {
		fprintf(stderr, "FAIL [dpdk-weights]: %s: %s\n", ELVIS_CONTROL_DEVICE, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
		int r;

		label = ratios[i].label;
		printf("dpdk-weights %s: testpmd txonly on %u virtio-user ports with %u-entry rings, one sidecore\n",
		       label, ratios[i].n, ratios[i].ring);
		r = weights_hold(ratios[i].weight, ratios[i].n, ratios[i].ring);
		printf("%s dpdk-weights %s\n", r == 0 ? "PASS" : "FAIL", label);
		failures += r != 0;
	}
	return failures ? 1 : 0;
}
