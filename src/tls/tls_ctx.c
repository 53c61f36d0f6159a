/* Server contexts for HTTPS listeners and the per-config set: certificates grouped by name into
 * SSL_CTXs, SNI selection in the ClientHello callback, ALPN, the protocol and cipher policy
 * (Mozilla's profiles), and session tickets. Runs when a config is checked or applied, never on
 * the request path; the callbacks it installs run on worker threads and only read. */
#include "tls/tls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "sidestep/error.h"

/* Mozilla Server Side TLS, intermediate profile (server-side-tls-conf-5.0.json): TLS 1.2 suites
 * with forward secrecy and AEAD only; clients choose the order ("server_preferred_order":
 * false), since every suite listed is strong and a phone may prefer ChaCha20. */
static const char tls_intermediate[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                       "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                       "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";
/* TLS 1.3 suites, the same in both profiles. */
static const char tls_suites13[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
/* Key exchange groups, as Mozilla lists them (X25519, prime256v1, secp384r1). */
static const char tls_groups[] = "X25519:P-256:P-384";

/* --- ex_data slots ----------------------------------------------------------------------- */

static pthread_once_t tls_index_once = PTHREAD_ONCE_INIT;
static int tls_ctx_idx = -1, tls_conn_idx = -1;

static void tls_index_init(void)
{
    tls_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    tls_conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int sst__tls_ctx_index(void)
{
    pthread_once(&tls_index_once, tls_index_init);
    return tls_ctx_idx;
}

int sst__tls_conn_index(void)
{
    pthread_once(&tls_index_once, tls_index_init);
    return tls_conn_idx;
}

/* --- SNI and ALPN callbacks (worker threads, read-only) ---------------------------------- */

static int tls_name_cmp(const void *a, const void *b)
{
    const sst__tls_name_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int tls_name_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const sst__tls_name_t *)elem)->name);
}

/* The group for a server name the client sent (lower case): an exact name, then a wildcard
 * covering exactly one more label, else the default. */
static size_t tls_pick(const sst_tls_server_t *srv, const char *name)
{
    const sst__tls_name_t *hit;
    const char *dot;

    hit = bsearch(name, srv->exact, srv->n_exact, sizeof *hit, tls_name_key_cmp);
    if (hit != NULL)
        return hit->group;
    dot = strchr(name, '.');
    if (dot != NULL && dot != name && dot[1] != '\0') {
        hit = bsearch(dot + 1, srv->wild, srv->n_wild, sizeof *hit, tls_name_key_cmp);
        if (hit != NULL)
            return hit->group;
    }
    return srv->certs[0].group;
}

/* The host_name of a server_name extension (RFC 6066 section 3), lower-cased, one trailing dot
 * dropped; false when absent or malformed (OpenSSL then rejects the extension itself). */
static bool tls_sni_name(const unsigned char *p, size_t len, char *out, size_t size)
{
    size_t list, n;

    if (len < 5)
        return false;
    list = ((size_t)p[0] << 8) | p[1];
    n = ((size_t)p[3] << 8) | p[4];
    if (list + 2 != len || p[2] != 0 /* host_name */ || n == 0 || n + 3 > list || n >= size)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[5 + i];
        if (ch <= 0x20 || ch >= 0x7f)
            return false;
        out[i] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
    }
    if (n > 1 && out[n - 1] == '.')
        n--;
    out[n] = '\0';
    return true;
}

/* Before version and cipher negotiation: switch to the context of the certificate group the
 * server name selects, so its certificates (and policy) serve this handshake. */
static int tls_on_client_hello(SSL *ssl, int *al, void *arg)
{
    sst_tls_server_t *srv = arg;
    const unsigned char *p;
    size_t len, g = srv->certs[0].group;
    char name[256];

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1 &&
        tls_sni_name(p, len, name, sizeof name))
        g = tls_pick(srv, name);
    if (srv->groups[g].ctx != SSL_get_SSL_CTX(ssl) &&
        SSL_set_SSL_CTX(ssl, srv->groups[g].ctx) == NULL) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* http/1.1 when offered. A client offering only h2 (or something else) gets no ALPN answer and
 * the handshake goes on: RFC 7301 section 3.2 leaves the choice to fail to the client, and
 * curl and browsers then speak HTTP/1.1. */
static int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned i = 0; i < inlen;) {
        unsigned len = in[i];
        if (len == 0 || i + 1 + len > inlen)
            break;
        if (len == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* --- building a server ------------------------------------------------------------------- */

static bool tls_same_names(const sst__tls_cert_t *a, const sst__tls_cert_t *b)
{
    if (a->info.n_names != b->info.n_names)
        return false;
    for (size_t i = 0; i < a->info.n_names; i++) {
        bool found = false;
        for (size_t j = 0; j < b->info.n_names && !found; j++)
            found = strcmp(a->names[i], b->names[j]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static int tls_group_certs(const sst_config_t *cfg, size_t listener, sst_tls_server_t *srv,
                           sst_diag_t *diag)
{
    char key[96];

    srv->groups = calloc(srv->n_certs, sizeof *srv->groups);
    if (srv->groups == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < srv->n_certs; i++) {
        sst__tls_cert_t *c = &srv->certs[i];
        size_t g = srv->n_groups;
        for (size_t j = 0; j < i; j++) {
            if (!tls_same_names(c, &srv->certs[j]))
                continue;
            if (srv->certs[j].key_id == c->key_id) {
                snprintf(key, sizeof key, "listen[%zu].tls.certificates[%zu].cert", listener, i);
                return sst__tls_fail(diag, cfg, cfg->listeners[listener].tls.certs[i].cert_pos, key,
                                     "%s has the same names and key type (%s) as "
                                     "certificates[%zu]: it would never be used",
                                     c->path, c->key_type, j);
            }
            g = srv->certs[j].group;
        }
        c->group = g;
        if (g == srv->n_groups)
            srv->groups[srv->n_groups++].first_cert = i;
    }
    return 0;
}

static int tls_name_tables(sst_tls_server_t *srv)
{
    size_t total = 0;

    for (size_t i = 0; i < srv->n_certs; i++)
        total += srv->certs[i].info.n_names;
    srv->exact = calloc(total + 1, sizeof *srv->exact);
    srv->wild = calloc(total + 1, sizeof *srv->wild);
    if (srv->exact == NULL || srv->wild == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < srv->n_certs; i++) {
        const sst__tls_cert_t *c = &srv->certs[i];
        for (size_t k = 0; k < c->info.n_names; k++) {
            const char *n = c->names[k];
            sst__tls_name_t e = {n, c->group, i};
            if (n[0] == '*') {
                e.name = n + 2; /* "*.example.com" is looked up as "example.com" */
                srv->wild[srv->n_wild++] = e;
            } else {
                srv->exact[srv->n_exact++] = e;
            }
        }
    }
    /* Sorted for bsearch; of equal names only the first configured stays */
    sst__tls_name_t *tables[2] = {srv->exact, srv->wild};
    size_t *counts[2] = {&srv->n_exact, &srv->n_wild};
    for (int t = 0; t < 2; t++) {
        size_t n = *counts[t], o = 0;
        qsort(tables[t], n, sizeof *tables[t], tls_name_cmp);
        for (size_t i = 0; i < n; i++)
            if (o == 0 || strcmp(tables[t][o - 1].name, tables[t][i].name) != 0)
                tables[t][o++] = tables[t][i];
        *counts[t] = o;
    }
    return 0;
}

/* A custom cipher string: OpenSSL must accept it, and no suite it selects may lack encryption
 * or authentication (a string such as "ALL:eNULL" would). */
static int tls_check_ciphers(const sst_config_t *cfg, size_t listener, SSL_CTX *ctx,
                             sst_diag_t *diag)
{
    const sst_tls_listen_cfg_t *t = &cfg->listeners[listener].tls;
    STACK_OF(SSL_CIPHER) * list;
    char key[64], err[160];

    snprintf(key, sizeof key, "listen[%zu].tls.ciphers", listener);
    if (SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1)
        return sst__tls_fail(diag, cfg, t->ciphers_pos, key,
                             "OpenSSL accepts no TLS 1.2 cipher from \"%s\" (%s); give a Mozilla "
                             "profile (intermediate, modern) or an OpenSSL cipher string",
                             t->ciphers, sst__tls_err_text(err, sizeof err));
    list = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        const char *why = NULL;
        if (SSL_CIPHER_get_cipher_nid(c) == NID_undef)
            why = "encrypts nothing";
        else if (SSL_CIPHER_get_auth_nid(c) == NID_auth_null)
            why = "authenticates no server (anonymous)";
        if (why != NULL)
            return sst__tls_fail(diag, cfg, t->ciphers_pos, key,
                                 "\"%s\" selects %s, which %s: add :!eNULL:!aNULL", t->ciphers,
                                 SSL_CIPHER_get_name(c), why);
    }
    return 0;
}

/* Warns when no TLS 1.2 suite can authenticate with a certificate's key type. */
static int tls_check_key_types(const sst_config_t *cfg, size_t listener, SSL_CTX *ctx,
                               const sst__tls_cert_t *c, sst_diag_list_t *warnings)
{
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    int want = c->key_id == EVP_PKEY_EC ? NID_auth_ecdsa : NID_auth_rsa;
    char key[96];

    if (c->key_id != EVP_PKEY_EC && c->key_id != EVP_PKEY_RSA)
        return 0;
    for (int i = 0; i < sk_SSL_CIPHER_num(list); i++)
        if (SSL_CIPHER_get_auth_nid(sk_SSL_CIPHER_value(list, i)) == want)
            return 0;
    snprintf(key, sizeof key, "listen[%zu].tls.certificates[%zu].cert", listener, c->info.index);
    return sst__tls_warn(warnings, cfg, cfg->listeners[listener].tls.certs[c->info.index].cert_pos,
                         key,
                         "no TLS 1.2 suite in ciphers authenticates with a %s key: TLS 1.2 "
                         "clients fail on this certificate (TLS 1.3 clients are unaffected)",
                         c->key_type);
}

/* Session ID context: a session (ticket) made on one listener never resumes on another. */
static void tls_sid_ctx(const sst_listener_cfg_t *l, unsigned char *out, unsigned *len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    if (EVP_Digest(l->addr.text, strlen(l->addr.text), md, &n, EVP_sha256(), NULL) != 1 || n < 16) {
        ERR_clear_error();
        memset(md, 0, sizeof md); /* still a valid context; only the separation is lost */
    }
    memcpy(out, md, 16);
    *len = 16;
}

static int tls_group_ctx(const sst_config_t *cfg, size_t listener, sst_tls_server_t *srv, size_t g,
                         sst_diag_t *diag, sst_diag_list_t *warnings)
{
    const sst_listener_cfg_t *l = &cfg->listeners[listener];
    const sst_tls_listen_cfg_t *t = &l->tls;
    bool profile = strcmp(t->ciphers, "intermediate") == 0 || strcmp(t->ciphers, "modern") == 0;
    uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    unsigned char sid[16];
    unsigned sid_len;
    char key[96], err[160];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return SST_ENOMEM;
    srv->groups[g].ctx = ctx;
    /* Level 2 whatever the system openssl.cnf says: RSA and DH of 2048 bits or more, no SHA-1
     * certificate signatures */
    SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_min_proto_version(ctx,
                                  t->min_version == SST_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    if (!profile)
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE; /* a written list is taken as an order */
    if (srv->tickets == NULL)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle keep-alive connections hold ~no
                                                        record buffers */
    if (profile) {
        if (SSL_CTX_set_cipher_list(ctx, tls_intermediate) != 1)
            return SST_ENOMEM;
    } else {
        int rc = tls_check_ciphers(cfg, listener, ctx, diag);
        if (rc != 0)
            return rc;
    }
    if (SSL_CTX_set_ciphersuites(ctx, tls_suites13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, tls_groups) != 1 || SSL_CTX_set_dh_auto(ctx, 1) != 1) {
        ERR_clear_error();
        return SST_ENOMEM;
    }
    tls_sid_ctx(l, sid, &sid_len);
    SSL_CTX_set_session_id_context(ctx, sid, sid_len);
    /* Tickets only: a server-side session cache would be per worker and per instance */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (srv->tickets != NULL) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, sst__tls_ticket_cb);
        SSL_CTX_set_timeout(ctx, (long)sst__tls_tickets_lifetime_s(srv->tickets));
    } else {
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, NULL);
    SSL_CTX_set_client_hello_cb(ctx, tls_on_client_hello, srv);
    SSL_CTX_set_ex_data(ctx, sst__tls_ctx_index(), srv);
    for (size_t i = 0; i < srv->n_certs; i++) {
        sst__tls_cert_t *c = &srv->certs[i];
        if (c->group != g)
            continue;
        snprintf(key, sizeof key, "listen[%zu].tls.certificates[%zu].cert", listener, i);
        ERR_clear_error();
        if (SSL_CTX_use_certificate(ctx, c->leaf) != 1 ||
            SSL_CTX_use_PrivateKey(ctx, c->key) != 1 ||
            (sk_X509_num(c->chain) > 0 && SSL_CTX_set1_chain(ctx, c->chain) != 1))
            return sst__tls_fail(diag, cfg, t->certs[i].cert_pos, key,
                                 "OpenSSL refuses %s (%s): security level 2 needs RSA keys of "
                                 "2048 bits or more and no SHA-1 signatures",
                                 c->path, sst__tls_err_text(err, sizeof err));
        if (t->min_version == SST_TLS_1_2 && tls_check_key_types(cfg, listener, ctx, c, warnings))
            return SST_ENOMEM;
    }
    return 0;
}

static int tls_server_tickets(const sst_config_t *cfg, size_t listener, sst_tls_tickets_t *mem,
                              sst_tls_server_t *srv, sst_diag_t *diag)
{
    const sst_tls_listen_cfg_t *t = &cfg->listeners[listener].tls;
    char key[64], why[256];
    int rc;

    if (!t->session_tickets)
        return 0;
    if (t->ticket_key_file == NULL) {
        if (mem != NULL) {
            srv->tickets = sst_tls_tickets_ref(mem);
            return 0;
        }
        return sst_tls_tickets_new(NULL, &srv->tickets);
    }
    rc = sst_tls_tickets_load(t->ticket_key_file, &srv->tickets, why, sizeof why);
    if (rc == SST_ENOMEM)
        return rc;
    if (rc != 0) {
        snprintf(key, sizeof key, "listen[%zu].tls.ticket_key_file", listener);
        return sst__tls_fail(diag, cfg, t->ticket_key_file_pos, key, "%s: %s", t->ticket_key_file,
                             why);
    }
    return 0;
}

static void tls_server_free(sst_tls_server_t *srv)
{
    for (size_t g = 0; srv->groups != NULL && g < srv->n_certs; g++)
        SSL_CTX_free(srv->groups[g].ctx);
    for (size_t i = 0; srv->certs != NULL && i < srv->n_certs; i++)
        sst__tls_cert_clear(&srv->certs[i]);
    free(srv->groups);
    free(srv->certs);
    free(srv->exact);
    free(srv->wild);
    sst_tls_tickets_unref(srv->tickets);
    free(srv);
}

int sst_tls_server_new(const sst_config_t *cfg, size_t listener, sst_tls_tickets_t *tickets,
                       int64_t now, sst_tls_server_t **out, sst_diag_t *diag,
                       sst_diag_list_t *warnings)
{
    sst_tls_server_t *srv;
    const sst_tls_listen_cfg_t *t;
    int rc = 0;

    if (cfg == NULL || out == NULL)
        return SST_EINVAL;
    if (listener >= cfg->n_listeners || !cfg->listeners[listener].tls.enabled ||
        cfg->listeners[listener].tls.n_certs == 0) {
        sst_cfg_pos_t none = {0, 0};
        return sst__tls_fail(diag, cfg, none, "", "no TLS listener at listen[%zu]", listener);
    }
    t = &cfg->listeners[listener].tls;
    if (now == 0)
        now = (int64_t)time(NULL);
    srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return SST_ENOMEM;
    atomic_init(&srv->refcount, 1);
    srv->certs = calloc(t->n_certs, sizeof *srv->certs);
    if (srv->certs == NULL) {
        rc = SST_ENOMEM;
        goto fail;
    }
    srv->n_certs = t->n_certs;
    for (size_t i = 0; i < t->n_certs && rc == 0; i++)
        rc = sst__tls_cert_load(cfg, listener, i, now, &srv->certs[i], diag, warnings);
    if (rc == 0)
        rc = tls_group_certs(cfg, listener, srv, diag);
    if (rc == 0)
        rc = tls_server_tickets(cfg, listener, tickets, srv, diag);
    for (size_t g = 0; g < srv->n_groups && rc == 0; g++)
        rc = tls_group_ctx(cfg, listener, srv, g, diag, warnings);
    if (rc == 0)
        rc = tls_name_tables(srv);
    if (rc != 0)
        goto fail;
    *out = srv;
    return 0;
fail:
    if (rc == SST_ENOMEM)
        (void)sst__tls_fail(diag, cfg, (sst_cfg_pos_t){0, 0}, "", "out of memory");
    ERR_clear_error();
    tls_server_free(srv);
    return rc;
}

size_t sst_tls_server_cert_count(const sst_tls_server_t *s)
{
    return s->n_certs;
}

const sst_tls_cert_info_t *sst_tls_server_cert(const sst_tls_server_t *s, size_t i)
{
    return i < s->n_certs ? &s->certs[i].info : NULL;
}

sst_tls_server_t *sst_tls_server_ref(sst_tls_server_t *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refcount, 1, memory_order_relaxed);
    return s;
}

void sst_tls_server_unref(sst_tls_server_t *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel) == 1)
        tls_server_free(s);
}

/* --- the set of a config ----------------------------------------------------------------- */

struct sst_tls_set_s {
    sst_tls_server_t *servers[SST_MAX_LISTENERS];
    sst_tls_client_t *clients[SST_MAX_REGIONS];
    sst_tls_tickets_t *mem; /* in-memory ticket keys, carried across reloads */
};

int sst_tls_set_build(const sst_config_t *cfg, const sst_tls_set_t *prev,
                      const sst_tls_build_opts_t *opts, sst_tls_set_t **out, sst_diag_t *diag,
                      sst_diag_list_t *warnings)
{
    sst_tls_set_t *set = calloc(1, sizeof *set);
    int64_t now = opts != NULL && opts->now != 0 ? opts->now : (int64_t)time(NULL);
    int rc = 0;

    if (set == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < cfg->n_listeners && rc == 0; i++) {
        const sst_tls_listen_cfg_t *t = &cfg->listeners[i].tls;
        if (!t->enabled)
            continue;
        if (t->session_tickets && t->ticket_key_file == NULL && set->mem == NULL) {
            if (prev != NULL && prev->mem != NULL)
                set->mem = sst_tls_tickets_ref(prev->mem);
            else
                rc = sst_tls_tickets_new(opts != NULL ? opts->tickets : NULL, &set->mem);
        }
        if (rc == 0)
            rc = sst_tls_server_new(cfg, i, set->mem, now, &set->servers[i], diag, warnings);
    }
    for (size_t r = 0; r < cfg->n_regions && rc == 0; r++)
        if (cfg->regions[r].tls.enabled)
            rc = sst_tls_client_new(cfg, r, &set->clients[r], diag);
    if (rc != 0) {
        if (rc == SST_ENOMEM)
            (void)sst__tls_fail(diag, cfg, (sst_cfg_pos_t){0, 0}, "", "out of memory");
        sst_tls_set_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

sst_tls_server_t *sst_tls_set_server(const sst_tls_set_t *set, size_t listener)
{
    return set != NULL && listener < SST_MAX_LISTENERS ? set->servers[listener] : NULL;
}

sst_tls_client_t *sst_tls_set_client(const sst_tls_set_t *set, size_t region)
{
    return set != NULL && region < SST_MAX_REGIONS ? set->clients[region] : NULL;
}

sst_tls_tickets_t *sst_tls_set_tickets(const sst_tls_set_t *set)
{
    return set != NULL ? set->mem : NULL;
}

void sst_tls_set_free(sst_tls_set_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < SST_MAX_LISTENERS; i++)
        sst_tls_server_unref(set->servers[i]);
    for (size_t r = 0; r < SST_MAX_REGIONS; r++)
        sst_tls_client_unref(set->clients[r]);
    sst_tls_tickets_unref(set->mem);
    free(set);
}
