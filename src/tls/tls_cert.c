/* Certificate files: reading and checking one listen[].tls.certificates entry (PEM parsing, key
 * match, validity, chain order, names for SNI), and the diagnostics every TLS build error goes
 * through, so each names the config file, line, column and key. No SSL_CTX is touched here. */
#include "tls/tls_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "sidestep/error.h"

#define CERT_FILE_MAX   (1024 * 1024) /* a chain is a few KiB; a bundle a few hundred */
#define CERT_CHAIN_MAX  16
#define CERT_NAME_MAX   253
#define CERT_NAMES_MAX  1024
#define SECONDS_PER_DAY 86400

/* --- diagnostics ------------------------------------------------------------------------- */

__attribute__((format(printf, 5, 0))) static void tls_vdiag(sst_diag_t *d, const sst_config_t *cfg,
                                                            sst_cfg_pos_t pos, const char *key,
                                                            const char *fmt, va_list ap)
{
    memset(d, 0, sizeof *d);
    snprintf(d->file, sizeof d->file, "%s", cfg->source != NULL ? cfg->source : "");
    d->line = pos.line;
    d->column = pos.column;
    snprintf(d->key, sizeof d->key, "%s", key);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
}

int sst__tls_fail(sst_diag_t *diag, const sst_config_t *cfg, sst_cfg_pos_t pos, const char *key,
                  const char *msg_fmt, ...)
{
    va_list ap;
    sst_diag_t scratch;

    va_start(ap, msg_fmt);
    tls_vdiag(diag != NULL ? diag : &scratch, cfg, pos, key, msg_fmt, ap);
    va_end(ap);
    return SST_EINVAL;
}

int sst__tls_warn(sst_diag_list_t *warnings, const sst_config_t *cfg, sst_cfg_pos_t pos,
                  const char *key, const char *msg_fmt, ...)
{
    va_list ap;
    sst_diag_t d;

    if (warnings == NULL)
        return 0;
    va_start(ap, msg_fmt);
    tls_vdiag(&d, cfg, pos, key, msg_fmt, ap);
    va_end(ap);
    return sst_diag_list_add(warnings, &d);
}

const char *sst__tls_err_text(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (reason == NULL && e != 0) {
        ERR_error_string_n(e, buf, size);
    } else {
        snprintf(buf, size, "%s", reason != NULL ? reason : "unknown error");
    }
    ERR_clear_error();
    return buf;
}

int sst__tls_read_file(const char *path, size_t max, char **out, size_t *len, char *why,
                       size_t why_size)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int rc = 0, err;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        err = errno;
        (void)strerror_r(err, why, why_size);
        return err == ENOENT ? SST_ENOENT : err == EACCES ? SST_EACCES : SST_EIO;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "not a regular file");
        rc = SST_EIO;
    } else if ((uint64_t)st.st_size > max) {
        snprintf(why, why_size, "larger than %zu KiB: not a PEM file", max / 1024);
        rc = SST_E2BIG;
    } else if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(why, why_size, "out of memory");
        rc = SST_ENOMEM;
    } else {
        n = fread(buf, 1, (size_t)st.st_size, f);
        if (ferror(f)) {
            (void)strerror_r(errno, why, why_size);
            rc = SST_EIO;
        }
        buf[n] = '\0';
    }
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

const char *sst__tls_fmt_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "@%lld", (long long)t);
    return buf;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (timegm is not POSIX). */
static int64_t cert_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

bool sst__tls_asn1_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = cert_days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
                                (unsigned)tm.tm_mday) *
               SECONDS_PER_DAY +
           tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return true;
}

/* --- PEM --------------------------------------------------------------------------------- */

int sst__tls_pem_certs(const char *data, size_t len, STACK_OF(X509) * *out, char *why,
                       size_t why_size)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(data, (int)len) : NULL;
    char err[160];

    if (sk == NULL || bio == NULL) {
        sk_X509_free(sk);
        BIO_free(bio);
        snprintf(why, why_size, "out of memory");
        return SST_ENOMEM;
    }
    ERR_clear_error();
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        if (sk_X509_push(sk, x) == 0) {
            X509_free(x);
            sk_X509_pop_free(sk, X509_free);
            BIO_free(bio);
            snprintf(why, why_size, "out of memory");
            return SST_ENOMEM;
        }
    }
    unsigned long e = ERR_peek_last_error();
    BIO_free(bio);
    /* The loop ends at the end of the text (no further BEGIN line) or at a broken block */
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        snprintf(why, why_size, "invalid PEM certificate: %s", sst__tls_err_text(err, sizeof err));
        sk_X509_pop_free(sk, X509_free);
        return SST_EINVAL;
    }
    ERR_clear_error();
    if (sk_X509_num(sk) == 0) {
        if (len > 0 && (unsigned char)data[0] == 0x30)
            snprintf(why, why_size,
                     "this looks like a DER (binary) certificate; convert it to PEM with "
                     "openssl x509 -inform der -in FILE -out FILE.pem");
        else
            snprintf(why, why_size,
                     "no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)");
        sk_X509_free(sk);
        return SST_EINVAL;
    }
    *out = sk;
    return 0;
}

/* OpenSSL would prompt on the terminal for a passphrase without this. */
static int cert_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    return -1;
}

static int cert_read_key(const char *data, size_t len, EVP_PKEY **out, char *why, size_t why_size)
{
    BIO *bio;
    char err[160];

    if (strstr(data, "PRIVATE KEY-----") == NULL) {
        snprintf(why, why_size,
                 "no PEM private key in the file (expected -----BEGIN PRIVATE KEY-----)");
        return SST_EINVAL;
    }
    if (strstr(data, "ENCRYPTED") != NULL) {
        snprintf(why, why_size,
                 "the key is encrypted; sidestep reads unencrypted keys only (decrypt it with "
                 "openssl pkey -in KEY -out KEY.plain, and let only sidestep's user read it)");
        return SST_EINVAL;
    }
    if (len > INT32_MAX || (bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
        snprintf(why, why_size, "out of memory");
        return SST_ENOMEM;
    }
    ERR_clear_error();
    *out = PEM_read_bio_PrivateKey(bio, NULL, cert_no_passphrase, NULL);
    BIO_free(bio);
    if (*out != NULL) {
        ERR_clear_error();
        return 0;
    }
    unsigned long e = ERR_peek_last_error();
    if (e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        ERR_clear_error();
        snprintf(why, why_size,
                 "no PEM private key in the file (expected -----BEGIN PRIVATE KEY-----)");
    } else {
        snprintf(why, why_size, "invalid private key: %s", sst__tls_err_text(err, sizeof err));
    }
    return SST_EINVAL;
}

/* --- names ------------------------------------------------------------------------------- */

/* A DNS name as SNI can match it: ASCII letters, digits, '-', '.', '_', and a leading "*." for a
 * wildcard. Lower-cased copy, or NULL (skipped) for anything else, such as an IDN in U-labels. */
static char *cert_dns_name(const unsigned char *s, size_t len)
{
    char *out;

    if (len == 0 || len > CERT_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
                  (ch == '*' && i == 0 && len > 2 && s[1] == '.');
        if (!ok)
            return NULL;
    }
    out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    out[len] = '\0';
    return out;
}

static int cert_add_name(sst__tls_cert_t *c, char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < c->info.n_names; i++) {
        if (strcmp(c->names[i], name) == 0) {
            free(name);
            return 0;
        }
    }
    if (c->info.n_names == CERT_NAMES_MAX) {
        free(name);
        return 0;
    }
    char **grown = realloc(c->names, (c->info.n_names + 1) * sizeof *grown);
    if (grown == NULL) {
        free(name);
        return SST_ENOMEM;
    }
    c->names = grown;
    c->names[c->info.n_names++] = name;
    return 0;
}

/* subjectAltName DNS names; without any, the subject CN (RFC 6125 section 6.4.4). */
static int cert_names(sst__tls_cert_t *c)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(c->leaf, NID_subject_alt_name, NULL, NULL);
    int rc = 0;

    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && rc == 0; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS)
            continue;
        const ASN1_STRING *s = gn->d.dNSName;
        rc = cert_add_name(c,
                           cert_dns_name(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
    if (rc != 0 || c->info.n_names > 0)
        return rc;
    const X509_NAME *subj = X509_get_subject_name(c->leaf);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx < 0)
        return 0;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
    if (n > 0)
        rc = cert_add_name(c, cert_dns_name(utf8, (size_t)n));
    OPENSSL_free(utf8);
    return rc;
}

static char *cert_subject(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *p;
    long n;

    if (b == NULL)
        return NULL;
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(b, &p);
        out = malloc((size_t)(n > 0 ? n : 0) + 1);
        if (out != NULL) {
            if (n > 0)
                memcpy(out, p, (size_t)n);
            out[n > 0 ? n : 0] = '\0';
        }
    }
    BIO_free(b);
    return out;
}

static void cert_key_type(EVP_PKEY *k, char *buf, size_t size)
{
    static const struct {
        const char *openssl, *nist;
    } curves[] = {{"prime256v1", "P-256"}, {"secp384r1", "P-384"}, {"secp521r1", "P-521"}};
    char group[64] = "";
    size_t glen = 0;

    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
        snprintf(buf, size, "RSA %d", EVP_PKEY_get_bits(k));
        return;
    case EVP_PKEY_RSA_PSS:
        snprintf(buf, size, "RSA-PSS %d", EVP_PKEY_get_bits(k));
        return;
    case EVP_PKEY_EC:
        (void)EVP_PKEY_get_group_name(k, group, sizeof group, &glen);
        for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++)
            if (strcmp(group, curves[i].openssl) == 0)
                snprintf(group, sizeof group, "%s", curves[i].nist);
        snprintf(buf, size, "ECDSA %s", group[0] != '\0' ? group : "?");
        return;
    case EVP_PKEY_ED25519:
        snprintf(buf, size, "Ed25519");
        return;
    case EVP_PKEY_ED448:
        snprintf(buf, size, "Ed448");
        return;
    default:
        snprintf(buf, size, "%s", OBJ_nid2sn(EVP_PKEY_get_base_id(k)));
        return;
    }
}

/* --- one certificates[] entry ------------------------------------------------------------ */

typedef struct cert_where_s {
    const sst_config_t *cfg;
    const sst_tls_cert_cfg_t *cc;
    char cert_key[96]; /* "listen[0].tls.certificates[1].cert" */
    char key_key[96];
    sst_diag_t *diag;
} cert_where_t;

/* Checks that each certificate after the leaf issued the one before it, and is valid now. */
static int cert_check_chain(const cert_where_t *w, sst__tls_cert_t *c, int64_t now)
{
    char a[96], b[96], when[40];
    int n = sk_X509_num(c->chain);

    for (int i = 0; i < n; i++) {
        X509 *issuer = sk_X509_value(c->chain, i);
        X509 *subject = i == 0 ? c->leaf : sk_X509_value(c->chain, i - 1);
        int64_t nb = 0, na = 0;
        if (X509_check_issued(issuer, subject) != X509_V_OK || X509_check_ca(issuer) < 1 ||
            X509_verify(subject, X509_get0_pubkey(issuer)) != 1) {
            ERR_clear_error();
            X509_NAME_oneline(X509_get_subject_name(subject), a, sizeof a);
            X509_NAME_oneline(X509_get_subject_name(issuer), b, sizeof b);
            return sst__tls_fail(w->diag, w->cfg, w->cc->cert_pos, w->cert_key,
                                 "the chain in %s does not build: certificate %d (%s) is not "
                                 "issued by certificate %d (%s); list the leaf first, then each "
                                 "issuer in order",
                                 c->path, i + 1, a, i + 2, b);
        }
        if (!sst__tls_asn1_unix(X509_get0_notBefore(issuer), &nb) ||
            !sst__tls_asn1_unix(X509_get0_notAfter(issuer), &na) || now < nb || now > na) {
            X509_NAME_oneline(X509_get_subject_name(issuer), b, sizeof b);
            return sst__tls_fail(w->diag, w->cfg, w->cc->cert_pos, w->cert_key,
                                 "the chain in %s does not build: certificate %d (%s) %s %s",
                                 c->path, i + 2, b, now < nb ? "is valid only from" : "expired on",
                                 sst__tls_fmt_time(now < nb ? nb : na, when, sizeof when));
        }
    }
    return 0;
}

static int cert_check_leaf(const cert_where_t *w, sst__tls_cert_t *c, int64_t now,
                           sst_diag_list_t *warnings)
{
    char when[40];
    const sst_cfg_pos_t pos = w->cc->cert_pos;

    if (!sst__tls_asn1_unix(X509_get0_notBefore(c->leaf), &c->info.not_before) ||
        !sst__tls_asn1_unix(X509_get0_notAfter(c->leaf), &c->info.not_after))
        return sst__tls_fail(w->diag, w->cfg, pos, w->cert_key,
                             "%s has a validity date OpenSSL cannot read", c->path);
    if (now < c->info.not_before)
        return sst__tls_fail(w->diag, w->cfg, pos, w->cert_key,
                             "%s is not valid yet: valid from %s", c->path,
                             sst__tls_fmt_time(c->info.not_before, when, sizeof when));
    if (now > c->info.not_after)
        return sst__tls_fail(w->diag, w->cfg, pos, w->cert_key, "%s expired on %s", c->path,
                             sst__tls_fmt_time(c->info.not_after, when, sizeof when));
    if (X509_check_purpose(c->leaf, X509_PURPOSE_SSL_SERVER, 0) != 1) {
        ERR_clear_error();
        return sst__tls_fail(w->diag, w->cfg, pos, w->cert_key,
                             "%s is not a TLS server certificate (its keyUsage, "
                             "extendedKeyUsage or netscape type excludes serverAuth)",
                             c->path);
    }
    if (c->info.not_after - now < (int64_t)SST__TLS_WARN_DAYS * SECONDS_PER_DAY &&
        sst__tls_warn(warnings, w->cfg, pos, w->cert_key, "%s expires on %s, in %lld day%s",
                      c->path, sst__tls_fmt_time(c->info.not_after, when, sizeof when),
                      (long long)((c->info.not_after - now) / SECONDS_PER_DAY),
                      (c->info.not_after - now) / SECONDS_PER_DAY == 1 ? "" : "s") != 0)
        return SST_ENOMEM;
    return 0;
}

static int cert_parse_files(const cert_where_t *w, sst__tls_cert_t *c)
{
    char why[256], *data = NULL;
    size_t len = 0;
    STACK_OF(X509) *all = NULL;
    int rc;

    memcpy(why, "cannot read: ", 14);
    rc = sst__tls_read_file(w->cc->cert, CERT_FILE_MAX, &data, &len, why + 13, sizeof why - 13);
    if (rc == 0) {
        rc = sst__tls_pem_certs(data, len, &all, why, sizeof why);
        free(data);
        data = NULL;
        if (rc == 0 && sk_X509_num(all) > CERT_CHAIN_MAX + 1) {
            snprintf(why, sizeof why, "more than %d certificates in the file", CERT_CHAIN_MAX + 1);
            rc = SST_EINVAL;
        }
    }
    if (rc != 0) {
        sk_X509_pop_free(all, X509_free);
        return rc == SST_ENOMEM ? rc
                                : sst__tls_fail(w->diag, w->cfg, w->cc->cert_pos, w->cert_key,
                                                "%s: %s", w->cc->cert, why);
    }
    c->leaf = sk_X509_shift(all);
    c->chain = all;
    rc = sst__tls_read_file(w->cc->key, CERT_FILE_MAX, &data, &len, why, sizeof why);
    if (rc != 0)
        return rc == SST_ENOMEM ? rc
                                : sst__tls_fail(w->diag, w->cfg, w->cc->key_pos, w->key_key,
                                                "%s: cannot read: %s", w->cc->key, why);
    rc = cert_read_key(data, len, &c->key, why, sizeof why);
    OPENSSL_cleanse(data, len);
    free(data);
    if (rc != 0)
        return rc == SST_ENOMEM ? rc
                                : sst__tls_fail(w->diag, w->cfg, w->cc->key_pos, w->key_key,
                                                "%s: %s", w->cc->key, why);
    if (X509_check_private_key(c->leaf, c->key) != 1) {
        ERR_clear_error();
        return sst__tls_fail(w->diag, w->cfg, w->cc->key_pos, w->key_key,
                             "%s does not match the certificate in %s (the key of another "
                             "certificate?)",
                             w->cc->key, w->cc->cert);
    }
    return 0;
}

int sst__tls_cert_load(const sst_config_t *cfg, size_t listener, size_t i, int64_t now,
                       sst__tls_cert_t *out, sst_diag_t *diag, sst_diag_list_t *warnings)
{
    cert_where_t w = {.cfg = cfg, .cc = &cfg->listeners[listener].tls.certs[i], .diag = diag};
    sst__tls_cert_t *c = out;
    int rc;

    memset(c, 0, sizeof *c);
    snprintf(w.cert_key, sizeof w.cert_key, "listen[%zu].tls.certificates[%zu].cert", listener, i);
    snprintf(w.key_key, sizeof w.key_key, "listen[%zu].tls.certificates[%zu].key", listener, i);
    c->path = strdup(w.cc->cert);
    if (c->path == NULL)
        return SST_ENOMEM;
    if ((rc = cert_parse_files(&w, c)) != 0 || (rc = cert_check_leaf(&w, c, now, warnings)) != 0 ||
        (rc = cert_check_chain(&w, c, now)) != 0)
        goto fail;
    if ((rc = cert_names(c)) != 0 || (c->subject = cert_subject(c->leaf)) == NULL) {
        rc = SST_ENOMEM;
        goto fail;
    }
    if (c->info.n_names == 0 &&
        sst__tls_warn(warnings, cfg, w.cc->cert_pos, w.cert_key,
                      "%s names no DNS host (no subjectAltName DNS entry, no usable CN): SNI "
                      "never selects it, so it serves only as the default certificate",
                      c->path) != 0) {
        rc = SST_ENOMEM;
        goto fail;
    }
    c->key_id = EVP_PKEY_get_base_id(c->key);
    cert_key_type(c->key, c->key_type, sizeof c->key_type);
    c->info.index = i;
    c->info.path = c->path;
    c->info.names = (const char *const *)c->names;
    c->info.subject = c->subject;
    c->info.key_type = c->key_type;
    return 0;
fail:
    sst__tls_cert_clear(c);
    return rc;
}

void sst__tls_cert_clear(sst__tls_cert_t *c)
{
    X509_free(c->leaf);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    for (size_t i = 0; i < c->info.n_names; i++)
        free(c->names[i]);
    free(c->names);
    free(c->subject);
    free(c->path);
    memset(c, 0, sizeof *c);
}
