/* Microbenchmark of the TLS engine, server side, in memory (no sockets): CPU per keep-alive
 * request and response through sst_tls_conn (custom BIO) against the same work through two
 * memory BIOs, and full and resumed handshakes per second. Only the server's own calls are
 * timed; the client is plain OpenSSL. Usage: tls-engine-bench CERT_DIR [ROUNDS]. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sidestep/config.h"
#include "sidestep/tls.h"

static const char req[] = "GET /bench/get?id=12345 HTTP/1.1\r\nHost: www.example.test\r\n"
                          "User-Agent: wrk\r\n\r\n";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "tls-engine-bench: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* The client: plain OpenSSL over memory BIOs. */
typedef struct client_s {
    SSL *ssl;
    BIO *in, *out;
} client_t;

static client_t client_new(SSL_CTX *ctx, SSL_SESSION *sess)
{
    client_t c;
    c.ssl = SSL_new(ctx);
    c.in = BIO_new(BIO_s_mem());
    c.out = BIO_new(BIO_s_mem());
    if (c.ssl == NULL || c.in == NULL || c.out == NULL)
        die("client");
    BIO_set_mem_eof_return(c.in, -1);
    SSL_set_bio(c.ssl, c.in, c.out);
    SSL_set_connect_state(c.ssl);
    SSL_set_tlsext_host_name(c.ssl, "www.example.test");
    if (sess != NULL)
        SSL_set_session(c.ssl, sess);
    return c;
}

static size_t client_take(client_t *c, unsigned char *buf, size_t cap)
{
    int n = BIO_read(c->out, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

static void client_give(client_t *c, const char *data, size_t len)
{
    unsigned char sink[65536];
    size_t n;
    BIO_write(c->in, data, (int)len);
    if (!SSL_is_init_finished(c->ssl))
        SSL_do_handshake(c->ssl);
    while (SSL_read_ex(c->ssl, sink, sizeof sink, &n) == 1)
        ;
    ERR_clear_error();
}

/* The server through the engine. Returns the server's nanoseconds for one exchange. */
static uint64_t engine_exchange(sst_tls_conn_t *s, client_t *c, const struct iovec *resp,
                                size_t nresp)
{
    static unsigned char cipher[65536];
    static char plain[16384];
    const char *out;
    size_t len, n, got = 0;
    uint64_t t0, spent;
    int ev;

    size_t w;
    SSL_write_ex(c->ssl, req, sizeof req - 1, &w);
    len = client_take(c, cipher, sizeof cipher);
    t0 = now_ns();
    sst_tls_conn_feed(s, cipher, len); /* one read chunk ... */
    while ((ev = sst_tls_conn_read(s, plain, sizeof plain, &n)) == SST_TLS_DATA ||
           ev == SST_TLS_HANDSHAKE_DONE)
        got += n;
    sst_tls_conn_writev(s, resp, nresp); /* ... one answer ... */
    len = sst_tls_conn_output(s, &out);  /* ... one send */
    spent = now_ns() - t0;
    if (got != sizeof req - 1)
        die("engine: request not decrypted");
    client_give(c, out, len);
    sst_tls_conn_output_consumed(s, len);
    return spent;
}

static void err_clean(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* The same server work through two memory BIOs: BIO_write in, SSL_read, SSL_write, BIO_read out
 * into a send buffer. */
static uint64_t membio_exchange(SSL *s, BIO *in, BIO *out, client_t *c, const struct iovec *resp,
                                size_t nresp)
{
    static unsigned char cipher[65536], send_buf[262144];
    static char plain[16384], joined[16384];
    size_t len, n, got = 0, off = 0;
    uint64_t t0, spent;

    size_t w;
    SSL_write_ex(c->ssl, req, sizeof req - 1, &w);
    len = client_take(c, cipher, sizeof cipher);
    t0 = now_ns();
    BIO_write(in, cipher, (int)len);
    /* the same error-queue care as the engine: SSL_get_error needs an empty queue */
    for (;;) {
        err_clean();
        if (SSL_read_ex(s, plain, sizeof plain, &n) != 1)
            break;
        got += n;
    }
    (void)SSL_get_error(s, 0);
    for (size_t i = 0; i < nresp; i++) {
        memcpy(joined + off, resp[i].iov_base, resp[i].iov_len);
        off += resp[i].iov_len;
    }
    err_clean();
    SSL_write_ex(s, joined, off, &n);
    int r = BIO_read(out, send_buf, sizeof send_buf);
    spent = now_ns() - t0;
    ERR_clear_error();
    if (got != sizeof req - 1 || r <= 0)
        die("membio: exchange failed");
    client_give(c, (const char *)send_buf, (size_t)r);
    return spent;
}

/* Pumps a handshake between the engine and a client; returns the server's nanoseconds. */
static uint64_t engine_handshake(sst_tls_server_t *srv, client_t *c, sst_tls_conn_t **out_conn)
{
    static unsigned char buf[65536];
    static char plain[1024];
    sst_tls_conn_t *s;
    uint64_t spent = 0, t0;
    size_t n;

    if (sst_tls_conn_new_server(srv, &s) != 0)
        die("conn");
    SSL_do_handshake(c->ssl);
    for (int round = 0; round < 8 && !sst_tls_conn_handshake_done(s); round++) {
        const char *out;
        size_t len = client_take(c, buf, sizeof buf);
        t0 = now_ns();
        sst_tls_conn_feed(s, buf, len);
        while (sst_tls_conn_read(s, plain, sizeof plain, &n) > SST_TLS_WANT_INPUT &&
               !sst_tls_conn_handshake_done(s))
            ;
        len = sst_tls_conn_output(s, &out);
        spent += now_ns() - t0;
        client_give(c, out, len);
        sst_tls_conn_output_consumed(s, len);
    }
    if (!sst_tls_conn_handshake_done(s))
        die("handshake did not complete");
    if (out_conn != NULL)
        *out_conn = s;
    else
        sst_tls_conn_free(s);
    return spent;
}

static sst_tls_server_t *server_for(const char *dir, const char *name)
{
    char yaml[2048];
    sst_config_t *cfg;
    sst_tls_server_t *srv;
    sst_diag_t d;
    char msg[700];

    snprintf(yaml, sizeof yaml,
             "listen:\n  - address: 127.0.0.1:0\n    tls:\n      certificates:\n"
             "        - {cert: %s/%s.pem, key: %s/%s.key}\n"
             "regions: [{name: a, backends: [127.0.0.1:9001]}]\n",
             dir, name, dir, name);
    if (sst_config_load_string("bench.yaml", yaml, strlen(yaml), &cfg, &d) != 0 ||
        sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, NULL) != 0) {
        fprintf(stderr, "%s\n", sst_diag_format(&d, msg, sizeof msg));
        exit(1);
    }
    sst_config_unref(cfg);
    return srv;
}

/* A raw OpenSSL server over memory BIOs, handshaken with client c. */
typedef struct membio_server_s {
    SSL *ssl;
    BIO *in, *out;
} membio_server_t;

static membio_server_t membio_server(SSL_CTX *raw, client_t *c)
{
    static unsigned char buf[65536];
    membio_server_t m;

    m.ssl = SSL_new(raw);
    m.in = BIO_new(BIO_s_mem());
    m.out = BIO_new(BIO_s_mem());
    if (m.ssl == NULL || m.in == NULL || m.out == NULL)
        die("membio server");
    BIO_set_mem_eof_return(m.in, -1);
    SSL_set_bio(m.ssl, m.in, m.out);
    SSL_set_accept_state(m.ssl);
    for (int round = 0; round < 8 && !SSL_is_init_finished(m.ssl); round++) {
        SSL_do_handshake(c->ssl);
        size_t len = client_take(c, buf, sizeof buf);
        BIO_write(m.in, buf, (int)len);
        SSL_do_handshake(m.ssl);
        int r = BIO_read(m.out, buf, sizeof buf);
        if (r > 0)
            client_give(c, (const char *)buf, (size_t)r);
    }
    ERR_clear_error();
    if (!SSL_is_init_finished(m.ssl))
        die("membio handshake");
    return m;
}

/* Keep-alive exchanges: the engine against two memory BIOs on the same certificate, interleaved
 * in batches of 1,000; the best batch of each is printed, so a machine shared with other work
 * disturbs both sides alike and the figure is the undisturbed cost. */
static void bench_exchanges(const char *dir, SSL_CTX *cctx, sst_tls_server_t *srv, long rounds)
{
    static char body16k[16384 - 300];
    struct iovec small[3] = {{(void *)"HTTP/1.1 307 Temporary Redirect\r\n", 34},
                             {(void *)"Location: http://eu-west.example/bench/get?id=12345\r\n"
                                      "Content-Length: 0\r\n",
                              73},
                             {(void *)"\r\n", 2}};
    struct iovec big[2] = {{(void *)"HTTP/1.1 200 OK\r\nContent-Length: 16084\r\n\r\n", 42},
                           {body16k, sizeof body16k}};
    struct {
        const char *name;
        struct iovec *resp;
        size_t n;
    } shapes[] = {{"307 answer (3 buffers, 109 B)", small, 3}, {"16 KiB answer", big, 2}};
    SSL_CTX *raw = SSL_CTX_new(TLS_server_method());
    char cert[1200], key[1200];
    const long batch = 1000;

    snprintf(cert, sizeof cert, "%s/www.pem", dir);
    snprintf(key, sizeof key, "%s/www.key", dir);
    if (raw == NULL || SSL_CTX_use_certificate_chain_file(raw, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(raw, key, SSL_FILETYPE_PEM) != 1)
        die("raw server ctx");
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(raw, 0);
    for (size_t k = 0; k < 2; k++) {
        sst_tls_conn_t *s;
        client_t c = client_new(cctx, NULL), c2 = client_new(cctx, NULL);
        engine_handshake(srv, &c, &s);
        membio_server_t m = membio_server(raw, &c2);
        double best_eng = 1e18, best_mem = 1e18;
        if (k == 0)
            printf("suites: engine %s, memory BIOs %s\n", sst_tls_conn_cipher(s),
                   SSL_CIPHER_get_name(SSL_get_current_cipher(m.ssl)));
        for (long b = 0; b < (rounds + batch - 1) / batch; b++) {
            uint64_t eng = 0, mem = 0;
            for (long i = 0; i < batch; i++)
                eng += engine_exchange(s, &c, shapes[k].resp, shapes[k].n);
            for (long i = 0; i < batch; i++)
                mem += membio_exchange(m.ssl, m.in, m.out, &c2, shapes[k].resp, shapes[k].n);
            if ((double)eng / batch < best_eng)
                best_eng = (double)eng / batch;
            if ((double)mem / batch < best_mem)
                best_mem = (double)mem / batch;
        }
        printf("%-32s engine %7.0f ns/request   two memory BIOs %7.0f ns/request\n", shapes[k].name,
               best_eng, best_mem);
        sst_tls_conn_free(s);
        SSL_free(c.ssl);
        SSL_free(m.ssl);
        SSL_free(c2.ssl);
    }
    SSL_CTX_free(raw);
}

/* Full handshakes with each key type and resumed ones with a TLS 1.3 ticket, server CPU. Returns
 * false when a resumption did not resume. */
static bool bench_handshakes(const char *dir, SSL_CTX *cctx, sst_tls_server_t *srv, long hs)
{
    const char *certs[] = {"www", "api-rsa"};
    const char *labels[] = {"full handshake, ECDSA P-256", "full handshake, RSA 2048"};
    sst_tls_conn_t *s;
    uint64_t spent = 0;
    long resumed = 0;

    for (size_t k = 0; k < 2; k++) {
        sst_tls_server_t *s2 = server_for(dir, certs[k]);
        spent = 0;
        for (long i = 0; i < hs; i++) {
            client_t c = client_new(cctx, NULL);
            spent += engine_handshake(s2, &c, NULL);
            SSL_free(c.ssl);
        }
        printf("%-32s %8.0f /s\n", labels[k], (double)hs * 1e9 / (double)spent);
        sst_tls_server_unref(s2);
    }
    client_t c = client_new(cctx, NULL);
    engine_handshake(srv, &c, &s);
    sst_tls_conn_free(s);
    SSL_SESSION *ticket = SSL_get1_session(c.ssl);
    SSL_shutdown(c.ssl); /* freed without it, OpenSSL marks the session unusable */
    SSL_free(c.ssl);
    spent = 0;
    for (long i = 0; i < hs; i++) {
        SSL_SESSION *copy = SSL_SESSION_dup(ticket); /* a TLS 1.3 ticket is used once */
        c = client_new(cctx, copy);
        spent += engine_handshake(srv, &c, &s);
        resumed += sst_tls_conn_resumed(s);
        sst_tls_conn_free(s);
        SSL_SESSION_free(copy);
        SSL_free(c.ssl);
    }
    printf("%-32s %8.0f /s (%ld of %ld resumed)\n", "resumed handshake (TLS 1.3)",
           (double)hs * 1e9 / (double)spent, resumed, hs);
    SSL_SESSION_free(ticket);
    return resumed == hs;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL;
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
    SSL_CTX *cctx;
    sst_tls_server_t *srv;
    bool ok;

    if (dir == NULL || rounds <= 0) {
        fprintf(stderr, "usage: tls-engine-bench CERT_DIR [ROUNDS]\n"
                        "  CERT_DIR: made by tests/support/certs.py (build/tests/certs)\n");
        return 2;
    }
    cctx = SSL_CTX_new(TLS_client_method());
    if (cctx == NULL)
        die("client ctx");
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    srv = server_for(dir, "www");
    printf("server CPU only, one thread, %s, %ld rounds\n", OpenSSL_version(OPENSSL_VERSION),
           rounds);
    bench_exchanges(dir, cctx, srv, rounds);
    ok = bench_handshakes(dir, cctx, srv, rounds / 20 > 50 ? rounds / 20 : 50);
    sst_tls_server_unref(srv);
    SSL_CTX_free(cctx);
    return ok ? 0 : 1;
}
