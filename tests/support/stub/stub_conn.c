/* One stub connection: reading, the llhttp callbacks that copy the request head, double-buffered
 * output with back-pressure, timers, its state machine. Bodies stream through the optional
 * hasher, never buffered whole; bad input becomes 400 + close, never a crash. */
#define _DEFAULT_SOURCE /* SO_LINGER's struct linger */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <llhttp.h>
#include <uv.h>

#include "sidestep/error.h"
#include "stub_internal.h"

#define STUB_BIT(s) (1u << (s))
/* Legal transitions: each row lists the states a connection may move to. */
__attribute__((unused)) static const unsigned stub_next_states[] = {
    [STUB_CONN_READING] =
        STUB_BIT(STUB_CONN_FINISHING) | STUB_BIT(STUB_CONN_STALLED) | STUB_BIT(STUB_CONN_CLOSING),
    [STUB_CONN_FINISHING] = STUB_BIT(STUB_CONN_LINGERING) | STUB_BIT(STUB_CONN_RESETTING) |
                            STUB_BIT(STUB_CONN_STALLED) | STUB_BIT(STUB_CONN_CLOSING),
    [STUB_CONN_LINGERING] = STUB_BIT(STUB_CONN_CLOSING),
    [STUB_CONN_RESETTING] = STUB_BIT(STUB_CONN_CLOSING),
    [STUB_CONN_STALLED] = STUB_BIT(STUB_CONN_CLOSING),
    [STUB_CONN_CLOSING] = 0,
};

/* --- output --------------------------------------------------------------------------------- */

static stub_side_t *stub_conn_fill_side(stub_conn_t *conn)
{
    return &conn->side[conn->fill];
}

static size_t stub_conn_queued(const stub_conn_t *conn)
{
    return conn->side[0].total + conn->side[1].total;
}

void stub_out_copy(stub_conn_t *conn, const void *data, size_t len)
{
    stub_side_t *s = stub_conn_fill_side(conn);
    stub_seg_t *last = s->nsegs ? &s->segs[s->nsegs - 1] : NULL;

    if (len == 0 || conn->oom)
        return;
    if (s->len > SIZE_MAX - len || stub_grow(&s->buf, &s->cap, s->len + len) != 0) {
        conn->oom = true;
        return;
    }
    if (last != NULL && last->ref == NULL) {
        assert(last->off + last->len == s->len);
        last->len += len;
    } else {
        assert(s->nsegs < STUB_MAX_SEGS);
        s->segs[s->nsegs++] = (stub_seg_t){NULL, s->len, len};
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->total += len;
}

void stub_out_str(stub_conn_t *conn, sst_str_t s)
{
    stub_out_copy(conn, s.base, s.len);
}

/* Queues bytes of a buffer the origin owns and never changes while connections live. */
void stub_out_ref(stub_conn_t *conn, const char *data, size_t len)
{
    stub_side_t *s = stub_conn_fill_side(conn);

    if (len <= STUB_COPY_MAX || s->nsegs > STUB_MAX_SEGS - 2) {
        stub_out_copy(conn, data, len);
        return;
    }
    if (conn->oom)
        return;
    s->segs[s->nsegs++] = (stub_seg_t){data, 0, len};
    s->total += len;
}

__attribute__((format(printf, 2, 3))) void stub_out_fmt(stub_conn_t *conn, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof(buf)); /* callers format short, bounded text */
    if (n > 0)
        stub_out_copy(conn, buf, (size_t)n);
}

static void stub_side_reset(stub_side_t *s)
{
    s->len = 0;
    s->nsegs = 0;
    s->total = 0;
}

/* --- connection lifecycle ------------------------------------------------------------------- */

static void stub_conn_parse(stub_conn_t *conn);
static void stub_conn_after_io(stub_conn_t *conn);

void stub_conn_set_state(stub_conn_t *conn, stub_state_t next)
{
    assert(stub_next_states[conn->state] & STUB_BIT(next));
    conn->state = next;
}

static void stub_conn_on_closed(uv_handle_t *handle)
{
    stub_conn_t *conn = handle->data;
    sst_stub_t *o = conn->stub;

    assert(conn->pending_closes > 0);
    if (--conn->pending_closes > 0)
        return;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        o->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    o->nconns--;
    if (conn->hash != NULL)
        o->hasher->destroy(conn->hash);
    free(conn->side[0].buf);
    free(conn->side[1].buf);
    free(conn->head);
    free(conn->hdrs);
    free(conn->scratch);
    sst__pp_acc_free(&conn->pp);
    free(conn);
    stub_conn_gone(o);
}

void stub_conn_close(stub_conn_t *conn)
{
    if (conn->state == STUB_CONN_CLOSING)
        return; /* idempotent: error paths may race to close */
    stub_conn_set_state(conn, STUB_CONN_CLOSING);
    conn->pending_closes = 2;
    uv_close((uv_handle_t *)&conn->tcp, stub_conn_on_closed);
    uv_close((uv_handle_t *)&conn->timer, stub_conn_on_closed);
}

/* Closes with RST: SO_LINGER {1, 0} makes close() drop the connection instead of sending FIN. */
void stub_conn_reset(stub_conn_t *conn)
{
    uv_os_fd_t fd;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (conn->state == STUB_CONN_CLOSING)
        return;
    if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    stub_conn_close(conn);
}

static void stub_conn_on_timer(uv_timer_t *timer);

static void stub_conn_timer(stub_conn_t *conn, stub_timer_t kind, uint64_t ms)
{
    assert(conn->timer_kind == STUB_TIMER_NONE);
    conn->timer_kind = kind;
    uv_timer_start(&conn->timer, stub_conn_on_timer, ms, 0);
}

static void stub_conn_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    stub_conn_t *conn = handle->data;

    /* Reading runs only once the previous input is consumed, so rbuf is free. */
    assert(conn->state != STUB_CONN_READING || conn->rpos == conn->rlen);
    *buf = uv_buf_init(conn->rbuf, sizeof(conn->rbuf));
}

static void stub_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    stub_conn_t *conn = stream->data;

    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || conn->state != STUB_CONN_READING) {
            stub_conn_close(conn);
            return;
        }
        conn->peer_eof = true;
        stub_conn_after_io(conn);
        return;
    }
    if (conn->state != STUB_CONN_READING)
        return; /* lingering or stalled: input is discarded */
    conn->rpos = 0;
    conn->rlen = (size_t)nread;
    if (conn->pp_wait) {
        /* the PROXY header (sidestep's own accumulator and parser): dropped, the request
         * starts after it */
        sst_pp_status_t st;
        sst_pp_result_t res;
        size_t used;
        if (sst__pp_acc_feed(&conn->pp, conn->rbuf, conn->rlen, SST_PP_V2_MAX_DEFAULT, &st, &res,
                             &used) != 0 ||
            st == SST_PP_ERROR) {
            stub_conn_close(conn);
            return;
        }
        if (st == SST_PP_NEED_MORE) {
            conn->rpos = conn->rlen; /* kept in conn->pp: rbuf is free for the next read */
            return;
        }
        conn->pp_wait = false;
        sst__pp_acc_free(&conn->pp);
        conn->rpos = used;
    }
    stub_conn_parse(conn);
}

void stub_conn_update_reading(stub_conn_t *conn)
{
    bool want = false;
    int err;

    switch (conn->state) {
    case STUB_CONN_READING:
        want = !conn->parser_paused && !conn->peer_eof && conn->rpos == conn->rlen &&
               stub_conn_queued(conn) <= STUB_HIGH_MARK;
        break;
    case STUB_CONN_LINGERING:
    case STUB_CONN_STALLED:
        want = !conn->peer_eof;
        break;
    case STUB_CONN_FINISHING:
    case STUB_CONN_RESETTING:
    case STUB_CONN_CLOSING:
        want = false;
        break;
    }
    if (want == conn->reading)
        return;
    if (want) {
        err = uv_read_start((uv_stream_t *)&conn->tcp, stub_conn_on_alloc, stub_conn_on_read);
        if (err != 0) {
            stub_conn_close(conn);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&conn->tcp);
    }
    conn->reading = want;
}

static void stub_conn_on_write(uv_write_t *req, int status);

static void stub_conn_flush(stub_conn_t *conn)
{
    stub_side_t *s = stub_conn_fill_side(conn);
    int err;

    if (conn->state == STUB_CONN_CLOSING)
        return;
    if (conn->oom) {
        stub_conn_close(conn);
        return;
    }
    if (conn->writing || s->total == 0)
        return;
    for (unsigned i = 0; i < s->nsegs; i++) {
        const stub_seg_t *seg = &s->segs[i];
        s->bufs[i] =
            uv_buf_init((char *)(seg->ref ? seg->ref : s->buf + seg->off), (unsigned)seg->len);
    }
    err = uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, s->bufs, s->nsegs, stub_conn_on_write);
    if (err != 0) {
        stub_conn_close(conn);
        return;
    }
    conn->writing = true;
    conn->fill ^= 1u;
}

static void stub_conn_on_shutdown(uv_shutdown_t *req, int status)
{
    stub_conn_t *conn = req->data;

    if (conn->state == STUB_CONN_CLOSING)
        return;
    if (status < 0 || conn->peer_eof) {
        stub_conn_close(conn);
        return;
    }
    /* Read until the peer closes too: closing with unread input would send RST and could destroy
     * the response in the peer's receive queue. */
    stub_conn_timer(conn, STUB_TIMER_LINGER, STUB_LINGER_MS);
    stub_conn_update_reading(conn);
}

/* Runs the `after` action once the last response is written. */
static void stub_conn_finish(stub_conn_t *conn)
{
    switch (conn->after) {
    case STUB_AFTER_CLOSE:
        stub_conn_set_state(conn, STUB_CONN_LINGERING);
        conn->sreq.data = conn;
        if (uv_shutdown(&conn->sreq, (uv_stream_t *)&conn->tcp, stub_conn_on_shutdown) != 0)
            stub_conn_close(conn);
        break;
    case STUB_AFTER_RESET:
        stub_conn_set_state(conn, STUB_CONN_RESETTING);
        stub_conn_timer(conn, STUB_TIMER_RESET, STUB_RESET_MS);
        break;
    case STUB_AFTER_STALL:
        stub_conn_set_state(conn, STUB_CONN_STALLED);
        break;
    case STUB_AFTER_KEEP:
        assert(!"FINISHING with keep-alive");
        stub_conn_close(conn);
        break;
    }
}

/* After any event: write what is queued, notice a finished peer or a drained last response,
 * and read only when there is room. */
static void stub_conn_after_io(stub_conn_t *conn)
{
    stub_conn_flush(conn);
    if (conn->state == STUB_CONN_READING && conn->peer_eof && !conn->parser_paused &&
        conn->rpos == conn->rlen) {
        if (conn->in_message) {
            stub_conn_close(conn); /* the request will never be complete */
            return;
        }
        conn->after = STUB_AFTER_CLOSE;
        stub_conn_set_state(conn, STUB_CONN_FINISHING);
    }
    if (conn->state == STUB_CONN_FINISHING && !conn->writing && stub_conn_queued(conn) == 0)
        stub_conn_finish(conn);
    if (conn->state != STUB_CONN_CLOSING)
        stub_conn_update_reading(conn);
}

void stub_conn_response_done(stub_conn_t *conn)
{
    if (conn->after != STUB_AFTER_KEEP)
        stub_conn_set_state(conn, STUB_CONN_FINISHING);
}

/* Queues pattern bytes up to the high mark; finishes the response when none are left. */
void stub_conn_pump(stub_conn_t *conn)
{
    const char *pattern = conn->stub->pattern;

    while (conn->prod_left > 0 && stub_conn_queued(conn) < STUB_HIGH_MARK && !conn->oom) {
        size_t n = conn->prod_left < STUB_SPAN ? (size_t)conn->prod_left : STUB_SPAN;
        const char *p = pattern + conn->prod_pos % STUB_PATTERN_LEN;
        if (conn->prod_chunked)
            stub_out_fmt(conn, "%zx\r\n", n);
        stub_out_ref(conn, p, n);
        if (conn->prod_chunked)
            stub_out_copy(conn, "\r\n", 2);
        conn->prod_left -= n;
        conn->prod_pos += n;
    }
    if (conn->prod_left > 0 || !conn->producing)
        return;
    if (conn->prod_terminate)
        stub_out_copy(conn, "0\r\n\r\n", 5);
    conn->producing = false;
    stub_conn_response_done(conn);
}

/* Resumes the parser once nothing holds it (delay, body producer, queued output). */
static void stub_conn_continue(stub_conn_t *conn)
{
    if (conn->state == STUB_CONN_CLOSING)
        return;
    if (conn->producing)
        stub_conn_pump(conn);
    if (conn->state == STUB_CONN_READING && conn->parser_paused && !conn->delaying &&
        !conn->producing && stub_conn_queued(conn) <= STUB_LOW_MARK) {
        conn->parser_paused = false;
        llhttp_resume(&conn->parser);
        stub_conn_parse(conn);
        return;
    }
    stub_conn_after_io(conn);
}

static void stub_conn_on_write(uv_write_t *req, int status)
{
    stub_conn_t *conn = req->data;

    conn->writing = false;
    stub_side_reset(&conn->side[conn->fill ^ 1u]);
    if (status < 0) {
        stub_conn_close(conn); /* also UV_ECANCELED: the handle is closing */
        return;
    }
    stub_conn_continue(conn);
}

static int stub_conn_pause(stub_conn_t *conn)
{
    conn->parser_paused = true;
    return HPE_PAUSED;
}

/* Starts the response (after its delay) at the head or message point; returns what the llhttp
 * callback returns. */
static int stub_conn_start(stub_conn_t *conn, bool at_head)
{
    stub_req_t *req = &conn->req;

    if (req->delay_ms > 0 && !req->delayed) {
        conn->delaying = true;
        stub_conn_timer(conn, STUB_TIMER_DELAY, req->delay_ms);
        return stub_conn_pause(conn);
    }
    if (at_head)
        stub_conn_respond_head(conn);
    else
        stub_conn_respond(conn);
    if (conn->state != STUB_CONN_READING || conn->producing ||
        stub_conn_queued(conn) > STUB_HIGH_MARK)
        return stub_conn_pause(conn);
    return 0;
}

static void stub_conn_on_timer(uv_timer_t *timer)
{
    stub_conn_t *conn = timer->data;
    stub_timer_t kind = conn->timer_kind;

    conn->timer_kind = STUB_TIMER_NONE;
    switch (kind) {
    case STUB_TIMER_DELAY:
        conn->delaying = false;
        conn->req.delayed = true;
        if (stub_starts_at_head(&conn->req))
            stub_conn_respond_head(conn);
        else
            stub_conn_respond(conn);
        stub_conn_continue(conn);
        break;
    case STUB_TIMER_RESET:
        stub_conn_reset(conn);
        break;
    case STUB_TIMER_LINGER:
        stub_conn_close(conn);
        break;
    case STUB_TIMER_NONE:
        break;
    }
}

static int stub_conn_cap_error(stub_conn_t *conn, int err, unsigned status)
{
    if (err == SST_ENOMEM) {
        conn->oom = true;
        llhttp_set_error_reason(&conn->parser, "out of memory");
    } else {
        conn->err_status = status;
        llhttp_set_error_reason(&conn->parser, status == 414 ? "request target too long"
                                                             : "request head too large");
    }
    return HPE_USER;
}

/* Copies a span of the request head; SST_E2BIG past the cap. */
static int stub_conn_head_append(stub_conn_t *conn, const char *at, size_t len)
{
    size_t max = conn->stub->max_head;

    if (len > max - conn->head_len)
        return SST_E2BIG;
    if (stub_grow(&conn->head, &conn->head_cap, conn->head_len + len) != 0)
        return SST_ENOMEM;
    memcpy(conn->head + conn->head_len, at, len);
    conn->head_len += len;
    return 0;
}

static int stub_conn_on_message_begin(llhttp_t *p)
{
    stub_conn_t *conn = p->data;

    memset(&conn->req, 0, sizeof(conn->req));
    conn->head_len = 0;
    conn->nhdrs = 0;
    conn->url_off = 0;
    conn->url_len = 0;
    conn->last_span = STUB_SPAN_NONE;
    conn->after = STUB_AFTER_KEEP;
    conn->in_message = true;
    return 0;
}

static int stub_conn_on_url(llhttp_t *p, const char *at, size_t len)
{
    stub_conn_t *conn = p->data;
    int err;

    if (conn->url_len == 0)
        conn->url_off = conn->head_len;
    err = stub_conn_head_append(conn, at, len);
    if (err != 0)
        return stub_conn_cap_error(conn, err, 414);
    conn->url_len += len;
    return 0;
}

static int stub_conn_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    stub_conn_t *conn = p->data;
    int err;

    if (conn->last_span != STUB_SPAN_FIELD) {
        if (conn->nhdrs == STUB_MAX_HEADERS)
            return stub_conn_cap_error(conn, SST_E2BIG, 431);
        if (conn->nhdrs == conn->hdrs_cap) {
            size_t ncap = conn->hdrs_cap ? conn->hdrs_cap * 2 : 32;
            stub_hdr_t *nh = realloc(conn->hdrs, ncap * sizeof(*nh));
            if (nh == NULL)
                return stub_conn_cap_error(conn, SST_ENOMEM, 431);
            conn->hdrs = nh;
            conn->hdrs_cap = ncap;
        }
        conn->hdrs[conn->nhdrs++] = (stub_hdr_t){conn->head_len, 0, conn->head_len, 0};
        conn->last_span = STUB_SPAN_FIELD;
    }
    err = stub_conn_head_append(conn, at, len);
    if (err != 0)
        return stub_conn_cap_error(conn, err, 431);
    conn->hdrs[conn->nhdrs - 1].name_len += len;
    return 0;
}

static int stub_conn_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    stub_conn_t *conn = p->data;
    stub_hdr_t *h;
    int err;

    if (conn->nhdrs == 0)
        return HPE_USER; /* llhttp always reports a field first */
    h = &conn->hdrs[conn->nhdrs - 1];
    if (conn->last_span != STUB_SPAN_VALUE) {
        h->value_off = conn->head_len;
        conn->last_span = STUB_SPAN_VALUE;
    }
    err = stub_conn_head_append(conn, at, len);
    if (err != 0)
        return stub_conn_cap_error(conn, err, 431);
    h->value_len += len;
    return 0;
}

static int stub_conn_on_headers_complete(llhttp_t *p)
{
    stub_conn_t *conn = p->data;
    stub_req_t *req = &conn->req;
    bool has_body = (p->flags & F_CHUNKED) || p->content_length > 0;

    /* This origin speaks no other protocol: CONNECT and Upgrade get an ordinary answer. */
    p->upgrade = 0;
    conn->last_span = STUB_SPAN_NONE;
    stub_conn_plan(conn);
    /* RFC 9110 §10.1.1: only HTTP/1.1 clients wait, and only for a body. */
    if (req->expect_continue && has_body && !req->http10 &&
        req->fail != SST_STUB_FAIL_NO_CONTINUE && req->fail != SST_STUB_FAIL_RESET &&
        req->fail != SST_STUB_FAIL_CLOSE && req->fail != SST_STUB_FAIL_STALL)
        stub_out_copy(conn, STUB_CONTINUE, sizeof(STUB_CONTINUE) - 1);
    if (!stub_starts_at_head(req))
        return 0;
    return stub_conn_start(conn, true);
}

static int stub_conn_on_body(llhttp_t *p, const char *at, size_t len)
{
    stub_conn_t *conn = p->data;
    stub_req_t *req = &conn->req;
    const sst_stub_hasher_t *h = conn->stub->hasher;

    req->body_bytes += len;
    if (req->kind == STUB_KIND_ECHO_BODY) {
        if (!req->send_body)
            return 0;
        if (req->framing == STUB_FRAME_CHUNKED)
            stub_out_fmt(conn, "%zx\r\n", len);
        stub_out_copy(conn, at, len);
        if (req->framing == STUB_FRAME_CHUNKED)
            stub_out_copy(conn, "\r\n", 2);
        return 0;
    }
    if (req->kind != STUB_KIND_ECHO || h == NULL || req->hash_failed)
        return 0;
    if (conn->hash == NULL) {
        conn->hash = h->create(h->arg);
        if (conn->hash == NULL) {
            req->hash_failed = true;
            return 0;
        }
    }
    if (!req->hash_started) {
        req->hash_started = true;
        if (h->reset(conn->hash) != 0) {
            req->hash_failed = true;
            return 0;
        }
    }
    if (h->update(conn->hash, at, len) != 0)
        req->hash_failed = true;
    return 0;
}

static int stub_conn_on_message_complete(llhttp_t *p)
{
    stub_conn_t *conn = p->data;
    stub_req_t *req = &conn->req;

    conn->in_message = false;
    if (req->kind != STUB_KIND_ECHO_BODY)
        return stub_conn_start(conn, false);
    if (req->send_body && req->framing == STUB_FRAME_CHUNKED)
        stub_out_copy(conn, "0\r\n\r\n", 5);
    stub_conn_response_done(conn);
    if (conn->state != STUB_CONN_READING || stub_conn_queued(conn) > STUB_HIGH_MARK)
        return stub_conn_pause(conn);
    return 0;
}

/* A request llhttp rejected: answer 400 (or 414/431) and close, unless an answer to this very
 * request already started, in which case only closing is left. */
static void stub_conn_parse_error(stub_conn_t *conn, llhttp_errno_t err)
{
    const char *reason = llhttp_get_error_reason(&conn->parser);
    unsigned status = conn->err_status ? conn->err_status : 400;
    char head[512], body[256];
    size_t hlen, blen = 0;

    conn->after = STUB_AFTER_CLOSE;
    if (conn->oom) {
        stub_conn_close(conn);
        return;
    }
    if (conn->in_message && conn->req.head_sent) {
        /* The echo of this body is under way: what is queued goes out, then the FIN tells the
         * peer the answer is truncated. */
        stub_conn_set_state(conn, STUB_CONN_FINISHING);
        return;
    }
    if (!stub_fmt(body, sizeof(body), &blen, "bad request: %.160s (%s)\n",
                  reason ? reason : "malformed", llhttp_errno_name(err)))
        blen = 0;
    hlen = stub_head(conn->stub, head, sizeof(head), status, "text/plain", STUB_FRAME_LENGTH, blen,
                     "close");
    assert(hlen > 0);
    stub_out_copy(conn, head, hlen);
    stub_out_copy(conn, "\r\n", 2);
    stub_out_copy(conn, body, blen);
    conn->in_message = false;
    stub_conn_set_state(conn, STUB_CONN_FINISHING);
}

static void stub_conn_parse(stub_conn_t *conn)
{
    while (conn->state == STUB_CONN_READING && !conn->parser_paused && conn->rpos < conn->rlen) {
        const char *data = conn->rbuf + conn->rpos;
        llhttp_errno_t err = llhttp_execute(&conn->parser, data, conn->rlen - conn->rpos);

        if (err == HPE_OK) {
            conn->rpos = conn->rlen;
        } else if (err == HPE_PAUSED) {
            /* error_pos is where parsing stopped: what follows waits for llhttp_resume(). */
            conn->rpos = (size_t)(llhttp_get_error_pos(&conn->parser) - conn->rbuf);
            assert(conn->parser_paused || conn->state != STUB_CONN_READING);
            conn->parser_paused = true;
        } else if (conn->state == STUB_CONN_READING) {
            conn->rpos = conn->rlen;
            stub_conn_parse_error(conn, err);
        }
    }
    stub_conn_after_io(conn);
}

/* --- setup ---------------------------------------------------------------------------------- */

void stub_settings_init(llhttp_settings_t *settings)
{
    llhttp_settings_init(settings);
    settings->on_message_begin = stub_conn_on_message_begin;
    settings->on_url = stub_conn_on_url;
    settings->on_header_field = stub_conn_on_header_field;
    settings->on_header_value = stub_conn_on_header_value;
    settings->on_headers_complete = stub_conn_on_headers_complete;
    settings->on_body = stub_conn_on_body;
    settings->on_message_complete = stub_conn_on_message_complete;
}

int stub_conn_init(stub_conn_t *conn, sst_stub_t *o)
{
    int err = uv_tcp_init(o->loop, &conn->tcp);

    if (err != 0)
        return err;
    conn->stub = o;
    conn->tcp.data = conn;
    (void)uv_timer_init(o->loop, &conn->timer); /* libuv's uv_timer_init always returns 0 */
    conn->timer.data = conn;
    conn->wreq.data = conn;
    conn->sreq.data = conn;
    llhttp_init(&conn->parser, HTTP_REQUEST, &o->settings);
    conn->parser.data = conn;
    conn->state = STUB_CONN_READING;
    conn->pp_wait = o->proxy_protocol;
    return 0;
}
