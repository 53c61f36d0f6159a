/* http1.c without a loop: every framing rule, every llhttp 8.1 gap sidestep closes itself, the
 * limits, and the same inputs fed whole, byte by byte and in odd pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http1.h"

#define BIG 1000000

static const sst_h1_limits_t default_limits = {
    .request_line = 8192, .field = 8192, .head = 32768, .headers = 100, .body = BIG};

typedef struct result_s {
    int status; /* 0: parsed and valid; else the error status */
    char body[256];
    size_t body_len;
    int messages; /* complete messages */
    sst_h1_request_t req;
    sst_h1_response_t resp;
    sst_head_t *head;
} result_t;

static int collect_body(void *opaque, const char *at, size_t len)
{
    result_t *r = opaque;
    if (r->body_len + len < sizeof(r->body)) {
        memcpy(r->body + r->body_len, at, len);
        r->body_len += len;
    }
    return 0;
}

/* Feeds `in` in pieces of `step` bytes (0: whole). Stops at the first error. */
static void run(const char *in, size_t len, size_t step, bool response, bool head_request,
                const sst_h1_limits_t *lim, result_t *r, bool eof)
{
    sst_h1_t h;
    const char *reason = NULL;
    memset(r, 0, sizeof(*r));
    r->head = sst_head_new();
    assert_non_null(r->head);
    sst_h1_init(&h, response, lim != NULL ? lim : &default_limits, collect_body, r);
    h.head = r->head;
    h.head_request = head_request;
    size_t off = 0;
    bool kick = false; /* after a resume, llhttp may finish a message with no more input */
    while (off < len || kick) {
        kick = false;
        size_t n = step == 0 ? len - off : (len - off < step ? len - off : step);
        size_t used = 0;
        sst_h1_rc_t rc = sst_h1_feed(&h, in + off, n, &used);
        off += used;
        if (rc == SST_H1_ERROR) {
            r->status = h.err_status;
            sst_head_free(r->head);
            return;
        }
        if (rc == SST_H1_HEAD) {
            int st = response ? sst_h1_check_response(&h, &r->resp, &reason)
                              : sst_h1_check_request(&h, &r->req, &reason);
            if (st != 0) {
                r->status = st;
                sst_head_free(r->head);
                return;
            }
            sst_h1_resume(&h);
            kick = true;
            continue;
        }
        if (rc == SST_H1_DONE) {
            r->messages++;
            if (off == len)
                break;
            sst_head_clear(r->head, 1 << 20);
            sst_h1_next(&h);
            h.head = r->head;
            kick = true;
        }
    }
    if (eof && sst_h1_eof(&h) == SST_H1_DONE)
        r->messages++;
    /* the head stays: r->req and r->resp point into it (freed by result_free) */
}

static void result_free(result_t *r)
{
    if (r->status == 0 && r->head != NULL)
        sst_head_free(r->head);
    r->head = NULL;
}

typedef struct case_s {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen */
    int status; /* expected */
    const char *body;
} case_t;

#define L(s) s, sizeof(s) - 1

static const case_t request_cases[] = {
    {"plain GET", L("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, ""},
    {"leading empty line", L("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, ""},
    /* the four llhttp 8.1 gaps named in the foundation issue */
    {"bare CR in a value (CVE-2023-30589)",
     L("GET / HTTP/1.1\r\nHost: a\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n"), 400, NULL},
    {"no version, bare LF (HTTP/0.9)", L("GET /\nHost: a\r\n\r\n"), 400, NULL},
    {"bare LF after the version", L("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400, NULL},
    {"obs-fold with SP", L("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), 400, NULL},
    {"obs-fold with HTAB", L("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), 400, NULL},
    {"bare LF ending a field", L("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400, NULL},
    {"bare CR ending the head", L("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), 400, NULL},
    /* Content-Length */
    {"two different Content-Length",
     L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400,
     NULL},
    {"two equal Content-Length",
     L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"), 400, NULL},
    {"Content-Length list", L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\na"), 400,
     NULL},
    {"signed Content-Length", L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\na"), 400,
     NULL},
    {"negative Content-Length", L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\na"), 400,
     NULL},
    {"hex Content-Length", L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\na"), 400,
     NULL},
    {"overflowing Content-Length",
     L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\na"), 400,
     NULL},
    {"Content-Length with Transfer-Encoding",
     L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1\r\na\r\n0\r\n\r\n"),
     400, NULL},
    {"Content-Length body", L("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 0,
     "hello"},
    /* Transfer-Encoding */
    {"repeated Transfer-Encoding",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
     400, NULL},
    {"chunked twice in one field",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, "
       "chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
     400, NULL},
    {"xchunked", L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), 400, NULL},
    {"space before the colon",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"control character in Transfer-Encoding",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x01"
       "chunked\r\n\r\n"),
     400, NULL},
    {"Transfer-Encoding obs-fold",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), 400, NULL},
    {"Transfer-Encoding in HTTP/1.0",
     L("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"Transfer-Encoding not ending in chunked",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400, NULL},
    {"unsupported coding before chunked",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
     501, NULL},
    {"chunked body",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"),
     0, "hello world"},
    {"chunked, upper-case name and value",
     L("POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n1\r\na\r\n0\r\n\r\n"), 0,
     "a"},
    /* chunk framing */
    {"negative chunk size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"space before chunk size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 1\r\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"space after chunk size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"non-hex chunk size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"overflowing chunk size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
       "chunked\r\n\r\nfffffffffffffffff\r\na\r\n"),
     400, NULL},
    {"bare CR in a chunk line",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\ra\r\n0\r\n\r\n"), 400,
     NULL},
    {"bare LF in a chunk line",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n"), 400,
     NULL},
    {"chunk data longer than its size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n"), 400,
     NULL},
    {"bare LF after chunk data",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n0\r\n\r\n"), 400,
     NULL},
    /* issue 11: Debian's llhttp skips the two bytes after chunk data unread */
    {"two other bytes after chunk data",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY0\r\n\r\n"), 400,
     NULL},
    {"chunk data running two bytes past its size",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"),
     400, NULL},
    {"CR and another byte after chunk data",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\rX0\r\n\r\n"), 400,
     NULL},
    {"LF and CR after chunk data",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n\r0\r\n\r\n"), 400,
     NULL},
    {"CRLF after every chunk, in pieces",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n"
       "3;x=y\r\ndef\r\n0\r\n\r\n"),
     0, "abcdef"},
    {"control character in a chunk extension",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
       "chunked\r\n\r\n1;ext=\x01\r\na\r\n0\r\n\r\n"),
     400, NULL},
    {"Content-Length in trailers is not honoured",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
       "Content-Length: 5\r\n\r\n"),
     0, "a"},
    /* regressions found by tests/integration/test_hardening_diff.py (nginx, HAProxy) */
    {"space before the colon in a trailer",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
       "Y : z\r\n\r\n"),
     400, NULL},
    {"empty trailer name",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
       ": z\r\n\r\n"),
     400, NULL},
    {"valid trailer",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
       "X-Sum: 1\r\n\r\n"),
     0, "a"},
    {"bare LF ending the trailer section",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\n"), 400,
     NULL},
    {"bare LF ending a trailer",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
       "X: y\n\r\n"),
     400, NULL},
    {"obs-fold in a trailer",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
       "X: a\r\n b\r\n\r\n"),
     400, NULL},
    {"empty element before chunked",
     L("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n"), 400, NULL},
    {"empty Host", L("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400, NULL},
    {"blank Host", L("GET / HTTP/1.1\r\nHost:  \r\n\r\n"), 400, NULL},
    {"Host with trailing OWS", L("GET / HTTP/1.1\r\nHost: a \t\r\n\r\n"), 0, ""},
    /* fields */
    {"NUL in a name", L("GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n"), 400, NULL},
    {"NUL in a value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n"), 400, NULL},
    {"DEL in a value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\x7f\r\n\r\n"), 400, NULL},
    {"control character in a value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\x01\r\n\r\n"), 400, NULL},
    {"empty header name", L("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), 400, NULL},
    {"non-token header name", L("GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n\r\n"), 400, NULL},
    {"HTAB in a value is fine", L("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n"), 0, ""},
    {"obs-text in a value is fine", L("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), 0,
     ""},
    /* Host */
    {"missing Host in HTTP/1.1", L("GET / HTTP/1.1\r\nX: y\r\n\r\n"), 400, NULL},
    {"repeated Host", L("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, NULL},
    {"Host with a space", L("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, NULL},
    {"Host with a slash", L("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, NULL},
    {"Host with userinfo", L("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400, NULL},
    {"Host with a bad port", L("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"), 400, NULL},
    /* found by fuzz_http1_request: sub-delims are legal in reg-name but no host uses them */
    {"Host with a comma", L("GET / HTTP/1.1\r\nHost: a,\r\n\r\n"), 400, NULL},
    {"folded Host fields", L("GET / HTTP/1.1\r\nHost: a.example,b.example\r\n\r\n"), 400, NULL},
    {"Host with sub-delims", L("GET / HTTP/1.1\r\nHost: a!b;c=d\r\n\r\n"), 400, NULL},
    {"Host percent-encoded", L("GET / HTTP/1.1\r\nHost: a%41\r\n\r\n"), 400, NULL},
    {"authority with a comma", L("GET http://a,b/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"Host with unreserved", L("GET / HTTP/1.1\r\nHost: a-b.c_d~e:80\r\n\r\n"), 0, ""},
    {"Host IPv6 literal", L("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0, ""},
    {"HTTP/1.0 without Host", L("GET / HTTP/1.0\r\n\r\n"), 0, ""},
    /* request-line and target */
    {"double space in the request-line", L("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"trailing space in the request-line", L("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400, NULL},
    {"leading space in the request-line", L(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"lower-case HTTP", L("GET / http/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"control character in the target", L("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"raw non-ASCII in the target", L("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"fragment in the target", L("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"percent-encoded CR LF stays legal", L("GET /a%0D%0Ab HTTP/1.1\r\nHost: a\r\n\r\n"), 0, ""},
    {"absolute-form", L("GET http://x.example/y?z HTTP/1.1\r\nHost: a\r\n\r\n"), 0, ""},
    {"absolute-form with userinfo", L("GET http://u@x/y HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"other scheme", L("GET ftp://x/y HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"asterisk-form with GET", L("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"asterisk-form with OPTIONS", L("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, ""},
    {"authority-form CONNECT", L("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 405, NULL},
    {"unknown method", L("FOO / HTTP/1.1\r\nHost: a\r\n\r\n"), 501, NULL},
    {"garbled method", L("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, NULL},
    {"HTTP/2.0 request-line", L("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505, NULL},
    {"HTTP/1.2", L("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505, NULL},
    {"HTTP/3.1", L("GET / HTTP/3.1\r\nHost: a\r\n\r\n"), 505, NULL},
    {"HTTP/2 preface", L("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505, NULL},
    {"TLS ClientHello", L("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400, NULL},
    /* Expect */
    {"Expect 100-continue",
     L("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na"), 0, "a"},
    {"unknown expectation",
     L("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\na"), 417, NULL},
    /* an upgrade request is an ordinary request to sidestep */
    {"Upgrade is not special",
     L("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"), 0, ""},
};

static void test_requests(void **state)
{
    static const size_t steps[] = {0, 1, 3, 7};
    for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++) {
        const case_t *c = &request_cases[i];
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            result_t r;
            run(c->in, c->len, steps[s], false, false, NULL, &r, false);
            if (r.status != c->status)
                fail_msg("%s (step %zu): status %d, want %d", c->name, steps[s], r.status,
                         c->status);
            result_free(&r);
            if (c->status == 0) {
                if (r.messages != 1)
                    fail_msg("%s (step %zu): %d messages", c->name, steps[s], r.messages);
                if (r.body_len != strlen(c->body) || memcmp(r.body, c->body, r.body_len) != 0)
                    fail_msg("%s (step %zu): body \"%.*s\"", c->name, steps[s], (int)r.body_len,
                             r.body);
            }
        }
    }
}

static void test_request_fields(void **state)
{
    result_t r;
    const char in[] = "POST http://x.example:81/y?z HTTP/1.1\r\nHost: ignored\r\n"
                      "Origin: https://app\r\nConnection: close\r\nExpect: 100-continue\r\n"
                      "Content-Length: 2\r\n\r\nab";
    run(in, sizeof(in) - 1, 0, false, false, NULL, &r, false);
    assert_int_equal(r.status, 0);
    assert_true(r.req.absolute_form);
    assert_true(sst_str_eq(r.req.host, SST_STR_LIT("x.example:81")));
    assert_true(sst_str_eq(r.req.origin, SST_STR_LIT("https://app")));
    assert_true(sst_str_eq(r.req.method_name, SST_STR_LIT("POST")));
    assert_false(r.req.keep_alive);
    assert_true(r.req.expect_continue);
    assert_true(r.req.has_length);
    assert_int_equal(r.req.content_length, 2);
    result_free(&r);

    const char in10[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    run(in10, sizeof(in10) - 1, 0, false, false, NULL, &r, false);
    assert_int_equal(r.status, 0);
    assert_true(r.req.keep_alive);
    assert_int_equal(r.req.minor, 0);
    result_free(&r);
    const char in10c[] = "GET / HTTP/1.0\r\n\r\n";
    run(in10c, sizeof(in10c) - 1, 0, false, false, NULL, &r, false);
    assert_false(r.req.keep_alive);
    result_free(&r);
}

/* "Connection: close" in a trailer is not honoured: the pipelined request that follows is
 * parsed (llhttp alone would swallow it in its closed state, leaving it unanswered). */
static void test_trailer_connection_close(void **state)
{
    const char in[] = "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "1\r\na\r\n0\r\nConnection: close\r\n\r\n"
                      "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    const char in10[] = "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                        "GET /2 HTTP/1.0\r\n\r\n";
    for (size_t step = 0; step < 5; step++) {
        result_t r;
        run(in, sizeof(in) - 1, step, false, false, NULL, &r, false);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.messages, 2);
        assert_true(r.req.keep_alive); /* from the second request's head */
        result_free(&r);
        run(in10, sizeof(in10) - 1, step, false, false, NULL, &r, false);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.messages, 2);
        result_free(&r);
    }
}

static void test_pipelined(void **state)
{
    const char in[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t step = 0; step < 5; step++) {
        result_t r;
        run(in, sizeof(in) - 1, step, false, false, NULL, &r, false);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.messages, 3);
        assert_int_equal(r.body_len, 3);
        result_free(&r);
    }
}

static void test_limits(void **state)
{
    sst_h1_limits_t lim = {.request_line = 32, .field = 24, .head = 120, .headers = 3, .body = 5};
    char big[512];
    result_t r;

    snprintf(big, sizeof(big), "GET /%040d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 414);
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %030d\r\n\r\n", 0);
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 431);
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 431);
    snprintf(big, sizeof(big),
             "GET / HTTP/1.1\r\nHost: a\r\nA: %030d\r\nB: %030d\r\nC: %030d\r\n\r\n", 1, 2, 3);
    lim.headers = 100;
    lim.field = 64;
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 431);
    snprintf(big, sizeof(big), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n");
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 413); /* before reading: the length says so */
    snprintf(big, sizeof(big),
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\n");
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 0); /* 3 bytes so far: fine */
    result_free(&r);
    snprintf(big, sizeof(big),
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\n"
             "def\r\n0\r\n\r\n");
    run(big, strlen(big), 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 413); /* at the crossing */
    snprintf(big, sizeof(big),
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    size_t n = strlen(big);
    memset(big + n, 'e', 300);
    memcpy(big + n + 300, "\r\na\r\n0\r\n\r\n", 11);
    lim.head = 4096;
    lim.body = 0;
    run(big, n + 310, 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 0); /* 300 extension bytes are within the 4 KiB cap */
    result_free(&r);
}

/* The trailer section is bounded like a head: field count, field size, total size. */
static void test_trailer_limits(void **state)
{
    sst_h1_limits_t lim = {.request_line = 64, .field = 64, .head = 400, .headers = 4, .body = 0};
    char in[2048];
    result_t r;
    const char start[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "1\r\na\r\n0\r\n";
    static const struct {
        int fields, value_len, status;
    } cases[] = {
        {4, 10, 0},   /* at the count limit */
        {5, 10, 431}, /* one field too many */
        {1, 60, 0},   /* "T0: " + 60 bytes: the field line at the limit exactly */
        {1, 61, 431}, /* one byte over the field limit */
        {4, 99, 431}, /* each field too large */
        {4, 40, 0},   /* 4 x 42 = 168 bytes of section */
        {0, 0, 0},    /* no trailers */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = sizeof(start) - 1;
        memcpy(in, start, n);
        for (int f = 0; f < cases[i].fields; f++) {
            n += (size_t)snprintf(in + n, sizeof(in) - n, "T%d: ", f);
            memset(in + n, 'v', (size_t)cases[i].value_len);
            n += (size_t)cases[i].value_len;
            memcpy(in + n, "\r\n", 2);
            n += 2;
        }
        memcpy(in + n, "\r\n", 2);
        n += 2;
        for (size_t step = 0; step < 3; step++) {
            lim.head = 400;
            run(in, n, step * 5, false, false, &lim, &r, false);
            if (r.status != cases[i].status)
                fail_msg("case %zu (step %zu): status %d, want %d", i, step * 5, r.status,
                         cases[i].status);
            result_free(&r);
        }
    }
    /* the whole section counts against the head limit, though each field fits */
    size_t n = sizeof(start) - 1;
    memcpy(in, start, n);
    for (int f = 0; f < 4; f++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "T%d: %050d\r\n", f, 0);
    memcpy(in + n, "\r\n", 2);
    lim.head = 150;
    run(in, n + 2, 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 431);
    lim.head = 250;
    run(in, n + 2, 0, false, false, &lim, &r, false);
    assert_int_equal(r.status, 0);
    result_free(&r);
}

static void test_hop_by_hop(void **state)
{
    result_t r;
    sst_h1_t h;
    sst_head_t *head = sst_head_new();
    const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Private, keep-alive\r\n"
                      "X-Private: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Public: 2\r\n\r\n";
    size_t used;
    (void)r;
    sst_h1_init(&h, false, &default_limits, NULL, NULL);
    h.head = head;
    assert_int_equal(sst_h1_feed(&h, in, sizeof(in) - 1, &used), SST_H1_HEAD);
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("x-private")));
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("Keep-Alive")));
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("te")));
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("Connection")));
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("Proxy-Connection")));
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("Upgrade")));
    assert_true(sst_h1_is_hop_by_hop(head, SST_STR_LIT("Trailer")));
    assert_false(sst_h1_is_hop_by_hop(head, SST_STR_LIT("X-Public")));
    assert_false(sst_h1_is_hop_by_hop(head, SST_STR_LIT("Host")));
    sst_head_free(head);
}

static const case_t response_cases[] = {
    {"plain", L("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"), 0, "ab"},
    {"empty reason", L("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), 0, ""},
    {"chunked", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"), 0,
     "ab"},
    {"chunk data not followed by CRLF",
     L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n"), 502, NULL},
    {"1xx before the answer",
     L("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
     0, "z"},
    {"bad status code", L("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"), 502, NULL},
    {"status below 100", L("HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n"), 502, NULL},
    {"garbage", L("HELLO\r\n\r\n"), 502, NULL},
    {"two Content-Length", L("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
     502, NULL},
    {"Content-Length with Transfer-Encoding",
     L("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: "
       "chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"),
     502, NULL},
    {"gzip transfer coding", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab"), 502, NULL},
    {"switching protocols", L("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"), 502, NULL},
    {"bare CR in a response field",
     L("HTTP/1.1 200 OK\r\nX: \rContent-Length: 5\r\nContent-Length: 0\r\n\r\n"), 502, NULL},
    {"bad chunk", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"),
     502, NULL},
    {"HTTP/2.0 status-line", L("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 502, NULL},
    {"204 carries no body", L("HTTP/1.1 204 No Content\r\n\r\n"), 0, ""},
    {"304 carries no body", L("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), 0, ""},
};

static void test_responses(void **state)
{
    for (size_t i = 0; i < sizeof(response_cases) / sizeof(response_cases[0]); i++) {
        const case_t *c = &response_cases[i];
        for (size_t step = 0; step < 4; step++) {
            result_t r;
            run(c->in, c->len, step, true, false, NULL, &r, false);
            result_free(&r);
            if (r.status != c->status)
                fail_msg("%s (step %zu): status %d, want %d", c->name, step, r.status, c->status);
            if (c->status == 0 && (r.messages != 1 || r.body_len != strlen(c->body) ||
                                   memcmp(r.body, c->body, r.body_len) != 0))
                fail_msg("%s (step %zu): %d messages, body \"%.*s\"", c->name, step, r.messages,
                         (int)r.body_len, r.body);
        }
    }
}

static void test_response_flood_and_eof(void **state)
{
    char flood[17 * 32 + 64] = "";
    result_t r;
    for (int i = 0; i < 17; i++)
        strcat(flood, "HTTP/1.1 100 Continue\r\n\r\n");
    strcat(flood, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    run(flood, strlen(flood), 0, true, false, NULL, &r, false);
    assert_int_equal(r.status, 502);

    const char closed[] = "HTTP/1.1 200 OK\r\n\r\nuntil close";
    run(closed, sizeof(closed) - 1, 0, true, false, NULL, &r, true);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.messages, 1);
    assert_int_equal(r.body_len, strlen("until close"));
    result_free(&r);

    const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    run(head, sizeof(head) - 1, 0, true, true, NULL, &r, false);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.messages, 1); /* a HEAD response ends after its head */
    assert_true(r.resp.no_body);
    assert_int_equal(r.resp.content_length, 100);
    result_free(&r);
}

/* The one reason-phrase table: own phrases, class names for the rest of 100-599, else Unknown. */
static void test_status_text(void **state)
{
    static const struct {
        unsigned status;
        const char *text;
    } cases[] = {
        {100, "Continue"},
        {200, "OK"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {403, "Forbidden"},
        {417, "Expectation Failed"},
        {431, "Request Header Fields Too Large"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
        {150, "Informational"},
        {299, "Success"},
        {399, "Redirection"},
        {418, "Client Error"},
        {599, "Server Error"},
        {99, "Unknown"},
        {600, "Unknown"},
        {0, "Unknown"},
        {4294967295u, "Unknown"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(sst_h1_status_text(cases[i].status), cases[i].text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_trailer_connection_close),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_trailer_limits),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_response_flood_and_eof),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
