/* The transport (transport.h): every byte between a socket and its owner passes here. The plain
 * TCP kind keeps the fast paths the request path was measured with: send(2) straight to the
 * socket when nothing is queued, no write request (hence no deferred callback) when the kernel
 * takes everything, one uv_write only for the rest. The TLS kind (transport_tls.c) is reached
 * from here with one test of `kind` per call. Owns no HTTP knowledge. */
#include "core/transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "sidestep/error.h"

/* Every libuv handle and request here belongs to a transport whose first member is the handle. */
static inline sst_transport_t *tp_of(void *handle)
{
    return (sst_transport_t *)handle;
}

static inline sst_bufs_t *tp_bufs(const sst_transport_t *t)
{
    return t->tcp.loop->data;
}

int sst__tp_init(sst_transport_t *t, uv_loop_t *loop, sst_tp_kind_t kind, const sst_tp_cb_t *cb)
{
    int rc = uv_tcp_init(loop, &t->tcp);
    if (rc != 0)
        return rc;
    t->tcp.data = NULL; /* the TLS kind's state (transport_tls.c) */
    t->cb = cb;
    t->kind = (uint8_t)kind;
    t->reading = false;
    t->shutting_down = false;
    t->pp = NULL;
    t->pp_phase = SST_TP_PP_NONE;
    return 0;
}

int sst__tp_accept(sst_transport_t *t, uv_stream_t *server)
{
    int rc = uv_accept(server, (uv_stream_t *)&t->tcp);
    if (rc == 0)
        uv_tcp_nodelay(&t->tcp, 1);
    return rc;
}

static void tp_on_connect(uv_connect_t *req, int status)
{
    sst_transport_t *t = tp_of(req->handle);
    if (status == 0)
        uv_tcp_nodelay(&t->tcp, 1);
    /* the PROXY header goes first, below any kind's own bytes (a TLS ClientHello) */
    if (status == 0 && req->data != NULL)
        status = sst__tp_pp_send(t, req->data);
    t->cb->on_connect(t, status);
}

int sst__tp_connect_pp(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa,
                       const sst_tp_pp_out_t *pp)
{
    req->data = pp != NULL && pp->len > 0 ? (void *)(uintptr_t)pp : NULL;
    if (t->kind == SST_TP_TLS)
        return sst__tp_tls_connect(t, req, sa);
    return uv_tcp_connect(req, &t->tcp, sa, tp_on_connect);
}

int sst__tp_connect(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa)
{
    return sst__tp_connect_pp(t, req, sa, NULL);
}

int sst__tp_peer(const sst_transport_t *t, struct sockaddr_storage *out)
{
    if (sst__tp_pp_peer(t, out))
        return 0; /* the client a PROXY header declared */
    int len = sizeof(*out);
    return uv_tcp_getpeername(&t->tcp, (struct sockaddr *)out, &len);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void tp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    sst_chunk_t *ch = sst__chunk_get(tp_bufs(tp_of(handle)));
    /* NULL makes libuv report UV_ENOBUFS to the read callback */
    *buf = ch != NULL ? uv_buf_init(ch->data, ch->size) : uv_buf_init(NULL, 0);
}

static void tp_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sst_transport_t *t = tp_of(stream);
    sst_chunk_t *ch = buf->base != NULL ? sst_container_of(buf->base, sst_chunk_t, data) : NULL;

    if (nread > 0) {
        size_t len = (size_t)nread;
        /* the PROXY header comes before any kind-specific handling of the first bytes */
        if (t->pp_phase == SST_TP_PP_WAIT && (len = sst__tp_pp_read(t, ch, len)) == 0)
            return;
        t->cb->on_read(t, ch, len);
        return;
    }
    if (ch != NULL)
        sst__chunk_unref(tp_bufs(t), ch);
    if (nread == 0)
        return; /* nothing read (EAGAIN), not the end */
    uv_read_stop(stream);
    t->reading = false;
    t->cb->on_read_end(t, (int)nread);
}

int sst__tp_read_start(sst_transport_t *t)
{
    if (t->reading)
        return 0;
    if (t->kind == SST_TP_TLS)
        return sst__tp_tls_read_start(t);
    int rc = uv_read_start((uv_stream_t *)&t->tcp, tp_alloc, tp_on_read);
    if (rc == 0)
        t->reading = true;
    return rc;
}

void sst__tp_read_stop(sst_transport_t *t)
{
    if (!t->reading)
        return;
    if (t->kind == SST_TP_TLS) {
        sst__tp_tls_read_stop(t);
        return;
    }
    uv_read_stop((uv_stream_t *)&t->tcp);
    t->reading = false;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Below this many bytes, several buffers are copied into one and sent with send(2). */
#define SEND_COPY_MAX 2048

ssize_t sst__sock_send(const sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total)
{
    /* The same as uv_try_write when nothing is queued, but through the socket layer: send(2)
     * and sendmsg(2) skip the VFS read/write path writev(2) takes, and a small answer in
     * several prepared parts is cheaper copied into one buffer than sent as an iovec
     * (measured on this machine's loopback: 3.3 us for send of 280 bytes against 3.7 us for
     * writev of the same bytes in 3 parts). uv_buf_t is ABI compatible with struct iovec. */
    uv_os_fd_t fd;
    ssize_t rc;
    if (uv_fileno((const uv_handle_t *)&t->tcp, &fd) != 0)
        return UV_EBADF;
    if (n == 1) {
        rc = send(fd, bufs[0].base, bufs[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else if (total <= SEND_COPY_MAX) {
        char one[SEND_COPY_MAX];
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(one + off, bufs[i].base, bufs[i].len);
            off += bufs[i].len;
        }
        rc = send(fd, one, off, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        struct msghdr mh = {.msg_iov = (struct iovec *)(uintptr_t)bufs, .msg_iovlen = n};
        rc = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (rc >= 0)
        return rc;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return -errno;
}

static void tp_on_write(uv_write_t *req, int status)
{
    sst_wreq_t *r = sst_container_of(req, sst_wreq_t, req);
    sst_transport_t *t = tp_of(req->handle);
    size_t bytes = r->bytes;
    /* runs with UV_ECANCELED when the stream closes, before its close callback: the owner is
     * still alive */
    sst__wreq_put(r);
    t->cb->on_write(t, status, bytes);
}

/* Queues r (nothing of it written yet, or its buffers advanced past what was). */
static int tp_queue(sst_transport_t *t, sst_wreq_t *r)
{
    int rc = uv_write(&r->req, (uv_stream_t *)&t->tcp, r->bufs, r->n_bufs, tp_on_write);
    if (rc != 0) {
        sst__wreq_put(r);
        return rc;
    }
    return 0;
}

int sst__tp_write(sst_transport_t *t, sst_wreq_t *r)
{
    if (t->kind == SST_TP_TLS)
        return sst__tp_tls_write(t, r);
    if (sst__tp_queued(t) == 0) {
        /* Nothing queued: write now. When the kernel takes it all, there is no write request
         * for libuv to complete, hence no deferred callback and no epoll_ctl to drop the
         * POLLOUT interest afterwards (libuv 1.44 issues one per completed uv_write). */
        ssize_t n = sst__sock_send(t, r->bufs, r->n_bufs, r->bytes);
        if (n < 0) {
            sst__wreq_put(r);
            return (int)n;
        }
        if ((size_t)n == r->bytes) {
            sst__wreq_put(r);
            return SST_TP_SENT;
        }
        /* partly written: queue the rest */
        size_t skip = (size_t)n;
        uint32_t first = 0;
        while (skip >= r->bufs[first].len) {
            skip -= r->bufs[first].len;
            first++;
        }
        r->bufs[first].base += skip;
        r->bufs[first].len -= skip;
        if (first > 0) {
            memmove(r->bufs, r->bufs + first, (r->n_bufs - first) * sizeof(r->bufs[0]));
            r->n_bufs -= first;
        }
    }
    return tp_queue(t, r);
}

int sst__tp_send(sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total)
{
    size_t done = 0;
    if (t->kind == SST_TP_TLS)
        return sst__tp_tls_send(t, bufs, n, total);
    if (sst__tp_queued(t) == 0) {
        ssize_t rc = sst__sock_send(t, bufs, n, total);
        if (rc < 0)
            return (int)rc;
        done = (size_t)rc;
        if (done == total)
            return SST_TP_SENT;
    }
    /* the rest is copied: the caller's buffers (scratch, stack, a request's head) may not
     * outlive this call */
    sst_wreq_t *r = sst__wreq_get(tp_bufs(t));
    if (r == NULL)
        return SST_ENOMEM;
    r->heap = malloc(total - done);
    if (r->heap == NULL) {
        sst__wreq_put(r);
        return SST_ENOMEM;
    }
    size_t off = 0, skip = done;
    for (size_t i = 0; i < n; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(r->heap + off, bufs[i].base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    r->bufs[0] = uv_buf_init(r->heap, (unsigned)off);
    r->n_bufs = 1;
    r->bytes = off;
    return tp_queue(t, r);
}

/* ---- ending ------------------------------------------------------------------------------ */

static void tp_on_shutdown(uv_shutdown_t *req, int status)
{
    sst_transport_t *t = tp_of(req->handle);
    /* runs with UV_ECANCELED when the handle closes first, before its close callback */
    free(req);
    t->shutting_down = false;
    t->cb->on_shutdown(t, status);
}

int sst__tp_shutdown(sst_transport_t *t)
{
    if (t->kind == SST_TP_TLS)
        sst__tp_tls_before_shutdown(t); /* close_notify goes before the FIN */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL)
        return SST_ENOMEM;
    int rc = uv_shutdown(req, (uv_stream_t *)&t->tcp, tp_on_shutdown);
    if (rc != 0) {
        free(req);
        return rc;
    }
    t->shutting_down = true;
    return 0;
}

static void tp_on_closed(uv_handle_t *handle)
{
    sst_transport_t *t = tp_of(handle);
    sst__tp_pp_free(t);
    t->cb->on_closed(t);
}

void sst__tp_close(sst_transport_t *t, bool reset)
{
    t->reading = false;
    if (t->kind == SST_TP_TLS) {
        sst__tp_tls_close(t, reset);
        return;
    }
    if (reset && uv_tcp_close_reset(&t->tcp, tp_on_closed) == 0)
        return;
    uv_close((uv_handle_t *)&t->tcp, tp_on_closed);
}

bool sst__tp_alive(sst_transport_t *t)
{
    uv_os_fd_t fd;
    char b;
    if (uv_fileno((const uv_handle_t *)&t->tcp, &fd) != 0)
        return false;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK;
    return false; /* 0: the peer closed; > 0: bytes nobody asked for */
}
