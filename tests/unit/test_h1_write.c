/* h1_write.c without a loop: the request head sent to a backend and the response head sent to a
 * client, rebuilt from heads the real parser produced. Hostile inputs: hop-by-hop and
 * Connection-listed fields, forwarding fields from untrusted and trusted peers, Via chains,
 * HTTP/1.0 without Host, HEAD/204/304 framing, re-chunking, huge heads, and buffers exactly full
 * or one byte short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/h1_write.h"
#include "http/http1.h"

static const sst_h1_limits_t limits = {
    .request_line = 65536, .field = 65536, .head = 1 << 20, .headers = 1000, .body = 0};

typedef struct parsed_s {
    sst_head_t *head;
    sst_h1_request_t req;
    sst_h1_response_t resp;
} parsed_t;

/* Runs the real parser up to the end of the head and validates it. */
static void parse(const char *raw, bool response, bool head_request, parsed_t *out)
{
    sst_h1_t h;
    const char *reason = NULL;
    size_t used = 0;
    memset(out, 0, sizeof(*out));
    out->head = sst_head_new();
    assert_non_null(out->head);
    sst_h1_init(&h, response, &limits, NULL, NULL);
    h.head = out->head;
    h.head_request = head_request;
    assert_int_equal(sst_h1_feed(&h, raw, strlen(raw), &used), SST_H1_HEAD);
    int st = response ? sst_h1_check_response(&h, &out->resp, &reason)
                      : sst_h1_check_request(&h, &out->req, &reason);
    if (st != 0)
        fail_msg("%s: %s", raw, reason);
}

/* The writer's output for every buffer size around the exact length: the exact size fits, one
 * byte less (and any smaller size) gives 0, and the bound is never below the length. */
typedef size_t (*write_fn)(const void *in, char *buf, size_t size);

static size_t write_req(const void *in, char *buf, size_t size)
{
    return sst_h1_write_request(in, buf, size);
}

static size_t write_resp(const void *in, char *buf, size_t size)
{
    return sst_h1_write_response(in, buf, size);
}

static void check_sizes(write_fn fn, const void *in, size_t bound, const char *want,
                        const char *name)
{
    size_t want_len = strlen(want);
    char *buf = malloc(bound + 1);
    assert_non_null(buf);
    size_t n = fn(in, buf, bound);
    if (n != want_len || memcmp(buf, want, n) != 0)
        fail_msg("%s:\n got [%.*s]\nwant [%s]", name, (int)n, buf, want);
    char *exact = malloc(want_len + 1);
    assert_non_null(exact);
    assert_int_equal(fn(in, exact, want_len), want_len); /* exactly full */
    assert_memory_equal(exact, want, want_len);
    for (size_t size = 0; size < want_len; size++) /* one byte short, and every smaller size */
        if (fn(in, exact, size) != 0)
            fail_msg("%s: fits in %zu bytes, needs %zu", name, size, want_len);
    free(exact);
    free(buf);
}

/* ---- requests ------------------------------------------------------------------------------ */

typedef struct req_case_s {
    const char *name;
    const char *raw;
    const char *target; /* NULL: the request's own target */
    bool trusted;
    const char *default_host;
    const char *want;
} req_case_t;

#define FWD_U "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"

static const req_case_t req_cases[] = {
    {"plain GET", "GET /a?b=1 HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\n\r\n", NULL, false, NULL,
     "GET /a?b=1 HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\n" FWD_U
     "X-Forwarded-Host: ex.com\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"hop-by-hop and Connection-listed fields",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
     "X-Keep: 2\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n"
     "Proxy-Connection: keep-alive\r\nconnection: x-other\r\nX-OTHER: 3\r\n\r\n",
     NULL, false, NULL,
     "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: 2\r\n" FWD_U
     "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"forwarding fields from an untrusted peer",
     "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: https\r\n"
     "X-Forwarded-Host: evil\r\nForwarded: for=10.9.9.9\r\nx-forwarded-for: 10.8.8.8\r\n\r\n",
     NULL, false, NULL,
     "GET / HTTP/1.1\r\nHost: a\r\n" FWD_U "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"forwarding fields from a trusted proxy",
     "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: https\r\n"
     "X-Forwarded-Host: front.example\r\nForwarded: for=10.9.9.9\r\n\r\n",
     NULL, true, NULL,
     "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n"
     "X-Forwarded-Host: front.example\r\nForwarded: for=10.9.9.9\r\n"
     "X-Forwarded-For: 10.9.9.9, 192.0.2.7\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"trusted proxy without forwarding fields", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL, true,
     NULL,
     "GET / HTTP/1.1\r\nHost: a\r\n" FWD_U "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"Via chain", "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1)\r\n\r\n",
     NULL, false, NULL,
     "GET / HTTP/1.1\r\nHost: a\r\n" FWD_U
     "X-Forwarded-Host: a\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1), 1.1 sidestep\r\n\r\n"},
    {"HTTP/1.0 without Host: the backend's address", "GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n", NULL,
     false, "10.1.1.1:8080",
     "GET /x HTTP/1.1\r\nHost: 10.1.1.1:8080\r\nAccept: */*\r\n" FWD_U "Via: 1.0 sidestep\r\n\r\n"},
    {"HTTP/1.0 with Host", "GET /x HTTP/1.0\r\nHost: h10\r\n\r\n", NULL, false, "10.1.1.1:8080",
     "GET /x HTTP/1.1\r\nHost: h10\r\n" FWD_U "X-Forwarded-Host: h10\r\nVia: 1.0 sidestep\r\n\r\n"},
    {"absolute form: the authority is the host",
     "GET http://ex.com/p?q HTTP/1.1\r\nHost: other\r\n\r\n", "/p?q", false, NULL,
     "GET /p?q HTTP/1.1\r\nHost: ex.com\r\n" FWD_U
     "X-Forwarded-Host: ex.com\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NULL, false, NULL,
     "OPTIONS * HTTP/1.1\r\nHost: a\r\n" FWD_U "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"chunked body re-framed", "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
     NULL, false, NULL,
     "POST /u HTTP/1.1\r\nHost: a\r\n" FWD_U
     "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"Content-Length re-emitted, Expect answered here",
     "PUT /u HTTP/1.1\r\nHost: a\r\ncontent-length: 00012\r\nExpect: 100-continue\r\n\r\n", NULL,
     false, NULL,
     "PUT /u HTTP/1.1\r\nHost: a\r\n" FWD_U
     "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\nContent-Length: 12\r\n\r\n"},
    {"empty value kept", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", NULL, false, NULL,
     "GET / HTTP/1.1\r\nHost: a\r\nX-Empty: \r\n" FWD_U
     "X-Forwarded-Host: a\r\nVia: 1.1 sidestep\r\n\r\n"},
};

static void req_input(const req_case_t *c, const parsed_t *p, sst_h1w_request_t *in)
{
    *in = (sst_h1w_request_t){
        .info = &p->req,
        .head = p->head,
        .target = c->target != NULL ? sst_str_c(c->target) : p->req.target,
        .peer = SST_STR_LIT("192.0.2.7"),
        .peer_trusted = c->trusted,
        .proto = SST_STR_LIT("http"),
        .default_host = sst_str_c(c->default_host),
    };
}

static void test_request_cases(void **state)
{
    for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
        const req_case_t *c = &req_cases[i];
        parsed_t p;
        sst_h1w_request_t in;
        parse(c->raw, false, false, &p);
        req_input(c, &p, &in);
        check_sizes(write_req, &in, sst_h1_request_bound(&in), c->want, c->name);
        sst_head_free(p.head);
    }
}

/* Huge heads: many fields, the longest Host the parser accepts (255 bytes, written twice: Host
 * and X-Forwarded-Host), long trusted forwarding fields. The bound holds and the output is
 * whole. */
static void test_request_huge(void **state)
{
    size_t cap = 600000;
    char *raw = malloc(cap);
    assert_non_null(raw);
    size_t n = (size_t)snprintf(raw, cap, "POST /big HTTP/1.1\r\nHost: ");
    memset(raw + n, 'h', 255);
    n += 255;
    n += (size_t)snprintf(raw + n, cap - n, "\r\nX-Forwarded-For: ");
    memset(raw + n, '1', 20000);
    n += 20000;
    n += (size_t)snprintf(raw + n, cap - n, "\r\nVia: ");
    memset(raw + n, 'v', 20000);
    n += 20000;
    for (int i = 0; i < 900; i++)
        n += (size_t)snprintf(raw + n, cap - n, "\r\nX-Field-%03d: %0400d", i, i);
    n += (size_t)snprintf(raw + n, cap - n, "\r\nContent-Length: 3\r\n\r\n");
    assert_true(n < cap);

    parsed_t p;
    sst_h1w_request_t in;
    parse(raw, false, false, &p);
    req_case_t c = {.name = "huge", .trusted = true};
    req_input(&c, &p, &in);
    size_t bound = sst_h1_request_bound(&in);
    char *out = malloc(bound);
    assert_non_null(out);
    size_t len = sst_h1_write_request(&in, out, bound);
    assert_true(len > 255 * 2 + 20000 * 2 + 900 * 400);
    assert_true(len <= bound);
    assert_int_equal(sst_h1_write_request(&in, out, len), len);
    assert_int_equal(sst_h1_write_request(&in, out, len - 1), 0);
    /* the last field and the framing made it to the end */
    const char *tail = "Content-Length: 3\r\n\r\n";
    assert_memory_equal(out + len - strlen(tail), tail, strlen(tail));
    free(out);
    free(raw);
    sst_head_free(p.head);
}

/* ---- responses ----------------------------------------------------------------------------- */

typedef struct resp_case_s {
    const char *name;
    const char *raw;
    bool head_request;
    unsigned client_minor;
    sst_tail_t tail;
    sst_h1_frame_t frame;
    const char *want;
} resp_case_t;

static const resp_case_t resp_cases[] = {
    {"Content-Length kept", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n", false, 1,
     SST_TAIL_PLAIN, SST_FRAME_AS_IS,
     "HTTP/1.1 200 OK\r\nServer: x\r\nVia: 1.1 sidestep\r\nContent-Length: 5\r\n\r\n"},
    {"chunked to a 1.1 client", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 1,
     SST_TAIL_PLAIN, SST_FRAME_CHUNKED,
     "HTTP/1.1 200 OK\r\nVia: 1.1 sidestep\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"chunked to a 1.0 client: close-delimited",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 0, SST_TAIL_CLOSE,
     SST_FRAME_CLOSE, "HTTP/1.1 200 OK\r\nVia: 1.1 sidestep\r\nConnection: close\r\n\r\n"},
    {"close-delimited from a 1.0 backend, re-chunked", "HTTP/1.0 200 OK\r\nX-A: b\r\n\r\n", false,
     1, SST_TAIL_PLAIN, SST_FRAME_CHUNKED,
     "HTTP/1.1 200 OK\r\nX-A: b\r\nVia: 1.0 sidestep\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"204 carries no Content-Length", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false,
     1, SST_TAIL_PLAIN, SST_FRAME_AS_IS, "HTTP/1.1 204 No Content\r\nVia: 1.1 sidestep\r\n\r\n"},
    {"304 of a chunked resource keeps its framing",
     "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n", false, 1,
     SST_TAIL_PLAIN, SST_FRAME_AS_IS,
     "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nVia: 1.1 sidestep\r\n"
     "Transfer-Encoding: chunked\r\n\r\n"},
    {"HEAD with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, 1,
     SST_TAIL_PLAIN, SST_FRAME_AS_IS,
     "HTTP/1.1 200 OK\r\nVia: 1.1 sidestep\r\nContent-Length: 1000\r\n\r\n"},
    {"HEAD of a chunked resource, 1.1 client",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 1, SST_TAIL_PLAIN,
     SST_FRAME_AS_IS, "HTTP/1.1 200 OK\r\nVia: 1.1 sidestep\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"HEAD of a chunked resource, 1.0 client",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 0, SST_TAIL_KEEPALIVE10,
     SST_FRAME_AS_IS, "HTTP/1.1 200 OK\r\nVia: 1.1 sidestep\r\nConnection: keep-alive\r\n\r\n"},
    {"hop-by-hop and Connection-listed fields",
     "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\n"
     "Keep-Alive: timeout=5\r\nX-Public: 2\r\nUpgrade: h2\r\nContent-Length: 0\r\n\r\n",
     false, 1, SST_TAIL_PLAIN, SST_FRAME_AS_IS,
     "HTTP/1.1 200 OK\r\nX-Public: 2\r\nVia: 1.1 sidestep\r\nContent-Length: 0\r\n\r\n"},
    {"Via chain", "HTTP/1.1 200 OK\r\nVia: 1.1 cache-1, 1.1 cache-2\r\nContent-Length: 0\r\n\r\n",
     false, 1, SST_TAIL_PLAIN, SST_FRAME_AS_IS,
     "HTTP/1.1 200 OK\r\nVia: 1.1 cache-1, 1.1 cache-2, 1.1 sidestep\r\nContent-Length: 0\r\n\r\n"},
    {"reason phrase as sent", "HTTP/1.1 299 Quite  Odd: yes\r\nContent-Length: 0\r\n\r\n", false, 1,
     SST_TAIL_PLAIN, SST_FRAME_AS_IS,
     "HTTP/1.1 299 Quite  Odd: yes\r\nVia: 1.1 sidestep\r\nContent-Length: 0\r\n\r\n"},
    {"empty reason phrase", "HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", false, 1, SST_TAIL_CLOSE,
     SST_FRAME_AS_IS,
     "HTTP/1.1 503 \r\nVia: 1.1 sidestep\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
    {"1.0 client keep-alive", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false, 0,
     SST_TAIL_KEEPALIVE10, SST_FRAME_AS_IS,
     "HTTP/1.1 200 OK\r\nVia: 1.1 sidestep\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"},
};

static void test_response_cases(void **state)
{
    for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        const resp_case_t *c = &resp_cases[i];
        parsed_t p;
        parse(c->raw, true, c->head_request, &p);
        sst_h1w_response_t in = {
            .resp = &p.resp, .head = p.head, .client_minor = c->client_minor, .tail = c->tail};
        if (sst_h1_response_framing(&p.resp, c->client_minor) != c->frame)
            fail_msg("%s: framing %d, want %d", c->name,
                     (int)sst_h1_response_framing(&p.resp, c->client_minor), (int)c->frame);
        check_sizes(write_resp, &in, sst_h1_response_bound(&in), c->want, c->name);
        sst_head_free(p.head);
    }
}

static void test_response_huge(void **state)
{
    size_t cap = 400000;
    char *raw = malloc(cap);
    assert_non_null(raw);
    size_t n = (size_t)snprintf(raw, cap, "HTTP/1.1 200 ");
    memset(raw + n, 'r', 5000); /* a long reason phrase */
    n += 5000;
    for (int i = 0; i < 800; i++)
        n += (size_t)snprintf(raw + n, cap - n, "\r\nSet-Cookie: c%03d=%0400d", i, i);
    n += (size_t)snprintf(raw + n, cap - n, "\r\nVia: 1.1 a\r\nContent-Length: 7\r\n\r\n");
    parsed_t p;
    parse(raw, true, false, &p);
    sst_h1w_response_t in = {.resp = &p.resp, .head = p.head, .client_minor = 1};
    size_t bound = sst_h1_response_bound(&in);
    char *out = malloc(bound);
    assert_non_null(out);
    size_t len = sst_h1_write_response(&in, out, bound);
    assert_true(len > 5000 + 800 * 400 && len <= bound);
    assert_int_equal(sst_h1_write_response(&in, out, len - 1), 0);
    const char *tail = "Via: 1.1 a, 1.1 sidestep\r\nContent-Length: 7\r\n\r\n";
    assert_memory_equal(out + len - strlen(tail), tail, strlen(tail));
    free(out);
    free(raw);
    sst_head_free(p.head);
}

/* An out-of-range tail is refused, never read past the table. */
static void test_response_bad_tail(void **state)
{
    parsed_t p;
    char buf[256];
    parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, false, &p);
    sst_h1w_response_t in = {.resp = &p.resp, .head = p.head, .client_minor = 1, .tail = SST_TAILS};
    assert_int_equal(sst_h1_write_response(&in, buf, sizeof(buf)), 0);
    sst_head_free(p.head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_cases),     cmocka_unit_test(test_request_huge),
        cmocka_unit_test(test_response_cases),    cmocka_unit_test(test_response_huge),
        cmocka_unit_test(test_response_bad_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
