/* A client connection's relay of the backend's response: the rebuilt head (h1_write.c), the body
 * by chunk reference (re-chunked where the framing says so), written in one go per read, with
 * back-pressure on the upstream. Part of the connection module (conn_int.h). */
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

/* ---- the response from the backend ------------------------------------------------------ */

static sst_wreq_t *conn_rwb(sst_conn_t *c)
{
    if (c->rwb == NULL)
        c->rwb = sst__wreq_get(&c->w->bufs);
    return c->rwb;
}

void sst__conn_response_flush(sst_conn_t *c)
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
        sst__conn_account(c);
        sst__conn_abort(c);
        return;
    }
    if (rc == SST_TP_SENT)
        c->last_progress = conn_now(c);
    sst__conn_arm_timer(c);
}

/* The end of one read of the response: what was gathered leaves; a client slower than the
 * backend pauses the upstream until the queue drains (conn_tp_on_write resumes it). */
void sst__conn_up_on_flush(void *owner)
{
    sst_conn_t *c = owner;
    sst__conn_response_flush(c);
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
        sst__conn_response_flush(c);
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
int sst__conn_up_on_head(void *owner, const sst_h1_response_t *resp, const sst_head_t *head)
{
    sst_conn_t *c = owner;
    sst_req_t *r = c->req;

    r->status = resp->status;
    if (r->backend >= 0) {
        /* passive health: a counted 5xx now; the good answer after a failure at the end */
        sst__passive_response(&c->w->passive, r->wv->view->cfg, (size_t)r->backend, resp->status,
                              false);
        sst__conn_backend_answered(c);
    }
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
        .tail = sst__conn_tail(c),
        .hsts = conn_hsts(c),
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

void sst__conn_up_on_body(void *owner, sst_chunk_t *chunk, const char *at, size_t len)
{
    sst_conn_t *c = owner;
    if (c->state == SST_CONN_CLOSING || len == 0)
        return;
    if (!c->req->chunked_out) {
        if (conn_gather(c, chunk, at, len, 0) != 0 && c->state != SST_CONN_CLOSING)
            sst__conn_abort(c);
        return;
    }
    /* re-chunked: size line from the write request's scratch, data, CRLF */
    sst_wreq_t *r = conn_rwb(c);
    if (r != NULL && (r->n_bufs + 3 > SST_WREQ_BUFS || r->scratch_used + 20 > SST_WREQ_SCRATCH ||
                      (r->n_chunks == SST_WREQ_CHUNKS && r->chunks[r->n_chunks - 1] != chunk))) {
        sst__conn_response_flush(c);
        if (c->state == SST_CONN_CLOSING)
            return;
        r = conn_rwb(c);
    }
    if (r == NULL) {
        sst__conn_abort(c);
        return;
    }
    char *line = r->scratch + r->scratch_used;
    int n = snprintf(line, 20, "%zx\r\n", len);
    r->scratch_used += (uint32_t)n;
    sst__wreq_add(r, NULL, line, (size_t)n);
    sst__wreq_add(r, chunk, at, len);
    sst__wreq_add(r, NULL, "\r\n", 2);
}

void sst__conn_up_on_done(void *owner)
{
    sst_conn_t *c = owner;
    sst_req_t *r = c->req;
    /* Issue 15: the OK that ends a run of passive failures waits for a complete response, or
     * a backend that cuts every body would alternate OK and ABORTED and never be ejected. */
    if (r->backend >= 0)
        sst__passive_response(&c->w->passive, r->wv->view->cfg, (size_t)r->backend, r->status,
                              true);
    if (r->chunked_out && conn_gather(c, NULL, "0\r\n\r\n", 5, 0) != 0) {
        if (c->state != SST_CONN_CLOSING)
            sst__conn_abort(c);
        return;
    }
    sst__conn_response_flush(c);
    if (c->state == SST_CONN_CLOSING)
        return;
    r->responded = true;
    if (!r->parsed) {
        /* the backend answered before the whole body arrived: stop forwarding, drain it */
        r->parsed = true;
        r->close_after = true;
        r->sink = SST_SINK_DISCARD;
    }
    sst__conn_finish_request(c);
}
