/* Unit tests: errno -> HTTP status map and problem documents. */
#include <criterion/criterion.h>

#include "../../api/problem.h"

#include <errno.h>

Test(problem, errno_map)
{
        cr_assert_eq(elvis_http_status_for_errno(-ENOENT), 404);
        cr_assert_eq(elvis_http_status_for_errno(-EEXIST), 409);
        cr_assert_eq(elvis_http_status_for_errno(-EBUSY), 409);
        cr_assert_eq(elvis_http_status_for_errno(-EINVAL), 400);
        cr_assert_eq(elvis_http_status_for_errno(-ENOSPC), 507);
        cr_assert_eq(elvis_http_status_for_errno(-E2BIG), 413);
        cr_assert_eq(elvis_http_status_for_errno(-EACCES), 403);
        cr_assert_eq(elvis_http_status_for_errno(-EIO), 500);
        cr_assert_eq(elvis_http_status_for_errno(-ENOTCONN), 503, "the data plane is lost");
        cr_assert_eq(elvis_http_status_for_errno(-ETIMEDOUT), 503, "the data plane does not answer");
        cr_assert_eq(elvis_http_status_for_errno(EINVAL), 400, "positive errno works too");
}

Test(problem, document_fields)
{
        json_t *p = elvis_problem_new(409, "a VM named 'x' already exists");

        cr_assert_str_eq(json_string_value(json_object_get(p, "type")), "urn:elvis:problem:conflict");
        cr_assert_str_eq(json_string_value(json_object_get(p, "title")), "Conflict");
        cr_assert_eq(json_integer_value(json_object_get(p, "status")), 409);
        cr_assert_str_eq(json_string_value(json_object_get(p, "detail")), "a VM named 'x' already exists");
        cr_assert_eq(json_object_size(p), 4);
        json_decref(p);
}
