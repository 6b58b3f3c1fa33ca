/* Durable state file: atomic replace (temp file, fsync, rename, fsync dir) and a load
 * that moves a corrupt file aside instead of failing. */
#pragma once
#include <elvis/model.h>

struct elvis_store {
        char *dir;
        char *path;     /* dir/state.json */
        int dirfd;
};

/* Creates dir (0700) if missing. */
int elvis_store_open(const char *dir, struct elvis_store *ret);
void elvis_store_close(struct elvis_store *st);
/* 1 and the state when the file was read; 0 and an empty state when there is no file
 * (a first start) or it was corrupt (then moved_aside names where it went); -errno on
 * I/O errors. */
int elvis_store_load(struct elvis_store *st, struct elvis_state *s, char *moved_aside, size_t len);
/* Writes the whole state; on return 0 the new state is durable. */
int elvis_store_save(struct elvis_store *st, const struct elvis_state *s);
