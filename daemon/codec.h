/* JSON codecs for the model, shared by the REST API and the state file. Decoders are
 * strict: unknown fields, wrong types and out-of-range values are errors with a message. */
#pragma once
#include <elvis/model.h>

#include <jansson.h>
#include <stddef.h>

enum elvis_decode_mode {
        ELVIS_DECODE_CREATE,    /* API POST: only writable fields, defaults for the rest */
        ELVIS_DECODE_PATCH,     /* API PATCH/PUT: only writable fields, absent ones unchanged */
        ELVIS_DECODE_STATE,     /* state file: every field, required ones present */
};

struct elvis_err {
        int code;               /* negative errno */
        char detail[512];
};
int elvis_err_set(struct elvis_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

json_t *elvis_vm_to_json(const struct elvis_vm *vm);
int elvis_vm_from_json(const json_t *j, enum elvis_decode_mode mode, struct elvis_vm *vm, struct elvis_err *e);
json_t *elvis_sidecore_to_json(const struct elvis_state *s, const struct elvis_sidecore *sc);
int elvis_sidecore_from_json(const json_t *j, enum elvis_decode_mode mode, struct elvis_sidecore *sc,
                             struct elvis_err *e);
json_t *elvis_policy_to_json(const struct elvis_policy *p);
int elvis_policy_from_json(const json_t *j, enum elvis_decode_mode mode, struct elvis_policy *p, struct elvis_err *e);
json_t *elvis_state_to_json(const struct elvis_state *s);
/* Decodes and cross-checks a whole state (ids unique, assignments point at sidecores,
 * no CPU used twice). s must be initialised; it is only changed on success. */
int elvis_state_from_json(const json_t *j, struct elvis_state *s, struct elvis_err *e);
json_t *elvis_cpuset_to_json(const elvis_cpuset *set);

/* blk null backend: 1 GiB unless a size is given; at most 1 PiB. */
#define ELVIS_BLK_SIZE_DEFAULT (1ull << 30)
#define ELVIS_BLK_SIZE_MAX (1ull << 50)
/* "4096", "64M", "8G", "1TiB": bytes (K, M, G, T are powers of 1024); 0, -EINVAL or -ERANGE. */
int elvis_size_parse(const char *s, uint64_t *ret);
