/* Shared by the files of src/tls only: the server, client and ticket-store structures the engine
 * reaches into, certificate loading, and the diagnostics helpers that name file:line:col and the
 * key. */
#ifndef SST_TLS_TLS_INTERNAL_H
#define SST_TLS_TLS_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sidestep/config.h"
#include "sidestep/tls.h"

#define SST__TLS_WARN_DAYS 14 /* a certificate expiring sooner is a warning at load */

/* One certificate as loaded from listen[L].tls.certificates[i]. */
typedef struct sst__tls_cert_s {
    X509 *leaf;
    STACK_OF(X509) * chain; /* the intermediates after the leaf in the file, in order */
    EVP_PKEY *key;
    int key_id;    /* EVP_PKEY_RSA, EVP_PKEY_EC, ...: one certificate per type in a context */
    size_t group;  /* index into the server's groups */
    char **names;  /* the info's names (lower case), owned here */
    char *subject; /* owned */
    char *path;    /* owned copy of the configured path */
    char key_type[32];
    sst_tls_cert_info_t info;
} sst__tls_cert_t;

/* Certificates that cover the same names share one SSL_CTX, so OpenSSL picks RSA or ECDSA
 * from the client's signature algorithms. */
typedef struct sst__tls_group_s {
    SSL_CTX *ctx;
    size_t first_cert; /* the certificate whose names define the group */
} sst__tls_group_t;

/* SNI table entry: an exact name, or the suffix of a wildcard ("example.com" for
 * "*.example.com"), mapped to a group; sorted by name, first configured wins on a tie. */
typedef struct sst__tls_name_s {
    const char *name;
    size_t group;
    size_t order;
} sst__tls_name_t;

struct sst_tls_server_s {
    atomic_uint_fast32_t refcount;
    sst__tls_cert_t *certs;
    size_t n_certs;
    sst__tls_group_t *groups; /* groups[certs[0].group] is the default */
    size_t n_groups;
    sst__tls_name_t *exact;
    size_t n_exact;
    sst__tls_name_t *wild;
    size_t n_wild;
    sst_tls_tickets_t *tickets; /* NULL when session_tickets is false */
};

#define SST__TLS_SESSIONS 4 /* sessions kept per backend: concurrent reconnects each resume */

/* A backend's name and resumption sessions. */
typedef struct sst__tls_backend_s {
    char host[256]; /* SNI and the name checked (server_name, else the backend's host) */
    bool host_is_ip;
    SSL_SESSION *sessions[SST__TLS_SESSIONS]; /* newest last */
    size_t n_sessions;
} sst__tls_backend_t;

struct sst_tls_client_s {
    atomic_uint_fast32_t refcount;
    SSL_CTX *ctx;
    bool verify;
    /* what the chain is checked against: the first 8 bytes of the CA file's SHA-256 in hex,
     * "system" for the system store, "-" without verification. Part of a pool's identity, so
     * a reload that changes the CA file's contents never reuses a connection checked before. */
    char trust[17];
    size_t first_backend; /* cfg->backends index of backends[0] */
    size_t n_backends;
    sst__tls_backend_t *backends;
    pthread_mutex_t lock; /* guards backends[].sessions: workers connect concurrently */
};

/* SSL_CTX ex_data slot holding the owning sst_tls_server_t (ticket callback, SNI). */
int sst__tls_ctx_index(void);
/* SSL ex_data slot holding the sst_tls_conn_t. */
int sst__tls_conn_index(void);

/* The session-ticket callback every server context installs (tls_tickets.c). */
int sst__tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                       EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc);
/* Ticket lifetime hint and session timeout for a store, seconds. */
uint64_t sst__tls_tickets_lifetime_s(const sst_tls_tickets_t *t);

/* Client: the new-session callback (tls_conn.c) hands sessions to the backend's slot. */
int sst__tls_client_on_session(SSL *ssl, SSL_SESSION *sess);
/* A session to offer for backend slot `slot` (the caller owns one reference), or NULL. */
SSL_SESSION *sst__tls_client_take_session(sst_tls_client_t *cli, size_t slot);
/* Keeps `sess` (takes the caller's reference) as the slot's newest session. */
void sst__tls_client_keep_session(sst_tls_client_t *cli, size_t slot, SSL_SESSION *sess);

/* --- diagnostics (tls_cert.c) ------------------------------------------------------------ */

/* Fills *diag with cfg->source, pos and the key path built from fmt; the message follows as
 * msg_fmt. Returns SST_EINVAL. */
int sst__tls_fail(sst_diag_t *diag, const sst_config_t *cfg, sst_cfg_pos_t pos, const char *key,
                  const char *msg_fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same, appended to *warnings (ignored when NULL). Returns 0 or SST_ENOMEM. */
int sst__tls_warn(sst_diag_list_t *warnings, const sst_config_t *cfg, sst_cfg_pos_t pos,
                  const char *key, const char *msg_fmt, ...) __attribute__((format(printf, 5, 6)));
/* OpenSSL's reason for the last error on this thread ("ee key too small"), and clears the queue;
 * writes into buf and returns it. */
const char *sst__tls_err_text(char *buf, size_t size);
/* Reads a whole small file (certificates, keys, CA bundles, ticket keys) into a malloc'd buffer.
 * Returns 0, or a negative SST_E* code with why (e.g. "No such file or directory") filled. */
int sst__tls_read_file(const char *path, size_t max, char **out, size_t *len, char *why,
                       size_t why_size);
/* Formats a Unix time as "2026-01-02 03:04:05 UTC". */
const char *sst__tls_fmt_time(int64_t t, char *buf, size_t size);
/* ASN1_TIME to Unix seconds; false when it does not convert. */
bool sst__tls_asn1_unix(const ASN1_TIME *t, int64_t *out);

/* Loads and checks listen[listener].tls.certificates[i] (the rules are in docs/tls.md). */
int sst__tls_cert_load(const sst_config_t *cfg, size_t listener, size_t i, int64_t now,
                       sst__tls_cert_t *out, sst_diag_t *diag, sst_diag_list_t *warnings);
void sst__tls_cert_clear(sst__tls_cert_t *c);
/* Loads every certificate of a PEM file into a new stack (CA bundles). Returns 0, or SST_EINVAL
 * with why filled (no certificate, bad PEM). */
int sst__tls_pem_certs(const char *data, size_t len, STACK_OF(X509) * *out, char *why,
                       size_t why_size);

#endif
