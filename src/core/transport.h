/* The transport: the one way bytes move between a socket and its owner (a client connection or
 * an upstream connection). Start/stop reading, write buffers, shut down, close, queued bytes for
 * back-pressure, and connect for backends. Plain TCP and TLS (transport_tls.c) implement it;
 * the PROXY protocol header slots in here too, beneath the owners, without touching HTTP code.
 *
 * Ownership rule. The owner embeds the transport and outlives it: between sst__tp_init and the
 * owner's on_closed callback the transport is the owner's, and on_closed is the last call the
 * transport makes (every write, shutdown and connect callback still pending runs before it,
 * with UV_ECANCELED). The owner frees itself only there. A read chunk handed to on_read is the
 * owner's (one reference); a write request given to sst__tp_write is the transport's until its
 * on_write. Callbacks never run from inside a call the owner made on the transport.
 *
 * TLS (SST_TP_TLS, the engine of include/sidestep/tls.h) is a second kind beside SST_TP_TCP:
 * the same functions switch on `kind`, and tcp.data (unused by the plain transport) points at
 * the TLS state, allocated for TLS connections only (transport_tls.c says what it holds).
 *  - reads: ciphertext is read into a chunk as today, fed to the engine (borrowed, no copy),
 *    and the plaintext is read out into fresh chunks from the same free lists, each handed to
 *    on_read exactly as a plain read chunk is: the owner's zero-copy relay by chunk reference
 *    keeps working. Handshake output produced by reads leaves with one sst__sock_send. When
 *    the owner stops reading mid-input, the engine keeps the unread ciphertext and reading
 *    resumes from it (one loop turn later) before the socket is read again.
 *  - handshake before data: a server connection delivers nothing to on_read until the engine
 *    reports the handshake done; a backend connection calls on_handshake once TCP is up and
 *    on_connect only after the handshake (a handshake failure is a connect failure with
 *    SST_EPROTO, so the in-flight failover still applies). Deadlines stay the owners': a
 *    client connection's in the worker's deadline heap (sst__tp_handshaking), a backend's on
 *    the upstream's timer.
 *  - writes: sst__tp_send / sst__tp_write hand the plaintext iovecs to the engine (one record
 *    for a small answer), release the write request at once (its chunks are copied into the
 *    record) and send the ciphertext with one sst__sock_send; what the socket does not take
 *    moves to a uv_write with output_take, no copy. on_write then reports that write.
 *  - plain HTTP on a TLS port: on_read_end reports SST_EPROTO with sst__tp_clear_text() true:
 *    the transport has become a plain one for the owner's 400 before the close.
 *  - shutdown: close_notify is queued, then the FIN (uv_shutdown) once it is out.
 * The PROXY protocol header (issue 16, transport_proxy.c) sits below every kind: on a client
 * connection the transport reads and strips it before the first on_read, as a phase that runs
 * before any kind-specific handling of the first bytes (a balancer sends the header, then the
 * TLS ClientHello), reports it once through on_proxy, and sst__tp_peer / sst__tp_local then
 * report the addresses it declares; on a backend connection it is written right after the
 * connect, before on_connect (and before a TLS handshake), so the owner's request follows it. */
#ifndef SST_CORE_TRANSPORT_H
#define SST_CORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "http/proxy_proto.h"
#include "sidestep/str.h"
#include "sidestep/tls.h"

typedef struct sst_transport_s sst_transport_t;
typedef struct sst_tp_pp_s sst_tp_pp_t;

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
    /* Backends over TLS, optional: TCP is up and the TLS handshake has begun (on_connect
     * follows when it ends). */
    void (*on_handshake)(sst_transport_t *t);
    /* The shutdown (FIN after every queued byte) is done (0) or failed / cancelled. */
    void (*on_shutdown)(sst_transport_t *t, int status);
    /* The socket is closed: the last callback. The owner may free itself now. */
    void (*on_closed)(sst_transport_t *t);
    /* Client connections told to expect a PROXY header (sst__tp_pp_expect), once, before any
     * on_read: SST_PP_DONE, the header was read whole (`res` describes it, valid during the
     * call only; the bytes after it follow through on_read), or SST_PP_ERROR, it was refused
     * (res->error says why; reading is stopped and nothing reaches on_read: close without an
     * answer). NULL for owners that never expect one. */
    void (*on_proxy)(sst_transport_t *t, sst_pp_status_t status, const sst_pp_result_t *res);
} sst_tp_cb_t;

typedef enum sst_tp_kind_e {
    SST_TP_TCP = 0, /* plain TCP: bytes go straight between the socket and the owner */
    SST_TP_TLS,     /* TLS over TCP (transport_tls.c); init with sst__tp_init_tls */
} sst_tp_kind_t;

/* Where a transport is with the PROXY header (transport_proxy.c). */
typedef enum sst_tp_pp_phase_e {
    SST_TP_PP_NONE = 0, /* no header expected: bytes go straight to the kind */
    SST_TP_PP_WAIT,     /* reads go to the header parser until it is whole or refused */
    SST_TP_PP_DONE,     /* read (or refused); what it declared is in `pp` */
} sst_tp_pp_phase_t;

struct sst_transport_s {
    uv_tcp_t tcp; /* first: a libuv handle or request's handle is the transport itself */
    const sst_tp_cb_t *cb;
    /* PROXY state (transport_proxy.c), allocated only for the connections that need it: a
     * header arriving in pieces, the addresses a header declared, or cached socket addresses
     * (sst__tp_pp_addrs); NULL for every other connection, freed with the transport. */
    sst_tp_pp_t *pp;
    uint8_t kind; /* sst_tp_kind_t */
    bool reading;
    bool shutting_down; /* a shutdown is in flight */
    uint8_t pp_phase;   /* sst_tp_pp_phase_t */
};

/* Sets up a transport on `loop`, whose data must be the worker's sst_bufs_t (reads take their
 * chunks there). Returns 0, or a negative error with nothing to close. For SST_TP_TLS use
 * sst__tp_init_tls. */
int sst__tp_init(sst_transport_t *t, uv_loop_t *loop, sst_tp_kind_t kind, const sst_tp_cb_t *cb);
/* Takes the connection waiting on `server`. Returns 0 or a negative error (the caller closes). */
int sst__tp_accept(sst_transport_t *t, uv_stream_t *server);
/* Connects to `sa`; `req` is the caller's storage until on_connect. Returns 0 (on_connect
 * follows) or a negative error (no callback; the caller closes). */
int sst__tp_connect(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa);
/* The peer's address: the client a PROXY header declared, else the socket's peer. Returns 0
 * or a negative error. */
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

/* ---- the PROXY protocol header (transport_proxy.c) ------------------------------------------ */

/* A client connection: the first bytes must be a PROXY v1 or v2 header (at most
 * SST_PP_V2_MAX_DEFAULT bytes). Call before the first sst__tp_read_start; on_proxy follows
 * once the header is whole or refused. A header that arrives in pieces is kept in a small
 * allocation until it is whole; one that arrives whole is parsed in the read chunk. */
void sst__tp_pp_expect(sst_transport_t *t);
/* True while a header is expected and not whole yet (for the owner's timeout and EOF). */
static inline bool sst__tp_pp_waiting(const sst_transport_t *t)
{
    return t->pp_phase == SST_TP_PP_WAIT;
}
/* The PP2_TYPE_AUTHORITY the header carried (network bytes: escape them), empty when none. */
sst_str_t sst__tp_pp_authority(const sst_transport_t *t);
/* The local address: the destination a PROXY header declared, else the socket's own. Returns
 * 0 or a negative error. */
int sst__tp_local(const sst_transport_t *t, struct sockaddr_storage *out);
/* The client and destination addresses of the connection, as sst__tp_peer and sst__tp_local
 * report them, looked up once and then kept with the transport (a connection sending a PROXY
 * header to a backend needs them for every request). Sets *src and *dst (valid until the
 * transport closes) and returns 0, or a negative error (*src and *dst are then NULL). */
int sst__tp_pp_addrs(sst_transport_t *t, const struct sockaddr **src, const struct sockaddr **dst);

/* A PROXY header to open a backend connection with (sst__tp_connect_pp). */
typedef struct sst_tp_pp_out_s {
    uint8_t len; /* 0: none */
    char bytes[SST_PP_WRITE_MAX];
} sst_tp_pp_out_t;

/* sst__tp_connect, and once connected `pp` is written before on_connect runs (a failed write
 * is reported as a failed connect). `pp` is the caller's until on_connect. */
int sst__tp_connect_pp(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa,
                       const sst_tp_pp_out_t *pp);

/* The bytes of a header arriving in pieces. Zero-initialised is empty. */
typedef struct sst_pp_acc_s {
    char *buf;
    size_t len, cap;
} sst_pp_acc_t;

/* Feeds the next read's bytes data[0..len) to the header parser (http/proxy_proto.h), with
 * what came before kept in `acc`. Sets *st and *res (as sst_pp_parse, bounded by max_len; the
 * slices of *res point into `acc` or `data` and live until the next call, sst__pp_acc_free or
 * the end of `data`, whichever is first) and *used: on SST_PP_DONE the bytes of `data` the
 * header took (the first request starts at data + *used), otherwise len. Only header bytes
 * are kept, so `acc` never holds more than one header. Returns 0, or SST_ENOMEM (nothing is
 * decided then). The same bytes give the same outcome however they are split. */
int sst__pp_acc_feed(sst_pp_acc_t *acc, const char *data, size_t len, size_t max_len,
                     sst_pp_status_t *st, sst_pp_result_t *res, size_t *used);
void sst__pp_acc_free(sst_pp_acc_t *acc);

/* transport.c's hooks: a read while the header is expected (returns how many bytes are left
 * at ch->data for the kind to handle, 0 when none and the chunk was released), the header
 * written after a connect, and the state freed at the close. */
size_t sst__tp_pp_read(sst_transport_t *t, sst_chunk_t *ch, size_t len);
int sst__tp_pp_send(sst_transport_t *t, const sst_tp_pp_out_t *pp);
void sst__tp_pp_free(sst_transport_t *t);
bool sst__tp_pp_peer(const sst_transport_t *t, struct sockaddr_storage *out);

/* ---- the TLS kind (transport_tls.c) ------------------------------------------------------- */

typedef struct sst_tp_tls_opts_s {
    sst_tls_server_t *server; /* a client connection on this HTTPS listener's context, or */
    sst_tls_client_t *client; /* a backend connection with this region's client context */
    size_t backend;           /* with client: the backend's index in the client's config */
    sst_m_tls_t *metrics;     /* the worker's TLS counters */
    uint16_t backend_mid;     /* with client: the backend's metric id */
} sst_tp_tls_opts_t;

/* Sets up a TLS transport: the engine is made here (it references the context), the handshake
 * runs from the first read (server) or the connect (backend). Returns 0, or SST_ENOMEM or a
 * libuv error with nothing to close. */
int sst__tp_init_tls(sst_transport_t *t, uv_loop_t *loop, const sst_tp_cb_t *cb,
                     const sst_tp_tls_opts_t *o);
bool sst__tp_tls_handshaking(const sst_transport_t *t);
/* A TLS transport whose handshake has not completed yet (the owner's deadline applies). */
static inline bool sst__tp_handshaking(const sst_transport_t *t)
{
    return t->kind == SST_TP_TLS && sst__tp_tls_handshaking(t);
}
/* The owner's handshake deadline passed: counted as a `timeout` failure; the owner closes. */
void sst__tp_handshake_expired(sst_transport_t *t);
/* After on_read_end(SST_EPROTO): true when the peer spoke plain HTTP to this TLS port. The
 * transport is plain TCP from then on, for the owner's clear-text 400. */
bool sst__tp_clear_text(const sst_transport_t *t);
/* Why the TLS handshake or connection failed ("bad_certificate", sst_tls_fail_name) and
 * OpenSSL's words for it; "none" and "" when it did not (or for a plain transport). */
const char *sst__tp_tls_failure(const sst_transport_t *t, const char **detail);

/* Called by transport.c for the TLS kind; never by owners. */
int sst__tp_tls_connect(sst_transport_t *t, uv_connect_t *req, const struct sockaddr *sa);
int sst__tp_tls_read_start(sst_transport_t *t);
void sst__tp_tls_read_stop(sst_transport_t *t);
int sst__tp_tls_send(sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total);
int sst__tp_tls_write(sst_transport_t *t, sst_wreq_t *r);
/* Before the FIN: queues and sends close_notify (nothing before the handshake completed). */
void sst__tp_tls_before_shutdown(sst_transport_t *t);
void sst__tp_tls_close(sst_transport_t *t, bool reset);

/* The socket layer under every transport: writes what the socket takes now with send(2) or
 * sendmsg(2), without queueing (call only when nothing is queued). Returns the bytes written
 * (0 when the socket is full) or a negative error. */
ssize_t sst__sock_send(const sst_transport_t *t, const uv_buf_t *bufs, size_t n, size_t total);

#endif
