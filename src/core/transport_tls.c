/* The TLS kind of the transport (transport.h): the engine of sidestep/tls.h between the socket
 * and the owner. Ciphertext chunks in, plaintext chunks from the same free lists out; the
 * owner's plaintext in, one send of records out. Its state lives in its own allocation hung off
 * tcp.data, for TLS connections only. Owns no HTTP knowledge and no timer: owners keep the
 * handshake deadline. */
#include "core/transport.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "sidestep/error.h"

typedef struct tls_state_s {
    sst_tls_conn_t *eng;
    sst_m_tls_t *m;
    /* Started when the owner resumes reading with input left in the engine: that input is
     * delivered one loop turn later (never from inside the owner's call), then the socket is
     * read again. */
    uv_idle_t resume;
    uint16_t mid;        /* backend: metric id */
    uint8_t closes;      /* handles still to close: the socket and `resume` */
    sst_tls_fail_t fail; /* why the connection failed (NONE: it did not) */
    bool server;         /* a client connection on an HTTPS listener */
    bool connecting;     /* backend: on_connect is still due */
    bool connected;      /* backend: TCP is up, the handshake runs */
    bool done;           /* the handshake completed */
    bool sock_reading;   /* uv_read_start is in force on the socket */
    bool pending;        /* the owner stopped reading mid-input: the engine holds the rest */
    bool dead;           /* failed, or shut down before the handshake: input is dropped */
    bool closing;
} tls_state_t;

/* tcp.data of a transport that turned plain for a 400 (its TLS state is gone) */
static char tls_clear_mark;

static inline tls_state_t *tls_of(const sst_transport_t *t)
{
    return t->tcp.data;
}

static inline sst_bufs_t *tls_bufs(const sst_transport_t *t)
{
    return t->tcp.loop->data;
}

static void tls_pump(sst_transport_t *t);
static int tls_update_socket(sst_transport_t *t);

/* ---- set-up ------------------------------------------------------------------------------ */

int sst__tp_init_tls(sst_transport_t *t, uv_loop_t *loop, const sst_tp_cb_t *cb,
                     const sst_tp_tls_opts_t *o)
{
    tls_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (st == NULL)
        return SST_ENOMEM;
    st->server = o->server != NULL;
    st->m = o->metrics;
    st->mid = o->backend_mid < SST_M_BACKENDS ? o->backend_mid : SST_M_BACKENDS - 1;
    rc = st->server ? sst_tls_conn_new_server(o->server, &st->eng)
                    : sst_tls_conn_new_client(o->client, o->backend, &st->eng);
    if (rc == 0)
        rc = sst__tp_init(t, loop, SST_TP_TLS, cb);
    if (rc != 0) {
        sst_tls_conn_free(st->eng);
        free(st);
        return rc;
    }
    uv_idle_init(loop, &st->resume); /* cannot fail: it allocates nothing */
    st->resume.data = t;
    t->tcp.data = st;
    return 0;
}

bool sst__tp_tls_handshaking(const sst_transport_t *t)
{
    const tls_state_t *st = tls_of(t);
    return st != NULL && !st->done && !st->dead;
}

/* ---- counting ---------------------------------------------------------------------------- */

static void tls_count_failure(tls_state_t *st, sst_tls_fail_t why)
{
    if ((unsigned)why >= SST_TLS_FAIL__COUNT)
        why = SST_TLS_FAIL_OTHER;
    st->fail = why;
    if (st->m == NULL)
        return;
    if (st->server)
        sst_counter_add(&st->m->failures[why], 1);
    else
        sst_counter_add(&st->m->up_failures[st->mid][why], 1);
}

static void tls_count_handshake(tls_state_t *st)
{
    const char *proto = sst_tls_conn_protocol(st->eng);
    bool resumed = sst_tls_conn_resumed(st->eng);
    bool v13 = proto != NULL && strcmp(proto, "TLSv1.3") == 0;

    if (st->m == NULL)
        return;
    if (st->server)
        sst_counter_add(&st->m->handshakes[v13][resumed], 1);
    else
        sst_counter_add(&st->m->up_handshakes[st->mid][resumed], 1);
}

void sst__tp_handshake_expired(sst_transport_t *t)
{
    tls_state_t *st = t->kind == SST_TP_TLS ? tls_of(t) : NULL;
    if (st == NULL || st->done || st->dead)
        return;
    st->dead = true;
    tls_count_failure(st, SST_TLS_FAIL_TIMEOUT);
}

bool sst__tp_clear_text(const sst_transport_t *t)
{
    /* the TLS state is gone once the transport turned plain for the 400 */
    return t->kind == SST_TP_TCP && t->tcp.data == &tls_clear_mark;
}

const char *sst__tp_tls_failure(const sst_transport_t *t, const char **detail)
{
    const tls_state_t *st = t->kind == SST_TP_TLS ? tls_of(t) : NULL;
    const char *d = NULL;

    if (st == NULL || st->fail == SST_TLS_FAIL_NONE) {
        if (detail != NULL)
            *detail = "";
        return sst_tls_fail_name(SST_TLS_FAIL_NONE);
    }
    if (st->fail == SST_TLS_FAIL_TIMEOUT)
        d = "the handshake did not finish in time";
    else if (!st->server && sst_tls_conn_verify_result(st->eng) != 0)
        d = sst_tls_conn_verify_error(st->eng); /* "certificate has expired", ... */
    else
        d = sst_tls_conn_fail_detail(st->eng);
    if (detail != NULL)
        *detail = d != NULL ? d : "";
    return sst_tls_fail_name(st->fail);
}

/* ---- writing ----------------------------------------------------------------------------- */

/* An owner's write that had to wait: its bytes were encrypted when it was made. */
static void tls_on_write(uv_write_t *req, int status)
{
    sst_wreq_t *r = sst_container_of(req, sst_wreq_t, req);
    sst_transport_t *t = (sst_transport_t *)req->handle;
    size_t bytes = r->bytes;
    /* runs with UV_ECANCELED when the stream closes, before its close callback */
    sst__wreq_put(r);
    t->cb->on_write(t, status, bytes);
}

/* Output the transport made itself (handshake flights, tickets, alerts, close_notify): a
 * failure shows on the read side, which sees the reset or the EOF. */
static void tls_on_own_write(uv_write_t *req, int status)
{
    sst__wreq_put(sst_container_of(req, sst_wreq_t, req));
}

/* Sends the engine's pending output: one send(2) when nothing is queued, the rest handed to a
 * uv_write without a copy. `owner` says whether an owner's write (of `bytes` plaintext) is in
 * it. Returns SST_TP_SENT (nothing left: no callback), 0 (queued: with `owner`, on_write
 * follows) or a negative error. */
static int tls_flush(sst_transport_t *t, bool owner, size_t bytes)
{
    tls_state_t *st = tls_of(t);
    const char *base;
    size_t len = sst_tls_conn_output(st->eng, &base);

    if (len == 0)
        return SST_TP_SENT;
    if (sst__tp_queued(t) == 0) {
        uv_buf_t b = uv_buf_init((char *)base, (unsigned)len);
        ssize_t n = sst__sock_send(t, &b, 1, len);
        if (n < 0)
            return (int)n;
        sst_tls_conn_output_consumed(st->eng, (size_t)n);
        if ((size_t)n == len)
            return SST_TP_SENT;
    }
    sst_wreq_t *r = sst__wreq_get(tls_bufs(t));
    if (r == NULL)
        return SST_ENOMEM;
    r->heap = sst_tls_conn_output_take(st->eng, &len);
    r->bufs[0] = uv_buf_init(r->heap, (unsigned)len);
    r->n_bufs = 1;
    r->bytes = owner ? bytes : 0;
    int rc = uv_write(&r->req, (uv_stream_t *)&t->tcp, r->bufs, 1,
                      owner ? tls_on_write : tls_on_own_write);
    if (rc != 0) {
        sst__wreq_put(r);
        return rc;
    }
    return 0;
}

/* Output produced by reads: errors surface on the read side. */
static void tls_flush_own(sst_transport_t *t)
{
    (void)tls_flush(t, false, 0);
}

int sst__tp_tls_send(sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total)
{
    tls_state_t *st = tls_of(t);
    if (st->dead)
        return SST_EPROTO;
    /* uv_buf_t is ABI compatible with struct iovec */
    int rc = sst_tls_conn_writev(st->eng, (const struct iovec *)(const void *)bufs, n);
    if (rc != 0)
        return rc;
    return tls_flush(t, true, total);
}

int sst__tp_tls_write(sst_transport_t *t, sst_wreq_t *r)
{
    tls_state_t *st = tls_of(t);
    size_t bytes = r->bytes;
    int rc = st->dead ? SST_EPROTO
                      : sst_tls_conn_writev(st->eng, (const struct iovec *)(const void *)r->bufs,
                                            r->n_bufs);
    /* the plaintext is in records now: its chunks go back at once */
    sst__wreq_put(r);
    if (rc != 0)
        return rc;
    return tls_flush(t, true, bytes);
}

void sst__tp_tls_before_shutdown(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    if (st->dead || st->closing)
        return;
    if (!st->done) {
        /* nothing to protect yet: the FIN says it all, and no handshake starts any more */
        st->dead = true;
        return;
    }
    if (sst_tls_conn_shutdown(st->eng) == 0)
        tls_flush_own(t); /* queued before the FIN, which uv_shutdown sends after it */
}

/* ---- ending ------------------------------------------------------------------------------ */

static void tls_closed_one(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    if (--st->closes > 0)
        return;
    if (st->connecting) {
        /* closed mid-handshake: the connect's outcome, as libuv reports a connect cut by a
         * close, before the last callback */
        st->connecting = false;
        t->cb->on_connect(t, UV_ECANCELED);
    }
    t->tcp.data = NULL;
    sst_tls_conn_free(st->eng);
    free(st);
    sst__tp_pp_free(t);  /* a PROXY header's state, kept below every kind */
    t->cb->on_closed(t); /* the last call: every write callback ran before the socket's close */
}

static void tls_on_tcp_closed(uv_handle_t *h)
{
    tls_closed_one((sst_transport_t *)h);
}

static void tls_on_resume_closed(uv_handle_t *h)
{
    tls_closed_one(h->data);
}

void sst__tp_tls_close(sst_transport_t *t, bool reset)
{
    tls_state_t *st = tls_of(t);
    st->closing = true;
    st->sock_reading = false;
    st->closes = 2;
    uv_close((uv_handle_t *)&st->resume, tls_on_resume_closed);
    if (reset && uv_tcp_close_reset(&t->tcp, tls_on_tcp_closed) == 0)
        return;
    uv_close((uv_handle_t *)&t->tcp, tls_on_tcp_closed);
}

static void tls_on_clear_closed(uv_handle_t *h)
{
    free(sst_container_of((uv_idle_t *)h, tls_state_t, resume));
}

/* Plain HTTP arrived on this TLS port: the transport becomes a plain one for the owner's
 * clear-text 400 (nothing was written yet: the first byte gave it away). */
static void tls_to_clear_text(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    uv_read_stop((uv_stream_t *)&t->tcp);
    st->closing = true;
    sst_tls_conn_free(st->eng);
    st->eng = NULL;
    uv_close((uv_handle_t *)&st->resume, tls_on_clear_closed);
    t->kind = SST_TP_TCP;
    t->reading = false;
    t->tcp.data = &tls_clear_mark; /* never dereferenced */
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Reading ends for the owner: on_read_end, or on_connect for a backend whose handshake failed
 * (a connect failure, so the in-flight failover applies). */
static void tls_end(sst_transport_t *t, int status)
{
    tls_state_t *st = tls_of(t);
    if (st->sock_reading) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        st->sock_reading = false;
    }
    uv_idle_stop(&st->resume);
    st->pending = false;
    if (!st->server && !st->done) {
        st->dead = true;
        st->connecting = false;
        t->cb->on_connect(t, status == UV_EOF ? SST_EPROTO : status);
        return;
    }
    t->reading = false;
    t->cb->on_read_end(t, status);
}

static void tls_failed(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    st->dead = true;
    sst_tls_fail_t why = sst_tls_conn_fail_reason(st->eng);
    if (!st->done || why == SST_TLS_FAIL_RENEGOTIATION)
        tls_count_failure(st, why);
    else
        st->fail = why;
    tls_flush_own(t); /* the alert */
    tls_end(t, SST_EPROTO);
}

static void tls_handshake_done(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    st->done = true;
    tls_count_handshake(st);
    if (!st->server) {
        /* the client's Finished leaves with the owner's first write, or at the end of the
         * pump */
        st->connecting = false;
        t->cb->on_connect(t, 0);
    }
}

/* Drives the engine over the input it holds: handshake events, and plaintext handed to the
 * owner chunk by chunk while it reads. Ends with one send of whatever output the reads made. */
static void tls_pump(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    sst_bufs_t *bufs = tls_bufs(t);

    for (;;) {
        if (st->closing || st->dead || t->kind != SST_TP_TLS)
            return;
        if (st->done && !t->reading) {
            /* the owner paused: the engine keeps the unread rest, the chunk goes back */
            if (sst_tls_conn_keep_input(st->eng) != 0) {
                tls_end(t, UV_ENOBUFS);
                return;
            }
            st->pending = true;
            break;
        }
        sst_chunk_t *ch = NULL;
        if (st->done && (ch = sst__chunk_get(bufs)) == NULL) {
            tls_end(t, UV_ENOBUFS);
            return;
        }
        size_t n = 0;
        int ev =
            sst_tls_conn_read(st->eng, ch != NULL ? ch->data : NULL, ch != NULL ? ch->size : 0, &n);
        if (ev == SST_TLS_DATA) {
            t->cb->on_read(t, ch, n); /* the owner's reference now */
            continue;
        }
        if (ch != NULL)
            sst__chunk_unref(bufs, ch);
        switch (ev) {
        case SST_TLS_HANDSHAKE_DONE:
            tls_handshake_done(t);
            continue;
        case SST_TLS_WANT_INPUT:
            st->pending = false;
            break;
        case SST_TLS_CLOSED:
            tls_flush_own(t);
            tls_end(t, UV_EOF);
            return;
        case SST_TLS_HTTP_REQUEST:
            tls_count_failure(st, SST_TLS_FAIL_HTTP_ON_TLS);
            tls_to_clear_text(t);
            t->cb->on_read_end(t, SST_EPROTO);
            return;
        case SST_TLS_FAILED:
            tls_failed(t);
            return;
        default: /* SST_ENOMEM */
            st->dead = true;
            tls_end(t, UV_ENOBUFS);
            return;
        }
        break;
    }
    tls_flush_own(t);
    (void)tls_update_socket(t);
}

static void tls_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    sst_chunk_t *ch = sst__chunk_get(tls_bufs((sst_transport_t *)handle));
    /* NULL makes libuv report UV_ENOBUFS to the read callback */
    *buf = ch != NULL ? uv_buf_init(ch->data, ch->size) : uv_buf_init(NULL, 0);
}

static void tls_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sst_transport_t *t = (sst_transport_t *)stream;
    tls_state_t *st = tls_of(t);
    sst_bufs_t *bufs = tls_bufs(t);
    sst_chunk_t *ch = buf->base != NULL ? sst_container_of(buf->base, sst_chunk_t, data) : NULL;

    if (nread > 0 && !st->dead) {
        size_t len = (size_t)nread;
        /* a PROXY header comes before the ClientHello (a balancer's, issue 16): the transport's
         * phase below every kind reads and strips it, and what follows is TLS */
        if (t->pp_phase == SST_TP_PP_WAIT && (len = sst__tp_pp_read(t, ch, len)) == 0)
            return;
        /* borrowed: no copy. The socket is read only once the engine used all its input */
        int rc = sst_tls_conn_feed(st->eng, ch->data, len);
        assert(rc == 0);
        (void)rc;
        tls_pump(t);
        /* the engine is done with the chunk: all used, the rest kept, or the connection over */
        sst__chunk_unref(bufs, ch);
        return;
    }
    if (ch != NULL)
        sst__chunk_unref(bufs, ch);
    if (nread >= 0)
        return; /* 0: nothing read (EAGAIN); > 0 after a failure: dropped */
    if (t->pp_phase == SST_TP_PP_WAIT) {
        tls_end(t, (int)nread); /* gone inside its PROXY header: the owner's refusal, no TLS */
        return;
    }
    if (nread == UV_EOF && !st->dead) {
        sst_tls_conn_feed_eof(st->eng);
        tls_pump(t); /* CLOSED, or a handshake cut short (counted as `eof`) */
        return;
    }
    if (!st->done && !st->dead)
        tls_count_failure(st, SST_TLS_FAIL_EOF); /* reset mid-handshake */
    tls_end(t, (int)nread);
}

/* Whether the socket is read: during the handshake always (it needs the peer's flights), then
 * while the owner reads and the engine holds no input of its own. */
static int tls_update_socket(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    bool want;

    if (st->closing)
        return 0;
    if (st->dead)
        want = t->reading; /* drained for the owner's linger: bytes dropped, the EOF seen */
    else if (!st->done)
        want = st->server || st->connected;
    else
        want = t->reading && !st->pending;
    if (want && !st->sock_reading) {
        int rc = uv_read_start((uv_stream_t *)&t->tcp, tls_alloc, tls_on_read);
        if (rc != 0)
            return rc;
        st->sock_reading = true;
    } else if (!want && st->sock_reading) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        st->sock_reading = false;
    }
    return 0;
}

static void tls_on_resume(uv_idle_t *h)
{
    sst_transport_t *t = h->data;
    tls_state_t *st = tls_of(t);
    uv_idle_stop(h);
    if (!t->reading || st->closing)
        return;
    tls_pump(t); /* the input kept while the owner paused, then the socket again */
}

int sst__tp_tls_read_start(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    t->reading = true;
    if (st->pending && !st->dead) {
        uv_idle_start(&st->resume, tls_on_resume);
        return 0;
    }
    int rc = tls_update_socket(t);
    if (rc != 0)
        t->reading = false;
    return rc;
}

void sst__tp_tls_read_stop(sst_transport_t *t)
{
    tls_state_t *st = tls_of(t);
    t->reading = false;
    uv_idle_stop(&st->resume);
    (void)tls_update_socket(t);
}

/* ---- connecting (backends) --------------------------------------------------------------- */

static void tls_on_connect(uv_connect_t *req, int status)
{
    sst_transport_t *t = (sst_transport_t *)req->handle;
    tls_state_t *st = tls_of(t);

    if (status < 0 || st->closing) {
        st->connecting = false;
        t->cb->on_connect(t, status < 0 ? status : UV_ECANCELED);
        return;
    }
    uv_tcp_nodelay(&t->tcp, 1);
    /* the PROXY header (send_proxy_protocol) goes first, before the ClientHello; anything of
     * it the socket did not take is queued, and tls_flush queues behind it */
    if (req->data != NULL && (status = sst__tp_pp_send(t, req->data)) != 0) {
        st->connecting = false;
        t->cb->on_connect(t, status);
        return;
    }
    st->connected = true;
    if (t->cb->on_handshake != NULL) {
        t->cb->on_handshake(t);
        if (st->closing)
            return;
    }
    tls_pump(t); /* the ClientHello, then read the server's flight */
    if (!st->closing && !st->dead && tls_update_socket(t) != 0)
        tls_end(t, SST_EIO);
}

int sst__tp_tls_connect(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa)
{
    int rc = uv_tcp_connect(req, &t->tcp, sa, tls_on_connect);
    if (rc == 0)
        tls_of(t)->connecting = true;
    return rc;
}
