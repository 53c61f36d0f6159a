/* One downstream client connection: its lifecycle, reading and the parse loop, writing, timers,
 * keep-alive and pipelining (one request at a time, answered in order), finishing, accepting.
 * Answers sidestep writes itself are conn_local.c's, proxying and failed attempts
 * conn_proxy.c's, relaying the backend's response conn_relay.c's. Decisions come from
 * route.c; the backend side lives in upstream.c. */
#include "core/conn_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/pool.h"
#include "core/respond.h"
#include "core/transport.h"
#include "core/upstream.h"
#include "core/view.h"
#include "core/worker.h"
#include "http/h1_write.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

#define LOW_WATER(limit) ((limit) / 2)

static void conn_update_reading(sst_conn_t *c);
static void conn_begin_close(sst_conn_t *c);
static const sst_tp_cb_t conn_tp_cb;
static void conn_tp_on_shutdown(sst_transport_t *t, int status);

static const char empty_input[1] = "";

/* An idle connection's whole cost (docs/benchmarks.md, 10,000 idle connections): growing it is
 * a decision to make there, not an accident. */
_Static_assert(sizeof(sst_conn_t) <= 448, "sst_conn_t grew past 448 bytes");
_Static_assert(SST_CHUNK_SIZE <= UINT16_MAX, "in_off and in_len hold offsets within a chunk");

/* ---- the state machine ------------------------------------------------------------------- */

static const char *const conn_state_names[] = {
    [SST_CONN_IDLE] = "idle",   [SST_CONN_HEAD] = "head",     [SST_CONN_UPSTREAM] = "upstream",
    [SST_CONN_LOCAL] = "local", [SST_CONN_LINGER] = "linger", [SST_CONN_CLOSING] = "closing",
};

#ifndef NDEBUG
/* The legal transitions: [from][to]. A connection starts IDLE (calloc). */
static const bool conn_legal[SST_CONN_CLOSING + 1][SST_CONN_CLOSING + 1] = {
    /* the first byte of a request; a half-close with answers queued; eviction, errors */
    [SST_CONN_IDLE] = {[SST_CONN_HEAD] = true, [SST_CONN_LINGER] = true, [SST_CONN_CLOSING] = true},
    /* routed to a backend or answered here */
    [SST_CONN_HEAD] = {[SST_CONN_UPSTREAM] = true,
                       [SST_CONN_LOCAL] = true,
                       [SST_CONN_LINGER] = true,
                       [SST_CONN_CLOSING] = true},
    /* a retry or a reroute to a backend; a redirect or an error after a failed attempt; the
     * exchange done (keep-alive or not) */
    [SST_CONN_UPSTREAM] = {[SST_CONN_UPSTREAM] = true,
                           [SST_CONN_LOCAL] = true,
                           [SST_CONN_IDLE] = true,
                           [SST_CONN_LINGER] = true,
                           [SST_CONN_CLOSING] = true},
    /* a fatal error while answering (408 on a slow body) stays local */
    [SST_CONN_LOCAL] = {[SST_CONN_LOCAL] = true,
                        [SST_CONN_IDLE] = true,
                        [SST_CONN_LINGER] = true,
                        [SST_CONN_CLOSING] = true},
    [SST_CONN_LINGER] = {[SST_CONN_CLOSING] = true},
    [SST_CONN_CLOSING] = {false},
};
#endif

/* The only place c->state changes. */
void sst__conn_set_state(sst_conn_t *c, sst_conn_state_t to)
{
    assert(conn_legal[c->state][to]);
    sst_debug("conn %p: %s -> %s", (void *)c, conn_state_names[c->state], conn_state_names[to]);
    c->state = to;
}

/* ---- the module's per-worker state --------------------------------------------------------- */

#define MAX_FREE_REQS 256

void sst__conns_init(sst_conns_t *cs)
{
    sst_list_init(&cs->all);
    sst_list_init(&cs->idle);
    cs->n_open = 0;
    cs->free_reqs = NULL;
    cs->n_free_reqs = 0;
    cs->n_out_bufs = 0;
    sst__conns_config_changed(cs);
}

void sst__conns_config_changed(sst_conns_t *cs)
{
    memset(cs->lb, 0, sizeof(cs->lb));
    memset(cs->alive_ms, 0, sizeof(cs->alive_ms)); /* backend indices changed */
}

void sst__conns_free(sst_conns_t *cs)
{
    while (cs->free_reqs != NULL) {
        sst_req_t *r = cs->free_reqs;
        cs->free_reqs = r->next;
        free(r);
    }
    cs->n_free_reqs = 0;
}

static sst_req_t *conn_req_get(sst_conns_t *cs)
{
    sst_req_t *r = cs->free_reqs;
    if (r != NULL) {
        cs->free_reqs = r->next;
        cs->n_free_reqs--;
        return r;
    }
    return malloc(sizeof(*r));
}

static void conn_req_put(sst_worker_t *w, sst_req_t *r)
{
    sst_conns_t *cs = &w->conns;
    if (cs->n_free_reqs < MAX_FREE_REQS && !w->stopping) {
        r->next = cs->free_reqs;
        cs->free_reqs = r;
        cs->n_free_reqs++;
    } else {
        free(r);
    }
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void conn_idle_list_remove(sst_conn_t *c)
{
    if (c->in_idle_list) {
        sst_list_remove(&c->idle_link);
        c->in_idle_list = false;
    }
}

static void conn_release_input(sst_conn_t *c)
{
    if (c->in != NULL) {
        sst__chunk_unref(&c->w->bufs, c->in);
        c->in = NULL;
        c->in_off = c->in_len = 0;
    }
}

static void conn_release_request(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    if (r == NULL)
        return;
    c->req = NULL;
    if (r->head != NULL)
        sst__head_put(&c->w->bufs, r->head);
    if (r->wv != NULL)
        sst__worker_view_release(c->w, r->wv);
    conn_req_put(c->w, r);
}

static void conn_free(sst_conn_t *c)
{
    sst_worker_t *w = c->w;
    if (c->listener != NULL)
        sst__listener_release(c->listener);
    conn_release_input(c);
    conn_release_request(c);
    free(c);
    sst__worker_conn_gone(w);
}

static inline sst_conn_t *conn_of(sst_transport_t *t)
{
    return sst_container_of(t, sst_conn_t, tp);
}

static void conn_tp_on_closed(sst_transport_t *t)
{
    conn_free(conn_of(t)); /* the only place a connection is freed */
}

/* Ends the attempt without blaming the backend (the client's doing, or a local answer). */
void sst__conn_abort_upstream(sst_conn_t *c)
{
    c->backpressured = false;
    if (c->up != NULL) {
        sst_upstream_t *u = c->up;
        c->up = NULL;
        sst__upstream_abort(u, SST_M_UP_FAILS);
    }
}

static void conn_close_handles(sst_conn_t *c, bool reset)
{
    if (c->state == SST_CONN_CLOSING)
        return; /* idempotent: error paths may race to close */
    sst__conn_set_state(c, SST_CONN_CLOSING);
    sst__conn_abort_upstream(c);
    conn_idle_list_remove(c);
    sst_list_remove(&c->link);
    c->w->conns.n_open--;
    sst_counter_add(&c->w->metrics->conn_closed, 1);
    conn_release_input(c);
    if (c->rwb != NULL) {
        sst__wreq_put(c->rwb);
        c->rwb = NULL;
    }
    sst__worker_deadline_set(c->w, &c->dl, UINT64_MAX);
    /* RST when the response was cut short, so that the client cannot take a truncated body
     * for a complete one (a close-delimited body would look complete after a FIN). */
    sst__tp_close(&c->tp, reset);
}

void sst__conn_close(sst_conn_t *c)
{
    conn_close_handles(c, false);
}

void sst__conn_abort(sst_conn_t *c)
{
    conn_close_handles(c, true);
}

/* ---- access log and metrics --------------------------------------------------------------- */

static const char *const decision_names[] = {
    [SST_M_PROXY] = "proxy",
    [SST_M_REDIRECT] = "redirect",
    [SST_M_REJECT] = "reject",
    [SST_M_ERROR] = "error",
};

static void conn_log_request(sst_conn_t *c, uint64_t dur_us)
{
    const sst_req_t *r = c->req;
    const sst_config_t *cfg = conn_cfg(c);
    static const char *const protos[2] = {"HTTP/1.0", "HTTP/1.1"};
    char line[4096];

    if (sst_log_access_fd() < 0)
        return;
    sst_str_t t = r->head != NULL ? sst_head_url(r->head) : SST_STR_NULL;
    const char *note = r->note != NULL ? r->note : "";
    const char *route = r->route < cfg->n_routes ? cfg->routes[r->route].name : "-";
    const char *region = r->region < cfg->n_regions ? cfg->regions[r->region].name : "-";
    const char *backend = r->backend >= 0 && (size_t)r->backend < cfg->n_backends
                              ? cfg->backends[r->backend].addr.text
                              : "-";
    sst_str_t method = r->info.method_name.len > 0 ? r->info.method_name : SST_STR_LIT("-");
    const char *dec = decision_names[r->mdec];
    /* the SNI the balancer saw (PROXY v2 PP2_TYPE_AUTHORITY), only when a header carried one */
    sst_str_t pa = sst__tp_pp_authority(&c->tp);
    /* text: TIME CLIENT "METHOD TARGET PROTO" STATUS in= out= dur=ms route= decision= region=
     * backend= attempts= reason="..." [proxy_authority="..."] */
    sst_log_field_t f[] = {
        {.key = "type", .kind = SST_LF_RAW, .str = "access", .len = 6},
        {.key = "client",
         .pre = " ",
         .kind = SST_LF_RAW,
         .str = c->peer_ip,
         .len = strlen(c->peer_ip)},
        {.key = "method", .pre = " \"", .kind = SST_LF_RAW, .str = method.base, .len = method.len},
        {.key = "target",
         .pre = " ",
         .kind = SST_LF_ESC,
         .str = t.base,
         .len = t.len > 360 ? 360 : t.len},
        {.key = "proto",
         .pre = " ",
         .post = "\"",
         .kind = SST_LF_RAW,
         .str = protos[r->info.minor == 1],
         .len = 8},
        {.key = "status", .pre = " ", .kind = SST_LF_UINT, .u = r->status},
        {.key = "bytes_in", .pre = " in=", .kind = SST_LF_UINT, .u = r->bytes_in},
        {.key = "bytes_out", .pre = " out=", .kind = SST_LF_UINT, .u = r->bytes_out},
        {.key = "duration_ms",
         .pre = " dur=",
         .post = "ms",
         .kind = SST_LF_MS3,
         .d = (double)dur_us / 1000.0},
        {.key = "route", .pre = " route=", .kind = SST_LF_RAW, .str = route, .len = strlen(route)},
        {.key = "decision",
         .pre = " decision=",
         .kind = SST_LF_RAW,
         .str = dec,
         .len = strlen(dec)},
        {.key = "region",
         .pre = " region=",
         .kind = SST_LF_RAW,
         .str = region,
         .len = strlen(region)},
        {.key = "backend",
         .pre = " backend=",
         .kind = SST_LF_RAW,
         .str = backend,
         .len = strlen(backend)},
        {.key = "attempts", .pre = " attempts=", .kind = SST_LF_UINT, .u = r->attempts},
        {.key = "reason",
         .pre = " reason=\"",
         .post = "\"",
         .kind = SST_LF_ESC,
         .str = note,
         .len = strnlen(note, 60)},
        {.key = pa.len > 0 ? "proxy_authority" : NULL,
         .pre = pa.len > 0 ? " proxy_authority=\"" : NULL,
         .post = "\"",
         .kind = SST_LF_ESC,
         .str = pa.base,
         .len = pa.len},
    };
    size_t n = sst_log_format(line, sizeof(line), sst_log_epoch_ms(), f, sizeof(f) / sizeof(f[0]));
    sst__worker_access_log(c->w, line, n);
}

/* Counts and logs the request once, when its exchange ends (however it ends). */
void sst__conn_account(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    if (r == NULL || r->head == NULL || r->wv == NULL || r->accounted)
        return;
    r->accounted = true;
    const sst_prep_t *prep = r->wv->view->prep;
    sst_wmetrics_t *m = c->w->metrics;
    uint64_t dur_us = (uv_hrtime() - r->start_hr) / 1000;
    unsigned route = r->route < SST_MAX_ROUTES ? prep->route_mid[r->route] : SST_M_ROUTES - 1;
    unsigned region = r->region < SST_MAX_REGIONS ? prep->region_mid[r->region] : 0;
    unsigned cls = r->status >= 100 && r->status < 600 ? r->status / 100 : 0;

    sst_counter_add(&m->requests[route][r->mdec][region][cls], 1);
    if (r->status < 600)
        sst_counter_add(&m->responses_by_code[r->status], 1);
    sst_counter_add(&m->latency[route][r->mdec][sst_m_lat_bucket(dur_us)], 1);
    sst_counter_add(&m->latency_sum_us[route][r->mdec], dur_us);
    sst_counter_add(&m->bytes_in[route], r->bytes_in);
    sst_counter_add(&m->bytes_out[route], r->bytes_out);
    if (r->mdec == SST_M_REDIRECT)
        sst_counter_add(&m->redirects[region], 1);
    conn_log_request(c, dur_us);
}

/* ---- writing to the client --------------------------------------------------------------- */

static void conn_tp_on_write(sst_transport_t *t, int status, size_t bytes)
{
    sst_conn_t *c = conn_of(t);
    if (c->state == SST_CONN_CLOSING)
        return;
    if (status < 0) {
        if (c->req != NULL && c->req->head != NULL && !c->req->responded)
            sst_counter_add(&c->w->metrics->client_aborts, 1);
        sst__conn_account(c);
        sst__conn_abort(c);
        return;
    }
    c->last_progress = conn_now(c);
    conn_write_progress(c);
    size_t low = LOW_WATER(conn_cfg(c)->limits.buffer);
    /* back-pressure: the upstream stopped reading while our queue was over the mark */
    if (c->up != NULL && conn_write_queue(c) <= low)
        sst__upstream_resume(c->up);
    if (c->write_blocked && conn_write_queue(c) <= low) {
        c->write_blocked = false;
        sst__conn_run(c); /* the pipelined requests waiting in the input */
        return;
    }
    sst__conn_arm_timer(c);
}

/* Writes bufs: one send(2) when nothing is queued (the common case, no allocation), any rest
 * queued as a copy. Returns 0 or a negative error; the caller closes on error. */
int sst__conn_send(sst_conn_t *c, const uv_buf_t *bufs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += bufs[i].len;
    if (c->req != NULL)
        c->req->bytes_out += total;
    if (conn_write_queue(c) == 0)
        conn_write_progress(c); /* loop time: the same before the send as after it */
    int rc = sst__tp_send(&c->tp, bufs, n, total);
    if (rc < 0)
        return rc;
    if (rc == SST_TP_SENT) {
        c->last_progress = conn_now(c);
        return 0;
    }
    sst__conn_arm_timer(c);
    return 0;
}

/* ---- timers ------------------------------------------------------------------------------ */

static bool conn_reading_body(const sst_conn_t *c)
{
    return c->req != NULL && c->req->head != NULL && !c->req->parsed &&
           c->req->sink != SST_SINK_NONE && !c->backpressured;
}

static uint64_t conn_compute_deadline(const sst_conn_t *c)
{
    const sst_timeouts_cfg_t *t = &conn_cfg(c)->timeouts;
    uint64_t d = UINT64_MAX;

    switch (c->state) {
    case SST_CONN_IDLE:
        d = c->first_request ? c->accepted_ms + t->request_head_ms : c->last_progress + t->idle_ms;
        if (c->first_request && sst__tp_handshaking(&c->tp) &&
            c->accepted_ms + t->tls_handshake_ms < d)
            d = c->accepted_ms + t->tls_handshake_ms; /* timeouts.tls_handshake (issue 14) */
        break;
    case SST_CONN_HEAD:
        /* a total deadline, not an inactivity timer: a slowloris trickle does not extend it */
        d = c->accepted_ms + t->request_head_ms;
        break;
    case SST_CONN_UPSTREAM:
    case SST_CONN_LOCAL:
        if (conn_reading_body(c)) {
            if (t->body_ms > 0)
                d = c->last_progress + t->body_ms;
            if (c->req->body_deadline_total != 0 && c->req->body_deadline_total < d)
                d = c->req->body_deadline_total;
            if (t->body_min_rate > 0 && c->req->body_rate_check < d)
                d = c->req->body_rate_check;
        }
        break;
    case SST_CONN_LINGER:
        /* the linger time starts once the queued answer is out and the FIN sent; until then
         * only the send timeout below applies, so a slow reader still gets all of it */
        d = sst__tp_shutting_down(&c->tp) ? UINT64_MAX : c->deadline;
        break;
    case SST_CONN_CLOSING:
        return UINT64_MAX;
    }
    if (conn_write_queue(c) > 0 && t->send_ms > 0) {
        uint64_t send_d = conn_write_since(c) + t->send_ms;
        if (send_d < d)
            d = send_d;
    }
    return d;
}

void sst__conn_arm_timer(sst_conn_t *c)
{
    if (c->state == SST_CONN_CLOSING)
        return;
    uint64_t d = conn_compute_deadline(c);
    if (d != UINT64_MAX && c->dl.due <= d)
        return; /* lazy: an earlier deadline fires, recomputes and re-arms */
    if (sst__worker_deadline_set(c->w, &c->dl, d) != 0)
        sst__conn_abort(c); /* out of memory: this client only */
}

void sst__conn_on_deadline(sst_dnode_t *n)
{
    sst_conn_t *c = sst_container_of(n, sst_conn_t, dl);
    const sst_timeouts_cfg_t *t = &conn_cfg(c)->timeouts;
    sst_wmetrics_t *m = c->w->metrics;
    uint64_t now = conn_now(c);

    if (conn_write_queue(c) > 0 && t->send_ms > 0 && conn_write_since(c) + t->send_ms <= now) {
        /* the client reads nothing: nothing more can reach it */
        sst_counter_add(&m->timeouts[SST_M_TIMEOUT_SEND], 1);
        if (c->req != NULL)
            c->req->note = "client send timeout";
        sst__conn_account(c);
        sst__conn_abort(c);
        return;
    }
    if (conn_reading_body(c) && t->body_min_rate > 0 && c->req->body_rate_check <= now) {
        uint64_t elapsed_ms = now - c->req->body_started;
        if (c->req->body_in * 1000 < t->body_min_rate * elapsed_ms) {
            sst_counter_add(&m->timeouts[SST_M_TIMEOUT_BODY], 1);
            sst__conn_abort_upstream(c);
            sst__conn_fatal(c, 408, "request body below the minimum rate");
            return;
        }
        c->req->body_rate_check = now + 1000;
    }
    uint64_t d = conn_compute_deadline(c);
    if (d > now) {
        if (d != UINT64_MAX && sst__worker_deadline_set(c->w, &c->dl, d) != 0)
            sst__conn_abort(c);
        return;
    }
    switch (c->state) {
    case SST_CONN_IDLE:
        /* the PROXY header comes before the TLS handshake: a connection still waiting for
         * it is counted as a PROXY refusal, not a TLS failure */
        if (sst__tp_pp_waiting(&c->tp)) {
            sst__conn_pp_refuse(c, SST_M_PP_TIMEOUT); /* no whole PROXY header in time */
            return;
        }
        if (sst__tp_handshaking(&c->tp))
            sst__tp_handshake_expired(&c->tp); /* counted as a TLS failure, not an idle close */
        else
            sst_counter_add(&m->timeouts[SST_M_TIMEOUT_IDLE], 1);
        sst__conn_close(c); /* nothing was asked: close without an answer */
        return;
    case SST_CONN_HEAD:
        sst_counter_add(&m->timeouts[SST_M_TIMEOUT_HEAD], 1);
        sst__conn_fatal(c, 408, "request head not received in time");
        return;
    case SST_CONN_UPSTREAM:
    case SST_CONN_LOCAL:
        sst_counter_add(&m->timeouts[SST_M_TIMEOUT_BODY], 1);
        /* a slow client is not a backend failure: abort the attempt quietly */
        sst__conn_abort_upstream(c);
        sst__conn_fatal(c, 408, "request body not received in time");
        return;
    case SST_CONN_LINGER:
        sst__conn_close(c);
        return;
    case SST_CONN_CLOSING:
        return;
    }
}

/* ---- reading ----------------------------------------------------------------------------- */

static void conn_client_gone(sst_conn_t *c, const char *why)
{
    if (c->req != NULL && c->req->head != NULL && !c->req->accounted) {
        sst_counter_add(&c->w->metrics->client_aborts, 1);
        c->req->note = why;
        if (c->req->status == 0)
            c->req->status = 499; /* nginx's "client closed request", for the log only */
        sst__conn_account(c);
    }
    sst__conn_close(c);
}

static void conn_on_eof(sst_conn_t *c)
{
    switch (c->state) {
    case SST_CONN_IDLE:
        /* a half-closing client still gets the answers already queued */
        if (conn_write_queue(c) > 0)
            conn_begin_close(c);
        else
            sst__conn_close(c);
        return;
    case SST_CONN_LINGER:
        if (conn_write_queue(c) == 0)
            sst__conn_close(c);
        return; /* else conn_tp_on_shutdown closes once the answer is out */
    case SST_CONN_HEAD:
        conn_client_gone(c, "client closed mid-head");
        return;
    case SST_CONN_UPSTREAM:
    case SST_CONN_LOCAL:
        if (c->req->parsed && c->req->responded) {
            c->req->close_after = true;
            return;
        }
        /* The client went away mid-body or while waiting: abort the backend request; this is
         * not a backend failure, so no passive signal. */
        conn_client_gone(c, "client closed before the response completed");
        return;
    case SST_CONN_CLOSING:
        return;
    }
}

/* Plain HTTP on a TLS port: a 400 in clear text that says so (as nginx does), then the close. */
static void conn_plain_http_on_tls(sst_conn_t *c)
{
    static const char why[] = "The plain HTTP request was sent to HTTPS port";
    size_t n = sst__error_response(c->w->conns.scratch, sizeof(c->w->conns.scratch), 400, why, 0,
                                   SST_STR_NULL, true, false, false);
    uv_buf_t b = uv_buf_init(c->w->conns.scratch, (unsigned)n);
    if (sst__conn_send(c, &b, 1) != 0) {
        sst__conn_close(c);
        return;
    }
    conn_begin_close(c);
}

static void conn_tp_on_read_end(sst_transport_t *t, int status)
{
    sst_conn_t *c = conn_of(t);
    c->read_eof = true;
    if (sst__tp_pp_waiting(t)) {
        sst__conn_pp_refuse(c, SST_M_PP_EOF); /* gone before its PROXY header was whole */
        return;
    }
    if (status == SST_EPROTO && c->state == SST_CONN_IDLE && sst__tp_clear_text(t))
        conn_plain_http_on_tls(c);
    else if (status == UV_EOF)
        conn_on_eof(c);
    else if (c->state == SST_CONN_IDLE || c->state == SST_CONN_LINGER)
        sst__conn_close(c);
    else
        conn_client_gone(c, status == UV_ENOBUFS ? "out of memory" : "client connection error");
}

static void conn_tp_on_read(sst_transport_t *t, sst_chunk_t *ch, size_t nread)
{
    sst_conn_t *c = conn_of(t);
    c->last_progress = conn_now(c);
    if (c->state == SST_CONN_LINGER || c->state == SST_CONN_CLOSING) {
        sst__chunk_unref(&c->w->bufs, ch); /* draining after the final answer */
        return;
    }
    assert(c->in == NULL);
    c->in = ch;
    c->in_off = 0;
    c->in_len = (uint16_t)nread;
    sst__conn_run(c);
}

static void conn_update_reading(sst_conn_t *c)
{
    bool want = false;
    switch (c->state) {
    case SST_CONN_IDLE:
        want = !c->write_blocked;
        break;
    case SST_CONN_HEAD:
    case SST_CONN_LINGER:
        want = true;
        break;
    case SST_CONN_UPSTREAM:
    case SST_CONN_LOCAL:
        /* while a response is pending, keep reading (to see the client go away) unless
         * bytes are already waiting or the upstream is full */
        want = !c->backpressured;
        break;
    case SST_CONN_CLOSING:
        return;
    }
    want = want && !c->read_eof && c->in == NULL;
    if (want)
        (void)sst__tp_read_start(&c->tp); /* on failure the deadline ends the connection */
    else
        sst__tp_read_stop(&c->tp);
}

/* ---- the parse loop ---------------------------------------------------------------------- */

static bool conn_begin_request(sst_conn_t *c)
{
    sst_req_t *r = conn_req_get(&c->w->conns);
    if (r == NULL)
        return false;
    memset(r, 0, sizeof(*r));
    c->req = r;
    r->route = SIZE_MAX;
    r->region = SIZE_MAX;
    r->backend = -1;
    r->start_hr = uv_hrtime();
    r->wv = sst__worker_view_acquire(c->w);
    r->head = sst__head_get(&c->w->bufs);
    if (r->wv == NULL || r->head == NULL)
        return false;
    const sst_limits_cfg_t *l = &r->wv->view->cfg->limits;
    sst_h1_limits_t lim = {
        .request_line = l->request_line,
        .field = l->header_field,
        .head = l->header_bytes,
        .headers = l->headers,
        .body = l->body,
    };
    sst_h1_init(&r->h1, false, &lim, sst__conn_on_body, c);
    r->h1.head = r->head;
    /* the listener's entry in the config this request uses (indices follow the view) */
    r->listener_index = c->listener->cfg_index;
    sst__conn_set_state(c, SST_CONN_HEAD);
    conn_idle_list_remove(c);
    if (!c->first_request)
        c->accepted_ms = conn_now(c); /* the head deadline counts from the first byte */
    return true;
}

void sst__conn_run(sst_conn_t *c)
{
    if (c->in_run) {
        c->rerun = true; /* the outer loop picks the work up: no recursion per request */
        return;
    }
    c->in_run = true;
    do {
        c->rerun = false;
        while (c->state != SST_CONN_CLOSING && !c->backpressured) {
            if (c->state == SST_CONN_LINGER) {
                conn_release_input(c);
                break;
            }
            bool have = c->in != NULL && c->in_len > 0;
            if (!have && !c->kick)
                break;
            if (c->state == SST_CONN_IDLE) {
                if (!have)
                    break;
                if (conn_write_queue(c) > conn_cfg(c)->limits.buffer) {
                    /* answers pile up unread: the next request waits (conn_tp_on_write resumes) */
                    c->write_blocked = true;
                    break;
                }
                if (!conn_begin_request(c)) {
                    conn_release_request(c); /* out of memory: drop this client only */
                    sst__conn_abort(c);
                    break;
                }
            }
            if (c->req->h1.paused_head || c->req->h1.paused_done)
                break; /* a head waits for an upstream, or a response is not finished */
            if (c->state == SST_CONN_UPSTREAM &&
                (c->up == NULL || (!c->req->parsed && c->req->sink != SST_SINK_UPSTREAM)))
                break; /* a retry or a reroute is connecting: body bytes wait for its head */
            c->kick = false;
            size_t used = 0;
            const char *data = have ? c->in->data + c->in_off : empty_input;
            /* w->out_bufs point into c->in and are sent (or dropped) before this pass ends:
             * they never carry one connection's bytes into another's turn */
            assert(c->w->conns.n_out_bufs == 0);
            sst_h1_rc_t rc = sst_h1_feed(&c->req->h1, data, have ? c->in_len : 0, &used);
            if (have) {
                c->in_off += (uint16_t)used;
                c->in_len -= (uint16_t)used;
            }
            if (rc == SST_H1_ERROR)
                c->w->conns.n_out_bufs = 0; /* the body is malformed: nothing more of it leaves */
            else if (c->req != NULL && c->req->sink == SST_SINK_UPSTREAM)
                sst__conn_flush_body(c);
            /* a failed body write may have answered and ended the request already */
            if (c->state == SST_CONN_CLOSING || c->req == NULL)
                break;
            switch (rc) {
            case SST_H1_MORE:
                break;
            case SST_H1_HEAD:
                sst__conn_on_head(c);
                break;
            case SST_H1_DONE:
                sst__conn_on_request_parsed(c);
                if (c->state != SST_CONN_CLOSING && c->req != NULL && c->req->responded)
                    sst__conn_finish_request(c);
                break;
            case SST_H1_ERROR:
                /* The client's fault, found at once wherever it is in the body: the backend's
                 * connection is closed (never pooled, never a passive signal against it) and
                 * the client gets the parser's status, or a cut once a response has begun. */
                if (c->up != NULL)
                    sst__conn_abort_upstream(c); /* the backend never gets a malformed body */
                sst__conn_fatal(c, c->req->h1.err_status ? c->req->h1.err_status : 400,
                                c->req->h1.err_reason ? c->req->h1.err_reason : "bad request");
                break;
            }
            if (c->in != NULL && c->in_len == 0)
                conn_release_input(c);
        }
    } while (c->rerun && c->state != SST_CONN_CLOSING);
    c->in_run = false;
    if (c->state == SST_CONN_CLOSING)
        return;
    /* the request head held back by the upstream leaves now, with the body read in this pass */
    if (c->up != NULL && sst__upstream_flush(c->up) != 0) {
        sst__conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, "out of memory");
        return;
    }
    if (c->in != NULL && c->in_len == 0)
        conn_release_input(c);
    conn_update_reading(c);
    sst__conn_arm_timer(c);
}

/* ---- finishing ----------------------------------------------------------------------------- */

static void conn_tp_on_shutdown(sst_transport_t *t, int status)
{
    sst_conn_t *c = conn_of(t);
    /* runs with UV_ECANCELED when the connection closes first */
    if (c->state == SST_CONN_CLOSING)
        return;
    if (status < 0 || c->read_eof) {
        sst__conn_close(c);
        return;
    }
    c->deadline = conn_now(c) + conn_cfg(c)->timeouts.linger_ms;
    sst__conn_arm_timer(c);
}

static void conn_begin_close(sst_conn_t *c)
{
    if (c->state == SST_CONN_CLOSING || c->state == SST_CONN_LINGER)
        return;
    sst__conn_abort_upstream(c);
    conn_idle_list_remove(c);
    conn_release_input(c);
    sst__conn_set_state(c, SST_CONN_LINGER);
    c->deadline = UINT64_MAX; /* set when the shutdown completes: conn_tp_on_shutdown */
    /* FIN after the queued answer, then read and drop until the client closes or the linger
     * time passes, so the client reads the answer instead of a reset (unread input makes the
     * kernel send RST on close). */
    if (sst__tp_shutdown(&c->tp) != 0) {
        sst__conn_close(c);
        return;
    }
    conn_update_reading(c);
    sst__conn_arm_timer(c);
}

void sst__conn_finish_request(sst_conn_t *c)
{
    if (c->state == SST_CONN_CLOSING || c->state == SST_CONN_LINGER)
        return;
    sst__conn_account(c);
    bool close = sst__conn_will_close(c);
    if (c->up != NULL) {
        sst_upstream_t *u = c->up;
        c->up = NULL;
        sst__upstream_release(u); /* back to its pool if the exchange ended cleanly */
    }
    conn_release_request(c);
    if (close) {
        conn_begin_close(c);
        return;
    }
    c->first_request = false;
    sst__conn_set_state(c, SST_CONN_IDLE);
    c->backpressured = false;
    c->kick = false;
    c->last_progress = conn_now(c);
    sst_list_push(&c->w->conns.idle, &c->idle_link);
    c->in_idle_list = true;
    sst__conn_run(c); /* a pipelined request may already be here */
}

static const sst_tp_cb_t conn_tp_cb = {
    .on_read = conn_tp_on_read,
    .on_read_end = conn_tp_on_read_end,
    .on_write = conn_tp_on_write,
    .on_shutdown = conn_tp_on_shutdown,
    .on_closed = conn_tp_on_closed,
    .on_proxy = sst__conn_on_proxy,
};

/* ---- accepting --------------------------------------------------------------------------- */

int sst__conn_accept(sst_worker_t *w, sst_listener_t *l, bool reject)
{
    const sst_config_t *cfg = sst__worker_config(w);
    /* an HTTPS listener: the context of the config in force (cfg_index follows it) */
    sst_tls_server_t *tls = l->cfg_index < SST_MAX_LISTENERS
                                ? sst_tls_set_server(w->cur->view->prep->tls, l->cfg_index)
                                : NULL;
    sst_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SST_ENOMEM;
    int rc;
    if (tls != NULL) {
        sst_tp_tls_opts_t o = {.server = tls, .metrics = &w->metrics->tls};
        rc = sst__tp_init_tls(&c->tp, &w->loop, &conn_tp_cb, &o);
    } else {
        rc = sst__tp_init(&c->tp, &w->loop, SST_TP_TCP, &conn_tp_cb);
    }
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->w = w;
    c->dl = (sst_dnode_t)SST_DNODE_INIT;
    sst_list_init(&c->link);
    sst_list_init(&c->idle_link);
    sst_list_push(&w->conns.all, &c->link);
    w->conns.n_open++;
    sst__worker_conn_opened(w);
    sst_counter_add(&w->metrics->conn_accepted, 1);
    c->first_request = true; /* and IDLE, from calloc */
    c->accepted_ms = c->last_progress = conn_now(c);
    c->listener = l;
    sst__listener_hold(l);
    if (sst__tp_accept(&c->tp, (uv_stream_t *)&l->tcp) != 0) {
        sst__conn_close(c);
        return 0; /* nothing is waiting any more */
    }
    struct sockaddr_storage peer;
    if (sst__tp_peer(&c->tp, &peer) == 0) {
        sst__conn_addr_text((struct sockaddr *)&peer, c->peer_ip, sizeof(c->peer_ip));
        c->peer_trusted = sst_config_is_trusted(cfg, (struct sockaddr *)&peer);
    } else {
        memset(&peer, 0, sizeof(peer)); /* AF_UNSPEC: in no proxy_protocol_from */
        memcpy(c->peer_ip, "unknown", sizeof("unknown"));
    }
    const sst_listener_cfg_t *lc =
        l->cfg_index < cfg->n_listeners ? &cfg->listeners[l->cfg_index] : NULL;
    if (lc != NULL && lc->proxy_protocol && !sst__conn_pp_accept(c, lc, &peer))
        return 0; /* closed: a peer not allowed to send the header gets no answer */
    if (reject) {
        /* over limits.connections with no idle connection to reclaim: a quick 503 instead of
         * a hang, then drain briefly and close (over TLS just the close: an answer would cost
         * a handshake first) */
        sst_counter_add(&w->metrics->conn_rejected, 1);
        if (tls != NULL) {
            sst__conn_close(c);
            return 0;
        }
        size_t n = sst__error_response(w->conns.scratch, sizeof(w->conns.scratch), 503,
                                       "too many connections", 1, SST_STR_NULL, true, false, false);
        uv_buf_t b = uv_buf_init(w->conns.scratch, (unsigned)n);
        if (sst__conn_send(c, &b, 1) != 0) {
            sst__conn_close(c);
            return 0;
        }
        conn_begin_close(c);
        return 0;
    }
    sst_list_push(&w->conns.idle, &c->idle_link);
    c->in_idle_list = true;
    conn_update_reading(c);
    sst__conn_arm_timer(c);
    return 0;
}

size_t sst__conn_evict_idle(sst_worker_t *w, size_t max)
{
    size_t closed = 0, skipped = 0;
    /* the idle list is most recent first: the oldest idle connections go first; one whose
     * last answer is still queued is not idle yet (closing it would cut that answer). The
     * scan past such ones is bounded, so that clients that read nothing cannot make every
     * accept at the limit walk the whole list. */
    sst_link_t *l = w->conns.idle.prev;
    while (max > 0 && l != &w->conns.idle && skipped < 64) {
        sst_conn_t *c = sst_container_of(l, sst_conn_t, idle_link);
        l = l->prev;
        if (conn_write_queue(c) > 0) {
            skipped++;
            continue;
        }
        sst_counter_add(&w->metrics->conn_evicted, 1);
        sst__conn_close(c);
        max--;
        closed++;
    }
    return closed;
}

void sst__conn_shutdown_idle(sst_worker_t *w)
{
    while (!sst_list_empty(&w->conns.idle)) {
        sst_conn_t *c = sst_container_of(w->conns.idle.next, sst_conn_t, idle_link);
        if (conn_write_queue(c) > 0)
            conn_begin_close(c); /* FIN after the queued answer; leaves the idle list */
        else
            sst__conn_close(c);
    }
}

void sst__conn_close_all(sst_worker_t *w)
{
    while (!sst_list_empty(&w->conns.all)) {
        sst_conn_t *c = sst_container_of(w->conns.all.next, sst_conn_t, link);
        sst__conn_account(c);
        sst__conn_close(c);
    }
}
