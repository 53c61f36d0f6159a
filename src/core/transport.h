/* The transport: the one way bytes move between a socket and its owner (a client connection or
 * an upstream connection). Start/stop reading, write buffers, shut down, close, queued bytes for
 * back-pressure, and connect for backends. Plain TCP is the implementation today; TLS and the
 * PROXY protocol header slot in here, beneath the owners, without touching HTTP code.
 *
 * Ownership rule. The owner embeds the transport and outlives it: between sst__tp_init and the
 * owner's on_closed callback the transport is the owner's, and on_closed is the last call the
 * transport makes (every write, shutdown and connect callback still pending runs before it,
 * with UV_ECANCELED). The owner frees itself only there. A read chunk handed to on_read is the
 * owner's (one reference); a write request given to sst__tp_write is the transport's until its
 * on_write. Callbacks never run from inside a call the owner made on the transport.
 *
 * How TLS plugs in (the engine of include/sidestep/tls.h, next issue). A TLS transport is a
 * second kind beside SST_TP_TCP: the same functions switch on `kind`, and tcp.data (unused by
 * the plain transport) points at the engine state, which is allocated with the connection.
 *  - reads: ciphertext is read into a chunk as today, fed to the engine (borrowed, no copy),
 *    and the plaintext is read out into fresh chunks from the same free lists, each handed to
 *    on_read exactly as a plain read chunk is: the owner's zero-copy relay by chunk reference
 *    keeps working. Handshake output produced by reads leaves with one sst__sock_send.
 *  - handshake before data: a server connection delivers nothing to on_read until the engine
 *    reports the handshake done; a backend connection calls on_connect only then (a handshake
 *    failure is a connect failure, so the in-flight failover still applies).
 *  - writes: sst__tp_send / sst__tp_write hand the plaintext iovecs to the engine (one record
 *    for a small answer), release the write request at once (its chunks are copied into the
 *    record) and send the ciphertext with one sst__sock_send; what the socket does not take
 *    moves to a uv_write with output_take, no copy. on_write then reports that write.
 *  - plain HTTP on a TLS port: on_read_end reports SST_EPROTO and the transport switches to
 *    clear text for the owner's 400 before the close.
 *  - shutdown: close_notify is queued, then the FIN (uv_shutdown) once it is out.
 * The PROXY protocol header (issue 16) has its place here as well: on a client connection the
 * transport reads and strips it before the first on_read (and sst__tp_peer then reports the
 * address it declares); on a backend connection it is written right after the connect, before
 * on_connect, so the owner's request follows it. */
#ifndef SST_CORE_TRANSPORT_H
#define SST_CORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "core/buf.h"

typedef struct sst_transport_s sst_transport_t;

/* The owner's callbacks. The owner finds itself from `t` with sst_container_of. */
typedef struct sst_tp_cb_s {
    /* `len` bytes at chunk->data; the owner owns that reference of `chunk`. */
    void (*on_read)(sst_transport_t *t, sst_chunk_t *chunk, size_t len);
    /* Reading ended: UV_EOF (the peer is done sending), or a negative error (UV_ENOBUFS when no
     * chunk could be had). Reading is stopped. */
    void (*on_read_end)(sst_transport_t *t, int status);
    /* A write that returned 0 (queued) finished: status 0, or negative (failed, or cancelled
     * by the close). Runs once per such write. */
    void (*on_write)(sst_transport_t *t, int status, size_t bytes);
    /* Backends: the connection is established (0) or failed (negative; UV_ECANCELED when the
     * transport was closed first). */
    void (*on_connect)(sst_transport_t *t, int status);
    /* The shutdown (FIN after every queued byte) is done (0) or failed / cancelled. */
    void (*on_shutdown)(sst_transport_t *t, int status);
    /* The socket is closed: the last callback. The owner may free itself now. */
    void (*on_closed)(sst_transport_t *t);
} sst_tp_cb_t;

typedef enum sst_tp_kind_e {
    SST_TP_TCP = 0, /* plain TCP: bytes go straight between the socket and the owner */
} sst_tp_kind_t;

struct sst_transport_s {
    uv_tcp_t tcp; /* first: a libuv handle or request's handle is the transport itself */
    const sst_tp_cb_t *cb;
    uint8_t kind; /* sst_tp_kind_t */
    bool reading;
    bool shutting_down; /* a shutdown is in flight */
};

/* Sets up a transport on `loop`, whose data must be the worker's sst_bufs_t (reads take their
 * chunks there). Returns 0, or a negative error with nothing to close. */
int sst__tp_init(sst_transport_t *t, uv_loop_t *loop, sst_tp_kind_t kind, const sst_tp_cb_t *cb);
/* Takes the connection waiting on `server`. Returns 0 or a negative error (the caller closes). */
int sst__tp_accept(sst_transport_t *t, uv_stream_t *server);
/* Connects to `sa`; `req` is the caller's storage until on_connect. Returns 0 (on_connect
 * follows) or a negative error (no callback; the caller closes). */
int sst__tp_connect(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa);
/* The peer's address. Returns 0 or a negative error. */
int sst__tp_peer(const sst_transport_t *t, struct sockaddr_storage *out);

/* Delivers reads to on_read until sst__tp_read_stop or the end of reading. Returns 0 or a
 * negative error. Calling it while reading is a no-op. */
int sst__tp_read_start(sst_transport_t *t);
void sst__tp_read_stop(sst_transport_t *t);

/* sst__tp_send and sst__tp_write return this when every byte went to the kernel at once. */
#define SST_TP_SENT 1

/* Sends bufs[0..n) (total bytes) after anything queued. What the socket takes now is written
 * at once (one send(2) when nothing is queued); the rest is copied, so the buffers may die on
 * return. Returns SST_TP_SENT (no callback), 0 (the rest is queued: on_write follows) or a
 * negative error (no callback). */
int sst__tp_send(sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total);
/* The same for a write request, whose chunk references keep its bytes alive: nothing is
 * copied. r is the transport's from here on, whatever the result. */
int sst__tp_write(sst_transport_t *t, sst_wreq_t *r);

/* Bytes accepted by sst__tp_send/write and not yet taken by the kernel (back-pressure). */
static inline size_t sst__tp_queued(const sst_transport_t *t)
{
    return t->tcp.write_queue_size; /* libuv's public read-only field: no call per check */
}

/* Half-close after every queued byte. Returns 0 (on_shutdown follows) or a negative error (no
 * callback). */
int sst__tp_shutdown(sst_transport_t *t);
static inline bool sst__tp_shutting_down(const sst_transport_t *t)
{
    return t->shutting_down;
}

/* Closes the socket; with `reset`, with an RST (the peer must not take a cut answer for a whole
 * one). on_closed follows. Call once. */
void sst__tp_close(sst_transport_t *t, bool reset);

/* A peek at an idle connection: false when the peer closed it or sent bytes unasked. */
bool sst__tp_alive(sst_transport_t *t);

/* The socket layer under every transport: writes what the socket takes now with send(2) or
 * sendmsg(2), without queueing (call only when nothing is queued). Returns the bytes written
 * (0 when the socket is full) or a negative error. */
ssize_t sst__sock_send(const sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total);

#endif
