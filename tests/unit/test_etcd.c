/* etcd.c against a scripted HTTP server on 127.0.0.1 (tests/support/fake_http.h): requests as
 * sent, keep-alive reuse, endpoint failover (refused and unanswered connects), malformed,
 * oversized and truncated responses, watch streams split anywhere, cancellation and close from
 * inside callbacks. Every test has a watchdog and ends with uv_loop_close() == 0. The same client
 * against a real etcd is tests/integration/test_etcd_live.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake_http.h"
#include "fleet/etcd.h"
#include "sidestep/error.h"

#define WATCHDOG_MS 10000

typedef struct fx_s {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool expired;
    bool srv_started;
    fk_server_t srv;
    sst_etcd_t *e;
    int closed;
} fx_t;

static void on_watchdog(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = true;
}

#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, WATCHDOG_MS, 0);                               \
        while (!(cond) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
        if ((f)->expired)                                                                          \
            fail_msg("watchdog: %s", #cond);                                                       \
    } while (0)

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    ((fx_t *)arg)->closed++;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->e != NULL) {
        sst_etcd_close(f->e, on_closed, f);
        RUN_UNTIL(f, f->closed > 0);
    }
    if (f->srv_started)
        fk_stop(&f->srv);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, f->e != NULL ? 1 : 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void serve(fx_t *f, const fk_step_t *steps, size_t n)
{
    fk_start(&f->srv, &f->loop, steps, n);
    f->srv_started = true;
}

/* A port on 127.0.0.1 that was free a moment ago: connecting to it is refused. */
static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void client(fx_t *f, const uint16_t *ports, size_t n, const sst_etcd_opts_t *base)
{
    sst_addr_t eps[4];
    sst_etcd_opts_t o = base ? *base : (sst_etcd_opts_t){0};
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        char txt[32];
        snprintf(txt, sizeof(txt), "http://127.0.0.1:%u", ports[i]);
        assert_int_equal(sst_etcd_parse_endpoint(txt, strlen(txt), false, &eps[i]), 0);
    }
    o.endpoints = eps;
    o.n_endpoints = n;
    assert_int_equal(sst_etcd_new(&f->loop, &o, &f->e), 0);
}

/* ---- unary results ------------------------------------------------------------------------ */

typedef struct res_s {
    int calls;
    int status, grpc;
    char msg[SST_ETCD_MESSAGE_MAX];
    int64_t revision, lease, ttl;
    size_t n_kvs, n_ops;
    char key0[64], val0[64];
    bool succeeded;
    fx_t *close_from_cb; /* closes the client from inside the callback */
} res_t;

static void on_resp(void *arg, int status, const sst_etcd_resp_t *r)
{
    res_t *res = arg;
    assert_non_null(r);
    assert_non_null(r->message);
    res->calls++;
    res->status = status;
    res->grpc = r->grpc_code;
    snprintf(res->msg, sizeof(res->msg), "%s", r->message);
    res->revision = r->revision;
    res->n_kvs = r->n_kvs;
    res->n_ops = r->n_ops;
    res->succeeded = r->succeeded;
    res->lease = r->lease_id;
    res->ttl = r->ttl;
    if (r->n_kvs > 0) {
        snprintf(res->key0, sizeof(res->key0), "%s", r->kvs[0].key.base);
        snprintf(res->val0, sizeof(res->val0), "%s", r->kvs[0].value.base);
    }
    if (res->close_from_cb != NULL && res->close_from_cb->e != NULL) {
        sst_etcd_close(res->close_from_cb->e, on_closed, res->close_from_cb);
        res->close_from_cb->e = NULL;
    }
}

#define RANGE_BODY                                                                                 \
    "{\"header\":{\"revision\":\"42\"},\"kvs\":[{\"key\":\"L2EveA==\",\"value\":\"dg==\","         \
    "\"mod_revision\":\"40\"}],\"count\":\"1\"}"
#define PUT_BODY "{\"header\":{\"revision\":\"43\"}}"
#define TXN_BODY                                                                                   \
    "{\"header\":{\"revision\":\"44\"},\"succeeded\":true,\"responses\":[{\"response_put\":{"      \
    "\"header\":{\"revision\":\"44\"}}}]}"
#define GRANT_BODY "{\"header\":{\"revision\":\"44\"},\"ID\":\"694\",\"TTL\":\"10\"}"

static const sst_etcd_range_t range_a = {.key = SST_STR_LIT("/a/"), .prefix = true};

static void test_unary_roundtrip(void **state)
{
    fx_t *f = *state;
    static const fk_step_t steps[] = {
        {.act = FK_ANSWER, .body = RANGE_BODY},
        {.act = FK_ANSWER, .body = PUT_BODY},
        {.act = FK_ANSWER, .body = TXN_BODY},
        {.act = FK_ANSWER, .body = GRANT_BODY},
    };
    res_t r = {0};
    serve(f, steps, 4);
    client(f, &f->srv.port, 1, NULL);

    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    assert_int_equal(r.calls, 0); /* never from inside the call */
    RUN_UNTIL(f, r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 42);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.key0, "/a/x");
    assert_string_equal(r.val0, "v");
    assert_string_equal(f->srv.paths[0], "/v3/kv/range");
    char host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%u", f->srv.port);
    assert_string_equal(f->srv.hosts[0], host);
    assert_string_equal(f->srv.bodies[0], "{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\"}");

    sst_etcd_put_t put = {.key = SST_STR_LIT("/a/x"), .value = SST_STR_LIT("v"), .lease = 694};
    assert_int_equal(sst_etcd_put(f->e, &put, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 2);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 43);
    assert_string_equal(f->srv.paths[1], "/v3/kv/put");
    assert_string_equal(f->srv.bodies[1],
                        "{\"key\":\"L2EveA==\",\"value\":\"dg==\",\"lease\":\"694\"}");

    sst_etcd_op_t op = {.type = SST_ETCD_OP_PUT, .put = put};
    sst_etcd_compare_t cmp = {.key = SST_STR_LIT("/a/"),
                              .prefix = true,
                              .target = SST_ETCD_CMP_MOD,
                              .result = SST_ETCD_CMP_LESS,
                              .number = 43};
    sst_etcd_txn_t txn = {&cmp, 1, &op, 1, NULL, 0};
    assert_int_equal(sst_etcd_txn(f->e, &txn, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 3);
    assert_int_equal(r.status, 0);
    assert_true(r.succeeded);
    assert_int_equal(r.n_ops, 1);
    assert_string_equal(f->srv.paths[2], "/v3/kv/txn");

    assert_int_equal(sst_etcd_lease_grant(f->e, 10, 0, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 4);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.lease, 694);
    assert_int_equal(r.ttl, 10);
    assert_string_equal(f->srv.paths[3], "/v3/lease/grant");
    assert_int_equal(f->srv.accepted, 1); /* one keep-alive connection for all four */
}

/* ---- bad responses ------------------------------------------------------------------------ */

typedef struct bad_case_s {
    const char *name;
    fk_step_t step;
    int status;
    const char *msg;
} bad_case_t;

static void test_bad_responses(void **state)
{
    fx_t *f = *state;
    static char big_chunked[8192];
    char *filler = malloc(5001);
    assert_non_null(filler);
    memset(filler, 'x', 5000);
    filler[5000] = 0;
    const char *chunks[] = {filler};
    fk_chunked(big_chunked, sizeof(big_chunked), chunks, 1, true);
    free(filler);

    const bad_case_t cases[] = {
        {"not json",
         {.act = FK_ANSWER_CLOSE, .raw = ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")},
         SST_EPROTO,
         "malformed etcd response"},
        {"not http",
         {.act = FK_ANSWER_CLOSE, .raw = ("garbage\r\n\r\n")},
         SST_EPROTO,
         "malformed HTTP"},
        {"bad chunk",
         {.act = FK_ANSWER_CLOSE,
          .raw = ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")},
         SST_EPROTO,
         "malformed HTTP"},
        {"two lengths",
         {.act = FK_ANSWER_CLOSE,
          .raw = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")},
         SST_EPROTO,
         "malformed HTTP"},
        {"wrong type",
         {.act = FK_ANSWER, .body = "{\"header\":{\"revision\":true}}"},
         SST_EPROTO,
         "revision"},
        {"bad base64",
         {.act = FK_ANSWER, .body = "{\"kvs\":[{\"key\":\"@@@@\"}]}"},
         SST_EPROTO,
         "invalid base64"},
        {"declared too large",
         {.act = FK_ANSWER_CLOSE, .raw = ("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")},
         SST_E2BIG,
         "larger than 4096"},
        {"streamed too large",
         {.act = FK_ANSWER_CLOSE, .raw = big_chunked},
         SST_E2BIG,
         "larger than 4096"},
        {"closed unanswered", {.act = FK_CLOSE}, SST_ECONNRESET, "closed the connection"},
        {"cut short",
         {.act = FK_ANSWER_CLOSE, .raw = ("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"hea")},
         SST_ECONNRESET,
         "closed the connection"},
        {"unanswered", {.act = FK_SILENT}, SST_ETIMEDOUT, "no answer from etcd"},
        {"etcd error",
         {.act = FK_ANSWER,
          .status = 400,
          .body = "{\"error\":\"x\",\"message\":\"etcdserver: duplicate key given in txn request\","
                  "\"code\":3}"},
         SST_EINVAL,
         "etcdserver: duplicate key given in txn request"},
        {"no content",
         {.act = FK_ANSWER, .raw = ("HTTP/1.1 204 No Content\r\n\r\n")},
         SST_EPROTO,
         "HTTP 204"},
        {"502 html",
         {.act = FK_ANSWER, .status = 502, .body = "<html>bad gateway</html>"},
         SST_EPROTO,
         "HTTP 502"},
        {"close-delimited ok",
         {.act = FK_ANSWER_CLOSE,
          .raw = ("HTTP/1.0 200 OK\r\n\r\n{\"header\":{\"revision\":\"7\"}}")},
         0,
         ""},
    };
    sst_etcd_opts_t o = {.max_message = 4096, .request_timeout_ms = 300};
    serve(f, NULL, 0);
    client(f, &f->srv.port, 1, &o);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        res_t r = {0};
        fk_script(&f->srv, &cases[i].step, 1);
        assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
        RUN_UNTIL(f, r.calls == 1);
        if (r.status != cases[i].status || strstr(r.msg, cases[i].msg) == NULL)
            fail_msg("%s: status %d (want %d), message \"%s\"", cases[i].name, r.status,
                     cases[i].status, r.msg);
        if (cases[i].status == SST_EINVAL)
            assert_int_equal(r.grpc, 3);
        if (cases[i].status == 0)
            assert_int_equal(r.revision, 7);
    }
}

/* ---- endpoints ---------------------------------------------------------------------------- */

static void test_failover_refused(void **state)
{
    fx_t *f = *state;
    static const fk_step_t steps[] = {{.act = FK_ANSWER, .body = RANGE_BODY},
                                      {.act = FK_ANSWER, .body = RANGE_BODY}};
    res_t r = {0};
    serve(f, steps, 2);
    uint16_t ports[2] = {dead_port(), f->srv.port};
    client(f, ports, 2, NULL);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 42);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 2);
    assert_int_equal(r.status, 0);
    assert_int_equal(f->srv.accepted, 1);
}

/* A listener whose accept queue is full: the kernel drops further SYNs, so a connect to it
 * neither succeeds nor fails until the dial timeout. */
static int blackhole(uint16_t *port, int fillers[3])
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 0), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fillers[i], (struct sockaddr *)&a, sizeof(a));
    }
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); /* let what can complete fill it */
    return fd;
}

static void test_failover_dial_timeout(void **state)
{
    fx_t *f = *state;
    static const fk_step_t steps[] = {{.act = FK_ANSWER, .body = RANGE_BODY}};
    sst_etcd_opts_t o = {.dial_timeout_ms = 200, .request_timeout_ms = 5000};
    int fillers[3];
    res_t r = {0};
    uint16_t ports[2];
    serve(f, steps, 1);
    int bh = blackhole(&ports[0], fillers);
    ports[1] = f->srv.port;
    client(f, ports, 2, &o);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_true(uv_now(&f->loop) - t0 >= 200); /* the first endpoint was given its dial time */
    assert_int_equal(f->srv.n_req, 1);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(bh);
}

static void test_all_endpoints_dead(void **state)
{
    fx_t *f = *state;
    res_t r = {0};
    uint16_t ports[2] = {dead_port(), dead_port()};
    char second[32];
    client(f, ports, 2, NULL);
    snprintf(second, sizeof(second), "127.0.0.1:%u", ports[1]);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    assert_int_equal(r.calls, 0);
    RUN_UNTIL(f, r.calls == 1);
    assert_int_equal(r.status, SST_ECONNREFUSED);
    assert_non_null(strstr(r.msg, second));
    assert_int_equal(r.grpc, 0);
}

/* A pooled connection closed by the server as it is reused: an idempotent call is sent again on
 * a fresh connection; a put is not (its outcome is unknown). */
static void test_reuse_retry(void **state)
{
    fx_t *f = *state;
    static const fk_step_t steps[] = {
        {.act = FK_ANSWER, .body = RANGE_BODY},
        {.act = FK_CLOSE},
        {.act = FK_ANSWER, .body = RANGE_BODY},
        {.act = FK_ANSWER, .body = PUT_BODY},
        {.act = FK_CLOSE},
    };
    sst_etcd_put_t put = {.key = SST_STR_LIT("k"), .value = SST_STR_LIT("v")};
    res_t r = {0};
    serve(f, steps, 5);
    client(f, &f->srv.port, 1, NULL);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 1);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 2);
    assert_int_equal(r.status, 0);
    assert_int_equal(f->srv.n_req, 3);
    assert_int_equal(f->srv.accepted, 2);

    assert_int_equal(sst_etcd_put(f->e, &put, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 3);
    assert_int_equal(r.status, 0);
    assert_int_equal(sst_etcd_put(f->e, &put, on_resp, &r), 0);
    RUN_UNTIL(f, r.calls == 4);
    assert_int_equal(r.status, SST_ECONNRESET);
    assert_int_equal(f->srv.n_req, 5); /* not sent again */
}

/* ---- watch -------------------------------------------------------------------------------- */

typedef struct wrec_s {
    int created, progress, ends, msgs;
    int n_events;
    int64_t revs[32];
    char keys[32][16];
    int types[32];
    bool prev[32];
    int64_t last_seen; /* last_revision of the latest message */
    int64_t created_last;
    int end_err, end_grpc;
    int64_t end_compact, end_last;
    char end_msg[SST_ETCD_MESSAGE_MAX];
    sst_etcd_watch_t *w;
    int cancel_after_msgs; /* cancel from inside the callback after this many EVENTS */
} wrec_t;

static void on_watch(void *arg, const sst_etcd_watch_msg_t *m)
{
    wrec_t *rec = arg;
    assert_int_equal(rec->ends, 0); /* END is the last message */
    assert_non_null(m->message);
    rec->last_seen = m->last_revision;
    switch (m->kind) {
    case SST_ETCD_WATCH_CREATED:
        rec->created++;
        rec->created_last = m->last_revision;
        break;
    case SST_ETCD_WATCH_PROGRESS:
        rec->progress++;
        break;
    case SST_ETCD_WATCH_EVENTS:
        rec->msgs++;
        for (size_t i = 0; i < m->n_events && rec->n_events < 32; i++, rec->n_events++) {
            const sst_etcd_event_t *ev = &m->events[i];
            rec->revs[rec->n_events] = ev->kv.mod_revision;
            rec->types[rec->n_events] = ev->type;
            rec->prev[rec->n_events] = ev->has_prev;
            snprintf(rec->keys[rec->n_events], sizeof(rec->keys[0]), "%s", ev->kv.key.base);
        }
        if (rec->cancel_after_msgs > 0 && rec->msgs == rec->cancel_after_msgs) {
            sst_etcd_watch_cancel(rec->w);
            sst_etcd_watch_cancel(rec->w); /* idempotent */
        }
        break;
    case SST_ETCD_WATCH_END:
        rec->ends++;
        rec->end_err = m->err;
        rec->end_grpc = m->grpc_code;
        rec->end_compact = m->compact_revision;
        rec->end_last = m->last_revision;
        snprintf(rec->end_msg, sizeof(rec->end_msg), "%s", m->message);
        break;
    }
}

#define W_CREATED(rev) "{\"result\":{\"header\":{\"revision\":\"" rev "\"},\"created\":true}}\n"
#define W_PUT(rev, key64)                                                                          \
    "{\"result\":{\"header\":{\"revision\":\"" rev "\"},\"events\":[{\"kv\":{\"key\":\"" key64     \
    "\",\"mod_revision\":\"" rev "\",\"value\":\"dg==\"}}]}}\n"
#define W_PROGRESS(rev) "{\"result\":{\"header\":{\"revision\":\"" rev "\"}}}\n"

static const sst_etcd_watch_opts_t watch_a = {.key = SST_STR_LIT("/a/"),
                                              .prefix = true,
                                              .start_revision = 11,
                                              .progress_notify = true,
                                              .prev_kv = true};

static void test_watch_stream(void **state)
{
    fx_t *f = *state;
    static char raw[4096];
    /* two messages in one chunk, one message across two chunks, written 7 bytes at a time */
    const char *chunks[] = {
        W_CREATED("10"),
        W_PUT("11", "L2EvYQ==") "{\"result\":{\"header\":{\"revision\":\"12\"},\"events\":[{\"kv\"",
        ":{\"key\":\"L2EvYg==\",\"mod_revision\":\"12\"}},{\"kv\":{\"key\":\"L2EvYw==\","
        "\"mod_revision\":\"12\"}}]}}\n" W_PROGRESS("15"),
        "{\"result\":{\"header\":{\"revision\":\"16\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{"
        "\"key\":\"L2EvYQ==\",\"mod_revision\":\"16\"},\"prev_kv\":{\"key\":\"L2EvYQ==\","
        "\"value\":\"dg==\",\"mod_revision\":\"11\"}}]}}",
    };
    fk_step_t step = {.act = FK_ANSWER_CLOSE, .raw = raw, .piece = 7};
    wrec_t rec = {0};
    fk_chunked(raw, sizeof(raw), chunks, 4, false);
    serve(f, &step, 1);
    client(f, &f->srv.port, 1, NULL);
    assert_int_equal(sst_etcd_watch(f->e, &watch_a, on_watch, &rec, &rec.w), 0);
    assert_int_equal(rec.created, 0);
    RUN_UNTIL(f, rec.ends == 1);
    assert_string_equal(f->srv.paths[0], "/v3/watch");
    assert_string_equal(f->srv.bodies[0],
                        "{\"create_request\":{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\","
                        "\"start_revision\":\"11\",\"progress_notify\":true,\"prev_kv\":true}}");
    assert_int_equal(rec.created, 1);
    assert_int_equal(rec.created_last, 10); /* start_revision - 1 */
    assert_int_equal(rec.progress, 1);
    assert_int_equal(rec.n_events, 4);
    static const int64_t revs[] = {11, 12, 12, 16};
    static const char *const keys[] = {"/a/a", "/a/b", "/a/c", "/a/a"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rec.revs[i], revs[i]);
        assert_string_equal(rec.keys[i], keys[i]);
    }
    assert_int_equal(rec.types[3], SST_ETCD_EVENT_DELETE);
    assert_true(rec.prev[3]);
    assert_false(rec.prev[0]);
    /* the stream was cut: the caller learns it and where to resume */
    assert_int_equal(rec.end_err, SST_ECONNRESET);
    assert_int_equal(rec.end_last, 16);
    assert_non_null(strstr(rec.end_msg, "lost"));
}

typedef struct wbad_s {
    const char *name;
    const char *chunks[3];
    size_t n_chunks;
    bool last;        /* end the chunked body */
    const char *json; /* or a JSON error answer with `status` */
    unsigned status;
    fk_act_t act; /* FK_SILENT: no answer at all */
    int err;
    const char *msg;
    int events; /* delivered before the END */
    int64_t compact;
} wbad_t;

static void test_watch_errors(void **state)
{
    fx_t *f = *state;
    char *big = malloc(6000);
    assert_non_null(big);
    int n = snprintf(big, 6000,
                     "{\"result\":{\"header\":{\"revision\":\"11\"},\"events\":[{\"kv\":"
                     "{\"key\":\"YQ==\",\"value\":\"");
    memset(big + n, 'A', 5000);
    snprintf(big + n + 5000, 6000 - (size_t)n - 5000, "\"}}]}}\n");
    const wbad_t cases[] = {
        {.name = "garbage",
         .chunks = {W_CREATED("10"), "{\"result\":{x"},
         .n_chunks = 2,
         .err = SST_EPROTO,
         .msg = "malformed watch stream"},
        {.name = "not json",
         .chunks = {"<html>"},
         .n_chunks = 1,
         .err = SST_EPROTO,
         .msg = "malformed watch"},
        {.name = "oversized",
         .chunks = {W_CREATED("10"), big},
         .n_chunks = 2,
         .err = SST_E2BIG,
         .msg = "larger than 4096"},
        {.name = "compacted",
         .chunks = {W_CREATED("10"), "{\"result\":{\"header\":{},\"canceled\":true,"
                                     "\"compact_revision\":\"9\"}}"},
         .n_chunks = 2,
         .err = SST_ERANGE,
         .msg = "compacted",
         .compact = 9},
        {.name = "before creation",
         .chunks = {W_PUT("11", "YQ==")},
         .n_chunks = 1,
         .err = SST_EPROTO,
         .msg = "before the creation"},
        {.name = "backwards",
         .chunks = {W_CREATED("10"), W_PUT("12", "YQ==") W_PUT("11", "YQ==")},
         .n_chunks = 2,
         .err = SST_EPROTO,
         .msg = "event revision 11",
         .events = 1},
        {.name = "replayed",
         .chunks = {W_CREATED("10"), W_PUT("10", "YQ==")},
         .n_chunks = 2,
         .err = SST_EPROTO,
         .msg = "event revision 10"},
        {.name = "second creation",
         .chunks = {W_CREATED("10"), W_CREATED("10")},
         .n_chunks = 2,
         .err = SST_EPROTO,
         .msg = "second creation"},
        {.name = "stream error",
         .chunks = {W_CREATED("10"),
                    "{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}"},
         .n_chunks = 2,
         .err = SST_EAGAIN,
         .msg = "no leader"},
        {.name = "stream ended",
         .chunks = {W_CREATED("10"), W_PUT("11", "YQ==")},
         .n_chunks = 2,
         .last = true,
         .err = SST_ECONNRESET,
         .msg = "ended the watch stream",
         .events = 1},
        {.name = "refused",
         .json = "{\"error\":\"bad\",\"message\":\"bad\",\"code\":2}",
         .status = 500,
         .err = SST_EIO,
         .msg = "bad"},
        {.name = "unconfirmed", .act = FK_SILENT, .err = SST_ETIMEDOUT, .msg = "did not confirm"},
    };
    sst_etcd_opts_t o = {.max_message = 4096, .request_timeout_ms = 300};
    static char raw[16384];
    serve(f, NULL, 0);
    client(f, &f->srv.port, 1, &o);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const wbad_t *t = &cases[i];
        fk_step_t step = {.act = t->act, .status = t->status, .body = t->json};
        wrec_t rec = {0};
        if (t->json == NULL && t->act == FK_ANSWER) {
            fk_chunked(raw, sizeof(raw), t->chunks, t->n_chunks, t->last);
            step.raw = raw;
            step.piece = 13;
        }
        fk_script(&f->srv, &step, 1);
        assert_int_equal(sst_etcd_watch(f->e, &watch_a, on_watch, &rec, &rec.w), 0);
        RUN_UNTIL(f, rec.ends == 1);
        if (rec.end_err != t->err || strstr(rec.end_msg, t->msg) == NULL ||
            rec.n_events != t->events || rec.end_compact != t->compact)
            fail_msg("%s: err %d (want %d), \"%s\", %d events, compact %lld", t->name, rec.end_err,
                     t->err, rec.end_msg, rec.n_events, (long long)rec.end_compact);
    }
    free(big);
}

/* ---- cancellation and close --------------------------------------------------------------- */

static void test_cancel_from_callback(void **state)
{
    fx_t *f = *state;
    static char raw[2048];
    const char *chunks[] = {W_CREATED("10") W_PUT("11", "YQ==") W_PUT("12", "Yg==")
                                W_PUT("13", "Yw==")};
    fk_step_t step = {.act = FK_ANSWER, .raw = raw};
    wrec_t rec = {.cancel_after_msgs = 1};
    fk_chunked(raw, sizeof(raw), chunks, 1, false);
    serve(f, &step, 1);
    client(f, &f->srv.port, 1, NULL);
    assert_int_equal(sst_etcd_watch(f->e, &watch_a, on_watch, &rec, &rec.w), 0);
    RUN_UNTIL(f, rec.ends == 1);
    assert_int_equal(rec.n_events, 1); /* 12 and 13 arrived in the same read, never delivered */
    assert_int_equal(rec.end_err, SST_ECANCELED);
    assert_int_equal(rec.end_last, 11);
}

static void test_close_cancels_all(void **state)
{
    fx_t *f = *state;
    static char raw[512];
    const char *chunks[] = {W_CREATED("10")};
    fk_step_t steps[2] = {{.act = FK_ANSWER, .raw = raw}, {.act = FK_SILENT}};
    wrec_t rec = {0};
    res_t r = {0}, r2 = {0};
    fk_chunked(raw, sizeof(raw), chunks, 1, false);
    serve(f, steps, 2);
    client(f, &f->srv.port, 1, NULL);
    assert_int_equal(sst_etcd_watch(f->e, &watch_a, on_watch, &rec, &rec.w), 0);
    RUN_UNTIL(f, rec.created == 1);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r), 0);
    RUN_UNTIL(f, f->srv.n_req == 2);
    sst_etcd_close(f->e, on_closed, f);
    /* until the loop runs, calls are refused and nothing was delivered */
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r2), SST_ECANCELED);
    assert_int_equal(r.calls + rec.ends + f->closed, 0);
    f->e = NULL;
    RUN_UNTIL(f, f->closed == 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, SST_ECANCELED);
    assert_int_equal(rec.ends, 1);
    assert_int_equal(rec.end_err, SST_ECANCELED);
    assert_int_equal(r2.calls, 0);
    f->closed = 0; /* closed here, not by teardown */
}

static void test_close_from_callback(void **state)
{
    fx_t *f = *state;
    static const fk_step_t steps[] = {{.act = FK_ANSWER, .body = RANGE_BODY}, {.act = FK_SILENT}};
    res_t r1 = {.close_from_cb = f}, r2 = {.close_from_cb = f};
    serve(f, steps, 2);
    client(f, &f->srv.port, 1, NULL);
    /* two connections: whichever call is answered closes the client while the other waits */
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r1), 0);
    assert_int_equal(sst_etcd_range(f->e, &range_a, on_resp, &r2), 0);
    RUN_UNTIL(f, f->closed == 1);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r1.status + r2.status, SST_ECANCELED); /* one 0, one cancelled */
    assert_null(f->e);
    f->closed = 0; /* closed here, not by teardown */
}

static void test_api_checks(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *url;
        int rc;
        const char *text;
    } urls[] = {
        {"http://127.0.0.1:2379", 0, "127.0.0.1:2379"},
        {"http://127.0.0.1:2379/", 0, "127.0.0.1:2379"},
        {"127.0.0.1:2379", 0, "127.0.0.1:2379"},
        {"http://[::1]:2379", 0, "[::1]:2379"},
        {"https://127.0.0.1:2379", SST_EINVAL, NULL},
        {"http://127.0.0.1:2379/v3", SST_EINVAL, NULL},
        {"http://", SST_EINVAL, NULL},
        {"http://127.0.0.1:0", SST_EINVAL, NULL},
        {"http://127.0.0.1", SST_EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        sst_addr_t a;
        int rc = sst_etcd_parse_endpoint(urls[i].url, strlen(urls[i].url), false, &a);
        if (rc != urls[i].rc)
            fail_msg("%s: %d", urls[i].url, rc);
        if (rc == 0)
            assert_string_equal(a.text, urls[i].text);
    }
    sst_addr_t named;
    sst_etcd_t *e = NULL;
    assert_int_equal(sst_etcd_parse_endpoint("http://etcd.invalid:2379", 24, false, &named), 0);
    sst_etcd_opts_t o = {.endpoints = &named, .n_endpoints = 1};
    assert_int_equal(sst_etcd_new(&f->loop, &o, &e), SST_EINVAL); /* never resolved on the loop */
    o.n_endpoints = 0;
    assert_int_equal(sst_etcd_new(&f->loop, &o, &e), SST_EINVAL);
    assert_null(e);

    uint16_t port = dead_port();
    res_t r = {0};
    sst_etcd_watch_t *w = NULL;
    client(f, &port, 1, NULL);
    sst_etcd_range_t empty = {.limit = 1};
    assert_int_equal(sst_etcd_range(f->e, &empty, on_resp, &r), SST_EINVAL);
    assert_int_equal(sst_etcd_range(f->e, &range_a, NULL, &r), SST_EINVAL);
    assert_int_equal(sst_etcd_range(NULL, &range_a, on_resp, &r), SST_EINVAL);
    assert_int_equal(sst_etcd_lease_keepalive(f->e, 0, on_resp, &r), SST_EINVAL);
    assert_int_equal(sst_etcd_watch(f->e, &watch_a, on_watch, &r, NULL), SST_EINVAL);
    assert_int_equal(sst_etcd_watch(f->e, NULL, on_watch, &r, &w), SST_EINVAL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_dial_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_endpoints_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
