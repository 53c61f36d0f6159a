/* In-memory TLS peers for the engine tests: the test certificates (made by
 * tests/support/certs.py), configs that point at them, and endpoints (our engine, or a plain
 * OpenSSL SSL over memory BIOs as an independent peer) pumped against each other. No sockets. */
#ifndef SST_TESTS_TLS_FIXTURE_H
#define SST_TESTS_TLS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/tls.h"

/* --- certificates ------------------------------------------------------------------------ */

static char tfx_made_dir[1024];

/* Removes the directory tfx_certs made, if it made one. */
static inline void tfx_cleanup(void)
{
    char cmd[1100];
    if (tfx_made_dir[0] != '\0') {
        snprintf(cmd, sizeof cmd, "rm -rf %s", tfx_made_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tfx_made_dir);
    }
}

/* The certificate directory: $SST_TEST_CERTS (ctest's tls.certs fixture fills it), else made
 * here by running certs.py into a temporary directory (removed at exit). Fails the test when
 * that fails (no openssl command): TLS tests never skip. */
static inline const char *tfx_certs(void)
{
    static char dir[1024];
    char cmd[2600], tmpl[] = "/tmp/sst-tls-certs-XXXXXX";
    const char *env = getenv("SST_TEST_CERTS"), *me = __FILE__;
    const char *cut = strstr(me, "tests/unit/tls_fixture.h");

    if (dir[0] != '\0')
        return dir;
    if (env != NULL && env[0] != '\0') {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    if (cut == NULL || mkdtemp(tmpl) == NULL)
        fail_msg("cannot make a temporary certificate directory");
    snprintf(cmd, sizeof cmd, "python3 %.*stests/support/certs.py --out %s", (int)(cut - me), me,
             tmpl);
    if (system(cmd) != 0)
        fail_msg("tests/support/certs.py failed (is the openssl command installed?): %s", cmd);
    snprintf(dir, sizeof dir, "%s", tmpl);
    snprintf(tfx_made_dir, sizeof tfx_made_dir, "%s", tmpl);
    atexit(tfx_cleanup);
    return dir;
}

/* "DIR/name" in a rotating set of static buffers (several may be live in one expression). */
static inline const char *tfx_path(const char *name)
{
    static char bufs[8][1200];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tfx_certs(), name);
    return b;
}

/* Loads YAML in which every "$D" stands for the certificate directory. */
static inline sst_config_t *tfx_config(const char *yaml)
{
    const char *dir = tfx_certs();
    size_t cap = strlen(yaml) * 2 + 64 * strlen(dir) + 1, o = 0;
    char *text = malloc(cap), msg[700];
    sst_config_t *cfg = NULL;
    sst_diag_t d;

    assert_non_null(text);
    for (const char *p = yaml; *p != '\0'; p++) {
        if (p[0] == '$' && p[1] == 'D') {
            size_t n = strlen(dir);
            assert_true(o + n < cap);
            memcpy(text + o, dir, n);
            o += n;
            p++;
        } else {
            assert_true(o + 1 < cap);
            text[o++] = *p;
        }
    }
    text[o] = '\0';
    if (sst_config_load_string("t.yaml", text, o, &cfg, &d) != 0)
        fail_msg("config: %s", sst_diag_format(&d, msg, sizeof msg));
    free(text);
    return cfg;
}

static inline sst_tls_server_t *tfx_server(const sst_config_t *cfg, size_t listener,
                                           sst_tls_tickets_t *tickets)
{
    sst_tls_server_t *srv = NULL;
    sst_diag_t d;
    char msg[700];

    if (sst_tls_server_new(cfg, listener, tickets, 0, &srv, &d, NULL) != 0)
        fail_msg("server: %s", sst_diag_format(&d, msg, sizeof msg));
    return srv;
}

/* --- endpoints --------------------------------------------------------------------------- */

typedef struct tfx_ep_s {
    sst_tls_conn_t *eng; /* our engine, or ... */
    SSL *raw;            /* ... a plain OpenSSL peer over memory BIOs */
    BIO *rin, *rout;
    size_t read_cap;   /* engine plaintext buffer per read call */
    unsigned char *rx; /* plaintext received */
    size_t rx_len, rx_cap;
    int handshakes; /* HANDSHAKE_DONE events */
    int last;       /* last engine event, or SST_ENOMEM */
    bool failed, http, closed;
    int raw_error; /* SSL_get_error of a raw call that did not just want input */
} tfx_ep_t;

static inline void tfx_rx(tfx_ep_t *e, const void *p, size_t n)
{
    if (e->rx_len + n > e->rx_cap) {
        e->rx_cap = (e->rx_len + n) * 2;
        e->rx = realloc(e->rx, e->rx_cap);
        assert_non_null(e->rx);
    }
    memcpy(e->rx + e->rx_len, p, n);
    e->rx_len += n;
}

static inline tfx_ep_t tfx_engine(sst_tls_conn_t *c)
{
    tfx_ep_t e;
    memset(&e, 0, sizeof e);
    e.eng = c;
    e.read_cap = 16384;
    return e;
}

/* A raw OpenSSL peer on ctx, client or server; takes ownership of nothing but the SSL. */
static inline tfx_ep_t tfx_raw(SSL_CTX *ctx, bool client, const char *sni)
{
    tfx_ep_t e;
    memset(&e, 0, sizeof e);
    e.raw = SSL_new(ctx);
    e.rin = BIO_new(BIO_s_mem());
    e.rout = BIO_new(BIO_s_mem());
    assert_non_null(e.raw);
    assert_non_null(e.rin);
    assert_non_null(e.rout);
    BIO_set_mem_eof_return(e.rin, -1);
    SSL_set_bio(e.raw, e.rin, e.rout);
    if (client)
        SSL_set_connect_state(e.raw);
    else
        SSL_set_accept_state(e.raw);
    if (sni != NULL)
        assert_int_equal(SSL_set_tlsext_host_name(e.raw, sni), 1);
    return e;
}

/* A raw client context: TLS versions lo..hi (0: library default), no verification. */
static inline SSL_CTX *tfx_raw_client_ctx(int lo, int hi)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    if (lo != 0 && lo < TLS1_2_VERSION) {
        /* TLS 1.0 and 1.1 need SHA-1, which security level 1 and up forbid */
        SSL_CTX_set_security_level(ctx, 0);
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
    }
    if (lo != 0)
        SSL_CTX_set_min_proto_version(ctx, lo);
    if (hi != 0)
        SSL_CTX_set_max_proto_version(ctx, hi);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return ctx;
}

static inline void tfx_ep_free(tfx_ep_t *e)
{
    sst_tls_conn_free(e->eng);
    SSL_free(e->raw); /* frees both BIOs */
    free(e->rx);
    memset(e, 0, sizeof *e);
}

static inline bool tfx_done(const tfx_ep_t *e)
{
    return e->eng != NULL ? sst_tls_conn_handshake_done(e->eng) : SSL_is_init_finished(e->raw);
}

/* Runs the endpoint on what it has: the engine until it wants input (or ends), the raw peer's
 * handshake and then reads. */
static inline void tfx_drive(tfx_ep_t *e)
{
    if (e->eng != NULL) {
        unsigned char *buf = malloc(e->read_cap);
        assert_non_null(buf);
        for (;;) {
            size_t n = 0;
            int ev = sst_tls_conn_read(e->eng, buf, e->read_cap, &n);
            e->last = ev;
            if (ev == SST_TLS_DATA) {
                assert_true(n > 0);
                tfx_rx(e, buf, n);
                continue;
            }
            if (ev == SST_TLS_HANDSHAKE_DONE) {
                e->handshakes++;
                continue;
            }
            e->failed |= ev == SST_TLS_FAILED || ev < 0;
            e->http |= ev == SST_TLS_HTTP_REQUEST;
            e->closed |= ev == SST_TLS_CLOSED;
            break;
        }
        free(buf);
        return;
    }
    ERR_clear_error();
    if (!SSL_is_init_finished(e->raw)) {
        int r = SSL_do_handshake(e->raw);
        if (r != 1) {
            int err = SSL_get_error(e->raw, r);
            if (err != SSL_ERROR_WANT_READ)
                e->raw_error = err;
            return;
        }
    }
    for (;;) {
        unsigned char buf[16384];
        size_t n = 0;
        int r = SSL_read_ex(e->raw, buf, sizeof buf, &n);
        if (r == 1) {
            tfx_rx(e, buf, n);
            continue;
        }
        int err = SSL_get_error(e->raw, r);
        if (err == SSL_ERROR_ZERO_RETURN)
            e->closed = true;
        else if (err != SSL_ERROR_WANT_READ)
            e->raw_error = err;
        break;
    }
    ERR_clear_error();
}

/* Everything e has to send, in a malloc'd buffer (NULL when nothing). */
static inline unsigned char *tfx_take(tfx_ep_t *e, size_t *len)
{
    unsigned char *out;

    if (e->eng != NULL) {
        const char *base;
        *len = sst_tls_conn_output(e->eng, &base);
        if (*len == 0)
            return NULL;
        out = malloc(*len);
        assert_non_null(out);
        memcpy(out, base, *len);
        sst_tls_conn_output_consumed(e->eng, *len);
        return out;
    }
    *len = (size_t)BIO_ctrl_pending(e->rout);
    if (*len == 0)
        return NULL;
    out = malloc(*len);
    assert_non_null(out);
    assert_int_equal(BIO_read(e->rout, out, (int)*len), (int)*len);
    return out;
}

/* Hands bytes to e and runs it. */
static inline void tfx_give(tfx_ep_t *e, const unsigned char *data, size_t len)
{
    if (e->eng != NULL)
        assert_int_equal(sst_tls_conn_feed(e->eng, data, len), 0);
    else
        assert_int_equal(BIO_write(e->rin, data, (int)len), (int)len);
    tfx_drive(e);
}

/* Moves bytes both ways until neither side has anything to say; returns the rounds. */
static inline int tfx_pump(tfx_ep_t *a, tfx_ep_t *b)
{
    int rounds = 0;

    tfx_drive(a);
    for (; rounds < 64; rounds++) {
        size_t la, lb;
        unsigned char *da = tfx_take(a, &la);
        if (da != NULL)
            tfx_give(b, da, la);
        unsigned char *db = tfx_take(b, &lb);
        if (db != NULL)
            tfx_give(a, db, lb);
        free(da);
        free(db);
        if (da == NULL && db == NULL)
            break;
    }
    return rounds;
}

static inline void tfx_send(tfx_ep_t *e, const void *data, size_t len)
{
    if (e->eng != NULL) {
        struct iovec iov = {(void *)(uintptr_t)data, len};
        assert_int_equal(sst_tls_conn_writev(e->eng, &iov, 1), 0);
    } else {
        size_t w = 0;
        assert_int_equal(SSL_write_ex(e->raw, data, len, &w), 1);
        assert_int_equal(w, len);
    }
}

/* TLS records of content type `type` in a byte stream. */
static inline int tfx_records(const unsigned char *p, size_t len, int type)
{
    int n = 0;
    for (size_t i = 0; i + 5 <= len;) {
        size_t rlen = ((size_t)p[i + 3] << 8) | p[i + 4];
        n += p[i] == type;
        i += 5 + rlen;
    }
    return n;
}

/* --- shared scenarios ------------------------------------------------------------------ */

/* One listener with the API certificates (RSA and ECDSA for one name), www, a wildcard. */
static const char tfx_four_certs[] = "listen:\n"
                                     "  - address: 127.0.0.1:0\n"
                                     "    tls:\n"
                                     "      certificates:\n"
                                     "        - {cert: $D/api-rsa.pem, key: $D/api-rsa.key}\n"
                                     "        - {cert: $D/api-ecdsa.pem, key: $D/api-ecdsa.key}\n"
                                     "        - {cert: $D/www.pem, key: $D/www.key}\n"
                                     "        - {cert: $D/wild.pem, key: $D/wild.key}\n"
                                     "regions: [{name: a, backends: [127.0.0.1:9001]}]\n";

static const char tfx_www_only[] = "listen:\n"
                                   "  - address: 127.0.0.1:0\n"
                                   "    tls:\n"
                                   "      certificates: [{cert: $D/www.pem, key: $D/www.key}]\n"
                                   "regions: [{name: a, backends: [127.0.0.1:9001]}]\n";

/* A raw client against a fresh server engine; pumps the handshake. */
typedef struct tfx_pair_s {
    sst_tls_server_t *srv;
    SSL_CTX *cctx;
    tfx_ep_t s, c;
} tfx_pair_t;

static inline void tfx_pair_open(tfx_pair_t *p, sst_tls_server_t *srv, SSL_CTX *cctx,
                                 const char *sni)
{
    sst_tls_conn_t *conn;
    memset(p, 0, sizeof *p);
    p->srv = srv;
    p->cctx = cctx;
    assert_int_equal(sst_tls_conn_new_server(srv, &conn), 0);
    p->s = tfx_engine(conn);
    p->c = tfx_raw(cctx, true, sni);
    tfx_pump(&p->c, &p->s);
}

static inline void tfx_pair_close(tfx_pair_t *p)
{
    tfx_ep_free(&p->s);
    tfx_ep_free(&p->c);
}

/* --- session resumption ------------------------------------------------------------------ */

/* A full handshake on srv_a, then a resumption attempt on srv_b; returns whether it resumed.
 * With keep, the ticket of *keep is offered (the first call stores the new one there). Tickets
 * are offered through copies: an OpenSSL client marks a session it used, and a TLS 1.3 ticket
 * is single-use. TLS 1.3 tickets arrive after the handshake: the pump runs the client's reads. */
static inline bool tfx_resume_across(sst_tls_server_t *srv_a, sst_tls_server_t *srv_b, int version,
                                     SSL_SESSION **keep)
{
    SSL_CTX *cctx = tfx_raw_client_ctx(version, version);
    tfx_pair_t p;
    SSL_SESSION *fresh, *offer;
    bool resumed;

    tfx_pair_open(&p, srv_a, cctx, "www.example.test");
    assert_true(tfx_done(&p.c));
    assert_false(sst_tls_conn_resumed(p.s.eng));
    fresh = SSL_get1_session(p.c.raw);
    (void)SSL_shutdown(p.c.raw); /* freed without it, OpenSSL marks the session unusable */
    tfx_pair_close(&p);
    if (keep != NULL && *keep == NULL)
        *keep = SSL_SESSION_dup(fresh);
    offer = SSL_SESSION_dup(keep != NULL ? *keep : fresh);
    SSL_SESSION_free(fresh);
    if (offer == NULL || !SSL_SESSION_has_ticket(offer)) {
        SSL_SESSION_free(offer);
        SSL_CTX_free(cctx);
        return false;
    }
    sst_tls_conn_t *conn;
    assert_int_equal(sst_tls_conn_new_server(srv_b, &conn), 0);
    p.s = tfx_engine(conn);
    p.c = tfx_raw(cctx, true, "www.example.test");
    assert_int_equal(SSL_set_session(p.c.raw, offer), 1);
    tfx_pump(&p.c, &p.s);
    assert_true(tfx_done(&p.s));
    resumed = sst_tls_conn_resumed(p.s.eng);
    assert_int_equal(resumed, SSL_session_reused(p.c.raw) == 1);
    if (resumed)
        assert_int_equal(sst_tls_conn_cert_index(p.s.eng), -1);
    SSL_SESSION_free(offer);
    tfx_pair_close(&p);
    SSL_CTX_free(cctx);
    return resumed;
}

#endif
