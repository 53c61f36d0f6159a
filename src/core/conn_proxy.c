/* A client connection's requests to backends: the attempt (balancing, pooled or new upstream
 * connection), the request head and body sent on, and what follows a failed attempt (route.c's
 * retry, reroute or answer). Part of the connection module (conn_int.h). */
#include "core/conn_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/respond.h"
#include "core/upstream.h"
#include "core/view.h"
#include "core/worker.h"
#include "http/h1_write.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

/* ---- proxying ---------------------------------------------------------------------------- */

/* Issue 15: backend b sent this worker a response head since the current attempt began. Only
 * the config in force keeps the record (indices change with a reload). */
static bool conn_backend_alive(const sst_conn_t *c, size_t b)
{
    const sst_req_t *r = c->req;
    uint64_t at = c->w->conns.alive_ms[b];
    return r->wv->view->cfg == sst__worker_config(c->w) && at != 0 && at >= r->attempt_ms;
}

void sst__conn_backend_answered(sst_conn_t *c)
{
    const sst_req_t *r = c->req;
    if (r->wv->view->cfg == sst__worker_config(c->w) && (size_t)r->backend < SST_MAX_BACKENDS)
        c->w->conns.alive_ms[r->backend] = conn_now(c);
}

/* An untried eligible backend is left in the region (`live`: one that showed life since the
 * current attempt began). */
static bool conn_backend_left(const sst_conn_t *c, bool live)
{
    const sst_req_t *r = c->req;
    const sst_config_t *cfg = r->wv->view->cfg;
    const sst_hsnap_t *snap = r->wv->view->snap;
    const sst_region_cfg_t *reg = &cfg->regions[r->region];
    for (size_t b = reg->first_backend; b < reg->first_backend + reg->n_backends; b++) {
        if (sst_tried_has(&r->tried, b) || (live && !conn_backend_alive(c, b)))
            continue;
        if (r->decision.ignore_health ? snap->backends[b].force != SST_FORCE_DOWN
                                      : snap->backends[b].state == SST_UP)
            return true;
    }
    return false;
}

/* A retry after a timeout goes to a backend that showed life: the others count as tried. */
static void conn_skip_silent(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    const sst_region_cfg_t *reg = &r->wv->view->cfg->regions[r->region];
    for (size_t b = reg->first_backend; b < reg->first_backend + reg->n_backends; b++)
        if (!conn_backend_alive(c, b))
            sst_tried_set(&r->tried, b);
}

/* Whether a reroute of this request would answer with a redirect to another region. */
static bool conn_redirect_left(const sst_conn_t *c)
{
    const sst_req_t *r = c->req;
    sst_route_input_t in = sst__conn_route_input(c);
    sst_decision_t d;
    if (r->region < 32)
        in.exclude_regions |= 1u << r->region;
    return sst_route_decide(&in, r->wv->view->cfg, r->wv->view->snap, &d) == 0 &&
           d.kind == SST_DECIDE_REDIRECT;
}

static void conn_up_on_ready(void *owner);

void sst__conn_proxy_attempt(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    sst_worker_t *w = c->w;
    const sst_config_t *cfg = r->wv->view->cfg;

    sst__conn_set_state(c, SST_CONN_UPSTREAM);
    /* The PROXY header a new connection to this region opens with, and the key of the pooled
     * ones this request may take (issue 16: a header describes one client connection). */
    sst_tp_pp_out_t pp_buf;
    const sst_tp_pp_out_t *pp =
        sst__conn_pp_header(c, cfg->regions[r->region].send_proxy_protocol, &pp_buf);
    /* A retry or a reroute of a request whose body is still to come: no body byte may move
     * until the new upstream is connected and its request head queued (conn_up_on_ready sets
     * the sink again); sst__conn_run holds the input meanwhile. */
    if (!r->parsed)
        r->sink = SST_SINK_NONE;
    for (;;) {
        int b = sst_lb_pick(cfg, r->wv->view->snap, r->region, conn_now(c),
                            r->decision.ignore_health, &r->tried, &w->conns.lb[r->region]);
        if (b < 0) {
            sst__conn_attempt_failed(c, SST_FAIL_NO_BACKEND, SST_M_UP_FAILS, "no eligible backend");
            return;
        }
        r->backend = b;
        r->attempts++;
        r->attempt_ms = conn_now(c);
        r->try_reported = false;
        sst_tried_set(&r->tried, (size_t)b);
        sst_pool_t *pool = sst__pool_for(&w->pools, r->wv->view, (size_t)b);
        if (pool == NULL) {
            sst__conn_fatal(c, 503, "out of memory");
            return;
        }
        sst_upstream_t *u = sst__pool_take(pool, !r->idempotent, conn_now(c), pp);
        if (u != NULL) {
            c->up = u;
            sst__upstream_attach(u, cfg, r->try_ms, &sst__conn_upstream_cb, c);
            conn_up_on_ready(c);
            return;
        }
        if (sst__pool_full(pool, cfg->limits.upstream_connections)) {
            /* this backend is at its connection limit in this worker: try another one */
            r->attempts--;
            if (!conn_backend_left(c, false)) {
                sst__conn_respond_error(c, 503, "upstream connection limit reached");
                return;
            }
            continue;
        }
        int rc = sst__upstream_connect(w, pool, cfg, r->try_ms, &sst__conn_upstream_cb, c, pp, &u);
        if (rc != 0) {
            sst__conn_attempt_failed(c, SST_FAIL_CONNECT, SST_M_UP_CONNECT_ERROR, sst_strerror(rc));
            return;
        }
        c->up = u;
        return; /* conn_up_on_ready or conn_up_on_fail follows */
    }
}

/* What the request head for the backend is built from (http/h1_write.c writes it). */
static sst_h1w_request_t conn_request_out(const sst_conn_t *c)
{
    const sst_req_t *r = c->req;
    const sst_config_t *cfg = r->wv->view->cfg;
    const char *proto =
        r->listener_index < cfg->n_listeners && cfg->listeners[r->listener_index].proto != NULL
            ? cfg->listeners[r->listener_index].proto
            : "http";
    sst_h1w_request_t out = {
        .info = &r->info,
        .head = r->head,
        .target = r->info.target,
        .peer = sst_str_c(c->peer_ip),
        .peer_trusted = c->peer_trusted,
        .proto = sst_str_c(proto),
    };
    sst_str_t authority;
    if (sst_target_path_query(r->info.target, &out.target, &authority) != 0)
        out.target = r->info.target; /* asterisk-form OPTIONS goes as is */
    if (r->info.host.len == 0 && r->backend >= 0 && (size_t)r->backend < cfg->n_backends)
        out.default_host = sst_str_c(cfg->backends[r->backend].addr.text); /* HTTP/1.0 */
    return out;
}

/* The upstream is connected (or was taken from the pool): the request head goes out. */
static void conn_up_on_ready(void *owner)
{
    sst_conn_t *c = owner;
    sst_req_t *r = c->req;
    sst_upstream_t *u = c->up;
    sst_h1w_request_t out = conn_request_out(c);
    size_t need = sst_h1_request_bound(&out);
    sst_chunk_t *ch = NULL;
    char *heap = NULL, *buf;

    if (need <= SST_CHUNK_SIZE) {
        ch = sst__chunk_get(&c->w->bufs);
        buf = ch != NULL ? ch->data : NULL;
    } else {
        heap = malloc(need);
        buf = heap;
    }
    if (buf == NULL) {
        sst__conn_fatal(c, 503, "out of memory");
        return;
    }
    size_t n = sst_h1_write_request(&out, buf, ch != NULL ? ch->size : need);
    int rc = SST_E2BIG;
    if (n > 0) /* takes heap, even on error; a HEAD response has no body */
        rc = sst__upstream_send_head(u, ch, heap, buf, n, r->info.method == HTTP_HEAD);
    else
        free(heap);
    if (ch != NULL)
        sst__chunk_unref(&c->w->bufs, ch); /* the write holds its own reference */
    if (rc != 0) {
        if (rc == SST_E2BIG) {
            sst__conn_fatal(c, 431, "request head too large to forward");
            return;
        }
        sst__conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, sst_strerror(rc));
        return;
    }
    if (r->info.expect_continue && !r->continue_sent && !r->parsed) {
        /* Envoy-style: sidestep answers the expectation itself once a backend is connected,
         * so an unreachable backend can still be answered with a 307 before any body moves. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        r->continue_sent = true;
        if (sst__conn_send(c, &b, 1) != 0) {
            sst__conn_close(c);
            return;
        }
    }
    if (r->parsed) {
        sst__upstream_request_sent(u); /* a retry of a request read earlier */
        return;
    }
    r->sink = SST_SINK_UPSTREAM;
    if (c->req->h1.paused_head)
        conn_resume_parser(c);
    sst__conn_run(c);
}

/* Sends the body bytes gathered in w->out_bufs on to the upstream. Returns 0 or the write's
 * negative error. */
static int conn_send_body(sst_conn_t *c)
{
    uint32_t n = c->w->conns.n_out_bufs;
    c->w->conns.n_out_bufs = 0;
    if (n == 0 || c->up == NULL)
        return 0;
    int rc;
    if (c->req->info.chunked) {
        size_t total = 0;
        for (uint32_t i = 0; i < n; i++)
            total += c->w->conns.out_bufs[i].len;
        char pre[24];
        int pl = snprintf(pre, sizeof(pre), "%zx\r\n", total);
        rc = sst__upstream_send_body(c->up, c->in, c->w->conns.out_bufs, n, pre, (size_t)pl, "\r\n",
                                     2);
    } else {
        rc = sst__upstream_send_body(c->up, c->in, c->w->conns.out_bufs, n, NULL, 0, NULL, 0);
    }
    if (rc == 0 && !sst__upstream_writable(c->up))
        c->backpressured = true;
    return rc;
}

void sst__conn_flush_body(sst_conn_t *c)
{
    /* a failure inside the parser (sst__conn_on_body) waits until the parser has returned:
     * the answer it leads to may end the request, and the parser lives in it */
    bool failed = c->req->flush_failed;
    c->req->flush_failed = false;
    if (failed) {
        c->w->conns.n_out_bufs = 0;
    } else if (conn_send_body(c) == 0) {
        return;
    }
    sst__conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, "write failed");
}

/* Request body bytes as parsed (chunk framing removed), through http1.c. */
int sst__conn_on_body(void *opaque, const char *at, size_t len)
{
    sst_conn_t *c = opaque;
    sst_req_t *r = c->req;

    r->body_in += len;
    r->bytes_in += len;
    if (r->sink == SST_SINK_UPSTREAM && c->up != NULL && !r->flush_failed) {
        if (c->w->conns.n_out_bufs == SST_WREQ_BUFS - 4 && conn_send_body(c) != 0) {
            r->flush_failed = true; /* sst__conn_flush_body reports it after the parser */
            return 0;
        }
        c->w->conns.out_bufs[c->w->conns.n_out_bufs++] = uv_buf_init((char *)at, (unsigned)len);
    }
    /* SST_SINK_DISCARD and a failed upstream: the bytes are dropped */
    return 0;
}

static void conn_up_on_drained(void *owner)
{
    sst_conn_t *c = owner;
    if (c->backpressured) {
        c->backpressured = false;
        sst__conn_run(c);
    }
}

void sst__conn_on_request_parsed(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    r->parsed = true;
    if (c->up != NULL && r->sink == SST_SINK_UPSTREAM) {
        sst__conn_flush_body(c);
        if (c->up == NULL)
            return;
        if (r->info.chunked) {
            /* trailers are never forwarded: the body ends with the last chunk */
            if (sst__upstream_send_body(c->up, NULL, NULL, 0, "0\r\n\r\n", 5, NULL, 0) != 0) {
                sst__conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, "write failed");
                return;
            }
        }
        sst__upstream_request_sent(c->up);
        return;
    }
    if (c->up != NULL) {
        sst__upstream_request_sent(c->up);
        return;
    }
    if (r->sink == SST_SINK_DISCARD && !r->responded) {
        /* the small body has been read and dropped: answer now and keep the connection */
        if (sst__conn_send_answer(c) != 0)
            sst__conn_close(c);
    }
}

/* ---- failures of an attempt ------------------------------------------------------------- */

/* An attempt failed in `phase` (found by the upstream, or here while sending to it): ask
 * route.c what follows. */
void sst__conn_attempt_failed(sst_conn_t *c, sst_fail_phase_t phase, sst_m_upfail_t kind,
                              const char *why)
{
    sst_req_t *r = c->req;
    sst_worker_t *w = c->w;
    const sst_config_t *cfg = r->wv->view->cfg;

    c->backpressured = false;
    if (c->up != NULL) {
        sst_upstream_t *u = c->up;
        c->up = NULL;
        sst__upstream_abort(u, kind);
    }
    /* a response timeout after the try timeout already reported this silence is not a second
     * failure of the backend */
    if (r->backend >= 0 && !(r->try_reported && kind == SST_M_UP_TIMEOUT))
        sst__passive_failure(&w->passive, cfg, (size_t)r->backend, kind);
    r->note = why;
    if (r->resp_started || phase == SST_FAIL_RESPONSE_STARTED) {
        /* the client already has part of the answer: it must see the cut */
        sst__conn_account(c);
        sst__conn_abort(c);
        return;
    }
    sst_fail_input_t fi = {
        .phase = phase,
        .idempotent = r->idempotent,
        .body_consumed = r->body_in > 0,
        .attempts = r->attempts,
        .retries = r->route < cfg->n_routes ? cfg->routes[r->route].retries : 0,
        .backend_left = phase != SST_FAIL_NO_BACKEND && conn_backend_left(c, false),
        .idempotency_key = r->idem_key,
        /* issue 15: the backend said nothing; will another one of the region? */
        .timed_out = kind == SST_M_UP_CONNECT_TIMEOUT || kind == SST_M_UP_TRY_TIMEOUT,
    };
    if (fi.timed_out && fi.backend_left) {
        fi.live_backend_left = conn_backend_left(c, true);
        fi.redirect_left = !fi.live_backend_left && conn_redirect_left(c);
    }
    sst_fail_decision_t fd;
    sst_route_on_failure(&fi, &fd);
    switch (fd.action) {
    case SST_ON_FAIL_RETRY:
        sst_counter_add(&w->metrics->retries, 1);
        if (fd.live_only)
            conn_skip_silent(c);
        sst__conn_proxy_attempt(c);
        return;
    case SST_ON_FAIL_REROUTE: {
        /* In-flight failover: the backend never had the request, so sending the client to the
         * next healthy region is safe (the client still holds its body). */
        size_t failed = r->region;
        r->exclude_regions |= 1u << failed;
        sst_route_input_t in = sst__conn_route_input(c);
        if (sst_route_decide(&in, cfg, r->wv->view->snap, &r->decision) != 0) {
            sst__conn_respond_error(c, 502, why);
            return;
        }
        unsigned fail_status = kind == SST_M_UP_CONNECT_TIMEOUT || kind == SST_M_UP_TIMEOUT ||
                                       kind == SST_M_UP_TRY_TIMEOUT
                                   ? 504
                                   : 502;
        if (r->decision.kind == SST_DECIDE_REJECT ||
            (r->decision.kind == SST_DECIDE_PROXY &&
             ((r->exclude_regions >> r->decision.region) & 1 || r->body_in > 0))) {
            /* nowhere else to go, back to a failed region, or a body that can no longer be
             * replayed: the client learns what happened to its backend (502, or 504 for a
             * connect timeout), not the all-down 503 meant for requests never attempted */
            sst__conn_respond_error(c, fail_status, why);
            return;
        }
        if (r->decision.kind == SST_DECIDE_REDIRECT) {
            unsigned mid = failed < SST_MAX_REGIONS ? r->wv->view->prep->region_mid[failed] : 0;
            sst_counter_add(&w->metrics->inflight_failovers[mid], 1);
            r->note = "in-flight failover";
        }
        if (r->body_in > 0)
            r->close_after = true;
        sst__conn_apply_decision(c);
        return;
    }
    case SST_ON_FAIL_RESPOND:
        sst__conn_respond_error(c, fd.status, why);
        return;
    case SST_ON_FAIL_ABORT:
        sst__conn_account(c);
        sst__conn_abort(c);
        return;
    }
}

static void conn_up_on_fail(void *owner, sst_fail_phase_t phase, sst_m_upfail_t kind,
                            const char *why)
{
    sst_conn_t *c = owner;
    c->up = NULL; /* detached and closing: the upstream counted its own failure */
    sst__conn_attempt_failed(c, phase, kind, why);
}

/* No response byte within try_timeout of the request written (issue 15, docs/routing.md
 * §7.1). A repeatable request gives the attempt up: its connection is closed, never pooled,
 * and the matrix decides (another backend, the 307, or 504). One that may not be repeated
 * keeps waiting for timeouts.upstream_response, but the silence is reported now, so that
 * traffic of such requests ejects a silent backend too instead of waiting for the probes. */
static void conn_up_on_try_timeout(void *owner)
{
    sst_conn_t *c = owner;
    sst_req_t *r = c->req;
    const sst_config_t *cfg = r->wv->view->cfg;
    const sst_route_cfg_t *rt = r->route < cfg->n_routes ? &cfg->routes[r->route] : NULL;

    if (sst_route_try_timeout(rt, r->idempotent, r->idem_key) > 0) {
        sst__conn_attempt_failed(c, SST_FAIL_TRY_TIMEOUT, SST_M_UP_TRY_TIMEOUT,
                                 "backend try timeout");
        return;
    }
    if (r->backend >= 0 && !r->try_reported)
        sst__passive_failure(&c->w->passive, cfg, (size_t)r->backend, SST_M_UP_TRY_TIMEOUT);
    r->try_reported = true;
}

const sst__upstream_cb_t sst__conn_upstream_cb = {
    .on_ready = conn_up_on_ready,
    .on_head = sst__conn_up_on_head,
    .on_body = sst__conn_up_on_body,
    .on_flush = sst__conn_up_on_flush,
    .on_done = sst__conn_up_on_done,
    .on_fail = conn_up_on_fail,
    .on_drained = conn_up_on_drained,
    .on_try_timeout = conn_up_on_try_timeout,
};
