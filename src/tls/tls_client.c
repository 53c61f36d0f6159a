/* Client contexts for TLS to backends: one SSL_CTX per region (verification, CA, ALPN) and a
 * small session cache per backend so a reconnect resumes instead of paying a full handshake.
 * Built when a config is checked or applied; the cache is touched by worker threads. */
#include "tls/tls_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/sha.h>

#include "sidestep/error.h"

#define CA_FILE_MAX (8 * 1024 * 1024) /* a full system bundle is about 200 KiB */

static void client_free(sst_tls_client_t *cli)
{
    for (size_t i = 0; cli->backends != NULL && i < cli->n_backends; i++)
        for (size_t k = 0; k < SST__TLS_SESSIONS; k++)
            SSL_SESSION_free(cli->backends[i].sessions[k]);
    free(cli->backends);
    SSL_CTX_free(cli->ctx);
    pthread_mutex_destroy(&cli->lock);
    free(cli);
}

static bool client_is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int client_load_ca(const sst_config_t *cfg, size_t region, sst_tls_client_t *cli,
                          sst_diag_t *diag)
{
    SSL_CTX *ctx = cli->ctx;
    const sst_tls_upstream_cfg_t *t = &cfg->regions[region].tls;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509) *certs = NULL;
    char key[64], why[256], *data = NULL;
    size_t len = 0;
    int rc;

    snprintf(key, sizeof key, "regions[%zu].tls.ca", region);
    if (t->ca == NULL) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            sst_cfg_pos_t none = {0, 0};
            snprintf(key, sizeof key, "regions[%zu].tls", region);
            return sst__tls_fail(diag, cfg, none, key, "cannot load the system trust store (%s)",
                                 sst__tls_err_text(why, sizeof why));
        }
        snprintf(cli->trust, sizeof cli->trust, "system");
        return 0;
    }
    rc = sst__tls_read_file(t->ca, CA_FILE_MAX, &data, &len, why, sizeof why);
    if (rc == SST_ENOMEM)
        return rc;
    if (rc != 0)
        return sst__tls_fail(diag, cfg, t->ca_pos, key, "%s: cannot read: %s", t->ca, why);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, digest);
    for (size_t i = 0; i < (sizeof cli->trust - 1) / 2; i++)
        snprintf(cli->trust + 2 * i, 3, "%02x", digest[i]);
    rc = sst__tls_pem_certs(data, len, &certs, why, sizeof why);
    free(data);
    if (rc == SST_ENOMEM)
        return rc;
    if (rc != 0)
        return sst__tls_fail(diag, cfg, t->ca_pos, key, "%s: %s", t->ca, why);
    for (int i = 0; i < sk_X509_num(certs) && rc == 0; i++)
        if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1)
            rc = SST_ENOMEM;
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return rc;
}

int sst_tls_client_new(const sst_config_t *cfg, size_t region, sst_tls_client_t **out,
                       sst_diag_t *diag)
{
    const sst_region_cfg_t *r;
    sst_tls_client_t *cli;
    int rc = 0;

    if (cfg == NULL || out == NULL)
        return SST_EINVAL;
    if (region >= cfg->n_regions || !cfg->regions[region].tls.enabled) {
        sst_cfg_pos_t none = {0, 0};
        return sst__tls_fail(diag, cfg, none, "", "no TLS region at regions[%zu]", region);
    }
    r = &cfg->regions[region];
    cli = calloc(1, sizeof *cli);
    if (cli == NULL)
        return SST_ENOMEM;
    if (pthread_mutex_init(&cli->lock, NULL) != 0) {
        free(cli);
        return SST_ENOMEM;
    }
    atomic_init(&cli->refcount, 1);
    cli->verify = r->tls.verify;
    snprintf(cli->trust, sizeof cli->trust, "-");
    cli->first_backend = r->first_backend;
    cli->n_backends = r->n_backends;
    cli->backends = calloc(r->n_backends, sizeof *cli->backends);
    cli->ctx = SSL_CTX_new(TLS_client_method());
    if (cli->backends == NULL || cli->ctx == NULL) {
        rc = SST_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < r->n_backends; i++) {
        sst__tls_backend_t *b = &cli->backends[i];
        const char *host = r->tls.server_name != NULL
                               ? r->tls.server_name
                               : cfg->backends[r->first_backend + i].addr.host;
        snprintf(b->host, sizeof b->host, "%s", host);
        b->host_is_ip = client_is_ip(b->host);
    }
    SSL_CTX_set_security_level(cli->ctx, 2);
    SSL_CTX_set_min_proto_version(cli->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(cli->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(cli->ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(cli->ctx, cli->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (cli->verify && (rc = client_load_ca(cfg, region, cli, diag)) != 0)
        goto fail;
    /* 0 is success here */
    if (SSL_CTX_set_alpn_protos(cli->ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
        rc = SST_ENOMEM;
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(cli->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(cli->ctx, sst__tls_client_on_session);
    *out = cli;
    return 0;
fail:
    if (rc == SST_ENOMEM)
        (void)sst__tls_fail(diag, cfg, (sst_cfg_pos_t){0, 0}, "", "out of memory");
    ERR_clear_error();
    client_free(cli);
    return rc;
}

const char *sst_tls_client_trust(const sst_tls_client_t *c)
{
    return c->trust;
}

sst_tls_client_t *sst_tls_client_ref(sst_tls_client_t *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->refcount, 1, memory_order_relaxed);
    return c;
}

void sst_tls_client_unref(sst_tls_client_t *c)
{
    if (c != NULL && atomic_fetch_sub_explicit(&c->refcount, 1, memory_order_acq_rel) == 1)
        client_free(c);
}

SSL_SESSION *sst__tls_client_take_session(sst_tls_client_t *cli, size_t slot)
{
    sst__tls_backend_t *b = &cli->backends[slot];
    SSL_SESSION *s = NULL;

    pthread_mutex_lock(&cli->lock);
    while (b->n_sessions > 0 && s == NULL) {
        s = b->sessions[--b->n_sessions];
        b->sessions[b->n_sessions] = NULL;
        if (!SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(s);
            s = NULL;
        } else if (SSL_SESSION_get_protocol_version(s) != TLS1_3_VERSION) {
            /* a TLS 1.2 ticket may serve several connections; a TLS 1.3 one is used once
             * (RFC 8446 appendix C.4), and the server sends fresh ones */
            SSL_SESSION_up_ref(s);
            b->sessions[b->n_sessions++] = s;
        }
    }
    pthread_mutex_unlock(&cli->lock);
    return s;
}

void sst__tls_client_keep_session(sst_tls_client_t *cli, size_t slot, SSL_SESSION *sess)
{
    sst__tls_backend_t *b = &cli->backends[slot];
    SSL_SESSION *dropped = NULL;

    pthread_mutex_lock(&cli->lock);
    if (b->n_sessions == SST__TLS_SESSIONS) {
        dropped = b->sessions[0];
        memmove(&b->sessions[0], &b->sessions[1], (SST__TLS_SESSIONS - 1) * sizeof b->sessions[0]);
        b->n_sessions--;
    }
    b->sessions[b->n_sessions++] = sess;
    pthread_mutex_unlock(&cli->lock);
    SSL_SESSION_free(dropped);
}
