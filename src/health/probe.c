/* Active HTTP probes: per backend one timer (the next probe, then that probe's deadline) and one
 * TCP handle per attempt, with a TLS connection (the engine of sidestep/tls.h) for a backend of
 * a region with tls; responses parsed by sst_h1 (http1.c), the same layer and checks as
 * backend responses on the proxy path. Reports results to its owner and decides nothing about
 * health; never blocks the loop. */
#include "health/probe.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#include "http/http1.h"
#include "http/proxy_proto.h"
#include "sidestep/error.h"
#include "sidestep/str.h"

/* One response head of at most SST_PROBE_HEAD_MAX bytes, 1xx heads before it included; the
 * status line and any one field may take all of it. The body is scanned, never stored. */
static const sst_h1_limits_t probe_limits = {
    .request_line = SST_PROBE_HEAD_MAX,
    .field = SST_PROBE_HEAD_MAX,
    .head = SST_PROBE_HEAD_MAX,
    .headers = SST_PROBE_HEAD_MAX,
    .body = 0,
};

typedef enum probe_phase_e {
    PROBE_IDLE = 0,   /* waiting for the timer; the TCP handle is not initialised */
    PROBE_CONNECTING, /* connect in flight, timer is the deadline */
    PROBE_EXCHANGING, /* request written or queued, reading the response */
    PROBE_CLOSING,    /* result decided, TCP handle closing; reported from its close callback */
} probe_phase_t;

typedef struct probe_target_s {
    sst_prober_t *p;
    size_t index; /* backend index in the config */
    const sst_backend_cfg_t *bc;
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    sst_h1_t h1;
    sst_head_t *head; /* the response head's storage, reused by every attempt */
    probe_phase_t phase;
    uint64_t started_ns;
    sst_probe_result_t result;
    bool verdict;   /* `result` is decided */
    bool head_done; /* the final (non-1xx) response head was parsed */
    size_t body_scanned;
    size_t match; /* bytes of the needle matched so far, carried across reads */
    char send_error[32];
    sst_tls_conn_t *eng; /* TLS: this attempt's connection (freed when its socket closes) */
    bool tls_done;       /* TLS: the handshake completed */
    /* Fixed per backend, built at start: */
    sst_tls_client_t *tls; /* one reference: the region's client context, NULL for plain */
    char *plain;           /* TLS: decrypted bytes, SST_PROBE_TLS_BUF */
    char *request;         /* the PROXY header (pp_len bytes, sent in clear), then the request */
    size_t request_len;    /* both */
    size_t pp_len;
    bool is_head; /* a HEAD response carries no body */
    const char *needle;
    size_t needle_len;
    size_t *kmp; /* failure function of needle: longest proper border of needle[0..i] */
    char rbuf[4096];
} probe_target_t;

struct sst_prober_s {
    uv_loop_t *loop;
    const sst_config_t *cfg;
    const sst_health_t *h;
    sst_probe_cb cb;
    void *opaque;
    uint64_t rng;
    bool stopping;
    size_t pending_closes;
    sst_prober_done_cb done;
    void *done_arg;
    uv_timer_t ctl; /* never started: closing it guarantees `done` runs from a close callback */
    size_t n_targets;
    probe_target_t targets[];
};

#define SST_PROBE_TLS_BUF 4096

/* A TLS flight or record on its way: the block is the engine's output, taken without a copy. */
typedef struct probe_write_s {
    uv_write_t req;
    char *block;
} probe_write_t;

static void probe_on_timer(uv_timer_t *timer);

/* --- results ------------------------------------------------------------------------------ */

static void detail_set(sst_probe_result_t *res, const char *a, const char *b)
{
    snprintf(res->detail, sizeof(res->detail), "%s%s%s", a ? a : "", a && b ? ": " : "",
             b ? b : "");
}

static void probe_verdict(probe_target_t *t, bool ok, sst_reason_t reason, const char *detail)
{
    if (t->verdict)
        return;
    t->verdict = true;
    t->result.ok = ok;
    t->result.reason = reason;
    detail_set(&t->result, detail, NULL);
}

static bool status_expected(const sst_health_cfg_t *hc, uint16_t status)
{
    size_t n = hc->n_expect < SST_MAX_STATUS_RANGE ? hc->n_expect : SST_MAX_STATUS_RANGE;
    if (n == 0)
        return status >= 200 && status <= 399; /* the documented default range */
    for (size_t i = 0; i < n; i++)
        if (status >= hc->expect[i].lo && status <= hc->expect[i].hi)
            return true;
    return false;
}

static void probe_on_tcp_closed(uv_handle_t *handle);

/* Ends the attempt with the result already in t->result; reported once the handle closed. */
static void probe_close(probe_target_t *t)
{
    if (t->phase != PROBE_CONNECTING && t->phase != PROBE_EXCHANGING)
        return;
    t->result.duration_ms = (uv_hrtime() - t->started_ns) / 1000000u;
    uv_timer_stop(&t->timer);
    t->phase = PROBE_CLOSING;
    uv_close((uv_handle_t *)&t->tcp, probe_on_tcp_closed);
}

static void probe_fail(probe_target_t *t, sst_reason_t reason, const char *a, const char *b)
{
    t->verdict = true;
    t->result.ok = false;
    t->result.reason = reason;
    detail_set(&t->result, a, b);
    probe_close(t);
}

static void probe_schedule(probe_target_t *t, bool first)
{
    sst_prober_t *p = t->p;
    uint64_t delay = sst_health_probe_delay(p->h, t->index, first, &p->rng);
    uv_timer_start(&t->timer, probe_on_timer, delay, 0);
}

static void probe_report(probe_target_t *t)
{
    sst_prober_t *p = t->p;

    p->cb(p->opaque, t->index, &t->result);
    /* The callback may have stopped the prober: every handle is closing then, and p stays
     * alive until their close callbacks, which cannot run before we return. */
    if (p->stopping)
        return;
    probe_schedule(t, false);
}

/* --- the response ------------------------------------------------------------------------- */

static bool kmp_feed(probe_target_t *t, const char *s, size_t n)
{
    size_t k = t->match;
    for (size_t i = 0; i < n; i++) {
        while (k > 0 && s[i] != t->needle[k])
            k = t->kmp[k - 1];
        if (s[i] == t->needle[k])
            k++;
        if (k == t->needle_len) {
            t->match = k;
            return true;
        }
    }
    t->match = k;
    return false;
}

/* The final head (sst_h1 skips 1xx ones, RFC 9110 §15.2; 101 is final): the status is judged
 * first, so a status outside expect_status is L7STS whatever the rest of the head says. */
static void probe_on_head(probe_target_t *t)
{
    uint16_t status = (uint16_t)llhttp_get_status_code(&t->h1.p);
    sst_h1_response_t resp;
    const char *why = NULL;

    t->head_done = true;
    t->result.status = status;
    if (!status_expected(&t->bc->health, status))
        probe_verdict(t, false, SST_REASON_L7STS, NULL);
    else if (sst_h1_check_response(&t->h1, &resp, &why) != 0)
        probe_verdict(t, false, SST_REASON_L7RSP, why); /* what the proxy would answer 502 to */
    else if (t->needle == NULL)
        probe_verdict(t, true, SST_REASON_L7OK, NULL);
}

/* Body bytes, chunk framing removed (an sst_h1_body_cb). */
static int probe_on_body(void *opaque, const char *at, size_t len)
{
    probe_target_t *t = opaque;

    if (t->verdict || t->needle == NULL)
        return 0;
    size_t room = SST_PROBE_BODY_SCAN_MAX - t->body_scanned;
    size_t n = len < room ? len : room;
    if (kmp_feed(t, at, n)) {
        probe_verdict(t, true, SST_REASON_L7OK, NULL);
        return 0;
    }
    t->body_scanned += n;
    if (t->body_scanned >= SST_PROBE_BODY_SCAN_MAX)
        probe_verdict(t, false, SST_REASON_L7BODY, "not in the first 64k of the body");
    return 0;
}

/* Why sst_h1 refused the response: llhttp's error name and reason ("HPE_INVALID_CONSTANT:
 * Expected HTTP/"), or the reason of sidestep's own checks ("bare LF"). */
static void probe_bad_response(probe_target_t *t)
{
    llhttp_errno_t err = llhttp_get_errno(&t->h1.p);
    const char *why = t->h1.err_reason;

    if (err != HPE_OK && err != HPE_PAUSED && err != HPE_USER)
        probe_fail(t, SST_REASON_L7RSP, llhttp_errno_name(err), why);
    else
        probe_fail(t, SST_REASON_L7RSP, why != NULL ? why : "malformed response", NULL);
}

static void probe_feed(probe_target_t *t, const char *data, size_t len)
{
    size_t off = 0;

    for (;;) {
        size_t used = 0;
        sst_h1_rc_t rc = sst_h1_feed(&t->h1, data + off, len - off, &used);
        off += used;
        if (t->verdict) {
            probe_close(t); /* nothing more to read */
            return;
        }
        switch (rc) {
        case SST_H1_MORE:
            return;
        case SST_H1_HEAD:
            probe_on_head(t);
            if (t->verdict) {
                probe_close(t);
                return;
            }
            sst_h1_resume(&t->h1);
            continue; /* a body-less response completes with no more input */
        case SST_H1_DONE:
            probe_fail(t, SST_REASON_L7BODY, NULL, NULL); /* whole body read, substring absent */
            return;
        case SST_H1_ERROR:
            probe_bad_response(t);
            return;
        }
    }
}

/* --- the attempt -------------------------------------------------------------------------- */

static void probe_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    probe_target_t *t = handle->data;
    *buf = uv_buf_init(t->rbuf, sizeof(t->rbuf));
}

static void probe_on_eof(probe_target_t *t)
{
    /* A body delimited by the connection's end completes only here. */
    if (sst_h1_eof(&t->h1) == SST_H1_DONE && t->head_done) {
        probe_fail(t, SST_REASON_L7BODY, NULL, NULL); /* whole body read, substring absent */
        return;
    }
    llhttp_errno_t err = llhttp_get_errno(&t->h1.p);
    const char *what =
        t->head_done ? "closed in the middle of the body" : "closed before a response head";
    probe_fail(t, SST_REASON_L7RSP, what,
               t->send_error[0] != '\0'             ? t->send_error
               : err != HPE_OK && err != HPE_PAUSED ? llhttp_errno_name(err)
                                                    : NULL);
}

/* --- TLS ---------------------------------------------------------------------------------- */

static void probe_on_tls_write(uv_write_t *req, int status)
{
    probe_write_t *pw = (probe_write_t *)req; /* req is its first member */
    probe_target_t *t = req->data;

    if (status < 0 && t->phase == PROBE_EXCHANGING)
        snprintf(t->send_error, sizeof(t->send_error), "send: %s", uv_err_name(status));
    free(pw->block);
    free(pw);
}

/* Sends what the engine produced (ClientHello, Finished and the request, alerts). */
static int probe_tls_flush(probe_target_t *t)
{
    size_t len;
    char *block = sst_tls_conn_output_take(t->eng, &len);
    if (block == NULL)
        return 0;
    probe_write_t *pw = malloc(sizeof(*pw));
    if (pw == NULL) {
        free(block);
        return SST_ENOMEM;
    }
    pw->block = block;
    pw->req.data = t;
    uv_buf_t b = uv_buf_init(block, (unsigned)len);
    int rc = uv_write(&pw->req, (uv_stream_t *)&t->tcp, &b, 1, probe_on_tls_write);
    if (rc != 0) {
        free(block);
        free(pw);
    }
    return rc;
}

/* "unknown_ca: unable to get local issuer certificate": the reason, then OpenSSL's words. */
static void probe_tls_failed(probe_target_t *t)
{
    const char *why = sst_tls_fail_name(sst_tls_conn_fail_reason(t->eng));
    const char *detail = sst_tls_conn_verify_result(t->eng) != 0 ? sst_tls_conn_verify_error(t->eng)
                                                                 : sst_tls_conn_fail_detail(t->eng);
    (void)probe_tls_flush(t); /* the alert, for the backend's log */
    if (t->tls_done)
        probe_fail(t, SST_REASON_L7RSP, "TLS error", why);
    else
        probe_fail(t, SST_REASON_L6TLS, why, detail);
}

/* Drives the engine over what was fed: the handshake, then the response's plaintext. */
static void probe_tls_pump(probe_target_t *t)
{
    for (;;) {
        size_t n = 0;
        int ev = sst_tls_conn_read(t->eng, t->plain, SST_PROBE_TLS_BUF, &n);
        switch (ev) {
        case SST_TLS_DATA:
            probe_feed(t, t->plain, n);
            if (t->phase != PROBE_EXCHANGING)
                return;
            continue;
        case SST_TLS_HANDSHAKE_DONE:
            t->tls_done = true;
            continue;
        case SST_TLS_WANT_INPUT:
            if (probe_tls_flush(t) != 0)
                probe_fail(t, SST_REASON_L4ERR, "send", "out of memory");
            return;
        case SST_TLS_CLOSED:
            probe_on_eof(t);
            return;
        case SST_TLS_FAILED:
            probe_tls_failed(t);
            return;
        default: /* SST_ENOMEM (HTTP_REQUEST is a server's event) */
            probe_fail(t, t->tls_done ? SST_REASON_L7RSP : SST_REASON_L6TLS, "out of memory", NULL);
            return;
        }
    }
}

static void probe_tls_read(probe_target_t *t, ssize_t nread)
{
    if (nread > 0) {
        /* rbuf is borrowed until the pump ends: all of it is used, or the attempt is over */
        (void)sst_tls_conn_feed(t->eng, t->rbuf, (size_t)nread);
        probe_tls_pump(t);
    } else if (nread == UV_EOF) {
        sst_tls_conn_feed_eof(t->eng);
        probe_tls_pump(t); /* CLOSED (the response ends here), or a cut handshake */
    } else if (!t->tls_done) {
        probe_fail(t, SST_REASON_L6TLS, "read error", sst_strerror((int)nread));
    } else {
        probe_fail(t, SST_REASON_L7RSP, "read error", sst_strerror((int)nread));
    }
}

static void probe_on_write(uv_write_t *req, int status);

/* Connected: the request is handed to the engine at once (it leaves after the handshake),
 * which makes the ClientHello. */
static int probe_tls_start(probe_target_t *t)
{
    struct iovec iov = {t->request + t->pp_len, t->request_len - t->pp_len};
    int rc = 0;
    if (t->pp_len > 0) {
        /* the PROXY header goes in clear before the ClientHello (libuv keeps writes in order) */
        uv_buf_t pp = uv_buf_init(t->request, (unsigned)t->pp_len);
        t->write_req.data = t;
        rc = uv_write(&t->write_req, (uv_stream_t *)&t->tcp, &pp, 1, probe_on_write);
        if (rc != 0)
            return rc;
    }
    rc = sst_tls_conn_new_client(t->tls, t->index, &t->eng);
    t->tls_done = false;
    if (rc == 0)
        rc = sst_tls_conn_writev(t->eng, &iov, 1);
    if (rc == 0)
        rc = probe_tls_flush(t);
    return rc;
}

static void probe_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    probe_target_t *t = stream->data;

    if (t->phase != PROBE_EXCHANGING || nread == 0)
        return; /* 0 is EAGAIN, not EOF */
    if (t->eng != NULL) {
        probe_tls_read(t, nread);
        return;
    }
    if (nread == UV_EOF) {
        probe_on_eof(t);
        return;
    }
    if (nread < 0) {
        probe_fail(t, SST_REASON_L7RSP, "read error", sst_strerror((int)nread));
        return;
    }
    probe_feed(t, buf->base, (size_t)nread);
}

static void probe_on_write(uv_write_t *req, int status)
{
    probe_target_t *t = req->data;

    /* A failed send is not decisive on its own: the peer may already have answered, and a
     * reset or EOF reaches the read side too (the deadline bounds the rest). */
    if (status < 0 && t->phase == PROBE_EXCHANGING)
        snprintf(t->send_error, sizeof(t->send_error), "send: %s", uv_err_name(status));
}

static sst_reason_t connect_reason(int status)
{
    if (status == UV_ECONNREFUSED)
        return SST_REASON_L4CON;
    if (status == UV_ETIMEDOUT)
        return SST_REASON_L4TOUT;
    return SST_REASON_L4ERR;
}

static void probe_connect_failed(probe_target_t *t, int status)
{
    sst_reason_t r = connect_reason(status);
    probe_fail(t, r, r == SST_REASON_L4ERR ? sst_strerror(status) : NULL, NULL);
}

static void probe_on_connect(uv_connect_t *req, int status)
{
    probe_target_t *t = req->data;

    if (t->phase != PROBE_CONNECTING)
        return; /* UV_ECANCELED: a deadline or stop already closed the handle */
    if (status < 0) {
        probe_connect_failed(t, status);
        return;
    }
    t->phase = PROBE_EXCHANGING;
    int rc;
    if (t->tls != NULL) {
        rc = probe_tls_start(t);
    } else {
        uv_buf_t buf = uv_buf_init(t->request, (unsigned)t->request_len);
        t->write_req.data = t;
        rc = uv_write(&t->write_req, (uv_stream_t *)&t->tcp, &buf, 1, probe_on_write);
    }
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&t->tcp, probe_on_alloc, probe_on_read);
    if (rc != 0)
        probe_fail(t, SST_REASON_L4ERR, "send", sst_strerror(rc));
}

static void probe_begin(probe_target_t *t)
{
    sst_prober_t *p = t->p;
    const sst_health_cfg_t *hc = &t->bc->health;
    /* 0 never comes from the loader; a hand-made config gets the documented default rather
     * than a probe that can hang forever. */
    uint64_t timeout = hc->timeout_ms != 0 ? hc->timeout_ms : 1000;

    memset(&t->result, 0, sizeof(t->result));
    t->verdict = false;
    t->head_done = false;
    t->body_scanned = 0;
    t->match = 0;
    t->send_error[0] = '\0';
    sst_head_clear(t->head, SST_PROBE_HEAD_MAX);
    sst_h1_init(&t->h1, true, &probe_limits, probe_on_body, t);
    t->h1.head = t->head;
    t->h1.head_request = t->is_head; /* a HEAD response has no body */
    /* The loop clock was cached when this iteration began, maybe long ago on a busy loop:
     * refresh it so the deadline counts from now, like the measured duration. */
    uv_update_time(p->loop);
    t->started_ns = uv_hrtime();

    int rc = uv_tcp_init(p->loop, &t->tcp);
    if (rc != 0) {
        /* No handle to close: report from this timer callback directly. */
        t->result.reason = SST_REASON_L4ERR;
        detail_set(&t->result, "socket", sst_strerror(rc));
        probe_report(t);
        return;
    }
    t->tcp.data = t;
    t->connect_req.data = t;
    t->phase = PROBE_CONNECTING;
    rc = uv_tcp_connect(&t->connect_req, &t->tcp, (const struct sockaddr *)&t->bc->addr.sa,
                        probe_on_connect);
    if (rc != 0) {
        probe_connect_failed(t, rc);
        return;
    }
    uv_timer_start(&t->timer, probe_on_timer, timeout, 0);
}

static void probe_on_timer(uv_timer_t *timer)
{
    probe_target_t *t = timer->data;

    switch (t->phase) {
    case PROBE_IDLE:
        probe_begin(t);
        break;
    case PROBE_CONNECTING:
        probe_fail(t, SST_REASON_L4TOUT, NULL, NULL);
        break;
    case PROBE_EXCHANGING:
        if (t->eng != NULL && !t->tls_done)
            probe_fail(t, SST_REASON_L6TOUT, NULL, NULL);
        else
            probe_fail(t, SST_REASON_L7TOUT, t->head_done ? "waiting for the body" : NULL, NULL);
        break;
    case PROBE_CLOSING:
        break;
    }
}

/* --- lifetime ----------------------------------------------------------------------------- */

static void prober_free(sst_prober_t *p)
{
    for (size_t i = 0; i < p->n_targets; i++) {
        free(p->targets[i].request);
        free(p->targets[i].kmp);
        free(p->targets[i].plain);
        sst_tls_conn_free(p->targets[i].eng);
        sst_tls_client_unref(p->targets[i].tls);
        sst_head_free(p->targets[i].head);
    }
    free(p);
}

static void prober_release(sst_prober_t *p)
{
    if (--p->pending_closes != 0)
        return;
    sst_prober_done_cb done = p->done;
    void *arg = p->done_arg;
    prober_free(p); /* the only place a started prober is freed */
    if (done != NULL)
        done(arg);
}

static void probe_on_tcp_closed(uv_handle_t *handle)
{
    probe_target_t *t = handle->data;
    sst_prober_t *p = t->p;

    sst_tls_conn_free(t->eng); /* its borrowed input is rbuf, read no more */
    t->eng = NULL;
    t->phase = PROBE_IDLE;
    if (p->stopping) {
        prober_release(p); /* counted by sst_prober_stop; the result is dropped */
        return;
    }
    probe_report(t);
}

static void probe_on_timer_closed(uv_handle_t *handle)
{
    probe_target_t *t = handle->data;
    prober_release(t->p);
}

static void prober_on_ctl_closed(uv_handle_t *handle)
{
    prober_release(handle->data);
}

void sst_prober_stop(sst_prober_t *p, sst_prober_done_cb done, void *arg)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = true;
    p->done = done;
    p->done_arg = arg;
    p->pending_closes = 1;
    uv_close((uv_handle_t *)&p->ctl, prober_on_ctl_closed);
    for (size_t i = 0; i < p->n_targets; i++) {
        probe_target_t *t = &p->targets[i];
        p->pending_closes++;
        uv_close((uv_handle_t *)&t->timer, probe_on_timer_closed);
        switch (t->phase) {
        case PROBE_IDLE:
            break;
        case PROBE_CONNECTING:
        case PROBE_EXCHANGING:
            t->phase = PROBE_CLOSING;
            p->pending_closes++;
            uv_close((uv_handle_t *)&t->tcp, probe_on_tcp_closed);
            break;
        case PROBE_CLOSING:
            p->pending_closes++; /* its close callback is already on its way */
            break;
        }
    }
}

/* --- reload ------------------------------------------------------------------------------- */

/* prev's target for backend b of cfg: the same address in a region of the same name. */
static const probe_target_t *prober_find(const sst_prober_t *prev, const sst_config_t *cfg,
                                         size_t b)
{
    const sst_backend_cfg_t *bc = &cfg->backends[b];
    const char *rname = cfg->regions[bc->region].name;

    for (size_t i = 0; i < prev->n_targets; i++) {
        const probe_target_t *t = &prev->targets[i];
        const char *tname = prev->cfg->regions[t->bc->region].name;
        if (strcmp(t->bc->addr.text, bc->addr.text) == 0 && rname != NULL && tname != NULL &&
            strcmp(tname, rname) == 0)
            return t;
    }
    return NULL;
}

void sst_prober_carry(sst_prober_t *p, const sst_prober_t *prev)
{
    if (p == NULL || prev == NULL || p->stopping || prev->stopping)
        return;
    for (size_t i = 0; i < p->n_targets; i++) {
        probe_target_t *t = &p->targets[i];
        const probe_target_t *old = prober_find(prev, p->cfg, t->index);
        if (old == NULL || t->phase != PROBE_IDLE)
            continue;
        uint64_t delay = 0; /* a probe in flight: its result is dropped when prev stops */
        if (old->phase == PROBE_IDLE) {
            uint64_t interval = t->bc->health.interval_ms != 0 ? t->bc->health.interval_ms : 1;
            delay = uv_timer_get_due_in(&old->timer);
            if (delay > interval)
                delay = interval; /* the interval shrank with the reload */
        }
        uv_timer_start(&t->timer, probe_on_timer, delay, 0);
    }
}

int sst_prober_due_in(const sst_prober_t *p, size_t backend, uint64_t *ms)
{
    if (p == NULL || ms == NULL)
        return SST_EINVAL;
    for (size_t i = 0; i < p->n_targets; i++) {
        const probe_target_t *t = &p->targets[i];
        if (t->index != backend)
            continue;
        *ms = t->phase == PROBE_IDLE ? uv_timer_get_due_in(&t->timer) : 0;
        return 0;
    }
    return SST_ENOENT;
}

/* --- start -------------------------------------------------------------------------------- */

/* request-target and Host value: visible ASCII only, so nothing can split the request. */
static bool probe_text_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == 0 || n == cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int probe_prepare(probe_target_t *t)
{
    const sst_health_cfg_t *hc = &t->bc->health;
    const sst_addr_t *a = &t->bc->addr;
    const char *host = hc->host[0] != '\0' ? hc->host : a->text;
    size_t host_cap = hc->host[0] != '\0' ? sizeof(hc->host) : sizeof(a->text);

    if ((a->sa.ss_family != AF_INET && a->sa.ss_family != AF_INET6) || a->salen == 0)
        return SST_EINVAL;
    size_t mlen = strnlen(hc->method, sizeof(hc->method));
    if (mlen == sizeof(hc->method) || !sst_str_is_token(sst_str(hc->method, mlen)))
        return SST_EINVAL;
    if (!probe_text_ok(hc->path, sizeof(hc->path)) || !probe_text_ok(host, host_cap))
        return SST_EINVAL;

    /* A backend that reads a PROXY header on every connection (its region's
     * send_proxy_protocol) gets one from the probe too: v2 LOCAL or v1 UNKNOWN, "the
     * connection was established on purpose by the proxy without being relayed", so the
     * backend keeps the probe's own address (issue 16). */
    char pp[SST_PP_WRITE_MAX];
    int pp_len = 0;
    sst_send_proxy_t mode = t->p->cfg->regions[t->bc->region].send_proxy_protocol;
    if (mode != SST_SEND_PROXY_OFF && (pp_len = sst_pp_write_local((int)mode, pp, sizeof(pp))) < 0)
        return SST_EINVAL;

    static const char fmt[] = "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sidestep-health\r\n"
                              "Connection: close\r\n\r\n";
    int len = snprintf(NULL, 0, fmt, hc->method, hc->path, host);
    if (len <= 0)
        return SST_EINVAL;
    t->request = malloc((size_t)pp_len + (size_t)len + 1);
    if (t->request == NULL)
        return SST_ENOMEM;
    memcpy(t->request, pp, (size_t)pp_len);
    if (snprintf(t->request + pp_len, (size_t)len + 1, fmt, hc->method, hc->path, host) != len)
        return SST_EINVAL;
    t->request_len = (size_t)pp_len + (size_t)len;
    t->pp_len = (size_t)pp_len;
    t->is_head = strcmp(hc->method, "HEAD") == 0;
    t->head = sst_head_new();
    if (t->head == NULL)
        return SST_ENOMEM;

    if (hc->expect_body != NULL && hc->expect_body[0] != '\0') {
        t->needle = hc->expect_body;
        t->needle_len = strlen(hc->expect_body);
        t->kmp = malloc(t->needle_len * sizeof(*t->kmp));
        if (t->kmp == NULL)
            return SST_ENOMEM;
        size_t k = 0;
        t->kmp[0] = 0;
        for (size_t i = 1; i < t->needle_len; i++) {
            while (k > 0 && t->needle[i] != t->needle[k])
                k = t->kmp[k - 1];
            if (t->needle[i] == t->needle[k])
                k++;
            t->kmp[i] = k;
        }
    }
    return 0;
}

int sst_prober_start(uv_loop_t *loop, const sst_config_t *cfg, const sst_health_t *h,
                     const sst_tls_set_t *tls, uint64_t seed, sst_probe_cb cb, void *opaque,
                     sst_prober_t **out)
{
    if (loop == NULL || cfg == NULL || h == NULL || cb == NULL || out == NULL ||
        cfg->n_backends > SST_MAX_BACKENDS)
        return SST_EINVAL;
    size_t n = 0;
    for (size_t b = 0; b < cfg->n_backends; b++)
        n += cfg->backends[b].health.enabled;
    /* n <= SST_MAX_BACKENDS: the size cannot overflow. */
    sst_prober_t *p = calloc(1, sizeof(*p) + n * sizeof(probe_target_t));
    if (p == NULL)
        return SST_ENOMEM;
    p->loop = loop;
    p->cfg = cfg;
    p->h = h;
    p->cb = cb;
    p->opaque = opaque;
    p->rng = seed != 0 ? seed : 0x2545f4914f6cdd1du;
    p->n_targets = n;

    size_t k = 0;
    for (size_t b = 0; b < cfg->n_backends; b++) {
        if (!cfg->backends[b].health.enabled)
            continue;
        probe_target_t *t = &p->targets[k++];
        t->p = p;
        t->index = b;
        t->bc = &cfg->backends[b];
        int rc = probe_prepare(t);
        if (rc == 0 && cfg->regions[t->bc->region].tls.enabled) {
            t->tls = sst_tls_client_ref(sst_tls_set_client(tls, t->bc->region));
            t->plain = malloc(SST_PROBE_TLS_BUF);
            rc = t->tls == NULL ? SST_EINVAL : t->plain == NULL ? SST_ENOMEM : 0;
        }
        if (rc != 0) {
            prober_free(p);
            return rc;
        }
    }

    /* Nothing below can fail (libuv's uv_timer_init always returns 0), so no handle ever
     * needs closing on an error path. */
    uv_timer_init(loop, &p->ctl);
    p->ctl.data = p;
    for (size_t i = 0; i < n; i++) {
        probe_target_t *t = &p->targets[i];
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        probe_schedule(t, true);
    }
    *out = p;
    return 0;
}
