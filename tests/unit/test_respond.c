/* respond.c: the answers sidestep writes itself, byte for byte. Redirects (every prepared status
 * line, each tail, HEAD, CORS, the https enforcement), CORS preflight answers and the short
 * error answers, with the prepared parts view.c builds for a real config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/respond.h"
#include "core/server_int.h"
#include "core/view.h"
#include "http/http1.h"

typedef struct fixture_s {
    sst_server_t *s;
    sst_config_t *cfg;
    sst_prep_t *prep;
} fixture_t;

static int setup(void **state)
{
    static const char yaml[] = "listen: [127.0.0.1:0]\n"
                               "regions:\n"
                               "  - {name: a, url: http://a.example, backends: [127.0.0.1:1],"
                               " health: {enabled: false}}\n"
                               "  - {name: eu-west, url: https://eu.example:8443/base,"
                               " backends: [127.0.0.1:2], health: {enabled: false}}\n";
    fixture_t *f = calloc(1, sizeof(*f));
    sst_diag_t diag;
    char err[256] = "";
    memset(&diag, 0, sizeof(diag));
    assert_non_null(f);
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, &diag), 0);
    f->s = calloc(1, sizeof(*f->s));
    assert_non_null(f->s);
    f->s->n_workers = 1;
    assert_int_equal(sst__prep_build(f->cfg, f->s, &f->prep, err, sizeof(err)), 0);
    sst__prep_commit(f->s, f->prep);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sst__prep_free(f->prep);
    sst__lsocks_free(f->s);
    sst__prep_names_free(f->s);
    sst_config_unref(f->cfg);
    free(f->s);
    free(f);
    return 0;
}

/* The bytes of iov[0..n), as one string. */
static char *join(const uv_buf_t *iov, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += iov[i].len;
    char *s = malloc(len + 1);
    assert_non_null(s);
    len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(s + len, iov[i].base, iov[i].len);
        len += iov[i].len;
    }
    s[len] = 0;
    return s;
}

static void expect_iov(const uv_buf_t *iov, size_t n, const char *want, const char *name)
{
    assert_true(n > 0);
    char *got = join(iov, n);
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n got [%s]\nwant [%s]", name, got, want);
    free(got);
}

/* ---- redirects ------------------------------------------------------------------------------ */

#define MID_A                                                                                      \
    "\r\nCache-Control: no-store\r\nX-Sidestep-Region: a\r\n"                                      \
    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n"
#define BODY_A "Redirecting to region a.\n"

typedef struct redirect_case_s {
    const char *name;
    uint16_t status;
    size_t region;
    const char *parts[4]; /* location[1..]: location[0] is the region's url, in the prepared head */
    sst_tail_t tail;
    bool head_only;
    const char *cors_origin;
    bool cors_credentials;
    const char *want;
} redirect_case_t;

static const redirect_case_t redirect_cases[] = {
    {"307, keep-alive",
     307,
     0,
     {"/p", "?q=1"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/p?q=1" MID_A "\r\n" BODY_A},
    {"301",
     301,
     0,
     {"/"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 301 Moved Permanently\r\nLocation: http://a.example/" MID_A "\r\n" BODY_A},
    {"302",
     302,
     0,
     {"/"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 302 Found\r\nLocation: http://a.example/" MID_A "\r\n" BODY_A},
    {"303",
     303,
     0,
     {"/"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 303 See Other\r\nLocation: http://a.example/" MID_A "\r\n" BODY_A},
    {"308",
     308,
     0,
     {"/"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 308 Permanent Redirect\r\nLocation: http://a.example/" MID_A "\r\n" BODY_A},
    {"any other status is a 307",
     399,
     0,
     {"/"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/" MID_A "\r\n" BODY_A},
    {"close",
     307,
     0,
     {"/x"},
     SST_TAIL_CLOSE,
     false,
     NULL,
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/x" MID_A
     "Connection: close\r\n\r\n" BODY_A},
    {"HTTP/1.0 keep-alive",
     307,
     0,
     {"/x"},
     SST_TAIL_KEEPALIVE10,
     false,
     NULL,
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/x" MID_A
     "Connection: keep-alive\r\n\r\n" BODY_A},
    {"HEAD: the headers of the full answer, no body",
     307,
     0,
     {"/x"},
     SST_TAIL_PLAIN,
     true,
     NULL,
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/x" MID_A "\r\n"},
    {"CORS",
     307,
     0,
     {"/api"},
     SST_TAIL_PLAIN,
     false,
     "https://app.example",
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/api" MID_A
     "Access-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\n\r\n" BODY_A},
    {"CORS with credentials, HEAD",
     307,
     0,
     {"/api"},
     SST_TAIL_CLOSE,
     true,
     "https://app.example",
     true,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://a.example/api" MID_A
     "Access-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\n"
     "Access-Control-Allow-Credentials: true\r\nConnection: close\r\n\r\n"},
    {"a url with a base path, empty parts skipped",
     307,
     1,
     {"", "/p", "", "?h=1"},
     SST_TAIL_PLAIN,
     false,
     NULL,
     false,
     "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://eu.example:8443/base/p?h=1"
     "\r\nCache-Control: no-store\r\nX-Sidestep-Region: eu-west\r\n"
     "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 31\r\n\r\n"
     "Redirecting to region eu-west.\n"},
};

static void fill_decision(sst_decision_t *d, uint16_t status, size_t region, const char *url,
                          const char *const *parts, size_t n_parts)
{
    memset(d, 0, sizeof(*d));
    d->kind = SST_DECIDE_REDIRECT;
    d->status = status;
    d->region = region;
    d->location[d->n_location++] = sst_str_c(url);
    for (size_t i = 0; i < n_parts && parts[i] != NULL; i++)
        d->location[d->n_location++] = sst_str_c(parts[i]);
}

static void test_redirects(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof(redirect_cases) / sizeof(redirect_cases[0]); i++) {
        const redirect_case_t *c = &redirect_cases[i];
        sst_decision_t d;
        uv_buf_t iov[SST_LOCATION_PARTS + 10];
        fill_decision(&d, c->status, c->region, f->cfg->regions[c->region].url, c->parts, 4);
        d.cors_origin = sst_str_c(c->cors_origin);
        d.cors_credentials = c->cors_credentials;
        size_t n = sst__redirect_iov(f->prep, &d, false, c->tail, c->head_only, iov,
                                     sizeof(iov) / sizeof(iov[0]));
        expect_iov(iov, n, c->want, c->name);
    }
}

/* The listener's https enforcement: the status line and body of its own, the Location from the
 * decision (sst_route_https built it), and every status line from the one reason-phrase table. */
static void test_https_redirects(void **state)
{
    fixture_t *f = *state;
    static const uint16_t statuses[] = {301, 302, 303, 307, 308};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        const char *parts[] = {"host.example", "/p?q"};
        sst_decision_t d;
        uv_buf_t iov[SST_LOCATION_PARTS + 10];
        char want[512];
        fill_decision(&d, statuses[i], SIZE_MAX, "https://", parts, 2);
        snprintf(want, sizeof(want),
                 "HTTP/1.1 %u %s\r\nLocation: https://host.example/p?q\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n"
                 "Connection: close\r\n\r\nRedirecting to HTTPS.\n",
                 statuses[i], sst_h1_status_text(statuses[i]));
        size_t n = sst__redirect_iov(f->prep, &d, true, SST_TAIL_CLOSE, false, iov,
                                     sizeof(iov) / sizeof(iov[0]));
        expect_iov(iov, n, want, "https");
    }
}

static void test_redirect_refusals(void **state)
{
    fixture_t *f = *state;
    const char *parts[] = {"/p"};
    sst_decision_t d;
    uv_buf_t iov[SST_LOCATION_PARTS + 10];
    fill_decision(&d, 307, 0, "http://a.example", parts, 1);
    /* too few buffers */
    assert_int_equal(sst__redirect_iov(f->prep, &d, false, SST_TAIL_PLAIN, false, iov, 8), 0);
    /* no region */
    d.region = SST_MAX_REGIONS;
    assert_int_equal(sst__redirect_iov(f->prep, &d, false, SST_TAIL_PLAIN, false, iov, 16), 0);
    /* no Location */
    d.region = 0;
    d.n_location = 0;
    assert_int_equal(sst__redirect_iov(f->prep, &d, false, SST_TAIL_PLAIN, false, iov, 16), 0);
}

/* ---- CORS preflights ------------------------------------------------------------------------ */

typedef struct preflight_case_s {
    const char *name;
    const char *methods, *headers, *region;
    bool credentials;
    sst_tail_t tail;
    const char *want;
} preflight_case_t;

#define PF_HEAD                                                                                    \
    "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: https://app.example\r\n"              \
    "Vary: Origin\r\nAccess-Control-Allow-Methods: "

static const preflight_case_t preflight_cases[] = {
    {"methods only", "GET, POST", NULL, NULL, false, SST_TAIL_PLAIN,
     PF_HEAD "GET, POST\r\nAccess-Control-Max-Age: 5\r\n\r\n"},
    {"everything", "PUT", "x-token, content-type", "eu-west", true, SST_TAIL_CLOSE,
     PF_HEAD "PUT\r\nAccess-Control-Allow-Headers: x-token, content-type\r\n"
             "Access-Control-Max-Age: 5\r\nAccess-Control-Allow-Credentials: true\r\n"
             "X-Sidestep-Region: eu-west\r\nConnection: close\r\n\r\n"},
    {"HTTP/1.0 keep-alive", "GET", NULL, "a", false, SST_TAIL_KEEPALIVE10,
     PF_HEAD "GET\r\nAccess-Control-Max-Age: 5\r\nX-Sidestep-Region: a\r\n"
             "Connection: keep-alive\r\n\r\n"},
};

static void test_preflights(void **state)
{
    for (size_t i = 0; i < sizeof(preflight_cases) / sizeof(preflight_cases[0]); i++) {
        const preflight_case_t *c = &preflight_cases[i];
        sst_decision_t d;
        uv_buf_t iov[SST_PREFLIGHT_IOV];
        memset(&d, 0, sizeof(d));
        d.kind = SST_DECIDE_REDIRECT;
        d.preflight = true;
        d.cors_origin = SST_STR_LIT("https://app.example");
        d.cors_method = sst_str_c(c->methods);
        d.cors_headers = sst_str_c(c->headers);
        d.cors_credentials = c->credentials;
        size_t n = sst__preflight_iov(&d, sst_str_c(c->region), c->tail, iov, SST_PREFLIGHT_IOV);
        expect_iov(iov, n, c->want, c->name);
    }
}

static void test_preflight_refusals(void **state)
{
    sst_decision_t d;
    uv_buf_t iov[SST_PREFLIGHT_IOV];
    memset(&d, 0, sizeof(d));
    d.preflight = true;
    d.cors_origin = SST_STR_LIT("https://app.example");
    d.cors_method = SST_STR_LIT("GET");
    assert_true(sst__preflight_iov(&d, SST_STR_NULL, SST_TAIL_PLAIN, iov, SST_PREFLIGHT_IOV) > 0);
    assert_int_equal(sst__preflight_iov(&d, SST_STR_NULL, SST_TAIL_PLAIN, iov, 11), 0);
    assert_int_equal(sst__preflight_iov(&d, SST_STR_NULL, SST_TAILS, iov, SST_PREFLIGHT_IOV), 0);
    d.cors_method = SST_STR_NULL;
    assert_int_equal(sst__preflight_iov(&d, SST_STR_NULL, SST_TAIL_PLAIN, iov, SST_PREFLIGHT_IOV),
                     0);
    d.cors_method = SST_STR_LIT("GET");
    d.cors_origin = SST_STR_NULL;
    assert_int_equal(sst__preflight_iov(&d, SST_STR_NULL, SST_TAIL_PLAIN, iov, SST_PREFLIGHT_IOV),
                     0);
    d.cors_origin = SST_STR_LIT("https://app.example");
    d.preflight = false;
    assert_int_equal(sst__preflight_iov(&d, SST_STR_NULL, SST_TAIL_PLAIN, iov, SST_PREFLIGHT_IOV),
                     0);
}

/* ---- error answers ----------------------------------------------------------------------------
 */

typedef struct error_case_s {
    const char *name;
    unsigned status;
    const char *reason;
    uint64_t retry_after_s;
    bool close, keepalive10, head_only;
    const char *want;
} error_case_t;

#define ERR_HEAD(st) "HTTP/1.1 " st "\r\nContent-Type: text/plain; charset=utf-8\r\n"

static const error_case_t error_cases[] = {
    {"503 with Retry-After", 503, "all regions down", 1, false, false, false,
     ERR_HEAD("503 Service Unavailable") "Cache-Control: no-store\r\nContent-Length: 42\r\n"
                                         "Retry-After: 1\r\n\r\n"
                                         "503 Service Unavailable: all regions down\n"},
    {"405 names what is allowed", 405, NULL, 0, true, false, false,
     ERR_HEAD("405 Method Not Allowed") "Cache-Control: no-store\r\nContent-Length: 43\r\n"
                                        "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
                                        "Connection: close\r\n\r\n"
                                        "405 Method Not Allowed: Method Not Allowed\n"},
    {"502 to an HTTP/1.0 keep-alive client", 502, "backend connect refused", 0, false, true, false,
     ERR_HEAD("502 Bad Gateway") "Cache-Control: no-store\r\nContent-Length: 41\r\n"
                                 "Connection: keep-alive\r\n\r\n"
                                 "502 Bad Gateway: backend connect refused\n"},
    {"HEAD: Content-Length of the full answer, no body", 404, "no route", 0, false, false, true,
     ERR_HEAD("404 Not Found") "Cache-Control: no-store\r\nContent-Length: 24\r\n\r\n"},
    {"503 without Retry-After", 503, "too many", 0, true, false, false,
     ERR_HEAD("503 Service Unavailable") "Cache-Control: no-store\r\nContent-Length: 34\r\n"
                                         "Connection: close\r\n\r\n"
                                         "503 Service Unavailable: too many\n"},
};

static void test_errors(void **state)
{
    char buf[2048];
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        const error_case_t *c = &error_cases[i];
        size_t n = sst__error_response(buf, sizeof(buf), c->status, c->reason, c->retry_after_s,
                                       c->close, c->keepalive10, c->head_only);
        if (n != strlen(c->want) || memcmp(buf, c->want, n) != 0)
            fail_msg("%s:\n got [%.*s]\nwant [%s]", c->name, (int)n, buf, c->want);
    }
}

/* A reason longer than the body keeps is cut at 240 bytes; a buffer too small for the answer
 * gets what fits, never more. */
static void test_error_bounds(void **state)
{
    char reason[1000], buf[2048], small[40];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = 0;
    size_t n = sst__error_response(buf, sizeof(buf), 400, reason, 0, true, false, false);
    assert_true(n < sizeof(buf));
    const char *body = strstr(buf, "\r\n\r\n") + 4;
    assert_int_equal(strlen(body), strlen("400 Bad Request: ") + 240 + 1);
    memset(small, 'x', sizeof(small));
    n = sst__error_response(small, sizeof(small), 400, "x", 0, true, false, false);
    assert_int_equal(n, sizeof(small) - 1);
    assert_memory_equal(small, "HTTP/1.1 400 Bad Request\r\n", 26);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redirects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_https_redirects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_refusals, setup, teardown),
        cmocka_unit_test(test_preflights),
        cmocka_unit_test(test_preflight_refusals),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
