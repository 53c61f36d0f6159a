/* upstream.c against a fake owner (a callback table that records what it is told) and a
 * scripted backend on a loopback socket, in one uv_loop_t. The test includes upstream.c to see
 * the connection's state; pool.c, the transport and the buffers are the real ones. Covers each
 * failure phase, the reuse decision (pooled or closed), back-pressure both ways, the idle
 * pool, and the state transitions. Teardown asserts uv_loop_close() == 0. */
/* accept4 and memmem are GNU extensions hidden by strict _POSIX_C_SOURCE. */
#define _GNU_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/upstream.c"

/* ---- the scripted backend ------------------------------------------------------------------ */

typedef enum action_e {
    ANSWER = 0, /* send `answer` for each request head */
    CLOSE,      /* close (FIN) once a request head arrived */
    RESET,      /* close with RST once a request head arrived */
    SILENT,     /* read and say nothing */
} action_t;

typedef struct backend_s {
    int lfd, fd;
    uint16_t port;
    action_t action;
    const char *answer;
    bool reading; /* false: the backend reads nothing (its receive buffer fills) */
    char in[1 << 16];
    size_t in_len;
    int heads; /* request heads seen */
    size_t discarded;
    char log[512]; /* the first bytes read, as they came */
    size_t log_len;
} backend_t;

static void backend_open(backend_t *b)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(b, 0, sizeof(*b));
    b->fd = -1;
    b->reading = true;
    b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(b->lfd >= 0);
    int small = 4096; /* inherited by the accepted socket: the request side fills up fast */
    setsockopt(b->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(bind(b->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(b->lfd, 8), 0);
    assert_int_equal(getsockname(b->lfd, (struct sockaddr *)&a, &len), 0);
    b->port = ntohs(a.sin_port);
}

static void backend_drop(backend_t *b, bool reset)
{
    if (b->fd < 0)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(b->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(b->fd);
    b->fd = -1;
}

static void backend_close(backend_t *b)
{
    backend_drop(b, false);
    if (b->lfd >= 0)
        close(b->lfd);
    b->lfd = -1;
}

static void backend_send(backend_t *b, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(b->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
            continue;
        }
        assert_true(n > 0);
        s += n;
        len -= (size_t)n;
    }
}

/* One step: accept, read, act on each complete request head. Request bodies are read and
 * dropped (counted in `discarded`). */
static void backend_step(backend_t *b)
{
    if (b->fd < 0 && b->lfd >= 0) {
        b->fd = accept4(b->lfd, NULL, NULL, SOCK_NONBLOCK);
        if (b->fd < 0)
            return;
    }
    if (b->fd < 0 || !b->reading)
        return;
    for (;;) {
        char *at = b->in + b->in_len;
        size_t room = sizeof(b->in) - b->in_len;
        if (room == 0) { /* a body: drop what is not a head */
            b->discarded += b->in_len;
            b->in_len = 0;
            continue;
        }
        ssize_t n = recv(b->fd, at, room, 0);
        if (n <= 0)
            break;
        size_t keep =
            sizeof(b->log) - b->log_len < (size_t)n ? sizeof(b->log) - b->log_len : (size_t)n;
        memcpy(b->log + b->log_len, at, keep);
        b->log_len += keep;
        b->in_len += (size_t)n;
    }
    char *end;
    while ((end = memmem(b->in, b->in_len, "\r\n\r\n", 4)) != NULL) {
        size_t used = (size_t)(end + 4 - b->in);
        memmove(b->in, b->in + used, b->in_len - used);
        b->in_len -= used;
        b->heads++;
        switch (b->action) {
        case ANSWER:
            backend_send(b, b->answer, strlen(b->answer));
            break;
        case CLOSE:
            backend_drop(b, false);
            return;
        case RESET:
            backend_drop(b, true);
            return;
        case SILENT:
            break;
        }
    }
}

/* ---- the fake owner ------------------------------------------------------------------------ */

typedef struct owner_s {
    sst_upstream_t *u;
    int ready, heads, bodies, flushes, done, fails, drained, try_timeouts;
    bool abandon_on_try; /* on_try_timeout gives the attempt up, as a repeatable request does */
    uint64_t try_at;     /* uv_now of the last on_try_timeout */
    sst_up_state_t abandoned_state; /* the connection's state right after giving it up */
    unsigned status;
    sst_fail_phase_t phase;
    sst_m_upfail_t kind;
    const char *why;
    char body[1 << 16];
    size_t body_len, body_total;
    bool pause_on_flush;
    bool release_on_done;
    /* the connection's state seen inside the callbacks (it may be freed soon after) */
    sst_up_state_t released_state, failed_state;
} owner_t;

static void own_ready(void *o)
{
    ((owner_t *)o)->ready++;
}

static int own_head(void *o, const sst_h1_response_t *resp, const sst_head_t *head)
{
    owner_t *w = o;
    w->heads++;
    w->status = resp->status;
    return 0;
}

static void own_body(void *o, sst_chunk_t *chunk, const char *at, size_t len)
{
    owner_t *w = o;
    assert_true(at >= chunk->data && at + len <= chunk->data + chunk->size);
    if (w->body_len + len <= sizeof(w->body)) {
        memcpy(w->body + w->body_len, at, len);
        w->body_len += len;
    }
    w->body_total += len;
    w->bodies++;
}

static void own_flush(void *o)
{
    owner_t *w = o;
    w->flushes++;
    if (w->pause_on_flush)
        sst__upstream_pause(w->u);
}

static void own_done(void *o)
{
    owner_t *w = o;
    w->done++;
    if (w->release_on_done) {
        sst_upstream_t *u = w->u;
        w->u = NULL;
        sst__upstream_release(u);
        w->released_state = u->state;
    }
}

static void own_fail(void *o, sst_fail_phase_t phase, sst_m_upfail_t kind, const char *why)
{
    owner_t *w = o;
    w->fails++;
    w->phase = phase;
    w->kind = kind;
    w->why = why;
    w->failed_state = w->u->state;
    w->u = NULL; /* detached and closing */
}

static void own_drained(void *o)
{
    ((owner_t *)o)->drained++;
}

static void own_try_timeout(void *o)
{
    owner_t *w = o;
    w->try_timeouts++;
    w->try_at = uv_now(&w->u->w->loop);
    if (w->abandon_on_try) {
        sst_upstream_t *u = w->u;
        w->u = NULL;
        sst__upstream_abort(u, SST_M_UP_TRY_TIMEOUT);
        w->abandoned_state = u->state; /* freed once the loop runs the close callbacks */
    }
}

static const sst__upstream_cb_t owner_cb = {
    .on_ready = own_ready,
    .on_head = own_head,
    .on_body = own_body,
    .on_flush = own_flush,
    .on_done = own_done,
    .on_fail = own_fail,
    .on_drained = own_drained,
    .on_try_timeout = own_try_timeout,
};

/* ---- fixture: a worker's worth of state around one pool ------------------------------------ */

typedef struct fixture_s {
    sst_worker_t *w;
    sst_config_t *cfg;
    sst_prep_t *prep;
    sst_view_t view;
    sst_wview_t wview;
    sst_pool_t *pool;
    backend_t be;
    owner_t own;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char yaml[512];
    sst_diag_t diag;
    assert_non_null(f);
    backend_open(&f->be);
    snprintf(yaml, sizeof(yaml),
             "listen: [127.0.0.1:0]\nregions:\n  - {name: a, url: http://a.example,"
             " backends: [127.0.0.1:%u], health: {enabled: false}}\n",
             f->be.port);
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, &diag), 0);
    f->prep = calloc(1, sizeof(*f->prep));
    assert_non_null(f->prep);
    f->prep->backend_mid[0] = 3;
    f->view.cfg = f->cfg;
    f->view.prep = f->prep;
    f->wview.view = &f->view;
    f->w = calloc(1, sizeof(*f->w));
    assert_non_null(f->w);
    assert_int_equal(uv_loop_init(&f->w->loop), 0);
    f->w->loop.data = &f->w->bufs;
    f->w->metrics = calloc(1, sizeof(*f->w->metrics));
    assert_non_null(f->w->metrics);
    f->w->cur = &f->wview;
    sst__pools_init(&f->w->pools, f->w->metrics);
    sst__pools_update(&f->w->pools, f->cfg, f->prep);
    f->pool = sst__pool_for(&f->w->pools, &f->view, 0);
    assert_non_null(f->pool);
    *state = f;
    return 0;
}

static void run_ms(fixture_t *f, int ms);

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->own.u != NULL)
        sst__upstream_abort(f->own.u, SST_M_UP_FAILS);
    sst__pools_close_all(&f->w->pools);
    backend_close(&f->be);
    uv_run(&f->w->loop, UV_RUN_DEFAULT); /* every close callback */
    assert_int_equal(uv_loop_close(&f->w->loop), 0);
    sst__pools_free(&f->w->pools);
    sst__bufs_free(&f->w->bufs);
    sst_config_unref(f->cfg);
    free(f->prep);
    free(f->w->metrics);
    free(f->w);
    free(f);
    return 0;
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop and the backend until *flag reaches `want` (5 s at most: a hung test fails). */
static void run_until(fixture_t *f, const int *flag, int want)
{
    uint64_t end = ms_now() + 5000;
    while (*flag < want) {
        if (ms_now() > end)
            fail_msg("timed out waiting for %d (at %d)", want, *flag);
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
        backend_step(&f->be);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

static void run_ms(fixture_t *f, int ms)
{
    uint64_t end = ms_now() + (uint64_t)ms;
    while (ms_now() < end) {
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
        backend_step(&f->be);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

static sst_upstream_t *connect_ready(fixture_t *f)
{
    assert_int_equal(
        sst__upstream_connect(f->w, f->pool, f->cfg, 0, &owner_cb, &f->own, NULL, &f->own.u), 0);
    assert_int_equal(f->own.u->state, SST_UP_CONNECTING);
    run_until(f, &f->own.ready, f->own.ready + 1);
    assert_int_equal(f->own.u->state, SST_UP_ACTIVE);
    return f->own.u;
}

static void send_get(fixture_t *f, sst_upstream_t *u)
{
    static char head[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(sst__upstream_send_head(u, NULL, NULL, head, sizeof(head) - 1, false), 0);
    assert_int_equal(sst__upstream_flush(u), 0);
    sst__upstream_request_sent(u);
}

static uint64_t failures(fixture_t *f, sst_m_upfail_t kind)
{
    return sst_counter_get(&f->w->metrics->up_failures[3][kind]);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_connect_refused(void **state)
{
    fixture_t *f = *state;
    backend_close(&f->be); /* nothing listens on the port any more */
    assert_int_equal(
        sst__upstream_connect(f->w, f->pool, f->cfg, 0, &owner_cb, &f->own, NULL, &f->own.u), 0);
    assert_true(sst__pool_full(f->pool, 1));
    run_until(f, &f->own.fails, 1);
    assert_int_equal(f->own.phase, SST_FAIL_CONNECT);
    assert_int_equal(f->own.kind, SST_M_UP_REFUSED);
    assert_int_equal(f->own.ready, 0);
    assert_int_equal(failures(f, SST_M_UP_REFUSED), 1);
    assert_false(sst__pool_full(f->pool, 1)); /* closed before the owner was told */
}

/* A keep-alive exchange ends with the connection in the pool; the next request takes it and
 * it goes back again. */
static void test_exchange_and_reuse(void **state)
{
    fixture_t *f = *state;
    f->be.answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    f->own.release_on_done = true;
    sst_upstream_t *u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->own.done, 1);
    assert_int_equal(f->own.status, 200);
    assert_int_equal(f->own.body_len, 5);
    assert_memory_equal(f->own.body, "hello", 5);
    assert_int_equal(u->state, SST_UP_IDLE);
    assert_null(u->owner);

    sst_upstream_t *again = sst__pool_take(f->pool, false, uv_now(&f->w->loop), NULL);
    assert_ptr_equal(again, u);
    f->own.u = u;
    sst__upstream_attach(u, f->cfg, 0, &owner_cb, &f->own);
    assert_int_equal(u->state, SST_UP_ACTIVE);
    send_get(f, u);
    run_until(f, &f->own.done, 2);
    assert_int_equal(f->own.heads, 2);
    assert_int_equal(u->state, SST_UP_IDLE);
    assert_int_equal(f->own.ready, 1); /* a pooled connection is ready at once */
    const sst_wmetrics_t *m = f->w->metrics;
    assert_int_equal(sst_counter_get(&m->up_requests[3]), 2);
    assert_int_equal(sst_counter_get(&m->up_connects[3]), 1);
    assert_int_equal(sst_counter_get(&m->up_reuses[3]), 1);
    assert_int_equal(sst_counter_get(&m->up_idle[3]), 1);
}

/* send_proxy_protocol (issue 16): the connection opens with its PROXY header, before the
 * request, and the pool hands it out again only for that same header. */
static void test_proxy_header_first_and_pool_key(void **state)
{
    fixture_t *f = *state;
    static const char line[] = "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n";
    sst_tp_pp_out_t pp = {.len = sizeof(line) - 1}, other;
    memcpy(pp.bytes, line, pp.len);
    other = pp;
    other.bytes[pp.len - 6] = '7'; /* another source port: another client connection */
    f->be.answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    f->own.release_on_done = true;
    assert_int_equal(
        sst__upstream_connect(f->w, f->pool, f->cfg, 0, &owner_cb, &f->own, &pp, &f->own.u), 0);
    run_until(f, &f->own.ready, 1);
    sst_upstream_t *u = f->own.u;
    send_get(f, u);
    run_until(f, &f->own.done, 1);
    static const char want[] = "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nGET / HTTP/1.1\r\n";
    assert_true(f->be.log_len >= sizeof(want) - 1);
    assert_memory_equal(f->be.log, want, sizeof(want) - 1);
    assert_int_equal(u->state, SST_UP_IDLE);
    assert_true(sst__upstream_pp_is(u, &pp));
    assert_false(sst__upstream_pp_is(u, NULL));
    assert_null(sst__pool_take(f->pool, false, uv_now(&f->w->loop), NULL));
    assert_null(sst__pool_take(f->pool, false, uv_now(&f->w->loop), &other));
    assert_ptr_equal(sst__pool_take(f->pool, false, uv_now(&f->w->loop), &pp), u);
    /* reused: no second header on the same connection */
    f->own.u = u;
    sst__upstream_attach(u, f->cfg, 0, &owner_cb, &f->own);
    size_t before = f->be.log_len;
    send_get(f, u);
    run_until(f, &f->own.done, 2);
    assert_true(f->be.log_len > before);
    assert_memory_equal(f->be.log + before, "GET / HTTP/1.1\r\n", 16);
}

/* The reuse decision: Connection: close, bytes after the message, a response cut short by the
 * owner (released before done) each close the connection instead of pooling it. */
static void test_not_reused(void **state)
{
    fixture_t *f = *state;
    static const char *const answers[] = {
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    };
    f->own.release_on_done = true;
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        f->be.answer = answers[i];
        sst_upstream_t *u = connect_ready(f);
        send_get(f, u);
        run_until(f, &f->own.done, (int)i + 1);
        assert_int_equal(f->own.released_state, SST_UP_CLOSING);
        assert_null(sst__pool_take(f->pool, false, uv_now(&f->w->loop), NULL));
        run_ms(f, 5);
        backend_drop(&f->be, false);
    }
    /* released mid-response: not on a message boundary */
    f->own.release_on_done = false;
    f->be.action = SILENT;
    sst_upstream_t *u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->be.heads, 1);
    f->own.u = NULL;
    sst__upstream_release(u);
    assert_int_equal(u->state, SST_UP_CLOSING);
    assert_int_equal(sst_counter_get(&f->w->metrics->up_idle[3]), 0);
}

typedef struct fail_case_s {
    const char *name;
    action_t action;
    const char *answer;
    uint64_t response_ms; /* 0: the default */
    sst_fail_phase_t phase;
    sst_m_upfail_t kind;
    int heads; /* response heads the owner saw first */
} fail_case_t;

/* Every way an attempt fails after the connect, with its phase and kind. */
static const fail_case_t fail_cases[] = {
    {"closed before responding", CLOSE, NULL, 0, SST_FAIL_SENT, SST_M_UP_RESET, 0},
    {"reset before responding", RESET, NULL, 0, SST_FAIL_SENT, SST_M_UP_RESET, 0},
    {"not HTTP", ANSWER, "SSH-2.0-OpenSSH\r\n\r\n", 0, SST_FAIL_BAD_RESPONSE, SST_M_UP_BAD_RESPONSE,
     0},
    {"a bad chunk after the head", ANSWER,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, SST_FAIL_RESPONSE_STARTED,
     SST_M_UP_BAD_RESPONSE, 1},
    {"no response in time", SILENT, NULL, 80, SST_FAIL_RESPONSE_TIMEOUT, SST_M_UP_TIMEOUT, 0},
};

static void test_failures(void **state)
{
    fixture_t *f = *state;
    uint64_t default_ms = f->cfg->timeouts.upstream_response_ms;
    for (size_t i = 0; i < sizeof(fail_cases) / sizeof(fail_cases[0]); i++) {
        const fail_case_t *c = &fail_cases[i];
        memset(&f->own, 0, sizeof(f->own));
        f->be.action = c->action;
        f->be.answer = c->answer;
        f->cfg->timeouts.upstream_response_ms = c->response_ms ? c->response_ms : default_ms;
        uint64_t before = failures(f, c->kind);
        sst_upstream_t *u = connect_ready(f);
        send_get(f, u);
        run_until(f, &f->own.fails, 1);
        if (f->own.phase != c->phase || f->own.kind != c->kind)
            fail_msg("%s: phase %d kind %d (%s), want %d %d", c->name, (int)f->own.phase,
                     (int)f->own.kind, f->own.why, (int)c->phase, (int)c->kind);
        assert_int_equal(f->own.heads, c->heads);
        assert_int_equal(f->own.done, 0);
        assert_int_equal(failures(f, c->kind), before + 1);
        assert_int_equal(f->own.failed_state, SST_UP_CLOSING);
        run_ms(f, 5);
        backend_drop(&f->be, false);
    }
    f->cfg->timeouts.upstream_response_ms = default_ms;
}

/* A response cut mid-body: the client has part of it, the phase says so. */
static void test_cut_mid_body(void **state)
{
    fixture_t *f = *state;
    f->be.answer = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    sst_upstream_t *u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->own.bodies, 1);
    assert_int_equal(f->own.body_len, 3);
    backend_drop(&f->be, false);
    run_until(f, &f->own.fails, 1);
    assert_int_equal(f->own.phase, SST_FAIL_RESPONSE_STARTED);
    assert_int_equal(f->own.kind, SST_M_UP_ABORTED);
    assert_int_equal(f->own.failed_state, SST_UP_CLOSING);
}

/* The owner pauses reading on a flush (its client is slow); nothing more arrives until it
 * resumes; a paused connection is not reused. */
static void test_pause_and_resume(void **state)
{
    fixture_t *f = *state;
    static char answer[200064];
    int hl =
        snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 200000);
    memset(answer + hl, 'b', 200000);
    answer[hl + 200000] = 0;
    f->be.answer = answer;
    f->own.pause_on_flush = true;
    sst_upstream_t *u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->own.flushes, 1);
    assert_true(u->backpressured);
    size_t seen = f->own.body_total;
    run_ms(f, 50);
    assert_int_equal(f->own.body_total, seen); /* nothing read while paused */
    assert_int_equal(f->own.done, 0);
    f->own.pause_on_flush = false;
    sst__upstream_resume(u);
    run_until(f, &f->own.done, 1);
    assert_int_equal(f->own.body_total, 200000);
    f->own.u = NULL;
    sst__upstream_release(u);
    assert_int_equal(u->state, SST_UP_IDLE); /* resumed before the end: reusable */
}

/* The request side: a backend that reads nothing makes the upstream unwritable; once it reads,
 * on_drained tells the owner (once). */
static void test_request_backpressure(void **state)
{
    fixture_t *f = *state;
    static char head[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n";
    f->be.action = SILENT;
    f->cfg->limits.buffer = 4096;
    sst_upstream_t *u = connect_ready(f);
    assert_int_equal(sst__upstream_send_head(u, NULL, NULL, head, sizeof(head) - 1, false), 0);
    assert_int_equal(sst__upstream_flush(u), 0);
    run_until(f, &f->be.heads, 1);
    f->be.reading = false;
    sst_chunk_t *ch = sst__chunk_get(&f->w->bufs);
    assert_non_null(ch);
    memset(ch->data, 'p', ch->size);
    uv_buf_t b = uv_buf_init(ch->data, ch->size);
    int sent = 0;
    while (sst__upstream_writable(u)) {
        assert_true(sent < 10000);
        assert_int_equal(sst__upstream_send_body(u, ch, &b, 1, NULL, 0, NULL, 0), 0);
        sent++;
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
    }
    sst__chunk_unref(&f->w->bufs, ch); /* the queued writes hold their own references */
    run_ms(f, 20);
    assert_int_equal(f->own.drained, 0);
    f->be.reading = true;
    run_until(f, &f->own.drained, 1);
    run_ms(f, 20);
    assert_int_equal(f->own.drained, 1);
    assert_true(sst__upstream_writable(u));
}

/* A pooled connection: bytes the backend sends unasked close it; so does the idle timeout. */
static void test_idle_connection(void **state)
{
    fixture_t *f = *state;
    f->be.answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    f->own.release_on_done = true;
    sst_upstream_t *u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->own.done, 1);
    assert_int_equal(u->state, SST_UP_IDLE);
    backend_send(&f->be, "HTTP/1.1 200 OK\r\n\r\n", 19);
    run_ms(f, 30);
    assert_null(sst__pool_take(f->pool, false, uv_now(&f->w->loop), NULL));
    assert_int_equal(sst_counter_get(&f->w->metrics->up_idle[3]), 0);
    assert_false(sst__pool_full(f->pool, 1));
    backend_drop(&f->be, false);

    f->cfg->timeouts.upstream_idle_ms = 40; /* the worker's config applies to idle ones */
    u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->own.done, 2);
    assert_int_equal(u->state, SST_UP_IDLE);
    run_ms(f, 150);
    assert_null(sst__pool_take(f->pool, false, uv_now(&f->w->loop), NULL));
    assert_false(sst__pool_full(f->pool, 1));
}

/* The owner aborts: counted as the kind it names (none for SST_M_UP_FAILS), no callback. */
static void test_abort(void **state)
{
    fixture_t *f = *state;
    f->be.action = SILENT;
    sst_upstream_t *u = connect_ready(f);
    f->own.u = NULL;
    sst__upstream_abort(u, SST_M_UP_RESET);
    sst__upstream_abort(u, SST_M_UP_RESET); /* idempotent */
    assert_int_equal(failures(f, SST_M_UP_RESET), 1);
    u = connect_ready(f);
    f->own.u = NULL;
    sst__upstream_abort(u, SST_M_UP_FAILS);
    run_ms(f, 20);
    assert_int_equal(failures(f, SST_M_UP_RESET), 1);
    assert_int_equal(f->own.fails, 0);
    assert_false(sst__pool_full(f->pool, 1));
}

/* Issue 15: a connect still pending at the try timeout fails as a connect timeout (nothing was
 * sent), at try_ms, not at timeouts.connect; without a try timeout, at timeouts.connect. The
 * backend's accept queue is full, so its kernel drops our SYNs. */
static void test_connect_try_timeout(void **state)
{
    fixture_t *f = *state;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int one = 1;
    close(f->be.lfd);
    f->be.lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->be.lfd >= 0);
    setsockopt(f->be.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(f->be.port);
    assert_int_equal(bind(f->be.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(f->be.lfd, 0), 0);
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(filler >= 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&sin, sizeof(sin)), 0);
    int lfd = f->be.lfd;
    f->be.lfd = -1; /* nobody accepts */
    f->cfg->timeouts.connect_ms = 2000;

    uint64_t t0 = uv_now(&f->w->loop);
    assert_int_equal(
        sst__upstream_connect(f->w, f->pool, f->cfg, 60, &owner_cb, &f->own, NULL, &f->own.u), 0);
    run_until(f, &f->own.fails, 1);
    uint64_t took = uv_now(&f->w->loop) - t0;
    assert_int_equal(f->own.phase, SST_FAIL_CONNECT);
    assert_int_equal(f->own.kind, SST_M_UP_CONNECT_TIMEOUT);
    assert_string_equal(f->own.why, "backend connect try timeout");
    assert_true(took >= 60 && took < 1000);
    assert_int_equal(failures(f, SST_M_UP_CONNECT_TIMEOUT), 1);
    assert_int_equal(f->own.try_timeouts, 0); /* the connect is the upstream's own business */

    /* no try timeout: timeouts.connect ends it */
    memset(&f->own, 0, sizeof(f->own));
    f->cfg->timeouts.connect_ms = 80;
    assert_int_equal(
        sst__upstream_connect(f->w, f->pool, f->cfg, 0, &owner_cb, &f->own, NULL, &f->own.u), 0);
    run_until(f, &f->own.fails, 1);
    assert_int_equal(f->own.kind, SST_M_UP_CONNECT_TIMEOUT);
    assert_string_equal(f->own.why, "backend connect timeout");
    close(filler);
    close(lfd);
}

/* Issue 15: the request is written and the backend says nothing. At try_ms the owner hears
 * of it once; abandoning closes the connection (never pooled, counted as try_timeout); keeping
 * it waits for the response timeout, counted from the same write, and counts a try wait. A
 * connection taken from the pool gets its try timeout at attach. */
static void test_response_try_timeout(void **state)
{
    fixture_t *f = *state;
    f->be.action = SILENT;
    f->cfg->timeouts.upstream_response_ms = 300;

    /* kept waiting: the response timeout follows */
    sst_upstream_t *u = NULL;
    assert_int_equal(sst__upstream_connect(f->w, f->pool, f->cfg, 60, &owner_cb, &f->own, NULL, &u),
                     0);
    f->own.u = u;
    run_until(f, &f->own.ready, 1);
    send_get(f, u);
    uint64_t written = uv_now(&f->w->loop);
    run_until(f, &f->own.fails, 1);
    assert_int_equal(f->own.try_timeouts, 1);
    assert_true(f->own.try_at - written >= 60 && f->own.try_at - written < 250);
    assert_int_equal(f->own.phase, SST_FAIL_RESPONSE_TIMEOUT);
    assert_int_equal(f->own.kind, SST_M_UP_TIMEOUT);
    assert_true(uv_now(&f->w->loop) - written >= 300);
    assert_int_equal(sst_counter_get(&f->w->metrics->up_try_waits[3]), 1);
    run_ms(f, 5);
    backend_drop(&f->be, false);

    /* abandoned: closed at once, counted as a try timeout, no on_fail (the owner has it) */
    memset(&f->own, 0, sizeof(f->own));
    f->own.abandon_on_try = true;
    u = NULL;
    assert_int_equal(sst__upstream_connect(f->w, f->pool, f->cfg, 60, &owner_cb, &f->own, NULL, &u),
                     0);
    f->own.u = u;
    run_until(f, &f->own.ready, 1);
    send_get(f, u);
    run_until(f, &f->own.try_timeouts, 1);
    assert_int_equal(f->own.abandoned_state, SST_UP_CLOSING);
    assert_int_equal(failures(f, SST_M_UP_TRY_TIMEOUT), 1);
    run_ms(f, 350); /* past the response timeout: nothing more */
    assert_int_equal(f->own.fails, 0);
    assert_int_equal(f->own.try_timeouts, 1);
    assert_false(sst__pool_full(f->pool, 1));
    assert_int_equal(sst_counter_get(&f->w->metrics->up_try_waits[3]), 1);
    backend_drop(&f->be, false);

    /* pooled: the try timeout given at attach applies */
    memset(&f->own, 0, sizeof(f->own));
    f->be.action = ANSWER;
    f->be.answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    f->own.release_on_done = true;
    u = connect_ready(f);
    send_get(f, u);
    run_until(f, &f->own.done, 1);
    assert_int_equal(u->state, SST_UP_IDLE);
    f->be.action = SILENT;
    f->own.abandon_on_try = true;
    assert_ptr_equal(sst__pool_take(f->pool, false, uv_now(&f->w->loop), NULL), u);
    f->own.u = u;
    sst__upstream_attach(u, f->cfg, 60, &owner_cb, &f->own);
    send_get(f, u);
    run_until(f, &f->own.try_timeouts, 1);
    assert_int_equal(f->own.abandoned_state, SST_UP_CLOSING);
    assert_int_equal(failures(f, SST_M_UP_TRY_TIMEOUT), 2);
}

/* Issue 15: any response byte stops the try timer: the backend is answering, and only the
 * response timeout (from the write) is left. */
static void test_try_timeout_stopped_by_a_byte(void **state)
{
    fixture_t *f = *state;
    f->be.answer = "HTTP/1.1 200 OK\r\n"; /* half a head, then nothing */
    f->cfg->timeouts.upstream_response_ms = 250;
    sst_upstream_t *u = NULL;
    assert_int_equal(sst__upstream_connect(f->w, f->pool, f->cfg, 40, &owner_cb, &f->own, NULL, &u),
                     0);
    f->own.u = u;
    run_until(f, &f->own.ready, 1);
    send_get(f, u);
    uint64_t written = uv_now(&f->w->loop);
    run_until(f, &f->own.fails, 1);
    assert_int_equal(f->own.try_timeouts, 0);
    assert_int_equal(f->own.phase, SST_FAIL_RESPONSE_TIMEOUT);
    assert_true(uv_now(&f->w->loop) - written >= 250);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_header_first_and_pool_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_try_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_try_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_try_timeout_stopped_by_a_byte, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
