/* str.c: slice comparisons, OWS trimming, RFC 9110 tokens and lists, checked decimal conversion
 * both ways. Table-driven; slices are cut out of longer buffers so that a helper reading past
 * `len` (or relying on a NUL) shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sidestep/error.h"
#include "sidestep/str.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A slice of the first `len` bytes of `text`, whose next byte is never a NUL. */
static sst_str_t cut(const char *text, size_t len, char *buf, size_t size)
{
    assert_true(len + 1 < size);
    memcpy(buf, text, len);
    buf[len] = 'Z'; /* a helper that reads past len sees this, not a terminator */
    buf[len + 1] = '\0';
    return sst_str(buf, len);
}

static void test_str_c_and_equality(void **state)
{
    static const struct {
        const char *a, *b;
        bool eq, ieq;
    } cases[] = {
        {"", "", true, true},         {"abc", "abc", true, true},
        {"abc", "ABC", false, true},  {"Content-Length", "content-length", false, true},
        {"abc", "abd", false, false}, {"abc", "ab", false, false},
        {"ab", "abc", false, false},  {"a-b", "A_B", false, false},
        {"[", "{", false, false}, /* 0x5b vs 0x7b: case folding is ASCII letters only */
        {"@", "`", false, false},     {"\xc3\xa9", "\xc3\x89", false, false}, /* no UTF-8 folding */
    };
    char ba[32], bb[32];
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        sst_str_t a = cut(cases[i].a, strlen(cases[i].a), ba, sizeof(ba));
        sst_str_t b = cut(cases[i].b, strlen(cases[i].b), bb, sizeof(bb));
        if (sst_str_eq(a, b) != cases[i].eq || sst_str_ieq(a, b) != cases[i].ieq)
            fail_msg("'%s' vs '%s': eq %d ieq %d", cases[i].a, cases[i].b, sst_str_eq(a, b),
                     sst_str_ieq(a, b));
        assert_int_equal(sst_str_ieq_c(a, cases[i].b), cases[i].ieq);
    }
    sst_str_t null = sst_str_c(NULL);
    assert_null(null.base);
    assert_int_equal(null.len, 0);
    assert_true(sst_str_eq(null, SST_STR_LIT("")));
    assert_true(sst_str_ieq(null, SST_STR_NULL));
    assert_int_equal(sst_str_c("hello").len, 5);
}

static void test_has_prefix(void **state)
{
    static const struct {
        const char *s, *prefix;
        bool want;
    } cases[] = {
        {"/api/v1", "/api", true},
        {"/api", "/api", true},
        {"/ap", "/api", false},
        {"/API", "/api", false}, /* byte-exact */
        {"", "", true},
        {"x", "", true},
    };
    char bs[32], bp[32];
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        sst_str_t s = cut(cases[i].s, strlen(cases[i].s), bs, sizeof(bs));
        sst_str_t p = cut(cases[i].prefix, strlen(cases[i].prefix), bp, sizeof(bp));
        if (sst_str_has_prefix(s, p) != cases[i].want)
            fail_msg("'%s' has prefix '%s': want %d", cases[i].s, cases[i].prefix, cases[i].want);
    }
    assert_true(sst_str_has_prefix(SST_STR_NULL, SST_STR_NULL));
}

static void test_trim_ows(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},           {"a", "a"},   {" \t a b \t ", "a b"},     {"\t\t", ""},
        {"  x", "x"},       {"x  ", "x"}, {"\r\nx\r\n", "\r\nx\r\n"}, /* OWS is SP and HTAB only */
        {"\vx\f", "\vx\f"},
    };
    char buf[32];
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        sst_str_t t = sst_str_trim_ows(cut(cases[i].in, strlen(cases[i].in), buf, sizeof(buf)));
        if (!sst_str_eq(t, sst_str_c(cases[i].out)))
            fail_msg("trim('%s') = '%.*s', want '%s'", cases[i].in, (int)t.len, t.base,
                     cases[i].out);
    }
}

static void test_tokens(void **state)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static const struct {
        const char *s;
        size_t len; /* 0: strlen */
        bool token;
    } cases[] = {
        {"GET", 0, true},
        {"X-Custom_Header.v2", 0, true},
        {"", 0, false},
        {"a b", 0, false},
        {"a:b", 0, false},
        {"a\tb", 0, false},
        {"\"q\"", 0, false},
        {"(x)", 0, false},
        {"a,b", 0, false},
        {"a/b", 0, false},
        {"a\0b", 3, false},
        {"\x7f", 0, false},
        {"caf\xc3\xa9", 0, false},
    };
    char buf[32];
    (void)state;

    for (unsigned c = 0; c < 256; c++)
        if (sst_is_tchar((unsigned char)c) != (c != 0 && strchr(tchars, (int)c) != NULL))
            fail_msg("sst_is_tchar(0x%02x) = %d", c, sst_is_tchar((unsigned char)c));
    for (size_t i = 0; i < N(cases); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
        if (sst_str_is_token(cut(cases[i].s, len, buf, sizeof(buf))) != cases[i].token)
            fail_msg("is_token('%s') want %d", cases[i].s, cases[i].token);
    }
}

static void test_lists(void **state)
{
    static const struct {
        const char *list;
        const char *items[5]; /* NULL-terminated */
    } cases[] = {
        {"", {NULL}},
        {",,, ,\t,", {NULL}},
        {"close", {"close", NULL}},
        {"keep-alive, Upgrade", {"keep-alive", "Upgrade", NULL}},
        {" a ,, b\t,c , ", {"a", "b", "c", NULL}},
        {"gzip,chunked", {"gzip", "chunked", NULL}},
        {"a b, c", {"a b", "c", NULL}}, /* inner spaces belong to the element */
    };
    char buf[64];
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        sst_str_t list = cut(cases[i].list, strlen(cases[i].list), buf, sizeof(buf));
        size_t pos = 0, n = 0;
        sst_str_t item;
        while (sst_str_next_list_item(list, &pos, &item)) {
            if (cases[i].items[n] == NULL || !sst_str_eq(item, sst_str_c(cases[i].items[n])))
                fail_msg("'%s' item %zu: '%.*s'", cases[i].list, n, (int)item.len, item.base);
            n++;
        }
        if (cases[i].items[n] != NULL)
            fail_msg("'%s': %zu items, want more", cases[i].list, n);
        assert_true(pos <= list.len);
    }
    assert_true(sst_str_list_has(SST_STR_LIT("keep-alive, Close"), "close"));
    assert_true(sst_str_list_has(SST_STR_LIT(" x ,\tclose\t"), "CLOSE"));
    assert_false(sst_str_list_has(SST_STR_LIT("closed, unclose"), "close"));
    assert_false(sst_str_list_has(SST_STR_LIT(""), "close"));
    assert_false(sst_str_list_has(SST_STR_LIT("clo se"), "close"));
}

static void test_to_u64(void **state)
{
    static const struct {
        const char *s;
        uint64_t max;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0, 0},
        {"42", 100, 0, 42},
        {"007", 10, 0, 7},
        {"100", 100, 0, 100},
        {"101", 100, SST_ERANGE, 0},
        {"7", 5, SST_ERANGE, 0},
        {"16", 15, SST_ERANGE, 0},
        {"19", 19, 0, 19},
        {"20", 19, SST_ERANGE, 0},
        {"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
        {"18446744073709551616", UINT64_MAX, SST_ERANGE, 0},
        {"99999999999999999999999", UINT64_MAX, SST_ERANGE, 0},
        {"", 10, SST_EINVAL, 0},
        {"-1", 10, SST_EINVAL, 0},
        {"+1", 10, SST_EINVAL, 0},
        {" 1", 10, SST_EINVAL, 0},
        {"1 ", 10, SST_EINVAL, 0},
        {"1a", 10, SST_EINVAL, 0},
        {"0x10", 100, SST_EINVAL, 0},
        {"1.5", 10, SST_EINVAL, 0},
    };
    char buf[40];
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        uint64_t out = 12345;
        int rc = sst_str_to_u64(cut(cases[i].s, strlen(cases[i].s), buf, sizeof(buf)), cases[i].max,
                                &out);
        if (rc != cases[i].rc || (rc == 0 && out != cases[i].want) || (rc != 0 && out != 12345))
            fail_msg("to_u64('%s', max %llu): rc %d out %llu", cases[i].s,
                     (unsigned long long)cases[i].max, rc, (unsigned long long)out);
    }
    /* the slice bounds the digits: "12" out of "123" */
    uint64_t v = 0;
    assert_int_equal(sst_str_to_u64(sst_str("123", 2), 100, &v), 0);
    assert_int_equal(v, 12);
}

static void test_u64_to_dec(void **state)
{
    static const struct {
        uint64_t v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {10, "10"},
        {1234567890, "1234567890"},
        {UINT64_MAX, "18446744073709551615"},
    };
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        char buf[22];
        memset(buf, 'x', sizeof(buf));
        size_t n = sst_u64_to_dec(cases[i].v, buf);
        assert_int_equal(n, strlen(cases[i].text));
        assert_memory_equal(buf, cases[i].text, n);
        assert_int_equal(buf[n], 'x'); /* no terminator written */
        uint64_t back = 0;
        assert_int_equal(sst_str_to_u64(sst_str(buf, n), UINT64_MAX, &back), 0);
        assert_true(back == cases[i].v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_c_and_equality),
        cmocka_unit_test(test_has_prefix),
        cmocka_unit_test(test_trim_ows),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_to_u64),
        cmocka_unit_test(test_u64_to_dec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
