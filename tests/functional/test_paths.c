/* Functional tests of where the daemon binds vhost-user sockets and which taps it opens,
 * when the path or the name comes from outside (a domain XML posted like the qemu hook
 * does, or the API): every refusal is a 4xx problem naming the path and the rule, and
 * the file, socket or interface named is left exactly as it was. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"
#define GUEST ELVIS_BUILD_DIR "/bench/elvis-guest"

static struct daemon d;
static char extra[160], api_dir_arg[200];

static void start(void)
{
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user");
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO);
        cr_assert_eq(daemon_start(&d), 0);
}

static void setup(void)
{
        daemon_init(&d, ELVIS_MANAGER);
        snprintf(extra, sizeof(extra), "%s/extra", d.dir);
        cr_assert_eq(mkdir(extra, 0755), 0);
        snprintf(api_dir_arg, sizeof(api_dir_arg), "--vhost-user-dir=%s", extra);
        daemon_arg(&d, api_dir_arg);
        start();
}

static void teardown(void)
{
        if (daemon_alive(&d))
                cr_expect_eq(daemon_stop(&d), 0, "clean exit (and no leaks under ASan)");
        daemon_cleanup(&d);
}

TestSuite(paths, .init = setup, .fini = teardown, .timeout = 120);

/* POST /v1/vms as the qemu hook does: a domain XML with one vhost-user interface, opted in
 * with ELVIS metadata. */
static long post_domain(const char *name, const char *socket, struct resp *r)
{
        char xml[1024];
        json_t *body;
        char *text;
        long status;

        snprintf(xml, sizeof(xml),
                 "<domain><name>%s</name><vcpu>1</vcpu>"
                 "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'/></metadata>"
                 "<devices><interface type='vhostuser'>"
                 "<source type='unix' path='%s' mode='client'/><model type='virtio'/></interface></devices></domain>",
                 name, socket);
        body = json_pack("{s:s}", "domain_xml", xml);
        text = json_dumps(body, 0);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", text, r), 0);
        status = r->status;
        free(text);
        json_decref(body);
        return status;
}

/* A refusal: the status, and a problem detail that names the path and the rule. */
static void refused(const char *name, const char *socket, long status, const char *rule)
{
        struct resp r;
        const char *detail;

        cr_assert_eq(post_domain(name, socket, &r), status, "%s: %s", socket, r.body);
        cr_assert_str_eq(r.content_type, "application/problem+json");
        detail = json_string_value(json_object_get(r.json, "detail"));
        cr_assert_not_null(detail);
        cr_assert(strstr(detail, socket), "the detail names the path: %s", detail);
        cr_assert(strstr(detail, rule), "the detail names the rule (%s): %s", rule, detail);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "vms")), 0, "nothing was added: %s", r.body);
        resp_free(&r);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        fclose(f);
}

static void assert_file_is(const char *path, const char *text)
{
        char *got = slurp_file(path);

        cr_assert_not_null(got, "%s is still there", path);
        cr_assert_str_eq(got, text, "%s is untouched", path);
        free(got);
}

static int listen_on(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_lt(strlen(path), sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s: %s", path, strerror(errno));
        cr_assert_eq(listen(fd, 4), 0);
        return fd;
}

static bool connects(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        if (strlen(path) >= sizeof(sa.sun_path))
                return false;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        return ok;
}

static ino_t inode_of(const char *path)
{
        struct stat st;

        cr_assert_eq(lstat(path, &st), 0, "%s exists", path);
        return st.st_ino;
}

Test(paths, outside_the_allowed_directories)
{
        char dir[200], path[260];

        snprintf(dir, sizeof(dir), "%s/elsewhere", d.dir);
        cr_assert_eq(mkdir(dir, 0755), 0);
        snprintf(path, sizeof(path), "%s/victim.sock", dir);
        write_file(path, "precious\n");
        refused("outside", path, 403, "outside run-dir");
        assert_file_is(path, "precious\n");
        refused("root", "/etc/passwd", 403, "outside run-dir");
}

Test(paths, the_api_socket)
{
        char arg[200];
        struct resp r;

        /* with the API socket's own directory allowed, the API socket itself is still refused */
        cr_assert_eq(daemon_stop(&d), 0);
        snprintf(arg, sizeof(arg), "--vhost-user-dir=%s", d.dir);
        daemon_arg(&d, arg);
        start();
        refused("api", d.sock, 403, "API socket");
        cr_assert_eq(http_json(&d, "GET", "/v1/health", NULL, &r), 0);
        cr_assert_eq(r.status, 200, "the API still answers");
        resp_free(&r);
}

Test(paths, through_a_symbolic_link)
{
        char target[200], link[200], path[260], real[260];

        snprintf(target, sizeof(target), "%s/target", d.dir);
        snprintf(link, sizeof(link), "%s/link", d.run_dir);
        cr_assert_eq(mkdir(target, 0755), 0);
        cr_assert_eq(symlink(target, link), 0);
        snprintf(path, sizeof(path), "%s/x.sock", link);
        snprintf(real, sizeof(real), "%s/x.sock", target);
        write_file(real, "behind the link\n");
        refused("linked", path, 403, "symbolic link");
        assert_file_is(real, "behind the link\n");
}

Test(paths, dot_dot)
{
        char path[260];

        snprintf(path, sizeof(path), "%s/../run/x.sock", d.run_dir);
        refused("dotdot", path, 400, "'..'");
}

Test(paths, a_file_that_is_not_a_socket)
{
        char path[260];

        snprintf(path, sizeof(path), "%s/file.sock", d.run_dir);
        write_file(path, "a plain file\n");
        refused("file", path, 409, "not a socket");
        assert_file_is(path, "a plain file\n");
}

Test(paths, a_socket_elvis_did_not_create)
{
        char path[260];
        ino_t ino;
        int fd;

        snprintf(path, sizeof(path), "%s/foreign.sock", d.run_dir);
        fd = listen_on(path);
        ino = inode_of(path);
        refused("foreign", path, 409, "did not create");
        cr_assert_eq(inode_of(path), ino, "the foreign socket is the same file");
        cr_assert(connects(path), "and still listening");
        close(fd);
}

/* Another VM's socket under a second spelling is the same path: refused, and the first
 * VM keeps its socket and is still served. */
Test(paths, a_second_spelling_of_another_vms_socket)
{
        char path[260], other[260], dotted[260];
        struct resp r;
        ino_t ino;
        json_t *j;
        char *out;

        snprintf(path, sizeof(path), "%s/vm1-net0.sock", d.run_dir);
        snprintf(other, sizeof(other), "%s//vm1-net0.sock", d.run_dir);
        snprintf(dotted, sizeof(dotted), "%s/./vm1-net0.sock", d.run_dir);
        cr_assert_eq(post_domain("first", path, &r), 201, "%s", r.body);
        resp_free(&r);
        ino = inode_of(path);
        cr_assert_eq(post_domain("second", other, &r), 409, "%s", r.body);
        cr_assert(strstr(json_string_value(json_object_get(r.json, "detail")), "already used"), "%s", r.body);
        resp_free(&r);
        cr_assert_eq(post_domain("third", dotted, &r), 409, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(inode_of(path), ino, "the first VM's socket was not replaced");
        {
                /* the domain's interface is tap-backed: frames the guest sends leave through
                 * the tap, and the first VM's queue counts them */
                const char *argv[] = { GUEST, "--socket", path, "--mode", "stream", "--count", "500", "--seconds", "3",
                                       NULL };
                run_cmd(argv, NULL, &out, NULL);
                free(out);
                cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
                j = json_array_get(json_object_get(r.json, "queues"), 0);
                cr_assert_geq(json_integer_value(json_object_get(j, "tx_packets")), 500, "the first VM is still served: %s",
                              r.body);
                resp_free(&r);
        }
}

/* A directory given with --vhost-user-dir is allowed; the socket goes when the VM goes. */
Test(paths, an_allowed_extra_directory)
{
        char path[260];
        struct resp r;
        char url[64];
        int id;

        snprintf(path, sizeof(path), "%s/guest.sock", extra);
        cr_assert_eq(post_domain("extra", path, &r), 201, "%s", r.body);
        id = (int)json_integer_value(json_object_get(r.json, "id"));
        resp_free(&r);
        cr_assert(connects(path), "listening in the extra directory");
        snprintf(url, sizeof(url), "/v1/vms/%d", id);
        cr_assert_eq(http_json(&d, "DELETE", url, NULL, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        cr_assert_neq(access(path, F_OK), 0, "its socket was removed with the VM");
}

/* After kill -9 the socket file stays behind; the restarted daemon knows it made that
 * very inode (its ledger in run-dir) and binds there again. */
Test(paths, own_stale_socket_is_reclaimed_after_a_crash)
{
        char path[260];
        struct resp r;

        snprintf(path, sizeof(path), "%s/crash.sock", d.run_dir);
        cr_assert_eq(post_domain("crash", path, &r), 201, "%s", r.body);
        resp_free(&r);
        daemon_kill9(&d);
        cr_assert_eq(access(path, F_OK), 0, "the socket file survived the crash");
        start();
        cr_assert(connects(path), "the restarted daemon listens on its old socket again");
        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "queues")), 1, "%s", r.body);
        resp_free(&r);
}

/* ---- tap names ---- */

static long post_tap(const char *name, const char *tap, const char *extra_fields, struct resp *r)
{
        char body[512];

        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"devices\":[{\"backend\":\"tap\",\"tap\":\"%s\"%s}]}", name, tap,
                 extra_fields);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, r), 0);
        return r->status;
}

/* A persistent tap made by "someone else" (this test). */
static void make_tap(const char *name, bool multiqueue)
{
        struct ifreq ifr = { 0 };
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

        cr_assert_geq(fd, 0, "/dev/net/tun: %s", strerror(errno));
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (multiqueue ? IFF_MULTI_QUEUE : 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        cr_assert_eq(ioctl(fd, TUNSETIFF, &ifr), 0, "TUNSETIFF %s: %s", name, strerror(errno));
        cr_assert_eq(ioctl(fd, TUNSETPERSIST, 1), 0);
        close(fd);
}

static void drop_tap(const char *name)
{
        struct ifreq ifr = { 0 };
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                ifr.ifr_flags |= IFF_MULTI_QUEUE;
                ioctl(fd, TUNSETIFF, &ifr);
        }
        ioctl(fd, TUNSETPERSIST, 0);
        close(fd);
}

Test(paths, tap_names)
{
        static const char *const bad[] = { "tap%d", "a/b", "sp ace", "colon:x", "0123456789abcdef", "..", NULL };
        struct resp r;

        for (const char *const *t = bad; *t; t++) {
                cr_assert_eq(post_tap("badtap", *t, "", &r), 400, "%s: %s", *t, r.body);
                cr_assert(strstr(json_string_value(json_object_get(r.json, "detail")), "tap"), "%s", r.body);
                resp_free(&r);
        }
}

Test(paths, an_existing_interface_is_not_taken)
{
        char single[16], multi[16];
        struct resp r;

        snprintf(single, sizeof(single), "elvt%d", (int)getpid() % 100000);
        snprintf(multi, sizeof(multi), "elvm%d", (int)getpid() % 100000);
        make_tap(single, false);
        make_tap(multi, true);
        cr_assert_eq(post_tap("taker", single, "", &r), 409, "%s", r.body);
        cr_assert(strstr(json_string_value(json_object_get(r.json, "detail")), single), "%s", r.body);
        resp_free(&r);
        cr_assert_eq(post_tap("mqtaker", multi, ",\"queues\":2", &r), 409, "%s", r.body);
        resp_free(&r);
        cr_assert_neq(if_nametoindex(single), 0u, "the interface is still there");
        cr_assert_neq(if_nametoindex(multi), 0u, "the multiqueue interface is still there");
        /* explicitly adopted, it is used */
        cr_assert_eq(post_tap("adopter", single, ",\"adopt\":true", &r), 201, "%s", r.body);
        cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0), "adopt")));
        resp_free(&r);
        cr_assert_eq(daemon_stop(&d), 0);
        drop_tap(single);
        drop_tap(multi);
}
