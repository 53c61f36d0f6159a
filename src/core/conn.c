/* One downstream client connection: read -> parse -> route -> forward or answer -> respond, with
 * keep-alive, pipelining (one request at a time, answered in order), timeouts and
 * back-pressure. Decisions come from route.c; the upstream side lives in upstream.c. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/conn_int.h"
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

static void conn_run(sst_conn_t *c);
static void conn_arm_timer(sst_conn_t *c);
static void conn_update_reading(sst_conn_t *c);
static void conn_finish_request(sst_conn_t *c);
static void conn_begin_close(sst_conn_t *c);
static void conn_proxy_attempt(sst_conn_t *c);
static void conn_apply_decision(sst_conn_t *c);
static void conn_answer_locally(sst_conn_t *c);
static void conn_fatal(sst_conn_t *c, unsigned status, const char *reason);
static int conn_on_body(void *opaque, const char *at, size_t len);
static void conn_response_flush(sst_conn_t *c);
static const sst__upstream_cb_t conn_upstream_cb;
static const sst_tp_cb_t conn_tp_cb;
static void conn_tp_on_shutdown(sst_transport_t *t, int status);

static const char empty_input[1] = "";

/* An idle connection's whole cost (docs/benchmarks.md, 10,000 idle connections): growing it is
 * a decision to make there, not an accident. */
_Static_assert(sizeof(sst_conn_t) <= 448, "sst_conn_t grew past 448 bytes");

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
static void conn_set_state(sst_conn_t *c, sst_conn_state_t to)
{
    assert(conn_legal[c->state][to]);
    sst_debug("conn %p: %s -> %s", (void *)c, conn_state_names[c->state], conn_state_names[to]);
    c->state = to;
}

static inline const sst_config_t *conn_cfg(const sst_conn_t *c)
{
    return c->req != NULL && c->req->wv != NULL ? c->req->wv->view->cfg : sst__worker_config(c->w);
}

static inline uint64_t conn_now(const sst_conn_t *c)
{
    return uv_now(&c->w->loop);
}

static inline size_t conn_write_queue(const sst_conn_t *c)
{
    return sst__tp_queued(&c->tp);
}

/* The send timeout's clock: queued bytes moved, or a write began to wait on an empty queue. */
static inline void conn_write_progress(sst_conn_t *c)
{
    c->write_progress = (uint32_t)conn_now(c);
}

static inline uint64_t conn_write_since(const sst_conn_t *c)
{
    uint64_t now = conn_now(c);
    return now - (uint32_t)((uint32_t)now - c->write_progress); /* exact for stalls < 49 days */
}

static void conn_resume_parser(sst_conn_t *c)
{
    sst_h1_resume(&c->req->h1);
    c->kick = true;
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
static void conn_abort_upstream(sst_conn_t *c)
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
    conn_set_state(c, SST_CONN_CLOSING);
    conn_abort_upstream(c);
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

static void conn_abort(sst_conn_t *c)
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
    /* text: TIME CLIENT "METHOD TARGET PROTO" STATUS in= out= dur=ms route= decision= region=
     * backend= attempts= reason="..." */
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
    };
    size_t n = sst_log_format(line, sizeof(line), sst_log_epoch_ms(), f, sizeof(f) / sizeof(f[0]));
    sst__worker_access_log(c->w, line, n);
}

/* Counts and logs the request once, when its exchange ends (however it ends). */
static void conn_account(sst_conn_t *c)
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
        conn_account(c);
        conn_abort(c);
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
        conn_run(c); /* the pipelined requests waiting in the input */
        return;
    }
    conn_arm_timer(c);
}

/* Writes bufs: one send(2) when nothing is queued (the common case, no allocation), any rest
 * queued as a copy. Returns 0 or a negative error; the caller closes on error. */
static int conn_send(sst_conn_t *c, const uv_buf_t *bufs, size_t n)
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
    conn_arm_timer(c);
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

static void conn_arm_timer(sst_conn_t *c)
{
    if (c->state == SST_CONN_CLOSING)
        return;
    uint64_t d = conn_compute_deadline(c);
    if (d != UINT64_MAX && c->dl.due <= d)
        return; /* lazy: an earlier deadline fires, recomputes and re-arms */
    if (sst__worker_deadline_set(c->w, &c->dl, d) != 0)
        conn_abort(c); /* out of memory: this client only */
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
        conn_account(c);
        conn_abort(c);
        return;
    }
    if (conn_reading_body(c) && t->body_min_rate > 0 && c->req->body_rate_check <= now) {
        uint64_t elapsed_ms = now - c->req->body_started;
        if (c->req->body_in * 1000 < t->body_min_rate * elapsed_ms) {
            sst_counter_add(&m->timeouts[SST_M_TIMEOUT_BODY], 1);
            conn_abort_upstream(c);
            conn_fatal(c, 408, "request body below the minimum rate");
            return;
        }
        c->req->body_rate_check = now + 1000;
    }
    uint64_t d = conn_compute_deadline(c);
    if (d > now) {
        if (d != UINT64_MAX && sst__worker_deadline_set(c->w, &c->dl, d) != 0)
            conn_abort(c);
        return;
    }
    switch (c->state) {
    case SST_CONN_IDLE:
        sst_counter_add(&m->timeouts[SST_M_TIMEOUT_IDLE], 1);
        sst__conn_close(c); /* nothing was asked: close without an answer */
        return;
    case SST_CONN_HEAD:
        sst_counter_add(&m->timeouts[SST_M_TIMEOUT_HEAD], 1);
        conn_fatal(c, 408, "request head not received in time");
        return;
    case SST_CONN_UPSTREAM:
    case SST_CONN_LOCAL:
        sst_counter_add(&m->timeouts[SST_M_TIMEOUT_BODY], 1);
        /* a slow client is not a backend failure: abort the attempt quietly */
        conn_abort_upstream(c);
        conn_fatal(c, 408, "request body not received in time");
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
        conn_account(c);
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

static void conn_tp_on_read_end(sst_transport_t *t, int status)
{
    sst_conn_t *c = conn_of(t);
    c->read_eof = true;
    if (status == UV_EOF)
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
    c->in_len = (uint32_t)nread;
    conn_run(c);
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

/* ---- answers generated by sidestep -------------------------------------------------------- */

static bool conn_will_close(const sst_conn_t *c)
{
    return c->req->close_after || !c->req->info.keep_alive || c->w->stopping || c->read_eof;
}

static sst_tail_t conn_tail(const sst_conn_t *c)
{
    if (conn_will_close(c))
        return SST_TAIL_CLOSE;
    if (c->req->info.minor == 0)
        return SST_TAIL_KEEPALIVE10;
    return SST_TAIL_PLAIN;
}

static int conn_send_answer(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    /* method_name is set once the head parsed */
    bool head_only = r->info.method_name.len > 0 && r->info.method == HTTP_HEAD;
    int rc;
    if (r->decision.kind == SST_DECIDE_REDIRECT && r->decision.preflight) {
        /* a CORS preflight of a redirected route: 204, built from the request's own head */
        const sst_config_t *cfg = r->wv->view->cfg;
        uv_buf_t iov[SST_PREFLIGHT_IOV];
        sst_str_t region =
            r->decision.region < cfg->n_regions && cfg->regions[r->decision.region].name != NULL
                ? sst_str_c(cfg->regions[r->decision.region].name)
                : SST_STR_NULL;
        size_t n = sst__preflight_iov(&r->decision, region, conn_tail(c), iov,
                                      sizeof(iov) / sizeof(iov[0]));
        if (n == 0)
            return SST_EINVAL;
        r->status = 204;
        rc = conn_send(c, iov, n);
    } else if (r->decision.kind == SST_DECIDE_REDIRECT) {
        uv_buf_t iov[SST_LOCATION_PARTS + 10];
        size_t n = sst__redirect_iov(r->wv->view->prep, &r->decision, r->https_redirect,
                                     conn_tail(c), head_only, iov, sizeof(iov) / sizeof(iov[0]));
        if (n == 0)
            return SST_EINVAL;
        r->status = r->decision.status;
        rc = conn_send(c, iov, n);
    } else {
        bool close = conn_will_close(c);
        size_t n =
            sst__error_response(c->w->conns.scratch, sizeof(c->w->conns.scratch),
                                r->decision.status, r->decision.reason, r->decision.retry_after_s,
                                close, !close && r->info.minor == 0, head_only);
        uv_buf_t b = uv_buf_init(c->w->conns.scratch, (unsigned)n);
        r->status = r->decision.status;
        rc = conn_send(c, &b, 1);
    }
    if (rc == 0)
        r->responded = true;
    return rc;
}

/* Answers r->decision (a redirect or a rejection) without a backend. RFC 9110 §10.1.1 and the
 * routing rules: with Expect: 100-continue and no 100 sent, answer at once and close (the body
 * never crosses the network); a small body is read and dropped first so the connection stays
 * usable; a large or unknown one is answered at once, then drained for the linger time. */
static void conn_answer_locally(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    const sst_config_t *cfg = conn_cfg(c);

    conn_abort_upstream(c);
    conn_set_state(c, SST_CONN_LOCAL);
    if (r->note == NULL)
        r->note = r->decision.reason;
    if (r->info.has_body && !r->parsed) {
        uint64_t limit =
            r->route < cfg->n_routes ? cfg->routes[r->route].redirect_discard_bytes : 64 * 1024;
        bool expecting = r->info.expect_continue && !r->continue_sent;
        bool small = r->info.has_length && r->info.content_length - r->body_in <= limit;
        if (!expecting && small && !c->w->stopping) {
            r->sink = SST_SINK_DISCARD;
            if (c->req->h1.paused_head)
                conn_resume_parser(c);
            conn_run(c);
            return; /* answered once the body is read: conn_on_request_parsed */
        }
        r->close_after = true;
    }
    if (conn_send_answer(c) != 0) {
        sst__conn_close(c);
        return;
    }
    if (r->parsed) {
        conn_finish_request(c);
    } else if (!r->info.has_body) {
        conn_resume_parser(c); /* llhttp completes the body-less message: conn_run finishes */
        conn_run(c);
    } else {
        r->parsed = true; /* what is left of the body is drained by the linger */
        conn_finish_request(c);
    }
}

/* An error that ends the connection: answer `status` with Connection: close, then linger. */
static void conn_fatal(sst_conn_t *c, unsigned status, const char *reason)
{
    sst_req_t *r = c->req;
    if (c->state == SST_CONN_CLOSING || c->state == SST_CONN_LINGER)
        return;
    conn_abort_upstream(c);
    if (r == NULL) {
        sst__conn_close(c); /* no request to answer */
        return;
    }
    if (r->resp_started) {
        r->note = reason;
        conn_account(c);
        conn_abort(c);
        return;
    }
    if (r->mdec != SST_M_REJECT)
        r->mdec = SST_M_ERROR;
    if (r->note == NULL)
        r->note = reason;
    r->decision.kind = SST_DECIDE_REJECT;
    r->decision.status = (uint16_t)status;
    r->decision.reason = reason;
    r->decision.retry_after_s = 0;
    r->close_after = true;
    conn_set_state(c, SST_CONN_LOCAL);
    if (conn_send_answer(c) != 0) {
        sst__conn_close(c);
        return;
    }
    r->parsed = true;
    conn_finish_request(c);
}

/* A 502/503/504 after routing: the connection survives when the request was read whole. */
static void conn_respond_error(sst_conn_t *c, unsigned status, const char *reason)
{
    sst_req_t *r = c->req;
    r->decision.kind = SST_DECIDE_REJECT;
    r->decision.status = (uint16_t)status;
    r->decision.reason = reason;
    r->decision.retry_after_s = status == 503 ? 1 : 0;
    if (r->note == NULL)
        r->note = reason;
    conn_answer_locally(c);
}

/* ---- routing ----------------------------------------------------------------------------- */

/* The Access-Control-Request-* fields of a CORS preflight, for route.c to decide whether a
 * redirected route answers it itself. Only an OPTIONS with an Origin can be one, so other
 * requests do not scan their head again. The slices point into the request's own head. */
static void conn_preflight_input(const sst_req_t *r, sst_route_input_t *in)
{
    static const char acrm[] = "access-control-request-method";
    static const char acrh[] = "access-control-request-headers";
    const sst_head_t *h = r->head;

    if (r->info.method != HTTP_OPTIONS || r->info.origin.len == 0 || h == NULL)
        return;
    int m = sst_head_find(h, acrm, 0);
    int hd = sst_head_find(h, acrh, 0);
    if (m >= 0)
        in->acr_method = sst_hdr_value(h, &h->hdrs[m]);
    if (hd >= 0)
        in->acr_headers = sst_hdr_value(h, &h->hdrs[hd]);
    in->acr_repeated = (m >= 0 && sst_head_find(h, acrm, (uint32_t)m + 1) >= 0) ||
                       (hd >= 0 && sst_head_find(h, acrh, (uint32_t)hd + 1) >= 0);
}

static sst_route_input_t conn_route_input(const sst_conn_t *c)
{
    const sst_req_t *r = c->req;
    sst_route_input_t in = {
        .now_ms = conn_now(c),
        .method = r->info.method_name,
        .target = r->info.target,
        .host = r->info.host,
        .origin = r->info.origin,
        .exclude_regions = r->exclude_regions,
    };
    conn_preflight_input(r, &in);
    return in;
}

static void conn_route(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    const sst_config_t *cfg = r->wv->view->cfg;
    sst_route_input_t in = conn_route_input(c);
    const sst_listener_cfg_t *lc =
        r->listener_index < cfg->n_listeners ? &cfg->listeners[r->listener_index] : NULL;

    if (lc != NULL && lc->https_redirect) {
        if (sst_route_https(&in, lc, r->https_host, sizeof(r->https_host), &r->decision) != 0) {
            conn_fatal(c, 400, "invalid Host for the https redirect");
            return;
        }
        r->https_redirect = true;
        r->mdec = SST_M_REDIRECT;
        r->note = "https redirect";
        conn_answer_locally(c);
        return;
    }
    if (sst_route_decide(&in, cfg, r->wv->view->snap, &r->decision) != 0) {
        conn_fatal(c, 400, "request-target cannot be routed");
        return;
    }
    r->route = r->decision.route;
    conn_apply_decision(c);
}

static void conn_apply_decision(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    switch (r->decision.kind) {
    case SST_DECIDE_PROXY:
        r->region = r->decision.region;
        r->mdec = SST_M_PROXY;
        conn_proxy_attempt(c);
        return;
    case SST_DECIDE_REDIRECT:
        r->region = r->decision.region;
        r->mdec = SST_M_REDIRECT;
        conn_answer_locally(c);
        return;
    case SST_DECIDE_REJECT:
        r->mdec = SST_M_REJECT;
        conn_answer_locally(c);
        return;
    }
}

static void conn_on_head(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    const sst_config_t *cfg = conn_cfg(c);
    const char *reason = NULL;

    r->bytes_in = c->req->h1.head_bytes;
    int status = sst_h1_check_request(&c->req->h1, &r->info, &reason);
    if (status != 0) {
        conn_fatal(c, (unsigned)status, reason);
        return;
    }
    r->idempotent = sst_method_is_idempotent(r->info.method_name);
    if (r->info.has_body) {
        r->body_started = conn_now(c);
        if (cfg->timeouts.body_total_ms > 0)
            r->body_deadline_total = r->body_started + cfg->timeouts.body_total_ms;
        /* minimum rate: judged after a 5 s grace, then every second */
        r->body_rate_check = r->body_started + 5000;
    }
    conn_route(c);
}

/* ---- proxying ---------------------------------------------------------------------------- */

static bool conn_backend_left(const sst_conn_t *c)
{
    const sst_req_t *r = c->req;
    const sst_config_t *cfg = r->wv->view->cfg;
    const sst_hsnap_t *snap = r->wv->view->snap;
    const sst_region_cfg_t *reg = &cfg->regions[r->region];
    for (size_t b = reg->first_backend; b < reg->first_backend + reg->n_backends; b++) {
        if (sst_tried_has(&r->tried, b))
            continue;
        if (r->decision.ignore_health ? snap->backends[b].force != SST_FORCE_DOWN
                                      : snap->backends[b].state == SST_UP)
            return true;
    }
    return false;
}

static void conn_attempt_failed(sst_conn_t *c, sst_fail_phase_t phase, sst_m_upfail_t kind,
                                const char *why);
static void conn_up_on_ready(void *owner);

static void conn_proxy_attempt(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    sst_worker_t *w = c->w;
    const sst_config_t *cfg = r->wv->view->cfg;

    conn_set_state(c, SST_CONN_UPSTREAM);
    /* A retry or a reroute of a request whose body is still to come: no body byte may move
     * until the new upstream is connected and its request head queued (conn_up_on_ready sets
     * the sink again); conn_run holds the input meanwhile. */
    if (!r->parsed)
        r->sink = SST_SINK_NONE;
    for (;;) {
        int b = sst_lb_pick(cfg, r->wv->view->snap, r->region, conn_now(c),
                            r->decision.ignore_health, &r->tried, &w->conns.lb[r->region]);
        if (b < 0) {
            conn_attempt_failed(c, SST_FAIL_NO_BACKEND, SST_M_UP_FAILS, "no eligible backend");
            return;
        }
        r->backend = b;
        r->attempts++;
        sst_tried_set(&r->tried, (size_t)b);
        sst_pool_t *pool = sst__pool_for(&w->pools, r->wv->view, (size_t)b);
        if (pool == NULL) {
            conn_fatal(c, 503, "out of memory");
            return;
        }
        sst_upstream_t *u = sst__pool_take(pool, !r->idempotent, conn_now(c));
        if (u != NULL) {
            c->up = u;
            sst__upstream_attach(u, cfg, &conn_upstream_cb, c);
            conn_up_on_ready(c);
            return;
        }
        if (sst__pool_full(pool, cfg->limits.upstream_connections)) {
            /* this backend is at its connection limit in this worker: try another one */
            r->attempts--;
            if (!conn_backend_left(c)) {
                conn_respond_error(c, 503, "upstream connection limit reached");
                return;
            }
            continue;
        }
        int rc = sst__upstream_connect(w, pool, cfg, &conn_upstream_cb, c, &u);
        if (rc != 0) {
            conn_attempt_failed(c, SST_FAIL_CONNECT, SST_M_UP_CONNECT_ERROR, sst_strerror(rc));
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
    if (r->backend >= 0 && (size_t)r->backend < cfg->n_backends)
        out.default_host = sst_str_c(cfg->backends[r->backend].addr.text);
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
        conn_fatal(c, 503, "out of memory");
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
            conn_fatal(c, 431, "request head too large to forward");
            return;
        }
        conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, sst_strerror(rc));
        return;
    }
    if (r->info.expect_continue && !r->continue_sent && !r->parsed) {
        /* Envoy-style: sidestep answers the expectation itself once a backend is connected,
         * so an unreachable backend can still be answered with a 307 before any body moves. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        r->continue_sent = true;
        if (conn_send(c, &b, 1) != 0) {
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
    conn_run(c);
}

static void conn_flush_body(sst_conn_t *c)
{
    uint32_t n = c->w->conns.n_out_bufs;
    c->w->conns.n_out_bufs = 0;
    if (n == 0 || c->up == NULL)
        return;
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
    if (rc != 0) {
        conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, "write failed");
        return;
    }
    if (!sst__upstream_writable(c->up))
        c->backpressured = true;
}

/* Request body bytes as parsed (chunk framing removed), through http1.c. */
static int conn_on_body(void *opaque, const char *at, size_t len)
{
    sst_conn_t *c = opaque;
    sst_req_t *r = c->req;

    r->body_in += len;
    r->bytes_in += len;
    if (r->sink == SST_SINK_UPSTREAM && c->up != NULL) {
        if (c->w->conns.n_out_bufs == SST_WREQ_BUFS - 4)
            conn_flush_body(c);
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
        conn_run(c);
    }
}

static void conn_on_request_parsed(sst_conn_t *c)
{
    sst_req_t *r = c->req;
    r->parsed = true;
    if (c->up != NULL && r->sink == SST_SINK_UPSTREAM) {
        conn_flush_body(c);
        if (c->up == NULL)
            return;
        if (r->info.chunked) {
            /* trailers are never forwarded: the body ends with the last chunk */
            if (sst__upstream_send_body(c->up, NULL, NULL, 0, "0\r\n\r\n", 5, NULL, 0) != 0) {
                conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, "write failed");
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
        if (conn_send_answer(c) != 0)
            sst__conn_close(c);
    }
}

/* ---- failures of an attempt ------------------------------------------------------------- */

/* An attempt failed in `phase` (found by the upstream, or here while sending to it): ask
 * route.c what follows. */
static void conn_attempt_failed(sst_conn_t *c, sst_fail_phase_t phase, sst_m_upfail_t kind,
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
    if (r->backend >= 0)
        sst__passive_failure(&w->passive, cfg, (size_t)r->backend, kind);
    r->note = why;
    if (r->resp_started || phase == SST_FAIL_RESPONSE_STARTED) {
        /* the client already has part of the answer: it must see the cut */
        conn_account(c);
        conn_abort(c);
        return;
    }
    sst_fail_input_t fi = {
        .phase = phase,
        .idempotent = r->idempotent,
        .body_consumed = r->body_in > 0,
        .attempts = r->attempts,
        .retries = r->route < cfg->n_routes ? cfg->routes[r->route].retries : 0,
        .backend_left = phase != SST_FAIL_NO_BACKEND && conn_backend_left(c),
    };
    sst_fail_decision_t fd;
    sst_route_on_failure(&fi, &fd);
    switch (fd.action) {
    case SST_ON_FAIL_RETRY:
        sst_counter_add(&w->metrics->retries, 1);
        conn_proxy_attempt(c);
        return;
    case SST_ON_FAIL_REROUTE: {
        /* In-flight failover: the backend never had the request, so sending the client to the
         * next healthy region is safe (the client still holds its body). */
        size_t failed = r->region;
        r->exclude_regions |= 1u << failed;
        sst_route_input_t in = conn_route_input(c);
        if (sst_route_decide(&in, cfg, r->wv->view->snap, &r->decision) != 0) {
            conn_respond_error(c, 502, why);
            return;
        }
        unsigned fail_status =
            kind == SST_M_UP_CONNECT_TIMEOUT || kind == SST_M_UP_TIMEOUT ? 504 : 502;
        if (r->decision.kind == SST_DECIDE_REJECT ||
            (r->decision.kind == SST_DECIDE_PROXY &&
             ((r->exclude_regions >> r->decision.region) & 1 || r->body_in > 0))) {
            /* nowhere else to go, back to a failed region, or a body that can no longer be
             * replayed: the client learns what happened to its backend (502, or 504 for a
             * connect timeout), not the all-down 503 meant for requests never attempted */
            conn_respond_error(c, fail_status, why);
            return;
        }
        if (r->decision.kind == SST_DECIDE_REDIRECT) {
            unsigned mid = failed < SST_MAX_REGIONS ? r->wv->view->prep->region_mid[failed] : 0;
            sst_counter_add(&w->metrics->inflight_failovers[mid], 1);
            r->note = "in-flight failover";
        }
        if (r->body_in > 0)
            r->close_after = true;
        conn_apply_decision(c);
        return;
    }
    case SST_ON_FAIL_RESPOND:
        conn_respond_error(c, fd.status, why);
        return;
    case SST_ON_FAIL_ABORT:
        conn_account(c);
        conn_abort(c);
        return;
    }
}

static void conn_up_on_fail(void *owner, sst_fail_phase_t phase, sst_m_upfail_t kind,
                            const char *why)
{
    sst_conn_t *c = owner;
    c->up = NULL; /* detached and closing: the upstream counted its own failure */
    conn_attempt_failed(c, phase, kind, why);
}

/* ---- the response from the backend ------------------------------------------------------ */

static sst_wreq_t *conn_rwb(sst_conn_t *c)
{
    if (c->rwb == NULL)
        c->rwb = sst__wreq_get(&c->w->bufs);
    return c->rwb;
}

static void conn_response_flush(sst_conn_t *c)
{
    sst_wreq_t *r = c->rwb;
    if (r == NULL)
        return;
    c->rwb = NULL;
    if (r->n_bufs == 0) {
        sst__wreq_put(r);
        return;
    }
    c->req->bytes_out += r->bytes;
    if (conn_write_queue(c) == 0)
        conn_write_progress(c);
    int rc = sst__tp_write(&c->tp, r);
    if (rc < 0) {
        conn_account(c);
        conn_abort(c);
        return;
    }
    if (rc == SST_TP_SENT)
        c->last_progress = conn_now(c);
    conn_arm_timer(c);
}

/* The end of one read of the response: what was gathered leaves; a client slower than the
 * backend pauses the upstream until the queue drains (conn_tp_on_write resumes it). */
static void conn_up_on_flush(void *owner)
{
    sst_conn_t *c = owner;
    conn_response_flush(c);
    if (c->up != NULL && conn_write_queue(c) > conn_cfg(c)->limits.buffer)
        sst__upstream_pause(c->up);
}

/* Adds bytes that live in `chunk` (or static storage when chunk is NULL) to the gathered
 * response write; flushes first when the write request is full. Returns 0 or SST_ENOMEM. */
static int conn_gather(sst_conn_t *c, sst_chunk_t *chunk, const char *at, size_t len,
                       size_t extra_bufs)
{
    sst_wreq_t *r = conn_rwb(c);
    if (r != NULL && (r->n_bufs + 1 + extra_bufs > SST_WREQ_BUFS ||
                      (chunk != NULL && r->n_chunks == SST_WREQ_CHUNKS &&
                       r->chunks[r->n_chunks - 1] != chunk))) {
        conn_response_flush(c);
        if (c->state == SST_CONN_CLOSING)
            return SST_ECANCELED;
        r = conn_rwb(c);
    }
    if (r == NULL)
        return SST_ENOMEM;
    sst__wreq_add(r, chunk, at, len);
    return 0;
}

/* A response head from the backend: framing for this client, then the head, rebuilt by
 * http/h1_write.c, joins the gathered write. */
static int conn_up_on_head(void *owner, const sst_h1_response_t *resp, const sst_head_t *head)
{
    sst_conn_t *c = owner;
    sst_req_t *r = c->req;

    r->status = resp->status;
    if (r->backend >= 0) /* passive health: a 5xx, or the good answer after a failure */
        sst__passive_response(&c->w->passive, r->wv->view->cfg, (size_t)r->backend, resp->status);
    if (!r->parsed)
        r->close_after = true; /* an early answer: the rest of the body is not for us */
    sst_h1_frame_t frame = sst_h1_response_framing(resp, r->info.minor);
    r->chunked_out = frame == SST_FRAME_CHUNKED;
    if (frame == SST_FRAME_CLOSE)
        r->close_after = true; /* a 1.0 client reads until the close */

    sst_h1w_response_t out = {
        .resp = resp,
        .head = head,
        .client_minor = r->info.minor,
        .tail = conn_tail(c),
    };
    size_t need = sst_h1_response_bound(&out);
    sst_chunk_t *ch = NULL;
    char *heap = NULL, *buf;
    if (need <= SST_CHUNK_SIZE) {
        ch = sst__chunk_get(&c->w->bufs);
        buf = ch != NULL ? ch->data : NULL;
    } else {
        heap = malloc(need);
        buf = heap;
    }
    if (buf == NULL)
        return SST_ENOMEM;
    size_t n = sst_h1_write_response(&out, buf, ch != NULL ? ch->size : need);
    sst_wreq_t *w = n > 0 ? conn_rwb(c) : NULL;
    if (w == NULL) {
        free(heap);
        if (ch != NULL)
            sst__chunk_unref(&c->w->bufs, ch);
        return n == 0 ? SST_E2BIG : SST_ENOMEM;
    }
    sst__wreq_add(w, ch, buf, n);
    if (ch != NULL)
        sst__chunk_unref(&c->w->bufs, ch); /* the write request holds its own reference */
    else
        w->heap = heap;
    r->resp_started = true;
    return 0;
}

static void conn_up_on_body(void *owner, sst_chunk_t *chunk, const char *at, size_t len)
{
    sst_conn_t *c = owner;
    if (c->state == SST_CONN_CLOSING || len == 0)
        return;
    if (!c->req->chunked_out) {
        if (conn_gather(c, chunk, at, len, 0) != 0 && c->state != SST_CONN_CLOSING)
            conn_abort(c);
        return;
    }
    /* re-chunked: size line from the write request's scratch, data, CRLF */
    sst_wreq_t *r = conn_rwb(c);
    if (r != NULL && (r->n_bufs + 3 > SST_WREQ_BUFS || r->scratch_used + 20 > SST_WREQ_SCRATCH ||
                      (r->n_chunks == SST_WREQ_CHUNKS && r->chunks[r->n_chunks - 1] != chunk))) {
        conn_response_flush(c);
        if (c->state == SST_CONN_CLOSING)
            return;
        r = conn_rwb(c);
    }
    if (r == NULL) {
        conn_abort(c);
        return;
    }
    char *line = r->scratch + r->scratch_used;
    int n = snprintf(line, 20, "%zx\r\n", len);
    r->scratch_used += (uint32_t)n;
    sst__wreq_add(r, NULL, line, (size_t)n);
    sst__wreq_add(r, chunk, at, len);
    sst__wreq_add(r, NULL, "\r\n", 2);
}

static void conn_up_on_done(void *owner)
{
    sst_conn_t *c = owner;
    sst_req_t *r = c->req;
    if (r->chunked_out && conn_gather(c, NULL, "0\r\n\r\n", 5, 0) != 0) {
        if (c->state != SST_CONN_CLOSING)
            conn_abort(c);
        return;
    }
    conn_response_flush(c);
    if (c->state == SST_CONN_CLOSING)
        return;
    r->responded = true;
    if (!r->parsed) {
        /* the backend answered before the whole body arrived: stop forwarding, drain it */
        r->parsed = true;
        r->close_after = true;
        r->sink = SST_SINK_DISCARD;
    }
    conn_finish_request(c);
}

static const sst__upstream_cb_t conn_upstream_cb = {
    .on_ready = conn_up_on_ready,
    .on_head = conn_up_on_head,
    .on_body = conn_up_on_body,
    .on_flush = conn_up_on_flush,
    .on_done = conn_up_on_done,
    .on_fail = conn_up_on_fail,
    .on_drained = conn_up_on_drained,
};

static const sst_tp_cb_t conn_tp_cb = {
    .on_read = conn_tp_on_read,
    .on_read_end = conn_tp_on_read_end,
    .on_write = conn_tp_on_write,
    .on_shutdown = conn_tp_on_shutdown,
    .on_closed = conn_tp_on_closed,
};

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
    sst_h1_init(&r->h1, false, &lim, conn_on_body, c);
    r->h1.head = r->head;
    /* the listener's entry in the config this request uses (indices follow the view) */
    r->listener_index = c->listener->cfg_index;
    conn_set_state(c, SST_CONN_HEAD);
    conn_idle_list_remove(c);
    if (!c->first_request)
        c->accepted_ms = conn_now(c); /* the head deadline counts from the first byte */
    return true;
}

static void conn_run(sst_conn_t *c)
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
                    conn_abort(c);
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
                c->in_off += (uint32_t)used;
                c->in_len -= (uint32_t)used;
            }
            if (rc == SST_H1_ERROR)
                c->w->conns.n_out_bufs = 0; /* the body is malformed: nothing more of it leaves */
            else if (c->req != NULL && c->req->sink == SST_SINK_UPSTREAM)
                conn_flush_body(c);
            if (c->state == SST_CONN_CLOSING)
                break;
            switch (rc) {
            case SST_H1_MORE:
                break;
            case SST_H1_HEAD:
                conn_on_head(c);
                break;
            case SST_H1_DONE:
                conn_on_request_parsed(c);
                if (c->state != SST_CONN_CLOSING && c->req != NULL && c->req->responded)
                    conn_finish_request(c);
                break;
            case SST_H1_ERROR:
                /* The client's fault, found at once wherever it is in the body: the backend's
                 * connection is closed (never pooled, never a passive signal against it) and
                 * the client gets the parser's status, or a cut once a response has begun. */
                if (c->up != NULL)
                    conn_abort_upstream(c); /* the backend never gets a malformed body */
                conn_fatal(c, c->req->h1.err_status ? c->req->h1.err_status : 400,
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
        conn_attempt_failed(c, SST_FAIL_SEND_PARTIAL, SST_M_UP_RESET, "out of memory");
        return;
    }
    if (c->in != NULL && c->in_len == 0)
        conn_release_input(c);
    conn_update_reading(c);
    conn_arm_timer(c);
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
    conn_arm_timer(c);
}

static void conn_begin_close(sst_conn_t *c)
{
    if (c->state == SST_CONN_CLOSING || c->state == SST_CONN_LINGER)
        return;
    conn_abort_upstream(c);
    conn_idle_list_remove(c);
    conn_release_input(c);
    conn_set_state(c, SST_CONN_LINGER);
    c->deadline = UINT64_MAX; /* set when the shutdown completes: conn_tp_on_shutdown */
    /* FIN after the queued answer, then read and drop until the client closes or the linger
     * time passes, so the client reads the answer instead of a reset (unread input makes the
     * kernel send RST on close). */
    if (sst__tp_shutdown(&c->tp) != 0) {
        sst__conn_close(c);
        return;
    }
    conn_update_reading(c);
    conn_arm_timer(c);
}

static void conn_finish_request(sst_conn_t *c)
{
    if (c->state == SST_CONN_CLOSING || c->state == SST_CONN_LINGER)
        return;
    conn_account(c);
    bool close = conn_will_close(c);
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
    conn_set_state(c, SST_CONN_IDLE);
    c->backpressured = false;
    c->kick = false;
    c->last_progress = conn_now(c);
    sst_list_push(&c->w->conns.idle, &c->idle_link);
    c->in_idle_list = true;
    conn_run(c); /* a pipelined request may already be here */
}

/* ---- accepting --------------------------------------------------------------------------- */

int sst__conn_accept(sst_worker_t *w, sst_listener_t *l, bool reject)
{
    const sst_config_t *cfg = sst__worker_config(w);
    sst_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SST_ENOMEM;
    int rc = sst__tp_init(&c->tp, &w->loop, SST_TP_TCP, &conn_tp_cb);
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
        if (peer.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&peer, c->peer_ip, sizeof(c->peer_ip));
        else if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, c->peer_ip, sizeof(c->peer_ip));
        c->peer_trusted = sst_config_is_trusted(cfg, (struct sockaddr *)&peer);
    }
    if (c->peer_ip[0] == 0)
        memcpy(c->peer_ip, "unknown", sizeof("unknown"));
    if (reject) {
        /* over limits.connections with no idle connection to reclaim: a quick 503 instead of
         * a hang, then drain briefly and close */
        sst_counter_add(&w->metrics->conn_rejected, 1);
        size_t n = sst__error_response(w->conns.scratch, sizeof(w->conns.scratch), 503,
                                       "too many connections", 1, true, false, false);
        uv_buf_t b = uv_buf_init(w->conns.scratch, (unsigned)n);
        if (conn_send(c, &b, 1) != 0) {
            sst__conn_close(c);
            return 0;
        }
        conn_begin_close(c);
        return 0;
    }
    sst_list_push(&w->conns.idle, &c->idle_link);
    c->in_idle_list = true;
    conn_update_reading(c);
    conn_arm_timer(c);
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
        conn_account(c);
        sst__conn_close(c);
    }
}
