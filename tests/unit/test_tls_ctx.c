/* Building TLS contexts: certificate checks and their file:line:col errors, warnings, names
 * for metrics, the per-config set and reloads, session tickets across server instances (a
 * shared store, rotation on a fake clock, a key file), and the HSTS line. */
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

/* --- certificates as loaded -------------------------------------------------------------- */

static void test_cert_info(void **state)
{
    sst_config_t *cfg = tfx_config("listen:\n"
                                   "  - address: 127.0.0.1:0\n"
                                   "    tls:\n"
                                   "      certificates:\n"
                                   "        - {cert: $D/api-rsa.pem, key: $D/api-rsa.key}\n"
                                   "        - {cert: $D/www.pem, key: $D/www.key}\n"
                                   "        - {cert: $D/wild.pem, key: $D/wild.key}\n"
                                   "        - {cert: $D/cnonly.pem, key: $D/cnonly.key}\n"
                                   "regions: [{name: a, backends: [127.0.0.1:9001]}]\n");
    sst_tls_server_t *srv = tfx_server(cfg, 0, NULL);
    int64_t now = (int64_t)time(NULL);
    const sst_tls_cert_info_t *c;

    (void)state;
    assert_int_equal(sst_tls_server_cert_count(srv), 4);
    c = sst_tls_server_cert(srv, 0);
    assert_int_equal(c->index, 0);
    assert_string_equal(c->path, tfx_path("api-rsa.pem"));
    assert_int_equal(c->n_names, 1);
    assert_string_equal(c->names[0], "api.example.test");
    assert_string_equal(c->key_type, "RSA 2048");
    assert_string_equal(c->subject, "CN=api.example.test");
    /* certs.py makes them valid from a day ago for 365 days */
    assert_true(c->not_after - now > 363 * 86400 && c->not_after - now < 366 * 86400);
    assert_true(now - c->not_before > 0 && now - c->not_before < 2 * 86400);
    c = sst_tls_server_cert(srv, 1);
    assert_int_equal(c->n_names, 2);
    assert_string_equal(c->names[0], "www.example.test");
    assert_string_equal(c->names[1], "static.example.test");
    assert_string_equal(c->key_type, "ECDSA P-256");
    c = sst_tls_server_cert(srv, 2);
    assert_string_equal(c->names[0], "*.wild.example.test");
    c = sst_tls_server_cert(srv, 3);
    assert_int_equal(c->n_names, 1); /* no subjectAltName: the CN */
    assert_string_equal(c->names[0], "cnonly.example.test");
    assert_null(sst_tls_server_cert(srv, 4));
    sst_tls_server_unref(srv);
    sst_config_unref(cfg);
}

/* --- session tickets -------------------------------------------------------------------- */

static void test_resumption_shared_store(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    sst_config_t *off = tfx_config("listen:\n"
                                   "  - address: 127.0.0.1:0\n"
                                   "    tls:\n"
                                   "      certificates: [{cert: $D/www.pem, key: $D/www.key}]\n"
                                   "      session_tickets: false\n"
                                   "regions: [{name: a, backends: [127.0.0.1:9001]}]\n");
    sst_tls_tickets_t *store;
    sst_tls_server_t *a, *b, *alone, *no_tickets;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};

    (void)state;
    assert_int_equal(sst_tls_tickets_new(NULL, &store), 0);
    /* two servers on one store: what two workers (or a reload) see */
    a = tfx_server(cfg, 0, store);
    b = tfx_server(cfg, 0, store);
    alone = tfx_server(cfg, 0, NULL); /* its own store */
    no_tickets = tfx_server(off, 0, store);
    for (size_t i = 0; i < COUNT_OF(versions); i++) {
        assert_true(tfx_resume_across(a, a, versions[i], NULL));
        assert_true(tfx_resume_across(a, b, versions[i], NULL));
        assert_true(tfx_resume_across(b, a, versions[i], NULL));
        assert_false(
            tfx_resume_across(a, alone, versions[i], NULL)); /* other keys: full handshake */
        assert_false(tfx_resume_across(no_tickets, no_tickets, versions[i], NULL));
        assert_false(tfx_resume_across(a, no_tickets, versions[i], NULL)); /* presented, ignored */
    }
    sst_tls_server_unref(a);
    sst_tls_server_unref(b);
    sst_tls_server_unref(alone);
    sst_tls_server_unref(no_tickets);
    sst_tls_tickets_unref(store);
    sst_config_unref(cfg);
    sst_config_unref(off);
}

static uint64_t fake_now;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static void test_ticket_rotation(void **state)
{
    sst_config_t *cfg = tfx_config(tfx_www_only);
    /* an hour: OpenSSL also checks ticket lifetimes (the rotation interval) on the real clock */
    const uint64_t hour = 3600 * 1000;
    sst_tls_tickets_opts_t opts = {.rotate_ms = hour, .clock = fake_clock};
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};

    (void)state;
    for (size_t i = 0; i < COUNT_OF(versions); i++) {
        sst_tls_tickets_t *store;
        SSL_SESSION *ticket = NULL;
        fake_now = 5000;
        assert_int_equal(sst_tls_tickets_new(&opts, &store), 0);
        assert_int_equal(sst_tls_tickets_count(store), 1);
        sst_tls_server_t *srv = tfx_server(cfg, 0, store);
        /* a ticket made with the first key resumes now ... */
        assert_true(tfx_resume_across(srv, srv, versions[i], &ticket));
        /* ... after one rotation (the key it names now only decrypts) ... */
        fake_now += hour;
        assert_true(tfx_resume_across(srv, srv, versions[i], &ticket));
        assert_int_equal(sst_tls_tickets_count(store), 2);
        /* ... and not after two: its key is gone */
        fake_now += hour;
        assert_false(tfx_resume_across(srv, srv, versions[i], &ticket));
        assert_int_equal(sst_tls_tickets_count(store), 2);
        SSL_SESSION_free(ticket);
        /* the rotation the caller drives works the same way */
        ticket = NULL;
        assert_true(tfx_resume_across(srv, srv, versions[i], &ticket));
        assert_int_equal(sst_tls_tickets_rotate(store), 0);
        assert_true(tfx_resume_across(srv, srv, versions[i], &ticket));
        assert_int_equal(sst_tls_tickets_rotate(store), 0);
        assert_false(tfx_resume_across(srv, srv, versions[i], &ticket));
        SSL_SESSION_free(ticket);
        /* a store idle for many intervals keeps none of its old keys */
        ticket = NULL;
        assert_true(tfx_resume_across(srv, srv, versions[i], &ticket));
        fake_now += 100 * hour;
        assert_false(tfx_resume_across(srv, srv, versions[i], &ticket));
        SSL_SESSION_free(ticket);
        sst_tls_server_unref(srv);
        sst_tls_tickets_unref(store);
    }
    sst_config_unref(cfg);
}

/* Writes `lines` to a fresh file in the certificate directory; returns its path. */
static const char *write_file(const char *name, const char *text)
{
    const char *path = tfx_path(name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
    return path;
}

static void random_key_line(char *out, size_t size)
{
    unsigned char raw[80];
    assert_int_equal(RAND_bytes(raw, sizeof raw), 1);
    assert_true(size > 110);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw), 108);
}

static void test_ticket_key_file(void **state)
{
    char k1[128], k2[128], k3[128], text[600];
    sst_config_t *cfg;
    const char *yaml = "listen:\n"
                       "  - address: 127.0.0.1:0\n"
                       "    tls:\n"
                       "      certificates: [{cert: $D/www.pem, key: $D/www.key}]\n"
                       "      ticket_key_file: $D/ticket.key\n"
                       "regions: [{name: a, backends: [127.0.0.1:9001]}]\n";
    sst_tls_server_t *a, *b;
    sst_tls_tickets_t *t;
    char why[256];

    (void)state;
    random_key_line(k1, sizeof k1);
    random_key_line(k2, sizeof k2);
    random_key_line(k3, sizeof k3);
    snprintf(text, sizeof text, "# newest first\n%s\n\n  %s  \r\n", k1, k2);
    write_file("ticket.key", text);
    cfg = tfx_config(yaml);
    /* two instances read the same file: each resumes the other's tickets */
    a = tfx_server(cfg, 0, NULL);
    b = tfx_server(cfg, 0, NULL);
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        assert_true(tfx_resume_across(a, b, v, NULL));
        assert_true(tfx_resume_across(b, a, v, NULL));
    }
    /* fleet rotation: an instance that already encrypts with k3 still decrypts k1's tickets
     * while k1 stays in its file; one without k1 does not */
    sst_tls_server_unref(b);
    snprintf(text, sizeof text, "%s\n%s\n", k3, k1);
    write_file("ticket.key", text);
    b = tfx_server(cfg, 0, NULL);
    assert_true(tfx_resume_across(a, b, TLS1_3_VERSION, NULL));
    sst_tls_server_unref(b);
    snprintf(text, sizeof text, "%s\n", k3);
    write_file("ticket.key", text);
    b = tfx_server(cfg, 0, NULL);
    assert_false(tfx_resume_across(a, b, TLS1_3_VERSION, NULL));
    sst_tls_server_unref(a);
    sst_tls_server_unref(b);

    assert_int_equal(sst_tls_tickets_load(tfx_path("ticket.key"), &t, why, sizeof why), 0);
    assert_int_equal(sst_tls_tickets_count(t), 1);
    assert_int_equal(sst_tls_tickets_rotate(t), SST_ENOTSUP);
    sst_tls_tickets_unref(t);

    /* bad files: each names its line */
    char nine[1200] = "";
    for (int i = 0; i < 9; i++) {
        char k[128];
        random_key_line(k, sizeof k);
        strcat(nine, k);
        strcat(nine, "\n");
    }
    char dup[300];
    snprintf(dup, sizeof dup, "%s\n%s\n", k1, k1);
    char short_key[300];
    snprintf(short_key, sizeof short_key, "%s\nAAAA\n", k1);
    static const char *const msgs[] = {
        "no key in the file",
        "line 1: expected the base64 text of 80 random bytes",
        "line 2: expected the base64 text of 80 random bytes",
        "line 2: the same key name as key 1",
        "line 9: more than 8 keys",
    };
    const char *files[] = {"# only a comment\n\n", "not base64!\n", short_key, dup, nine};
    for (size_t i = 0; i < COUNT_OF(files); i++) {
        sst_diag_t d;
        sst_tls_server_t *srv = NULL;
        write_file("ticket.key", files[i]);
        assert_int_equal(sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, NULL), SST_EINVAL);
        assert_null(srv);
        assert_string_equal(d.file, "t.yaml");
        assert_int_equal(d.line, 5);
        assert_int_equal(d.column, 24);
        assert_string_equal(d.key, "listen[0].tls.ticket_key_file");
        if (strstr(d.msg, msgs[i]) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, d.msg, msgs[i]);
    }
    unlink(tfx_path("ticket.key"));
    sst_diag_t d;
    sst_tls_server_t *srv = NULL;
    assert_int_equal(sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, NULL), SST_EINVAL);
    assert_non_null(strstr(d.msg, "cannot read: No such file"));
    sst_config_unref(cfg);
}

/* --- building contexts: errors and warnings ---------------------------------------------- */

typedef struct build_case_s {
    const char *cert, *key; /* file names in the certificate directory, or a path */
    const char *key_path;   /* the key expected in the diag */
    unsigned column;        /* 18: the cert value, 18 + strlen(cert path) + 8: the key's */
    const char *msg;
} build_case_t;

static void test_build_errors(void **state)
{
    static const build_case_t cases[] = {
        {"missing.pem", "www.key", "cert", 0, "cannot read: No such file or directory"},
        {"garbage.pem", "www.key", "cert", 0, "no PEM certificate in the file"},
        {"ca.key", "www.key", "cert", 0, "no PEM certificate in the file"},
        {"www.pem", "missing.key", "key", 0, "cannot read: No such file"},
        {"www.pem", "garbage.pem", "key", 0, "no PEM private key in the file"},
        {"www.pem", "www.pem", "key", 0, "no PEM private key in the file"},
        {"www.pem", "encrypted.key", "key", 0, "the key is encrypted"},
        {"www.pem", "unmatched.key", "key", 0, "does not match the certificate"},
        {"api-rsa.pem", "api-ecdsa.key", "key", 0, "does not match the certificate"},
        {"expired.pem", "expired.key", "cert", 0, "expired on "},
        {"future.pem", "future.key", "cert", 0, "is not valid yet: valid from "},
        {"badchain.pem", "api-ecdsa.key", "cert", 0,
         "does not build: certificate 1 (/CN=api.example.test) is not issued by certificate 2 "
         "(/CN=sidestep unrelated CA)"},
        {"rsa1024.pem", "rsa1024.key", "cert", 0, "OpenSSL refuses"},
        {"ca.pem", "ca.key", "cert", 0, "is not a TLS server certificate"},
        {"/tmp", "www.key", "cert", 0, "cannot read: not a regular file"},
    };

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char yaml[2048], cert[600], key[600];
        snprintf(cert, sizeof cert, "%s",
                 cases[i].cert[0] == '/' ? cases[i].cert : tfx_path(cases[i].cert));
        snprintf(key, sizeof key, "%s", tfx_path(cases[i].key));
        snprintf(yaml, sizeof yaml,
                 "listen:\n"
                 "  - address: 127.0.0.1:0\n"
                 "    tls:\n"
                 "      certificates:\n"
                 "        - {cert: $D/www.pem, key: $D/www.key}\n"
                 "        - {cert: %s, key: %s}\n"
                 "regions: [{name: a, backends: [127.0.0.1:9001]}]\n",
                 cert, key);
        sst_config_t *cfg = tfx_config(yaml);
        sst_tls_server_t *srv = NULL;
        sst_diag_t d;
        char want_key[96];
        assert_int_equal(sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, NULL), SST_EINVAL);
        assert_null(srv);
        snprintf(want_key, sizeof want_key, "listen[0].tls.certificates[1].%s", cases[i].key_path);
        assert_string_equal(d.file, "t.yaml");
        assert_int_equal(d.line, 6);
        assert_int_equal(d.column,
                         strcmp(cases[i].key_path, "cert") == 0 ? 18 : 18 + strlen(cert) + 7);
        assert_string_equal(d.key, want_key);
        if (strstr(d.msg, cases[i].msg) == NULL)
            fail_msg("case %zu (%s): \"%s\" lacks \"%s\"", i, cases[i].cert, d.msg, cases[i].msg);
        /* the set, as --check and reload build it, fails the same way */
        sst_tls_set_t *set = NULL;
        sst_diag_t d2;
        assert_int_equal(sst_tls_set_build(cfg, NULL, NULL, &set, &d2, NULL), SST_EINVAL);
        assert_null(set);
        assert_string_equal(d2.msg, d.msg);
        sst_config_unref(cfg);
    }
}

static void test_build_policy(void **state)
{
    static const struct {
        const char *extra; /* lines under tls: after certificates */
        const char *key, *msg;
    } cases[] = {
        {"      ciphers: NOPE\n", "listen[0].tls.ciphers", "OpenSSL accepts no TLS 1.2 cipher"},
        {"      ciphers: Intermediate\n", "listen[0].tls.ciphers",
         "OpenSSL accepts no TLS 1.2 cipher"},
        {"      ciphers: \"ECDHE-RSA-AES128-GCM-SHA256:aNULL\"\n", "listen[0].tls.ciphers",
         "authenticates no server"},
    };
    sst_diag_list_t w = {0};

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "listen:\n"
                 "  - address: 127.0.0.1:0\n"
                 "    tls:\n"
                 "      certificates: [{cert: $D/www.pem, key: $D/www.key}]\n"
                 "%s"
                 "regions: [{name: a, backends: [127.0.0.1:9001]}]\n",
                 cases[i].extra);
        sst_config_t *cfg = tfx_config(yaml);
        sst_tls_server_t *srv = NULL;
        sst_diag_t d;
        assert_int_equal(sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, NULL), SST_EINVAL);
        assert_string_equal(d.key, cases[i].key);
        assert_int_equal(d.line, 5);
        assert_int_equal(d.column, 16);
        if (strstr(d.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, d.msg, cases[i].msg);
        sst_config_unref(cfg);
    }

    /* the same certificate twice is an error; a custom list that leaves a key type without a
     * TLS 1.2 suite, and a certificate expiring within 14 days, are warnings */
    sst_config_t *cfg = tfx_config("listen:\n"
                                   "  - address: 127.0.0.1:0\n"
                                   "    tls:\n"
                                   "      certificates:\n"
                                   "        - {cert: $D/www.pem, key: $D/www.key}\n"
                                   "        - {cert: $D/www.pem, key: $D/www.key}\n"
                                   "regions: [{name: a, backends: [127.0.0.1:9001]}]\n");
    sst_tls_server_t *srv = NULL;
    sst_diag_t d;
    assert_int_equal(sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, NULL), SST_EINVAL);
    assert_string_equal(d.key, "listen[0].tls.certificates[1].cert");
    assert_non_null(strstr(d.msg, "same names and key type (ECDSA P-256) as certificates[0]"));
    sst_config_unref(cfg);

    cfg = tfx_config("listen:\n"
                     "  - address: 127.0.0.1:0\n"
                     "    tls:\n"
                     "      certificates:\n"
                     "        - {cert: $D/www.pem, key: $D/www.key}\n"
                     "        - {cert: $D/soon.pem, key: $D/soon.key}\n"
                     "      ciphers: ECDHE-RSA-AES128-GCM-SHA256\n"
                     "regions: [{name: a, backends: [127.0.0.1:9001]}]\n");
    srv = tfx_server(cfg, 0, NULL);
    sst_tls_server_unref(srv);
    assert_int_equal(sst_tls_server_new(cfg, 0, NULL, 0, &srv, &d, &w), 0);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.items[0].key, "listen[0].tls.certificates[1].cert");
    assert_int_equal(w.items[0].line, 6);
    assert_non_null(strstr(w.items[0].msg, "soon.pem expires on "));
    if (strstr(w.items[0].msg, "in 4 days") == NULL)
        fail_msg("%s", w.items[0].msg);
    assert_string_equal(w.items[1].key, "listen[0].tls.certificates[0].cert");
    assert_non_null(strstr(w.items[1].msg, "no TLS 1.2 suite in ciphers authenticates with a "
                                           "ECDSA P-256 key"));
    assert_string_equal(w.items[2].key, "listen[0].tls.certificates[1].cert");
    sst_tls_server_unref(srv);
    sst_diag_list_free(&w);
    /* checked at another time, the same certificate is expired, or not valid yet */
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(sst_tls_server_new(cfg, 0, NULL, now + 30 * 86400, &srv, &d, NULL),
                     SST_EINVAL);
    assert_non_null(strstr(d.msg, "expired on"));
    assert_int_equal(sst_tls_server_new(cfg, 0, NULL, now - 30 * 86400, &srv, &d, NULL),
                     SST_EINVAL);
    assert_non_null(strstr(d.msg, "not valid yet"));
    sst_config_unref(cfg);
}

static void test_set_build(void **state)
{
    sst_config_t *cfg = tfx_config("listen:\n"
                                   "  - 127.0.0.1:0\n"
                                   "  - address: 127.0.0.1:0\n"
                                   "    tls:\n"
                                   "      certificates: [{cert: $D/www.pem, key: $D/www.key}]\n"
                                   "regions:\n"
                                   "  - {name: a, backends: [127.0.0.1:9001]}\n"
                                   "  - name: b\n"
                                   "    url: https://b.example.test\n"
                                   "    backends: [127.0.0.1:9443]\n"
                                   "    tls: {ca: $D/ca.pem}\n");
    sst_tls_set_t *one = NULL, *two = NULL;
    sst_diag_t d;
    char msg[700];

    (void)state;
    if (sst_tls_set_build(cfg, NULL, NULL, &one, &d, NULL) != 0)
        fail_msg("%s", sst_diag_format(&d, msg, sizeof msg));
    assert_null(sst_tls_set_server(one, 0));
    assert_non_null(sst_tls_set_server(one, 1));
    assert_null(sst_tls_set_client(one, 0));
    assert_non_null(sst_tls_set_client(one, 1));
    assert_null(sst_tls_set_server(one, 99));
    /* a reload keeps the in-memory ticket keys: a ticket from before resumes after */
    assert_int_equal(sst_tls_set_build(cfg, one, NULL, &two, &d, NULL), 0);
    assert_true(tfx_resume_across(sst_tls_set_server(one, 1), sst_tls_set_server(two, 1),
                                  TLS1_3_VERSION, NULL));
    /* connections keep their server when the set goes away */
    sst_tls_conn_t *conn;
    assert_int_equal(sst_tls_conn_new_server(sst_tls_set_server(one, 1), &conn), 0);
    sst_tls_set_free(one);
    tfx_ep_t s = tfx_engine(conn);
    SSL_CTX *cctx = tfx_raw_client_ctx(0, 0);
    tfx_ep_t c = tfx_raw(cctx, true, NULL);
    tfx_pump(&c, &s);
    assert_true(tfx_done(&s));
    tfx_ep_free(&s);
    tfx_ep_free(&c);
    SSL_CTX_free(cctx);
    sst_tls_set_free(two);
    sst_tls_set_free(NULL);
    sst_config_unref(cfg);

    /* a region's CA file is checked at build time too */
    static const struct {
        const char *ca, *msg;
    } bad[] = {{"$D/missing.pem", "cannot read: No such file"},
               {"$D/garbage.pem", "no PEM certificate in the file"}};
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "listen: [127.0.0.1:0]\n"
                 "regions:\n"
                 "  - name: b\n"
                 "    backends: [127.0.0.1:9443]\n"
                 "    tls: {ca: %s}\n",
                 bad[i].ca);
        cfg = tfx_config(yaml);
        assert_int_equal(sst_tls_set_build(cfg, NULL, NULL, &one, &d, NULL), SST_EINVAL);
        assert_string_equal(d.key, "regions[0].tls.ca");
        assert_int_equal(d.line, 5);
        assert_int_equal(d.column, 15);
        assert_non_null(strstr(d.msg, bad[i].msg));
        sst_config_unref(cfg);
    }
}

/* --- HSTS -------------------------------------------------------------------------------- */

static void test_hsts(void **state)
{
    static const struct {
        sst_hsts_cfg_t h;
        const char *want;
    } cases[] = {
        {{true, 63072000, false, false}, "Strict-Transport-Security: max-age=63072000\r\n"},
        {{true, 31536000, true, false},
         "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"},
        {{true, 31536000, true, true},
         "Strict-Transport-Security: max-age=31536000; includeSubDomains; preload\r\n"},
        {{true, 0, false, false}, "Strict-Transport-Security: max-age=0\r\n"},
        {{false, 31536000, true, true}, ""},
    };
    char buf[96], small[20];

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        size_t n = sst_tls_hsts_header(&cases[i].h, buf, sizeof buf);
        assert_int_equal(n, strlen(cases[i].want));
        if (n > 0)
            assert_string_equal(buf, cases[i].want);
    }
    assert_int_equal(sst_tls_hsts_header(&cases[2].h, small, sizeof small), 0);
    assert_string_equal(small, "");
    assert_int_equal(sst_tls_hsts_header(NULL, buf, sizeof buf), 0);
    assert_string_equal(sst_tls_fail_name(SST_TLS_FAIL_TIMEOUT), "timeout");
    assert_string_equal(sst_tls_fail_name((sst_tls_fail_t)99), "other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_info),       cmocka_unit_test(test_resumption_shared_store),
        cmocka_unit_test(test_ticket_rotation), cmocka_unit_test(test_ticket_key_file),
        cmocka_unit_test(test_build_errors),    cmocka_unit_test(test_build_policy),
        cmocka_unit_test(test_set_build),       cmocka_unit_test(test_hsts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
