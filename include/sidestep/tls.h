/* TLS, with OpenSSL 3 behind this header: server contexts for HTTPS listeners (certificates, SNI,
 * ALPN, protocol and cipher policy), client contexts for TLS backends, session-ticket keys shared
 * by every worker, and the connection engine, which turns ciphertext into plaintext and back with
 * no sockets and no event loop. Nothing here blocks except building contexts (it reads files).
 * See docs/tls.md for the rules this code enforces. */
#ifndef SST_TLS_H
#define SST_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sidestep/config.h"

typedef struct sst_tls_tickets_s sst_tls_tickets_t; /* session-ticket keys */
typedef struct sst_tls_server_s sst_tls_server_t;   /* one HTTPS listener */
typedef struct sst_tls_client_s sst_tls_client_t;   /* one region's TLS backends */
typedef struct sst_tls_set_s sst_tls_set_t;         /* everything TLS in one config */
typedef struct sst_tls_conn_s sst_tls_conn_t;       /* one TLS connection */

/* ---- session-ticket keys ------------------------------------------------------------------ */

#define SST_TLS_TICKET_ROTATE_MS (12ull * 3600 * 1000) /* a key encrypts for 12 h ... */
#define SST_TLS_TICKET_KEYS_KEPT 2                     /* ... then decrypts for 12 h more */
#define SST_TLS_TICKET_FILE_MAX  8                     /* keys in a ticket_key_file */

/* Monotonic milliseconds; tests pass a fake clock to rotate without waiting 12 hours. */
typedef uint64_t (*sst_tls_clock_cb)(void *arg);

typedef struct sst_tls_tickets_opts_s {
    uint64_t rotate_ms;     /* 0: SST_TLS_TICKET_ROTATE_MS */
    sst_tls_clock_cb clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_arg;
} sst_tls_tickets_opts_t;

/* A key store that makes its own random keys and rotates them: the newest encrypts, the one before
 * still decrypts (a ticket it made resumes, and the client gets a fresh one). Rotation happens
 * when a handshake uses the store after rotate_ms, so no timer is needed. Thread-safe: one store
 * serves every worker. Returns 0 and *out (one reference), or SST_ENOMEM / SST_EIO (no
 * randomness). */
int sst_tls_tickets_new(const sst_tls_tickets_opts_t *opts, sst_tls_tickets_t **out);
/* A store read from a ticket_key_file (format in docs/tls.md: one base64 80-byte key per line,
 * the first encrypts, the others only decrypt). It never rotates by itself: the operator rotates
 * the file on every instance and reloads. Returns 0 and *out, or SST_ENOENT/SST_EACCES/SST_EIO
 * (unreadable) / SST_EINVAL (format) with the reason in why, naming the line. */
int sst_tls_tickets_load(const char *path, sst_tls_tickets_t **out, char *why, size_t why_size);
/* Makes a new encryption key now and drops the oldest past SST_TLS_TICKET_KEYS_KEPT. Returns 0,
 * SST_ENOTSUP for a store read from a file, SST_EIO when randomness fails. */
int sst_tls_tickets_rotate(sst_tls_tickets_t *t);
/* Makes the rotations that fell due (the same catch-up a handshake using the store does), so
 * keys rotate on time on a quiet listener too; the server calls it from the control loop.
 * Returns the number of keys made (0: none due, or a store read from a file). */
unsigned sst_tls_tickets_tick(sst_tls_tickets_t *t);
/* Keys held (the encryption key first). */
size_t sst_tls_tickets_count(sst_tls_tickets_t *t);
sst_tls_tickets_t *sst_tls_tickets_ref(sst_tls_tickets_t *t);
/* Drops one reference (thread-safe); NULL is ignored. */
void sst_tls_tickets_unref(sst_tls_tickets_t *t);

/* ---- server contexts (HTTPS listeners) ---------------------------------------------------- */

/* One loaded certificate, for /status and sidestep_tls_cert_expiry_seconds. Valid as long as the
 * server that returned it. */
typedef struct sst_tls_cert_info_s {
    size_t index;             /* listen[L].tls.certificates[index] */
    const char *path;         /* the cert file as configured */
    const char *const *names; /* DNS names SNI can pick it by: subjectAltName, else the subject
                                 CN; lower case; "*.example.com" for a wildcard */
    size_t n_names;
    const char *subject;  /* one-line subject ("CN=api.example.com") */
    int64_t not_before;   /* Unix seconds */
    int64_t not_after;    /* Unix seconds */
    const char *key_type; /* "RSA 2048", "ECDSA P-256", ... */
} sst_tls_cert_info_t;

/* Builds listen[listener].tls of cfg (which must have tls enabled): reads and checks every
 * certificate (docs/tls.md lists the rules), groups certificates with the same names into one
 * context (one RSA and one ECDSA certificate may share a name), applies the protocol and cipher
 * policy. `now` is the Unix time the validity checks use (0: the clock). `tickets` is the
 * in-memory key store used when the listener has no ticket_key_file (NULL: a store of its own);
 * a ticket_key_file is read here. Errors fill *diag as "file:line:col: listen[0].tls.
 * certificates[1].key: message" and return SST_EINVAL (or SST_ENOMEM); warnings (expiry within
 * 14 days, ...) are appended to *warnings when it is not NULL. Returns 0 and *out (one
 * reference). Blocking: reads files; call it off the request path. */
int sst_tls_server_new(const sst_config_t *cfg, size_t listener, sst_tls_tickets_t *tickets,
                       int64_t now, sst_tls_server_t **out, sst_diag_t *diag,
                       sst_diag_list_t *warnings);
size_t sst_tls_server_cert_count(const sst_tls_server_t *s);
const sst_tls_cert_info_t *sst_tls_server_cert(const sst_tls_server_t *s, size_t i);
sst_tls_server_t *sst_tls_server_ref(sst_tls_server_t *s);
/* Drops one reference (thread-safe); connections hold one each, so a reload can drop the old
 * server while its connections finish. NULL is ignored. */
void sst_tls_server_unref(sst_tls_server_t *s);

/* ---- client contexts (TLS to backends) ---------------------------------------------------- */

/* Builds regions[region].tls (which must be enabled): TLS 1.2+, verification on unless verify is
 * false, the ca file (else the system store), ALPN http/1.1, and a session cache per backend so
 * reconnects resume. Errors name regions[i].tls.ca with file:line:col. Returns 0 and *out (one
 * reference), SST_EINVAL or SST_ENOMEM. Blocking: reads the ca file. */
int sst_tls_client_new(const sst_config_t *cfg, size_t region, sst_tls_client_t **out,
                       sst_diag_t *diag);
/* What the backends' chains are checked against: 16 hex digits of the CA file's SHA-256
 * (its contents, read when the context was built), "system" or "-" (verify off). */
const char *sst_tls_client_trust(const sst_tls_client_t *c);
sst_tls_client_t *sst_tls_client_ref(sst_tls_client_t *c);
void sst_tls_client_unref(sst_tls_client_t *c);

/* ---- a whole config ----------------------------------------------------------------------- */

typedef struct sst_tls_build_opts_s {
    int64_t now;                           /* Unix seconds for validity checks; 0: the clock */
    const sst_tls_tickets_opts_t *tickets; /* for a new in-memory key store; NULL: defaults */
} sst_tls_build_opts_t;

/* Builds the server of every TLS listener and the client of every TLS region of cfg, for
 * `sidestep --check`, start and reload. The in-memory ticket keys come from `prev` when given (a
 * reload keeps them, so tickets issued before it still resume); key files are read again.
 * Returns 0 and *out (a config without TLS gives an empty set), or a negative SST_E* code with
 * *diag filled; warnings as sst_tls_server_new. */
int sst_tls_set_build(const sst_config_t *cfg, const sst_tls_set_t *prev,
                      const sst_tls_build_opts_t *opts, sst_tls_set_t **out, sst_diag_t *diag,
                      sst_diag_list_t *warnings);
/* The server of listen[listener], NULL for a plain listener. Borrowed from the set. */
sst_tls_server_t *sst_tls_set_server(const sst_tls_set_t *set, size_t listener);
/* The client of regions[region], NULL for a plain region. Borrowed from the set. */
sst_tls_client_t *sst_tls_set_client(const sst_tls_set_t *set, size_t region);
/* The in-memory ticket key store shared by the set's listeners without a key file (borrowed),
 * or NULL when none uses one. */
sst_tls_tickets_t *sst_tls_set_tickets(const sst_tls_set_t *set);
/* Frees the set and drops its references; connections keep theirs. NULL is ignored. */
void sst_tls_set_free(sst_tls_set_t *set);

/* ---- the connection engine ---------------------------------------------------------------- */

/* What sst_tls_conn_read found. */
typedef enum sst_tls_event_e {
    SST_TLS_WANT_INPUT = 0, /* every fed byte is used: send the output, then feed more */
    SST_TLS_DATA,           /* *n > 0 plaintext bytes are in buf; call again */
    SST_TLS_HANDSHAKE_DONE, /* reported once, when the handshake completes; call again */
    SST_TLS_CLOSED,         /* the peer is done sending: close_notify, or EOF after the
                               handshake; writing an answer is still allowed (half-close) */
    SST_TLS_HTTP_REQUEST,   /* server: the client spoke plain HTTP to this TLS port (the first
                               byte was a letter): answer 400 in clear text and close */
    SST_TLS_FAILED,         /* fatal: send the output (usually an alert), then close;
                               sst_tls_conn_fail_reason() says why */
} sst_tls_event_t;

/* Why a connection failed, for metrics (sst_tls_fail_name gives the label). */
typedef enum sst_tls_fail_e {
    SST_TLS_FAIL_NONE = 0,
    SST_TLS_FAIL_PROTOCOL_VERSION, /* TLS 1.1 or older offered, or no common version */
    SST_TLS_FAIL_NO_SHARED_CIPHER, /* no common cipher suite, group or signature algorithm */
    SST_TLS_FAIL_BAD_CERTIFICATE,  /* a certificate was refused: expired, wrong name, ... */
    SST_TLS_FAIL_UNKNOWN_CA,       /* a certificate chains to no trusted CA */
    SST_TLS_FAIL_HTTP_ON_TLS,      /* plain HTTP sent to a TLS port */
    SST_TLS_FAIL_RENEGOTIATION,    /* a renegotiation attempt */
    SST_TLS_FAIL_MALFORMED,        /* bytes that are not TLS, or a message that does not parse */
    SST_TLS_FAIL_EOF,              /* the peer closed during the handshake */
    SST_TLS_FAIL_TIMEOUT,          /* never set here: the caller counts timeouts.tls_handshake */
    SST_TLS_FAIL_OTHER,
    SST_TLS_FAIL__COUNT
} sst_tls_fail_t;

/* "protocol_version", "no_shared_cipher", "bad_certificate", "unknown_ca", "http_on_tls",
 * "renegotiation", "malformed", "eof", "timeout", "other" ("none" for NONE); never NULL. */
const char *sst_tls_fail_name(sst_tls_fail_t reason);

/* A server-side connection on `srv` (which it references until freed). Returns 0 and *out, or
 * SST_ENOMEM. */
int sst_tls_conn_new_server(sst_tls_server_t *srv, sst_tls_conn_t **out);
/* A client-side connection to cfg->backends[backend] (a backend of the client's region): SNI and
 * the name checked are the region's server_name, else the backend's host; a session kept from an
 * earlier connection to the same backend is offered for resumption. The ClientHello is produced
 * by the first sst_tls_conn_read or sst_tls_conn_writev. Returns 0, SST_EINVAL (not a backend of
 * that region) or SST_ENOMEM. */
int sst_tls_conn_new_client(sst_tls_client_t *cli, size_t backend, sst_tls_conn_t **out);
/* Frees the connection; pending output is dropped. NULL is ignored. */
void sst_tls_conn_free(sst_tls_conn_t *c);

/* Hands ciphertext to the engine WITHOUT copying: [data, data + len) is borrowed until
 * sst_tls_conn_read returns SST_TLS_WANT_INPUT, FAILED, CLOSED or HTTP_REQUEST (or until
 * sst_tls_conn_keep_input). Returns 0, or SST_EBUSY when earlier input is still unused. */
int sst_tls_conn_feed(sst_tls_conn_t *c, const void *data, size_t len);
/* Copies the unused part of the borrowed input into the engine, so the caller may reuse its
 * buffer and stop calling read for now (read back-pressure). Returns 0 or SST_ENOMEM. */
int sst_tls_conn_keep_input(sst_tls_conn_t *c);
/* The transport saw EOF: after the fed bytes, there is nothing more. */
void sst_tls_conn_feed_eof(sst_tls_conn_t *c);

/* Drives the handshake and decrypts fed ciphertext into [buf, buf + cap). Returns an
 * sst_tls_event_t (>= 0) with *n plaintext bytes written (only DATA has *n > 0), SST_ENOMEM, or
 * SST_EINVAL when the handshake is done and buf is NULL or cap 0.
 * Call until WANT_INPUT (or CLOSED/FAILED/HTTP_REQUEST); after every call, send the output.
 * Handshake messages, tickets, alerts and key updates are produced here as well as by writes. */
int sst_tls_conn_read(sst_tls_conn_t *c, void *buf, size_t cap, size_t *n);

/* Encrypts plaintext iov[0..n) into the output: small buffers are joined into one record, large
 * ones are cut into full 16 KiB records. Before the handshake completes (a client writing its
 * request right after connect), the plaintext is held and sent when it completes. Returns 0,
 * SST_EPROTO (failed or shut down) or SST_ENOMEM. */
int sst_tls_conn_writev(sst_tls_conn_t *c, const struct iovec *iov, size_t n);
/* Queues close_notify (once). Returns 0, SST_EPROTO (failed) or SST_ENOMEM. */
int sst_tls_conn_shutdown(sst_tls_conn_t *c);

/* The ciphertext waiting to be sent: sets *base and returns its length (0: nothing). Valid until
 * the next call on c. */
size_t sst_tls_conn_output(const sst_tls_conn_t *c, const char **base);
/* The first n output bytes were sent (send(2) may take part of it). */
void sst_tls_conn_output_consumed(sst_tls_conn_t *c, size_t n);
/* Moves the whole pending output to the caller, as a malloc'd block the caller frees with free():
 * no copy for a write that must wait (uv_write). Returns NULL (and *len 0) when empty. */
char *sst_tls_conn_output_take(sst_tls_conn_t *c, size_t *len);

/* State. Strings are static or owned by the connection; NULL when not known yet. */
bool sst_tls_conn_is_server(const sst_tls_conn_t *c);
bool sst_tls_conn_handshake_done(const sst_tls_conn_t *c);
bool sst_tls_conn_resumed(const sst_tls_conn_t *c);         /* a session ticket was accepted */
const char *sst_tls_conn_protocol(const sst_tls_conn_t *c); /* "TLSv1.3" */
const char *sst_tls_conn_cipher(const sst_tls_conn_t *c);   /* "TLS_AES_128_GCM_SHA256" */
const char *sst_tls_conn_alpn(const sst_tls_conn_t *c);     /* "http/1.1"; NULL: none agreed */
const char *sst_tls_conn_sni(const sst_tls_conn_t *c);      /* the server name the client sent */
/* Server: certificates[i] sent to the client in a full handshake; -1 before that, when resumed,
 * and on a client. */
int sst_tls_conn_cert_index(const sst_tls_conn_t *c);
/* Client: 0 when the peer's certificate verified (or verify is off), else an X509_V_ERR_* code;
 * sst_tls_conn_verify_error() gives its text. */
long sst_tls_conn_verify_result(const sst_tls_conn_t *c);
const char *sst_tls_conn_verify_error(const sst_tls_conn_t *c);
sst_tls_fail_t sst_tls_conn_fail_reason(const sst_tls_conn_t *c);
/* OpenSSL's words for the failure, for a debug log line ("unsupported protocol"). */
const char *sst_tls_conn_fail_detail(const sst_tls_conn_t *c);

/* ---- HSTS --------------------------------------------------------------------------------- */

/* Writes "Strict-Transport-Security: max-age=N[; includeSubDomains][; preload]\r\n" into buf.
 * Returns its length, or 0 when h is disabled or the line does not fit (size 96 always fits). */
size_t sst_tls_hsts_header(const sst_hsts_cfg_t *h, char *buf, size_t size);

#endif
