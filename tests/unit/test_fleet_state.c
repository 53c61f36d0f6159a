/* fleet_values.c and fleet_state.c: the key layout both ways, the JSON codec of overrides,
 * heartbeats and views (round trips and every kind of bad value), the health quorum rule, the
 * merge of local and fleet overrides, and the safety rule. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg_fixture.h"
#include "fleet/fleet_state.h"
#include "sidestep/error.h"

#define FLEET "edge-prod"

/* ---- names and keys ----------------------------------------------------------------------- */

static void test_names(void **state)
{
    static const struct {
        const char *s;
        bool name, region, backend;
    } cases[] = {
        {"lb-1", true, true, false},
        {"a", true, true, false},
        {"A_b.c-9", true, true, false},
        {"-x", false, true, false},
        {".", false, true, false},
        {"_x", false, true, false},
        {"a/b", false, false, false},
        {"", false, false, false},
        {"a b", false, false, false},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true, true, false},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, true, false},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false, false},
        {"127.0.0.1:9001", false, false, true},
        {"backend.local:80", false, false, true},
        {"[::1]:9001", false, false, true},
        {"[2001:db8::7]:443", false, false, true},
        {"host:65535", false, false, true},
        {"host:65536", false, false, false},
        {"host:0", false, false, false},
        {"host:080", false, false, false},
        {"host:", false, false, false},
        {":80", false, false, false},
        {"[]:80", false, false, false},
        {"[g::1]:80", false, false, false},
        {"[::1]80", false, false, false},
        {"a_b:80", false, false, false},
        {"host:80/x", false, false, false},
        {"host:8a", false, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_str_t s = sst_str_c(cases[i].s);
        if (sst_fleet_valid_name(s) != cases[i].name ||
            sst_fleet_valid_region(s) != cases[i].region ||
            sst_fleet_valid_backend(s) != cases[i].backend)
            fail_msg("\"%s\": name %d region %d backend %d", cases[i].s, sst_fleet_valid_name(s),
                     sst_fleet_valid_region(s), sst_fleet_valid_backend(s));
    }
}

static void test_keys(void **state)
{
    static const struct {
        sst_fleet_key_kind_t kind;
        const char *name;
        const char *key;
    } cases[] = {
        {SST_FLEET_KEY_REGION_FORCE, "us-east",
         "/sidestep/edge-prod/overrides/region/us-east/force"},
        {SST_FLEET_KEY_REGION_DRAIN, "us-east",
         "/sidestep/edge-prod/overrides/region/us-east/drain"},
        {SST_FLEET_KEY_BACKEND_FORCE, "10.0.0.1:80",
         "/sidestep/edge-prod/overrides/backend/10.0.0.1:80/force"},
        {SST_FLEET_KEY_BACKEND_FORCE, "[::1]:9001",
         "/sidestep/edge-prod/overrides/backend/[::1]:9001/force"},
        {SST_FLEET_KEY_INSTANCE, "lb-1", "/sidestep/edge-prod/instances/lb-1"},
        {SST_FLEET_KEY_VIEW, "lb-1", "/sidestep/edge-prod/views/lb-1"},
    };
    char buf[SST_FLEET_KEY_MAX];
    size_t len;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_fleet_key_info_t info;
        assert_int_equal(
            sst_fleet_key(FLEET, cases[i].kind, sst_str_c(cases[i].name), buf, sizeof(buf), &len),
            0);
        assert_string_equal(buf, cases[i].key);
        assert_int_equal(len, strlen(cases[i].key));
        assert_int_equal(sst_fleet_key_parse(FLEET, sst_str(buf, len), &info), 0);
        assert_int_equal(info.kind, cases[i].kind);
        assert_true(sst_str_eq(info.name, sst_str_c(cases[i].name)));
    }
    static const struct {
        sst_fleet_prefix_t which;
        const char *prefix;
    } prefixes[] = {
        {SST_FLEET_PREFIX_ROOT, "/sidestep/edge-prod/"},
        {SST_FLEET_PREFIX_OVERRIDES, "/sidestep/edge-prod/overrides/"},
        {SST_FLEET_PREFIX_INSTANCES, "/sidestep/edge-prod/instances/"},
        {SST_FLEET_PREFIX_VIEWS, "/sidestep/edge-prod/views/"},
    };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        assert_int_equal(sst_fleet_prefix(FLEET, prefixes[i].which, buf, sizeof(buf), &len), 0);
        assert_string_equal(buf, prefixes[i].prefix);
    }
    /* refusals */
    assert_int_equal(sst_fleet_key(FLEET, SST_FLEET_KEY_REGION_FORCE, SST_STR_LIT("us/east"), buf,
                                   sizeof(buf), &len),
                     SST_EINVAL);
    assert_int_equal(
        sst_fleet_key(FLEET, SST_FLEET_KEY_INSTANCE, SST_STR_LIT("-x"), buf, sizeof(buf), &len),
        SST_EINVAL);
    assert_int_equal(
        sst_fleet_key(FLEET, SST_FLEET_KEY_BACKEND_FORCE, SST_STR_LIT("x"), buf, sizeof(buf), &len),
        SST_EINVAL);
    assert_int_equal(sst_fleet_key("bad/fleet", SST_FLEET_KEY_INSTANCE, SST_STR_LIT("a"), buf,
                                   sizeof(buf), &len),
                     SST_EINVAL);
    assert_int_equal(sst_fleet_key(FLEET, SST_FLEET_KEY_INSTANCE, SST_STR_LIT("a"), buf, 30, &len),
                     SST_E2BIG);
    assert_int_equal(sst_fleet_prefix(FLEET, SST_FLEET_PREFIX_VIEWS, buf, 26, &len), SST_E2BIG);
    assert_int_equal(sst_fleet_prefix(FLEET, SST_FLEET_PREFIX_VIEWS, buf, 27, &len), 0);
}

static void test_key_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "/sidestep/other/instances/lb-1",
        "/sidestep/edge-prodx/instances/lb-1",
        "/sidestep/edge-prod/instances/",
        "/sidestep/edge-prod/instances/a/b",
        "/sidestep/edge-prod/views/-a",
        "/sidestep/edge-prod/overrides/region/us-east/up",
        "/sidestep/edge-prod/overrides/region/us-east",
        "/sidestep/edge-prod/overrides/region/us-east/",
        "/sidestep/edge-prod/overrides/region/a/b/force",
        "/sidestep/edge-prod/overrides/region//force",
        "/sidestep/edge-prod/overrides/backend/x:1/drain",
        "/sidestep/edge-prod/overrides/backend/nohost/force",
        "/sidestep/edge-prod/overrides/zone/a/force",
        "/sidestep/edge-prod/",
        "sidestep/edge-prod/views/a",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sst_fleet_key_info_t info;
        if (sst_fleet_key_parse(FLEET, sst_str_c(bad[i]), &info) != SST_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

/* ---- values ------------------------------------------------------------------------------- */

static sst_fleet_override_t sample_override(void)
{
    sst_fleet_override_t o = {.state = SST_FLEET_DOWN,
                              .created_at = 1700000000000,
                              .expires_at = 1700000600000,
                              .ttl_ms = 600000};
    snprintf(o.reason, sizeof(o.reason), "drill \"q3\"");
    snprintf(o.by_instance, sizeof(o.by_instance), "lb-1");
    snprintf(o.by_client, sizeof(o.by_client), "10.0.0.9:51234");
    return o;
}

static void test_override_codec(void **state)
{
    sst_fleet_override_t o = sample_override(), back;
    char buf[1024], err[160];
    size_t len;
    assert_int_equal(sst_fleet_override_encode(&o, buf, sizeof(buf), &len, err, sizeof(err)), 0);
    assert_string_equal(buf, "{\"by\":{\"instance\":\"lb-1\",\"client\":\"10.0.0.9:51234\"},"
                             "\"state\":\"down\",\"reason\":\"drill \\\"q3\\\"\",\"created_at\":"
                             "1700000000000,\"expires_at\":1700000600000,\"ttl_ms\":600000}");
    assert_int_equal(
        sst_fleet_override_decode(SST_FLEET_KEY_REGION_FORCE, buf, len, &back, err, sizeof(err)),
        0);
    assert_memory_equal(&o, &back, sizeof(o));
    assert_int_equal(sst_fleet_override_encode(&o, buf, 40, &len, err, sizeof(err)), SST_E2BIG);

    /* a drain with no expiry, decoded with unknown fields ignored */
    const char *drain = "{\"state\":\"drain\",\"reason\":\"maint\",\"by\":{\"instance\":\"lb-2\"},"
                        "\"created_at\":5,\"future\":[1,2]}";
    assert_int_equal(sst_fleet_override_decode(SST_FLEET_KEY_REGION_DRAIN, drain, strlen(drain),
                                               &back, err, sizeof(err)),
                     0);
    assert_int_equal(back.state, SST_FLEET_DRAIN);
    assert_int_equal(back.expires_at, 0);
    assert_string_equal(back.by_client, "");

    o.reason[0] = 0;
    assert_int_equal(sst_fleet_override_encode(&o, buf, sizeof(buf), &len, err, sizeof(err)),
                     SST_EINVAL);
    assert_non_null(strstr(err, "reason"));
}

typedef struct bad_value_s {
    const char *json;
    const char *err; /* substring */
} bad_value_t;

#define OVR_TAIL ",\"by\":{\"instance\":\"lb-1\"},\"created_at\":1}"

static void test_override_rejects(void **state)
{
    static const struct {
        sst_fleet_key_kind_t kind;
        bad_value_t v;
    } cases[] = {
        {SST_FLEET_KEY_REGION_FORCE, {"{\"state\":\"drain\",\"reason\":\"x\"" OVR_TAIL, "state"}},
        {SST_FLEET_KEY_REGION_DRAIN, {"{\"state\":\"down\",\"reason\":\"x\"" OVR_TAIL, "state"}},
        {SST_FLEET_KEY_BACKEND_FORCE, {"{\"state\":\"DOWN\",\"reason\":\"x\"" OVR_TAIL, "state"}},
        {SST_FLEET_KEY_INSTANCE, {"{\"state\":\"down\",\"reason\":\"x\"" OVR_TAIL, "key"}},
        {SST_FLEET_KEY_REGION_FORCE, {"{\"reason\":\"x\"" OVR_TAIL, "state: required"}},
        {SST_FLEET_KEY_REGION_FORCE, {"{\"state\":1,\"reason\":\"x\"" OVR_TAIL, "state"}},
        {SST_FLEET_KEY_REGION_FORCE, {"{\"state\":\"down\"" OVR_TAIL, "reason: required"}},
        {SST_FLEET_KEY_REGION_FORCE, {"{\"state\":\"down\",\"reason\":\"\"" OVR_TAIL, "reason"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"a\\u0007b\"" OVR_TAIL, "reason: control"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x12345678901234567890123456789012345678901234567890"
          "12345678901234567890123456789012345678901234567890\"" OVR_TAIL,
          "reason: longer than 100"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"created_at\":1}", "by: required"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":\"lb-1\",\"created_at\":1}",
          "by: expected"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"-\"},\"created_at\":1}",
          "by.instance"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"a\"},\"created_at\":-1}",
          "created_at"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"a\"},\"created_at\":\"1\"}",
          "created_at"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"a\"},\"created_at\":1.5}",
          "created_at"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"a\"},\"created_at\":10,"
          "\"expires_at\":20,\"ttl_ms\":5}",
          "expires_at"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"a\"},\"created_at\":10,"
          "\"ttl_ms\":5}",
          "expires_at"}},
        {SST_FLEET_KEY_REGION_FORCE,
         {"{\"state\":\"down\",\"reason\":\"x\",\"by\":{\"instance\":\"a\"},\"created_at\":10,"
          "\"expires_at\":5,\"ttl_ms\":0}",
          "expires_at"}},
        {SST_FLEET_KEY_REGION_FORCE, {"not json", "value"}},
        {SST_FLEET_KEY_REGION_FORCE, {"[]", "value"}},
        {SST_FLEET_KEY_REGION_FORCE, {"{\"state\":\"down\"", "value"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_fleet_override_t out;
        char err[160] = "";
        int rc = sst_fleet_override_decode(cases[i].kind, cases[i].v.json, strlen(cases[i].v.json),
                                           &out, err, sizeof(err));
        if (rc != SST_EINVAL || strstr(err, cases[i].v.err) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\" (want \"%s\")", i, rc, err, cases[i].v.err);
    }
    char *huge = malloc(SST_FLEET_VALUE_MAX + 2);
    assert_non_null(huge);
    memset(huge, ' ', SST_FLEET_VALUE_MAX + 1);
    huge[0] = '{';
    huge[SST_FLEET_VALUE_MAX] = '}';
    sst_fleet_override_t out;
    char err[160];
    assert_int_equal(sst_fleet_override_decode(SST_FLEET_KEY_REGION_FORCE, huge,
                                               SST_FLEET_VALUE_MAX + 1, &out, err, sizeof(err)),
                     SST_EINVAL);
    assert_non_null(strstr(err, "larger than"));
    free(huge);
}

static void test_instance_codec(void **state)
{
    sst_fleet_instance_t v = {.config_version = 7,
                              .started_at = 1700000000000,
                              .seen_at = 1700000005000,
                              .applied_revision = 1234},
                         back;
    char buf[1024], err[160];
    size_t len;
    snprintf(v.instance, sizeof(v.instance), "lb-1");
    snprintf(v.admin, sizeof(v.admin), "[2001:db8::5]:9901");
    snprintf(v.version, sizeof(v.version), "0.1.0");
    snprintf(v.config_hash, sizeof(v.config_hash), "9f86d081884c7d65");
    assert_int_equal(sst_fleet_instance_encode(&v, buf, sizeof(buf), &len, err, sizeof(err)), 0);
    assert_string_equal(buf, "{\"instance\":\"lb-1\",\"admin\":\"[2001:db8::5]:9901\",\"version\":"
                             "\"0.1.0\",\"config_version\":7,\"config_hash\":\"9f86d081884c7d65\","
                             "\"started_at\":1700000000000,\"seen_at\":1700000005000,"
                             "\"applied_revision\":1234}");
    assert_int_equal(
        sst_fleet_instance_decode(SST_STR_LIT("lb-1"), buf, len, &back, err, sizeof(err)), 0);
    assert_memory_equal(&v, &back, sizeof(v));

    static const bad_value_t bad[] = {
        {"{\"instance\":\"lb-2\",\"admin\":\"h:1\",\"version\":\"1\",\"config_version\":1,"
         "\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":1,\"applied_revision\":0}",
         "another instance"},
        {"{\"instance\":\"lb-1\",\"admin\":\"h\",\"version\":\"1\",\"config_version\":1,"
         "\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":1,\"applied_revision\":0}",
         "admin"},
        {"{\"instance\":\"lb-1\",\"admin\":\"h:1\",\"version\":\"1\",\"config_version\":1,"
         "\"config_hash\":\"AB\",\"started_at\":1,\"seen_at\":1,\"applied_revision\":0}",
         "config_hash"},
        {"{\"instance\":\"lb-1\",\"admin\":\"h:1\",\"version\":\"1\",\"config_version\":1,"
         "\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":1}",
         "applied_revision: required"},
        {"{\"instance\":\"lb-1\",\"admin\":\"h:1\",\"version\":\"\",\"config_version\":1,"
         "\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":1,\"applied_revision\":0}",
         "version"},
        {"{\"instance\":\"lb-1\",\"admin\":\"h:1\",\"version\":\"1\",\"config_version\":true,"
         "\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":1,\"applied_revision\":0}",
         "config_version"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        int rc = sst_fleet_instance_decode(SST_STR_LIT("lb-1"), bad[i].json, strlen(bad[i].json),
                                           &back, err, sizeof(err));
        if (rc != SST_EINVAL || strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\"", i, rc, err);
    }
}

static sst_config_t *three_regions(void)
{
    sst_config_t *cfg = cfx_new();
    size_t us = cfx_region(cfg, "us");
    cfx_backend(cfg, us, "10.0.0.1", 80);
    cfx_backend(cfg, us, "10.0.0.2", 80);
    size_t eu = cfx_region(cfg, "eu");
    cfx_backend(cfg, eu, "10.1.0.1", 80);
    size_t ap = cfx_region(cfg, "ap");
    cfx_backend(cfg, ap, "10.2.0.1", 80);
    cfx_backend(cfg, ap, "::1", 81);
    cfg->regions[ap].min_healthy = 100;
    cfg->regions[ap].min_healthy_pct = true;
    size_t f0[] = {eu}, f2[] = {us, ap};
    cfx_route(cfg, us, f0, 1);   /* route0: us, then eu */
    cfx_route(cfg, ap, NULL, 0); /* route1: ap alone */
    cfx_route(cfg, eu, f2, 2);   /* route2: eu, then us, then ap */
    return cfg;
}

static void test_view_codec(void **state)
{
    sst_fleet_view_t v = {.at = 1700000000000, .n_regions = 2}, back;
    char buf[2048], err[160];
    size_t len;
    snprintf(v.regions[0].name, sizeof(v.regions[0].name), "us");
    v.regions[0].down = true;
    snprintf(v.regions[0].reason, sizeof(v.regions[0].reason), "L7STS");
    snprintf(v.regions[0].text, sizeof(v.regions[0].text), "status 503");
    snprintf(v.regions[1].name, sizeof(v.regions[1].name), "mars");
    assert_int_equal(sst_fleet_view_encode(&v, buf, sizeof(buf), &len, err, sizeof(err)), 0);
    assert_string_equal(buf, "{\"regions\":{\"us\":{\"state\":\"down\",\"reason\":\"L7STS\","
                             "\"text\":\"status 503\"},\"mars\":{\"state\":\"up\",\"reason\":\"\","
                             "\"text\":\"\"}},\"at\":1700000000000}");
    assert_int_equal(sst_fleet_view_decode(buf, len, &back, err, sizeof(err)), 0);
    assert_memory_equal(&v, &back, sizeof(v));

    /* a view maps onto this config's regions; regions it does not have are skipped */
    sst_config_t *cfg = three_regions();
    uint32_t down, known;
    sst_fleet_view_masks(cfg, &back, &down, &known);
    assert_int_equal(down, 1u << 0);
    assert_int_equal(known, 1u << 0);
    cfx_free(cfg);

    static const bad_value_t bad[] = {
        {"{\"regions\":{}}", "at: required"},
        {"{\"at\":1}", "regions: required"},
        {"{\"at\":1,\"regions\":[]}", "regions: expected an object"},
        {"{\"at\":1,\"regions\":{\"us\":\"down\"}}", "regions.us: expected an object"},
        {"{\"at\":1,\"regions\":{\"us\":{\"state\":\"sideways\"}}}", "regions.us.state"},
        {"{\"at\":1,\"regions\":{\"us\":{}}}", "state: required"},
        {"{\"at\":1,\"regions\":{\"us\":{\"state\":\"up\",\"reason\":\"l7sts\"}}}", "reason"},
        {"{\"at\":1,\"regions\":{\"u s\":{\"state\":\"up\"}}}", "invalid region name"},
        {"{\"at\":1,\"regions\":{\"us\":{\"state\":\"up\",\"text\":\"a\\nb\"}}}", "text"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        int rc = sst_fleet_view_decode(bad[i].json, strlen(bad[i].json), &back, err, sizeof(err));
        if (rc != SST_EINVAL || strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\"", i, rc, err);
    }
    /* more regions than any config may have */
    char big[4096];
    int off = snprintf(big, sizeof(big), "{\"at\":1,\"regions\":{");
    for (int i = 0; i <= SST_MAX_REGIONS; i++)
        off += snprintf(big + off, sizeof(big) - (size_t)off, "%s\"r%d\":{\"state\":\"up\"}",
                        i ? "," : "", i);
    snprintf(big + off, sizeof(big) - (size_t)off, "}}");
    assert_int_equal(sst_fleet_view_decode(big, strlen(big), &back, err, sizeof(err)), SST_EINVAL);
    assert_non_null(strstr(err, "more than"));
}

/* ---- quorum ------------------------------------------------------------------------------- */

typedef struct qpeer_s {
    const char *name;
    bool live, has_view;
    uint32_t down, known;
} qpeer_t;

typedef struct qcase_s {
    const char *what;
    sst_fleet_quorum_mode_t mode;
    uint32_t count;
    size_t n_regions;
    uint32_t own_down;
    bool store_lost;
    qpeer_t peers[4];
    size_t n_peers;
    uint32_t down, disagree, short_of_count;
    sst_fleet_quorum_basis_t basis;
} qcase_t;

#define UP1                                                                                        \
    {                                                                                              \
        NULL, true, true, 0, 1                                                                     \
    }
#define DOWN1                                                                                      \
    {                                                                                              \
        NULL, true, true, 1, 1                                                                     \
    }

static const qcase_t quorum_cases[] = {
    {"off: own view",
     SST_FLEET_QUORUM_OFF,
     0,
     1,
     1,
     false,
     {UP1, UP1},
     2,
     1,
     0,
     0,
     SST_FLEET_BASIS_LOCAL},
    {"majority alone: own view",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {{0}},
     0,
     1,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: alone seeing down keeps routing",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {UP1, UP1},
     2,
     0,
     1,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: follows the others",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     0,
     false,
     {DOWN1, DOWN1},
     2,
     1,
     1,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: 2 of 3",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {DOWN1, UP1},
     2,
     1,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: a tie is up",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {UP1},
     1,
     0,
     1,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: dead peers do not vote",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     0,
     false,
     {{"a", false, true, 1, 1}, {"b", false, true, 1, 1}},
     2,
     0,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: peers without a view do not vote",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {{"a", true, false, 0, 1}, {"b", true, false, 0, 1}},
     2,
     1,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: peers without the region do not vote",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {{"a", true, true, 0, 0}, {"b", true, true, 0, 2}},
     2,
     1,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"majority: own entry among peers counts once",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     1,
     false,
     {{"self", true, true, 0, 1}},
     1,
     1,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"store lost: own view, no disagreement",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     1,
     0,
     true,
     {DOWN1, DOWN1, DOWN1},
     3,
     0,
     0,
     0,
     SST_FLEET_BASIS_STORE_LOST},
    {"count 2 of 4",
     SST_FLEET_QUORUM_COUNT,
     2,
     1,
     1,
     false,
     {DOWN1, UP1, UP1},
     3,
     1,
     0,
     0,
     SST_FLEET_BASIS_FLEET},
    {"count 2: one is not enough",
     SST_FLEET_QUORUM_COUNT,
     2,
     1,
     1,
     false,
     {UP1, UP1},
     2,
     0,
     1,
     0,
     SST_FLEET_BASIS_FLEET},
    {"count 3, 2 left, both down",
     SST_FLEET_QUORUM_COUNT,
     3,
     1,
     1,
     false,
     {DOWN1},
     1,
     1,
     0,
     1,
     SST_FLEET_BASIS_FLEET},
    {"count 3, 2 left, split",
     SST_FLEET_QUORUM_COUNT,
     3,
     1,
     0,
     false,
     {DOWN1},
     1,
     0,
     0,
     1,
     SST_FLEET_BASIS_FLEET},
    {"count 3, alone",
     SST_FLEET_QUORUM_COUNT,
     3,
     1,
     1,
     false,
     {{0}},
     0,
     1,
     0,
     1,
     SST_FLEET_BASIS_FLEET},
    {"two regions",
     SST_FLEET_QUORUM_MAJORITY,
     0,
     2,
     1,
     false,
     {{"a", true, true, 2, 3}, {"b", true, true, 2, 3}},
     2,
     2,
     3,
     0,
     SST_FLEET_BASIS_FLEET},
};

static void test_quorum(void **state)
{
    for (size_t i = 0; i < sizeof(quorum_cases) / sizeof(quorum_cases[0]); i++) {
        const qcase_t *c = &quorum_cases[i];
        sst_fleet_peer_t peers[4];
        sst_fleet_quorum_out_t out;
        static const char *const names[] = {"p0", "p1", "p2", "p3"};
        for (size_t k = 0; k < c->n_peers; k++)
            peers[k] = (sst_fleet_peer_t){
                .instance = sst_str_c(c->peers[k].name ? c->peers[k].name : names[k]),
                .live = c->peers[k].live,
                .has_view = c->peers[k].has_view,
                .down = c->peers[k].down,
                .known = c->peers[k].known,
            };
        sst_fleet_quorum_in_t in = {.mode = c->mode,
                                    .count = c->count,
                                    .n_regions = c->n_regions,
                                    .self = SST_STR_LIT("self"),
                                    .own_down = c->own_down,
                                    .peers = peers,
                                    .n_peers = c->n_peers,
                                    .store_lost = c->store_lost};
        assert_int_equal(sst_fleet_quorum(&in, &out), 0);
        if (out.down != c->down || out.disagree != c->disagree ||
            out.short_of_count != c->short_of_count || out.basis != c->basis)
            fail_msg("%s: down %x disagree %x short %x basis %d", c->what, out.down, out.disagree,
                     out.short_of_count, out.basis);
    }
    sst_fleet_quorum_in_t bad = {.mode = SST_FLEET_QUORUM_COUNT, .count = 0, .n_regions = 1};
    sst_fleet_quorum_out_t out;
    assert_int_equal(sst_fleet_quorum(&bad, &out), SST_EINVAL);
    bad = (sst_fleet_quorum_in_t){.mode = SST_FLEET_QUORUM_MAJORITY, .n_regions = 33};
    assert_int_equal(sst_fleet_quorum(&bad, &out), SST_EINVAL);
    bad = (sst_fleet_quorum_in_t){.mode = SST_FLEET_QUORUM_MAJORITY, .n_regions = 1, .n_peers = 1};
    assert_int_equal(sst_fleet_quorum(&bad, &out), SST_EINVAL);

    /* the counts behind a decision are reported */
    sst_fleet_peer_t p[2] = {{SST_STR_LIT("a"), true, true, 1, 1},
                             {SST_STR_LIT("b"), true, true, 0, 1}};
    sst_fleet_quorum_in_t in = {.mode = SST_FLEET_QUORUM_MAJORITY,
                                .n_regions = 1,
                                .own_down = 1,
                                .peers = p,
                                .n_peers = 2,
                                .self = SST_STR_LIT("self")};
    assert_int_equal(sst_fleet_quorum(&in, &out), 0);
    assert_int_equal(out.voters[0], 3);
    assert_int_equal(out.down_votes[0], 2);
    assert_int_equal(out.needed[0], 2);
}

/* ---- merge -------------------------------------------------------------------------------- */

static sst_fleet_slot_t slot(sst_fleet_state_t st, uint64_t expires_at)
{
    sst_fleet_slot_t s = {.set = true, .ovr = sample_override()};
    s.ovr.state = st;
    s.ovr.created_at = 0;
    s.ovr.expires_at = expires_at;
    s.ovr.ttl_ms = expires_at;
    return s;
}

static void test_merge(void **state)
{
    static const struct {
        bool local, fleet;
        uint64_t local_exp, fleet_exp;
        sst_fleet_source_t source;
        bool shadowed;
    } cases[] = {
        {false, false, 0, 0, SST_FLEET_SRC_NONE, false},
        {true, false, 0, 0, SST_FLEET_SRC_LOCAL, false},
        {false, true, 0, 0, SST_FLEET_SRC_FLEET, false},
        {true, true, 0, 0, SST_FLEET_SRC_LOCAL, true},
        {true, true, 1000, 0, SST_FLEET_SRC_FLEET, false},  /* local expired */
        {true, true, 0, 1000, SST_FLEET_SRC_LOCAL, false},  /* fleet expired */
        {false, true, 0, 1000, SST_FLEET_SRC_NONE, false},  /* expired exactly at now */
        {false, true, 0, 1001, SST_FLEET_SRC_FLEET, false}, /* a millisecond left */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_fleet_slot_t l = slot(SST_FLEET_UP, cases[i].local_exp),
                         f = slot(SST_FLEET_DOWN, cases[i].fleet_exp);
        l.set = cases[i].local;
        f.set = cases[i].fleet;
        sst_fleet_effective_t e;
        sst_fleet_merge(&l, &f, 1000, &e);
        if (e.source != cases[i].source || e.fleet_shadowed != cases[i].shadowed)
            fail_msg("case %zu: source %d shadowed %d", i, e.source, e.fleet_shadowed);
        if (e.source == SST_FLEET_SRC_LOCAL)
            assert_ptr_equal(e.ovr, &l.ovr);
        else if (e.source == SST_FLEET_SRC_FLEET)
            assert_ptr_equal(e.ovr, &f.ovr);
        else
            assert_null(e.ovr);
    }
    sst_fleet_effective_t e;
    sst_fleet_merge(NULL, NULL, 5, &e);
    assert_int_equal(e.source, SST_FLEET_SRC_NONE);
}

static void test_apply_and_merge_all(void **state)
{
    sst_config_t *cfg = three_regions();
    sst_fleet_overrides_t *fleet = calloc(1, sizeof(*fleet)), *local = calloc(1, sizeof(*local));
    sst_fleet_merged_t *m = calloc(1, sizeof(*m));
    assert_non_null(fleet);
    assert_non_null(local);
    assert_non_null(m);
    sst_fleet_slot_t down = slot(SST_FLEET_DOWN, 5000), drain = slot(SST_FLEET_DRAIN, 0),
                     up = slot(SST_FLEET_UP, 9000);
    static const struct {
        sst_fleet_key_kind_t kind;
        const char *name;
        int value; /* 0 delete, 1 down, 2 drain, 3 up */
        int rc;
    } steps[] = {
        {SST_FLEET_KEY_REGION_FORCE, "us", 1, 0},
        {SST_FLEET_KEY_REGION_DRAIN, "eu", 2, 0},
        {SST_FLEET_KEY_BACKEND_FORCE, "[::1]:81", 1, 0},
        {SST_FLEET_KEY_REGION_FORCE, "mars", 1, SST_ENOENT},
        {SST_FLEET_KEY_BACKEND_FORCE, "10.9.9.9:80", 1, SST_ENOENT},
        {SST_FLEET_KEY_REGION_FORCE, "ap", 2, SST_EINVAL}, /* drain value in a force key */
        {SST_FLEET_KEY_REGION_DRAIN, "ap", 1, SST_EINVAL}, /* down value in a drain key */
        {SST_FLEET_KEY_INSTANCE, "lb-1", 1, SST_EINVAL},
        {SST_FLEET_KEY_REGION_FORCE, "ap", 3, 0},
        {SST_FLEET_KEY_REGION_FORCE, "ap", 0, 0}, /* deleted again */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        sst_fleet_key_info_t key = {steps[i].kind, sst_str_c(steps[i].name)};
        const sst_fleet_override_t *v = steps[i].value == 0   ? NULL
                                        : steps[i].value == 1 ? &down.ovr
                                        : steps[i].value == 2 ? &drain.ovr
                                                              : &up.ovr;
        if (sst_fleet_overrides_apply(fleet, cfg, &key, v) != steps[i].rc)
            fail_msg("step %zu", i);
    }
    assert_true(fleet->region_force[0].set);
    assert_true(fleet->region_drain[1].set);
    assert_true(fleet->backend_force[4].set);
    assert_false(fleet->region_force[2].set);

    local->region_force[0] = up; /* a local force-up over the fleet's force-down */
    sst_fleet_merge_all(cfg, local, fleet, 1000, m);
    assert_int_equal(m->region_force[0].source, SST_FLEET_SRC_LOCAL);
    assert_true(m->region_force[0].fleet_shadowed);
    assert_int_equal(m->region_force[0].ovr->state, SST_FLEET_UP);
    assert_int_equal(m->region_drain[1].source, SST_FLEET_SRC_FLEET);
    assert_int_equal(m->region_force[2].source, SST_FLEET_SRC_NONE);
    assert_int_equal(m->backend_force[4].source, SST_FLEET_SRC_FLEET);
    assert_int_equal(m->backend_force[0].source, SST_FLEET_SRC_NONE);
    assert_int_equal(m->next_expiry_ms, 5000);

    /* past the fleet force's expiry, only the local one is left */
    sst_fleet_merge_all(cfg, local, fleet, 5000, m);
    assert_false(m->region_force[0].fleet_shadowed);
    assert_int_equal(m->backend_force[4].source, SST_FLEET_SRC_NONE);
    assert_int_equal(m->next_expiry_ms, 9000);
    sst_fleet_merge_all(cfg, NULL, fleet, 9000, m);
    assert_int_equal(m->region_force[0].source, SST_FLEET_SRC_NONE);
    assert_int_equal(m->next_expiry_ms, UINT64_MAX);
    free(fleet);
    free(local);
    free(m);
    cfx_free(cfg);
}

/* ---- the safety rule ---------------------------------------------------------------------- */

typedef struct sover_s {
    sst_fleet_key_kind_t kind;
    size_t index;
    sst_fleet_state_t state;
    uint64_t expires_at;
} sover_t;

typedef struct scase_s {
    const char *what;
    sover_t present[3];
    size_t n_present;
    sst_fleet_proposal_t p;
    int rc;
    size_t route;
} scase_t;

/* regions: us 0 (backends 0, 1), eu 1 (backend 2), ap 2 (backends 3, 4; needs both)
 * routes: 0 us > eu; 1 ap; 2 eu > us > ap */
static const scase_t safety_cases[] = {
    {"force down us: eu still serves",
     {{0}},
     0,
     {SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_DOWN},
     0,
     SIZE_MAX},
    {"eu down, force down us",
     {{SST_FLEET_KEY_REGION_FORCE, 1, SST_FLEET_DOWN, 0}},
     1,
     {SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_DOWN},
     SST_EBUSY,
     0},
    {"eu drained, drain us",
     {{SST_FLEET_KEY_REGION_DRAIN, 1, SST_FLEET_DRAIN, 0}},
     1,
     {SST_FLEET_KEY_REGION_DRAIN, 0, SST_FLEET_DRAIN},
     SST_EBUSY,
     0},
    {"ap is route1's only region",
     {{0}},
     0,
     {SST_FLEET_KEY_REGION_FORCE, 2, SST_FLEET_DOWN},
     SST_EBUSY,
     1},
    {"ap needs both backends",
     {{0}},
     0,
     {SST_FLEET_KEY_BACKEND_FORCE, 4, SST_FLEET_DOWN},
     SST_EBUSY,
     1},
    {"ap forced up needs one backend",
     {{SST_FLEET_KEY_REGION_FORCE, 2, SST_FLEET_UP, 0}},
     1,
     {SST_FLEET_KEY_BACKEND_FORCE, 4, SST_FLEET_DOWN},
     0,
     SIZE_MAX},
    {"us backend down, one left",
     {{0}},
     0,
     {SST_FLEET_KEY_BACKEND_FORCE, 0, SST_FLEET_DOWN},
     0,
     SIZE_MAX},
    {"us without backends, force down eu",
     {{SST_FLEET_KEY_BACKEND_FORCE, 0, SST_FLEET_DOWN, 0},
      {SST_FLEET_KEY_BACKEND_FORCE, 1, SST_FLEET_DOWN, 0}},
     2,
     {SST_FLEET_KEY_REGION_FORCE, 1, SST_FLEET_DOWN},
     SST_EBUSY,
     0},
    {"an expired force does not count",
     {{SST_FLEET_KEY_REGION_FORCE, 1, SST_FLEET_DOWN, 1000}},
     1,
     {SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_DOWN},
     0,
     SIZE_MAX},
    {"a route already empty is not blamed",
     {{SST_FLEET_KEY_REGION_FORCE, 2, SST_FLEET_DOWN, 0}},
     1,
     {SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_DOWN},
     0,
     SIZE_MAX},
    {"force down eu after us and ap",
     {{SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_DOWN, 0},
      {SST_FLEET_KEY_REGION_DRAIN, 2, SST_FLEET_DRAIN, 0}},
     2,
     {SST_FLEET_KEY_REGION_FORCE, 1, SST_FLEET_DOWN},
     SST_EBUSY,
     0},
    {"force up is always safe",
     {{SST_FLEET_KEY_REGION_FORCE, 1, SST_FLEET_DOWN, 0}},
     1,
     {SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_UP},
     0,
     SIZE_MAX},
    {"force up over a force down fixes a route",
     {{SST_FLEET_KEY_REGION_FORCE, 2, SST_FLEET_DOWN, 0}},
     1,
     {SST_FLEET_KEY_REGION_FORCE, 2, SST_FLEET_UP},
     0,
     SIZE_MAX},
    {"region out of range",
     {{0}},
     0,
     {SST_FLEET_KEY_REGION_FORCE, 3, SST_FLEET_DOWN},
     SST_EINVAL,
     SIZE_MAX},
    {"backend out of range",
     {{0}},
     0,
     {SST_FLEET_KEY_BACKEND_FORCE, 5, SST_FLEET_DOWN},
     SST_EINVAL,
     SIZE_MAX},
    {"drain is not a force state",
     {{0}},
     0,
     {SST_FLEET_KEY_REGION_FORCE, 0, SST_FLEET_DRAIN},
     SST_EINVAL,
     SIZE_MAX},
    {"a drain key takes drain",
     {{0}},
     0,
     {SST_FLEET_KEY_REGION_DRAIN, 0, SST_FLEET_DOWN},
     SST_EINVAL,
     SIZE_MAX},
    {"not an override", {{0}}, 0, {SST_FLEET_KEY_VIEW, 0, SST_FLEET_DOWN}, SST_EINVAL, SIZE_MAX},
};

static void test_safety(void **state)
{
    sst_config_t *cfg = three_regions();
    sst_fleet_overrides_t *fleet = malloc(sizeof(*fleet));
    assert_non_null(fleet);
    for (size_t i = 0; i < sizeof(safety_cases) / sizeof(safety_cases[0]); i++) {
        const scase_t *c = &safety_cases[i];
        memset(fleet, 0, sizeof(*fleet));
        for (size_t k = 0; k < c->n_present; k++) {
            const sover_t *o = &c->present[k];
            sst_fleet_slot_t s = slot(o->state, o->expires_at);
            if (o->kind == SST_FLEET_KEY_REGION_FORCE)
                fleet->region_force[o->index] = s;
            else if (o->kind == SST_FLEET_KEY_REGION_DRAIN)
                fleet->region_drain[o->index] = s;
            else
                fleet->backend_force[o->index] = s;
        }
        size_t route = 99;
        int rc = sst_fleet_safety_check(cfg, fleet, &c->p, 1000, &route);
        if (rc != c->rc || route != c->route)
            fail_msg("%s: rc %d route %zu", c->what, rc, route);
    }
    /* no fleet overrides at all */
    size_t route;
    sst_fleet_proposal_t p = {SST_FLEET_KEY_REGION_FORCE, 2, SST_FLEET_DOWN};
    assert_int_equal(sst_fleet_safety_check(cfg, NULL, &p, 0, &route), SST_EBUSY);
    assert_string_equal(cfg->routes[route].name, "route1");
    free(fleet);
    cfx_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_key_parse_rejects),
        cmocka_unit_test(test_override_codec),
        cmocka_unit_test(test_override_rejects),
        cmocka_unit_test(test_instance_codec),
        cmocka_unit_test(test_view_codec),
        cmocka_unit_test(test_quorum),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_apply_and_merge_all),
        cmocka_unit_test(test_safety),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
