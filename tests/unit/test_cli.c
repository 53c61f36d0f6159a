/* cli.c, what ctl and drill share: option matching, the admin address and token defaults,
 * durations, path encoding, action bodies, reading JSON answers, durations for people.
 * Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "sidestep/error.h"
#include "tools/cli.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_opt(void **state)
{
    static const struct {
        const char *argv[3];
        int argc;
        const char *name;
        bool match, missing;
        const char *value;
        int next_i; /* the index after the call */
    } cases[] = {
        {{"x", "--admin", "h:1"}, 3, "--admin", true, false, "h:1", 2},
        {{"x", "--admin=h:1", NULL}, 2, "--admin", true, false, "h:1", 1},
        {{"x", "--admin=", NULL}, 2, "--admin", true, false, "", 1},
        {{"x", "--admin", NULL}, 2, "--admin", true, true, NULL, 1},
        {{"x", "--administrator", "v"}, 3, "--admin", false, false, NULL, 1},
        {{"x", "--adm", "v"}, 3, "--admin", false, false, NULL, 1},
        {{"x", "--token", "v"}, 3, "--admin", false, false, NULL, 1},
    };
    (void)state;
    for (size_t k = 0; k < N(cases); k++) {
        int i = 1;
        const char *value = NULL;
        bool missing = false;
        bool match = sst__cli_opt(cases[k].argc, (char **)cases[k].argv, &i, cases[k].name, &value,
                                  &missing);
        if (match != cases[k].match || missing != cases[k].missing || i != cases[k].next_i ||
            (cases[k].value == NULL ? value != NULL
                                    : value == NULL || strcmp(value, cases[k].value) != 0))
            fail_msg("case %zu (%s): match %d missing %d i %d value %s", k, cases[k].argv[1], match,
                     missing, i, value ? value : "(null)");
    }
}

static void test_admin_and_token_defaults(void **state)
{
    (void)state;
    assert_int_equal(unsetenv("SIDESTEP_ADMIN"), 0);
    assert_int_equal(unsetenv("SIDESTEP_TOKEN"), 0);
    assert_string_equal(sst__cli_admin(NULL), "127.0.0.1:9901");
    assert_string_equal(sst__cli_admin(""), "127.0.0.1:9901");
    assert_string_equal(sst__cli_admin("10.0.0.1:1"), "10.0.0.1:1");
    assert_null(sst__cli_env_token());
    assert_int_equal(setenv("SIDESTEP_ADMIN", "127.0.0.1:7", 1), 0);
    assert_int_equal(setenv("SIDESTEP_TOKEN", "s3cret", 1), 0);
    assert_string_equal(sst__cli_admin(NULL), "127.0.0.1:7");
    assert_string_equal(sst__cli_admin("10.0.0.1:1"), "10.0.0.1:1");
    assert_string_equal(sst__cli_env_token(), "s3cret");
    assert_int_equal(setenv("SIDESTEP_ADMIN", "", 1), 0);
    assert_int_equal(setenv("SIDESTEP_TOKEN", "", 1), 0);
    assert_string_equal(sst__cli_admin(NULL), "127.0.0.1:9901");
    assert_null(sst__cli_env_token());
}

static void test_admin_addr(void **state)
{
    static const struct {
        const char *text;
        int rc;
        const char *addr;
    } cases[] = {
        {"127.0.0.1:9901", 0, "127.0.0.1:9901"},
        {"http://127.0.0.1:9901/", 0, "127.0.0.1:9901"},
        {"http://127.0.0.1:9901", 0, "127.0.0.1:9901"},
        {"[::1]:9901", 0, "[::1]:9901"},
        {"127.0.0.1", SST_EINVAL, NULL},
        {"127.0.0.1:99999", SST_EINVAL, NULL},
        {"", SST_EINVAL, NULL},
        {"https://127.0.0.1:9901", SST_EINVAL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        sst_addr_t a;
        memset(&a, 0, sizeof(a));
        int rc = sst__cli_admin_addr(cases[i].text, &a);
        if (rc != cases[i].rc || (rc == 0 && strcmp(a.text, cases[i].addr) != 0))
            fail_msg("'%s': rc %d addr %s", cases[i].text, rc, a.text);
    }
}

static void test_duration(void **state)
{
    static const struct {
        const char *text;
        bool zero_ok;
        int rc;
        uint64_t ms;
    } cases[] = {
        {"500ms", false, 0, 500},
        {"3s", false, 0, 3000},
        {"1m", false, 0, 60000},
        {"24h", false, 0, 86400000},
        {"0s", true, 0, 0},
        {"0s", false, SST_EINVAL, 0},
        {"25h", false, SST_EINVAL, 0},
        {"fast", false, SST_EINVAL, 0},
        {"", false, SST_EINVAL, 0},
        {"-1s", false, SST_EINVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        uint64_t ms = 777;
        int rc = sst__cli_duration(cases[i].text, cases[i].zero_ok, &ms);
        if (rc != cases[i].rc || ms != (rc == 0 ? cases[i].ms : 777))
            fail_msg("'%s' (zero_ok %d): rc %d ms %llu", cases[i].text, cases[i].zero_ok, rc,
                     (unsigned long long)ms);
    }
}

static void test_encode(void **state)
{
    static const struct {
        const char *in;
        size_t size;
        const char *out;
    } cases[] = {
        {"us-east", 64, "us-east"},
        {"127.0.0.1:9001", 64, "127.0.0.1:9001"},
        {"a b/c?d", 64, "a%20b%2Fc%3Fd"},
        {"x%y~z", 64, "x%25y~z"},
        {"\xc3\xa9", 64, "%C3%A9"},
        {"abcdef", 5, "a"}, /* room for one escape and the NUL is kept, plain byte or not */
        {"a/b", 5, "a"},    /* "%2F" and the NUL do not fit after "a" */
        {"a/b", 6, "a%2F"},
        {"", 1, ""},
    };
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        char out[64];
        memset(out, 'Z', sizeof(out));
        sst__cli_encode(cases[i].in, out, cases[i].size);
        assert_string_equal(out, cases[i].out);
    }
}

static void test_action_body(void **state)
{
    char *b;
    (void)state;
    b = sst__cli_action_body("kernel \"upgrade\"", "10m");
    assert_non_null(b);
    assert_string_equal(b, "{\"reason\":\"kernel \\\"upgrade\\\"\",\"ttl\":\"10m\"}");
    free(b);
    b = sst__cli_action_body("drill", NULL);
    assert_non_null(b);
    assert_string_equal(b, "{\"reason\":\"drill\"}");
    free(b);
}

static void test_json(void **state)
{
    json_object *o = json_tokener_parse("{\"s\": \"text\", \"n\": 42, \"z\": null, \"o\": {\"k\": "
                                        "\"v\"}, \"error\": \"no such region\"}");
    sst_hc_reply_t r = {.status = 404, .body = (char *)"raw body"};
    (void)state;
    assert_non_null(o);
    assert_string_equal(sst__json_str(o, "s", "d"), "text");
    assert_string_equal(sst__json_str(o, "n", "d"), "d"); /* not a string */
    assert_string_equal(sst__json_str(o, "missing", "d"), "d");
    assert_null(sst__json_str(o, "missing", NULL));
    assert_int_equal(sst__json_u64(o, "n"), 42);
    assert_int_equal(sst__json_u64(o, "missing"), 0);
    assert_true(sst__json_has(o, "s"));
    assert_false(sst__json_has(o, "z"));
    assert_false(sst__json_has(o, "missing"));
    assert_string_equal(sst__json_str(sst__json_get(o, "o"), "k", NULL), "v");
    assert_null(sst__json_get(NULL, "k"));
    assert_string_equal(sst__json_str(NULL, "k", "d"), "d");
    assert_string_equal(sst__cli_error_text(o, &r), "no such region");
    assert_string_equal(sst__cli_error_text(NULL, &r), "raw body");
    assert_string_equal(sst__cli_error_text(sst__json_get(o, "o"), &r), "raw body");
    json_object_put(o);
}

static void test_human_ms(void **state)
{
    static const struct {
        uint64_t ms;
        const char *text;
    } cases[] = {
        {0, "0ms"},      {850, "850ms"},    {1000, "1s"},      {1500, "1.50s"},   {12400, "12.4s"},
        {60000, "1m0s"}, {200000, "3m20s"}, {3600000, "1h0m"}, {7500000, "2h5m"},
    };
    char buf[32];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(sst__human_ms(cases[i].ms, buf, sizeof(buf)), cases[i].text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opt),        cmocka_unit_test(test_admin_and_token_defaults),
        cmocka_unit_test(test_admin_addr), cmocka_unit_test(test_duration),
        cmocka_unit_test(test_encode),     cmocka_unit_test(test_action_body),
        cmocka_unit_test(test_json),       cmocka_unit_test(test_human_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
