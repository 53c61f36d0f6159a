/* sst_route_decide and friends, table by table: route matching, every decision branch, the
 * Location and its hop marker, CORS, HTTPS enforcement and the failure safety matrix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sidestep/error.h"
#include "sidestep/route.h"

#include "route_fixture.h"

#define NOW_MS 100000

/* Regions of the standard decision config. */
enum { US = 0, EU = 1, AP = 2, NOURL = 3, N_STD_REGIONS = 4 };
#define NONE   SIZE_MAX
#define BIT(r) (UINT32_C(1) << (r))

/* --- sst_target_path_query ---------------------------------------------------------------- */

typedef struct pq_case_s {
    const char *target;
    int rc;
    const char *pq;
    const char *authority;
} pq_case_t;

static void test_target_path_query(void **state)
{
    static const pq_case_t cases[] = {
        {"/", 0, "/", ""},
        {"/a/b?c=d&e", 0, "/a/b?c=d&e", ""},
        {"//double", 0, "//double", ""},
        {"/p%2Fq?x=%0D%0A", 0, "/p%2Fq?x=%0D%0A", ""},
        {"http://h.example:8080/a?b", 0, "/a?b", "h.example:8080"},
        {"HTTPS://h.example/", 0, "/", "h.example"},
        {"https://h.example", 0, "/", "h.example"},
        {"http://[::1]:80/x", 0, "/x", "[::1]:80"},
        {"http://h.example?q", SST_EINVAL, NULL, NULL},
        {"*", SST_EINVAL, NULL, NULL},
        {"h.example:443", SST_EINVAL, NULL, NULL},
        {"ftp://h.example/x", SST_EINVAL, NULL, NULL},
        {"ws://h.example/x", SST_EINVAL, NULL, NULL},
        {"http://", SST_EINVAL, NULL, NULL},
        {"http:///x", SST_EINVAL, NULL, NULL},
        {"http://user:pw@h.example/x", SST_EINVAL, NULL, NULL},
        {"", SST_EINVAL, NULL, NULL},
        {"a/b", SST_EINVAL, NULL, NULL},
        {"/a#frag", SST_EINVAL, NULL, NULL},
        {"/a b", SST_EINVAL, NULL, NULL},
        {"/a\r\nSet-Cookie: x", SST_EINVAL, NULL, NULL},
        {"/a\x7f", SST_EINVAL, NULL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const pq_case_t *c = &cases[i];
        sst_str_t pq = SST_STR_LIT("untouched"), auth = SST_STR_LIT("untouched");
        int rc = sst_target_path_query(fx_s(c->target), &pq, &auth);
        if (rc != c->rc)
            fail_msg("case %zu (%s): rc %d, want %d", i, c->target, rc, c->rc);
        if (rc != 0) {
            assert_true(sst_str_eq(pq, SST_STR_LIT("untouched")));
            continue;
        }
        if (!sst_str_eq(pq, fx_s(c->pq)) || !sst_str_eq(auth, fx_s(c->authority)))
            fail_msg("case %zu (%s): got %.*s / %.*s", i, c->target, (int)pq.len, pq.base,
                     (int)auth.len, auth.base);
    }
    /* a path-and-query of an origin-form target is the target itself, not a copy */
    sst_str_t t = SST_STR_LIT("/x?y"), pq;
    assert_int_equal(sst_target_path_query(t, &pq, NULL), 0);
    assert_ptr_equal(pq.base, t.base);
}

/* --- sst_route_match ---------------------------------------------------------------------- */

typedef struct match_case_s {
    const char *host;
    const char *target;
    int want;
} match_case_t;

static void test_route_match(void **state)
{
    sst_config_t *cfg = fx_config_new();
    static const match_case_t cases[] = {
        {"other.org", "/x", 0},
        {"other.org", "/api/x", 1},
        {"other.org", "/apix", 1},    /* plain byte prefix */
        {"other.org", "/API/x", 0},   /* paths are case-sensitive */
        {"other.org", "/%61pi/x", 0}, /* no decoding */
        {"www.example.com", "/", 2},
        {"www.example.com", "/api/v2/x?y=/api", 4},
        {"www.example.com:8443", "/api/v2", 4},
        {"API.Example.COM:8080", "/api/v2", 3}, /* exact beats a longer wildcard prefix */
        {"api.example.com", "/x", 3},           /* routes 3 and 5 tie: first listed */
        {"example.com", "/", 0},                /* "*.example.com" never matches itself */
        {"example.com", "/api", 1},
        {"x.a.example.com", "/", 2},                  /* wildcard class ties: first listed */
        {"badexample.com", "/", 0},                   /* suffix needs the dot */
        {"other.org", "http://api.example.com/x", 3}, /* absolute-form: authority is the host */
        {"api.example.com", "http://other.org/api", 1},
        {"", "/", 0},
        {"[::1]:80", "/api", 1},
        {"other.org", "*", -1},
        {"other.org", "example.com:443", -1},
    };
    (void)state;
    assert_non_null(cfg);
    fx_region(cfg, "us", "https://us.example.com", 1, NULL);
    fx_route(cfg, "*", "/", US, 0);
    fx_route(cfg, "*", "/api", US, 0);
    fx_route(cfg, "*.example.com", "/", US, 0);
    fx_route(cfg, "api.example.com", "/", US, 0);
    fx_route(cfg, "*.example.com", "/api/v2", US, 0);
    fx_route(cfg, "api.example.com", "/", US, 0);
    fx_route(cfg, "*.a.example.com", "/", US, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = sst_route_match(cfg, fx_s(cases[i].host), fx_s(cases[i].target));
        if (got != cases[i].want)
            fail_msg("case %zu (%s %s): route %d, want %d", i, cases[i].host, cases[i].target, got,
                     cases[i].want);
    }
    fx_config_free(cfg);

    /* no catch-all: an unknown host matches nothing */
    cfg = fx_config_new();
    assert_non_null(cfg);
    fx_region(cfg, "us", "https://us.example.com", 1, NULL);
    fx_route(cfg, "api.example.com", "/v1", US, 0);
    assert_int_equal(sst_route_match(cfg, fx_s("api.example.com"), fx_s("/v1/x")), 0);
    assert_int_equal(sst_route_match(cfg, fx_s("api.example.com"), fx_s("/v2")), -1);
    assert_int_equal(sst_route_match(cfg, fx_s("www.example.com"), fx_s("/v1")), -1);
    fx_config_free(cfg);
}

/* --- sst_route_decide --------------------------------------------------------------------- */

typedef struct decide_case_s {
    const char *name;
    /* setup */
    size_t local;
    uint32_t down, drained, held, hold_over, forced_up, exclude;
    const char *failover; /* region digits in order; NULL: "12" (eu, ap) */
    sst_all_down_t all_down;
    size_t fallback;
    uint16_t redirect_status;
    const char *hop_param;
    uint32_t max_hops;
    sst_hop_limit_t at_limit;
    const char *route_host; /* NULL: "*" */
    const char *cors;       /* space-separated cors_origins */
    /* request */
    const char *target; /* NULL: "/a?b=1" */
    const char *host;   /* NULL: "www.example.com" */
    const char *origin;
    /* expectation */
    int rc;
    sst_decision_kind_t kind;
    uint16_t status;
    size_t region;
    const char *reason;
    const char *location;
    bool ignore_health;
    uint32_t hops_in;
    const char *cors_origin;
    uint64_t retry_after_s;
} decide_case_t;

#define ALL_STD (BIT(US) | BIT(EU) | BIT(AP) | BIT(NOURL))
#define PROXY   SST_DECIDE_PROXY
#define REDIR   SST_DECIDE_REDIRECT
#define REJECT  SST_DECIDE_REJECT

static const decide_case_t decide_cases[] = {
    /* the walk */
    {.name = "primary up", .local = NONE, .kind = PROXY, .region = US, .reason = "primary up"},
    {.name = "primary down: failover redirect",
     .local = NONE,
     .down = BIT(US),
     .kind = REDIR,
     .status = 307,
     .region = EU,
     .reason = "primary down, failover",
     .location = "https://eu.example.com/a?b=1"},
    {.name = "primary drained",
     .local = NONE,
     .drained = BIT(US),
     .kind = REDIR,
     .status = 307,
     .region = EU,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "primary in failback hold",
     .local = NONE,
     .held = BIT(US),
     .kind = REDIR,
     .status = 307,
     .region = EU,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "failback hold ends at now",
     .local = NONE,
     .hold_over = BIT(US),
     .kind = PROXY,
     .region = US,
     .reason = "primary up"},
    {.name = "second failover (url with a path)",
     .local = NONE,
     .down = BIT(US) | BIT(EU),
     .kind = REDIR,
     .status = 307,
     .region = AP,
     .location = "https://ap.example.com/base/a?b=1"},
    {.name = "308 per route",
     .local = NONE,
     .down = BIT(US),
     .redirect_status = 308,
     .kind = REDIR,
     .status = 308,
     .region = EU,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "region without url is skipped",
     .local = NONE,
     .down = BIT(US),
     .failover = "31",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "failover list order wins",
     .local = NONE,
     .down = BIT(US),
     .failover = "21",
     .kind = REDIR,
     .region = AP,
     .status = 307,
     .location = "https://ap.example.com/base/a?b=1"},
    {.name = "no failover, primary down",
     .local = NONE,
     .down = BIT(US),
     .failover = "",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "all regions down",
     .retry_after_s = 5},
    /* local_region */
    {.name = "local failover is proxied, not redirected",
     .local = EU,
     .down = BIT(US),
     .kind = PROXY,
     .region = EU,
     .reason = "local region"},
    {.name = "local is primary", .local = US, .kind = PROXY, .region = US, .reason = "primary up"},
    {.name = "local down: redirect past it",
     .local = EU,
     .down = BIT(US) | BIT(EU),
     .kind = REDIR,
     .region = AP,
     .status = 307,
     .location = "https://ap.example.com/base/a?b=1"},
    {.name = "region without url but local is proxied",
     .local = NOURL,
     .down = BIT(US),
     .failover = "31",
     .kind = PROXY,
     .region = NOURL,
     .reason = "local region"},
    /* in-flight failover */
    {.name = "excluded primary",
     .local = US,
     .exclude = BIT(US),
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "excluded local failover",
     .local = EU,
     .down = BIT(US),
     .exclude = BIT(EU),
     .kind = REDIR,
     .region = AP,
     .status = 307,
     .location = "https://ap.example.com/base/a?b=1"},
    {.name = "everything excluded",
     .local = NONE,
     .exclude = ALL_STD,
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "all regions down",
     .retry_after_s = 5},
    /* forced up */
    {.name = "forced-up primary ignores backend health",
     .local = NONE,
     .forced_up = BIT(US),
     .kind = PROXY,
     .region = US,
     .ignore_health = true},
    {.name = "forced-up local failover",
     .local = EU,
     .down = BIT(US),
     .forced_up = BIT(EU),
     .kind = PROXY,
     .region = EU,
     .ignore_health = true},
    /* all_down policies */
    {.name = "all down: reject",
     .local = NONE,
     .down = ALL_STD,
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "all regions down",
     .retry_after_s = 5},
    {.name = "all down: fail_open",
     .local = NONE,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FAIL_OPEN,
     .kind = PROXY,
     .region = US,
     .ignore_health = true,
     .reason = "fail_open"},
    {.name = "fail_open, primary already failed",
     .local = NONE,
     .down = ALL_STD,
     .exclude = BIT(US),
     .all_down = SST_ALL_DOWN_FAIL_OPEN,
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "all regions down",
     .retry_after_s = 5},
    {.name = "all down: fallback redirect",
     .local = NONE,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = AP,
     .kind = REDIR,
     .status = 307,
     .region = AP,
     .reason = "fallback",
     .location = "https://ap.example.com/base/a?b=1"},
    {.name = "all down: fallback is local",
     .local = EU,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = EU,
     .kind = PROXY,
     .region = EU,
     .ignore_health = true,
     .reason = "fallback"},
    {.name = "all down: fallback is primary",
     .local = NONE,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = US,
     .kind = PROXY,
     .region = US,
     .ignore_health = true,
     .reason = "fallback"},
    {.name = "all down: fallback without url",
     .local = NONE,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = NOURL,
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "all regions down",
     .retry_after_s = 5},
    {.name = "fallback outside the config",
     .local = NONE,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = 17,
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .retry_after_s = 5},
    /* no route, bad targets */
    {.name = "no route: 404",
     .local = NONE,
     .route_host = "api.example.com",
     .kind = REJECT,
     .status = 404,
     .region = NONE,
     .reason = "no route"},
    {.name = "route host matches",
     .local = NONE,
     .route_host = "api.example.com",
     .host = "API.example.com:443",
     .kind = PROXY,
     .region = US},
    {.name = "asterisk-form", .local = NONE, .target = "*", .rc = SST_EINVAL},
    {.name = "authority-form", .local = NONE, .target = "www.example.com:443", .rc = SST_EINVAL},
    {.name = "other scheme", .local = NONE, .target = "ftp://www.example.com/", .rc = SST_EINVAL},
    {.name = "bad target before no route",
     .local = NONE,
     .route_host = "api.example.com",
     .target = "*",
     .rc = SST_EINVAL},
    /* Location keeps the target byte for byte */
    {.name = "encoded bytes stay encoded",
     .local = NONE,
     .down = BIT(US),
     .target = "/a%2Fb/%E2%82%AC?x=%0D%0A&y=a+b&z=%25",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a%2Fb/%E2%82%AC?x=%0D%0A&y=a+b&z=%25"},
    {.name = "absolute-form with port",
     .local = NONE,
     .down = BIT(US),
     .target = "http://www.example.com:8080/p/q?r=s",
     .host = "",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/p/q?r=s"},
    {.name = "absolute-form https without path",
     .local = NONE,
     .down = BIT(US),
     .target = "https://www.example.com",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/"},
    {.name = "absolute-form host picks the route",
     .local = NONE,
     .route_host = "api.example.com",
     .target = "http://api.example.com/x",
     .host = "www.example.com",
     .kind = PROXY,
     .region = US},
    {.name = "missing Host with a catch-all route",
     .local = NONE,
     .down = BIT(US),
     .host = "",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    /* hop marker: appended */
    {.name = "hop appended with ?",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?sst_hop=1"},
    {.name = "hop appended with &",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1&sst_hop=1"},
    {.name = "hop appended after trailing ?",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?sst_hop=1"},
    {.name = "hop appended after trailing &",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?b&",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b&sst_hop=1"},
    {.name = "hop on absolute-form without path",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "http://www.example.com",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/?sst_hop=1"},
    {.name = "hop name as a prefix of another name",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop2=5",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?sst_hop2=5&sst_hop=1"},
    {.name = "hop name as a suffix of another name",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?xsst_hop=5",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?xsst_hop=5&sst_hop=1"},
    {.name = "hop name only in the path",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/sst_hop=5",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/sst_hop=5?sst_hop=1"},
    /* hop marker: replaced */
    {.name = "hop replaced in the middle",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 2,
     .target = "/a?x=%2F&sst_hop=1&y=2",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .hops_in = 1,
     .location = "https://eu.example.com/a?x=%2F&sst_hop=2&y=2"},
    {.name = "hop zero replaced first",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=0&sst_hop=5",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .hops_in = 0,
     .location = "https://eu.example.com/a?sst_hop=1&sst_hop=5"},
    {.name = "hop with leading zero",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?sst_hop=07",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .hops_in = 7,
     .location = "https://eu.example.com/a?sst_hop=8"},
    {.name = "hop max_hops 9 allows 8 -> 9",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?sst_hop=8",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .hops_in = 8,
     .location = "https://eu.example.com/a?sst_hop=9"},
    {.name = "hop on fallback redirect",
     .local = NONE,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = AP,
     .hop_param = "h",
     .max_hops = 3,
     .target = "/a?h=2",
     .kind = REDIR,
     .region = AP,
     .status = 307,
     .hops_in = 2,
     .reason = "fallback",
     .location = "https://ap.example.com/base/a?h=3"},
    {.name = "hop below limit, primary up",
     .local = NONE,
     .hop_param = "sst_hop",
     .max_hops = 2,
     .target = "/a?sst_hop=1",
     .kind = PROXY,
     .region = US,
     .hops_in = 1},
    /* hop marker: at the limit */
    {.name = "at limit, no local region: 503",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 1,
     .retry_after_s = 5},
    {.name = "at limit, serve from usable local",
     .local = EU,
     .down = BIT(US),
     .failover = "21",
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = PROXY,
     .region = EU,
     .reason = "hop limit",
     .hops_in = 1},
    {.name = "at limit, local preferred over usable primary",
     .local = EU,
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = PROXY,
     .region = EU,
     .reason = "hop limit",
     .hops_in = 1},
    {.name = "at limit, local is primary",
     .local = US,
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=3",
     .kind = PROXY,
     .region = US,
     .reason = "hop limit",
     .hops_in = 3},
    {.name = "at limit, local not in the route",
     .local = EU,
     .down = BIT(US),
     .failover = "2",
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 1,
     .retry_after_s = 5},
    {.name = "at limit, local down",
     .local = EU,
     .down = BIT(US) | BIT(EU),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 1,
     .retry_after_s = 5},
    {.name = "at limit, local excluded",
     .local = EU,
     .down = BIT(US),
     .exclude = BIT(EU),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 1,
     .retry_after_s = 5},
    {.name = "at limit, local primary under fail_open",
     .local = US,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FAIL_OPEN,
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = PROXY,
     .region = US,
     .ignore_health = true,
     .reason = "hop limit",
     .hops_in = 1},
    {.name = "at limit, fail_open but local is not primary",
     .local = EU,
     .down = ALL_STD,
     .all_down = SST_ALL_DOWN_FAIL_OPEN,
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 1,
     .retry_after_s = 5},
    {.name = "at limit, policy reject",
     .local = EU,
     .at_limit = SST_HOP_LIMIT_REJECT,
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 1,
     .retry_after_s = 5},
    {.name = "at limit, forced-up local",
     .local = EU,
     .down = BIT(US),
     .forced_up = BIT(EU),
     .hop_param = "sst_hop",
     .max_hops = 1,
     .target = "/a?sst_hop=1",
     .kind = PROXY,
     .region = EU,
     .ignore_health = true,
     .reason = "hop limit",
     .hops_in = 1},
    {.name = "max_hops 0: never redirect",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 0,
     .target = "/a",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = 0,
     .retry_after_s = 5},
    {.name = "malformed hop value counts as at limit",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?sst_hop=x",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .reason = "hop limit",
     .hops_in = SST_MAX_HOPS + 1,
     .retry_after_s = 5},
    {.name = "empty hop value",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?sst_hop=",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .hops_in = SST_MAX_HOPS + 1,
     .retry_after_s = 5},
    {.name = "hop without '='",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?b&sst_hop&c",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .hops_in = SST_MAX_HOPS + 1,
     .retry_after_s = 5},
    {.name = "hop value above SST_MAX_HOPS",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?sst_hop=10",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .hops_in = SST_MAX_HOPS + 1,
     .retry_after_s = 5},
    {.name = "negative hop value",
     .local = NONE,
     .down = BIT(US),
     .hop_param = "sst_hop",
     .max_hops = 9,
     .target = "/a?sst_hop=-1",
     .kind = REJECT,
     .status = 503,
     .region = NONE,
     .hops_in = SST_MAX_HOPS + 1,
     .retry_after_s = 5},
    {.name = "no hop_param: marker-like query ignored",
     .local = NONE,
     .down = BIT(US),
     .target = "/a?sst_hop=9",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?sst_hop=9"},
    /* CORS */
    {.name = "cors exact origin echoed",
     .local = NONE,
     .down = BIT(US),
     .cors = "https://other.example https://app.example",
     .origin = "https://app.example",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1",
     .cors_origin = "https://app.example"},
    {.name = "cors compare is byte-exact",
     .local = NONE,
     .down = BIT(US),
     .cors = "https://app.example",
     .origin = "https://App.example",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "cors port is part of the origin",
     .local = NONE,
     .down = BIT(US),
     .cors = "https://app.example",
     .origin = "https://app.example:8443",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "cors star echoes the origin",
     .local = NONE,
     .down = BIT(US),
     .cors = "*",
     .origin = "http://localhost:3000",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1",
     .cors_origin = "http://localhost:3000"},
    {.name = "cors without Origin",
     .local = NONE,
     .down = BIT(US),
     .cors = "*",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "cors origin with a space is not echoed",
     .local = NONE,
     .down = BIT(US),
     .cors = "*",
     .origin = "https://a.example x",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
    {.name = "cors not on proxied requests",
     .local = NONE,
     .cors = "*",
     .origin = "https://app.example",
     .kind = PROXY,
     .region = US},
    {.name = "cors not configured",
     .local = NONE,
     .down = BIT(US),
     .origin = "https://app.example",
     .kind = REDIR,
     .region = EU,
     .status = 307,
     .location = "https://eu.example.com/a?b=1"},
};

static void decide_setup(const decide_case_t *c, sst_config_t **cfgp, sst_hsnap_t **snapp)
{
    static const uint32_t w2[] = {1, 1};
    sst_config_t *cfg = fx_config_new();
    assert_non_null(cfg);
    fx_region(cfg, "us", "https://us.example.com", 2, w2);
    fx_region(cfg, "eu", "https://eu.example.com", 1, NULL);
    fx_region(cfg, "ap", "https://ap.example.com/base", 1, NULL);
    fx_region(cfg, "nourl", NULL, 1, NULL);
    cfg->local_region = c->local;

    sst_route_cfg_t *rt = fx_route(cfg, c->route_host ? c->route_host : "*", "/", US, 0);
    const char *fo = c->failover ? c->failover : "12";
    for (size_t i = 0; fo[i] != '\0'; i++)
        rt->failover[rt->n_failover++] = (size_t)(fo[i] - '0');
    rt->all_down = c->all_down;
    rt->fallback_region = c->fallback;
    if (c->redirect_status)
        rt->redirect_status = c->redirect_status;
    if (c->hop_param)
        fx_route_hop(rt, c->hop_param, c->max_hops);
    rt->at_hop_limit = c->at_limit;
    if (c->cors) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", c->cors);
        for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
             tok = strtok_r(NULL, " ", &save))
            fx_route_cors(rt, tok);
    }

    sst_hsnap_t *snap = fx_snap_new(cfg);
    assert_non_null(snap);
    for (size_t r = 0; r < N_STD_REGIONS; r++) {
        if (c->down & BIT(r))
            fx_region_down(snap, r);
        if (c->drained & BIT(r))
            snap->regions[r].drained = true;
        if (c->held & BIT(r))
            snap->regions[r].hold_until_ms = NOW_MS + 1;
        if (c->hold_over & BIT(r))
            snap->regions[r].hold_until_ms = NOW_MS;
        if (c->forced_up & BIT(r)) {
            snap->regions[r].state = SST_UP;
            snap->regions[r].force = SST_FORCE_UP;
        }
    }
    *cfgp = cfg;
    *snapp = snap;
}

static void test_route_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++) {
        const decide_case_t *c = &decide_cases[i];
        sst_config_t *cfg;
        sst_hsnap_t *snap;
        sst_decision_t d;
        char loc[512];

        decide_setup(c, &cfg, &snap);
        sst_route_input_t in = {
            .now_ms = NOW_MS,
            .method = SST_STR_LIT("POST"),
            .target = fx_s(c->target ? c->target : "/a?b=1"),
            .host = fx_s(c->host ? c->host : "www.example.com"),
            .origin = fx_s(c->origin),
            .exclude_regions = c->exclude,
        };
        int rc = sst_route_decide(&in, cfg, snap, &d);
        if (rc != c->rc)
            fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
        if (rc == 0) {
            fx_location(&d, loc, sizeof(loc));
            if (d.kind != c->kind)
                fail_msg("%s: kind %d, want %d (reason %s)", c->name, d.kind, c->kind, d.reason);
            if (d.region != c->region)
                fail_msg("%s: region %zu, want %zu", c->name, d.region, c->region);
            if (d.status != c->status)
                fail_msg("%s: status %u, want %u", c->name, d.status, c->status);
            if (c->reason && strcmp(d.reason, c->reason) != 0)
                fail_msg("%s: reason \"%s\", want \"%s\"", c->name, d.reason, c->reason);
            if (strcmp(loc, c->location ? c->location : "") != 0)
                fail_msg("%s: location \"%s\", want \"%s\"", c->name, loc,
                         c->location ? c->location : "");
            if (d.ignore_health != c->ignore_health)
                fail_msg("%s: ignore_health %d", c->name, d.ignore_health);
            if (d.hops_in != c->hops_in)
                fail_msg("%s: hops_in %u, want %u", c->name, d.hops_in, c->hops_in);
            if (!sst_str_eq(d.cors_origin, fx_s(c->cors_origin)))
                fail_msg("%s: cors_origin \"%.*s\"", c->name, (int)d.cors_origin.len,
                         d.cors_origin.base);
            if (d.retry_after_s != c->retry_after_s)
                fail_msg("%s: retry_after %llu", c->name, (unsigned long long)d.retry_after_s);
            if (d.location_len != strlen(loc) || d.n_location > SST_LOCATION_PARTS)
                fail_msg("%s: location_len %zu", c->name, d.location_len);
            assert_non_null(d.reason);
            size_t want_route = c->kind == REJECT && c->status == 404 ? SIZE_MAX : 0;
            if (d.route != want_route)
                fail_msg("%s: route %zu", c->name, d.route);
        }
        fx_config_free(cfg);
        free(snap);
    }
}

/* --- CORS preflights of a redirected route (issue 11) -------------------------------------- */

typedef struct preflight_case_s {
    const char *name;
    /* setup */
    uint32_t down, exclude;
    sst_all_down_t all_down;
    size_t fallback;
    const char *cors; /* space-separated cors_origins; NULL: none */
    bool credentials;
    const char *hop_target; /* with hop_param "h", max_hops 1: this target */
    /* request */
    const char *method; /* NULL: OPTIONS */
    const char *origin;
    const char *acrm, *acrh; /* NULL: absent */
    bool repeated;
    /* expectation */
    sst_decision_kind_t kind;
    bool preflight;
    const char *cors_origin, *cors_method, *cors_headers;
    bool cors_credentials;
} preflight_case_t;

#define APP  "https://app.example"
#define LONG "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCD" /* 64 */

static const preflight_case_t preflight_cases[] = {
    {.name = "preflight while the route redirects",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "POST",
     .acrh = "content-type",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "POST",
     .cors_headers = "content-type"},
    {.name = "preflight while the route proxies: proxied",
     .cors = APP,
     .origin = APP,
     .acrm = "POST",
     .acrh = "content-type",
     .kind = PROXY},
    {.name = "origin not listed: the redirect, without CORS",
     .down = BIT(US),
     .cors = APP,
     .origin = "https://evil.example",
     .acrm = "POST",
     .kind = REDIR},
    {.name = "no cors_origins: the redirect",
     .down = BIT(US),
     .origin = APP,
     .acrm = "POST",
     .kind = REDIR},
    {.name = "no Origin: the redirect",
     .down = BIT(US),
     .cors = "*",
     .acrm = "POST",
     .kind = REDIR},
    {.name = "star allows any origin, echoed",
     .down = BIT(US),
     .cors = "*",
     .origin = "http://localhost:3000",
     .acrm = "DELETE",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = "http://localhost:3000",
     .cors_method = "DELETE"},
    {.name = "a POST with the fields is no preflight",
     .down = BIT(US),
     .cors = APP,
     .method = "POST",
     .origin = APP,
     .acrm = "POST",
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "method names are case-sensitive",
     .down = BIT(US),
     .cors = APP,
     .method = "options",
     .origin = APP,
     .acrm = "POST",
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "OPTIONS without Access-Control-Request-Method: the redirect",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrh = "x-a",
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "empty Access-Control-Request-Method: the redirect",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "",
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "requested method not a token: the redirect",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "PO\r\nST",
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "requested method at the 64-byte cap",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = LONG,
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = LONG},
    {.name = "requested method past the cap: the redirect",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = LONG "E",
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "requested method with whitespace around it",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = " PATCH\t",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "PATCH"},
    {.name = "a repeated field: the redirect, not a guess",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "PUT",
     .repeated = true,
     .kind = REDIR,
     .cors_origin = APP},
    {.name = "no requested headers: the field is left out",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "PUT",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "PUT"},
    {.name = "malformed requested headers: the field is left out",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "PUT",
     .acrh = "content-type, x y",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "PUT"},
    {.name = "several requested headers",
     .down = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "PUT",
     .acrh = "content-type,x-request-id, authorization",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "PUT",
     .cors_headers = "content-type,x-request-id, authorization"},
    {.name = "credentials on the preflight",
     .down = BIT(US),
     .cors = APP,
     .credentials = true,
     .origin = APP,
     .acrm = "POST",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "POST",
     .cors_credentials = true},
    {.name = "credentials on the actual request's redirect",
     .down = BIT(US),
     .cors = APP,
     .credentials = true,
     .method = "POST",
     .origin = APP,
     .kind = REDIR,
     .cors_origin = APP,
     .cors_credentials = true},
    {.name = "no credentials for an origin not listed",
     .down = BIT(US),
     .cors = APP,
     .credentials = true,
     .method = "POST",
     .origin = "https://evil.example",
     .kind = REDIR},
    {.name = "in-flight failover of a preflight: answered",
     .exclude = BIT(US),
     .cors = APP,
     .origin = APP,
     .acrm = "POST",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "POST"},
    {.name = "all_down fallback redirect: answered",
     .down = BIT(US) | BIT(EU) | BIT(AP),
     .all_down = SST_ALL_DOWN_FALLBACK,
     .fallback = AP,
     .cors = APP,
     .origin = APP,
     .acrm = "POST",
     .kind = REDIR,
     .preflight = true,
     .cors_origin = APP,
     .cors_method = "POST"},
    {.name = "every region down, reject: no preflight answer",
     .down = BIT(US) | BIT(EU) | BIT(AP),
     .cors = APP,
     .origin = APP,
     .acrm = "POST",
     .kind = REJECT},
    {.name = "at the hop limit nothing redirects: no preflight answer",
     .down = BIT(US),
     .hop_target = "/a?h=1",
     .cors = APP,
     .origin = APP,
     .acrm = "POST",
     .kind = REJECT},
};

static void test_route_preflight(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(preflight_cases) / sizeof(preflight_cases[0]); i++) {
        const preflight_case_t *c = &preflight_cases[i];
        decide_case_t setup = {
            .local = NONE,
            .down = c->down,
            .all_down = c->all_down,
            .fallback = c->fallback,
            .cors = c->cors,
            .hop_param = c->hop_target ? "h" : NULL,
            .max_hops = 1,
        };
        sst_config_t *cfg;
        sst_hsnap_t *snap;
        sst_decision_t d;

        decide_setup(&setup, &cfg, &snap);
        cfg->routes[0].cors_credentials = c->credentials;
        sst_route_input_t in = {
            .now_ms = NOW_MS,
            .method = fx_s(c->method ? c->method : "OPTIONS"),
            .target = fx_s(c->hop_target ? c->hop_target : "/a?b=1"),
            .host = SST_STR_LIT("www.example.com"),
            .origin = fx_s(c->origin),
            .acr_method = fx_s(c->acrm),
            .acr_headers = fx_s(c->acrh),
            .acr_repeated = c->repeated,
            .exclude_regions = c->exclude,
        };
        assert_int_equal(sst_route_decide(&in, cfg, snap, &d), 0);
        if (d.kind != c->kind)
            fail_msg("%s: kind %d, want %d (%s)", c->name, d.kind, c->kind, d.reason);
        if (d.preflight != c->preflight)
            fail_msg("%s: preflight %d", c->name, d.preflight);
        if (!sst_str_eq(d.cors_origin, fx_s(c->cors_origin)) ||
            !sst_str_eq(d.cors_method, fx_s(c->cors_method)) ||
            !sst_str_eq(d.cors_headers, fx_s(c->cors_headers)))
            fail_msg("%s: origin \"%.*s\" method \"%.*s\" headers \"%.*s\"", c->name,
                     (int)d.cors_origin.len, d.cors_origin.base, (int)d.cors_method.len,
                     d.cors_method.base, (int)d.cors_headers.len, d.cors_headers.base);
        if (d.cors_credentials != c->cors_credentials)
            fail_msg("%s: credentials %d", c->name, d.cors_credentials);
        if (d.preflight && strcmp(d.reason, "cors preflight for a redirect") != 0)
            fail_msg("%s: reason %s", c->name, d.reason);
        if (d.kind == REDIR && d.n_location == 0)
            fail_msg("%s: a preflight keeps the redirect's Location", c->name);
        fx_config_free(cfg);
        free(snap);
    }
}

typedef struct acrh_case_s {
    const char *in; /* NULL: absent */
    bool ok;
    const char *out;
} acrh_case_t;

static const acrh_case_t acrh_cases[] = {
    {"content-type", true, "content-type"},
    {"content-type,x-requested-with", true, "content-type,x-requested-with"},
    {"  Content-Type , X-Foo\t", true, "Content-Type , X-Foo"},
    {"a,,b", true, "a,,b"},
    {",a", true, ",a"},
    {"x-a!#$%&'*+.^_`|~0", true, "x-a!#$%&'*+.^_`|~0"},
    {NULL, false, NULL},
    {"", false, NULL},
    {" , ,", false, NULL},
    {"x y", false, NULL},
    {"a\tb", false, NULL},
    {"a;b", false, NULL},
    {"a:b", false, NULL},
    {"a\r\nX-Evil: 1", false, NULL},
    {"a,\"b\"", false, NULL},
    {"caf\xc3\xa9", false, NULL},
    {"a\x7f", false, NULL},
};

static void test_cors_request_headers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(acrh_cases) / sizeof(acrh_cases[0]); i++) {
        const acrh_case_t *c = &acrh_cases[i];
        sst_str_t out = SST_STR_LIT("unset");
        bool ok = sst_cors_request_headers(fx_s(c->in), &out);
        if (ok != c->ok || !sst_str_eq(out, fx_s(c->out)))
            fail_msg("\"%s\": %d \"%.*s\"", c->in ? c->in : "(absent)", ok, (int)out.len, out.base);
    }
    /* the length cap: SST_CORS_HEADERS_MAX bytes pass, one more is left out */
    char buf[SST_CORS_HEADERS_MAX + 2];
    memset(buf, 'a', sizeof(buf));
    for (size_t i = 5; i < sizeof(buf); i += 6)
        buf[i] = ',';
    sst_str_t out;
    assert_true(sst_cors_request_headers(sst_str(buf, SST_CORS_HEADERS_MAX - 1), &out));
    assert_int_equal(out.len, SST_CORS_HEADERS_MAX - 1);
    buf[SST_CORS_HEADERS_MAX - 1] = 'a';
    assert_true(sst_cors_request_headers(sst_str(buf, SST_CORS_HEADERS_MAX), &out));
    assert_int_equal(out.len, SST_CORS_HEADERS_MAX);
    buf[SST_CORS_HEADERS_MAX] = 'a';
    assert_false(sst_cors_request_headers(sst_str(buf, SST_CORS_HEADERS_MAX + 1), &out));
    assert_int_equal(out.len, 0);
}

/* The Location's slices point into the target: a 64 KiB target needs no buffer of ours. */
static void test_route_decide_long_target(void **state)
{
    const size_t path_len = 64 * 1024;
    sst_config_t *cfg;
    sst_hsnap_t *snap;
    sst_decision_t d;
    const decide_case_t c = {.local = NONE, .down = BIT(US), .hop_param = "sst_hop", .max_hops = 2};
    char *target = malloc(path_len + 32);

    (void)state;
    assert_non_null(target);
    target[0] = '/';
    for (size_t i = 1; i < path_len; i++)
        target[i] = (char)('a' + i % 26);
    memcpy(target + path_len, "?q=%0A&sst_hop=1&z", 18);
    size_t tlen = path_len + 18;

    decide_setup(&c, &cfg, &snap);
    sst_route_input_t in = {.now_ms = NOW_MS,
                            .method = SST_STR_LIT("PUT"),
                            .target = sst_str(target, tlen),
                            .host = SST_STR_LIT("www.example.com")};
    assert_int_equal(sst_route_decide(&in, cfg, snap, &d), 0);
    assert_int_equal(d.kind, SST_DECIDE_REDIRECT);
    assert_int_equal(d.hops_in, 1);
    const char *base = "https://eu.example.com";
    assert_int_equal(d.location_len, strlen(base) + tlen);

    char *joined = malloc(d.location_len + 1);
    assert_non_null(joined);
    fx_location(&d, joined, d.location_len + 1);
    assert_int_equal(strlen(joined), d.location_len);
    assert_memory_equal(joined, base, strlen(base));
    assert_memory_equal(joined + strlen(base), target, path_len);
    assert_string_equal(joined + strlen(base) + path_len, "?q=%0A&sst_hop=2&z");
    /* the path part is borrowed from the target, not copied */
    assert_ptr_equal(d.location[1].base, target);

    free(joined);
    free(target);
    fx_config_free(cfg);
    free(snap);
}

/* A snapshot from an older config with fewer regions never indexes past its own tables. */
static void test_route_decide_short_snapshot(void **state)
{
    sst_config_t *cfg;
    sst_hsnap_t *snap;
    sst_decision_t d;
    const decide_case_t c = {.local = NONE, .down = BIT(US)};

    (void)state;
    decide_setup(&c, &cfg, &snap);
    snap->n_regions = 1; /* eu, ap, nourl unknown to this snapshot: not usable */
    sst_route_input_t in = {.now_ms = NOW_MS,
                            .method = SST_STR_LIT("GET"),
                            .target = SST_STR_LIT("/"),
                            .host = SST_STR_LIT("h")};
    assert_int_equal(sst_route_decide(&in, cfg, snap, &d), 0);
    assert_int_equal(d.kind, SST_DECIDE_REJECT);
    assert_int_equal(d.status, 503);
    assert_int_equal(sst_route_decide(NULL, cfg, snap, &d), SST_EINVAL);
    fx_config_free(cfg);
    free(snap);
}

/* --- sst_route_https ---------------------------------------------------------------------- */

typedef struct https_case_s {
    const char *method;
    const char *target;
    const char *host;
    uint16_t port;
    int rc;
    uint16_t status;
    const char *location;
} https_case_t;

static void test_route_https(void **state)
{
    static const https_case_t cases[] = {
        {"GET", "/a?b=%2F", "Example.COM", 0, 0, 301, "https://example.com/a?b=%2F"},
        {"HEAD", "/", "example.com:80", 0, 0, 301, "https://example.com/"},
        {"POST", "/form", "example.com:8080", 0, 0, 307, "https://example.com/form"},
        {"get", "/", "example.com", 0, 0, 307, "https://example.com/"}, /* methods are
                                                                             case-sensitive */
        {"GET", "/", "example.com", 8443, 0, 301, "https://example.com:8443/"},
        {"GET", "/", "example.com:80", 443, 0, 301, "https://example.com/"},
        {"GET", "/x", "[::1]:8080", 0, 0, 301, "https://[::1]/x"},
        {"GET", "/x", "[2001:DB8::1]", 8443, 0, 301, "https://[2001:db8::1]:8443/x"},
        {"GET", "/x", "127.0.0.1:80", 0, 0, 301, "https://127.0.0.1/x"},
        {"GET", "/x", "example.com:", 0, 0, 301, "https://example.com/x"},
        {"GET", "http://abs.example:80/p", "", 0, 0, 301, "https://abs.example/p"},
        {"GET", "http://abs.example", "other.example", 0, 0, 301, "https://abs.example/"},
        {"GET", "/", "", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "exa/mple.com", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "user@example.com", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "exa mple.com", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "example.com\r\nX: y", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "example.com:99999", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "example.com:8x", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", ":80", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "[::1", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "[::1]x", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "[]", 0, SST_EINVAL, 0, NULL},
        {"GET", "/", "[fe80::1%25eth0]", 0, SST_EINVAL, 0, NULL},
        {"OPTIONS", "*", "example.com", 0, SST_EINVAL, 0, NULL},
        {"CONNECT", "example.com:443", "example.com", 0, SST_EINVAL, 0, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const https_case_t *c = &cases[i];
        sst_listener_cfg_t lc = {.https_redirect = true,
                                 .https_status_get = 301,
                                 .https_status_other = 307,
                                 .https_port = c->port};
        sst_route_input_t in = {
            .method = fx_s(c->method), .target = fx_s(c->target), .host = fx_s(c->host)};
        char host_buf[300];
        char loc[512];
        sst_decision_t d;
        int rc = sst_route_https(&in, &lc, host_buf, sizeof(host_buf), &d);
        if (rc != c->rc)
            fail_msg("case %zu (%s): rc %d, want %d", i, c->host, rc, c->rc);
        if (rc != 0)
            continue;
        fx_location(&d, loc, sizeof(loc));
        assert_int_equal(d.kind, SST_DECIDE_REDIRECT);
        if (d.status != c->status || strcmp(loc, c->location) != 0)
            fail_msg("case %zu: %u %s, want %u %s", i, d.status, loc, c->status, c->location);
        assert_int_equal(d.location_len, strlen(loc));
    }

    /* statuses from the listener; a hand-built listener with zeros gets the defaults */
    sst_listener_cfg_t lc = {.https_status_get = 308, .https_status_other = 308};
    sst_route_input_t in = {.method = SST_STR_LIT("DELETE"),
                            .target = SST_STR_LIT("/"),
                            .host = SST_STR_LIT("h.example")};
    char host_buf[300];
    sst_decision_t d;
    assert_int_equal(sst_route_https(&in, &lc, host_buf, sizeof(host_buf), &d), 0);
    assert_int_equal(d.status, 308);
    lc = (sst_listener_cfg_t){0};
    assert_int_equal(sst_route_https(&in, &lc, host_buf, sizeof(host_buf), &d), 0);
    assert_int_equal(d.status, 307);
    in.method = SST_STR_LIT("GET");
    assert_int_equal(sst_route_https(&in, &lc, host_buf, sizeof(host_buf), &d), 0);
    assert_int_equal(d.status, 301);
    /* a host that does not fit the caller's buffer is refused, not truncated */
    assert_int_equal(sst_route_https(&in, &lc, host_buf, 4, &d), SST_EINVAL);
}

/* --- sst_route_on_failure ----------------------------------------------------------------- */

typedef struct fail_case_s {
    const char *name;
    sst_fail_input_t in;
    sst_fail_action_t action;
    uint16_t status;
} fail_case_t;

#define RETRY   SST_ON_FAIL_RETRY
#define REROUTE SST_ON_FAIL_REROUTE
#define RESPOND SST_ON_FAIL_RESPOND
#define ABORT   SST_ON_FAIL_ABORT

/* One row per cell of the safety matrix in docs/routing.md: phase x (idempotent, body already
 * read, backend left, attempts vs retries, idempotency key). */
static const fail_case_t fail_cases[] = {
    {"no backend",
     {SST_FAIL_NO_BACKEND, true, false, 1, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"no backend, POST",
     {SST_FAIL_NO_BACKEND, false, true, 0, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"connect, GET",
     {SST_FAIL_CONNECT, true, false, 1, 2, true, false, false, false, false},
     RETRY,
     0},
    {"connect, POST",
     {SST_FAIL_CONNECT, false, false, 1, 2, true, false, false, false, false},
     RETRY,
     0},
    {"connect, POST body read",
     {SST_FAIL_CONNECT, false, true, 1, 2, true, false, false, false, false},
     RETRY,
     0},
    {"connect, last retry",
     {SST_FAIL_CONNECT, false, false, 2, 2, true, false, false, false, false},
     RETRY,
     0},
    {"connect, retries used",
     {SST_FAIL_CONNECT, true, false, 3, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"connect, retries 0",
     {SST_FAIL_CONNECT, true, false, 1, 0, true, false, false, false, false},
     REROUTE,
     0},
    {"connect, no backend left",
     {SST_FAIL_CONNECT, true, false, 1, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"partial, POST",
     {SST_FAIL_SEND_PARTIAL, false, false, 1, 2, true, false, false, false, false},
     RETRY,
     0},
    {"partial, GET",
     {SST_FAIL_SEND_PARTIAL, true, false, 1, 2, true, false, false, false, false},
     RETRY,
     0},
    {"partial, body read",
     {SST_FAIL_SEND_PARTIAL, false, true, 1, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"partial, PUT body read",
     {SST_FAIL_SEND_PARTIAL, true, true, 1, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"partial, no backend left",
     {SST_FAIL_SEND_PARTIAL, false, false, 1, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"partial, retries used",
     {SST_FAIL_SEND_PARTIAL, false, false, 3, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"sent, GET", {SST_FAIL_SENT, true, false, 1, 2, true, false, false, false, false}, RETRY, 0},
    {"sent, GET last retry",
     {SST_FAIL_SENT, true, false, 2, 2, true, false, false, false, false},
     RETRY,
     0},
    {"sent, POST",
     {SST_FAIL_SENT, false, false, 1, 2, true, false, false, false, false},
     RESPOND,
     502},
    {"sent, POST body read",
     {SST_FAIL_SENT, false, true, 1, 2, true, false, false, false, false},
     RESPOND,
     502},
    {"sent, PUT body read",
     {SST_FAIL_SENT, true, true, 1, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"sent, GET no backend left",
     {SST_FAIL_SENT, true, false, 1, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"sent, GET retries used",
     {SST_FAIL_SENT, true, false, 3, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"timeout, GET",
     {SST_FAIL_RESPONSE_TIMEOUT, true, false, 1, 2, true, false, false, false, false},
     RESPOND,
     504},
    {"timeout, POST",
     {SST_FAIL_RESPONSE_TIMEOUT, false, true, 1, 2, true, false, false, false, false},
     RESPOND,
     504},
    {"bad response, GET",
     {SST_FAIL_BAD_RESPONSE, true, false, 1, 2, true, false, false, false, false},
     RESPOND,
     502},
    {"bad response, POST",
     {SST_FAIL_BAD_RESPONSE, false, true, 1, 2, true, false, false, false, false},
     RESPOND,
     502},
    {"response started, GET",
     {SST_FAIL_RESPONSE_STARTED, true, false, 1, 2, true, false, false, false, false},
     ABORT,
     0},
    {"response started, POST",
     {SST_FAIL_RESPONSE_STARTED, false, true, 1, 2, true, false, false, false, false},
     ABORT,
     0},
    /* issue 15: an idempotency key makes a POST repeatable where that matters (SENT), and
     * changes nothing elsewhere */
    {"sent, POST key",
     {SST_FAIL_SENT, false, false, 1, 2, true, true, false, false, false},
     RETRY,
     0},
    {"sent, POST key body read",
     {SST_FAIL_SENT, false, true, 1, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"sent, POST key no backend left",
     {SST_FAIL_SENT, false, false, 1, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"sent, POST key retries used",
     {SST_FAIL_SENT, false, false, 3, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"sent, GET key",
     {SST_FAIL_SENT, true, false, 1, 2, true, true, false, false, false},
     RETRY,
     0},
    {"sent, PUT key body read",
     {SST_FAIL_SENT, true, true, 1, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"connect, POST key",
     {SST_FAIL_CONNECT, false, false, 1, 2, true, true, false, false, false},
     RETRY,
     0},
    {"partial, POST key body read",
     {SST_FAIL_SEND_PARTIAL, false, true, 1, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"timeout, POST key",
     {SST_FAIL_RESPONSE_TIMEOUT, false, false, 1, 2, true, true, false, false, false},
     RESPOND,
     504},
    {"bad response, POST key",
     {SST_FAIL_BAD_RESPONSE, false, false, 1, 2, true, true, false, false, false},
     RESPOND,
     502},
    {"response started, POST key",
     {SST_FAIL_RESPONSE_STARTED, false, false, 1, 2, true, true, false, false, false},
     ABORT,
     0},
    /* issue 15: the try timeout, every combination of method (idempotent or not), key, body
     * consumed, backend left and retries left (attempts 1 of retries 2, or 3 of 2) */
    {"try, GET",
     {SST_FAIL_TRY_TIMEOUT, true, false, 1, 2, true, false, false, false, false},
     RETRY,
     0},
    {"try, GET retries used",
     {SST_FAIL_TRY_TIMEOUT, true, false, 3, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"try, GET none left",
     {SST_FAIL_TRY_TIMEOUT, true, false, 1, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"try, GET none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, true, false, 3, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"try, PUT body",
     {SST_FAIL_TRY_TIMEOUT, true, true, 1, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"try, PUT body retries used",
     {SST_FAIL_TRY_TIMEOUT, true, true, 3, 2, true, false, false, false, false},
     REROUTE,
     0},
    {"try, PUT body none left",
     {SST_FAIL_TRY_TIMEOUT, true, true, 1, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"try, PUT body none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, true, true, 3, 2, false, false, false, false, false},
     REROUTE,
     0},
    {"try, GET key",
     {SST_FAIL_TRY_TIMEOUT, true, false, 1, 2, true, true, false, false, false},
     RETRY,
     0},
    {"try, GET key retries used",
     {SST_FAIL_TRY_TIMEOUT, true, false, 3, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"try, GET key none left",
     {SST_FAIL_TRY_TIMEOUT, true, false, 1, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, GET key none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, true, false, 3, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, PUT key body",
     {SST_FAIL_TRY_TIMEOUT, true, true, 1, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"try, PUT key body retries used",
     {SST_FAIL_TRY_TIMEOUT, true, true, 3, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"try, PUT key body none left",
     {SST_FAIL_TRY_TIMEOUT, true, true, 1, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, PUT key body none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, true, true, 3, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key",
     {SST_FAIL_TRY_TIMEOUT, false, false, 1, 2, true, true, false, false, false},
     RETRY,
     0},
    {"try, POST key retries used",
     {SST_FAIL_TRY_TIMEOUT, false, false, 3, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key none left",
     {SST_FAIL_TRY_TIMEOUT, false, false, 1, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, false, false, 3, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key body",
     {SST_FAIL_TRY_TIMEOUT, false, true, 1, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key body retries used",
     {SST_FAIL_TRY_TIMEOUT, false, true, 3, 2, true, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key body none left",
     {SST_FAIL_TRY_TIMEOUT, false, true, 1, 2, false, true, false, false, false},
     REROUTE,
     0},
    {"try, POST key body none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, false, true, 3, 2, false, true, false, false, false},
     REROUTE,
     0},
    /* never armed for these; if it fires anyway the request is not repeated: 504 */
    {"try, POST",
     {SST_FAIL_TRY_TIMEOUT, false, false, 1, 2, true, false, false, false, false},
     RESPOND,
     504},
    {"try, POST retries used",
     {SST_FAIL_TRY_TIMEOUT, false, false, 3, 2, true, false, false, false, false},
     RESPOND,
     504},
    {"try, POST none left",
     {SST_FAIL_TRY_TIMEOUT, false, false, 1, 2, false, false, false, false, false},
     RESPOND,
     504},
    {"try, POST none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, false, false, 3, 2, false, false, false, false, false},
     RESPOND,
     504},
    {"try, POST body",
     {SST_FAIL_TRY_TIMEOUT, false, true, 1, 2, true, false, false, false, false},
     RESPOND,
     504},
    {"try, POST body retries used",
     {SST_FAIL_TRY_TIMEOUT, false, true, 3, 2, true, false, false, false, false},
     RESPOND,
     504},
    {"try, POST body none left",
     {SST_FAIL_TRY_TIMEOUT, false, true, 1, 2, false, false, false, false, false},
     RESPOND,
     504},
    {"try, POST body none left, retries used",
     {SST_FAIL_TRY_TIMEOUT, false, true, 3, 2, false, false, false, false, false},
     RESPOND,
     504},
    {"try, GET last retry",
     {SST_FAIL_TRY_TIMEOUT, true, false, 2, 2, true, false, false, false, false},
     RETRY,
     0},
    {"try, GET retries 0",
     {SST_FAIL_TRY_TIMEOUT, true, false, 1, 0, true, false, false, false, false},
     REROUTE,
     0},
};

static void test_route_on_failure(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(fail_cases) / sizeof(fail_cases[0]); i++) {
        const fail_case_t *c = &fail_cases[i];
        sst_fail_decision_t d = {.action = (sst_fail_action_t)99, .status = 999};
        sst_route_on_failure(&c->in, &d);
        if (d.action != c->action || d.status != c->status)
            fail_msg("%s: action %d status %u, want %d %u", c->name, d.action, d.status, c->action,
                     c->status);
        assert_non_null(d.reason);
    }
}

/* Issue 15: after a timeout, a retry goes only to a backend that showed life; with none, a
 * reroute when a redirect is left (a 307 now, not another wait on a silent backend), else a
 * retry on any backend (waiting beats a 504). Refusals and resets are not timeouts: unchanged. */
static void test_route_on_failure_after_silence(void **state)
{
    static const struct {
        const char *name;
        sst_fail_phase_t phase;
        bool idempotent, body, timed_out, live, redirect;
        sst_fail_action_t action;
        bool live_only;
    } cases[] = {
        /* one backend of the region silent, another answering: retry there */
        {"try, a live backend", SST_FAIL_TRY_TIMEOUT, true, false, true, true, true, RETRY, true},
        {"try implies timed_out", SST_FAIL_TRY_TIMEOUT, true, false, false, true, true, RETRY,
         true},
        /* the whole region silent: the 307 at once */
        {"try, none live, redirect", SST_FAIL_TRY_TIMEOUT, true, false, true, false, true, REROUTE,
         false},
        {"try implied, none live, redirect", SST_FAIL_TRY_TIMEOUT, true, false, false, false, true,
         REROUTE, false},
        /* nowhere to redirect: any backend rather than a 504 */
        {"try, none live, no redirect", SST_FAIL_TRY_TIMEOUT, true, false, true, false, false,
         RETRY, false},
        {"try, live, no redirect", SST_FAIL_TRY_TIMEOUT, true, false, true, true, false, RETRY,
         true},
        /* a body read from the client: never a retry, live or not */
        {"try, body, live", SST_FAIL_TRY_TIMEOUT, true, true, true, true, true, REROUTE, false},
        {"connect timeout, live", SST_FAIL_CONNECT, false, false, true, true, true, RETRY, true},
        {"connect timeout, none live, redirect", SST_FAIL_CONNECT, false, false, true, false, true,
         REROUTE, false},
        {"connect timeout, none live, no redirect", SST_FAIL_CONNECT, false, false, true, false,
         false, RETRY, false},
        /* a refused connect is no silence: any backend, as before */
        {"refused, none live, redirect", SST_FAIL_CONNECT, true, false, false, false, true, RETRY,
         false},
        {"sent, reset, none live", SST_FAIL_SENT, true, false, false, false, true, RETRY, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_fail_input_t in = {
            .phase = cases[i].phase,
            .idempotent = cases[i].idempotent,
            .body_consumed = cases[i].body,
            .attempts = 1,
            .retries = 2,
            .backend_left = true,
            .timed_out = cases[i].timed_out,
            .live_backend_left = cases[i].live,
            .redirect_left = cases[i].redirect,
        };
        sst_fail_decision_t d;
        memset(&d, 0xa5, sizeof(d));
        sst_route_on_failure(&in, &d);
        if (d.action != cases[i].action || d.live_only != cases[i].live_only)
            fail_msg("%s: action %d live_only %d, want %d %d", cases[i].name, d.action, d.live_only,
                     cases[i].action, cases[i].live_only);
        /* no retry left: the same facts never make a retry */
        in.backend_left = false;
        sst_route_on_failure(&in, &d);
        assert_int_not_equal(d.action, RETRY);
        assert_false(d.live_only);
    }
}

/* Rules that must hold in every cell, whatever the table above says: checked over every
 * combination of phase, method, key, body, backend left, attempts and retries. */
static void test_route_on_failure_invariants(void **state)
{
    static const uint32_t attempts[] = {0, 1, 2, 3, 17};
    static const uint32_t retries[] = {0, 2, 16};
    size_t checked = 0;

    (void)state;
    for (int ph = SST_FAIL_NO_BACKEND; ph <= SST_FAIL_TRY_TIMEOUT; ph++)
        for (unsigned bits = 0; bits < 128; bits++)
            for (size_t a = 0; a < sizeof(attempts) / sizeof(attempts[0]); a++)
                for (size_t r = 0; r < sizeof(retries) / sizeof(retries[0]); r++) {
                    sst_fail_input_t in = {
                        .phase = (sst_fail_phase_t)ph,
                        .idempotent = bits & 1,
                        .body_consumed = (bits >> 1) & 1,
                        .backend_left = (bits >> 2) & 1,
                        .idempotency_key = (bits >> 3) & 1,
                        .timed_out = (bits >> 4) & 1,
                        .live_backend_left = (bits >> 5) & 1,
                        .redirect_left = (bits >> 6) & 1,
                        .attempts = attempts[a],
                        .retries = retries[r],
                    };
                    sst_fail_decision_t d, plain;
                    sst_route_on_failure(&in, &d);
                    bool may_have_seen = ph == SST_FAIL_SENT || ph == SST_FAIL_TRY_TIMEOUT;
                    bool body_needed = may_have_seen || ph == SST_FAIL_SEND_PARTIAL;
                    assert_non_null(d.reason);
                    if (d.action == SST_ON_FAIL_RESPOND)
                        assert_true(d.status == 502 || d.status == 504);
                    else
                        assert_int_equal(d.status, 0);
                    /* a retry needs a backend and an attempt left */
                    if (d.action == SST_ON_FAIL_RETRY)
                        assert_true(in.backend_left && in.attempts <= in.retries);
                    /* after a timeout with a redirect left, a retry only on a live backend */
                    bool silent = in.timed_out || ph == SST_FAIL_TRY_TIMEOUT;
                    if (d.action == SST_ON_FAIL_RETRY && silent &&
                        (ph == SST_FAIL_CONNECT || ph == SST_FAIL_TRY_TIMEOUT) && in.redirect_left)
                        assert_true(in.live_backend_left && d.live_only);
                    if (d.live_only)
                        assert_true(d.action == SST_ON_FAIL_RETRY && silent &&
                                    in.live_backend_left);
                    /* a request that is not repeatable is never sent again once the backend
                     * may have it whole */
                    if (may_have_seen && !in.idempotent && !in.idempotency_key)
                        assert_true(d.action != SST_ON_FAIL_RETRY &&
                                    d.action != SST_ON_FAIL_REROUTE);
                    /* sidestep keeps no body: a consumed one cannot be sent again by it */
                    if (body_needed && in.body_consumed)
                        assert_true(d.action != SST_ON_FAIL_RETRY);
                    /* the key matters only where the method would: SENT and TRY_TIMEOUT of a
                     * request that is not idempotent */
                    in.idempotency_key = false;
                    sst_route_on_failure(&in, &plain);
                    if (!may_have_seen || in.idempotent)
                        assert_true(d.action == plain.action && d.status == plain.status);
                    checked++;
                }
    assert_int_equal(checked, 8 * 128 * 5 * 3);

    /* a phase outside the enum gets the safest answer */
    sst_fail_input_t bad = {.phase = (sst_fail_phase_t)99,
                            .idempotent = true,
                            .backend_left = true,
                            .attempts = 1,
                            .retries = 2};
    sst_fail_decision_t d;
    sst_route_on_failure(&bad, &d);
    assert_int_equal(d.action, SST_ON_FAIL_RESPOND);
    assert_int_equal(d.status, 502);
}

static void test_idempotency_key_valid(void **state)
{
    static const struct {
        const char *value;
        bool want;
    } cases[] = {
        {"\"8e03978e-40d5-43e8-bc93-6894a57f9324\"", true}, /* the draft's example */
        {"\"a\"", true},
        {" \t\"a\" \t", true}, /* OWS around the value */
        {"\"a b ~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"", true},
        {"\"\\\"\"", true}, /* an escaped quote */
        {"\"\\\\\"", true}, /* an escaped backslash */
        {"\"x\\\"y\\\\z\"", true},
        {"\" \"", true}, /* one character, a space: RFC 8941 allows it */
        {"", false},
        {"   ", false},
        {"\"\"", false}, /* empty */
        {"\"", false},
        {"abc", false}, /* the unquoted form some APIs send */
        {"8e03978e-40d5-43e8-bc93-6894a57f9324", false},
        {"\"abc", false}, /* not closed */
        {"abc\"", false},
        {"\"a\"b", false},       /* something after the closing quote */
        {"\"a\";p=1", false},    /* parameters */
        {"\"a\", \"b\"", false}, /* the field repeated, as a recipient would combine it */
        {"\"a\" \"b\"", false},
        {"\"a\\b\"", false}, /* an escape RFC 8941 does not define */
        {"\"a\\\"", false},  /* the closing quote escaped away */
        {"\"a\\", false},
        {"\"a\tb\"", false}, /* HTAB is not allowed inside an sf-string */
        {"\"a\x01\"", false},
        {"\"a\x7f\"", false},
        {"\"caf\xc3\xa9\"", false}, /* non-ASCII */
        {"\"a\"\r\n", false},
        {"'a'", false},
    };
    char big[SST_IDEMPOTENCY_KEY_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sst_idempotency_key_valid(fx_s(cases[i].value)) != cases[i].want)
            fail_msg("case %zu: %s", i, cases[i].value);
    assert_false(sst_idempotency_key_valid(sst_str(NULL, 0)));
    /* NUL inside is a control character, whatever C strings think of it */
    assert_false(sst_idempotency_key_valid(sst_str("\"a\0b\"", 5)));
    /* the bound counts the whole value, quotes included */
    memset(big, 'k', sizeof(big));
    big[0] = '"';
    big[SST_IDEMPOTENCY_KEY_MAX - 1] = '"';
    assert_true(sst_idempotency_key_valid(sst_str(big, SST_IDEMPOTENCY_KEY_MAX)));
    big[SST_IDEMPOTENCY_KEY_MAX - 1] = 'k';
    big[SST_IDEMPOTENCY_KEY_MAX] = '"';
    assert_false(sst_idempotency_key_valid(sst_str(big, SST_IDEMPOTENCY_KEY_MAX + 1)));
}

static void test_try_timeout(void **state)
{
    sst_route_cfg_t rt = {.try_timeout_ms = 300};
    sst_route_cfg_t off = {.try_timeout_ms = 0};

    (void)state;
    /* armed for a request that may be repeated: by method or by key */
    assert_int_equal(sst_route_try_timeout(&rt, true, false), 300);
    assert_int_equal(sst_route_try_timeout(&rt, false, true), 300);
    assert_int_equal(sst_route_try_timeout(&rt, true, true), 300);
    assert_int_equal(sst_route_try_timeout(&rt, false, false), 0);
    assert_int_equal(sst_route_try_timeout(&off, true, true), 0);
    assert_int_equal(sst_route_try_timeout(NULL, true, true), 0);
}

static void test_attempt_deadlines(void **state)
{
    /* for the connect, phase TRY_TIMEOUT stands for "true: the try timeout sets the deadline" */
    static const struct {
        const char *name;
        bool connect; /* sst_route_connect_deadline, else sst_route_response_deadline */
        uint64_t try_ms, from_ms;
        sst_fail_phase_t phase;
        uint64_t deadline_ms;
    } cases[] = {
        /* timeouts.connect 2s, upstream_response 3s */
        {"connect, no try timer", true, 0, 1000, SST_FAIL_CONNECT, 3000},
        {"connect, try below connect", true, 300, 1000, SST_FAIL_TRY_TIMEOUT, 1300},
        {"connect, try equal to connect", true, 2000, 1000, SST_FAIL_TRY_TIMEOUT, 3000},
        {"connect, try above connect", true, 2500, 1000, SST_FAIL_CONNECT, 3000},
        {"connect, saturates", true, 300, UINT64_MAX - 100, SST_FAIL_TRY_TIMEOUT, UINT64_MAX},
        {"connect, saturates without try", true, 0, UINT64_MAX - 1, SST_FAIL_CONNECT, UINT64_MAX},
        {"response, no try timer", false, 0, 5000, SST_FAIL_RESPONSE_TIMEOUT, 8000},
        {"response, try", false, 300, 5000, SST_FAIL_TRY_TIMEOUT, 5300},
        {"response, try equal to response", false, 3000, 5000, SST_FAIL_RESPONSE_TIMEOUT, 8000},
        {"response, try above response", false, 4000, 5000, SST_FAIL_RESPONSE_TIMEOUT, 8000},
        {"response, saturates", false, 300, UINT64_MAX - 1, SST_FAIL_TRY_TIMEOUT, UINT64_MAX},
    };
    sst_timeouts_cfg_t to = {.connect_ms = 2000, .upstream_response_ms = 3000};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t at = 0;
        sst_fail_phase_t ph;
        if (cases[i].connect)
            ph = sst_route_connect_deadline(&to, cases[i].try_ms, cases[i].from_ms, &at)
                     ? SST_FAIL_TRY_TIMEOUT
                     : SST_FAIL_CONNECT;
        else
            ph = sst_route_response_deadline(&to, cases[i].try_ms, cases[i].from_ms, &at);
        if (ph != cases[i].phase || at != cases[i].deadline_ms)
            fail_msg("%s: phase %d at %llu, want %d at %llu", cases[i].name, ph,
                     (unsigned long long)at, cases[i].phase,
                     (unsigned long long)cases[i].deadline_ms);
    }
}

static void test_method_is_idempotent(void **state)
{
    static const struct {
        const char *method;
        bool want;
    } cases[] = {
        {"GET", true},    {"HEAD", true},  {"OPTIONS", true}, {"TRACE", true},     {"PUT", true},
        {"DELETE", true}, {"POST", false}, {"PATCH", false},  {"CONNECT", false},  {"get", false},
        {"GETX", false},  {"GE", false},   {"", false},       {"PROPFIND", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sst_method_is_idempotent(fx_s(cases[i].method)) != cases[i].want)
            fail_msg("%s", cases[i].method);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_path_query),
        cmocka_unit_test(test_route_match),
        cmocka_unit_test(test_route_decide),
        cmocka_unit_test(test_route_preflight),
        cmocka_unit_test(test_cors_request_headers),
        cmocka_unit_test(test_route_decide_long_target),
        cmocka_unit_test(test_route_decide_short_snapshot),
        cmocka_unit_test(test_route_https),
        cmocka_unit_test(test_route_on_failure),
        cmocka_unit_test(test_route_on_failure_after_silence),
        cmocka_unit_test(test_route_on_failure_invariants),
        cmocka_unit_test(test_idempotency_key_valid),
        cmocka_unit_test(test_try_timeout),
        cmocka_unit_test(test_attempt_deadlines),
        cmocka_unit_test(test_method_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
