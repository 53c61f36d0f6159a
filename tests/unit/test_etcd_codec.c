/* etcd_codec.c and etcd_decode.c: base64 both ways, prefix ends, request bodies as the gateway
 * reads them, and decoding of gateway responses and watch messages, including every kind of bad
 * input (malformed JSON, wrong types, invalid base64, error bodies) turning into a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet/etcd_codec.h"
#include "sidestep/error.h"

#define HDR                                                                                        \
    "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"42\",\"raft_term\":"      \
    "\"2\"}"

/* ---- base64 ------------------------------------------------------------------------------- */

static void test_b64_vectors(void **state)
{
    /* RFC 4648 §10, plus bytes that use '+' and '/' */
    static const struct {
        const char *raw;
        size_t raw_len;
        const char *b64;
    } cases[] = {
        {"", 0, ""},
        {"f", 1, "Zg=="},
        {"fo", 2, "Zm8="},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg=="},
        {"fooba", 5, "Zm9vYmE="},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xff\xbf", 3, "+/+/"},
        {"\x00\x01\x00", 3, "AAEA"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char enc[32];
        uint8_t dec[32];
        size_t n = 0, blen = strlen(cases[i].b64);
        assert_int_equal(sst__etcd_b64_len(cases[i].raw_len), blen);
        sst__etcd_b64_encode(cases[i].raw, cases[i].raw_len, enc);
        assert_memory_equal(enc, cases[i].b64, blen);
        assert_int_equal(sst__etcd_b64_decode(cases[i].b64, blen, dec, &n), 0);
        assert_int_equal(n, cases[i].raw_len);
        if (n > 0)
            assert_memory_equal(dec, cases[i].raw, n);
    }
}

static void test_b64_rejects(void **state)
{
    static const char *const bad[] = {
        "Zg=",      /* not a multiple of 4 */
        "Zg==Zg==", /* padding before the end */
        "Z===",     /* three pad characters */
        "====",     /* nothing but padding */
        "Zh==",     /* non-zero bits under the padding: not canonical */
        "Zm9=",     /* same with one pad character */
        "Zm9v\n",   /* line breaks are not part of the encoding */
        "Zm9v!A==", /* outside the alphabet */
        "Zm=v",     /* '=' inside a quantum */
        "Zm9-",     /* the URL-safe alphabet is not etcd's */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t dec[16];
        size_t n = 0;
        assert_int_equal(sst__etcd_b64_decode(bad[i], strlen(bad[i]), dec, &n), SST_EINVAL);
    }
}

static void test_prefix_end(void **state)
{
    static const struct {
        const char *key;
        size_t len;
        const char *end;
        size_t end_len;
    } cases[] = {
        {"a", 1, "b", 1},         {"/sidestep/x/", 12, "/sidestep/x0", 12},
        {"a\xff", 2, "b", 1},     {"a\xff\xff", 3, "b", 1},
        {"\xff\xff", 2, "\0", 1}, {"", 0, "\0", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[16];
        size_t n = sst_etcd_prefix_end(cases[i].key, cases[i].len, out);
        assert_int_equal(n, cases[i].end_len);
        assert_memory_equal(out, cases[i].end, n);
    }
}

/* ---- request bodies ----------------------------------------------------------------------- */

static void expect_json(json_object *o, const char *want)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sst__etcd_json_text(o, 1 << 20, &text, &len), 0);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);
    json_object_put(o);
}

static void test_request_bodies(void **state)
{
    json_object *o = NULL;
    sst_etcd_range_t r = {
        .key = SST_STR_LIT("/a/"), .prefix = true, .limit = 5, .serializable = true};
    assert_int_equal(sst__etcd_json_range(&r, &o), 0);
    expect_json(o,
                "{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\",\"limit\":\"5\",\"serializable\":true}");

    sst_etcd_range_t all = {.prefix = true, .revision = 3, .count_only = true};
    assert_int_equal(sst__etcd_json_range(&all, &o), 0);
    expect_json(o,
                "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"revision\":\"3\",\"count_only\":true}");

    sst_etcd_range_t between = {
        .key = SST_STR_LIT("a"), .range_end = SST_STR_LIT("c"), .keys_only = true};
    assert_int_equal(sst__etcd_json_range(&between, &o), 0);
    expect_json(o, "{\"key\":\"YQ==\",\"range_end\":\"Yw==\",\"keys_only\":true}");

    sst_etcd_put_t p = {
        .key = SST_STR_LIT("k"), .value = SST_STR_LIT(""), .lease = 77, .prev_kv = true};
    assert_int_equal(sst__etcd_json_put(&p, &o), 0);
    expect_json(o, "{\"key\":\"aw==\",\"value\":\"\",\"lease\":\"77\",\"prev_kv\":true}");

    sst_etcd_compare_t cmp[2] = {
        {.key = SST_STR_LIT("/a/"),
         .prefix = true,
         .target = SST_ETCD_CMP_MOD,
         .result = SST_ETCD_CMP_LESS,
         .number = 7},
        {.key = SST_STR_LIT("v"),
         .target = SST_ETCD_CMP_VALUE,
         .result = SST_ETCD_CMP_NOT_EQUAL,
         .value = SST_STR_LIT("x")},
    };
    sst_etcd_op_t ops[3] = {
        {.type = SST_ETCD_OP_PUT,
         .put = {.key = SST_STR_LIT("/a/x"), .value = SST_STR_LIT("v"), .lease = 9}},
        {.type = SST_ETCD_OP_DELETE, .del = {.key = SST_STR_LIT("/a/y"), .prev_kv = true}},
        {.type = SST_ETCD_OP_RANGE, .range = {.key = SST_STR_LIT("/a/"), .prefix = true}},
    };
    sst_etcd_txn_t txn = {cmp, 2, ops, 2, ops + 2, 1};
    assert_int_equal(sst__etcd_json_txn(&txn, &o), 0);
    expect_json(o, "{\"compare\":[{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\",\"target\":\"MOD\","
                   "\"result\":\"LESS\",\"mod_revision\":\"7\"},{\"key\":\"dg==\",\"target\":"
                   "\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"eA==\"}],\"success\":[{"
                   "\"request_put\":{\"key\":\"L2EveA==\",\"value\":\"dg==\",\"lease\":\"9\"}},{"
                   "\"request_delete_range\":{\"key\":\"L2EveQ==\",\"prev_kv\":true}}],"
                   "\"failure\":[{\"request_range\":{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\"}}]}");

    sst_etcd_watch_opts_t w = {.key = SST_STR_LIT("/a/"),
                               .prefix = true,
                               .start_revision = 12,
                               .progress_notify = true,
                               .prev_kv = true};
    assert_int_equal(sst__etcd_json_watch(&w, &o), 0);
    expect_json(o, "{\"create_request\":{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\","
                   "\"start_revision\":\"12\",\"progress_notify\":true,\"prev_kv\":true}}");

    assert_int_equal(sst__etcd_json_lease(SST__ETCD_LEASE_GRANT, 10, 0, &o), 0);
    expect_json(o, "{\"TTL\":\"10\"}");
    assert_int_equal(sst__etcd_json_lease(SST__ETCD_LEASE_KEEPALIVE, 0, 694, &o), 0);
    expect_json(o, "{\"ID\":\"694\"}");
    assert_int_equal(sst__etcd_json_compact(99, true, &o), 0);
    expect_json(o, "{\"revision\":\"99\",\"physical\":true}");
}

static void test_request_rejects(void **state)
{
    json_object *o = NULL;
    sst_etcd_range_t no_key = {.limit = 1};
    sst_etcd_put_t no_put_key = {.value = SST_STR_LIT("v")};
    sst_etcd_delete_t neg = {.key = SST_STR_LIT("k")};
    sst_etcd_compare_t bad_cmp = {.key = SST_STR_LIT("k"), .target = (sst_etcd_cmp_target_t)9};
    sst_etcd_op_t bad_op = {.type = (sst_etcd_op_type_t)7};
    sst_etcd_txn_t txn_cmp = {.compare = &bad_cmp, .n_compare = 1};
    sst_etcd_txn_t txn_op = {.success = &bad_op, .n_success = 1};
    sst_etcd_txn_t txn_big = {.success = &bad_op, .n_success = SST_ETCD_MAX_TXN_OPS + 1};
    sst_etcd_range_t neg_rev = {.key = SST_STR_LIT("k"), .revision = -1};

    assert_int_equal(sst__etcd_json_range(&no_key, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_range(NULL, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_range(&neg_rev, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_put(&no_put_key, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_txn(&txn_cmp, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_txn(&txn_op, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_txn(&txn_big, &o), SST_E2BIG);
    assert_int_equal(sst__etcd_json_lease(SST__ETCD_LEASE_GRANT, 0, 0, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_lease(SST__ETCD_LEASE_REVOKE, 0, 0, &o), SST_EINVAL);
    assert_int_equal(sst__etcd_json_compact(0, false, &o), SST_EINVAL);
    neg.prev_kv = true;
    assert_int_equal(sst__etcd_json_delete(&neg, &o), 0);
    json_object_put(o);

    /* the text is bounded */
    sst_etcd_put_t big = {.key = SST_STR_LIT("k"), .value = SST_STR_LIT("0123456789")};
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sst__etcd_json_put(&big, &o), 0);
    assert_int_equal(sst__etcd_json_text(o, 20, &text, &len), SST_E2BIG);
    assert_null(text);
    json_object_put(o);
}

/* ---- unary responses ---------------------------------------------------------------------- */

typedef struct decode_case_s {
    const char *name;
    sst__etcd_call_t call;
    unsigned status;
    const char *body;
    int rc;
    const char *message; /* substring of the diag message; NULL: not checked */
} decode_case_t;

static const decode_case_t decode_errors[] = {
    {"not json", SST__ETCD_RANGE, 200, "hello", SST_EPROTO, "malformed"},
    {"truncated", SST__ETCD_RANGE, 200, "{\"header\":{\"revision\":\"1\"", SST_EPROTO, "truncated"},
    {"trailing data", SST__ETCD_RANGE, 200, "{}x", SST_EPROTO, "after the JSON"},
    {"two objects", SST__ETCD_RANGE, 200, "{}{}", SST_EPROTO, "after the JSON"},
    {"array", SST__ETCD_RANGE, 200, "[]", SST_EPROTO, "expected a JSON object"},
    {"empty", SST__ETCD_RANGE, 200, "", SST_EPROTO, "truncated"},
    {"nesting bomb", SST__ETCD_RANGE, 200,
     "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]}",
     SST_EPROTO, "malformed"},
    {"header not object", SST__ETCD_RANGE, 200, "{\"header\":7}", SST_EPROTO, "header"},
    {"revision bool", SST__ETCD_RANGE, 200, "{\"header\":{\"revision\":true}}", SST_EPROTO,
     "revision"},
    {"revision junk", SST__ETCD_RANGE, 200, "{\"header\":{\"revision\":\"12a\"}}", SST_EPROTO,
     "revision"},
    {"revision negative", SST__ETCD_RANGE, 200, "{\"header\":{\"revision\":\"-1\"}}", SST_EPROTO,
     "revision"},
    {"revision negative number", SST__ETCD_RANGE, 200, "{\"header\":{\"revision\":-1}}", SST_EPROTO,
     "revision"},
    {"revision overflow", SST__ETCD_RANGE, 200,
     "{\"header\":{\"revision\":\"99999999999999999999\"}}", SST_EPROTO, "revision"},
    {"revision float", SST__ETCD_RANGE, 200, "{\"header\":{\"revision\":1.5}}", SST_EPROTO,
     "revision"},
    {"kvs string", SST__ETCD_RANGE, 200, "{" HDR ",\"kvs\":\"x\"}", SST_EPROTO, "kvs"},
    {"kv not object", SST__ETCD_RANGE, 200, "{" HDR ",\"kvs\":[1]}", SST_EPROTO, "kv"},
    {"kv bad base64", SST__ETCD_RANGE, 200, "{" HDR ",\"kvs\":[{\"key\":\"!!!!\"}]}", SST_EPROTO,
     "key: invalid base64"},
    {"kv value number", SST__ETCD_RANGE, 200, "{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"value\":5}]}",
     SST_EPROTO, "value"},
    {"kv empty key", SST__ETCD_RANGE, 200, "{" HDR ",\"kvs\":[{\"value\":\"YQ==\"}]}", SST_EPROTO,
     "empty key"},
    {"more string", SST__ETCD_RANGE, 200, "{" HDR ",\"more\":\"true\"}", SST_EPROTO, "more"},
    {"txn two responses in one", SST__ETCD_TXN, 200,
     "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{},\"response_range\":{}}]}",
     SST_EPROTO, "responses"},
    {"txn unknown response", SST__ETCD_TXN, 200,
     "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_txn\":{}}]}", SST_EPROTO,
     "unknown response"},
    {"txn succeeded string", SST__ETCD_TXN, 200, "{" HDR ",\"succeeded\":\"yes\"}", SST_EPROTO,
     "succeeded"},
    {"grant without ID", SST__ETCD_LEASE_GRANT, 200, "{" HDR ",\"TTL\":\"5\"}", SST_EPROTO, "ID"},
    {"grant error field", SST__ETCD_LEASE_GRANT, 200, "{" HDR ",\"ID\":\"5\",\"error\":\"no\"}",
     SST_EIO, "no"},
    {"keepalive without result", SST__ETCD_LEASE_KEEPALIVE, 200, "{" HDR "}", SST_EPROTO, "result"},
    {"keepalive expired", SST__ETCD_LEASE_KEEPALIVE, 200, "{\"result\":{" HDR ",\"ID\":\"777\"}}\n",
     SST_ENOENT, "lease 777 not found"},
    {"keepalive stream error", SST__ETCD_LEASE_KEEPALIVE, 200,
     "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
     "\"http_status\":\"Service Unavailable\"}}",
     SST_EAGAIN, "etcdserver: no leader"},
    {"error invalid argument", SST__ETCD_RANGE, 400,
     "{\"error\":\"illegal base64 data\",\"message\":\"illegal base64 data\",\"code\":3}",
     SST_EINVAL, "illegal base64 data"},
    {"error lease not found", SST__ETCD_LEASE_REVOKE, 404,
     "{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: requested "
     "lease not found\",\"code\":5}",
     SST_ENOENT, "requested lease not found"},
    {"error compacted", SST__ETCD_COMPACT, 400,
     "{\"error\":\"x\",\"message\":\"etcdserver: mvcc: required revision has been compacted\","
     "\"code\":11}",
     SST_ERANGE, "compacted"},
    {"error control chars", SST__ETCD_RANGE, 503, "{\"message\":\"a\\u0001b\\nc\",\"code\":14}",
     SST_EAGAIN, "a?b?c"},
    {"error without code", SST__ETCD_RANGE, 500, "{\"error\":\"x\"}", SST_EPROTO, "HTTP 500"},
    {"error code string", SST__ETCD_RANGE, 500, "{\"code\":\"3\"}", SST_EPROTO, "HTTP 500"},
    {"error code out of range", SST__ETCD_RANGE, 500, "{\"code\":99}", SST_EPROTO, "HTTP 500"},
    {"error not json", SST__ETCD_RANGE, 502, "<html>bad gateway</html>", SST_EPROTO, "HTTP 502"},
};

static void test_decode_errors(void **state)
{
    for (size_t i = 0; i < sizeof(decode_errors) / sizeof(decode_errors[0]); i++) {
        const decode_case_t *t = &decode_errors[i];
        sst__etcd_arena_t a = {NULL};
        sst__etcd_diag_t d;
        sst_etcd_resp_t resp;
        int rc = sst__etcd_decode(t->call, t->status, t->body, strlen(t->body), &a, &resp, &d);
        if (rc != t->rc || (t->message && strstr(d.message, t->message) == NULL))
            fail_msg("%s: rc %d (want %d), message \"%s\"", t->name, rc, t->rc, d.message);
        assert_int_equal(resp.n_kvs, 0);
        sst__etcd_arena_free(&a);
    }
}

static void test_decode_range(void **state)
{
    const char *body = "{" HDR ",\"kvs\":[{\"key\":\"L2EveA==\",\"create_revision\":\"2\","
                       "\"mod_revision\":\"40\",\"version\":3,\"value\":\"AGI=\",\"lease\":"
                       "\"694\"},{\"key\":\"L2EveQ==\"}],\"count\":\"9\",\"more\":true}";
    sst__etcd_arena_t a = {NULL};
    sst__etcd_diag_t d;
    sst_etcd_resp_t r;
    assert_int_equal(sst__etcd_decode(SST__ETCD_RANGE, 200, body, strlen(body), &a, &r, &d), 0);
    assert_int_equal(r.revision, 42);
    assert_int_equal(r.n_kvs, 2);
    assert_int_equal(r.count, 9);
    assert_true(r.more);
    assert_int_equal(r.kvs[0].key.len, 4);
    assert_memory_equal(r.kvs[0].key.base, "/a/x", 5); /* NUL after the bytes */
    assert_int_equal(r.kvs[0].value.len, 2);
    assert_memory_equal(r.kvs[0].value.base, "\0b\0", 3);
    assert_int_equal(r.kvs[0].create_revision, 2);
    assert_int_equal(r.kvs[0].mod_revision, 40);
    assert_int_equal(r.kvs[0].version, 3);
    assert_int_equal(r.kvs[0].lease, 694);
    assert_int_equal(r.kvs[1].key.len, 4);
    assert_memory_equal(r.kvs[1].key.base, "/a/y", 4);
    assert_int_equal(r.kvs[1].value.len, 0);
    assert_int_equal(r.kvs[1].value.base[0], 0);
    sst__etcd_arena_free(&a);

    /* an empty range: only the header */
    const char *none = "{" HDR "}";
    assert_int_equal(sst__etcd_decode(SST__ETCD_RANGE, 200, none, strlen(none), &a, &r, &d), 0);
    assert_int_equal(r.revision, 42);
    assert_int_equal(r.n_kvs, 0);
    assert_null(r.kvs);
    sst__etcd_arena_free(&a);
}

static void test_decode_writes(void **state)
{
    sst__etcd_arena_t a = {NULL};
    sst__etcd_diag_t d;
    sst_etcd_resp_t r;
    const char *put = "{" HDR ",\"prev_kv\":{\"key\":\"aw==\",\"value\":\"dg==\","
                      "\"mod_revision\":\"41\"}}";
    assert_int_equal(sst__etcd_decode(SST__ETCD_PUT, 200, put, strlen(put), &a, &r, &d), 0);
    assert_int_equal(r.type, SST_ETCD_OP_PUT);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].value.base, "v");
    assert_int_equal(r.kvs[0].mod_revision, 41);
    sst__etcd_arena_free(&a);

    const char *del = "{" HDR ",\"deleted\":\"2\",\"prev_kvs\":[{\"key\":\"YQ==\"},"
                      "{\"key\":\"Yg==\"}]}";
    assert_int_equal(sst__etcd_decode(SST__ETCD_DELETE, 200, del, strlen(del), &a, &r, &d), 0);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.n_kvs, 2);
    assert_string_equal(r.kvs[1].key.base, "b");
    sst__etcd_arena_free(&a);

    const char *txn = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":"
                      "{\"revision\":\"42\"}}},{\"response_range\":{\"header\":{\"revision\":"
                      "\"42\"},\"kvs\":[{\"key\":\"YQ==\",\"value\":\"MQ==\"}],\"count\":\"1\"}},"
                      "{\"response_delete_range\":{\"deleted\":\"1\"}}]}";
    assert_int_equal(sst__etcd_decode(SST__ETCD_TXN, 200, txn, strlen(txn), &a, &r, &d), 0);
    assert_true(r.succeeded);
    assert_int_equal(r.n_ops, 3);
    assert_int_equal(r.ops[0].type, SST_ETCD_OP_PUT);
    assert_int_equal(r.ops[1].type, SST_ETCD_OP_RANGE);
    assert_int_equal(r.ops[1].n_kvs, 1);
    assert_string_equal(r.ops[1].kvs[0].value.base, "1");
    assert_int_equal(r.ops[2].type, SST_ETCD_OP_DELETE);
    assert_int_equal(r.ops[2].count, 1);
    sst__etcd_arena_free(&a);

    const char *failed = "{" HDR ",\"responses\":[]}";
    assert_int_equal(sst__etcd_decode(SST__ETCD_TXN, 200, failed, strlen(failed), &a, &r, &d), 0);
    assert_false(r.succeeded);
    assert_int_equal(r.n_ops, 0);
    sst__etcd_arena_free(&a);

    /* int64 as a decimal string (what the gateway writes) and as a number (accepted too) */
    const char *grant = "{" HDR ",\"ID\":\"7587869166469211142\",\"TTL\":10}";
    assert_int_equal(sst__etcd_decode(SST__ETCD_LEASE_GRANT, 200, grant, strlen(grant), &a, &r, &d),
                     0);
    assert_int_equal(r.lease_id, 7587869166469211142LL);
    assert_int_equal(r.ttl, 10);
    sst__etcd_arena_free(&a);

    const char *ka = "{\"result\":{" HDR ",\"ID\":\"777\",\"TTL\":\"5\"}}\n";
    assert_int_equal(sst__etcd_decode(SST__ETCD_LEASE_KEEPALIVE, 200, ka, strlen(ka), &a, &r, &d),
                     0);
    assert_int_equal(r.lease_id, 777);
    assert_int_equal(r.ttl, 5);
    sst__etcd_arena_free(&a);
}

/* ---- watch messages ----------------------------------------------------------------------- */

static int decode_watch_text(const char *text, sst__etcd_arena_t *a, sst_etcd_watch_msg_t *m,
                             sst__etcd_diag_t *d)
{
    json_object *o = NULL;
    int rc = sst__etcd_parse_json(text, strlen(text), &o, d);
    if (rc != 0)
        return rc;
    rc = sst__etcd_decode_watch(o, a, m, d);
    json_object_put(o);
    return rc;
}

typedef struct watch_case_s {
    const char *name;
    const char *text;
    int rc;
    sst_etcd_watch_kind_t kind;
    int err;
    int64_t revision, compact_revision;
    size_t n_events;
    const char *message;
} watch_case_t;

static const watch_case_t watch_cases[] = {
    {"created", "{\"result\":{" HDR ",\"created\":true}}", 0, SST_ETCD_WATCH_CREATED, 0, 42, 0, 0,
     ""},
    {"progress", "{\"result\":{" HDR "}}", 0, SST_ETCD_WATCH_PROGRESS, 0, 42, 0, 0, ""},
    {"events",
     "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":"
     "\"40\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"Yg==\",\"mod_revision\":\"41\"},"
     "\"prev_kv\":{\"key\":\"Yg==\",\"value\":\"eA==\"}}]}}",
     0, SST_ETCD_WATCH_EVENTS, 0, 42, 0, 2, ""},
    {"compacted",
     "{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":true,"
     "\"compact_revision\":\"5\"}}",
     0, SST_ETCD_WATCH_END, SST_ERANGE, 0, 5, 0, "compacted"},
    {"cancelled by etcd", "{\"result\":{" HDR ",\"canceled\":true,\"cancel_reason\":\"perm\"}}", 0,
     SST_ETCD_WATCH_END, SST_EIO, 42, 0, 0, "perm"},
    {"stream error", "{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}", 0,
     SST_ETCD_WATCH_END, SST_EAGAIN, 0, 0, 0, "no leader"},
    {"no result", "{\"x\":1}", SST_EPROTO, 0, 0, 0, 0, 0, "result"},
    {"result array", "{\"result\":[]}", SST_EPROTO, 0, 0, 0, 0, 0, "result"},
    {"bad event type",
     "{\"result\":{" HDR ",\"events\":[{\"type\":\"MOVE\",\"kv\":{\"key\":"
     "\"YQ==\"}}]}}",
     SST_EPROTO, 0, 0, 0, 0, 0, "event type"},
    {"event type number",
     "{\"result\":{" HDR ",\"events\":[{\"type\":7,\"kv\":{\"key\":"
     "\"YQ==\"}}]}}",
     SST_EPROTO, 0, 0, 0, 0, 0, "type"},
    {"event without kv", "{\"result\":{" HDR ",\"events\":[{\"type\":\"PUT\"}]}}", SST_EPROTO, 0, 0,
     0, 0, 0, "kv"},
    {"event bad base64", "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"Y\"}}]}}", SST_EPROTO,
     0, 0, 0, 0, 0, "invalid base64"},
    {"events in creation",
     "{\"result\":{" HDR ",\"created\":true,\"events\":[{\"kv\":{\"key\":"
     "\"YQ==\"}}]}}",
     SST_EPROTO, 0, 0, 0, 0, 0, "creation"},
    {"created string", "{\"result\":{" HDR ",\"created\":\"true\"}}", SST_EPROTO, 0, 0, 0, 0, 0,
     "created"},
    {"stream error without code", "{\"error\":{\"message\":\"x\"}}", SST_EPROTO, 0, 0, 0, 0, 0,
     "gRPC"},
};

static void test_decode_watch(void **state)
{
    for (size_t i = 0; i < sizeof(watch_cases) / sizeof(watch_cases[0]); i++) {
        const watch_case_t *t = &watch_cases[i];
        sst__etcd_arena_t a = {NULL};
        sst__etcd_diag_t d;
        sst_etcd_watch_msg_t m;
        int rc = decode_watch_text(t->text, &a, &m, &d);
        if (rc != t->rc || strstr(d.message, t->message) == NULL)
            fail_msg("%s: rc %d (want %d), message \"%s\"", t->name, rc, t->rc, d.message);
        if (rc == 0) {
            if (m.kind != t->kind || m.err != t->err || m.revision != t->revision ||
                m.compact_revision != t->compact_revision || m.n_events != t->n_events)
                fail_msg("%s: kind %d err %d rev %lld compact %lld events %zu", t->name, m.kind,
                         m.err, (long long)m.revision, (long long)m.compact_revision, m.n_events);
        }
        sst__etcd_arena_free(&a);
    }
}

static void test_decode_watch_events(void **state)
{
    sst__etcd_arena_t a = {NULL};
    sst__etcd_diag_t d;
    sst_etcd_watch_msg_t m;
    assert_int_equal(decode_watch_text(watch_cases[2].text, &a, &m, &d), 0);
    assert_int_equal(m.events[0].type, SST_ETCD_EVENT_PUT);
    assert_string_equal(m.events[0].kv.key.base, "a");
    assert_int_equal(m.events[0].kv.mod_revision, 40);
    assert_false(m.events[0].has_prev);
    assert_int_equal(m.events[1].type, SST_ETCD_EVENT_DELETE);
    assert_string_equal(m.events[1].kv.key.base, "b");
    assert_int_equal(m.events[1].kv.mod_revision, 41);
    assert_true(m.events[1].has_prev);
    assert_string_equal(m.events[1].prev_kv.value.base, "x");
    sst__etcd_arena_free(&a);
}

static void test_grpc_codes(void **state)
{
    static const struct {
        int code, err;
    } map[] = {
        {1, SST_ECANCELED}, {3, SST_EINVAL},  {4, SST_ETIMEDOUT}, {5, SST_ENOENT}, {6, SST_EEXIST},
        {7, SST_EACCES},    {8, SST_E2BIG},   {9, SST_EBUSY},     {10, SST_EBUSY}, {11, SST_ERANGE},
        {13, SST_EIO},      {14, SST_EAGAIN}, {16, SST_EACCES},   {2, SST_EIO},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        assert_int_equal(sst__etcd_grpc_error(map[i].code), map[i].err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),     cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_prefix_end),      cmocka_unit_test(test_request_bodies),
        cmocka_unit_test(test_request_rejects), cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_decode_range),    cmocka_unit_test(test_decode_writes),
        cmocka_unit_test(test_decode_watch),    cmocka_unit_test(test_decode_watch_events),
        cmocka_unit_test(test_grpc_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
