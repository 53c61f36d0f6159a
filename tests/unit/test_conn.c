/* The client-connection module (conn*.c) against a fake upstream, a fake pool and fake worker
 * functions (h2o-style: the test includes the .c files under test and provides what they
 * call), with the real transport, parser, router and writers, over a loopback socket in one
 * uv_loop_t. Covers the exchange and the upstream's release, what follows each failure phase
 * (retry, reroute to a 307, 502, 504, a cut), passive signals, back-pressure both ways, local
 * answers, timeouts and the state along the way. */
#define _GNU_SOURCE 1 /* memmem */

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

#include "core/conn.c"
#include "core/conn_local.c"
#include "core/conn_pp.c"
#include "core/conn_proxy.c"
#include "core/conn_relay.c"
#include "core/server_int.h"

/* ---- fakes: the upstream connection and the pool -------------------------------------------- */

struct sst_upstream_s {
    void *owner;
    const sst__upstream_cb_t *cb;
    const sst_config_t *cfg;
    uint64_t try_ms;
    size_t backend;
    bool writable;
    bool paused;
    int resumed;
    bool released, aborted, request_sent, head_request;
    sst_m_upfail_t abort_kind;
    char sent[1 << 16];
    size_t sent_len;
};

struct sst_pool_s {
    size_t backend;
};

static struct {
    sst_upstream_t ups[16];
    int n_ups;
    int connect_rc;
    int body_rc; /* what sst__upstream_send_body returns (0: the bytes are taken) */
    int body_calls;
    sst_pool_t pools[SST_MAX_BACKENDS];
    bool pool_full;
    sst_upstream_t *pooled; /* what sst__pool_take hands out once */
    size_t last_backend;
    /* the PROXY header of the last take and connect (len 0: none asked) */
    sst_tp_pp_out_t take_pp, connect_pp;
} F;

static void sent_add(sst_upstream_t *u, const char *at, size_t len)
{
    if (len == 0)
        return; /* prefix and suffix are NULL when absent */
    assert_true(u->sent_len + len <= sizeof(u->sent));
    memcpy(u->sent + u->sent_len, at, len);
    u->sent_len += len;
}

int sst__upstream_connect(sst_worker_t *w, sst_pool_t *pool, const sst_config_t *cfg,
                          uint64_t try_ms, const sst__upstream_cb_t *cb, void *owner,
                          const sst_tp_pp_out_t *pp, sst_upstream_t **out)
{
    F.last_backend = pool->backend;
    if (pp != NULL)
        F.connect_pp = *pp;
    if (F.connect_rc != 0)
        return F.connect_rc;
    assert_true(F.n_ups < 16);
    sst_upstream_t *u = &F.ups[F.n_ups++];
    memset(u, 0, sizeof(*u));
    u->owner = owner;
    u->cb = cb;
    u->cfg = cfg;
    u->try_ms = try_ms;
    u->backend = pool->backend;
    u->writable = true;
    *out = u;
    return 0;
}

void sst__upstream_attach(sst_upstream_t *u, const sst_config_t *cfg, uint64_t try_ms,
                          const sst__upstream_cb_t *cb, void *owner)
{
    u->owner = owner;
    u->cb = cb;
    u->cfg = cfg;
    u->try_ms = try_ms;
}

int sst__upstream_send_head(sst_upstream_t *u, sst_chunk_t *chunk, char *heap, const char *head,
                            size_t len, bool head_request)
{
    sent_add(u, head, len);
    u->head_request = head_request;
    free(heap);
    return 0;
}

int sst__upstream_send_body(sst_upstream_t *u, sst_chunk_t *chunk, const uv_buf_t *bufs, uint32_t n,
                            const char *prefix, size_t prefix_len, const char *suffix,
                            size_t suffix_len)
{
    F.body_calls++;
    if (F.body_rc != 0)
        return F.body_rc;
    sent_add(u, prefix, prefix_len);
    for (uint32_t i = 0; i < n; i++)
        sent_add(u, bufs[i].base, bufs[i].len);
    sent_add(u, suffix, suffix_len);
    return 0;
}

int sst__upstream_flush(sst_upstream_t *u)
{
    return 0;
}

void sst__upstream_request_sent(sst_upstream_t *u)
{
    u->request_sent = true;
}

bool sst__upstream_writable(sst_upstream_t *u)
{
    return u->writable;
}

void sst__upstream_pause(sst_upstream_t *u)
{
    u->paused = true;
}

void sst__upstream_resume(sst_upstream_t *u)
{
    if (u->paused) {
        u->paused = false;
        u->resumed++;
    }
}

void sst__upstream_release(sst_upstream_t *u)
{
    u->released = true;
    u->owner = NULL;
}

void sst__upstream_abort(sst_upstream_t *u, sst_m_upfail_t kind)
{
    u->aborted = true;
    u->abort_kind = kind;
    u->owner = NULL;
}

sst_pool_t *sst__pool_for(sst_pools_t *ps, const sst_view_t *view, size_t backend)
{
    F.pools[backend].backend = backend;
    return &F.pools[backend];
}

sst_upstream_t *sst__pool_take(sst_pool_t *p, bool verify, uint64_t now_ms,
                               const sst_tp_pp_out_t *pp)
{
    if (pp != NULL)
        F.take_pp = *pp;
    sst_upstream_t *u = F.pooled;
    F.pooled = NULL;
    return u;
}

bool sst__pool_full(const sst_pool_t *p, size_t max)
{
    return F.pool_full;
}

/* ---- fakes: what the worker provides -------------------------------------------------------- */

static sst_wview_t *the_wview;
static int n_access_lines;
static char last_access[4096];

sst_wview_t *sst__worker_view_acquire(sst_worker_t *w)
{
    the_wview->users++;
    return the_wview;
}

void sst__worker_view_release(sst_worker_t *w, sst_wview_t *wv)
{
    assert_true(wv->users > 0);
    wv->users--;
}

void sst__worker_conn_opened(sst_worker_t *w)
{
    atomic_fetch_add(w->conns_total, 1);
}

void sst__worker_conn_gone(sst_worker_t *w)
{
    atomic_fetch_sub(w->conns_total, 1);
}

void sst__worker_access_log(sst_worker_t *w, const char *line, size_t len)
{
    n_access_lines++;
    snprintf(last_access, sizeof(last_access), "%.*s", (int)len, line);
}

void sst__listener_hold(sst_listener_t *l)
{
    l->refs++;
}

void sst__listener_release(sst_listener_t *l)
{
    l->refs--;
}

/* The heap is the worker's: here the node only remembers its deadline; tests fire it. */
int sst__worker_deadline_set(sst_worker_t *w, sst_dnode_t *n, uint64_t due)
{
    n->due = due;
    n->idx = due == UINT64_MAX ? UINT32_MAX : 0;
    return 0;
}

/* ---- fixture -------------------------------------------------------------------------------- */

typedef struct fixture_s {
    sst_worker_t *w;
    sst_server_t *s;
    atomic_uint_fast64_t total;
    uv_async_t passive_async;
    sst_config_t *cfg;
    sst_health_t *health;
    sst_view_t *view;
    sst_prep_t *prep;
    sst_wview_t wv;
    sst_listener_t *l;
    int client;
} fixture_t;

static void on_passive(uv_async_t *a)
{
    (void)a;
}

static void on_connection(uv_stream_t *server, int status)
{
    sst_listener_t *l = server->data;
    assert_int_equal(status, 0);
    assert_int_equal(sst__conn_accept(l->w, l, false), 0);
}

static void on_closed_noop(uv_handle_t *h)
{
    (void)h;
}

/* Region a (primary: backends `a_backends`, up or down from the start; `a_extra`: more of its
 * keys, each followed by ","), region b (failover, up or down), on the listener `listen`;
 * route_extra adds keys to the route, extra to the file. */
static fixture_t *fixture_new_any(const char *listen, const char *a_backends, const char *a_extra,
                                  const char *a_initial, const char *b_initial,
                                  const char *route_extra, const char *extra)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char yaml[1024], err[256] = "";
    sst_diag_t diag;
    assert_non_null(f);
    memset(&F, 0, sizeof(F));
    n_access_lines = 0;
    snprintf(yaml, sizeof(yaml),
             "listen: %s\n"
             "regions:\n"
             "  - {name: a, url: http://a.example, backends: [%s], %s"
             " health: {enabled: false, initial: %s}}\n"
             "  - {name: b, url: http://b.example, backends: [127.0.0.1:3],"
             " health: {enabled: false, initial: %s}}\n"
             "routes:\n"
             "  - {name: r, primary: a, failover: [b]%s}\n"
             "log: {access: stderr}\n%s",
             listen, a_backends, a_extra, a_initial, b_initial, route_extra, extra);
    memset(&diag, 0, sizeof(diag));
    if (sst_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, &diag) != 0)
        fail_msg("%s", sst_diag_format(&diag, err, sizeof(err)));
    f->s = calloc(1, sizeof(*f->s));
    assert_non_null(f->s);
    f->s->n_workers = 1;
    assert_int_equal(sst__prep_build(f->cfg, f->s, &f->prep, err, sizeof(err)), 0);
    sst__prep_commit(f->s, f->prep);
    assert_int_equal(sst_health_create(f->cfg, NULL, 0, NULL, NULL, &f->health), 0);
    sst_hsnap_t *snap;
    assert_int_equal(sst_health_snapshot(f->health, 1, &snap), 0);
    atomic_uint_fast32_t *prep_refs = malloc(sizeof(*prep_refs));
    assert_non_null(prep_refs);
    atomic_init(prep_refs, 0);
    assert_int_equal(sst__view_new(f->cfg, snap, f->prep, prep_refs, 1, &f->view), 0);
    sst_hsnap_unref(snap);
    f->wv.view = f->view;
    f->wv.users = 1;
    the_wview = &f->wv;

    f->w = calloc(1, sizeof(*f->w));
    assert_non_null(f->w);
    sst_worker_t *w = f->w;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->loop.data = &w->bufs;
    w->metrics = calloc(1, sizeof(*w->metrics));
    assert_non_null(w->metrics);
    w->cur = &f->wv;
    atomic_init(&f->total, 0);
    w->conns_total = &f->total;
    sst__conns_init(&w->conns);
    assert_int_equal(uv_async_init(&w->loop, &f->passive_async, on_passive), 0);
    sst__passive_init(&w->passive, &f->passive_async);

    f->l = calloc(1, sizeof(*f->l));
    assert_non_null(f->l);
    f->l->w = w;
    f->l->cfg_index = 0;
    assert_int_equal(uv_tcp_init(&w->loop, &f->l->tcp), 0);
    f->l->tcp.data = f->l;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int len = sizeof(a);
    assert_int_equal(uv_tcp_bind(&f->l->tcp, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->l->tcp, 8, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&f->l->tcp, (struct sockaddr *)&a, &len), 0);

    f->client = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->client >= 0);
    assert_int_equal(connect(f->client, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(f->client, F_SETFL, fcntl(f->client, F_GETFL) | O_NONBLOCK);
    return f;
}

static fixture_t *fixture_new_full(const char *a_backends, const char *a_initial,
                                   const char *b_initial, const char *route_extra,
                                   const char *extra)
{
    return fixture_new_any("[127.0.0.1:0]", a_backends, "", a_initial, b_initial, route_extra,
                           extra);
}

static fixture_t *fixture_new_ex(const char *listen, const char *a_extra, const char *a_initial,
                                 const char *extra)
{
    return fixture_new_any(listen, "127.0.0.1:1, 127.0.0.1:2", a_extra, a_initial, "up", "", extra);
}

static fixture_t *fixture_new(const char *a_initial, const char *extra)
{
    return fixture_new_full("127.0.0.1:1, 127.0.0.1:2", a_initial, "up", ", retries: 1", extra);
}

static void fixture_free(fixture_t *f)
{
    sst_worker_t *w = f->w;
    if (f->client >= 0)
        close(f->client);
    sst__conn_close_all(w);
    uv_close((uv_handle_t *)&f->l->tcp, on_closed_noop);
    uv_close((uv_handle_t *)&f->passive_async, on_closed_noop);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    assert_int_equal(atomic_load(&f->total), 0); /* every connection freed */
    assert_int_equal(f->l->refs, 0);
    assert_int_equal(f->wv.users, 1); /* every request's hold on the view released */
    sst__conns_free(&w->conns);
    sst__bufs_free(&w->bufs);
    sst__view_unref(f->view); /* and the prep with it */
    sst_health_destroy(f->health);
    sst__lsocks_free(f->s);
    sst__prep_names_free(f->s);
    sst_config_unref(f->cfg);
    free(f->s);
    free(w->metrics);
    free(w);
    free(f->l);
    free(f);
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void spin(fixture_t *f)
{
    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static sst_conn_t *the_conn(fixture_t *f)
{
    uint64_t end = ms_now() + 5000;
    while (sst_list_empty(&f->w->conns.all)) {
        if (ms_now() > end)
            fail_msg("no connection accepted");
        spin(f);
    }
    return sst_container_of(f->w->conns.all.next, sst_conn_t, link);
}

static void client_send(fixture_t *f, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(f->client, s, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            spin(f);
            continue;
        }
        assert_true(n > 0);
        s += n;
        len -= (size_t)n;
    }
}

/* Reads until `want` appears (and returns everything read), or until EOF/reset when want is
 * NULL (*status: 0 for EOF, -errno for a reset). */
static char rx[1 << 20];
static size_t rx_len;

static const char *client_read(fixture_t *f, const char *want, int *status)
{
    uint64_t end = ms_now() + 5000;
    rx_len = 0;
    for (;;) {
        ssize_t n = recv(f->client, rx + rx_len, sizeof(rx) - 1 - rx_len, 0);
        if (n > 0) {
            rx_len += (size_t)n;
            rx[rx_len] = 0;
            if (want != NULL && memmem(rx, rx_len, want, strlen(want)) != NULL)
                return rx;
            continue;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (status != NULL)
                *status = n == 0 ? 0 : -errno;
            if (want != NULL)
                fail_msg("connection ended before [%s]; got [%.*s]", want, (int)rx_len, rx);
            return rx;
        }
        if (ms_now() > end)
            fail_msg("timed out waiting for [%s]; got [%.*s]", want ? want : "the end", (int)rx_len,
                     rx);
        spin(f);
    }
}

/* Runs the loop until the fake pool has handed out `n` upstream connections. */
static sst_upstream_t *wait_upstream(fixture_t *f, int n)
{
    uint64_t end = ms_now() + 5000;
    while (F.n_ups < n) {
        if (ms_now() > end)
            fail_msg("no upstream attempt %d", n);
        spin(f);
    }
    return &F.ups[n - 1];
}

/* A response head, as upstream.c would hand it over: parsed by the real parser. */
typedef struct resp_s {
    sst_head_t *head;
    sst_h1_response_t resp;
} resp_t;

static void resp_parse(resp_t *r, const char *raw)
{
    static const sst_h1_limits_t lim = {
        .request_line = 8192, .field = 8192, .head = 65536, .headers = 100};
    sst_h1_t h;
    size_t used;
    const char *why;
    r->head = sst_head_new();
    assert_non_null(r->head);
    sst_h1_init(&h, true, &lim, NULL, NULL);
    h.head = r->head;
    assert_int_equal(sst_h1_feed(&h, raw, strlen(raw), &used), SST_H1_HEAD);
    assert_int_equal(sst_h1_check_response(&h, &r->resp, &why), 0);
}

/* The upstream's callbacks, fired as upstream.c would. */
static void up_respond(fixture_t *f, sst_upstream_t *u, const char *head, const char *body)
{
    resp_t r;
    resp_parse(&r, head);
    assert_int_equal(u->cb->on_head(u->owner, &r.resp, r.head), 0);
    if (body != NULL) {
        sst_chunk_t *ch = sst__chunk_get(&f->w->bufs);
        assert_non_null(ch);
        memcpy(ch->data, body, strlen(body));
        u->cb->on_body(u->owner, ch, ch->data, strlen(body));
        sst__chunk_unref(&f->w->bufs, ch);
    }
    u->cb->on_flush(u->owner);
    sst_head_free(r.head);
}

static int passive_count(fixture_t *f, size_t backend, sst_passive_t sig)
{
    int n = 0;
    sst_passive_msg_t m;
    while (sst__passive_pop(&f->w->passive, &m))
        n += m.backend == backend && m.signal == sig;
    return n;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The primary is down from the start: a GET gets the 307 to the failover region, the
 * connection stays open for the next request, each is logged and counted. */
static void test_redirect(void **state)
{
    fixture_t *f = fixture_new("down", "");
    sst_conn_t *c;
    client_send(f, "GET /p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    client_read(f, "Redirecting to region b.\n", NULL);
    assert_non_null(
        strstr(rx, "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://b.example/p?q=1"));
    c = the_conn(f);
    assert_int_equal(c->state, SST_CONN_IDLE);
    assert_null(c->req);
    client_send(f, "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n");
    client_read(f, "Content-Length: 25\r\n\r\n", NULL);
    assert_null(strstr(rx, "Redirecting")); /* HEAD: no body */
    assert_int_equal(n_access_lines, 2);
    assert_non_null(strstr(last_access, "\"HEAD /x HTTP/1.1\" 307"));
    assert_int_equal(sst_counter_get(&f->w->metrics->redirects[f->prep->region_mid[1]]), 2);
    assert_int_equal(F.n_ups, 0);
    fixture_free(f);
}

/* A proxied exchange: the rebuilt head goes to the upstream, the response to the client, and
 * the upstream is released (not aborted) for the pool to decide. */
static void test_proxy_exchange(void **state)
{
    fixture_t *f = fixture_new("up", "");
    client_send(f,
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    sst_conn_t *c = the_conn(f);
    assert_int_equal(c->state, SST_CONN_UPSTREAM);
    assert_ptr_equal(u->cfg, f->cfg); /* the request's config, given at connect */
    u->cb->on_ready(u->owner);
    assert_true(u->request_sent);
    u->sent[u->sent_len] = 0;
    assert_true(strncmp(u->sent, "GET /a HTTP/1.1\r\nHost: x\r\n", 26) == 0);
    assert_non_null(strstr(u->sent, "X-Forwarded-For: 127.0.0.1\r\n"));
    assert_null(strstr(u->sent, "X-Hop"));
    up_respond(f, u, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\n", "hello");
    u->cb->on_done(u->owner);
    client_read(f, "hello", NULL);
    assert_non_null(strstr(rx, "HTTP/1.1 200 OK\r\nX-Up: 1\r\nVia: 1.1 sidestep\r\n"));
    assert_true(u->released);
    assert_false(u->aborted);
    assert_int_equal(c->state, SST_CONN_IDLE);
    assert_non_null(strstr(last_access, "decision=proxy region=a backend=127.0.0.1:"));

    /* a pooled connection is ready at once: the head leaves without waiting */
    F.pooled = &F.ups[F.n_ups++];
    memset(F.pooled, 0, sizeof(*F.pooled));
    F.pooled->writable = true;
    sst_upstream_t *p = F.pooled;
    client_send(f, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    uint64_t end = ms_now() + 5000;
    while (!p->request_sent && ms_now() < end)
        spin(f);
    assert_true(p->request_sent);
    up_respond(f, p, "HTTP/1.1 204 No Content\r\n\r\n", NULL);
    p->cb->on_done(p->owner);
    client_read(f, "HTTP/1.1 204 No Content\r\n", NULL);
    assert_true(p->released);
    fixture_free(f);
}

typedef struct fail_case_s {
    const char *name;
    const char *request;
    sst_fail_phase_t phase;
    sst_m_upfail_t kind;
    bool head_first;       /* a response head reached the client before the failure */
    int attempts;          /* upstream attempts made in all */
    const char *want;      /* in the answer; NULL: the connection is cut */
    sst_passive_t passive; /* signal about backend 0, SST_PASSIVE_OK for none */
} fail_case_t;

static const fail_case_t fail_cases[] = {
    {"refused: another backend", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", SST_FAIL_CONNECT,
     SST_M_UP_REFUSED, false, 2, NULL, SST_PASSIVE_REFUSED},
    {"no response to a POST: 502", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
     SST_FAIL_SENT, SST_M_UP_RESET, false, 1, "HTTP/1.1 502 Bad Gateway", SST_PASSIVE_RESET},
    {"response timeout: 504", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", SST_FAIL_RESPONSE_TIMEOUT,
     SST_M_UP_TIMEOUT, false, 1, "HTTP/1.1 504 Gateway Timeout", SST_PASSIVE_TIMEOUT},
    {"bad response: 502", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", SST_FAIL_BAD_RESPONSE,
     SST_M_UP_BAD_RESPONSE, false, 1, "HTTP/1.1 502 Bad Gateway", SST_PASSIVE_RESET},
    {"cut after the head: the client sees the cut", "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
     SST_FAIL_RESPONSE_STARTED, SST_M_UP_ABORTED, true, 1, NULL, SST_PASSIVE_ABORTED},
    {"body stalled after the head: the client sees the cut", "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
     SST_FAIL_RESPONSE_STARTED, SST_M_UP_TIMEOUT, true, 1, NULL, SST_PASSIVE_TIMEOUT},
};

static void test_failures(void **state)
{
    for (size_t i = 0; i < sizeof(fail_cases) / sizeof(fail_cases[0]); i++) {
        const fail_case_t *fc = &fail_cases[i];
        fixture_t *f = fixture_new("up", "");
        client_send(f, fc->request);
        sst_upstream_t *u = wait_upstream(f, 1);
        size_t first = F.last_backend;
        if (fc->phase != SST_FAIL_CONNECT)
            u->cb->on_ready(u->owner);
        if (fc->head_first)
            up_respond(f, u, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "part");
        u->owner = NULL; /* as upstream.c: detached before the owner hears of it */
        u->cb->on_fail(the_conn(f), fc->phase, fc->kind, "test");
        if (fc->attempts == 2) {
            sst_upstream_t *u2 = wait_upstream(f, 2);
            assert_int_not_equal(F.last_backend, first); /* the other backend */
            assert_int_equal(the_conn(f)->req->attempts, 2);
            assert_int_equal(sst_counter_get(&f->w->metrics->retries), 1);
            u2->cb->on_ready(u2->owner);
            up_respond(f, u2, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok");
            u2->cb->on_done(u2->owner);
            client_read(f, "\r\n\r\nok", NULL);
        } else if (fc->want != NULL) {
            client_read(f, fc->want, NULL);
            assert_int_equal(F.n_ups, 1);
        } else {
            int st = 1;
            client_read(f, NULL, &st);
            assert_true(st == -ECONNRESET || st == 0);
            assert_null(memmem(rx, rx_len, "\r\n0\r\n\r\n", 7)); /* never a clean end */
        }
        int got = passive_count(f, first, fc->passive);
        if (fc->passive != SST_PASSIVE_OK && got != 1)
            fail_msg("%s: %d passive signals", fc->name, got);
        fixture_free(f);
    }
}

/* Both backends refuse: the request never reached one, so it is rerouted: the in-flight
 * failover answers 307 to region b. */
static void test_reroute_after_refusals(void **state)
{
    fixture_t *f = fixture_new("up", "");
    client_send(f, "GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 1; i <= 2; i++) {
        sst_upstream_t *u = wait_upstream(f, i);
        u->owner = NULL;
        u->cb->on_fail(the_conn(f), SST_FAIL_CONNECT, SST_M_UP_REFUSED, "refused");
    }
    client_read(f, "Location: http://b.example/r", NULL);
    assert_non_null(strstr(rx, "HTTP/1.1 307"));
    assert_int_equal(sst_counter_get(&f->w->metrics->inflight_failovers[f->prep->region_mid[0]]),
                     1);
    assert_non_null(strstr(last_access, "in-flight failover"));
    assert_int_equal(the_conn(f)->state, SST_CONN_IDLE);
    fixture_free(f);
}

/* Every backend at its connection limit: 503, and no attempt. */
static void test_connection_limit(void **state)
{
    fixture_t *f = fixture_new("up", "");
    F.pool_full = true;
    client_send(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    client_read(f, "upstream connection limit reached", NULL);
    assert_non_null(strstr(rx, "HTTP/1.1 503"));
    assert_int_equal(F.n_ups, 0);
    fixture_free(f);
}

/* Request body back-pressure: an unwritable upstream stops the client's reads, on_drained
 * starts them again. */
static void test_request_backpressure(void **state)
{
    fixture_t *f = fixture_new("up", "");
    client_send(f, "PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    sst_upstream_t *u = wait_upstream(f, 1);
    sst_conn_t *c = the_conn(f);
    u->writable = false;
    u->cb->on_ready(u->owner);
    assert_true(c->backpressured);
    assert_false(c->tp.reading);
    client_send(f, "defghij");
    for (int i = 0; i < 20; i++)
        spin(f);
    assert_false(u->request_sent); /* the rest of the body is still in the socket */
    u->writable = true;
    u->cb->on_drained(u->owner);
    uint64_t end = ms_now() + 5000;
    while (!u->request_sent && ms_now() < end)
        spin(f);
    assert_true(u->request_sent);
    assert_false(c->backpressured);
    assert_non_null(memmem(u->sent, u->sent_len, "\r\n\r\nabcdefghij", 14));
    fixture_free(f);
}

/* A body write that fails while the parser is inside the body (many chunks in one read fill
 * the worker's body buffers mid-parse): the failure is reported once the parser returned, so
 * the answer it leads to never frees the request under the running parser (ASan would see
 * it). The client gets the failover's 307 (the backend never had a whole request), and
 * nothing more is written upstream. */
static void test_body_write_failure_inside_the_parser(void **state)
{
    fixture_t *f = fixture_new("up", "");
    client_send(f, "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    u->cb->on_ready(u->owner);
    F.body_rc = SST_ENOMEM;
    char body[2048] = "";
    for (int i = 0; i < 40; i++) /* 40 one-byte chunks: more than SST_WREQ_BUFS spans */
        strcat(body, "1\r\nx\r\n");
    strcat(body, "0\r\n\r\n");
    client_send(f, body);
    int status = 1;
    const char *got = client_read(f, NULL, &status);
    /* the backend never got a whole request: the failover answers, as for a refused send */
    assert_non_null(strstr(got, "HTTP/1.1 307 "));
    assert_non_null(strstr(got, "Location: http://b.example/p\r\n"));
    assert_int_equal(F.body_calls, 1); /* the failed one; nothing after it */
    assert_false(u->request_sent);
    F.body_rc = 0;
    fixture_free(f);
}

/* Response back-pressure: a client that does not read makes the connection pause the
 * upstream; once the client reads, it is resumed. */
static void test_response_backpressure(void **state)
{
    fixture_t *f = fixture_new("up", "limits: {buffer: 4096}\n");
    client_send(f, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    u->cb->on_ready(u->owner);
    resp_t r;
    resp_parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
    assert_int_equal(u->cb->on_head(u->owner, &r.resp, r.head), 0);
    sst_chunk_t *ch = sst__chunk_get(&f->w->bufs);
    memset(ch->data, 'z', ch->size);
    size_t sent = 0;
    while (!u->paused && sent < 1000000000) { /* until the kernel's buffers are full */
        u->cb->on_body(u->owner, ch, ch->data, ch->size);
        u->cb->on_flush(u->owner);
        sent += ch->size;
    }
    assert_true(u->paused);
    sst__chunk_unref(&f->w->bufs, ch);
    /* the client reads: the queue drains, the upstream resumes */
    uint64_t end = ms_now() + 5000;
    while (u->resumed == 0 && ms_now() < end) {
        char tmp[65536];
        while (recv(f->client, tmp, sizeof(tmp), 0) > 0)
            ;
        spin(f);
    }
    assert_int_equal(u->resumed, 1);
    assert_false(u->paused);
    sst_head_free(r.head);
    fixture_free(f);
}

/* The client goes away while the backend works: the attempt is aborted, not blamed on the
 * backend (no failure kind, no passive signal). */
static void test_client_gone(void **state)
{
    fixture_t *f = fixture_new("up", "");
    client_send(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    u->cb->on_ready(u->owner);
    close(f->client);
    f->client = -1;
    uint64_t end = ms_now() + 5000;
    while (!u->aborted && ms_now() < end)
        spin(f);
    assert_true(u->aborted);
    assert_int_equal(u->abort_kind, SST_M_UP_FAILS);
    assert_int_equal(sst_counter_get(&f->w->metrics->client_aborts), 1);
    assert_non_null(strstr(last_access, " 499 "));
    sst_passive_msg_t m;
    assert_false(sst__passive_pop(&f->w->passive, &m));
    fixture_free(f);
}

/* A small body to a redirected route is read and dropped, the connection kept; a malformed
 * request gets 400 and the connection closes. */
static void test_local_answers(void **state)
{
    fixture_t *f = fixture_new("down", "");
    client_send(f, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel");
    for (int i = 0; i < 10; i++)
        spin(f);
    assert_int_equal(the_conn(f)->state, SST_CONN_LOCAL); /* the answer waits for the body */
    client_send(f, "lo");
    client_read(f, "Redirecting to region b.\n", NULL);
    assert_null(strstr(rx, "Connection: close"));
    assert_int_equal(the_conn(f)->state, SST_CONN_IDLE);
    client_send(f, "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"); /* obs-fold */
    int st = 1;
    client_read(f, NULL, &st); /* the answer, then the end of the connection */
    assert_int_equal(st, 0);
    assert_non_null(strstr(rx, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(rx, "Connection: close\r\n"));
    fixture_free(f);
}

/* The request head deadline: a head not done in time gets 408 and the connection lingers. */
static void test_head_timeout(void **state)
{
    fixture_t *f = fixture_new("up", "timeouts: {request_head: 20ms}\n");
    client_send(f, "GET / HTTP/1.1\r\nHo");
    sst_conn_t *c = the_conn(f);
    uint64_t end = ms_now() + 5000;
    while (c->state != SST_CONN_HEAD && ms_now() < end)
        spin(f);
    assert_int_equal(c->state, SST_CONN_HEAD);
    assert_true(c->dl.due != UINT64_MAX);
    struct timespec ts = {0, 40000000};
    nanosleep(&ts, NULL);
    uv_update_time(&f->w->loop);
    sst__conn_on_deadline(&c->dl);
    client_read(f, "408 Request Timeout", NULL);
    assert_int_equal(c->state, SST_CONN_LINGER);
    assert_int_equal(sst_counter_get(&f->w->metrics->timeouts[SST_M_TIMEOUT_HEAD]), 1);
    fixture_free(f);
}

/* ---- the PROXY protocol (issue 16) ---------------------------------------------------------- */

static const char pp_listen[] =
    "[{address: 127.0.0.1:0, proxy_protocol: true, proxy_protocol_from: [127.0.0.0/8]}]";

/* The declared client is the client: peer_ip, trusted_proxies, X-Forwarded-For, the access
 * log, and the header that opens the backend connection (send_proxy_protocol: v2). */
static void test_proxy_header_declares_the_client(void **state)
{
    fixture_t *f = fixture_new_ex(pp_listen, "send_proxy_protocol: v2,", "up",
                                  "trusted_proxies: [203.0.113.0/24]\n");
    client_send(f, "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n"
                   "GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    sst_conn_t *c = the_conn(f);
    assert_string_equal(c->peer_ip, "203.0.113.7");
    assert_true(c->peer_trusted); /* the declared client is trusted, not the peer */
    assert_int_equal(sst_counter_get(&f->w->metrics->pp_accepted[0][SST_PP_PROXY]), 1);

    /* the backend connection opens with the declared client and destination */
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(5555)};
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "203.0.113.7", &s.sin_addr);
    inet_pton(AF_INET, "192.0.2.1", &d.sin_addr);
    char want[SST_PP_WRITE_MAX];
    int n = sst_pp_write(2, (struct sockaddr *)&s, (struct sockaddr *)&d, want, sizeof(want));
    assert_int_equal(F.connect_pp.len, n);
    assert_memory_equal(F.connect_pp.bytes, want, (size_t)n);
    assert_int_equal(F.take_pp.len, n); /* and only such a pooled one would do */

    u->cb->on_ready(u->owner);
    u->sent[u->sent_len] = 0;
    assert_non_null(strstr(u->sent, "X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\n"));
    up_respond(f, u, "HTTP/1.1 204 No Content\r\n\r\n", NULL);
    u->cb->on_done(u->owner);
    client_read(f, "HTTP/1.1 204 No Content\r\n", NULL);
    assert_true(strncmp(strchr(last_access, ' '), " 203.0.113.7 \"GET /a", 20) == 0);
    fixture_free(f);
}

/* Without send_proxy_protocol no header is asked for, and the TCP peer stays the client on a
 * plain listener. */
static void test_no_proxy_header_by_default(void **state)
{
    fixture_t *f = fixture_new("up", "");
    client_send(f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_upstream(f, 1);
    assert_int_equal(F.connect_pp.len, 0);
    assert_int_equal(F.take_pp.len, 0);
    assert_string_equal(the_conn(f)->peer_ip, "127.0.0.1");
    assert_null(the_conn(f)->tp.pp);
    fixture_free(f);
}

/* Refusals close without a byte of answer, each counted by its reason. */
static void expect_closed_unanswered(fixture_t *f)
{
    int status = 1;
    client_read(f, NULL, &status);
    assert_int_equal(rx_len, 0);
    assert_int_equal(F.n_ups, 0);
}

static void test_proxy_refusals(void **state)
{
    sst_counter_t *r;
    /* a peer outside proxy_protocol_from: closed at accept, before a byte is read */
    fixture_t *f = fixture_new_ex(
        "[{address: 127.0.0.1:0, proxy_protocol: true, proxy_protocol_from: [10.0.0.0/8]}]", "",
        "up", "");
    client_send(f, "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nGET / HTTP/1.1\r\n\r\n");
    expect_closed_unanswered(f);
    r = f->w->metrics->pp_rejected;
    assert_int_equal(sst_counter_get(&r[SST_M_PP_NOT_ALLOWED]), 1);
    fixture_free(f);

    /* no header: the parser's reason */
    f = fixture_new_ex(pp_listen, "", "up", "");
    client_send(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_closed_unanswered(f);
    r = f->w->metrics->pp_rejected;
    assert_int_equal(sst_counter_get(&r[SST_PP_ERR_BAD_SIGNATURE]), 1);
    fixture_free(f);

    /* the peer goes away inside the header */
    f = fixture_new_ex(pp_listen, "", "up", "");
    client_send(f, "PROXY TCP4 203.0");
    shutdown(f->client, SHUT_WR);
    expect_closed_unanswered(f);
    r = f->w->metrics->pp_rejected;
    assert_int_equal(sst_counter_get(&r[SST_M_PP_EOF]), 1);
    fixture_free(f);

    /* no whole header within timeouts.request_head: not an idle timeout */
    f = fixture_new_ex(pp_listen, "", "up", "timeouts: {request_head: 20ms}\n");
    client_send(f, "PROXY TCP4 203.0");
    sst_conn_t *c = the_conn(f);
    assert_true(sst__tp_pp_waiting(&c->tp));
    struct timespec ts = {0, 40000000};
    nanosleep(&ts, NULL);
    uv_update_time(&f->w->loop);
    sst__conn_on_deadline(&c->dl);
    expect_closed_unanswered(f);
    r = f->w->metrics->pp_rejected;
    assert_int_equal(sst_counter_get(&r[SST_M_PP_TIMEOUT]), 1);
    assert_int_equal(sst_counter_get(&f->w->metrics->timeouts[SST_M_TIMEOUT_IDLE]), 0);
    fixture_free(f);
}

/* ---- issue 15: the per-try timeout, evidence of life, idempotency keys, passive signals ---- */

#define TRY_ROUTE ", retries: 1, try_timeout: 300ms, idempotency_header: Idempotency-Key"
#define TWO_A     "127.0.0.1:1, 127.0.0.1:2"

static void fire_try(sst_upstream_t *u)
{
    u->cb->on_try_timeout(u->owner);
}

/* One backend of the region silent, the other answering other requests meanwhile: the
 * abandoned attempt is retried there (200). The abandoned connection is aborted as a try
 * timeout (closed, never pooled) and reported as a passive TIMEOUT. */
static void test_try_timeout_retry_on_a_live_backend(void **state)
{
    fixture_t *f = fixture_new_full(TWO_A, "up", "up", TRY_ROUTE, "");
    client_send(f, "GET /t HTTP/1.1\r\nHost: x\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    size_t first = u->backend, other = 1 - first;
    assert_int_equal(u->try_ms, 300);
    u->cb->on_ready(u->owner);
    f->w->conns.alive_ms[other] = uv_now(&f->w->loop); /* it answered someone meanwhile */
    fire_try(u);
    assert_true(u->aborted);
    assert_int_equal(u->abort_kind, SST_M_UP_TRY_TIMEOUT);
    sst_upstream_t *u2 = wait_upstream(f, 2);
    assert_int_equal(u2->backend, other);
    assert_int_equal(sst_counter_get(&f->w->metrics->retries), 1);
    u2->cb->on_ready(u2->owner);
    up_respond(f, u2, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok");
    u2->cb->on_done(u2->owner);
    client_read(f, "\r\n\r\nok", NULL);
    assert_int_equal(passive_count(f, first, SST_PASSIVE_TIMEOUT), 1);
    fixture_free(f);
}

/* The whole region silent: no other backend showed life since the attempt began, so no
 * second wait: the 307 to the next region at once (in-flight failover). */
static void test_try_timeout_silent_region_307(void **state)
{
    fixture_t *f = fixture_new_full(TWO_A, "up", "up", TRY_ROUTE, "");
    client_send(f, "GET /s?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    size_t first = u->backend;
    u->cb->on_ready(u->owner);
    /* life seen before the attempt began is no evidence */
    f->w->conns.alive_ms[1 - first] = the_conn(f)->req->attempt_ms - 1;
    fire_try(u);
    client_read(f, "Location: http://b.example/s?q=1", NULL);
    assert_non_null(strstr(rx, "HTTP/1.1 307"));
    assert_int_equal(F.n_ups, 1);
    assert_int_equal(sst_counter_get(&f->w->metrics->retries), 0);
    assert_int_equal(sst_counter_get(&f->w->metrics->inflight_failovers[f->prep->region_mid[0]]),
                     1);
    assert_int_equal(passive_count(f, first, SST_PASSIVE_TIMEOUT), 1);
    assert_int_equal(the_conn(f)->state, SST_CONN_IDLE); /* no body: the connection stays */
    fixture_free(f);
}

/* No redirect left (the failover region is down): waiting on the other backend beats a 504,
 * live or not; once it is silent too, 504. */
static void test_try_timeout_no_redirect_left(void **state)
{
    fixture_t *f = fixture_new_full(TWO_A, "up", "down", TRY_ROUTE, "");
    client_send(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    u->cb->on_ready(u->owner);
    fire_try(u);
    sst_upstream_t *u2 = wait_upstream(f, 2);
    assert_int_not_equal(u2->backend, u->backend);
    u2->cb->on_ready(u2->owner);
    fire_try(u2);
    client_read(f, "HTTP/1.1 504 Gateway Timeout", NULL);
    assert_non_null(strstr(last_access, "backend try timeout"));
    fixture_free(f);
}

/* Three backends, one live: a retry after a timeout goes to the live one, never to the one
 * that showed no life (it counts as tried). A connect timeout follows the same rule; with
 * none live, the 307 at once. */
static void test_timeout_retry_only_on_live_backends(void **state)
{
    for (int round = 0; round < 6; round++) {
        fixture_t *f = fixture_new_full("127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:4", "up", "up",
                                        ", retries: 2, try_timeout: 300ms", "");
        client_send(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        sst_upstream_t *u = wait_upstream(f, 1);
        size_t live = (u->backend + 1 + (size_t)(round % 3 == 2)) % 3;
        bool connect = round >= 3;
        if (round % 3 != 0)
            f->w->conns.alive_ms[live] = uv_now(&f->w->loop);
        if (connect) {
            u->owner = NULL;
            u->cb->on_fail(the_conn(f), SST_FAIL_CONNECT, SST_M_UP_CONNECT_TIMEOUT, "ctout");
        } else {
            u->cb->on_ready(u->owner);
            fire_try(u);
        }
        if (round % 3 == 0) {
            client_read(f, "Location: http://b.example/", NULL);
            assert_int_equal(F.n_ups, 1);
        } else {
            sst_upstream_t *u2 = wait_upstream(f, 2);
            assert_int_equal(u2->backend, live);
            /* and the third backend, silent, is not tried after the live one fails */
            u2->owner = NULL;
            u2->cb->on_fail(the_conn(f), SST_FAIL_CONNECT, SST_M_UP_REFUSED, "refused");
            client_read(f, "Location: http://b.example/", NULL);
            assert_int_equal(F.n_ups, 2);
        }
        if (connect)
            assert_int_equal(passive_count(f, u->backend, SST_PASSIVE_CONNECT_TIMEOUT), 1);
        fixture_free(f);
    }
}

/* A POST without a key is never abandoned: the try timeout is only reported (one passive
 * TIMEOUT), the request waits for the response timeout (504), which is not reported again,
 * and it reached one backend once. */
static void test_try_timeout_post_waits(void **state)
{
    fixture_t *f = fixture_new_full(TWO_A, "up", "up", TRY_ROUTE, "");
    client_send(f, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    sst_upstream_t *u = wait_upstream(f, 1);
    assert_int_equal(u->try_ms, 300); /* the connect is bounded for every request */
    u->cb->on_ready(u->owner);
    uint64_t end = ms_now() + 5000;
    while (!u->request_sent && ms_now() < end)
        spin(f);
    fire_try(u);
    assert_false(u->aborted);
    assert_ptr_equal(the_conn(f)->up, u);
    fire_try(u); /* at most one report per attempt, whatever the upstream does */
    u->owner = NULL;
    u->cb->on_fail(the_conn(f), SST_FAIL_RESPONSE_TIMEOUT, SST_M_UP_TIMEOUT, "response timeout");
    client_read(f, "HTTP/1.1 504 Gateway Timeout", NULL);
    assert_int_equal(F.n_ups, 1);
    assert_int_equal(passive_count(f, u->backend, SST_PASSIVE_TIMEOUT), 1);
    fixture_free(f);
}

/* What counts as an idempotency key: one well-formed field, forwarded as sent. A keyed POST
 * is abandoned at the try timeout and, its body already read, sent to the next region with a
 * 307 (the client re-sends it; never a second copy from sidestep); without a valid key it
 * waits. */
static void test_idempotency_keys(void **state)
{
    static const struct {
        const char *fields;
        bool key;
    } cases[] = {
        {"Idempotency-Key: \"8e03978e-40d5-43e8-bc93-6894a57f9324\"\r\n", true},
        {"idempotency-key:   \"k\"  \r\n", true}, /* names are case-insensitive, OWS trimmed */
        {"Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324\r\n", false}, /* unquoted */
        {"Idempotency-Key: \"\"\r\n", false},                                 /* empty */
        {"Idempotency-Key: \"a\";p=1\r\n", false},                            /* parameters */
        {"Idempotency-Key: \"a\"\r\nIdempotency-Key: \"a\"\r\n", false},      /* twice */
        {"Connection: Idempotency-Key\r\nIdempotency-Key: \"a\"\r\n", false}, /* hop-by-hop */
        {"X-Other: \"a\"\r\n", false},
    };
    char req[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture_t *f = fixture_new_full(TWO_A, "up", "up", TRY_ROUTE, "");
        snprintf(req, sizeof(req), "POST /k HTTP/1.1\r\nHost: x\r\n%sContent-Length: 3\r\n\r\nabc",
                 cases[i].fields);
        client_send(f, req);
        sst_upstream_t *u = wait_upstream(f, 1);
        if (the_conn(f)->req->idem_key != cases[i].key)
            fail_msg("case %zu: key %d", i, the_conn(f)->req->idem_key);
        u->cb->on_ready(u->owner);
        uint64_t end = ms_now() + 5000;
        while (!u->request_sent && ms_now() < end)
            spin(f);
        fire_try(u);
        if (cases[i].key) {
            assert_true(u->aborted);
            client_read(f, "Location: http://b.example/k", NULL);
            assert_non_null(strstr(rx, "HTTP/1.1 307"));
            assert_non_null(strstr(rx, "Connection: close")); /* the body was read */
        } else {
            assert_false(u->aborted);
        }
        assert_int_equal(F.n_ups, 1); /* never a second copy */
        fixture_free(f);
    }
    /* without idempotency_header on the route, a valid key means nothing */
    fixture_t *f = fixture_new_full(TWO_A, "up", "up", ", retries: 1, try_timeout: 300ms", "");
    client_send(f, "POST /k HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \"a\"\r\n"
                   "Content-Length: 1\r\n\r\nz");
    wait_upstream(f, 1);
    assert_false(the_conn(f)->req->idem_key);
    fixture_free(f);
}

/* The passive OK that ends a run of failures waits for the response to complete: a head
 * alone sends nothing, the end does. A response head is evidence of life. */
static void test_passive_ok_at_completion(void **state)
{
    fixture_t *f = fixture_new_full(TWO_A, "up", "up", ", retries: 1", "");
    client_send(f, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
    sst_upstream_t *u = wait_upstream(f, 1);
    size_t x = u->backend;
    u->cb->on_ready(u->owner);
    u->owner = NULL;
    u->cb->on_fail(the_conn(f), SST_FAIL_RESPONSE_TIMEOUT, SST_M_UP_TIMEOUT, "response timeout");
    client_read(f, "504", NULL);
    assert_int_equal(passive_count(f, x, SST_PASSIVE_TIMEOUT), 1);
    /* the next request goes to the other backend (round-robin), the one after to x again */
    for (int i = 2; i <= 3; i++) {
        client_send(f, "GET /n HTTP/1.1\r\nHost: x\r\n\r\n");
        u = wait_upstream(f, i);
        u->cb->on_ready(u->owner);
        uint64_t before = uv_now(&f->w->loop);
        up_respond(f, u, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", NULL);
        assert_true(f->w->conns.alive_ms[u->backend] >= before);
        sst_passive_msg_t m;
        assert_false(sst__passive_pop(&f->w->passive, &m)); /* nothing at the head */
        sst_chunk_t *ch = sst__chunk_get(&f->w->bufs);
        memcpy(ch->data, "ok", 2);
        u->cb->on_body(u->owner, ch, ch->data, 2);
        sst__chunk_unref(&f->w->bufs, ch);
        u->cb->on_done(u->owner);
        client_read(f, "\r\n\r\nok", NULL);
        assert_int_equal(passive_count(f, x, SST_PASSIVE_OK), u->backend == x ? 1 : 0);
    }
    assert_int_equal(F.ups[2].backend, x);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_proxy_exchange),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_reroute_after_refusals),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_request_backpressure),
        cmocka_unit_test(test_body_write_failure_inside_the_parser),
        cmocka_unit_test(test_response_backpressure),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_local_answers),
        cmocka_unit_test(test_head_timeout),
        cmocka_unit_test(test_proxy_header_declares_the_client),
        cmocka_unit_test(test_no_proxy_header_by_default),
        cmocka_unit_test(test_proxy_refusals),
        cmocka_unit_test(test_try_timeout_retry_on_a_live_backend),
        cmocka_unit_test(test_try_timeout_silent_region_307),
        cmocka_unit_test(test_try_timeout_no_redirect_left),
        cmocka_unit_test(test_timeout_retry_only_on_live_backends),
        cmocka_unit_test(test_try_timeout_post_waits),
        cmocka_unit_test(test_idempotency_keys),
        cmocka_unit_test(test_passive_ok_at_completion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
