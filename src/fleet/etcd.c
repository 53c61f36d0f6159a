/* The etcd gateway client's I/O: connections (keep-alive pool for unary calls, one per watch),
 * endpoint failover, timeouts, and delivery of results. Request kinds are etcd_call.c's, decoding
 * etcd_codec.c's, HTTP parsing http1.c's. Callbacks never run inside the call that started them. */
#include "fleet/etcd.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <uv.h>

#include "fleet/etcd_codec.h"
#include "fleet/etcd_internal.h"
#include "http/http1.h"
#include "sidestep/error.h"

#define ETCD_HEAD_MAX (64 * 1024)
#define ETCD_LINE_MAX 8192
#define ETCD_FIELDS   100

/* A uv_write and the bytes it sends, freed in its callback (which runs, with UV_ECANCELED,
 * before the connection's close callback). */
typedef struct etcd_write_s {
    uv_write_t req;
    etcd_conn_t *conn;
    char data[];
} etcd_write_t;

static void conn_close(etcd_conn_t *conn);

/* ---- client lifetime ---------------------------------------------------------------------- */

int sst_etcd_parse_endpoint(const char *url, size_t len, bool resolve, sst_addr_t *out)
{
    /* one rule for the config loader and the client: the loader sits below fleet/ */
    return sst_parse_endpoint(url, len, resolve, out);
}

static void etcd_on_done_timer(uv_timer_t *t);

int sst_etcd_new(uv_loop_t *loop, const sst_etcd_opts_t *o, sst_etcd_t **out)
{
    if (loop == NULL || o == NULL || out == NULL || o->endpoints == NULL || o->n_endpoints == 0 ||
        o->n_endpoints > SST_ETCD_MAX_ENDPOINTS || o->max_message > (1u << 30))
        return SST_EINVAL; /* json-c takes lengths as int */
    for (size_t i = 0; i < o->n_endpoints; i++)
        if (o->endpoints[i].salen == 0 || o->endpoints[i].port == 0)
            return SST_EINVAL; /* unresolved: names are resolved at config time, never here */
    sst_etcd_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return SST_ENOMEM;
    e->loop = loop;
    memcpy(e->endpoints, o->endpoints, o->n_endpoints * sizeof(o->endpoints[0]));
    e->n_endpoints = o->n_endpoints;
    e->dial_timeout_ms = o->dial_timeout_ms ? o->dial_timeout_ms : 2000;
    e->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 5000;
    e->max_message = o->max_message ? o->max_message : SST_ETCD_MAX_MESSAGE;
    e->max_idle = o->max_idle ? o->max_idle : 4;
    e->keepalive_s = o->watch_keepalive_s ? o->watch_keepalive_s : 10;
    sst_list_init(&e->conns);
    sst_list_init(&e->idle);
    sst_list_init(&e->calls);
    sst_list_init(&e->done);
    int rc = uv_timer_init(loop, &e->done_timer);
    if (rc != 0) {
        free(e);
        return rc;
    }
    e->done_timer.data = e;
    *out = e;
    return 0;
}

static void etcd_on_freed(uv_handle_t *h)
{
    sst_etcd_t *e = h->data;
    sst_etcd_close_cb cb = e->close_cb;
    void *arg = e->close_arg;
    free(e);
    if (cb != NULL)
        cb(arg);
}

/* Frees the client once closing and nothing is left: no connection, nothing to deliver. */
static void etcd_maybe_free(sst_etcd_t *e)
{
    if (!e->closing || e->freeing || !sst_list_empty(&e->conns) || !sst_list_empty(&e->done))
        return;
    assert(sst_list_empty(&e->calls));
    e->freeing = true;
    uv_close((uv_handle_t *)&e->done_timer, etcd_on_freed);
}

/* ---- finishing and delivering calls ------------------------------------------------------- */

void sst__etcd_diag_printf(sst__etcd_diag_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(d->message, sizeof(d->message), fmt, ap) < 0)
        d->message[0] = 0;
    va_end(ap);
}

void sst__etcd_call_free(etcd_call_t *c)
{
    if (c->tok != NULL)
        json_tokener_free(c->tok);
    free(c->body);
    free(c->resp);
    free(c);
}

/* Detaches the call from its connection (which the caller closes or pools) and queues its
 * callback. For a watch, c->end says why it ended. */
static void call_finish(etcd_call_t *c, int status)
{
    sst_etcd_t *e = c->e;
    assert(!c->finished);
    c->finished = true;
    c->status = status;
    if (c->conn != NULL) {
        c->conn->call = NULL;
        c->conn = NULL;
    }
    sst_list_remove(&c->link);
    sst_list_append(&e->done, &c->link);
    if (!e->freeing)
        uv_timer_start(&e->done_timer, etcd_on_done_timer, 0, 0);
}

/* Fails a running call: status, message, and its connection closed. */
void sst__etcd_call_fail(etcd_call_t *c, int status, bool close_conn)
{
    etcd_conn_t *conn = c->conn;
    if (c->kind == SST__ETCD_WATCH) {
        c->end.kind = SST_ETCD_WATCH_END;
        c->end.err = status;
    }
    call_finish(c, status);
    if (close_conn && conn != NULL)
        conn_close(conn);
}

static void call_deliver(etcd_call_t *c)
{
    sst__etcd_arena_t arena = {NULL};
    sst_etcd_resp_t resp;
    int status = c->status;

    if (c->kind == SST__ETCD_WATCH) {
        sst_etcd_watch_msg_t msg = c->end;
        msg.kind = SST_ETCD_WATCH_END;
        msg.err = status;
        msg.last_revision = c->last_revision;
        msg.grpc_code = c->diag.grpc_code;
        msg.message = c->diag.message;
        c->wcb(c->arg, &msg);
        return;
    }
    memset(&resp, 0, sizeof(resp));
    if (status == 0) {
        status = sst__etcd_decode(c->kind, c->http_status, c->resp, c->resp_len, &arena, &resp,
                                  &c->diag);
    }
    resp.grpc_code = status == 0 ? 0 : c->diag.grpc_code;
    resp.message = status == 0 ? "" : c->diag.message;
    c->cb(c->arg, status, &resp);
    sst__etcd_arena_free(&arena);
}

static void etcd_on_done_timer(uv_timer_t *t)
{
    sst_etcd_t *e = t->data;
    /* Calls finished by the callbacks run here are delivered in this same loop. */
    while (!sst_list_empty(&e->done)) {
        etcd_call_t *c = sst_container_of(e->done.next, etcd_call_t, link);
        sst_list_remove(&c->link);
        call_deliver(c);
        sst__etcd_call_free(c);
    }
    etcd_maybe_free(e);
}

/* ---- connections -------------------------------------------------------------------------- */

static void conn_on_closed(uv_handle_t *h)
{
    etcd_conn_t *conn = h->data;
    if (--conn->pending_closes > 0)
        return;
    sst_etcd_t *e = conn->e;
    sst_list_remove(&conn->link);
    sst_head_free(conn->head);
    free(conn);
    etcd_maybe_free(e);
}

static void conn_close(etcd_conn_t *conn)
{
    if (conn->state == CONN_CLOSING)
        return;
    if (conn->state == CONN_IDLE) {
        sst_list_remove(&conn->idle);
        conn->e->n_idle--;
    }
    assert(conn->call == NULL || conn->call->conn == conn);
    if (conn->call != NULL) {
        conn->call->conn = NULL;
        conn->call = NULL;
    }
    conn->state = CONN_CLOSING;
    conn->pending_closes = 2;
    uv_close((uv_handle_t *)&conn->tcp, conn_on_closed);
    uv_close((uv_handle_t *)&conn->timer, conn_on_closed);
}

/* After a failure on endpoint i, later calls start with the next endpoint, and the pool drops
 * its connections to i. */
static void etcd_endpoint_failed(sst_etcd_t *e, size_t i)
{
    if (e->n_endpoints < 2 || e->preferred != i)
        return;
    e->preferred = (i + 1) % e->n_endpoints;
    sst_link_t *l = e->idle.next;
    while (l != &e->idle) {
        etcd_conn_t *conn = sst_container_of(l, etcd_conn_t, idle);
        l = l->next;
        if (conn->endpoint == i)
            conn_close(conn);
    }
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    etcd_conn_t *conn = h->data;
    *buf = uv_buf_init(conn->rbuf, sizeof(conn->rbuf));
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int conn_on_body(void *opaque, const char *at, size_t len);
static void conn_on_eof(etcd_conn_t *conn, int err);

/* Arms the connection's timer for the call's deadline (a watch past creation has none). */
static void conn_on_timer(uv_timer_t *t);

static void conn_arm(etcd_conn_t *conn, etcd_call_t *c)
{
    uint64_t now = uv_now(conn->e->loop);
    uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
    uv_timer_start(&conn->timer, conn_on_timer, left, 0);
}

static void conn_on_written(uv_write_t *req, int status)
{
    etcd_write_t *w = req->data;
    etcd_conn_t *conn = w->conn;
    free(w);
    /* as a read error would: a pooled connection etcd closed is retried the same way */
    if (status < 0 && conn->state == CONN_BUSY && conn->call != NULL)
        conn_on_eof(conn, status);
}

/* Writes the call's request: the head (Host is the endpoint) and the JSON body. */
static int conn_send(etcd_conn_t *conn)
{
    etcd_call_t *c = conn->call;
    const char *path = sst__etcd_path(c->kind);
    const sst_addr_t *ep = &conn->e->endpoints[conn->endpoint];
    char clen[24];
    size_t clen_n = sst_u64_to_dec(c->body_len, clen);
    const struct {
        const char *p;
        size_t n;
    } parts[] = {
        {"POST ", 5},
        {path, strlen(path)},
        {" HTTP/1.1\r\nHost: ", 17},
        {ep->text, strlen(ep->text)},
        {"\r\nUser-Agent: sidestep/" SST_VERSION "\r\nContent-Type: application/json\r\n"
         "Content-Length: ",
         sizeof("\r\nUser-Agent: sidestep/" SST_VERSION "\r\nContent-Type: application/json\r\n"
                "Content-Length: ") -
             1},
        {clen, clen_n},
        {"\r\n\r\n", 4},
        {c->body, c->body_len},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        total += parts[i].n; /* bounded: the body by max_message, the rest by fixed sizes */
    etcd_write_t *w = malloc(sizeof(*w) + total);
    if (w == NULL)
        return SST_ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        memcpy(w->data + off, parts[i].p, parts[i].n);
        off += parts[i].n;
    }
    w->conn = conn;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)total);
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, conn_on_written);
    if (rc != 0)
        free(w);
    return rc;
}

/* Starts the call on a connected (or pooled) connection. */
static void conn_begin(etcd_conn_t *conn, etcd_call_t *c, bool reused)
{
    static const sst_h1_limits_t lim = {ETCD_LINE_MAX, ETCD_LINE_MAX, ETCD_HEAD_MAX, ETCD_FIELDS,
                                        0};
    conn->state = CONN_BUSY;
    conn->call = c;
    conn->reused = reused;
    conn->got_bytes = false;
    c->conn = conn;
    c->http_status = 0;
    c->streaming = false;
    c->too_big = false;
    c->resp_len = 0;
    sst_head_clear(conn->head, ETCD_HEAD_MAX);
    sst_h1_init(&conn->h1, true, &lim, conn_on_body, conn);
    conn->h1.head = conn->head;
    conn_arm(conn, c);
    int rc = conn_send(conn);
    if (rc != 0) {
        sst__etcd_diag_printf(&c->diag, "sending to etcd: %s", sst_strerror(rc));
        sst__etcd_call_fail(c, rc == SST_ENOMEM ? SST_ENOMEM : SST_ECONNRESET, true);
    }
}

static void conn_on_connect(uv_connect_t *req, int status)
{
    etcd_conn_t *conn = req->data;
    sst_etcd_t *e = conn->e;
    etcd_call_t *c = conn->call;
    if (conn->state != CONN_CONNECTING || c == NULL)
        return; /* closed meanwhile (UV_ECANCELED) */
    if (status < 0) {
        sst__etcd_diag_printf(&c->diag, "connect to etcd %s: %s", e->endpoints[conn->endpoint].text,
                              sst_strerror(status));
        c->status = status == UV_ETIMEDOUT ? SST_ETIMEDOUT : SST_ECONNREFUSED;
        etcd_endpoint_failed(e, conn->endpoint);
        conn_close(conn);
        sst__etcd_call_dispatch(c, false);
        return;
    }
    e->preferred = conn->endpoint;
    uv_tcp_nodelay(&conn->tcp, 1);
    if (c->kind == SST__ETCD_WATCH)
        uv_tcp_keepalive(&conn->tcp, 1, e->keepalive_s);
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, conn_on_alloc, conn_on_read);
    if (rc != 0) {
        sst__etcd_diag_printf(&c->diag, "reading from etcd: %s", sst_strerror(rc));
        sst__etcd_call_fail(c, SST_ECONNRESET, true);
        return;
    }
    conn_begin(conn, c, false);
}

/* Opens a connection for `c` to endpoint i. Returns 0, or a negative code with nothing left
 * open (the caller tries the next endpoint). */
static int conn_open(etcd_call_t *c, size_t i)
{
    sst_etcd_t *e = c->e;
    etcd_conn_t *conn = calloc(1, sizeof(*conn));
    int rc;
    if (conn == NULL || (conn->head = sst_head_new()) == NULL) {
        free(conn);
        return SST_ENOMEM;
    }
    conn->e = e;
    conn->endpoint = i;
    sst_list_init(&conn->idle);
    if ((rc = uv_tcp_init(e->loop, &conn->tcp)) != 0) {
        sst_head_free(conn->head);
        free(conn);
        return rc;
    }
    conn->tcp.data = conn;
    uv_timer_init(e->loop, &conn->timer); /* cannot fail: it only initialises the struct */
    conn->timer.data = conn;
    sst_list_append(&e->conns, &conn->link);
    conn->state = CONN_CONNECTING;
    conn->call = c;
    c->conn = conn;
    conn->connect.data = conn;
    rc = uv_tcp_connect(&conn->connect, &conn->tcp, (const struct sockaddr *)&e->endpoints[i].sa,
                        conn_on_connect);
    if (rc != 0) {
        conn_close(conn);
        return rc;
    }
    uint64_t now = uv_now(e->loop);
    uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
    uv_timer_start(&conn->timer, conn_on_timer,
                   left < e->dial_timeout_ms ? left : e->dial_timeout_ms, 0);
    return 0;
}

/* Puts `c` on a connection: a pooled one to the preferred endpoint when allowed, else a new one
 * to the next endpoint not tried yet. With none left, the call fails with the last error. */
void sst__etcd_call_dispatch(etcd_call_t *c, bool allow_reuse)
{
    sst_etcd_t *e = c->e;
    if (allow_reuse && c->kind != SST__ETCD_WATCH) {
        /* the most recently used first: the least likely to have been closed by etcd */
        for (sst_link_t *l = e->idle.prev; l != &e->idle; l = l->prev) {
            etcd_conn_t *conn = sst_container_of(l, etcd_conn_t, idle);
            if (conn->endpoint != e->preferred)
                continue;
            sst_list_remove(&conn->idle);
            e->n_idle--;
            conn_begin(conn, c, true);
            return;
        }
    }
    while (c->attempts < e->n_endpoints) {
        size_t i = (c->first_endpoint + c->attempts++) % e->n_endpoints;
        if (uv_now(e->loop) >= c->deadline_ms)
            break;
        int rc = conn_open(c, i);
        if (rc == 0)
            return;
        sst__etcd_diag_printf(&c->diag, "connect to etcd %s: %s", e->endpoints[i].text,
                              sst_strerror(rc));
        c->status = rc == SST_ENOMEM ? SST_ENOMEM : SST_ECONNREFUSED;
        etcd_endpoint_failed(e, i);
    }
    if (c->status == 0) {
        c->status = SST_ETIMEDOUT;
        sst__etcd_diag_printf(&c->diag, "no etcd endpoint answered within %llu ms",
                              (unsigned long long)e->request_timeout_ms);
    }
    sst__etcd_call_fail(c, c->status, false);
}

static void conn_on_timer(uv_timer_t *t)
{
    etcd_conn_t *conn = t->data;
    sst_etcd_t *e = conn->e;
    etcd_call_t *c = conn->call;
    if (c == NULL)
        return;
    if (conn->state == CONN_CONNECTING) {
        sst__etcd_diag_printf(&c->diag, "connect to etcd %s: no answer within %llu ms",
                              e->endpoints[conn->endpoint].text,
                              (unsigned long long)e->dial_timeout_ms);
        c->status = SST_ETIMEDOUT;
        etcd_endpoint_failed(e, conn->endpoint);
        conn_close(conn);
        sst__etcd_call_dispatch(c, false);
        return;
    }
    if (c->kind == SST__ETCD_WATCH)
        sst__etcd_diag_printf(&c->diag, "etcd %s did not confirm the watch within %llu ms",
                              e->endpoints[conn->endpoint].text,
                              (unsigned long long)e->request_timeout_ms);
    else
        sst__etcd_diag_printf(&c->diag, "no answer from etcd %s within %llu ms",
                              e->endpoints[conn->endpoint].text,
                              (unsigned long long)e->request_timeout_ms);
    etcd_endpoint_failed(e, conn->endpoint);
    sst__etcd_call_fail(c, SST_ETIMEDOUT, true);
}

/* Back to the pool after a complete response, or closed. */
static void conn_release(etcd_conn_t *conn, bool reusable)
{
    sst_etcd_t *e = conn->e;
    uv_timer_stop(&conn->timer);
    if (!reusable || e->closing) {
        conn_close(conn);
        return;
    }
    conn->state = CONN_IDLE;
    sst_list_append(&e->idle, &conn->idle);
    if (++e->n_idle > e->max_idle)
        conn_close(sst_container_of(e->idle.next, etcd_conn_t, idle)); /* the oldest */
}

/* ---- responses ---------------------------------------------------------------------------- */

static int conn_on_body(void *opaque, const char *at, size_t len)
{
    etcd_conn_t *conn = opaque;
    etcd_call_t *c = conn->call;
    if (c == NULL)
        return -1;
    if (c->streaming)
        return sst__etcd_watch_feed(c, at, len);
    size_t max = conn->e->max_message;
    if (len > max - c->resp_len) {
        c->too_big = true;
        return -1;
    }
    if (c->resp_len + len > c->resp_cap) {
        size_t cap = c->resp_cap ? c->resp_cap : 4096;
        while (cap < c->resp_len + len)
            cap = cap > max / 2 ? max : cap * 2;
        char *p = realloc(c->resp, cap);
        if (p == NULL)
            return -1;
        c->resp = p;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, at, len);
    c->resp_len += len;
    return 0;
}

/* Returns 0 to go on with the body, -1 when the call failed. */
static int conn_on_head(etcd_conn_t *conn)
{
    etcd_call_t *c = conn->call;
    sst_h1_response_t r;
    const char *why = NULL;
    if (sst_h1_check_response(&conn->h1, &r, &why) != 0) {
        sst__etcd_diag_printf(&c->diag, "malformed HTTP from etcd %s: %s",
                              conn->e->endpoints[conn->endpoint].text, why ? why : "bad head");
        sst__etcd_call_fail(c, SST_EPROTO, true);
        return -1;
    }
    c->http_status = r.status;
    conn->keep_alive = r.keep_alive;
    if (c->kind == SST__ETCD_WATCH && r.status == 200) {
        c->streaming = true;
        return 0;
    }
    if (r.has_length && r.content_length > conn->e->max_message) {
        sst__etcd_diag_printf(&c->diag, "etcd response larger than %zu bytes",
                              conn->e->max_message);
        sst__etcd_call_fail(c, SST_E2BIG, true);
        return -1;
    }
    return 0;
}

static void conn_on_done(etcd_conn_t *conn, bool leftover)
{
    etcd_call_t *c = conn->call;
    if (c->kind != SST__ETCD_WATCH) {
        bool reusable = conn->keep_alive && !leftover; /* nothing was pipelined: extra bytes
                                                          are a broken peer */
        call_finish(c, 0);                             /* decoded when delivered */
        conn_release(conn, reusable);
        return;
    }
    if (c->streaming) {
        sst__etcd_diag_printf(&c->diag, "etcd %s ended the watch stream",
                              conn->e->endpoints[conn->endpoint].text);
        sst__etcd_call_fail(c, SST_ECONNRESET, true);
        return;
    }
    /* The watch was refused with an error body. */
    sst__etcd_arena_t arena = {NULL};
    sst_etcd_resp_t resp;
    int rc =
        sst__etcd_decode(c->kind, c->http_status, c->resp, c->resp_len, &arena, &resp, &c->diag);
    sst__etcd_arena_free(&arena);
    sst__etcd_call_fail(c, rc != 0 ? rc : SST_EPROTO, true);
}

static void conn_on_eof(etcd_conn_t *conn, int err)
{
    etcd_call_t *c = conn->call;
    sst_etcd_t *e = conn->e;
    if (err == UV_EOF && sst_h1_eof(&conn->h1) == SST_H1_DONE) {
        conn->keep_alive = false; /* a body delimited by the close */
        conn_on_done(conn, false);
        return;
    }
    if (c->kind != SST__ETCD_WATCH && conn->reused && !conn->got_bytes && !c->retried &&
        sst__etcd_idempotent(c->kind)) {
        /* etcd closed the pooled connection as we reused it: once more on a fresh one */
        c->retried = true;
        conn_close(conn);
        c->attempts = 0;
        c->first_endpoint = e->preferred;
        sst__etcd_call_dispatch(c, false);
        return;
    }
    if (c->kind == SST__ETCD_WATCH)
        sst__etcd_diag_printf(&c->diag, "watch connection to etcd %s lost: %s",
                              e->endpoints[conn->endpoint].text,
                              err == UV_EOF ? "closed by etcd" : sst_strerror(err));
    else
        sst__etcd_diag_printf(
            &c->diag, "etcd %s closed the connection before a complete response: %s",
            e->endpoints[conn->endpoint].text, err == UV_EOF ? "end of stream" : sst_strerror(err));
    etcd_endpoint_failed(e, conn->endpoint);
    sst__etcd_call_fail(c, SST_ECONNRESET, true);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    etcd_conn_t *conn = s->data;
    size_t off = 0, len;
    if (nread == 0)
        return;
    if (conn->state == CONN_IDLE) {
        conn_close(conn); /* closed by etcd, or bytes nobody asked for */
        return;
    }
    if (conn->state != CONN_BUSY || conn->call == NULL)
        return;
    if (nread < 0) {
        conn_on_eof(conn, (int)nread);
        return;
    }
    conn->got_bytes = true;
    len = (size_t)nread;
    for (;;) {
        size_t used = 0;
        /* Runs once more after a head even with no bytes left: a body-less response completes
         * only then. */
        sst_h1_rc_t rc = sst_h1_feed(&conn->h1, buf->base + off, len - off, &used);
        if (conn->state != CONN_BUSY || conn->call == NULL)
            return; /* ended from inside (a watch message, or its callback) */
        off += used;
        switch (rc) {
        case SST_H1_MORE:
            return;
        case SST_H1_HEAD:
            if (conn_on_head(conn) != 0)
                return;
            sst_h1_resume(&conn->h1);
            continue;
        case SST_H1_DONE:
            conn_on_done(conn, off < len);
            return;
        case SST_H1_ERROR:
            break;
        }
        etcd_call_t *c = conn->call;
        if (c->too_big)
            sst__etcd_diag_printf(&c->diag, "etcd response larger than %zu bytes",
                                  conn->e->max_message);
        else
            sst__etcd_diag_printf(&c->diag, "malformed HTTP from etcd %s: %s",
                                  conn->e->endpoints[conn->endpoint].text,
                                  conn->h1.err_reason ? conn->h1.err_reason : "parse error");
        sst__etcd_call_fail(c, c->too_big ? SST_E2BIG : SST_EPROTO, true);
        return;
    }
}

void sst_etcd_close(sst_etcd_t *e, sst_etcd_close_cb cb, void *arg)
{
    if (e == NULL || e->closing)
        return;
    e->closing = true;
    e->close_cb = cb;
    e->close_arg = arg;
    while (!sst_list_empty(&e->calls)) {
        etcd_call_t *c = sst_container_of(e->calls.next, etcd_call_t, link);
        sst__etcd_diag_printf(&c->diag, "etcd client closed");
        c->diag.grpc_code = 0;
        sst__etcd_call_fail(c, SST_ECANCELED, true);
    }
    for (sst_link_t *l = e->conns.next; l != &e->conns; l = l->next)
        conn_close(
            sst_container_of(l, etcd_conn_t, link)); /* unlinked only in the close callback */
    uv_timer_start(&e->done_timer, etcd_on_done_timer, 0, 0);
}
