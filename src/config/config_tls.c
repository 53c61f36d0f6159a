/* Config keys for TLS: listen[].tls, listen[].hsts, regions[].tls, and the warnings list. Only
 * paths, names and switches are read here, with where they were written; src/tls opens the
 * certificate files when it builds the contexts, so the config stays free of OpenSSL. */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define TLS_PATH_MAX     4096
#define TLS_CIPHERS_MAX  2048
#define HSTS_MAX_AGE     2147483647ull /* delta-seconds; browsers parse it as a 31-bit number */
#define HSTS_DEFAULT_AGE 63072000ull   /* two years: Mozilla's recommendation */
#define HSTS_PRELOAD_AGE 31536000ull   /* one year: the minimum hstspreload.org accepts */

/* --- warnings ---------------------------------------------------------------------------- */

int sst_diag_list_add(sst_diag_list_t *list, const sst_diag_t *d)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 4;
        sst_diag_t *grown;
        if (cap > SIZE_MAX / sizeof *grown)
            return SST_ENOMEM;
        grown = realloc(list->items, cap * sizeof *grown);
        if (grown == NULL)
            return SST_ENOMEM;
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->n++] = *d;
    return 0;
}

void sst_diag_list_free(sst_diag_list_t *list)
{
    if (list == NULL)
        return;
    free(list->items);
    list->items = NULL;
    list->n = list->cap = 0;
}

int sst__cfg_warn(sst__cfg_ctx_t *c, const yaml_node_t *at, const char *fmt, ...)
{
    sst_diag_t d;
    va_list ap;

    memset(&d, 0, sizeof d);
    memcpy(d.file, c->diag->file, sizeof d.file);
    if (at != NULL) {
        d.line = (unsigned)at->start_mark.line + 1;
        d.column = (unsigned)at->start_mark.column + 1;
    }
    memcpy(d.key, c->path, c->path_len < sizeof d.key ? c->path_len : sizeof d.key - 1);
    va_start(ap, fmt);
    vsnprintf(d.msg, sizeof d.msg, fmt, ap);
    va_end(ap);
    if (sst_diag_list_add(&c->cfg->warnings, &d) != 0)
        return sst__cfg_nomem(c);
    return 0;
}

/* --- helpers ----------------------------------------------------------------------------- */

static sst_cfg_pos_t tls_pos(const yaml_node_t *n)
{
    sst_cfg_pos_t p = {(unsigned)n->start_mark.line + 1, (unsigned)n->start_mark.column + 1};
    return p;
}

/* A file path under key `key` of `map`, copied with its position; absent keys leave *out. */
static int tls_path(sst__cfg_ctx_t *c, const yaml_node_t *map, const char *key, char **out,
                    sst_cfg_pos_t *pos)
{
    const yaml_node_t *v = sst__cfg_get(c, map, key);
    size_t mark;

    if (v == NULL)
        return 0;
    mark = sst__cfg_push_key(c, key);
    if (sst__cfg_string(c, v, TLS_PATH_MAX, false, out) != 0)
        return SST_EINVAL;
    *pos = tls_pos(v);
    sst__cfg_pop(c, mark);
    return 0;
}

static int tls_bool(sst__cfg_ctx_t *c, const yaml_node_t *map, const char *key, bool *out)
{
    const yaml_node_t *v = sst__cfg_get(c, map, key);
    size_t mark;

    if (v == NULL)
        return 0;
    mark = sst__cfg_push_key(c, key);
    if (sst__cfg_bool(c, v, out) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, mark);
    return 0;
}

/* --- listen[].tls ------------------------------------------------------------------------ */

static int tls_certificates(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_tls_listen_cfg_t *t)
{
    static const char *const keys[] = {"cert", "key"};
    size_t count;

    if (sst__cfg_seq(c, v, 1, SST_MAX_CERTS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, v, i);
        sst_tls_cert_cfg_t *cert = &t->certs[i];
        size_t mark = sst__cfg_push_index(c, i);
        if (item->type != YAML_MAPPING_NODE)
            return sst__cfg_fail(c, item, "expected {cert: FILE, key: FILE}");
        if (sst__cfg_check_map(c, item, keys, COUNT_OF(keys)) != 0)
            return SST_EINVAL;
        for (size_t k = 0; k < COUNT_OF(keys); k++) {
            if (sst__cfg_get(c, item, keys[k]) == NULL) {
                sst__cfg_push_key(c, keys[k]);
                return sst__cfg_fail(c, item, "required: %s",
                                     k == 0 ? "the PEM file with the certificate and its chain"
                                            : "the PEM file with the private key");
            }
        }
        if (tls_path(c, item, "cert", &cert->cert, &cert->cert_pos) != 0 ||
            tls_path(c, item, "key", &cert->key, &cert->key_pos) != 0)
            return SST_EINVAL;
        t->n_certs++;
        sst__cfg_pop(c, mark);
    }
    return 0;
}

static int tls_min_version(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_tls_listen_cfg_t *t)
{
    sst_str_t s;
    char q[64];

    if (sst__cfg_scalar(c, v, "\"1.2\" or \"1.3\"", &s) != 0)
        return SST_EINVAL;
    if (sst_str_eq(s, SST_STR_LIT("1.2"))) {
        t->min_version = SST_TLS_1_2;
        return 0;
    }
    if (sst_str_eq(s, SST_STR_LIT("1.3"))) {
        t->min_version = SST_TLS_1_3;
        return 0;
    }
    if (sst_str_eq(s, SST_STR_LIT("1.0")) || sst_str_eq(s, SST_STR_LIT("1.1")) ||
        sst_str_eq(s, SST_STR_LIT("1")))
        return sst__cfg_fail(c, v,
                             "TLS %.*s is refused: TLS 1.0 and 1.1 are deprecated (RFC 8996); "
                             "use \"1.2\" or \"1.3\"",
                             (int)s.len, s.base);
    return sst__cfg_fail(c, v, "invalid min_version %s: expected \"1.2\" or \"1.3\"",
                         sst__quote(s, q, sizeof q));
}

static int tls_ciphers(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_tls_listen_cfg_t *t)
{
    if (sst__cfg_string(c, v, TLS_CIPHERS_MAX, false, &t->ciphers) != 0)
        return SST_EINVAL;
    for (const char *p = t->ciphers; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return sst__cfg_fail(c, v, "a cipher string holds only printable ASCII");
    if (strcmp(t->ciphers, "old") == 0)
        return sst__cfg_fail(
            c, v,
            "the Mozilla \"old\" profile exists for TLS 1.0 and 1.1 clients, which "
            "sidestep refuses (RFC 8996): use intermediate (the default) or modern");
    t->ciphers_pos = tls_pos(v);
    return 0;
}

static int tls_listen(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_listener_cfg_t *l)
{
    static const char *const keys[] = {"certificates", "min_version", "ciphers", "session_tickets",
                                       "ticket_key_file"};
    sst_tls_listen_cfg_t *t = &l->tls;
    const yaml_node_t *certs, *minv, *ciphers;
    const size_t base = c->path_len;

    if (v->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, v,
                             "expected a mapping with certificates: [{cert: FILE, key: FILE}]");
    if (sst__cfg_check_map(c, v, keys, COUNT_OF(keys)) != 0)
        return SST_EINVAL;
    t->enabled = true;
    t->pos = tls_pos(v);
    t->min_version = SST_TLS_1_2;
    t->session_tickets = true;
    t->ciphers = sst__cfg_strdup(c, SST_STR_LIT("intermediate"));
    if (t->ciphers == NULL)
        return sst__cfg_nomem(c);

    certs = sst__cfg_get(c, v, "certificates");
    sst__cfg_push_key(c, "certificates");
    if (certs == NULL)
        return sst__cfg_fail(c, v, "required: at least one {cert: FILE, key: FILE}");
    if (tls_certificates(c, certs, t) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);

    if ((minv = sst__cfg_get(c, v, "min_version")) != NULL) {
        sst__cfg_push_key(c, "min_version");
        if (tls_min_version(c, minv, t) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((ciphers = sst__cfg_get(c, v, "ciphers")) != NULL) {
        sst__cfg_push_key(c, "ciphers");
        if (tls_ciphers(c, ciphers, t) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if (strcmp(t->ciphers, "modern") == 0) {
        /* Mozilla's modern profile is TLS 1.3 only */
        if (minv != NULL && t->min_version == SST_TLS_1_2) {
            sst__cfg_push_key(c, "min_version");
            return sst__cfg_fail(c, minv,
                                 "ciphers: modern is TLS 1.3 only: set min_version: \"1.3\" (or "
                                 "leave it out), or use ciphers: intermediate for TLS 1.2 clients");
        }
        t->min_version = SST_TLS_1_3;
    } else if (strcmp(t->ciphers, "intermediate") != 0 && t->min_version == SST_TLS_1_3) {
        sst__cfg_push_key(c, "ciphers");
        if (sst__cfg_warn(c, ciphers,
                          "a cipher string chooses TLS 1.2 suites only; with min_version \"1.3\" "
                          "it has no effect (TLS 1.3 keeps the intermediate profile's suites)") !=
            0)
            return SST_ENOMEM;
        sst__cfg_pop(c, base);
    }
    if (tls_bool(c, v, "session_tickets", &t->session_tickets) != 0 ||
        tls_path(c, v, "ticket_key_file", &t->ticket_key_file, &t->ticket_key_file_pos) != 0)
        return SST_EINVAL;
    if (t->ticket_key_file != NULL && !t->session_tickets) {
        sst__cfg_push_key(c, "ticket_key_file");
        return sst__cfg_fail(c, sst__cfg_get(c, v, "ticket_key_file"),
                             "ticket_key_file needs session_tickets: true");
    }
    return 0;
}

static int tls_hsts(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_hsts_cfg_t *h)
{
    static const char *const keys[] = {"max_age", "include_subdomains", "preload"};
    const yaml_node_t *age;
    const size_t base = c->path_len;

    if (v->type != YAML_MAPPING_NODE && !sst__cfg_is_null(v))
        return sst__cfg_fail(c, v,
                             "expected a mapping: {max_age: SECONDS, include_subdomains: "
                             "BOOL, preload: BOOL}");
    if (sst__cfg_check_map(c, v, keys, COUNT_OF(keys)) != 0)
        return SST_EINVAL;
    h->enabled = true;
    h->max_age_s = HSTS_DEFAULT_AGE;
    if ((age = sst__cfg_get(c, v, "max_age")) != NULL) {
        sst__cfg_push_key(c, "max_age");
        if (sst__cfg_uint(c, age, 0, HSTS_MAX_AGE, &h->max_age_s) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if (tls_bool(c, v, "include_subdomains", &h->include_subdomains) != 0 ||
        tls_bool(c, v, "preload", &h->preload) != 0)
        return SST_EINVAL;
    if (h->preload && (!h->include_subdomains || h->max_age_s < HSTS_PRELOAD_AGE)) {
        sst__cfg_push_key(c, "preload");
        return sst__cfg_fail(c, sst__cfg_get(c, v, "preload"),
                             "the browsers' preload list requires include_subdomains: true and "
                             "max_age of at least %llu (one year)",
                             (unsigned long long)HSTS_PRELOAD_AGE);
    }
    return 0;
}

int sst__cfg_parse_listener_tls(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_listener_cfg_t *l)
{
    const yaml_node_t *v;
    const size_t base = c->path_len;

    if ((v = sst__cfg_get(c, n, "tls")) != NULL) {
        sst__cfg_push_key(c, "tls");
        if (tls_listen(c, v, l) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
        if (sst__cfg_get(c, n, "proto") == NULL) {
            /* X-Forwarded-Proto says what the client spoke */
            l->proto = sst__cfg_strdup(c, SST_STR_LIT("https"));
            if (l->proto == NULL)
                return sst__cfg_nomem(c);
        }
    }
    if ((v = sst__cfg_get(c, n, "hsts")) != NULL) {
        sst__cfg_push_key(c, "hsts");
        if (tls_hsts(c, v, &l->hsts) != 0)
            return SST_EINVAL;
        if (!l->tls.enabled &&
            sst__cfg_warn(c, v,
                          "hsts takes effect only on answers sent over TLS (browsers ignore "
                          "Strict-Transport-Security on plain HTTP, RFC 6797 section 7.2), and "
                          "this listener has no tls block") != 0)
            return SST_ENOMEM;
        sst__cfg_pop(c, base);
    }
    return 0;
}

int sst__cfg_check_listeners_tls(sst__cfg_ctx_t *c, const yaml_node_t *listen)
{
    const sst_config_t *cfg = c->cfg;

    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sst_listener_cfg_t *l = &cfg->listeners[i];
        const yaml_node_t *item = sst__cfg_seq_item(c, listen, i), *at;
        uint16_t port = l->https_port != 0 ? l->https_port : 443;

        if (!l->https_redirect)
            continue;
        at = sst__cfg_get(c, item, "https_redirect");
        sst__cfg_push_key(c, "listen");
        sst__cfg_push_index(c, i);
        sst__cfg_push_key(c, "https_redirect");
        if (l->tls.enabled && port == l->addr.port)
            return sst__cfg_fail(c, at,
                                 "this listener serves TLS on port %u itself: redirecting to "
                                 "https on the same port would send clients back here",
                                 (unsigned)port);
        /* A redirect to sidestep's own TLS listener is the intended use; a redirect to a port
         * this config serves as plain HTTP is likely a mistake, unless a load balancer or NAT
         * maps the public port elsewhere, so it is a warning. */
        for (size_t j = 0; j < cfg->n_listeners; j++) {
            const sst_listener_cfg_t *o = &cfg->listeners[j];
            if (j == i || o->addr.port != port || o->tls.enabled)
                continue;
            if (sst__cfg_warn(c, at,
                              "redirects to https on port %u, which listen[%zu] (%s) serves as "
                              "plain HTTP: browsers would speak TLS to it (fine only when the "
                              "public port %u is mapped elsewhere)",
                              (unsigned)port, j, o->addr.text, (unsigned)port) != 0)
                return SST_ENOMEM;
            break;
        }
        sst__cfg_pop(c, 0);
    }
    return 0;
}

/* --- regions[].tls ----------------------------------------------------------------------- */

/* A DNS name (letters, digits, '-', '.'; labels not starting or ending in '-') or an IP
 * literal, as SNI and the certificate check take it. Lower-cases in place. */
static bool tls_is_server_name(char *s)
{
    unsigned char buf[16];
    size_t len = strlen(s), label = 0;

    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
        return true;
    if (len == 0 || len > 253 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            s[i] = ch = (char)(ch + 32);
        if (ch == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
        if (ch == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return s[len - 1] != '-';
}

int sst__cfg_parse_region_tls(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    static const char *const keys[] = {"ca", "server_name", "verify"};
    sst_tls_upstream_cfg_t *t = &c->cfg->regions[idx].tls;
    const yaml_node_t *v = sst__cfg_get(c, n, "tls"), *name, *verify;
    const size_t base = c->path_len;
    char q[64];

    if (v == NULL)
        return 0;
    sst__cfg_push_key(c, "tls");
    if (v->type != YAML_MAPPING_NODE && !sst__cfg_is_null(v))
        return sst__cfg_fail(c, v,
                             "expected a mapping: {ca: FILE, server_name: NAME, verify: BOOL}");
    if (sst__cfg_check_map(c, v, keys, COUNT_OF(keys)) != 0)
        return SST_EINVAL;
    t->enabled = true;
    t->verify = true;
    if (tls_path(c, v, "ca", &t->ca, &t->ca_pos) != 0)
        return SST_EINVAL;
    if ((name = sst__cfg_get(c, v, "server_name")) != NULL) {
        size_t mark = sst__cfg_push_key(c, "server_name");
        if (sst__cfg_string(c, name, 253, false, &t->server_name) != 0)
            return SST_EINVAL;
        if (!tls_is_server_name(t->server_name))
            return sst__cfg_fail(c, name,
                                 "invalid server_name %s: expected a host name (api.internal) or "
                                 "an IP address",
                                 sst__quote(sst_str_c(t->server_name), q, sizeof q));
        sst__cfg_pop(c, mark);
    }
    if (tls_bool(c, v, "verify", &t->verify) != 0)
        return SST_EINVAL;
    if (!t->verify) {
        verify = sst__cfg_get(c, v, "verify");
        sst__cfg_push_key(c, "verify");
        if (sst__cfg_warn(c, verify,
                          "backend certificates are not checked: anyone on the path to these "
                          "backends can read and change the traffic%s",
                          t->ca != NULL ? " (ca is unused)" : "") != 0)
            return SST_ENOMEM;
    }
    sst__cfg_pop(c, base);
    return 0;
}
