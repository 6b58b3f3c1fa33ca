/* Functional tests of blk devices' images, against the daemon with the fake data plane
 * (which records what each attach got): where an image may be (image-dir, no link out,
 * no ".."), what it may be (a regular file or block device), who may write it (one
 * device), that the manager opens it and passes the fd (read-only when asked), holds it
 * while the device exists and opens it again after a restart. Every refusal is a 4xx
 * problem naming the image and the rule, adds nothing and leaves the file as it was. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"

static struct daemon d;
static char fake_log_env[200], fake_log[160], images[160], images2[160], outside[160];
static char arg1[200], arg2[200];

static void init(void)
{
        daemon_init(&d, ELVIS_MANAGER_FAKE);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user");
        snprintf(images, sizeof(images), "%s/images", d.dir);
        snprintf(images2, sizeof(images2), "%s/more-images", d.dir);
        snprintf(outside, sizeof(outside), "%s/elsewhere", d.dir);
        cr_assert_eq(mkdir(images, 0755), 0);
        cr_assert_eq(mkdir(images2, 0755), 0);
        cr_assert_eq(mkdir(outside, 0755), 0);
        snprintf(arg1, sizeof(arg1), "--image-dir=%s", images);
        snprintf(arg2, sizeof(arg2), "--image-dir=%s", images2);
        daemon_arg(&d, arg1);
        daemon_arg(&d, arg2);
        snprintf(fake_log, sizeof(fake_log), "%s/fake.log", d.dir);
        snprintf(fake_log_env, sizeof(fake_log_env), "ELVIS_FAKE_LOG=%s", fake_log);
        daemon_env(&d, fake_log_env);
}

static void fini(void)
{
        if (daemon_alive(&d))
                cr_expect_eq(daemon_stop(&d), 0, "clean exit (and no leaks under ASan)");
        daemon_cleanup(&d);
}

TestSuite(images, .init = init, .fini = fini, .timeout = 120);

static void make_image(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        cr_assert_eq(fclose(f), 0);
}

static unsigned long long ino_of(const char *path)
{
        struct stat st;

        cr_assert_eq(stat(path, &st), 0, "%s", path);
        return (unsigned long long)st.st_ino;
}

/* POST /v1/vms with one blk device: "path" and "readonly" as given. */
static long add_vm(const char *name, const char *path, bool readonly, struct resp *r)
{
        json_t *body = json_pack("{s:s, s:[{s:s, s:s, s:b}]}", "name", name, "devices", "type", "blk", "path", path,
                                 "readonly", readonly);
        char *text = json_dumps(body, 0);

        cr_assert_eq(http_json(&d, "POST", "/v1/vms", text, r), 0);
        free(text);
        json_decref(body);
        return r->status;
}

static void added(const char *name, const char *path, bool readonly)
{
        struct resp r;

        cr_assert_eq(add_vm(name, path, readonly, &r), 201, "%s: %s", path, r.body);
        resp_free(&r);
}


/* A refusal: the status, a problem naming the image and the rule, nothing added. */
static void refused(const char *path, bool readonly, long status, const char *rule)
{
        long before = http_count(&d, "/v1/vms", "vms");
        const char *detail;
        struct resp r;

        cr_assert_geq(before, 0, "GET /v1/vms answers");
        cr_assert_eq(add_vm("refused", path, readonly, &r), status, "%s: %s", path, r.body);
        cr_assert_str_eq(r.content_type, "application/problem+json");
        detail = json_string_value(json_object_get(r.json, "detail"));
        cr_assert_not_null(detail);
        cr_assert(strstr(detail, rule), "the detail names the rule (%s): %s", rule, detail);
        resp_free(&r);
        cr_assert_eq(http_count(&d, "/v1/vms", "vms"), before, "nothing was added");
}

/* The fake data plane's record of attaches: the line of device dev of VM vm. */
static char *attach_line(unsigned vm, const char *dev)
{
        char *log = slurp_file(fake_log), needle[64], *p, *end, *line = NULL;

        if (!log)
                return NULL;
        snprintf(needle, sizeof(needle), "device_attach %u %s ", vm, dev);
        for (p = log; (p = strstr(p, needle)); p++) {
                end = strchr(p, '\n');
                free(line);
                line = strndup(p, end ? (size_t)(end - p) : strlen(p));
        }
        free(log);
        return line;
}

/* Whether the daemon holds path open (by inode). */
static bool daemon_holds(unsigned long long ino)
{
        char dir[64], link[PATH_MAX + 64];
        struct dirent *e;
        bool held = false;
        DIR *dp;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)d.pid);
        dp = opendir(dir);
        cr_assert_not_null(dp);
        while ((e = readdir(dp)) && !held) {
                struct stat st;
                snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
                held = e->d_name[0] != '.' && stat(link, &st) == 0 && S_ISREG(st.st_mode) &&
                       (unsigned long long)st.st_ino == ino;
        }
        closedir(dp);
        return held;
}

Test(images, opened_by_the_manager_and_passed_to_the_data_plane)
{
        char a[256], b[256], want[300], *line;
        struct resp r;
        json_t *dev;

        snprintf(a, sizeof(a), "%s/a.img", images);
        snprintf(b, sizeof(b), "%s//./b.img", images2);
        make_image(a, "disk a");
        make_image(b + 0, "disk b");
        cr_assert_eq(daemon_start(&d), 0);
        added("vma", a, false);
        added("vmb", b, true);
        line = attach_line(1, "blk0");
        cr_assert_not_null(line, "attached");
        snprintf(want, sizeof(want), "image_fd=rdwr ino=%llu", ino_of(a));
        cr_assert(strstr(line, want), "the data plane got the image read-write: %s", line);
        cr_assert(strstr(line, "readonly=0"), "%s", line);
        free(line);
        line = attach_line(2, "blk0");
        cr_assert_not_null(line);
        snprintf(want, sizeof(want), "image_fd=rdonly ino=%llu", ino_of(b));
        cr_assert(strstr(line, want), "a readonly device gets it read-only: %s", line);
        cr_assert(strstr(line, "readonly=1"), "%s", line);
        free(line);
        /* the path is recorded in its plain spelling */
        cr_assert_eq(http_json(&d, "GET", "/v1/vms/vmb", NULL, &r), 0);
        dev = json_array_get(json_object_get(r.json, "devices"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(dev, "type")), "blk");
        cr_assert_str_eq(json_string_value(json_object_get(dev, "backend")), "file");
        snprintf(want, sizeof(want), "%s/b.img", images2);
        cr_assert_str_eq(json_string_value(json_object_get(dev, "path")), want);
        cr_assert(json_is_true(json_object_get(dev, "readonly")));
        resp_free(&r);
        /* Prometheus tells a disk's queues from a NIC's */
        cr_assert_eq(http_json(&d, "GET", "/metrics", NULL, &r), 0);
        cr_assert(strstr(r.body, "elvis_queue_rx_packets_total{vm=\"2\",vm_name=\"vmb\",device=\"blk0\",type=\"blk\","),
                  "%s", r.body);
        resp_free(&r);
        /* held while the device exists, let go with it */
        cr_assert(daemon_holds(ino_of(a)));
        cr_assert_eq(http_json(&d, "DELETE", "/v1/vms/vma", NULL, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        cr_assert_not(daemon_holds(ino_of(a)), "the image is closed with its device");
        cr_assert(daemon_holds(ino_of(b)));
}

Test(images, paths_outside_the_rules_are_refused_and_untouched)
{
        char p[256], target[256], link[256];
        struct stat st;

        snprintf(target, sizeof(target), "%s/secret.img", outside);
        make_image(target, "not yours");
        cr_assert_eq(daemon_start(&d), 0);
        refused(target, false, 403, "outside every image-dir");
        refused("relative.img", false, 400, "must be absolute");
        snprintf(p, sizeof(p), "%s/../elsewhere/secret.img", images);
        refused(p, false, 400, "must not contain '..'");
        snprintf(p, sizeof(p), "%s/../images/x.img", images);
        refused(p, false, 400, "must not contain '..'");
        /* a symbolic link inside that leads out, relative or absolute */
        snprintf(link, sizeof(link), "%s/escape.img", images);
        cr_assert_eq(symlink("../elsewhere/secret.img", link), 0);
        refused(link, false, 403, "resolves outside image-dir");
        snprintf(link, sizeof(link), "%s/abs.img", images);
        cr_assert_eq(symlink(target, link), 0);
        refused(link, false, 403, "resolves outside image-dir");
        /* a directory of links: the directory itself leads out */
        snprintf(link, sizeof(link), "%s/sub", images);
        cr_assert_eq(symlink("../elsewhere", link), 0);
        snprintf(p, sizeof(p), "%s/sub/secret.img", images);
        refused(p, false, 403, "resolves outside image-dir");
        /* not a regular file or block device, or not there */
        snprintf(p, sizeof(p), "%s/fifo", images);
        cr_assert_eq(mkfifo(p, 0600), 0);
        refused(p, false, 400, "a fifo");
        cr_assert_eq(lstat(p, &st), 0);
        cr_assert(S_ISFIFO(st.st_mode), "the fifo is still a fifo");
        snprintf(p, sizeof(p), "%s/dir", images);
        cr_assert_eq(mkdir(p, 0755), 0);
        refused(p, false, 400, "is a directory");
        refused(p, true, 400, "a directory");
        snprintf(p, sizeof(p), "%s/missing.img", images);
        refused(p, false, 400, "does not exist");
        cr_assert_eq(access(p, F_OK), -1, "nothing was created");
        cr_assert_eq(errno, ENOENT);
        /* the target was never touched */
        {
                char *text = slurp_file(target);
                cr_assert_str_eq(text, "not yours");
                free(text);
        }
        cr_assert_not(daemon_holds(ino_of(target)));
}

/* A relative link that stays inside its image-dir is followed (RESOLVE_BENEATH): the
 * device gets the file it names. */
Test(images, a_link_that_stays_inside_is_followed)
{
        char a[256], link[256], want[300], *line;

        snprintf(a, sizeof(a), "%s/a.img", images);
        make_image(a, "disk");
        snprintf(link, sizeof(link), "%s/current.img", images);
        cr_assert_eq(symlink("a.img", link), 0);
        cr_assert_eq(daemon_start(&d), 0);
        added("vm1", link, false);
        line = attach_line(1, "blk0");
        cr_assert_not_null(line);
        snprintf(want, sizeof(want), "image_fd=rdwr ino=%llu", ino_of(a));
        cr_assert(strstr(line, want), "%s", line);
        free(line);
}

/* One writer per image, by inode (a link or a second spelling is the same image);
 * readers share an image nobody writes. */
Test(images, one_writer_per_image)
{
        char a[256], b[256], alias[256];

        snprintf(a, sizeof(a), "%s/a.img", images);
        snprintf(b, sizeof(b), "%s/b.img", images);
        snprintf(alias, sizeof(alias), "%s/alias.img", images);
        make_image(a, "a");
        make_image(b, "b");
        cr_assert_eq(link(a, alias), 0);
        cr_assert_eq(daemon_start(&d), 0);
        added("writer", a, false);
        refused(a, false, 409, "already used by VM 'writer' device blk0");
        refused(a, true, 409, "already used by VM 'writer'");
        refused(alias, false, 409, "already used by VM 'writer'");
        added("reader1", b, true);
        added("reader2", b, true);
        refused(b, false, 409, "already used by VM 'reader1'");
        /* two devices of one VM */
        {
                char body[700];
                struct resp r;
                snprintf(body, sizeof(body),
                         "{\"name\":\"twice\",\"devices\":[{\"type\":\"blk\",\"path\":\"%s/c.img\"},"
                         "{\"type\":\"blk\",\"path\":\"%s/./c.img\"}]}", images, images);
                make_image(strcat(strcpy(alias, images), "/c.img"), "c");
                cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
                cr_assert_eq(r.status, 409, "%s", r.body);
                cr_assert(strstr(r.body, "already used by VM 'twice' device blk0"), "%s", r.body);
                resp_free(&r);
                cr_assert_not(daemon_holds(ino_of(alias)), "a refused VM keeps no image open");
        }
        /* the writer goes: its image is free */
        {
                struct resp r;
                cr_assert_eq(http_json(&d, "DELETE", "/v1/vms/writer", NULL, &r), 0);
                cr_assert_eq(r.status, 200);
                resp_free(&r);
        }
        added("writer2", a, false);
}

/* A dry run checks the image and keeps nothing open. */
Test(images, dry_run_opens_and_closes)
{
        char a[256], body[400];
        struct resp r;

        snprintf(a, sizeof(a), "%s/a.img", images);
        make_image(a, "a");
        cr_assert_eq(daemon_start(&d), 0);
        snprintf(body, sizeof(body), "{\"name\":\"x\",\"devices\":[{\"type\":\"blk\",\"path\":\"%s/nope.img\"}]}",
                 images);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms?dry_run=true", body, &r), 0);
        cr_assert_eq(r.status, 400, "%s", r.body);
        resp_free(&r);
        snprintf(body, sizeof(body), "{\"name\":\"x\",\"devices\":[{\"type\":\"blk\",\"path\":\"%s\"}]}", a);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms?dry_run=true", body, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        cr_assert_not(daemon_holds(ino_of(a)));
        cr_assert_eq(http_count(&d, "/v1/vms", "vms"), 0);
}

/* state.json keeps blk devices; after a restart the manager opens their images again and
 * attaches them as they were; GET changes nothing. */
Test(images, restart_reopens_images)
{
        char a[256], want[160], *line, *before_state, *after_state, state_path[256];
        json_t *before, *after;
        struct resp r;

        snprintf(a, sizeof(a), "%s/a.img", images);
        make_image(a, "a");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms",
                               "{\"name\":\"db\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"size\":\"64M\","
                               "\"queues\":2},{\"backend\":\"loopback\"}]}", &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        resp_free(&r);
        added("vm2", a, true);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        before = json_incref(r.json);
        resp_free(&r);
        snprintf(state_path, sizeof(state_path), "%s/state.json", d.state_dir);
        before_state = slurp_file(state_path);
        cr_assert_not_null(before_state);
        cr_assert(strstr(before_state, "\"blk\""), "state.json has the blk devices");
        cr_assert_eq(daemon_stop(&d), 0);
        unlink(fake_log);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        after = json_incref(r.json);
        resp_free(&r);
        cr_assert(json_equal(before, after), "the same VMs after the restart");
        json_decref(before);
        json_decref(after);
        line = attach_line(1, "blk0");
        cr_assert_not_null(line);
        cr_assert(strstr(line, "backend=null"), "%s", line);
        cr_assert(strstr(line, "size=67108864"), "%s", line);
        cr_assert(strstr(line, "queues=2"), "%s", line);
        free(line);
        line = attach_line(2, "blk0");
        cr_assert_not_null(line, "the image was opened again and attached");
        snprintf(want, sizeof(want), "image_fd=rdonly ino=%llu", ino_of(a));
        cr_assert(strstr(line, want), "%s", line);
        free(line);
        cr_assert(daemon_holds(ino_of(a)));
        after_state = slurp_file(state_path);
        cr_assert_str_eq(after_state, before_state, "reads changed nothing");
        free(before_state);
        free(after_state);
}

/* The kernel data plane has no blk device: a 4xx that names it, never a 500. */
Test(images, kernel_data_plane_refuses_blk)
{
        struct resp r;

        d.extra[3] = "kernel";  /* --dataplane kernel: the fake registered as "kernel" */
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms",
                               "{\"name\":\"db\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\"}]}", &r), 0);
        cr_assert_eq(r.status, 400, "%s", r.body);
        cr_assert(strstr(r.body, "kernel data plane cannot serve blk devices"), "%s", r.body);
        resp_free(&r);
        cr_assert_eq(http_count(&d, "/v1/vms", "vms"), 0);
}

/* A data plane that refuses the device: the VM is not added and its image not kept. */
Test(images, a_refused_attach_keeps_no_image)
{
        char a[256];
        struct resp r;

        snprintf(a, sizeof(a), "%s/a.img", images);
        make_image(a, "a");
        daemon_env(&d, "ELVIS_FAKE_FAIL=device_attach");
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_neq(add_vm("vm1", a, false, &r), 201, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(http_count(&d, "/v1/vms", "vms"), 0);
        cr_assert_not(daemon_holds(ino_of(a)), "the image was closed with the failed transaction");
}

/* After a restart an image that is gone (or now outside the rules) is reported and its
 * device left out of the data plane; the daemon starts, the VM and its other devices
 * stay, and nothing is opened in its place. */
Test(images, a_missing_image_after_restart_is_reported)
{
        char a[256], *log, *line;

        snprintf(a, sizeof(a), "%s/a.img", images);
        make_image(a, "a");
        cr_assert_eq(daemon_start(&d), 0);
        {
                char body[400];
                struct resp r;
                snprintf(body, sizeof(body), "{\"name\":\"vm1\",\"devices\":[{\"type\":\"blk\",\"path\":\"%s\"},"
                         "{\"backend\":\"loopback\"}]}", a);
                cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
                cr_assert_eq(r.status, 201, "%s", r.body);
                resp_free(&r);
        }
        cr_assert_eq(daemon_stop(&d), 0);
        cr_assert_eq(unlink(a), 0);
        unlink(fake_log);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_count(&d, "/v1/vms", "vms"), 1, "the VM is still there");
        line = attach_line(1, "blk0");
        cr_assert_null(line, "no image, no attach: %s", line);
        line = attach_line(1, "net1");
        cr_assert_not_null(line, "its other device is served");
        free(line);
        log = daemon_log(&d);
        cr_assert(strstr(log, "VM 1 device blk0 is not served: image '") && strstr(log, "does not exist"), "%s", log);
        free(log);
}
