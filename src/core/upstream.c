/* One upstream (backend) connection: connect, send the rebuilt request, parse the response and
 * hand it to its owner through the owner's callbacks (core/upstream.h), report how an attempt
 * failed, decide whether the connection can be reused. It decides nothing about retries or
 * redirects: it tells the owner the failure phase and the owner asks route.c. */
#include "core/upstream.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/transport.h"
#include "core/worker.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

typedef enum sst_up_state_e {
    SST_UP_CONNECTING = 0,
    SST_UP_ACTIVE, /* carrying a request */
    SST_UP_IDLE,   /* in the pool */
    SST_UP_CLOSING,
} sst_up_state_t;

struct sst_upstream_s {
    sst_transport_t tp; /* first: the transport's callbacks find the upstream */
    uv_timer_t timer;
    uv_connect_t connect_req;
    sst_worker_t *w;
    sst_pool_t *pool;
    sst_link_t link; /* the pool's idle list */
    /* the owner while attached (NULL when idle or closing), its callbacks and its request's
     * config (borrowed: the owner keeps it alive while attached) */
    void *owner;
    const sst__upstream_cb_t *cb;
    const sst_config_t *cfg;
    sst_up_state_t state;
    uint8_t pending_closes;
    bool req_queued;   /* the whole request is queued for writing */
    bool req_written;  /* ... and written */
    bool write_failed; /* a request write failed: the read side decides (an early answer?) */
    bool req_full;     /* sst__upstream_writable said false: on_drained is due */
    bool resp_head;    /* a final response head arrived */
    bool resp_done;
    bool keep_alive;
    bool backpressured;  /* the owner paused reading */
    bool tls_started;    /* TLS: TCP is up, the handshake deadline runs */
    bool connect_try;    /* CONNECTING: the deadline is the try timeout's, not timeouts.connect */
    bool try_armed;      /* the request is written and the deadline is the try timeout's */
    uint64_t try_ms;     /* the route's try_timeout for this attempt (issue 15); 0: none */
    uint64_t written_ms; /* when the whole request was written */
    uint64_t connect_started; /* when the connect began: the try timeout counts from it */
    sst_wreq_t *pending;      /* the request head, held until the end of the parse pass */
    uint64_t idle_since;      /* when it went back to the pool */
    uint32_t writes_pending;
    uint64_t deadline;
    uint64_t last_progress;
    sst_h1_t h1;
    sst_head_t *head;
    sst_h1_response_t resp;
    sst_chunk_t *in;
    sst_tp_pp_out_t pp; /* the PROXY header it opened with (len 0: none): its pool key */
};

/* After a failed request write, how long the read side has to show an early answer or the
 * close before the attempt fails. The close of a backend that failed our write is already on
 * its way, so this only bounds an odd kernel error. */
#define WRITE_FAILED_GRACE_MS 1000

static const sst_tp_cb_t up_tp_cb;

/* ---- the state machine ------------------------------------------------------------------- */

static const char *const up_state_names[] = {
    [SST_UP_CONNECTING] = "connecting",
    [SST_UP_ACTIVE] = "active",
    [SST_UP_IDLE] = "idle",
    [SST_UP_CLOSING] = "closing",
};

#ifndef NDEBUG
/* The legal transitions: [from][to]. An upstream starts CONNECTING (calloc). */
static const bool up_legal[SST_UP_CLOSING + 1][SST_UP_CLOSING + 1] = {
    [SST_UP_CONNECTING] = {[SST_UP_ACTIVE] = true, [SST_UP_CLOSING] = true},
    [SST_UP_ACTIVE] = {[SST_UP_IDLE] = true, [SST_UP_CLOSING] = true}, /* pooled, or closed */
    [SST_UP_IDLE] = {[SST_UP_ACTIVE] = true, [SST_UP_CLOSING] = true}, /* reused, or closed */
    [SST_UP_CLOSING] = {false},
};
#endif

/* The only place u->state changes. */
static void up_set_state(sst_upstream_t *u, sst_up_state_t to)
{
    assert(up_legal[u->state][to]);
    sst_debug("upstream %p: %s -> %s", (void *)u, up_state_names[u->state], up_state_names[to]);
    u->state = to;
}
static void up_arm_timer(sst_upstream_t *u);
static int up_on_body(void *opaque, const char *at, size_t len);

/* The config of the request this connection carries (an in-flight request finishes with the
 * limits and timeouts it started with, across a reload), else the worker's current one. */
static inline const sst_config_t *up_cfg(const sst_upstream_t *u)
{
    return u->cfg != NULL ? u->cfg : sst__worker_config(u->w);
}

static inline uint64_t up_now(const sst_upstream_t *u)
{
    return uv_now(&u->w->loop);
}

static inline size_t up_queued(const sst_upstream_t *u)
{
    return sst__tp_queued(&u->tp);
}

bool sst__upstream_writable(sst_upstream_t *u)
{
    if (up_queued(u) <= up_cfg(u)->limits.buffer)
        return true;
    u->req_full = true;
    return false;
}

static void up_detach(sst_upstream_t *u)
{
    u->owner = NULL;
    u->cb = NULL;
    u->cfg = NULL;
}

/* ---- for the pool -------------------------------------------------------------------------- */

sst_link_t *sst__upstream_link(sst_upstream_t *u)
{
    return &u->link;
}

sst_upstream_t *sst__upstream_of_link(sst_link_t *l)
{
    return sst_container_of(l, sst_upstream_t, link);
}

uint64_t sst__upstream_idle_since(const sst_upstream_t *u)
{
    return u->idle_since;
}

/* The backend may have closed the connection since the last loop iteration and its FIN be
 * waiting unread: the transport peeks. */
bool sst__upstream_alive(sst_upstream_t *u)
{
    return sst__tp_alive(&u->tp);
}

bool sst__upstream_pp_is(const sst_upstream_t *u, const sst_tp_pp_out_t *pp)
{
    size_t len = pp != NULL ? pp->len : 0;
    return u->pp.len == len && (len == 0 || memcmp(u->pp.bytes, pp->bytes, len) == 0);
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void up_free(sst_upstream_t *u)
{
    if (u->head != NULL)
        sst__head_put(&u->w->bufs, u->head);
    if (u->in != NULL)
        sst__chunk_unref(&u->w->bufs, u->in);
    free(u);
}

static inline sst_upstream_t *up_of(sst_transport_t *t)
{
    return sst_container_of(t, sst_upstream_t, tp);
}

/* The transport and the timer: freed after the close callback of the last one. */
static void up_closed_one(sst_upstream_t *u)
{
    assert(u->pending_closes > 0);
    if (--u->pending_closes == 0)
        up_free(u); /* the only place an upstream is freed */
}

static void up_tp_on_closed(sst_transport_t *t)
{
    up_closed_one(up_of(t));
}

static void up_on_timer_closed(uv_handle_t *handle)
{
    up_closed_one(handle->data);
}

void sst__upstream_close(sst_upstream_t *u)
{
    if (u->state == SST_UP_CLOSING)
        return;
    if (u->pending != NULL) {
        sst__wreq_put(u->pending);
        u->pending = NULL;
    }
    if (u->state == SST_UP_IDLE)
        sst__pool_forget(u->pool, u);
    up_set_state(u, SST_UP_CLOSING);
    up_detach(u);
    sst__pool_closed(u->pool);
    u->pending_closes = 2;
    sst__tp_close(&u->tp, false);
    uv_close((uv_handle_t *)&u->timer, up_on_timer_closed);
}

static void up_count_failure(sst_upstream_t *u, sst_m_upfail_t kind)
{
    if (kind < SST_M_UP_FAILS)
        sst_counter_add(&u->w->metrics->up_failures[sst__pool_metric_id(u->pool)][kind], 1);
}

void sst__upstream_abort(sst_upstream_t *u, sst_m_upfail_t kind)
{
    if (u->state == SST_UP_CLOSING)
        return;
    up_count_failure(u, kind);
    sst__upstream_close(u);
}

/* Reports a failed attempt to the owner, which decides what follows. The connection is
 * closed and detached first, so the owner's retry finds its pool slot free. */
static void up_fail(sst_upstream_t *u, sst_fail_phase_t phase, sst_m_upfail_t kind, const char *why)
{
    void *owner = u->owner;
    const sst__upstream_cb_t *cb = u->cb;
    if (owner != NULL)
        up_count_failure(u, kind);
    sst__upstream_close(u);
    if (owner != NULL)
        cb->on_fail(owner, phase, kind, why);
}

/* Phase of a failure before a response head: was the request fully written? */
static sst_fail_phase_t up_phase(const sst_upstream_t *u)
{
    if (u->resp_head)
        return SST_FAIL_RESPONSE_STARTED;
    return u->req_written ? SST_FAIL_SENT : SST_FAIL_SEND_PARTIAL;
}

/* ---- timers ------------------------------------------------------------------------------ */

/* The whole request is written: the wait for the response starts, bounded by the try timeout
 * first when there is one (route.c says which deadline applies). */
static void up_request_written(sst_upstream_t *u)
{
    u->req_written = true;
    u->written_ms = up_now(u);
    u->try_armed = sst_route_response_deadline(&up_cfg(u)->timeouts, u->try_ms, u->written_ms,
                                               &u->deadline) == SST_FAIL_TRY_TIMEOUT;
    up_arm_timer(u);
}

/* The backend answers (a byte arrived) or the try timeout was reported: only the response
 * timeout is left, counted from the same write. */
static void up_try_disarm(sst_upstream_t *u)
{
    u->try_armed = false;
    (void)sst_route_response_deadline(&up_cfg(u)->timeouts, 0, u->written_ms, &u->deadline);
}

/* No response byte within try_timeout: the owner decides (issue 15). It gives a repeatable
 * request up, which closes this connection (never pooled), or lets the request wait on. */
static void up_try_expired(sst_upstream_t *u)
{
    up_try_disarm(u);
    if (u->owner != NULL)
        u->cb->on_try_timeout(u->owner);
    if (u->state == SST_UP_CLOSING || u->owner == NULL)
        return;
    sst_counter_add(&u->w->metrics->up_try_waits[sst__pool_metric_id(u->pool)], 1);
    up_arm_timer(u);
}

static void up_on_timer(uv_timer_t *t)
{
    sst_upstream_t *u = t->data;
    const sst_timeouts_cfg_t *to = &up_cfg(u)->timeouts;
    uint64_t now = up_now(u);

    switch (u->state) {
    case SST_UP_CONNECTING:
        if (sst__tp_handshaking(&u->tp) && u->tls_started && !u->connect_try) {
            sst__tp_handshake_expired(&u->tp); /* counted by reason `timeout` */
            up_fail(u, SST_FAIL_CONNECT, SST_M_UP_CONNECT_TIMEOUT, "backend TLS handshake timeout");
            return;
        }
        /* at try_timeout too: nothing was sent, so any request may go elsewhere */
        up_fail(u, SST_FAIL_CONNECT, SST_M_UP_CONNECT_TIMEOUT,
                u->connect_try ? "backend connect try timeout" : "backend connect timeout");
        return;
    case SST_UP_IDLE:
        sst__upstream_close(u);
        return;
    case SST_UP_ACTIVE:
        if (u->resp_head) {
            if (now >= u->last_progress + to->body_ms) {
                up_fail(u, SST_FAIL_RESPONSE_STARTED, SST_M_UP_TIMEOUT,
                        "backend response body timeout");
                return;
            }
        } else if (u->write_failed && now >= u->deadline) {
            up_fail(u, up_phase(u), SST_M_UP_RESET, "backend write failed");
            return;
        } else if (u->req_written && now >= u->deadline) {
            if (u->try_armed) {
                up_try_expired(u);
                return;
            }
            up_fail(u, SST_FAIL_RESPONSE_TIMEOUT, SST_M_UP_TIMEOUT, "backend response timeout");
            return;
        } else if (!u->req_written && !u->write_failed && u->writes_pending > 0 &&
                   to->body_ms > 0 && now >= u->last_progress + to->body_ms) {
            up_fail(u, SST_FAIL_SEND_PARTIAL, SST_M_UP_TIMEOUT,
                    "backend stopped reading the request");
            return;
        }
        up_arm_timer(u);
        return;
    case SST_UP_CLOSING:
        return;
    }
}

static void up_arm_timer(sst_upstream_t *u)
{
    const sst_timeouts_cfg_t *to = &up_cfg(u)->timeouts;
    uint64_t now = up_now(u), d = UINT64_MAX;

    switch (u->state) {
    case SST_UP_CONNECTING:
        d = u->deadline;
        break;
    case SST_UP_IDLE:
        d = u->deadline;
        break;
    case SST_UP_ACTIVE:
        if (u->resp_head) {
            /* a stalled body is cut unless the client is the one not reading */
            if (!u->backpressured && to->body_ms > 0)
                d = u->last_progress + to->body_ms;
        } else if (u->req_written || u->write_failed) {
            d = u->deadline;
        } else if (u->writes_pending > 0 && to->body_ms > 0) {
            /* the request is still being written: a backend that stops reading it is cut
             * after timeouts.body without progress (the client's side is paused meanwhile) */
            d = u->last_progress + to->body_ms;
        }
        break;
    case SST_UP_CLOSING:
        return;
    }
    if (d == UINT64_MAX) {
        uv_timer_stop(&u->timer);
        return;
    }
    if (uv_is_active((uv_handle_t *)&u->timer) && now + uv_timer_get_due_in(&u->timer) <= d)
        return;
    uv_timer_start(&u->timer, up_on_timer, d > now ? d - now : 0, 0);
}

/* ---- connecting -------------------------------------------------------------------------- */

static void up_start_reading(sst_upstream_t *u)
{
    /* on failure the timer ends the attempt (response timeout) or the idle connection */
    (void)sst__tp_read_start(&u->tp);
}

static void up_reset_response(sst_upstream_t *u)
{
    const sst_limits_cfg_t *l = &up_cfg(u)->limits;
    sst_h1_limits_t lim = {
        .request_line = l->header_field,
        .field = l->header_field,
        .head = l->response_header_bytes,
        .headers = l->response_headers,
        .body = 0,
    };
    sst_h1_init(&u->h1, true, &lim, up_on_body, u);
    sst_head_clear(u->head, 16 * 1024);
    u->h1.head = u->head;
    u->resp_head = u->resp_done = false;
    u->req_queued = u->req_written = false;
    u->write_failed = false;
    u->keep_alive = false;
    u->try_armed = false;
}

/* TLS: TCP is up and the handshake runs, bounded by timeouts.tls_handshake from now. */
static void up_tp_on_handshake(sst_transport_t *t)
{
    sst_upstream_t *u = up_of(t);
    if (u->state != SST_UP_CONNECTING)
        return;
    u->tls_started = true;
    /* the handshake gets timeouts.tls_handshake from now, but the attempt's try_timeout
     * (counted from the connect) still cuts it short: nothing was sent either way */
    uint64_t hs = up_now(u) + up_cfg(u)->timeouts.tls_handshake_ms;
    uint64_t try_end = u->try_ms > 0 ? u->connect_started + u->try_ms : UINT64_MAX;
    u->connect_try = try_end <= hs;
    u->deadline = u->connect_try ? try_end : hs;
    uv_timer_stop(&u->timer); /* the connect deadline is over: arm the later one */
    up_arm_timer(u);
}

static void up_tp_on_connect(sst_transport_t *t, int status)
{
    sst_upstream_t *u = up_of(t);
    if (u->state == SST_UP_CLOSING)
        return; /* closed while connecting: ECANCELED */
    if (status == SST_EPROTO && t->kind == SST_TP_TLS) {
        /* a failed handshake is a failed connect: the request was never sent (the in-flight
         * failover applies); the reason is counted by the transport */
        const char *detail;
        const char *why = sst__tp_tls_failure(t, &detail);
        sst_warn("backend %s: TLS handshake failed: %s: %s", sst__pool_key(u->pool), why, detail);
        up_fail(u, SST_FAIL_CONNECT, SST_M_UP_CONNECT_ERROR, "backend TLS handshake failed");
        return;
    }
    if (status < 0) {
        sst_m_upfail_t kind = status == UV_ECONNREFUSED ? SST_M_UP_REFUSED
                              : status == UV_ETIMEDOUT  ? SST_M_UP_CONNECT_TIMEOUT
                                                        : SST_M_UP_CONNECT_ERROR;
        up_fail(u, SST_FAIL_CONNECT, kind,
                kind == SST_M_UP_REFUSED ? "backend connect refused" : "backend connect error");
        return;
    }
    up_set_state(u, SST_UP_ACTIVE);
    u->last_progress = up_now(u);
    uv_timer_stop(&u->timer);
    up_start_reading(u);
    if (u->owner == NULL) {
        sst__upstream_close(u);
        return;
    }
    u->cb->on_ready(u->owner);
}

int sst__upstream_connect(sst_worker_t *w, sst_pool_t *pool, const sst_config_t *cfg,
                          uint64_t try_ms, const sst__upstream_cb_t *cb, void *owner,
                          const sst_tp_pp_out_t *pp, sst_upstream_t **out)
{
    sst_upstream_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return SST_ENOMEM;
    u->head = sst__head_get(&w->bufs);
    if (u->head == NULL) {
        free(u);
        return SST_ENOMEM;
    }
    u->w = w;
    u->pool = pool;
    u->owner = owner;
    u->cb = cb;
    u->cfg = cfg;
    u->try_ms = try_ms;
    sst_list_init(&u->link);
    size_t tls_backend = 0;
    sst_tls_client_t *tls = sst__pool_tls(pool, &tls_backend);
    int rc;
    if (tls != NULL) {
        sst_tp_tls_opts_t o = {.client = tls,
                               .backend = tls_backend,
                               .metrics = &w->metrics->tls,
                               .backend_mid = sst__pool_metric_id(pool)};
        rc = sst__tp_init_tls(&u->tp, &w->loop, &up_tp_cb, &o);
    } else {
        rc = sst__tp_init(&u->tp, &w->loop, SST_TP_TCP, &up_tp_cb);
    }
    if (rc != 0) {
        sst__head_put(&w->bufs, u->head);
        free(u);
        return rc; /* nothing was opened: no callback follows */
    }
    uv_timer_init(&w->loop, &u->timer); /* cannot fail: it allocates nothing */
    u->timer.data = u;
    up_reset_response(u);
    /* CONNECTING, from calloc */
    sst__pool_opened(pool);
    if (pp != NULL)
        u->pp = *pp;
    rc = sst__tp_connect_pp(&u->tp, &u->connect_req, sst__pool_addr(pool), &u->pp);
    if (rc != 0) {
        sst__upstream_close(u);
        return rc;
    }
    u->connect_started = up_now(u);
    u->connect_try =
        sst_route_connect_deadline(&up_cfg(u)->timeouts, try_ms, u->connect_started, &u->deadline);
    up_arm_timer(u);
    *out = u;
    return 0;
}

void sst__upstream_attach(sst_upstream_t *u, const sst_config_t *cfg, uint64_t try_ms,
                          const sst__upstream_cb_t *cb, void *owner)
{
    assert(u->state == SST_UP_IDLE);
    up_set_state(u, SST_UP_ACTIVE);
    u->owner = owner;
    u->cb = cb;
    u->cfg = cfg;
    u->try_ms = try_ms;
    up_reset_response(u);
    u->last_progress = up_now(u);
    uv_timer_stop(&u->timer);
    up_start_reading(u);
}

/* ---- sending the request ----------------------------------------------------------------- */

/* A backend may answer early (a 413 before the body) and close: the write fails while its
 * answer waits in the receive buffer. The read side decides: a response is relayed, EOF or a
 * reset fails the attempt as before (up_on_eof), and if neither comes soon the timer does.
 * Until then the rest of the request is dropped. */
static void up_write_failed(sst_upstream_t *u)
{
    if (u->write_failed || u->resp_head)
        return;
    u->write_failed = true;
    u->try_armed = false; /* the read side decides now, within the grace */
    u->deadline = up_now(u) + WRITE_FAILED_GRACE_MS;
    up_start_reading(u);
    up_arm_timer(u);
}

static void up_tp_on_write(sst_transport_t *t, int status, size_t bytes)
{
    sst_upstream_t *u = up_of(t);
    assert(u->writes_pending > 0);
    u->writes_pending--;
    if (u->state == SST_UP_CLOSING)
        return;
    if (status < 0) {
        up_write_failed(u);
        return;
    }
    u->last_progress = up_now(u);
    if (u->req_queued && u->writes_pending == 0 && !u->req_written && !u->write_failed)
        up_request_written(u);
    if (u->req_full && u->owner != NULL && up_queued(u) <= up_cfg(u)->limits.buffer / 2) {
        u->req_full = false;
        u->cb->on_drained(u->owner);
    }
}

static int up_submit(sst_upstream_t *u, sst_wreq_t *r)
{
    if (u->write_failed) {
        sst__wreq_put(r); /* the read side decides the attempt: see up_write_failed */
        return 0;
    }
    int rc = sst__tp_write(&u->tp, r);
    if (rc == 0) {
        if (u->writes_pending++ == 0) {
            u->last_progress = up_now(u); /* the request-write deadline counts from here */
            up_arm_timer(u);
        }
    } else if (rc == SST_TP_SENT) {
        u->last_progress = up_now(u); /* written at once: no callback follows */
        rc = 0;
    } else if (rc != SST_ENOMEM) {
        up_write_failed(u); /* the write failed at once (EPIPE, ECONNRESET) */
        rc = 0;
    }
    return rc;
}

int sst__upstream_send_head(sst_upstream_t *u, sst_chunk_t *chunk, char *heap, const char *head,
                            size_t len, bool head_request)
{
    sst_wreq_t *r = sst__wreq_get(&u->w->bufs);
    if (r == NULL) {
        free(heap);
        return SST_ENOMEM;
    }
    sst__wreq_add(r, chunk, head, len);
    r->heap = heap;
    u->h1.head_request = head_request; /* the response to a HEAD has no body */
    sst_counter_add(&u->w->metrics->up_requests[sst__pool_metric_id(u->pool)], 1);
    /* Held back until the end of the parse pass: the body bytes read with the head go out in
     * the same write (one syscall for a small POST instead of two). */
    assert(u->pending == NULL);
    u->pending = r;
    return 0;
}

int sst__upstream_flush(sst_upstream_t *u)
{
    sst_wreq_t *r = u->pending;
    if (r == NULL)
        return 0;
    u->pending = NULL;
    return up_submit(u, r);
}

int sst__upstream_send_body(sst_upstream_t *u, sst_chunk_t *chunk, const uv_buf_t *bufs, uint32_t n,
                            const char *prefix, size_t prefix_len, const char *suffix,
                            size_t suffix_len)
{
    sst_wreq_t *r = u->pending;
    assert(n + 3 <= SST_WREQ_BUFS && prefix_len <= SST_WREQ_SCRATCH);
    /* body bytes follow the request head, which is queued when the connection turns ACTIVE;
     * anything else would put client bytes where the backend expects a request line */
    if (u->state != SST_UP_ACTIVE)
        return SST_EINVAL;
    if (r != NULL) {
        /* join the held-back head when there is room for these buffers */
        bool room =
            r->n_bufs + n + 2 <= SST_WREQ_BUFS &&
            r->scratch_used + prefix_len <= SST_WREQ_SCRATCH &&
            (chunk == NULL || r->n_chunks < SST_WREQ_CHUNKS || r->chunks[r->n_chunks - 1] == chunk);
        if (room) {
            u->pending = NULL;
        } else {
            int rc = sst__upstream_flush(u);
            if (rc != 0)
                return rc;
            r = NULL;
        }
    }
    if (r == NULL)
        r = sst__wreq_get(&u->w->bufs);
    if (r == NULL)
        return SST_ENOMEM;
    if (prefix_len > 0) {
        char *at = r->scratch + r->scratch_used;
        memcpy(at, prefix, prefix_len);
        r->scratch_used += (uint32_t)prefix_len;
        sst__wreq_add(r, NULL, at, prefix_len);
    }
    for (uint32_t i = 0; i < n; i++)
        sst__wreq_add(r, chunk, bufs[i].base, bufs[i].len);
    if (suffix_len > 0)
        sst__wreq_add(r, NULL, suffix, suffix_len);
    return up_submit(u, r);
}

void sst__upstream_request_sent(sst_upstream_t *u)
{
    if (sst__upstream_flush(u) != 0)
        up_write_failed(u);
    u->req_queued = true;
    if (u->writes_pending == 0 && !u->req_written && !u->write_failed)
        up_request_written(u);
}

/* ---- the response ------------------------------------------------------------------------ */

static int up_on_body(void *opaque, const char *at, size_t len)
{
    sst_upstream_t *u = opaque;
    if (u->owner != NULL)
        u->cb->on_body(u->owner, u->in, at, len);
    return 0;
}

void sst__upstream_pause(sst_upstream_t *u)
{
    if (u->state != SST_UP_ACTIVE || u->backpressured)
        return;
    u->backpressured = true;
    sst__tp_read_stop(&u->tp);
}

void sst__upstream_resume(sst_upstream_t *u)
{
    if (u->backpressured && u->state == SST_UP_ACTIVE) {
        u->backpressured = false;
        u->last_progress = up_now(u);
        up_start_reading(u);
        up_arm_timer(u);
    }
}

/* Handles a complete response head. Returns false when the exchange is over (failed). */
static bool up_on_head(sst_upstream_t *u)
{
    const char *reason = NULL;
    if (sst_h1_check_response(&u->h1, &u->resp, &reason) != 0) {
        up_fail(u, SST_FAIL_BAD_RESPONSE, SST_M_UP_BAD_RESPONSE, reason);
        return false;
    }
    u->resp_head = true;
    u->keep_alive = u->resp.keep_alive;
    u->last_progress = up_now(u);
    int rc = u->cb->on_head(u->owner, &u->resp, u->head);
    if (u->state == SST_UP_CLOSING || u->owner == NULL)
        return false;
    if (rc != 0) {
        up_fail(u, SST_FAIL_BAD_RESPONSE, SST_M_UP_BAD_RESPONSE,
                rc == SST_E2BIG ? "backend response head too large" : "out of memory");
        return false;
    }
    up_arm_timer(u);
    sst_h1_resume(&u->h1);
    return true;
}

static void up_on_done(sst_upstream_t *u, bool extra_bytes)
{
    u->resp_done = true;
    if (extra_bytes)
        u->keep_alive = false; /* bytes after the response: this connection cannot be trusted */
    uv_timer_stop(&u->timer);
    /* the owner releases (pool or close) this upstream: nothing here may touch it afterwards */
    u->cb->on_done(u->owner);
}

static void up_process(sst_upstream_t *u, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        sst_h1_rc_t rc = sst_h1_feed(&u->h1, u->in->data + off, len - off, &used);
        off += used;
        if (u->state == SST_UP_CLOSING || u->owner == NULL)
            return;
        switch (rc) {
        case SST_H1_MORE:
            /* the owner writes what it gathered, and pauses us if its client is slower than
             * the backend (sst__upstream_pause) */
            u->cb->on_flush(u->owner);
            up_arm_timer(u);
            return;
        case SST_H1_HEAD:
            if (!up_on_head(u))
                return;
            continue;
        case SST_H1_DONE:
            up_on_done(u, off < len);
            return;
        case SST_H1_ERROR:
            /* A malformed body (bad chunk, oversized trailers) is a broken backend like a
             * malformed head: counted as a passive failure, not as a plain abort. */
            if (u->resp_head)
                up_fail(u, SST_FAIL_RESPONSE_STARTED, SST_M_UP_BAD_RESPONSE,
                        u->h1.err_reason ? u->h1.err_reason : "bad response body");
            else
                up_fail(u, SST_FAIL_BAD_RESPONSE, SST_M_UP_BAD_RESPONSE,
                        u->h1.err_reason ? u->h1.err_reason : "bad response");
            return;
        }
    }
}

static void up_on_eof(sst_upstream_t *u, bool reset)
{
    if (u->state == SST_UP_IDLE || u->owner == NULL) {
        sst__upstream_close(u);
        return;
    }
    if (u->resp_head && !reset) {
        sst_h1_rc_t rc = sst_h1_eof(&u->h1);
        if (rc == SST_H1_DONE) {
            u->keep_alive = false;
            up_on_done(u, false);
            return;
        }
    }
    if (u->resp_head) {
        /* cut mid-body: the client must see the cut (no final chunk, connection reset) */
        up_fail(u, SST_FAIL_RESPONSE_STARTED, SST_M_UP_ABORTED, "backend closed mid-response");
        return;
    }
    up_fail(u, up_phase(u), SST_M_UP_RESET,
            reset ? "backend reset before responding" : "backend closed before responding");
}

static void up_tp_on_read_end(sst_transport_t *t, int status)
{
    up_on_eof(up_of(t), status != UV_EOF);
}

static void up_tp_on_read(sst_transport_t *t, sst_chunk_t *ch, size_t nread)
{
    sst_upstream_t *u = up_of(t);
    if (u->state != SST_UP_ACTIVE || u->owner == NULL) {
        /* bytes on an idle connection: a protocol error; never reuse it */
        sst__chunk_unref(&u->w->bufs, ch);
        sst__upstream_close(u);
        return;
    }
    u->last_progress = up_now(u);
    if (u->try_armed)
        up_try_disarm(u); /* the backend answers: only the response timeout is left */
    assert(u->in == NULL);
    u->in = ch;
    up_process(u, nread);
    /* the chunk may still be referenced by queued client writes */
    if (u->in == ch) {
        u->in = NULL;
        sst__chunk_unref(&u->w->bufs, ch);
    }
}

static const sst_tp_cb_t up_tp_cb = {
    .on_read = up_tp_on_read,
    .on_read_end = up_tp_on_read_end,
    .on_write = up_tp_on_write,
    .on_connect = up_tp_on_connect,
    .on_handshake = up_tp_on_handshake,
    .on_closed = up_tp_on_closed,
};

/* ---- releasing ----------------------------------------------------------------------------- */

void sst__upstream_release(sst_upstream_t *u)
{
    /* reusable: the exchange ended on a message boundary with nothing left in flight */
    bool clean = u->resp_done && u->keep_alive && u->req_queued && u->writes_pending == 0 &&
                 !u->write_failed && !u->backpressured;
    up_detach(u); /* from here on, the worker's current config applies */
    if (u->state != SST_UP_ACTIVE)
        return; /* still connecting: closed when the connect completes */
    if (!clean || !sst__pool_put(u->pool, u, up_cfg(u)->limits.upstream_idle)) {
        sst__upstream_close(u);
        return;
    }
    up_set_state(u, SST_UP_IDLE);
    u->idle_since = up_now(u);
    u->deadline = up_now(u) + up_cfg(u)->timeouts.upstream_idle_ms;
    up_arm_timer(u);
    up_start_reading(u); /* to see the backend close it */
}
