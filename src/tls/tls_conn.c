/* The TLS connection engine: one SSL object between a custom BIO that reads the caller's
 * ciphertext in place and writes records into one output buffer the caller sends. No sockets, no
 * event loop, no clock: the transport moves the bytes and owns the timeouts. Failures are
 * classified for metrics; bad input ends in an alert and SST_TLS_FAILED, never a crash. */
#include "tls/tls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "sidestep/error.h"

#define CONN_RECORD    16384 /* TLS plaintext record limit (RFC 8446 section 5.1) */
#define CONN_OUT_MIN   4096
#define CONN_ALERT_LEN 7

struct sst_tls_conn_s {
    SSL *ssl;
    sst_tls_server_t *srv; /* server side: one reference */
    sst_tls_client_t *cli; /* client side: one reference */
    size_t slot;           /* client: the backend's index in cli->backends */
    /* input: borrowed from the caller, or `kept` after sst_tls_conn_keep_input */
    const unsigned char *in;
    size_t in_len;
    unsigned char *kept;
    bool eof;
    /* output: out[out_off, out_len) waits to be sent */
    char *out;
    size_t out_off, out_len, out_cap;
    bool out_nomem;
    bool wrote_any;
    /* plaintext written before the handshake completed */
    char *early;
    size_t early_len, early_cap;
    bool started; /* server: the first byte was checked */
    bool handshake_done;
    bool failed, closed, shutdown_sent;
    bool renegotiation;
    int alert_sent, alert_received; /* fatal alert descriptions, -1: none */
    sst_tls_fail_t fail;
    char alpn[32];
    char detail[128];
};

/* SSL_get_error reads the thread's error queue, which must be empty before each TLS call
 * (SSL_get_error(3)). Every path here that leaves an error clears it, so the queue is normally
 * empty already: peeking is much cheaper than clearing its 16 slots on every call. */
static void conn_err_clean(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* --- the BIO ----------------------------------------------------------------------------- */

static pthread_once_t conn_bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *conn_bio_method;

static int conn_out_reserve(sst_tls_conn_t *c, size_t more)
{
    size_t need, cap;
    char *grown;

    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (more > SIZE_MAX - c->out_len)
        return SST_ENOMEM;
    need = c->out_len + more;
    if (need <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        /* a partial send left a sent prefix: drop it before growing */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        need = c->out_len + more;
        if (need <= c->out_cap)
            return 0;
    }
    cap = c->out_cap > 0 ? c->out_cap : CONN_OUT_MIN;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    grown = realloc(c->out, cap);
    if (grown == NULL)
        return SST_ENOMEM;
    c->out = grown;
    c->out_cap = cap;
    return 0;
}

static int conn_out_append(sst_tls_conn_t *c, const void *data, size_t len)
{
    if (conn_out_reserve(c, len) != 0)
        return SST_ENOMEM;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    c->wrote_any = true;
    return 0;
}

/* OpenSSL asks for a record header, then its body (or more with read-ahead): served straight
 * from the caller's buffer, so a record crosses one copy into OpenSSL's own buffer. */
static int conn_bio_read(BIO *b, char *buf, int size)
{
    sst_tls_conn_t *c = BIO_get_data(b);
    size_t n;

    BIO_clear_retry_flags(b);
    if (c->in_len == 0) {
        if (c->eof)
            return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    n = size > 0 && (size_t)size < c->in_len ? (size_t)size : c->in_len;
    memcpy(buf, c->in, n);
    c->in += n;
    c->in_len -= n;
    return (int)n;
}

static int conn_bio_write(BIO *b, const char *data, int len)
{
    sst_tls_conn_t *c = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len < 0 || conn_out_append(c, data, (size_t)len) != 0) {
        c->out_nomem = true;
        return -1;
    }
    return len;
}

static long conn_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    sst_tls_conn_t *c = BIO_get_data(b);

    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the output is the caller's to send */
    case BIO_CTRL_EOF:
        return c->eof && c->in_len == 0;
    case BIO_CTRL_PENDING:
        return (long)c->in_len;
    default:
        return 0;
    }
}

static void conn_bio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sidestep tls");

    if (m == NULL)
        return;
    if (BIO_meth_set_read(m, conn_bio_read) != 1 || BIO_meth_set_write(m, conn_bio_write) != 1 ||
        BIO_meth_set_ctrl(m, conn_bio_ctrl) != 1) {
        BIO_meth_free(m);
        return;
    }
    conn_bio_method = m; /* one per process, never freed */
}

/* --- callbacks --------------------------------------------------------------------------- */

static void conn_on_info(const SSL *ssl, int where, int ret)
{
    sst_tls_conn_t *c;
    int level = (ret >> 8) & 0xff, desc = ret & 0xff;

    if (!(where & SSL_CB_ALERT))
        return;
    c = SSL_get_ex_data(ssl, sst__tls_conn_index());
    if (c == NULL)
        return;
    /* OpenSSL answers a renegotiation ClientHello (or HelloRequest) with a no_renegotiation
     * warning and carries on; we end the connection instead */
    if (desc == SSL_AD_NO_RENEGOTIATION)
        c->renegotiation = true;
    if (level != SSL3_AL_FATAL)
        return;
    if (where & SSL_CB_WRITE) {
        if (c->alert_sent < 0)
            c->alert_sent = desc;
    } else if (c->alert_received < 0) {
        c->alert_received = desc;
    }
}

int sst__tls_client_on_session(SSL *ssl, SSL_SESSION *sess)
{
    sst_tls_conn_t *c = SSL_get_ex_data(ssl, sst__tls_conn_index());

    if (c == NULL || c->cli == NULL)
        return 0; /* OpenSSL keeps its reference */
    sst__tls_client_keep_session(c->cli, c->slot, sess);
    return 1; /* the slot took the reference */
}

/* --- life cycle -------------------------------------------------------------------------- */

static int conn_new(SSL_CTX *ctx, sst_tls_conn_t **out)
{
    sst_tls_conn_t *c;
    BIO *bio;

    pthread_once(&conn_bio_once, conn_bio_init);
    if (conn_bio_method == NULL)
        return SST_ENOMEM;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return SST_ENOMEM;
    c->alert_sent = c->alert_received = -1;
    c->ssl = SSL_new(ctx);
    bio = c->ssl != NULL ? BIO_new(conn_bio_method) : NULL;
    if (bio == NULL || SSL_set_ex_data(c->ssl, sst__tls_conn_index(), c) != 1) {
        BIO_free(bio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return SST_ENOMEM;
    }
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio); /* the SSL owns the BIO */
    SSL_set_info_callback(c->ssl, conn_on_info);
    *out = c;
    return 0;
}

int sst_tls_conn_new_server(sst_tls_server_t *srv, sst_tls_conn_t **out)
{
    sst_tls_conn_t *c;
    int rc;

    if (srv == NULL || out == NULL)
        return SST_EINVAL;
    rc = conn_new(srv->groups[srv->certs[0].group].ctx, &c);
    if (rc != 0)
        return rc;
    c->srv = sst_tls_server_ref(srv);
    SSL_set_accept_state(c->ssl);
    *out = c;
    return 0;
}

int sst_tls_conn_new_client(sst_tls_client_t *cli, size_t backend, sst_tls_conn_t **out)
{
    sst_tls_conn_t *c;
    const sst__tls_backend_t *b;
    SSL_SESSION *sess;
    int rc;

    if (cli == NULL || out == NULL || backend < cli->first_backend ||
        backend - cli->first_backend >= cli->n_backends)
        return SST_EINVAL;
    if ((rc = conn_new(cli->ctx, &c)) != 0)
        return rc;
    c->cli = sst_tls_client_ref(cli);
    c->slot = backend - cli->first_backend;
    b = &cli->backends[c->slot];
    rc = 1;
    if (!b->host_is_ip)
        rc = SSL_set_tlsext_host_name(c->ssl, b->host); /* RFC 6066: SNI never carries an IP */
    if (rc == 1 && cli->verify) {
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        rc = b->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), b->host)
                           : SSL_set1_host(c->ssl, b->host);
    }
    if (rc == 1 && (sess = sst__tls_client_take_session(cli, c->slot)) != NULL) {
        rc = SSL_set_session(c->ssl, sess);
        SSL_SESSION_free(sess);
    }
    if (rc != 1) {
        ERR_clear_error();
        sst_tls_conn_free(c);
        return SST_ENOMEM;
    }
    SSL_set_connect_state(c->ssl);
    *out = c;
    return 0;
}

void sst_tls_conn_free(sst_tls_conn_t *c)
{
    if (c == NULL)
        return;
    /* Freed without close_notify, OpenSSL would mark the session unusable; a connection that
     * ended without a TLS error (an idle backend connection closed) keeps it resumable */
    if (!c->failed)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl); /* before the server or client that owns its SSL_CTX */
    sst_tls_server_unref(c->srv);
    sst_tls_client_unref(c->cli);
    free(c->kept);
    free(c->out);
    free(c->early);
    free(c);
}

/* --- input ------------------------------------------------------------------------------- */

int sst_tls_conn_feed(sst_tls_conn_t *c, const void *data, size_t len)
{
    if (c->in_len > 0)
        return SST_EBUSY;
    free(c->kept);
    c->kept = NULL;
    c->in = data;
    c->in_len = len;
    return 0;
}

int sst_tls_conn_keep_input(sst_tls_conn_t *c)
{
    unsigned char *copy;

    if (c->in_len == 0 || c->in == c->kept)
        return 0;
    copy = malloc(c->in_len);
    if (copy == NULL)
        return SST_ENOMEM;
    memcpy(copy, c->in, c->in_len);
    free(c->kept);
    c->kept = copy;
    c->in = copy;
    return 0;
}

void sst_tls_conn_feed_eof(sst_tls_conn_t *c)
{
    c->eof = true;
}

/* --- failures ---------------------------------------------------------------------------- */

static sst_tls_fail_t conn_classify_alert(int desc)
{
    switch (desc) {
    case SSL_AD_PROTOCOL_VERSION:
        return SST_TLS_FAIL_PROTOCOL_VERSION;
    case SSL_AD_HANDSHAKE_FAILURE:
    case SSL_AD_INSUFFICIENT_SECURITY:
        return SST_TLS_FAIL_NO_SHARED_CIPHER;
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_CERTIFICATE_REQUIRED:
        return SST_TLS_FAIL_BAD_CERTIFICATE;
    case SSL_AD_UNKNOWN_CA:
        return SST_TLS_FAIL_UNKNOWN_CA;
    case SSL_AD_NO_RENEGOTIATION:
        return SST_TLS_FAIL_RENEGOTIATION;
    case SSL_AD_DECODE_ERROR:
    case SSL_AD_ILLEGAL_PARAMETER:
    case SSL_AD_UNEXPECTED_MESSAGE:
    case SSL_AD_RECORD_OVERFLOW:
    case SSL_AD_BAD_RECORD_MAC:
    case SSL_AD_DECRYPT_ERROR:
    case SSL_AD_MISSING_EXTENSION:
    case SSL_AD_UNSUPPORTED_EXTENSION:
        return SST_TLS_FAIL_MALFORMED;
    default:
        return SST_TLS_FAIL_NONE;
    }
}

static sst_tls_fail_t conn_classify_reason(int reason)
{
    switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return SST_TLS_FAIL_PROTOCOL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return SST_TLS_FAIL_NO_SHARED_CIPHER;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return SST_TLS_FAIL_UNKNOWN_CA;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        return SST_TLS_FAIL_BAD_CERTIFICATE;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return SST_TLS_FAIL_HTTP_ON_TLS;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return SST_TLS_FAIL_EOF;
    case SSL_R_NO_RENEGOTIATION:
        return SST_TLS_FAIL_RENEGOTIATION;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_LENGTH_MISMATCH:
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_LENGTH_TOO_SHORT:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_BAD_EXTENSION:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
        return SST_TLS_FAIL_MALFORMED;
    default:
        return SST_TLS_FAIL_OTHER;
    }
}

/* An unknown issuer means the chain leads to no trusted root; anything else is the
 * certificate itself (expired, wrong name, bad signature). */
static sst_tls_fail_t conn_classify_verify(long v)
{
    switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return SST_TLS_FAIL_UNKNOWN_CA;
    default:
        return SST_TLS_FAIL_BAD_CERTIFICATE;
    }
}

/* Records why the connection failed, adds an alert when OpenSSL sent none to a peer that is not
 * speaking TLS at all, and drops the borrowed input. */
static int conn_fail(sst_tls_conn_t *c, sst_tls_fail_t fail)
{
    unsigned long e = ERR_peek_last_error();
    long verify = c->cli != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;

    /* the peer closing mid-handshake makes OpenSSL send decode_error: still an EOF */
    if (fail == SST_TLS_FAIL_NONE && c->eof && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        fail = SST_TLS_FAIL_EOF;
    if (fail == SST_TLS_FAIL_NONE && c->cli != NULL && c->cli->verify && verify != X509_V_OK)
        fail = conn_classify_verify(verify);
    if (fail == SST_TLS_FAIL_NONE && c->alert_sent >= 0)
        fail = conn_classify_alert(c->alert_sent);
    if (fail == SST_TLS_FAIL_NONE && c->alert_received >= 0)
        fail = conn_classify_alert(c->alert_received);
    if (fail == SST_TLS_FAIL_NONE)
        fail = e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL ? conn_classify_reason(ERR_GET_REASON(e))
                                                       : SST_TLS_FAIL_OTHER;
    c->fail = fail;
    c->failed = true;
    if (e != 0)
        snprintf(c->detail, sizeof c->detail, "%s",
                 ERR_reason_error_string(e) != NULL ? ERR_reason_error_string(e) : "unknown");
    else if (c->detail[0] == '\0')
        snprintf(c->detail, sizeof c->detail, "%s", sst_tls_fail_name(fail));
    ERR_clear_error();
    /* OpenSSL stays silent when the first record does not look like TLS; a fatal alert in the
     * clear (no keys exist yet) tells the peer what happened (RFC 8446 section 6.2) */
    if (c->srv != NULL && !c->wrote_any && fail != SST_TLS_FAIL_EOF &&
        fail != SST_TLS_FAIL_HTTP_ON_TLS) {
        unsigned char alert[CONN_ALERT_LEN] = {SSL3_RT_ALERT,      3, 3, 0, 2, SSL3_AL_FATAL,
                                               SSL_AD_DECODE_ERROR};
        if (fail == SST_TLS_FAIL_PROTOCOL_VERSION)
            alert[6] = SSL_AD_PROTOCOL_VERSION;
        (void)conn_out_append(c, alert, sizeof alert);
    }
    c->in_len = 0;
    return SST_TLS_FAILED;
}

/* After an SSL call returned r <= 0: the event to report, or SST_ENOMEM. */
static int conn_after_error(sst_tls_conn_t *c, int r)
{
    int err = SSL_get_error(c->ssl, r);
    unsigned long e;

    if (c->out_nomem) {
        c->failed = true;
        c->fail = SST_TLS_FAIL_OTHER;
        snprintf(c->detail, sizeof c->detail, "out of memory");
        ERR_clear_error();
        return SST_ENOMEM;
    }
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return SST_TLS_WANT_INPUT;
    case SSL_ERROR_ZERO_RETURN:
        c->closed = true; /* close_notify */
        c->in_len = 0;
        return SST_TLS_CLOSED;
    case SSL_ERROR_SSL:
        e = ERR_peek_last_error();
        if (c->handshake_done && ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            /* EOF without close_notify after the handshake: HTTP/1.1 frames its messages, so
             * a truncation shows there; report the end (RFC 8446 section 6.1 allows it) */
            ERR_clear_error();
            c->closed = true;
            return SST_TLS_CLOSED;
        }
        return conn_fail(c, SST_TLS_FAIL_NONE);
    case SSL_ERROR_SYSCALL:
        if (!c->eof)
            return conn_fail(c, SST_TLS_FAIL_OTHER);
        if (!c->handshake_done)
            return conn_fail(c, SST_TLS_FAIL_EOF);
        c->closed = true;
        return SST_TLS_CLOSED;
    default:
        return conn_fail(c, SST_TLS_FAIL_OTHER);
    }
}

/* --- writing ----------------------------------------------------------------------------- */

static int conn_handshake(sst_tls_conn_t *c);

static int conn_ssl_write(sst_tls_conn_t *c, const void *data, size_t len)
{
    size_t written = 0;
    int r;

    conn_err_clean();
    r = SSL_write_ex(c->ssl, data, len, &written);
    if (r == 1)
        return 0;
    return conn_after_error(c, r) == SST_ENOMEM ? SST_ENOMEM : SST_EPROTO;
}

static int conn_hold_early(sst_tls_conn_t *c, const struct iovec *iov, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (len > SIZE_MAX - c->early_len)
            return SST_ENOMEM;
        if (c->early_len + len > c->early_cap) {
            size_t cap = c->early_cap ? c->early_cap : CONN_OUT_MIN;
            while (cap < c->early_len + len)
                cap = cap > SIZE_MAX / 2 ? c->early_len + len : cap * 2;
            char *grown = realloc(c->early, cap);
            if (grown == NULL)
                return SST_ENOMEM;
            c->early = grown;
            c->early_cap = cap;
        }
        if (len > 0)
            memcpy(c->early + c->early_len, iov[i].iov_base, len);
        c->early_len += len;
    }
    return 0;
}

int sst_tls_conn_writev(sst_tls_conn_t *c, const struct iovec *iov, size_t n)
{
    char stage[CONN_RECORD];
    size_t staged = 0;
    int rc;

    /* a peer that sent close_notify may still read our answer (a half-close, RFC 8446
     * section 6.1): only our own shutdown or a failure ends writing */
    if (c->failed || c->shutdown_sent)
        return SST_EPROTO;
    if (!c->handshake_done) {
        if ((rc = conn_hold_early(c, iov, n)) != 0)
            return rc;
        if (c->cli != NULL && !c->wrote_any) {
            rc = conn_handshake(c); /* the ClientHello */
            if (rc == SST_ENOMEM)
                return rc;
            if (rc == SST_TLS_FAILED)
                return SST_EPROTO;
        }
        return 0;
    }
    /* Small buffers are joined into one record; a run of 16 KiB goes out as is */
    for (size_t i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            if (staged == 0 && left >= CONN_RECORD) {
                if ((rc = conn_ssl_write(c, p, CONN_RECORD)) != 0)
                    return rc;
                p += CONN_RECORD;
                left -= CONN_RECORD;
                continue;
            }
            size_t take = left < CONN_RECORD - staged ? left : CONN_RECORD - staged;
            memcpy(stage + staged, p, take);
            staged += take;
            p += take;
            left -= take;
            if (staged == CONN_RECORD) {
                if ((rc = conn_ssl_write(c, stage, staged)) != 0)
                    return rc;
                staged = 0;
            }
        }
    }
    return staged > 0 ? conn_ssl_write(c, stage, staged) : 0;
}

int sst_tls_conn_shutdown(sst_tls_conn_t *c)
{
    int r;

    if (c->failed)
        return SST_EPROTO;
    if (c->shutdown_sent)
        return 0;
    c->shutdown_sent = true;
    if (!c->handshake_done)
        return 0; /* nothing to protect yet: closing the socket says it all */
    ERR_clear_error();
    r = SSL_shutdown(c->ssl);
    if (r < 0 && c->out_nomem)
        return SST_ENOMEM;
    ERR_clear_error();
    return 0;
}

/* --- reading ----------------------------------------------------------------------------- */

static int conn_handshake(sst_tls_conn_t *c)
{
    int r;

    conn_err_clean();
    r = SSL_do_handshake(c->ssl);
    if (r != 1)
        return conn_after_error(c, r);
    c->handshake_done = true;
    if (c->renegotiation)
        return conn_fail(c, SST_TLS_FAIL_RENEGOTIATION);
    if (c->early_len > 0) {
        /* a client's request written before the handshake ended */
        struct iovec iov = {c->early, c->early_len};
        int rc = sst_tls_conn_writev(c, &iov, 1);
        free(c->early);
        c->early = NULL;
        c->early_len = c->early_cap = 0;
        if (rc == SST_ENOMEM)
            return rc;
        if (rc != 0)
            return SST_TLS_FAILED;
    }
    return SST_TLS_HANDSHAKE_DONE;
}

int sst_tls_conn_read(sst_tls_conn_t *c, void *buf, size_t cap, size_t *n)
{
    size_t got = 0;
    int r;

    *n = 0;
    if (c->failed)
        return c->fail == SST_TLS_FAIL_HTTP_ON_TLS ? SST_TLS_HTTP_REQUEST : SST_TLS_FAILED;
    if (c->closed)
        return SST_TLS_CLOSED;
    if (c->srv != NULL && !c->started) {
        if (c->in_len == 0)
            return c->eof ? conn_fail(c, SST_TLS_FAIL_EOF) : SST_TLS_WANT_INPUT;
        c->started = true;
        /* A TLS record starts with a content type (20..24) and an SSLv2 hello with a high bit;
         * an upper-case letter is an HTTP method: plain HTTP sent to this port */
        if (c->in[0] >= 'A' && c->in[0] <= 'Z') {
            c->fail = SST_TLS_FAIL_HTTP_ON_TLS;
            c->failed = true;
            snprintf(c->detail, sizeof c->detail, "plain HTTP request sent to a TLS port");
            c->in_len = 0;
            return SST_TLS_HTTP_REQUEST;
        }
    }
    if (!c->handshake_done)
        return conn_handshake(c);
    if (buf == NULL || cap == 0)
        return SST_EINVAL; /* the input stays borrowed: give room for the plaintext */
    for (;;) {
        size_t before = c->in_len;
        conn_err_clean();
        r = SSL_read_ex(c->ssl, buf, cap, &got);
        if (c->renegotiation)
            return conn_fail(c, SST_TLS_FAIL_RENEGOTIATION);
        if (r == 1) {
            *n = got;
            return SST_TLS_DATA;
        }
        r = conn_after_error(c, r);
        /* a post-handshake message (ticket, key update) can leave unread input behind */
        if (r != SST_TLS_WANT_INPUT || c->in_len == 0)
            return r;
        if (c->in_len == before)
            return conn_fail(c, SST_TLS_FAIL_OTHER); /* no progress: never spin */
    }
}

/* --- output ------------------------------------------------------------------------------ */

size_t sst_tls_conn_output(const sst_tls_conn_t *c, const char **base)
{
    *base = c->out != NULL ? c->out + c->out_off : NULL;
    return c->out_len - c->out_off;
}

void sst_tls_conn_output_consumed(sst_tls_conn_t *c, size_t n)
{
    size_t pending = c->out_len - c->out_off;

    c->out_off += n < pending ? n : pending;
    if (c->out_off == c->out_len) {
        /* idle keep-alive connections hold no output buffer */
        free(c->out);
        c->out = NULL;
        c->out_off = c->out_len = c->out_cap = 0;
    }
}

char *sst_tls_conn_output_take(sst_tls_conn_t *c, size_t *len)
{
    char *block = c->out;

    *len = c->out_len - c->out_off;
    if (*len == 0) {
        sst_tls_conn_output_consumed(c, 0);
        return NULL;
    }
    if (c->out_off > 0)
        memmove(block, block + c->out_off, *len);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    return block;
}

/* --- state ------------------------------------------------------------------------------- */

static const char *const conn_fail_names[SST_TLS_FAIL__COUNT] = {
    [SST_TLS_FAIL_NONE] = "none",
    [SST_TLS_FAIL_PROTOCOL_VERSION] = "protocol_version",
    [SST_TLS_FAIL_NO_SHARED_CIPHER] = "no_shared_cipher",
    [SST_TLS_FAIL_BAD_CERTIFICATE] = "bad_certificate",
    [SST_TLS_FAIL_UNKNOWN_CA] = "unknown_ca",
    [SST_TLS_FAIL_HTTP_ON_TLS] = "http_on_tls",
    [SST_TLS_FAIL_RENEGOTIATION] = "renegotiation",
    [SST_TLS_FAIL_MALFORMED] = "malformed",
    [SST_TLS_FAIL_EOF] = "eof",
    [SST_TLS_FAIL_TIMEOUT] = "timeout",
    [SST_TLS_FAIL_OTHER] = "other",
};

const char *sst_tls_fail_name(sst_tls_fail_t reason)
{
    return (unsigned)reason < SST_TLS_FAIL__COUNT ? conn_fail_names[reason] : "other";
}

bool sst_tls_conn_is_server(const sst_tls_conn_t *c)
{
    return c->srv != NULL;
}

bool sst_tls_conn_handshake_done(const sst_tls_conn_t *c)
{
    return c->handshake_done;
}

bool sst_tls_conn_resumed(const sst_tls_conn_t *c)
{
    return c->handshake_done && SSL_session_reused(c->ssl) == 1;
}

const char *sst_tls_conn_protocol(const sst_tls_conn_t *c)
{
    return c->handshake_done ? SSL_get_version(c->ssl) : NULL;
}

const char *sst_tls_conn_cipher(const sst_tls_conn_t *c)
{
    const SSL_CIPHER *cipher = c->handshake_done ? SSL_get_current_cipher(c->ssl) : NULL;
    return cipher != NULL ? SSL_CIPHER_get_name(cipher) : NULL;
}

const char *sst_tls_conn_alpn(const sst_tls_conn_t *c)
{
    const unsigned char *p = NULL;
    unsigned len = 0;
    sst_tls_conn_t *m = (sst_tls_conn_t *)c; /* the copy is a cache of SSL state */

    if (!c->handshake_done)
        return NULL;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    if (p == NULL || len == 0 || len >= sizeof m->alpn)
        return NULL;
    memcpy(m->alpn, p, len);
    m->alpn[len] = '\0';
    return m->alpn;
}

const char *sst_tls_conn_sni(const sst_tls_conn_t *c)
{
    if (c->cli != NULL)
        return c->cli->backends[c->slot].host_is_ip ? NULL : c->cli->backends[c->slot].host;
    return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

int sst_tls_conn_cert_index(const sst_tls_conn_t *c)
{
    X509 *x;

    if (c->srv == NULL || !c->handshake_done || SSL_session_reused(c->ssl) == 1)
        return -1;
    x = SSL_get_certificate(c->ssl);
    for (size_t i = 0; x != NULL && i < c->srv->n_certs; i++)
        if (c->srv->certs[i].leaf == x)
            return (int)i;
    return -1;
}

long sst_tls_conn_verify_result(const sst_tls_conn_t *c)
{
    if (c->cli == NULL || !c->cli->verify)
        return X509_V_OK;
    return SSL_get_verify_result(c->ssl);
}

const char *sst_tls_conn_verify_error(const sst_tls_conn_t *c)
{
    return X509_verify_cert_error_string(sst_tls_conn_verify_result(c));
}

sst_tls_fail_t sst_tls_conn_fail_reason(const sst_tls_conn_t *c)
{
    return c->fail;
}

const char *sst_tls_conn_fail_detail(const sst_tls_conn_t *c)
{
    return c->failed ? c->detail : NULL;
}
