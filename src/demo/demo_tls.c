/* The embedded demo's certificate: a self-signed ECDSA P-256 certificate for localhost and
 * 127.0.0.1, made in-process with OpenSSL so `./run.sh demo` needs nothing beyond the build
 * dependencies (no openssl command). For the demo's HTTPS listener only, never for a config. */
#include "demo/demo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "sidestep/error.h"

#define DEMO_CERT_DAYS 30

/* The extensions sidestep's certificate checks want of a leaf (docs/tls.md): not a CA,
 * signing for TLS servers, the names it serves. */
static int demo_cert_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : SST_ENOMEM;
}

static X509 *demo_cert_make(EVP_PKEY *key)
{
    X509 *x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int ok = x != NULL && RAND_bytes(serial, sizeof(serial)) == 1;

    serial[0] &= 0x7f; /* a positive serial number (RFC 5280 section 4.1.2.2) */
    ok = ok && (bn = BN_bin2bn(serial, sizeof(serial), NULL)) != NULL &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    ok = ok && X509_set_version(x, 2) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), (long)DEMO_CERT_DAYS * 86400) != NULL &&
         X509_set_pubkey(x, key) == 1 &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)"localhost", -1, -1, 0) == 1 &&
         X509_set_issuer_name(x, X509_get_subject_name(x)) == 1;
    ok = ok && demo_cert_ext(x, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
         demo_cert_ext(x, NID_key_usage, "critical,digitalSignature") == 0 &&
         demo_cert_ext(x, NID_ext_key_usage, "serverAuth") == 0 &&
         demo_cert_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1") == 0 &&
         demo_cert_ext(x, NID_subject_key_identifier, "hash") == 0 &&
         X509_sign(x, key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes a new file (never over an existing one), readable by its owner only. */
static int demo_write_pem(const char *path, EVP_PKEY *key, X509 *x)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        int e = -errno;
        close(fd);
        return e;
    }
    int ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1
                         : PEM_write_X509(f, x) == 1;
    if (fclose(f) != 0 || !ok)
        return SST_EIO;
    return 0;
}

int sst_demo_tls_cert(const char *dir, char *cert, size_t cert_size, char *key, size_t key_size,
                      char *err, size_t err_size)
{
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    int rc = 0;

    if (snprintf(cert, cert_size, "%s/demo.pem", dir) >= (int)cert_size ||
        snprintf(key, key_size, "%s/demo.key", dir) >= (int)key_size) {
        snprintf(err, err_size, "%s: path too long", dir);
        return SST_E2BIG;
    }
    pkey = EVP_EC_gen("P-256");
    x = pkey != NULL ? demo_cert_make(pkey) : NULL;
    if (x == NULL) {
        snprintf(err, err_size, "making a self-signed certificate: %s",
                 ERR_reason_error_string(ERR_peek_last_error()) != NULL
                     ? ERR_reason_error_string(ERR_peek_last_error())
                     : "out of memory");
        rc = SST_ENOMEM;
    } else if ((rc = demo_write_pem(key, pkey, NULL)) != 0) {
        snprintf(err, err_size, "%s: %s", key, sst_strerror(rc));
    } else if ((rc = demo_write_pem(cert, NULL, x)) != 0) {
        snprintf(err, err_size, "%s: %s", cert, sst_strerror(rc));
        unlink(key);
    }
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}
