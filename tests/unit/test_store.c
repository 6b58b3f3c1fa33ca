/* Unit tests: durable state file: save/load, corruption moved aside, stale temp files. */
#include <criterion/criterion.h>

#include "../../daemon/log.h"
#include "../../daemon/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
        snprintf(dir, sizeof(dir), "/tmp/elvis-store-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        elvis_log_set_level(LOG_CRIT);
}

static void teardown(void)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static void write_file(const char *name, const char *text)
{
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
}

static int count_prefix(const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        while ((de = readdir(d)))
                n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
        closedir(d);
        return n;
}

Test(store, save_then_load)
{
        struct elvis_store st;
        struct elvis_state s, back;
        char moved[256];

        cr_assert_eq(elvis_store_open(dir, &st), 0);
        cr_assert_eq(elvis_state_init(&s), 0);
        s.vms[0] = (struct elvis_vm){ .id = 1, .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        snprintf(s.vms[0].name, sizeof(s.vms[0].name), "alpha");
        s.nvms = 1;
        s.next_vm_id = 2;
        cr_assert_eq(elvis_store_save(&st, &s), 0);
        cr_assert_eq(count_prefix("state.json.tmp"), 0, "no temp file left behind");
        cr_assert_eq(elvis_state_init(&back), 0);
        cr_assert_eq(elvis_store_load(&st, &back, moved, sizeof(moved)), 1, "read from the file");
        cr_assert_str_eq(moved, "");
        cr_assert_eq(back.nvms, 1);
        cr_assert_str_eq(back.vms[0].name, "alpha");
        elvis_state_fini(&s);
        elvis_state_fini(&back);
        elvis_store_close(&st);
}

Test(store, missing_file_is_empty_state)
{
        struct elvis_store st;
        struct elvis_state s;
        char moved[256];

        cr_assert_eq(elvis_store_open(dir, &st), 0);
        cr_assert_eq(elvis_state_init(&s), 0);
        cr_assert_eq(elvis_store_load(&st, &s, moved, sizeof(moved)), 0, "nothing was read: a first start");
        cr_assert_str_eq(moved, "");
        cr_assert_eq(s.nvms, 0);
        elvis_state_fini(&s);
        elvis_store_close(&st);
}

static void expect_moved_aside(const char *content)
{
        struct elvis_store st;
        struct elvis_state s;
        char moved[256];

        write_file("state.json", content);
        cr_assert_eq(elvis_store_open(dir, &st), 0);
        cr_assert_eq(elvis_state_init(&s), 0);
        cr_assert_eq(elvis_store_load(&st, &s, moved, sizeof(moved)), 0, "corruption is not fatal");
        cr_assert_eq(s.nvms, 0);
        cr_assert(strstr(moved, "state.json.corrupt-"), "moved to '%s'", moved);
        cr_assert_eq(access(moved, F_OK), 0);
        cr_assert_eq(count_prefix("state.json.corrupt-"), 1);
        cr_assert_eq(access(st.path, F_OK), -1, "the corrupt file is no longer in place");
        elvis_state_fini(&s);
        elvis_store_close(&st);
}

Test(store, garbage_is_moved_aside) { expect_moved_aside("\x01\x02 not json at all"); }
Test(store, truncated_json_is_moved_aside) { expect_moved_aside("{\"format\":\"elvis-state\",\"version\":1,\"vms\":["); }
Test(store, empty_file_is_moved_aside) { expect_moved_aside(""); }
Test(store, invalid_state_is_moved_aside)
{
        expect_moved_aside("{\"format\":\"elvis-state\",\"version\":1,\"next_vm_id\":1,\"next_sidecore_id\":1,"
                           "\"vms\":[{\"id\":5,\"name\":\"x\",\"vcpus\":0,\"cpus\":\"\"}]}");
}
Test(store, future_version_is_moved_aside)
{
        expect_moved_aside("{\"format\":\"elvis-state\",\"version\":2,\"next_vm_id\":1,\"next_sidecore_id\":1}");
}

Test(store, stale_temp_file_is_ignored)
{
        struct elvis_store st;
        struct elvis_state s;
        char moved[256];

        write_file("state.json",
                   "{\"format\":\"elvis-state\",\"version\":1,\"next_vm_id\":3,\"next_sidecore_id\":1,\"vms\":[]}");
        write_file("state.json.tmp", "{\"format\":\"elvis-st");
        cr_assert_eq(elvis_store_open(dir, &st), 0);
        cr_assert_eq(elvis_state_init(&s), 0);
        cr_assert_eq(elvis_store_load(&st, &s, moved, sizeof(moved)), 1);
        cr_assert_eq(s.next_vm_id, 3, "the committed file wins over a half-written temp file");
        cr_assert_eq(count_prefix("state.json.tmp"), 0);
        elvis_state_fini(&s);
        elvis_store_close(&st);
}

Test(store, unwritable_directory_fails_cleanly)
{
        struct elvis_store st;
        struct elvis_state s;

        if (geteuid() == 0)
                cr_log_info("running as root: using a read-only bind is not possible here, testing ENOENT path");
        cr_assert_eq(elvis_store_open(dir, &st), 0);
        cr_assert_eq(elvis_state_init(&s), 0);
        /* remove the directory under the store: the save must fail without crashing */
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
        cr_assert_lt(elvis_store_save(&st, &s), 0);
        cr_assert_eq(mkdir(dir, 0700), 0);
        elvis_state_fini(&s);
        elvis_store_close(&st);
}
