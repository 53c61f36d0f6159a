/* The TLS connection engine, in memory: against plain OpenSSL peers (versions, SNI, ALPN,
 * renegotiation, bad input, plain HTTP, buffers) and against itself as a backend client
 * (verification, resumption). Certificates come from tests/support/certs.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/tls.h"

#include "tls_fixture.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* --- handshakes, data, ALPN -------------------------------------------------------------- */

static void check_exchange(tfx_pair_t *p)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n";
    struct iovec resp[3] = {{(void *)"HTTP/1.1 200 OK\r\n", 17},
                            {(void *)"Content-Length: 2\r\n\r\n", 21},
                            {(void *)"ok", 2}};
    const char *out;
    size_t len;

    tfx_send(&p->c, req, strlen(req));
    tfx_pump(&p->c, &p->s);
    assert_int_equal(p->s.rx_len, strlen(req));
    assert_memory_equal(p->s.rx, req, strlen(req));
    /* one answer in three buffers is one record: one read and one send per request */
    assert_int_equal(sst_tls_conn_writev(p->s.eng, resp, 3), 0);
    len = sst_tls_conn_output(p->s.eng, &out);
    assert_int_equal(tfx_records((const unsigned char *)out, len, SSL3_RT_APPLICATION_DATA), 1);
    tfx_pump(&p->s, &p->c);
    assert_int_equal(p->c.rx_len, 40);
    assert_memory_equal(p->c.rx, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40);
}

static void test_handshake_versions(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_four_certs);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    static const struct {
        int version;
        const char *name;
    } cases[] = {{TLS1_2_VERSION, "TLSv1.2"}, {TLS1_3_VERSION, "TLSv1.3"}};

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        SSL_CTX *cctx = tfx_raw_client_ctx(cases[i].version, cases[i].version);
        tfx_pair_t p;
        assert_int_equal(
            SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2\x08http/1.1", 12), 0);
        tfx_pair_open(&p, srv, cctx, "api.example.test");
        assert_true(tfx_done(&p.s));
        assert_true(tfx_done(&p.c));
        assert_int_equal(p.s.handshakes, 1);
        assert_string_equal(sst_tls_conn_protocol(p.s.eng), cases[i].name);
        assert_string_equal(sst_tls_conn_alpn(p.s.eng), "http/1.1");
        assert_string_equal(sst_tls_conn_sni(p.s.eng), "api.example.test");
        assert_non_null(sst_tls_conn_cipher(p.s.eng));
        assert_false(sst_tls_conn_resumed(p.s.eng));
        assert_true(sst_tls_conn_is_server(p.s.eng));
        assert_int_equal(sst_tls_conn_fail_reason(p.s.eng), SST_TLS_FAIL_NONE);
        assert_null(sst_tls_conn_fail_detail(p.s.eng));
        check_exchange(&p);
        /* close_notify: the peer reads the end */
        assert_int_equal(sst_tls_conn_shutdown(p.s.eng), 0);
        assert_int_equal(sst_tls_conn_shutdown(p.s.eng), 0);
        tfx_pump(&p.s, &p.c);
        assert_true(p.c.closed);
        assert_int_equal(sst_tls_conn_writev(p.s.eng, NULL, 0), SST_EPROTO);
        tfx_pair_close(&p);
        SSL_CTX_free(cctx);
    }
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

static void test_alpn(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_four_certs);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    static const struct {
        const char *protos;
        unsigned len;
        const char *want;
    } cases[] = {
        {"\x08http/1.1", 9, "http/1.1"},
        {"\x02h2", 3, NULL},              /* h2 only: no ALPN, the handshake goes on */
        {"\x02h2\x08spdy/3.1", 12, NULL}, /* nothing we speak */
        {NULL, 0, NULL},                  /* no ALPN extension */
        {"\x08http/1.0\x08http/1.1", 18, "http/1.1"},
    };

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        SSL_CTX *cctx = tfx_raw_client_ctx(0, 0);
        tfx_pair_t p;
        if (cases[i].protos != NULL)
            assert_int_equal(
                SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)cases[i].protos, cases[i].len),
                0);
        tfx_pair_open(&p, srv, cctx, NULL);
        assert_true(tfx_done(&p.s));
        assert_true(tfx_done(&p.c));
        if (cases[i].want == NULL)
            assert_null(sst_tls_conn_alpn(p.s.eng));
        else
            assert_string_equal(sst_tls_conn_alpn(p.s.eng), cases[i].want);
        check_exchange(&p); /* the connection carries HTTP/1.1 either way */
        tfx_pair_close(&p);
        SSL_CTX_free(cctx);
    }
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

/* --- SNI --------------------------------------------------------------------------------- */

static void test_sni(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_four_certs);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    static const struct {
        const char *sni;
        const char *sigalgs; /* NULL: the client's defaults */
        int cert;            /* -2: the default name (api), either key type */
    } cases[] = {
        {"www.example.test", NULL, 2},
        {"static.example.test", NULL, 2},
        {"WWW.Example.TEST.", NULL, 2}, /* case and a trailing dot do not matter */
        {"a.wild.example.test", NULL, 3},
        {"x-y.wild.example.test", NULL, 3},
        {"b.a.wild.example.test", NULL, -2}, /* a wildcard covers one label */
        {"wild.example.test", NULL, -2},
        {"unknown.example.test", NULL, -2},
        {NULL, NULL, -2},
        {"api.example.test", "RSA-PSS+SHA256:RSA+SHA256", 0}, /* same name: RSA ... */
        {"api.example.test", "ECDSA+SHA256", 1},              /* ... or ECDSA */
        {"unknown.example.test", "ECDSA+SHA256", 1},          /* the default group too */
    };

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        SSL_CTX *cctx = tfx_raw_client_ctx(0, 0);
        tfx_pair_t p;
        if (cases[i].sigalgs != NULL)
            assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, cases[i].sigalgs), 1);
        tfx_pair_open(&p, srv, cctx, cases[i].sni);
        assert_true(tfx_done(&p.s));
        int got = sst_tls_conn_cert_index(p.s.eng);
        if (cases[i].cert == -2)
            assert_true(got == 0 || got == 1);
        else
            assert_int_equal(got, cases[i].cert);
        /* the client received that certificate */
        X509 *peer = SSL_get1_peer_certificate(p.c.raw);
        assert_non_null(peer);
        char subject[256];
        X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
        const sst_tls_cert_info_t *info = sst_tls_server_cert(srv, (size_t)got);
        assert_non_null(strstr(subject, info->names[0][0] == '*' ? "wild" : info->names[0]));
        X509_free(peer);
        tfx_pair_close(&p);
        SSL_CTX_free(cctx);
    }
    /* TLS 1.2 with an RSA-only suite list picks the RSA certificate */
    SSL_CTX *cctx = tfx_raw_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    tfx_pair_t p;
    assert_int_equal(SSL_CTX_set_cipher_list(cctx, "ECDHE-RSA-AES128-GCM-SHA256"), 1);
    tfx_pair_open(&p, srv, cctx, "api.example.test");
    assert_int_equal(sst_tls_conn_cert_index(p.s.eng), 0);
    assert_string_equal(sst_tls_conn_cipher(p.s.eng), "ECDHE-RSA-AES128-GCM-SHA256");
    tfx_pair_close(&p);
    SSL_CTX_free(cctx);
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

/* --- refused protocol versions ----------------------------------------------------------- */

static void test_old_versions_refused(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_four_certs);
    sst_config_t *cfg13 = tfx_config("listen:\n"
                                     "  - address: 127.0.0.1:0\n"
                                     "    tls:\n"
                                     "      certificates: [{cert: $D/www.pem, key: $D/www.key}]\n"
                                     "      min_version: \"1.3\"\n"
                                     "regions: [{name: a, backends: [127.0.0.1:9001]}]\n");
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL), *srv13 = tfx_server(cfg13, 0, NULL);
    static const struct {
        int lo, hi;
        bool tls13_server;
    } cases[] = {
        {TLS1_VERSION, TLS1_VERSION, false},
        {TLS1_1_VERSION, TLS1_1_VERSION, false},
        {TLS1_VERSION, TLS1_1_VERSION, false},
        {TLS1_2_VERSION, TLS1_2_VERSION, true},
    };

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        SSL_CTX *cctx = tfx_raw_client_ctx(cases[i].lo, cases[i].hi);
        sst_tls_conn_t *conn;
        assert_int_equal(sst_tls_conn_new_server(cases[i].tls13_server ? srv13 : srv, &conn), 0);
        tfx_ep_t s = tfx_engine(conn), c = tfx_raw(cctx, true, "www.example.test");
        tfx_drive(&c);
        size_t len;
        unsigned char *hello = tfx_take(&c, &len);
        assert_non_null(hello);
        tfx_give(&s, hello, len);
        assert_true(s.failed);
        assert_int_equal(s.last, SST_TLS_FAILED);
        assert_int_equal(sst_tls_conn_fail_reason(conn), SST_TLS_FAIL_PROTOCOL_VERSION);
        assert_string_equal(sst_tls_fail_name(sst_tls_conn_fail_reason(conn)), "protocol_version");
        assert_non_null(sst_tls_conn_fail_detail(conn));
        /* the alert goes out; the client reads it and fails too */
        unsigned char *alert = tfx_take(&s, &len);
        assert_non_null(alert);
        assert_int_equal(tfx_records(alert, len, SSL3_RT_ALERT), 1);
        tfx_give(&c, alert, len);
        assert_false(tfx_done(&c));
        assert_int_equal(c.raw_error, SSL_ERROR_SSL);
        /* later calls keep failing without touching input */
        size_t n;
        assert_int_equal(sst_tls_conn_read(conn, NULL, 0, &n), SST_TLS_FAILED);
        assert_int_equal(sst_tls_conn_writev(conn, NULL, 0), SST_EPROTO);
        assert_int_equal(sst_tls_conn_shutdown(conn), SST_EPROTO);
        free(hello);
        free(alert);
        tfx_ep_free(&s);
        tfx_ep_free(&c);
        SSL_CTX_free(cctx);
    }
    sst_tls_server_unref(srv);
    sst_tls_server_unref(srv13);
    sst_config_unref(cfg);
    sst_config_unref(cfg13);
}

/* --- bad input --------------------------------------------------------------------------- */

static void test_renegotiation_refused(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    SSL_CTX *cctx = tfx_raw_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    tfx_pair_t p;
    size_t len;

    (void)state;
    tfx_pair_open(&p, srv, cctx, "www.example.test");
    assert_true(tfx_done(&p.c));
    check_exchange(&p);
    /* the client asks for a new handshake in the established connection */
    assert_int_equal(SSL_renegotiate(p.c.raw), 1);
    assert_true(SSL_do_handshake(p.c.raw) <= 0);
    unsigned char *hello = tfx_take(&p.c, &len);
    assert_non_null(hello);
    tfx_give(&p.s, hello, len);
    assert_true(p.s.failed);
    assert_int_equal(sst_tls_conn_fail_reason(p.s.eng), SST_TLS_FAIL_RENEGOTIATION);
    unsigned char *alert = tfx_take(&p.s, &len);
    assert_non_null(alert);
    assert_int_equal(tfx_records(alert, len, SSL3_RT_ALERT), 1);
    free(hello);
    free(alert);
    tfx_pair_close(&p);
    SSL_CTX_free(cctx);
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

/* A real ClientHello, for the truncation cases. */
static unsigned char *client_hello(size_t *len)
{
    SSL_CTX *cctx = tfx_raw_client_ctx(0, 0);
    tfx_ep_t c = tfx_raw(cctx, true, "www.example.test");
    unsigned char *hello;
    tfx_drive(&c);
    hello = tfx_take(&c, len);
    assert_non_null(hello);
    assert_true(*len > 100);
    tfx_ep_free(&c);
    SSL_CTX_free(cctx);
    return hello;
}

/* Feeds `data` to a fresh server engine; returns the event, the reason and the output. */
static int feed_fresh(sst_tls_server_t *srv, const unsigned char *data, size_t len, bool eof,
                      sst_tls_fail_t *reason, unsigned char *out, size_t *out_len)
{
    sst_tls_conn_t *c;
    unsigned char buf[4096];
    const char *o;
    size_t n;
    int ev;

    assert_int_equal(sst_tls_conn_new_server(srv, &c), 0);
    assert_int_equal(sst_tls_conn_feed(c, data, len), 0);
    if (eof)
        sst_tls_conn_feed_eof(c);
    do {
        ev = sst_tls_conn_read(c, buf, sizeof buf, &n);
    } while (ev == SST_TLS_DATA || ev == SST_TLS_HANDSHAKE_DONE);
    *reason = sst_tls_conn_fail_reason(c);
    n = sst_tls_conn_output(c, &o);
    if (out != NULL) {
        *out_len = n < 64 ? n : 64;
        if (n > 0)
            memcpy(out, o, *out_len);
    }
    sst_tls_conn_free(c);
    return ev;
}

static void test_bad_input(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    size_t hlen, olen;
    unsigned char *hello = client_hello(&hlen), bad[2048], out[64];
    sst_tls_fail_t reason;

    (void)state;
    /* garbage that is not TLS: a fatal decode_error alert in the clear */
    memset(bad, 0, sizeof bad);
    memcpy(bad, "\x00\x01\x02\x03\x04\x05\x06\x07", 8);
    assert_int_equal(feed_fresh(srv, bad, 64, false, &reason, out, &olen), SST_TLS_FAILED);
    assert_int_equal(reason, SST_TLS_FAIL_MALFORMED);
    assert_int_equal(olen, 7);
    assert_memory_equal(out, "\x15\x03\x03\x00\x02\x02\x32", 7);
    /* a handshake record whose message length runs past the record */
    memcpy(bad, hello, hlen);
    bad[6] = 0x7f;
    assert_int_equal(feed_fresh(srv, bad, hlen, false, &reason, out, &olen), SST_TLS_FAILED);
    assert_int_equal(reason, SST_TLS_FAIL_MALFORMED);
    assert_int_equal(tfx_records(out, olen, SSL3_RT_ALERT), 1);
    /* a hello cut in half: waits for more ... */
    assert_int_equal(feed_fresh(srv, hello, hlen / 2, false, &reason, NULL, NULL),
                     SST_TLS_WANT_INPUT);
    /* ... and fails as eof when the peer closes, with OpenSSL's decode_error alert for a peer
     * that only half-closed */
    assert_int_equal(feed_fresh(srv, hello, hlen / 2, true, &reason, out, &olen), SST_TLS_FAILED);
    assert_int_equal(reason, SST_TLS_FAIL_EOF);
    assert_int_equal(olen, 7);
    assert_memory_equal(out, "\x15\x03\x03\x00\x02\x02\x32", 7);
    /* a cut hello whose record claims the full length, the rest of the record garbage */
    memcpy(bad, hello, hlen);
    memset(bad + hlen / 2, 0xee, hlen - hlen / 2);
    assert_int_equal(feed_fresh(srv, bad, hlen, false, &reason, out, &olen), SST_TLS_FAILED);
    assert_int_equal(reason, SST_TLS_FAIL_MALFORMED);
    /* a record longer than TLS allows */
    memcpy(bad, "\x16\x03\x01\x7f\xff", 5);
    assert_int_equal(feed_fresh(srv, bad, 5, false, &reason, out, &olen), SST_TLS_FAILED);
    assert_int_equal(reason, SST_TLS_FAIL_MALFORMED);
    assert_int_equal(tfx_records(out, olen, SSL3_RT_ALERT), 1);
    /* an empty connection closed at once */
    assert_int_equal(feed_fresh(srv, bad, 0, true, &reason, out, &olen), SST_TLS_FAILED);
    assert_int_equal(reason, SST_TLS_FAIL_EOF);
    assert_int_equal(olen, 0);
    /* random bytes and random mutations of a real hello: an event, never a crash */
    srand(1234);
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(rand() % (int)sizeof bad);
        if (round % 2 == 0) {
            for (size_t i = 0; i < len; i++)
                bad[i] = (unsigned char)rand();
            if (len > 0 && bad[0] >= 'A' && bad[0] <= 'Z')
                bad[0] = 0x16;
        } else {
            memcpy(bad, hello, hlen);
            len = hlen;
            for (int k = 0; k < 1 + rand() % 4; k++)
                bad[(size_t)rand() % hlen] = (unsigned char)rand();
        }
        int ev = feed_fresh(srv, bad, len, round % 3 == 0, &reason, NULL, NULL);
        if (ev == SST_TLS_HTTP_REQUEST && len > 0 && bad[0] >= 'A' && bad[0] <= 'Z')
            continue; /* a mutation made the first byte a letter */
        if (ev != SST_TLS_FAILED && ev != SST_TLS_WANT_INPUT)
            fail_msg("round %d: event %d, reason %d", round, ev, (int)reason);
        if (ev == SST_TLS_FAILED)
            assert_true(reason != SST_TLS_FAIL_NONE && reason != SST_TLS_FAIL_HTTP_ON_TLS);
    }
    free(hello);
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

static void test_plain_http(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    static const char *const requests[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "POST /orders HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        "CONNECT example.com:443 HTTP/1.1\r\n\r\n", "G", /* one byte is enough to tell */
    };
    sst_tls_fail_t reason;
    size_t olen;
    unsigned char out[64];

    (void)state;
    for (size_t i = 0; i < COUNT_OF(requests); i++) {
        const unsigned char *r = (const unsigned char *)requests[i];
        assert_int_equal(feed_fresh(srv, r, strlen(requests[i]), false, &reason, out, &olen),
                         SST_TLS_HTTP_REQUEST);
        assert_int_equal(reason, SST_TLS_FAIL_HTTP_ON_TLS);
        assert_string_equal(sst_tls_fail_name(reason), "http_on_tls");
        assert_int_equal(olen, 0); /* the caller answers 400 in clear text */
    }
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

/* --- the engine against itself: backends ------------------------------------------------- */

static sst_tls_client_t *backend_client(const sst_config_t *cfg)
{
    sst_tls_client_t *cli = NULL;
    sst_diag_t d;
    char msg[700];
    if (sst_tls_client_new(cfg, 0, &cli, &d) != 0)
        fail_msg("client: %s", sst_diag_format(&d, msg, sizeof msg));
    return cli;
}

/* A client engine to backend 0 of cfg against a server engine of srv; pumps. */
static void engines_open(tfx_ep_t *c, tfx_ep_t *s, sst_tls_client_t *cli, sst_tls_server_t *srv)
{
    sst_tls_conn_t *cc, *sc;
    assert_int_equal(sst_tls_conn_new_client(cli, 0, &cc), 0);
    assert_int_equal(sst_tls_conn_new_server(srv, &sc), 0);
    *c = tfx_engine(cc);
    *s = tfx_engine(sc);
    tfx_pump(c, s);
}

static void test_backend_engines(void **state)
{
    sst_config_t *scfg = tfx_config(tfx_four_certs);
    sst_tls_server_t *srv = tfx_server(scfg, 0, NULL);
    sst_config_t *ccfg = tfx_config("listen: [127.0.0.1:0]\n"
                                    "regions:\n"
                                    "  - name: a\n"
                                    "    backends: [127.0.0.1:9443]\n"
                                    "    tls: {ca: $D/ca.pem, server_name: api.example.test}\n");
    sst_tls_client_t *cli = backend_client(ccfg);
    tfx_ep_t c, s;
    size_t big = 1000 * 1000;
    unsigned char *body = malloc(big);

    (void)state;
    assert_non_null(body);
    for (size_t i = 0; i < big; i++)
        body[i] = (unsigned char)(i * 7 + i / 251);
    /* the request is written right after connect, before the handshake: held, then sent */
    sst_tls_conn_t *cc, *sc;
    assert_int_equal(sst_tls_conn_new_client(cli, 0, &cc), 0);
    assert_int_equal(sst_tls_conn_new_server(srv, &sc), 0);
    c = tfx_engine(cc);
    s = tfx_engine(sc);
    assert_false(sst_tls_conn_is_server(cc));
    tfx_send(&c, "GET / HTTP/1.1\r\n\r\n", 18);
    tfx_pump(&c, &s);
    assert_true(tfx_done(&c));
    assert_int_equal(c.handshakes, 1);
    assert_int_equal(sst_tls_conn_verify_result(cc), 0);
    assert_string_equal(sst_tls_conn_alpn(cc), "http/1.1");
    assert_string_equal(sst_tls_conn_sni(cc), "api.example.test");
    assert_string_equal(sst_tls_conn_sni(sc), "api.example.test");
    assert_int_equal(s.rx_len, 18);
    /* a megabyte each way, read through a small plaintext buffer */
    s.read_cap = 1000;
    c.read_cap = 777;
    tfx_send(&s, body, big);
    tfx_send(&c, body, big);
    tfx_pump(&c, &s);
    assert_int_equal(c.rx_len, big);
    assert_memory_equal(c.rx, body, big);
    assert_int_equal(s.rx_len, 18 + big);
    assert_memory_equal(s.rx + 18, body, big);
    tfx_ep_free(&c);
    tfx_ep_free(&s);

    /* the next connection to the backend resumes with a session the first one kept */
    engines_open(&c, &s, cli, srv);
    assert_true(sst_tls_conn_resumed(c.eng));
    assert_true(sst_tls_conn_resumed(s.eng));
    tfx_ep_free(&c);
    tfx_ep_free(&s);

    /* a client refuses to talk to a backend outside its region */
    assert_int_equal(sst_tls_conn_new_client(cli, 1, &cc), SST_EINVAL);
    free(body);
    sst_tls_client_unref(cli);
    sst_tls_server_unref(srv);
    sst_config_unref(scfg);
    sst_config_unref(ccfg);
}

static void test_backend_verification(void **state)
{
    sst_config_t *scfg = tfx_config("listen:\n"
                                    "  - address: 127.0.0.1:0\n"
                                    "    tls:\n"
                                    "      certificates:\n"
                                    "        - {cert: $D/api-ecdsa.pem, key: $D/api-ecdsa.key}\n"
                                    "        - {cert: $D/selfsigned.pem, key: $D/selfsigned.key}\n"
                                    "regions: [{name: a, backends: [127.0.0.1:9001]}]\n");
    sst_tls_server_t *srv = tfx_server(scfg, 0, NULL);
    static const struct {
        const char *tls;
        bool ok;
        sst_tls_fail_t fail;
    } cases[] = {
        {"{ca: $D/ca.pem, server_name: api.example.test}", true, SST_TLS_FAIL_NONE},
        {"{ca: $D/other-ca.pem, server_name: api.example.test}", false, SST_TLS_FAIL_UNKNOWN_CA},
        {"{ca: $D/ca.pem, server_name: www.example.test}", false, SST_TLS_FAIL_BAD_CERTIFICATE},
        {"{ca: $D/other-ca.pem, server_name: api.example.test, verify: false}", true,
         SST_TLS_FAIL_NONE},
        /* an IP name is checked against the certificate's IP addresses, and sent without SNI
         * (so the server's default, the API certificate, answers: it has no IP) */
        {"{ca: $D/ca.pem, server_name: 127.0.0.1}", false, SST_TLS_FAIL_BAD_CERTIFICATE},
        /* the backend's own host is the default name: 127.0.0.1 here */
        {"{ca: $D/ca.pem}", false, SST_TLS_FAIL_BAD_CERTIFICATE},
        {"{ca: $D/selfsigned.pem, server_name: localhost}", true, SST_TLS_FAIL_NONE},
    };

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "listen: [127.0.0.1:0]\n"
                 "regions: [{name: a, backends: [127.0.0.1:9443], tls: %s}]\n",
                 cases[i].tls);
        sst_config_t *ccfg = tfx_config(yaml);
        sst_tls_client_t *cli = backend_client(ccfg);
        tfx_ep_t c, s;
        engines_open(&c, &s, cli, srv);
        if (cases[i].ok) {
            assert_true(tfx_done(&c));
            assert_true(tfx_done(&s));
            assert_false(c.failed);
        } else {
            assert_true(c.failed);
            assert_false(tfx_done(&c));
            assert_int_equal(sst_tls_conn_fail_reason(c.eng), cases[i].fail);
            assert_true(sst_tls_conn_verify_result(c.eng) != 0);
            assert_non_null(sst_tls_conn_verify_error(c.eng));
            /* the client's alert reaches the server, which counts the same reason */
            assert_true(s.failed);
            assert_int_equal(sst_tls_conn_fail_reason(s.eng), cases[i].fail);
        }
        tfx_ep_free(&c);
        tfx_ep_free(&s);
        sst_tls_client_unref(cli);
        sst_config_unref(ccfg);
    }
    sst_tls_server_unref(srv);
    sst_config_unref(scfg);
}

/* --- buffers ----------------------------------------------------------------------------- */

static void test_buffers(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    SSL_CTX *cctx = tfx_raw_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    tfx_pair_t p;
    unsigned char scratch[256];
    size_t len, n;
    char plain[64];

    (void)state;
    tfx_pair_open(&p, srv, cctx, "www.example.test");
    /* the caller may keep its read buffer only until the engine took the bytes ... */
    tfx_send(&p.c, "first", 5);
    unsigned char *rec = tfx_take(&p.c, &len);
    assert_true(len <= sizeof scratch);
    memcpy(scratch, rec, len);
    assert_int_equal(sst_tls_conn_feed(p.s.eng, scratch, len), 0);
    assert_int_equal(sst_tls_conn_feed(p.s.eng, scratch, len), SST_EBUSY);
    /* ... or hand them over with keep_input and reuse it at once */
    assert_int_equal(sst_tls_conn_keep_input(p.s.eng), 0);
    memset(scratch, 0, sizeof scratch);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain, sizeof plain, &n), SST_TLS_DATA);
    assert_int_equal(n, 5);
    assert_memory_equal(plain, "first", 5);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain, sizeof plain, &n), SST_TLS_WANT_INPUT);
    free(rec);
    /* a plaintext buffer smaller than the record: the rest comes on the next calls */
    tfx_send(&p.c, "0123456789", 10);
    rec = tfx_take(&p.c, &len);
    assert_int_equal(sst_tls_conn_feed(p.s.eng, rec, len), 0);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain, 4, &n), SST_TLS_DATA);
    assert_int_equal(n, 4);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain + 4, 4, &n), SST_TLS_DATA);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain + 8, 4, &n), SST_TLS_DATA);
    assert_int_equal(n, 2);
    assert_memory_equal(plain, "0123456789", 10);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain, 4, &n), SST_TLS_WANT_INPUT);
    assert_int_equal(sst_tls_conn_read(p.s.eng, NULL, 0, &n), SST_EINVAL);
    free(rec);
    /* a TLS 1.3 key update the client requests: OpenSSL answers with its own on the next
     * write, in the same output as the data, and data flows on under the new keys */
    assert_int_equal(SSL_key_update(p.c.raw, SSL_KEY_UPDATE_REQUESTED), 1);
    tfx_send(&p.c, "after", 5);
    rec = tfx_take(&p.c, &len);
    assert_int_equal(sst_tls_conn_feed(p.s.eng, rec, len), 0);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain, sizeof plain, &n), SST_TLS_DATA);
    assert_memory_equal(plain, "after", 5);
    assert_int_equal(sst_tls_conn_read(p.s.eng, plain, sizeof plain, &n), SST_TLS_WANT_INPUT);
    free(rec);
    p.c.rx_len = 0;
    struct iovec again = {(void *)"ok", 2};
    assert_int_equal(sst_tls_conn_writev(p.s.eng, &again, 1), 0);
    const char *ku;
    size_t ku_len = sst_tls_conn_output(p.s.eng, &ku);
    /* the key update and the data: two records (TLS 1.3 hides the inner type) */
    assert_int_equal(tfx_records((const unsigned char *)ku, ku_len, SSL3_RT_APPLICATION_DATA), 2);
    tfx_pump(&p.s, &p.c);
    assert_int_equal(p.c.rx_len, 2);
    assert_memory_equal(p.c.rx, "ok", 2);
    assert_int_equal(p.c.raw_error, 0);
    /* output handed over without a copy, then sent in two parts */
    struct iovec iov = {(void *)"reply", 5};
    assert_int_equal(sst_tls_conn_writev(p.s.eng, &iov, 1), 0);
    const char *base;
    size_t pending = sst_tls_conn_output(p.s.eng, &base);
    assert_true(pending > 5);
    sst_tls_conn_output_consumed(p.s.eng, 3);
    char *block = sst_tls_conn_output_take(p.s.eng, &len);
    assert_non_null(block);
    assert_int_equal(len, pending - 3);
    assert_int_equal(sst_tls_conn_output(p.s.eng, &base), 0);
    assert_null(sst_tls_conn_output_take(p.s.eng, &n));
    assert_int_equal(n, 0);
    free(block);
    /* 40 KiB in many small buffers: full 16 KiB records, not one per buffer */
    struct iovec many[40];
    static char kib[1024];
    for (size_t i = 0; i < COUNT_OF(many); i++)
        many[i] = (struct iovec){kib, sizeof kib};
    assert_int_equal(sst_tls_conn_writev(p.s.eng, many, COUNT_OF(many)), 0);
    pending = sst_tls_conn_output(p.s.eng, &base);
    assert_int_equal(tfx_records((const unsigned char *)base, pending, SSL3_RT_APPLICATION_DATA),
                     3);
    sst_tls_conn_output_consumed(p.s.eng, pending);
    tfx_pair_close(&p);
    SSL_CTX_free(cctx);
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

/* Partial sends leave a sent prefix that later writes must not resend; a client that half-closes
 * (close_notify after its request) still gets its answer. */
static void test_partial_sends_and_half_close(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    SSL_CTX *cctx = tfx_raw_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    tfx_pair_t p;
    static char big[20000];
    const char *base;
    size_t len;

    (void)state;
    memset(big, 'b', sizeof big);
    tfx_pair_open(&p, srv, cctx, "www.example.test");
    tfx_send(&p.s, "one", 3);
    len = sst_tls_conn_output(p.s.eng, &base);
    assert_true(len > 3);
    tfx_give(&p.c, (const unsigned char *)base, 3); /* the socket took 3 bytes */
    sst_tls_conn_output_consumed(p.s.eng, 3);
    tfx_send(&p.s, big, sizeof big); /* more output than the buffer holds: it grows */
    tfx_pump(&p.s, &p.c);
    assert_int_equal(p.c.rx_len, 3 + sizeof big);
    assert_memory_equal(p.c.rx, "one", 3);
    assert_memory_equal(p.c.rx + 3, big, sizeof big);
    assert_int_equal(p.c.raw_error, 0);

    /* the client sends its request and close_notify */
    p.s.rx_len = p.c.rx_len = 0;
    tfx_send(&p.c, "request", 7);
    assert_true(SSL_shutdown(p.c.raw) >= 0);
    tfx_pump(&p.c, &p.s);
    assert_int_equal(p.s.rx_len, 7);
    assert_true(p.s.closed);
    assert_int_equal(p.s.last, SST_TLS_CLOSED);
    /* ... and still reads the answer, then ours */
    tfx_send(&p.s, "answer", 6);
    assert_int_equal(sst_tls_conn_shutdown(p.s.eng), 0);
    tfx_pump(&p.s, &p.c);
    assert_int_equal(p.c.rx_len, 6);
    assert_memory_equal(p.c.rx, "answer", 6);
    assert_true(p.c.closed);
    tfx_pair_close(&p);
    SSL_CTX_free(cctx);
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_versions),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_old_versions_refused),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_plain_http),
        cmocka_unit_test(test_backend_engines),
        cmocka_unit_test(test_backend_verification),
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_partial_sends_and_half_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
