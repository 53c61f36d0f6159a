/* The drill's own traffic: a libuv loop on a thread that starts requests on a fixed schedule
 * (each on a new connection, Connection: close, redirects not followed), parses each response
 * with http1.c and appends one record per request under a mutex. It shares nothing else with
 * the orchestrating thread. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "http/http1.h"
#include "sidestep/error.h"
#include "tools/drill.h"

#define TRAFFIC_MAX_INFLIGHT 512
#define TRAFFIC_MAX_BURST    64 /* requests started by one tick when the loop fell behind */
#define TRAFFIC_MAX_BODY     (64u << 20)

struct sst_traffic_s {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t async;
    uv_timer_t tick;
    bool thread_started;
    bool joined;
    sst_addr_t addr;
    double rate;
    uint64_t timeout_ms;
    uint64_t t0_ns;
    uint64_t send_start_ns;
    char *req_head;
    size_t req_head_len;
    char *body;
    size_t body_len;
    size_t in_flight;
    bool stopping; /* loop thread only */
    bool head_method;
    /* shared with the orchestrating thread, under mutex */
    uv_mutex_t mutex;
    sst_drill_rec_t *recs;
    size_t n_recs, cap_recs;
    uint64_t sent, skipped;
    bool oom;
    int stop_requested; /* under mutex */
};

typedef struct treq_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    sst_traffic_t *t;
    sst_h1_t h1;
    sst_head_t *head;
    sst_drill_rec_t rec;
    uint8_t pending_closes;
    bool finished;
    bool got_head;
    char buf[8192];
} treq_t;

static const char *const drill_err_words[SST_DRILL_ERR__COUNT] = {
    [SST_DRILL_OK] = "ok",       [SST_DRILL_CONNECT] = "connect",   [SST_DRILL_TIMEOUT] = "timeout",
    [SST_DRILL_RESET] = "reset", [SST_DRILL_PROTOCOL] = "protocol",
};

const char *sst__drill_err_word(sst_drill_err_t e)
{
    return (unsigned)e < SST_DRILL_ERR__COUNT ? drill_err_words[e] : "?";
}

static uint64_t traffic_us(const sst_traffic_t *t)
{
    return (uv_hrtime() - t->t0_ns) / 1000;
}

/* ---- one request ------------------------------------------------------------------------- */

static void treq_on_closed(uv_handle_t *h)
{
    treq_t *r = h->data;
    if (--r->pending_closes > 0)
        return;
    r->t->in_flight--;
    sst_head_free(r->head);
    free(r);
}

static void treq_finish(treq_t *r, sst_drill_err_t err)
{
    sst_traffic_t *t = r->t;
    if (r->finished)
        return;
    r->finished = true;
    r->rec.end_us = traffic_us(t);
    r->rec.error = (uint8_t)err;
    if (err != SST_DRILL_OK)
        r->rec.status = 0;
    uv_mutex_lock(&t->mutex);
    if (t->n_recs == t->cap_recs) {
        size_t cap = t->cap_recs ? t->cap_recs * 2 : 1024;
        sst_drill_rec_t *p = realloc(t->recs, cap * sizeof(*p));
        if (p != NULL) {
            t->recs = p;
            t->cap_recs = cap;
        }
    }
    if (t->n_recs < t->cap_recs)
        t->recs[t->n_recs++] = r->rec;
    else
        t->oom = true;
    uv_mutex_unlock(&t->mutex);
    r->pending_closes = 2;
    uv_close((uv_handle_t *)&r->tcp, treq_on_closed);
    uv_close((uv_handle_t *)&r->timer, treq_on_closed);
}

static void treq_on_timeout(uv_timer_t *tm)
{
    treq_finish(tm->data, SST_DRILL_TIMEOUT);
}

static int treq_on_body(void *opaque, const char *at, size_t len)
{
    (void)opaque;
    (void)at;
    (void)len;
    return 0; /* the body is not kept */
}

static void treq_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    treq_t *r = h->data;
    *buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void treq_feed(treq_t *r, const char *data, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        sst_h1_rc_t rc = sst_h1_feed(&r->h1, data + off, len - off, &used);
        off += used;
        switch (rc) {
        case SST_H1_MORE:
            return;
        case SST_H1_HEAD: {
            sst_h1_response_t resp;
            const char *why;
            if (sst_h1_check_response(&r->h1, &resp, &why) != 0) {
                treq_finish(r, SST_DRILL_PROTOCOL);
                return;
            }
            r->got_head = true;
            r->rec.status = resp.status;
            int i = sst_head_find(r->head, "x-sidestep-region", 0);
            if (i >= 0) {
                sst_str_t v = sst_str_trim_ows(sst_hdr_value(r->head, &r->head->hdrs[i]));
                size_t n = v.len < sizeof(r->rec.region) - 1 ? v.len : sizeof(r->rec.region) - 1;
                memcpy(r->rec.region, v.base, n);
                r->rec.region[n] = 0;
            }
            sst_h1_resume(&r->h1);
            continue; /* a body-less response completes with no more input */
        }
        case SST_H1_DONE:
            treq_finish(r, SST_DRILL_OK);
            return;
        case SST_H1_ERROR:
            treq_finish(r, SST_DRILL_PROTOCOL);
            return;
        }
    }
}

static void treq_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    treq_t *r = st->data;
    if (r->finished || nread == 0)
        return;
    if (nread > 0) {
        treq_feed(r, buf->base, (size_t)nread);
        return;
    }
    if (nread == UV_EOF && sst_h1_eof(&r->h1) == SST_H1_DONE) {
        treq_finish(r, SST_DRILL_OK);
        return;
    }
    treq_finish(r, SST_DRILL_RESET);
}

static void treq_on_written(uv_write_t *w, int status)
{
    treq_t *r = w->data;
    /* A server may answer (a redirect, an error) and close before reading the whole body:
     * the response, when it arrives, decides; a write error alone is not the end. */
    if (status != 0 && status != UV_ECANCELED && !r->finished)
        uv_timer_start(&r->timer, treq_on_timeout, 1000, 0);
}

static void treq_on_connect(uv_connect_t *c, int status)
{
    treq_t *r = c->data;
    sst_traffic_t *t = r->t;
    if (r->finished)
        return;
    if (status != 0) {
        treq_finish(r, SST_DRILL_CONNECT);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(t->req_head, (unsigned)t->req_head_len),
                        uv_buf_init(t->body, (unsigned)t->body_len)};
    r->wreq.data = r;
    if (uv_write(&r->wreq, (uv_stream_t *)&r->tcp, bufs, t->body_len > 0 ? 2 : 1,
                 treq_on_written) != 0 ||
        uv_read_start((uv_stream_t *)&r->tcp, treq_on_alloc, treq_on_read) != 0)
        treq_finish(r, SST_DRILL_RESET);
}

static void treq_start(sst_traffic_t *t)
{
    sst_h1_limits_t lim = {8192, 65536, 65536, 200, 0};
    treq_t *r = calloc(1, sizeof(*r));

    uv_mutex_lock(&t->mutex);
    t->sent++;
    uv_mutex_unlock(&t->mutex);
    if (r == NULL || (r->head = sst_head_new()) == NULL || uv_tcp_init(&t->loop, &r->tcp) != 0) {
        /* no handle to close: the send is dropped, like one over the in-flight cap */
        if (r != NULL)
            sst_head_free(r->head);
        free(r);
        uv_mutex_lock(&t->mutex);
        t->skipped++;
        uv_mutex_unlock(&t->mutex);
        return;
    }
    r->t = t;
    r->rec.start_us = traffic_us(t);
    sst_h1_init(&r->h1, true, &lim, treq_on_body, r);
    r->h1.head = r->head;
    r->h1.head_request = t->head_method;      /* no body follows the answer to a HEAD */
    (void)uv_timer_init(&t->loop, &r->timer); /* libuv's uv_timer_init always returns 0 */
    r->tcp.data = r->timer.data = r->creq.data = r;
    t->in_flight++;
    uv_timer_start(&r->timer, treq_on_timeout, t->timeout_ms, 0);
    if (uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&t->addr.sa, treq_on_connect) !=
        0)
        treq_finish(r, SST_DRILL_CONNECT);
}

/* ---- the schedule -------------------------------------------------------------------------- */

static void traffic_on_tick(uv_timer_t *tm)
{
    sst_traffic_t *t = tm->data;
    double elapsed = (double)(uv_hrtime() - t->send_start_ns) / 1e9;
    /* the n-th request (from 0) is due at n / rate seconds */
    uint64_t due = (uint64_t)(elapsed * t->rate) + 1;
    uint64_t sent;

    uv_mutex_lock(&t->mutex);
    sent = t->sent;
    uv_mutex_unlock(&t->mutex);
    for (int burst = 0; sent < due && burst < TRAFFIC_MAX_BURST; burst++, sent++) {
        if (t->in_flight >= TRAFFIC_MAX_INFLIGHT) {
            uv_mutex_lock(&t->mutex);
            t->sent++;
            t->skipped++;
            uv_mutex_unlock(&t->mutex);
            continue;
        }
        treq_start(t);
    }
}

static void traffic_on_async(uv_async_t *a)
{
    sst_traffic_t *t = a->data;
    int stop;
    uv_mutex_lock(&t->mutex);
    stop = t->stop_requested;
    uv_mutex_unlock(&t->mutex);
    if (!stop || t->stopping)
        return;
    t->stopping = true;
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_close((uv_handle_t *)&t->async, NULL);
    /* requests in flight keep the loop alive until they end */
}

static void traffic_thread(void *arg)
{
    sst_traffic_t *t = arg;
    t->send_start_ns = uv_hrtime();
    traffic_on_tick(&t->tick);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

static int traffic_build(sst_traffic_t *t, const sst_traffic_opts_t *o)
{
    char head[4096];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sidestep-drill/" SST_VERSION
                     "\r\nConnection: close\r\n",
                     o->method, o->target, o->host);
    if (n < 0 || (size_t)n >= sizeof(head) - 100)
        return SST_E2BIG;
    if (o->body_size > 0 || strcmp(o->method, "POST") == 0 || strcmp(o->method, "PUT") == 0 ||
        strcmp(o->method, "PATCH") == 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Content-Type: application/octet-stream\r\nContent-Length: %llu\r\n",
                      (unsigned long long)o->body_size);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (o->body_size > TRAFFIC_MAX_BODY)
        return SST_E2BIG;
    t->req_head = strdup(head);
    t->req_head_len = (size_t)n;
    t->body_len = (size_t)o->body_size;
    t->body = malloc(t->body_len ? t->body_len : 1);
    if (t->req_head == NULL || t->body == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < t->body_len; i++)
        t->body[i] = "0123456789abcdef"[i % 16];
    return 0;
}

int sst__traffic_start(const sst_traffic_opts_t *o, sst_traffic_t **out, char *err, size_t err_size)
{
    sst_traffic_t *t = calloc(1, sizeof(*t));
    bool loop_ready = false, mutex_ready = false, handles_ready = false;
    sigset_t block, old;
    int rc;

    if (t == NULL)
        return SST_ENOMEM;
    t->addr = *o->addr;
    t->rate = o->rate;
    t->timeout_ms = o->timeout_ms;
    t->t0_ns = o->t0_ns;
    t->head_method = strcmp(o->method, "HEAD") == 0;
    if ((rc = traffic_build(t, o)) != 0) {
        snprintf(err, err_size, "building the request: %s", sst_strerror(rc));
        goto fail;
    }
    if ((rc = uv_loop_init(&t->loop)) == 0)
        loop_ready = true;
    if (rc == 0 && (rc = uv_mutex_init(&t->mutex)) == 0)
        mutex_ready = true;
    if (rc == 0 && (rc = uv_async_init(&t->loop, &t->async, traffic_on_async)) == 0)
        handles_ready = true;
    if (rc != 0) {
        snprintf(err, err_size, "starting the traffic loop: %s", sst_strerror(rc));
        goto fail;
    }
    (void)uv_timer_init(&t->loop, &t->tick); /* libuv's uv_timer_init always returns 0 */
    t->async.data = t->tick.data = t;
    double interval = 1000.0 / t->rate;
    uint64_t every = interval < 1 ? 1 : interval > 50 ? 50 : (uint64_t)interval;
    uv_timer_start(&t->tick, traffic_on_tick, every, every);
    /* SIGINT/SIGTERM belong to the orchestrating thread, which restores the region first */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = uv_thread_create(&t->thread, traffic_thread, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, err_size, "starting the traffic thread: %s", sst_strerror(rc));
        goto fail;
    }
    t->thread_started = true;
    *out = t;
    return 0;

fail:
    if (handles_ready) {
        uv_close((uv_handle_t *)&t->async, NULL);
        uv_close((uv_handle_t *)&t->tick, NULL);
        uv_run(&t->loop, UV_RUN_DEFAULT);
    }
    if (loop_ready)
        uv_loop_close(&t->loop);
    if (mutex_ready)
        uv_mutex_destroy(&t->mutex);
    free(t->req_head);
    free(t->body);
    free(t);
    return rc;
}

int sst__traffic_records(sst_traffic_t *t, sst_drill_rec_t **recs, size_t *n, uint64_t *sent,
                         uint64_t *skipped)
{
    int rc = 0;
    uv_mutex_lock(&t->mutex);
    *recs = NULL;
    *n = 0;
    if (t->n_recs > 0) {
        *recs = malloc(t->n_recs * sizeof(**recs));
        if (*recs == NULL) {
            rc = SST_ENOMEM;
        } else {
            memcpy(*recs, t->recs, t->n_recs * sizeof(**recs));
            *n = t->n_recs;
        }
    }
    if (sent != NULL)
        *sent = t->sent;
    if (skipped != NULL)
        *skipped = t->skipped;
    if (t->oom)
        rc = SST_ENOMEM;
    uv_mutex_unlock(&t->mutex);
    return rc;
}

size_t sst__traffic_recent(sst_traffic_t *t, uint64_t since_us, sst_drill_rec_t *out, size_t max)
{
    size_t n = 0;
    uv_mutex_lock(&t->mutex);
    /* requests complete nearly in start order: older starts sit within the in-flight window
     * of the tail, so this stops after a bounded walk once it reaches them */
    size_t older = 0;
    for (size_t i = t->n_recs; i-- > 0 && n < max;) {
        if (t->recs[i].start_us >= since_us) {
            out[n++] = t->recs[i];
            older = 0;
        } else if (++older > TRAFFIC_MAX_INFLIGHT) {
            break;
        }
    }
    uv_mutex_unlock(&t->mutex);
    return n;
}

void sst__traffic_stop(sst_traffic_t *t)
{
    if (t == NULL || t->joined)
        return;
    uv_mutex_lock(&t->mutex);
    t->stop_requested = 1;
    uv_mutex_unlock(&t->mutex);
    uv_async_send(&t->async);
    uv_thread_join(&t->thread);
    t->joined = true;
    uv_loop_close(&t->loop);
}

void sst__traffic_free(sst_traffic_t *t)
{
    if (t == NULL)
        return;
    sst__traffic_stop(t);
    uv_mutex_destroy(&t->mutex);
    free(t->recs);
    free(t->req_head);
    free(t->body);
    free(t);
}
