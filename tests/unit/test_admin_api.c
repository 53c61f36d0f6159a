/* The admin API grammar (admin_api.c): request-target routing, allowed methods, the bearer
 * check and action bodies. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admin/admin.h"
#include "sidestep/error.h"

static const struct target_case {
    const char *target;
    int status; /* 0, 404, 400 */
    sst_admin_res_t res;
    sst_admin_op_t op;
    const char *name;
} target_cases[] = {
    {"/status", 0, SST_ARES_STATUS, 0, ""},
    {"/status?pretty=1", 0, SST_ARES_STATUS, 0, ""},
    {"/metrics", 0, SST_ARES_METRICS, 0, ""},
    {"/reload", 0, SST_ARES_RELOAD, 0, ""},
    {"/fleet", 0, SST_ARES_FLEET, 0, ""},
    {"/fleet/", 404, 0, 0, NULL},
    {"http://127.0.0.1:9901/status", 0, SST_ARES_STATUS, 0, ""},
    {"/regions/us-east/drain", 0, SST_ARES_REGION, SST_ADMIN_DRAIN, "us-east"},
    {"/regions/us-east/undrain", 0, SST_ARES_REGION, SST_ADMIN_UNDRAIN, "us-east"},
    {"/regions/us-east/force-down", 0, SST_ARES_REGION, SST_ADMIN_FORCE_DOWN, "us-east"},
    {"/regions/us-east/force-up", 0, SST_ARES_REGION, SST_ADMIN_FORCE_UP, "us-east"},
    {"/regions/us-east/clear?x", 0, SST_ARES_REGION, SST_ADMIN_CLEAR, "us-east"},
    {"/backends/127.0.0.1:9001/force-down", 0, SST_ARES_BACKEND, SST_ADMIN_FORCE_DOWN,
     "127.0.0.1:9001"},
    {"/backends/%5B::1%5D:9001/clear", 0, SST_ARES_BACKEND, SST_ADMIN_CLEAR, "[::1]:9001"},
    {"/backends/[::1]:9001/force-up", 0, SST_ARES_BACKEND, SST_ADMIN_FORCE_UP, "[::1]:9001"},
    {"/regions/a%2fb/drain", 0, SST_ARES_REGION, SST_ADMIN_DRAIN, "a/b"},
    {"/", 404, 0, 0, NULL},
    {"/status/", 404, 0, 0, NULL},
    {"/STATUS", 404, 0, 0, NULL},
    {"/regions", 404, 0, 0, NULL},
    {"/regions/us-east", 404, 0, 0, NULL},
    {"/regions/us-east/", 404, 0, 0, NULL},
    {"/regions//drain", 404, 0, 0, NULL},
    {"/regions/us-east/explode", 404, 0, 0, NULL},
    {"/regions/us-east/drain/now", 404, 0, 0, NULL},
    {"/backends/127.0.0.1:9001/drain", 404, 0, 0, NULL},
    {"/backends/127.0.0.1:9001/undrain", 404, 0, 0, NULL},
    {"/zones/a/drain", 404, 0, 0, NULL},
    {"*", 404, 0, 0, NULL},
    {"/regions/a%zz/drain", 400, 0, 0, NULL},
    {"/regions/a%4/drain", 400, 0, 0, NULL},
    {"/regions/a%/drain", 400, 0, 0, NULL},
    {"/regions/a%00b/drain", 400, 0, 0, NULL},
};

static void test_admin_targets(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(target_cases) / sizeof(target_cases[0]); i++) {
        const struct target_case *c = &target_cases[i];
        sst_admin_target_t t;
        const char *why = NULL;
        int rc = sst__admin_parse_target(sst_str_c(c->target), &t, &why);
        if (rc != c->status)
            fail_msg("%s: got %d, want %d", c->target, rc, c->status);
        if (rc != 0) {
            assert_non_null(why);
            continue;
        }
        assert_int_equal(t.res, c->res);
        assert_non_null(t.allow);
        if (c->res == SST_ARES_REGION || c->res == SST_ARES_BACKEND) {
            assert_int_equal(t.op, c->op);
            assert_string_equal(t.name, c->name);
        }
    }
}

static void test_admin_name_too_long(void **state)
{
    char target[1024];
    sst_admin_target_t t;
    const char *why;
    (void)state;
    snprintf(target, sizeof(target), "/regions/");
    size_t n = strlen(target);
    memset(target + n, 'a', SST_ADMIN_NAME_MAX);
    snprintf(target + n + SST_ADMIN_NAME_MAX, sizeof(target) - n - SST_ADMIN_NAME_MAX, "/drain");
    assert_int_equal(sst__admin_parse_target(sst_str_c(target), &t, &why), 404);
}

static void test_admin_methods(void **state)
{
    static const struct {
        const char *target, *method;
        bool ok;
    } cases[] = {
        {"/status", "GET", true},
        {"/status", "HEAD", true},
        {"/status", "POST", false},
        {"/metrics", "GET", true},
        {"/metrics", "DELETE", false},
        {"/reload", "POST", true},
        {"/reload", "GET", false},
        {"/regions/r/drain", "POST", true},
        {"/regions/r/drain", "GET", false},
        {"/regions/r/drain", "PUT", false},
        {"/backends/h:1/clear", "POST", true},
        {"/backends/h:1/clear", "post", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_admin_target_t t;
        const char *why;
        assert_int_equal(sst__admin_parse_target(sst_str_c(cases[i].target), &t, &why), 0);
        if (sst__admin_method_ok(&t, sst_str_c(cases[i].method)) != cases[i].ok)
            fail_msg("%s %s: want %d", cases[i].method, cases[i].target, cases[i].ok);
    }
}

static void test_admin_auth(void **state)
{
    static const struct {
        const char *value, *token;
        bool ok;
    } cases[] = {
        {"", NULL, true}, /* no token configured: no check */
        {"Bearer s3cret", NULL, true},
        {"Bearer s3cret", "s3cret", true},
        {"bearer s3cret", "s3cret", true},
        {"BEARER   s3cret  ", "s3cret", true},
        {"", "s3cret", false},
        {"Bearer", "s3cret", false},
        {"Bearer ", "s3cret", false},
        {"Bearer s3cre", "s3cret", false},
        {"Bearer s3crett", "s3cret", false},
        {"Bearer S3CRET", "s3cret", false},
        {"Basic czNjcmV0", "s3cret", false},
        {"Bearers3cret", "s3cret", false},
        {"Token s3cret", "s3cret", false},
        {"s3cret", "s3cret", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = sst__admin_auth_ok(sst_str_c(cases[i].value), cases[i].token);
        if (ok != cases[i].ok)
            fail_msg("\"%s\" vs %s: got %d", cases[i].value,
                     cases[i].token ? cases[i].token : "(none)", ok);
    }
}

static const struct action_case {
    const char *body;
    sst_admin_op_t op;
    int rc;
    const char *reason;
    uint64_t ttl_ms;
    const char *err; /* substring of the message */
} action_cases[] = {
    {"{\"reason\":\"drill\"}", SST_ADMIN_FORCE_DOWN, 0, "drill", 0, NULL},
    {"{\"reason\": \"drill\", \"ttl\": \"10m\"}", SST_ADMIN_FORCE_DOWN, 0, "drill", 600000, NULL},
    {" {\"ttl\":\"1500ms\",\"reason\":\"  padded  \"}\n", SST_ADMIN_DRAIN, 0, "padded", 1500, NULL},
    {"{\"reason\":\"caf\\u00e9 \\\"q\\\"\"}", SST_ADMIN_FORCE_UP, 0, "caf\xc3\xa9 \"q\"", 0, NULL},
    {"{\"reason\":\"x\"}", SST_ADMIN_CLEAR, 0, "x", 0, NULL},
    {"", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "required"},
    {"{}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "reason is required"},
    {"{\"reason\":\"\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "empty"},
    {"{\"reason\":\"   \"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "empty"},
    {"{\"reason\":5}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "string"},
    {"{\"reason\":null}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "string"},
    {"{\"reason\":[\"a\"]}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "string"},
    {"{\"reason\":\"a\\nb\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "control"},
    {"{\"reason\":\"a\\u0000b\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "control"},
    {"{\"reason\":\"x\",\"ttl\":\"soon\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "ttl"},
    {"{\"reason\":\"x\",\"ttl\":\"0\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "above zero"},
    {"{\"reason\":\"x\",\"ttl\":\"720h\"}", SST_ADMIN_FORCE_DOWN, 0, "x", 2592000000, NULL},
    {"{\"reason\":\"x\",\"ttl\":\"2592000001\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0,
     "at most 720h"},
    {"{\"reason\":\"x\",\"ttl\":\"9223372036000000000\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL,
     0, "at most 720h"},
    {"{\"reason\":\"x\",\"ttl\":600}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "duration"},
    {"{\"reason\":\"x\",\"ttl\":\"1m\"}", SST_ADMIN_CLEAR, SST_EINVAL, NULL, 0, "clear"},
    {"{\"reason\":\"x\",\"ttl\":\"1m\"}", SST_ADMIN_UNDRAIN, SST_EINVAL, NULL, 0, "undrain"},
    {"{\"reason\":\"x\",\"why\":\"y\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "unknown key"},
    {"{\"reason\":\"x\"} {}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "not valid JSON"},
    {"{\"reason\":\"x\"", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "not valid JSON"},
    {"{'reason':'x'}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "not valid JSON"},
    {"reason=x", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "not valid JSON"},
    {"[\"reason\"]", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "object"},
    {"\"x\"", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "object"},
    {"{\"reason\":\"\xff\xfe\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "not valid JSON"},
    {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}",
     SST_ADMIN_FORCE_DOWN, SST_EINVAL, NULL, 0, "not valid JSON"},
};

static void test_admin_action_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(action_cases) / sizeof(action_cases[0]); i++) {
        const struct action_case *c = &action_cases[i];
        sst_admin_action_t a;
        char err[256] = "";
        int rc = sst__admin_parse_action(c->body, strlen(c->body), c->op, &a, err, sizeof(err));
        if (rc != c->rc)
            fail_msg("%s: got %d (%s), want %d", c->body, rc, err, c->rc);
        if (rc == 0) {
            assert_string_equal(a.reason, c->reason);
            assert_int_equal(a.ttl_ms, c->ttl_ms);
        } else if (strstr(err, c->err) == NULL) {
            fail_msg("%s: message \"%s\" lacks \"%s\"", c->body, err, c->err);
        }
    }
}

static const struct scope_case {
    const char *body;
    sst_admin_op_t op;
    int rc;
    sst_admin_scope_t scope;
    bool override_safety;
    const char *err;
} scope_cases[] = {
    {"{\"reason\":\"x\"}", SST_ADMIN_FORCE_DOWN, 0, SST_ADMIN_SCOPE_DEFAULT, false, NULL},
    {"{\"reason\":\"x\",\"scope\":\"fleet\"}", SST_ADMIN_FORCE_DOWN, 0, SST_ADMIN_SCOPE_FLEET,
     false, NULL},
    {"{\"reason\":\"x\",\"scope\":\"local\",\"ttl\":\"1s\"}", SST_ADMIN_DRAIN, 0,
     SST_ADMIN_SCOPE_LOCAL, false, NULL},
    {"{\"reason\":\"x\",\"override_safety\":true}", SST_ADMIN_FORCE_DOWN, 0,
     SST_ADMIN_SCOPE_DEFAULT, true, NULL},
    {"{\"reason\":\"x\",\"override_safety\":false,\"scope\":\"fleet\"}", SST_ADMIN_DRAIN, 0,
     SST_ADMIN_SCOPE_FLEET, false, NULL},
    {"{\"reason\":\"x\",\"scope\":\"everywhere\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, 0, false,
     "scope must be"},
    {"{\"reason\":\"x\",\"scope\":\"FLEET\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, 0, false,
     "scope must be"},
    {"{\"reason\":\"x\",\"scope\":1}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, 0, false, "scope must be"},
    {"{\"reason\":\"x\",\"override_safety\":\"yes\"}", SST_ADMIN_FORCE_DOWN, SST_EINVAL, 0, false,
     "true or false"},
    {"{\"reason\":\"x\",\"override_safety\":true,\"scope\":\"local\"}", SST_ADMIN_FORCE_DOWN,
     SST_EINVAL, 0, false, "fleet actions"},
};

static void test_admin_action_scope(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scope_cases) / sizeof(scope_cases[0]); i++) {
        const struct scope_case *c = &scope_cases[i];
        sst_admin_action_t a;
        char err[256] = "";
        int rc = sst__admin_parse_action(c->body, strlen(c->body), c->op, &a, err, sizeof(err));
        if (rc != c->rc)
            fail_msg("%s: got %d (%s), want %d", c->body, rc, err, c->rc);
        if (rc == 0) {
            assert_int_equal(a.scope, c->scope);
            assert_int_equal(a.override_safety, c->override_safety);
        } else if (strstr(err, c->err) == NULL) {
            fail_msg("%s: message \"%s\" lacks \"%s\"", c->body, err, c->err);
        }
    }
}

static void test_admin_reason_length(void **state)
{
    char body[400], err[256];
    sst_admin_action_t a;
    (void)state;
    for (int n = SST_ADMIN_MAX_REASON; n <= SST_ADMIN_MAX_REASON + 1; n++) {
        snprintf(body, sizeof(body), "{\"reason\":\"%0*d\"}", n, 7);
        int rc = sst__admin_parse_action(body, strlen(body), SST_ADMIN_DRAIN, &a, err, sizeof(err));
        assert_int_equal(rc, n <= SST_ADMIN_MAX_REASON ? 0 : SST_EINVAL);
        if (rc == 0)
            assert_int_equal(strlen(a.reason), (size_t)n);
    }
    /* bodies over the cap are refused before parsing */
    assert_int_equal(sst__admin_parse_action(body, SST_ADMIN_MAX_BODY + 1, SST_ADMIN_DRAIN, &a, err,
                                             sizeof(err)),
                     SST_EINVAL);
}

static void test_admin_op_words(void **state)
{
    (void)state;
    assert_string_equal(sst__admin_op_word(SST_ADMIN_DRAIN), "drain");
    assert_string_equal(sst__admin_op_word(SST_ADMIN_UNDRAIN), "undrain");
    assert_string_equal(sst__admin_op_word(SST_ADMIN_FORCE_UP), "force-up");
    assert_string_equal(sst__admin_op_word(SST_ADMIN_FORCE_DOWN), "force-down");
    assert_string_equal(sst__admin_op_word(SST_ADMIN_CLEAR), "clear");
    assert_null(sst__admin_op_word((sst_admin_op_t)99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_targets),       cmocka_unit_test(test_admin_name_too_long),
        cmocka_unit_test(test_admin_methods),       cmocka_unit_test(test_admin_auth),
        cmocka_unit_test(test_admin_action_bodies), cmocka_unit_test(test_admin_reason_length),
        cmocka_unit_test(test_admin_op_words),      cmocka_unit_test(test_admin_action_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
