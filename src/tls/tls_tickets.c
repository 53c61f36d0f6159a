/* Session-ticket keys: an in-memory store that makes and rotates its own keys, or one read from a
 * ticket_key_file shared by a fleet, and the OpenSSL ticket callback (AES-256-CBC + HMAC-SHA256,
 * RFC 5077 section 4) that every worker thread calls. The store is the only state shared across
 * workers on the handshake path: one mutex, held for a copy of 80 bytes. */
#include "tls/tls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sidestep/error.h"

#define KEY_NAME_LEN 16
#define KEY_HMAC_LEN 32
#define KEY_AES_LEN  32
#define KEY_FILE_LEN (KEY_NAME_LEN + KEY_HMAC_LEN + KEY_AES_LEN) /* nginx's 80-byte layout */
#define KEY_FILE_MAX (64 * 1024)

typedef struct tickets_key_s {
    unsigned char name[KEY_NAME_LEN];
    unsigned char hmac[KEY_HMAC_LEN];
    unsigned char aes[KEY_AES_LEN];
} tickets_key_t;

struct sst_tls_tickets_s {
    atomic_uint_fast32_t refcount;
    pthread_mutex_t lock;
    EVP_CIPHER *aes; /* fetched once: an implicit fetch per ticket would cost a lookup */
    bool from_file;
    uint64_t rotate_ms;
    uint64_t next_rotation_ms;
    sst_tls_clock_cb clock;
    void *clock_arg;
    tickets_key_t keys[SST_TLS_TICKET_FILE_MAX]; /* keys[0] encrypts */
    size_t n_keys;
};

static uint64_t tickets_monotonic_ms(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int tickets_alloc(sst_tls_tickets_t **out)
{
    sst_tls_tickets_t *t = calloc(1, sizeof *t);

    if (t == NULL)
        return SST_ENOMEM;
    t->aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (t->aes == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
        EVP_CIPHER_free(t->aes);
        free(t);
        ERR_clear_error();
        return SST_ENOMEM;
    }
    atomic_init(&t->refcount, 1);
    *out = t;
    return 0;
}

/* With the lock held: a fresh key in front, the oldest beyond what is kept dropped. */
static int tickets_push_random(sst_tls_tickets_t *t)
{
    tickets_key_t k;

    if (RAND_priv_bytes((unsigned char *)&k, sizeof k) != 1) {
        ERR_clear_error();
        return SST_EIO;
    }
    size_t keep = t->n_keys < SST_TLS_TICKET_KEYS_KEPT ? t->n_keys : SST_TLS_TICKET_KEYS_KEPT - 1;
    memmove(&t->keys[1], &t->keys[0], keep * sizeof t->keys[0]);
    if (t->n_keys > keep + 1)
        OPENSSL_cleanse(&t->keys[keep + 1], (t->n_keys - keep - 1) * sizeof t->keys[0]);
    t->keys[0] = k;
    t->n_keys = keep + 1;
    OPENSSL_cleanse(&k, sizeof k);
    return 0;
}

int sst_tls_tickets_new(const sst_tls_tickets_opts_t *opts, sst_tls_tickets_t **out)
{
    sst_tls_tickets_t *t;
    int rc = tickets_alloc(&t);

    if (rc != 0)
        return rc;
    t->rotate_ms =
        opts != NULL && opts->rotate_ms != 0 ? opts->rotate_ms : SST_TLS_TICKET_ROTATE_MS;
    t->clock = opts != NULL && opts->clock != NULL ? opts->clock : tickets_monotonic_ms;
    t->clock_arg = opts != NULL ? opts->clock_arg : NULL;
    t->next_rotation_ms = t->clock(t->clock_arg) + t->rotate_ms;
    if ((rc = tickets_push_random(t)) != 0) {
        sst_tls_tickets_unref(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Strict base64 (RFC 4648 alphabet, '=' padding only at the end) of one line. */
static int tickets_base64(const char *s, size_t len, unsigned char *out, size_t cap, size_t *n)
{
    unsigned acc = 0, bits = 0, pad = 0;
    size_t o = 0;

    if (len == 0 || len % 4 != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        unsigned v;
        if (ch == '=') {
            if (i + 2 < len)
                return SST_EINVAL;
            pad++;
            continue;
        }
        if (pad > 0)
            return SST_EINVAL;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+')
            v = 62;
        else if (ch == '/')
            v = 63;
        else
            return SST_EINVAL;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return SST_E2BIG;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *n = o;
    return 0;
}

static int tickets_parse(sst_tls_tickets_t *t, const char *data, size_t len, char *why,
                         size_t why_size)
{
    size_t pos = 0, line = 0;

    while (pos < len) {
        const char *eol = memchr(data + pos, '\n', len - pos);
        size_t end = eol != NULL ? (size_t)(eol - data) : len, a = pos, b = end;
        unsigned char raw[KEY_FILE_LEN + 3];
        size_t n = 0;

        line++;
        pos = end + 1;
        while (a < b && (data[a] == ' ' || data[a] == '\t'))
            a++;
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r'))
            b--;
        if (a == b || data[a] == '#')
            continue;
        if (t->n_keys == SST_TLS_TICKET_FILE_MAX) {
            snprintf(why, why_size, "line %zu: more than %d keys", line, SST_TLS_TICKET_FILE_MAX);
            return SST_EINVAL;
        }
        int rc = tickets_base64(data + a, b - a, raw, sizeof raw, &n);
        if (rc != 0 || n != KEY_FILE_LEN) {
            snprintf(why, why_size,
                     "line %zu: expected the base64 text of %d random bytes (make one with "
                     "openssl rand 80 | base64 -w0)%s",
                     line, KEY_FILE_LEN, rc == 0 ? ", found another length" : "");
            OPENSSL_cleanse(raw, sizeof raw);
            return SST_EINVAL;
        }
        tickets_key_t *k = &t->keys[t->n_keys];
        memcpy(k->name, raw, KEY_NAME_LEN);
        memcpy(k->hmac, raw + KEY_NAME_LEN, KEY_HMAC_LEN);
        memcpy(k->aes, raw + KEY_NAME_LEN + KEY_HMAC_LEN, KEY_AES_LEN);
        OPENSSL_cleanse(raw, sizeof raw);
        for (size_t j = 0; j < t->n_keys; j++) {
            if (memcmp(t->keys[j].name, k->name, KEY_NAME_LEN) == 0) {
                snprintf(why, why_size,
                         "line %zu: the same key name as key %zu (the first 16 bytes of each key "
                         "must differ)",
                         line, j + 1);
                return SST_EINVAL;
            }
        }
        t->n_keys++;
    }
    if (t->n_keys == 0) {
        snprintf(why, why_size, "no key in the file (one base64 key per line, the newest first)");
        return SST_EINVAL;
    }
    return 0;
}

int sst_tls_tickets_load(const char *path, sst_tls_tickets_t **out, char *why, size_t why_size)
{
    sst_tls_tickets_t *t = NULL;
    char *data = NULL, err[160];
    size_t len = 0;
    int rc;

    rc = sst__tls_read_file(path, KEY_FILE_MAX, &data, &len, err, sizeof err);
    if (rc != 0) {
        snprintf(why, why_size, "cannot read: %s", err);
        return rc;
    }
    if ((rc = tickets_alloc(&t)) == 0) {
        t->from_file = true;
        rc = tickets_parse(t, data, len, why, why_size);
    } else {
        snprintf(why, why_size, "out of memory");
    }
    OPENSSL_cleanse(data, len);
    free(data);
    if (rc != 0) {
        sst_tls_tickets_unref(t);
        return rc;
    }
    *out = t;
    return 0;
}

int sst_tls_tickets_rotate(sst_tls_tickets_t *t)
{
    int rc;

    if (t->from_file)
        return SST_ENOTSUP;
    pthread_mutex_lock(&t->lock);
    rc = tickets_push_random(t);
    if (rc == 0)
        t->next_rotation_ms = t->clock(t->clock_arg) + t->rotate_ms;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

size_t sst_tls_tickets_count(sst_tls_tickets_t *t)
{
    size_t n;

    pthread_mutex_lock(&t->lock);
    n = t->n_keys;
    pthread_mutex_unlock(&t->lock);
    return n;
}

sst_tls_tickets_t *sst_tls_tickets_ref(sst_tls_tickets_t *t)
{
    if (t != NULL)
        atomic_fetch_add_explicit(&t->refcount, 1, memory_order_relaxed);
    return t;
}

void sst_tls_tickets_unref(sst_tls_tickets_t *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refcount, 1, memory_order_acq_rel) != 1)
        return;
    OPENSSL_cleanse(t->keys, sizeof t->keys);
    EVP_CIPHER_free(t->aes);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

uint64_t sst__tls_tickets_lifetime_s(const sst_tls_tickets_t *t)
{
    /* A ticket is made with the current key, which keeps decrypting for one more interval after
     * the next rotation: it stays usable for at least one interval. */
    uint64_t s = (t->from_file ? SST_TLS_TICKET_ROTATE_MS : t->rotate_ms) / 1000;
    return s > 0 ? s : 1;
}

/* With the lock held: rotations that fell due since the last use. A store left idle for several
 * intervals rotates at most as many times as it keeps keys: older keys are gone by then. */
static void tickets_catch_up(sst_tls_tickets_t *t)
{
    uint64_t now, due;

    if (t->from_file)
        return;
    now = t->clock(t->clock_arg);
    if (now < t->next_rotation_ms)
        return;
    due = (now - t->next_rotation_ms) / t->rotate_ms + 1;
    for (uint64_t i = 0; i < due && i < SST_TLS_TICKET_KEYS_KEPT; i++)
        if (tickets_push_random(t) != 0)
            return; /* keep serving with the keys we have; the next use retries */
    t->next_rotation_ms += due * t->rotate_ms;
}

unsigned sst_tls_tickets_tick(sst_tls_tickets_t *t)
{
    unsigned made = 0;

    if (t == NULL || t->from_file)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t before = t->next_rotation_ms;
    tickets_catch_up(t);
    if (t->next_rotation_ms != before) {
        uint64_t due = (t->next_rotation_ms - before) / t->rotate_ms;
        made = due < SST_TLS_TICKET_KEYS_KEPT ? (unsigned)due : SST_TLS_TICKET_KEYS_KEPT;
    }
    pthread_mutex_unlock(&t->lock);
    return made;
}

/* Copies the key to use: the encryption key (enc), or the key named `name`; *current tells
 * whether that is the encryption key. False when no key has that name. */
static bool tickets_find(sst_tls_tickets_t *t, bool enc, const unsigned char *name,
                         tickets_key_t *out, bool *current)
{
    bool found = false;

    pthread_mutex_lock(&t->lock);
    tickets_catch_up(t);
    for (size_t i = 0; i < t->n_keys && !found; i++) {
        if (enc || memcmp(t->keys[i].name, name, KEY_NAME_LEN) == 0) {
            *out = t->keys[i];
            *current = i == 0;
            found = true;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

int sst__tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                       EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    sst_tls_server_t *srv = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sst__tls_ctx_index());
    sst_tls_tickets_t *t = srv != NULL ? srv->tickets : NULL;
    tickets_key_t k;
    bool current = false;
    OSSL_PARAM params[3];
    int rc;

    if (t == NULL)
        return 0; /* no ticket issued; a presented one is ignored (full handshake) */
    if (!tickets_find(t, enc != 0, key_name, &k, &current))
        return 0; /* unknown key name: rotated out, or another fleet's key */
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (enc) {
        memcpy(key_name, k.name, KEY_NAME_LEN);
        rc = RAND_bytes(iv, EVP_CIPHER_get_iv_length(t->aes)) == 1 &&
             EVP_EncryptInit_ex(cctx, t->aes, NULL, k.aes, iv) == 1 &&
             EVP_MAC_CTX_set_params(hctx, params) == 1;
    } else {
        rc = EVP_DecryptInit_ex(cctx, t->aes, NULL, k.aes, iv) == 1 &&
             EVP_MAC_CTX_set_params(hctx, params) == 1;
    }
    OPENSSL_cleanse(&k, sizeof k);
    if (!rc)
        return -1;
    /* 2: the ticket decrypts with an older key: resume, and send a ticket under the new one */
    return enc || current ? 1 : 2;
}
