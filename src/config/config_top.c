/* The top-level sections (workers, local_region, listen, admin, limits, timeouts, log,
 * trusted_proxies) and the order all sections are read in. Reads the document only through the
 * node helpers of config.c; never owns the snapshot's memory nor touches the YAML text. */
#include "config/config_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sidestep/error.h"
#include "sidestep/str.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

#define CONFIG_MAX_TOKEN 4096

/* --- top-level sections ------------------------------------------------------------------ */

static int config_parse_workers(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *n = sst__cfg_get(c, root, "workers");
    uint64_t v;
    sst_str_t s;

    if (n == NULL)
        return 0;
    sst__cfg_push_key(c, "workers");
    if (sst__cfg_scalar(c, n, "\"auto\" or a number", &s) != 0)
        return SST_EINVAL;
    if (sst_str_eq(s, SST_STR_LIT("auto"))) {
        c->cfg->workers = 0;
    } else {
        if (sst__cfg_uint(c, n, 1, SST_MAX_WORKERS, &v) != 0)
            return SST_EINVAL;
        c->cfg->workers = (uint32_t)v;
    }
    sst__cfg_pop(c, 0);
    return 0;
}

static int config_parse_local_region(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *n = sst__cfg_get(c, root, "local_region");

    if (n == NULL)
        return 0;
    sst__cfg_push_key(c, "local_region");
    if (sst__cfg_region_ref(c, n, &c->cfg->local_region) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, 0);
    return 0;
}

static bool config_is_wildcard(const sst_addr_t *a)
{
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return false;
}

static bool config_same_addr(const sst_addr_t *a, const sst_addr_t *b)
{
    if (a->salen == 0 || b->salen == 0 || a->sa.ss_family != b->sa.ss_family)
        return strcmp(a->text, b->text) == 0;
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->sa;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->sa;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return strcmp(a->text, b->text) == 0;
}

/* 301/302/303/307/308: the statuses that carry a Location. */
static int config_redirect_status(sst__cfg_ctx_t *c, const yaml_node_t *n, uint16_t *out)
{
    uint64_t v;

    if (sst__cfg_uint(c, n, 301, 308, &v) != 0)
        return SST_EINVAL;
    if (v != 301 && v != 302 && v != 303 && v != 307 && v != 308)
        return sst__cfg_fail(c, n, "status %llu is not a redirect (301, 302, 303, 307 or 308)",
                             (unsigned long long)v);
    *out = (uint16_t)v;
    return 0;
}

static int config_parse_https_redirect(sst__cfg_ctx_t *c, const yaml_node_t *n,
                                       sst_listener_cfg_t *l)
{
    static const char *const keys[] = {"get", "other", "port"};
    const yaml_node_t *v;
    uint64_t port;
    size_t mark;

    if (n->type == YAML_SCALAR_NODE)
        return sst__cfg_bool(c, n, &l->https_redirect);
    if (sst__cfg_check_map(c, n, keys, 3) != 0)
        return SST_EINVAL;
    l->https_redirect = true;
    if ((v = sst__cfg_get(c, n, "get")) != NULL) {
        mark = sst__cfg_push_key(c, "get");
        if (config_redirect_status(c, v, &l->https_status_get) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "other")) != NULL) {
        mark = sst__cfg_push_key(c, "other");
        if (config_redirect_status(c, v, &l->https_status_other) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "port")) != NULL) {
        mark = sst__cfg_push_key(c, "port");
        if (sst__cfg_uint(c, v, 1, 65535, &port) != 0)
            return SST_EINVAL;
        l->https_port = port == 443 ? 0 : (uint16_t)port; /* 443 is left out of Location */
        sst__cfg_pop(c, mark);
    }
    return 0;
}

/* A list of min..SST_MAX_TRUSTED addresses or CIDRs (trusted_proxies, proxy_protocol_from). */
static int config_parse_cidrs(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t min, sst_cidr_t *out,
                              size_t *n_out)
{
    char q[64], why[SST__WHY_SIZE];
    size_t count;

    if (sst__cfg_seq(c, n, min, SST_MAX_TRUSTED, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, n, i);
        size_t mark = sst__cfg_push_index(c, i);
        sst_str_t s;
        if (sst__cfg_scalar(c, item, "an address or CIDR", &s) != 0)
            return SST_EINVAL;
        if (sst__parse_cidr(s, &out[i], why) != 0)
            return sst__cfg_fail(c, item, "invalid network %s: %s", sst__quote(s, q, sizeof q),
                                 why);
        (*n_out)++;
        sst__cfg_pop(c, mark);
    }
    return 0;
}

/* proxy_protocol and proxy_protocol_from (issue 16). The list is required with the flag: a header
 * believed from anyone lets any client pick its address. It is refused without the flag: a list
 * that does nothing most likely means the flag was meant to be on. */
static int config_parse_proxy_protocol(sst__cfg_ctx_t *c, const yaml_node_t *n,
                                       sst_listener_cfg_t *l)
{
    const yaml_node_t *on = sst__cfg_get(c, n, "proxy_protocol");
    const yaml_node_t *from = sst__cfg_get(c, n, "proxy_protocol_from");
    size_t mark;

    if (on != NULL) {
        mark = sst__cfg_push_key(c, "proxy_protocol");
        if (sst__cfg_bool(c, on, &l->proxy_protocol) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    mark = sst__cfg_push_key(c, "proxy_protocol_from");
    if (from == NULL && l->proxy_protocol)
        return sst__cfg_fail(c, on,
                             "required when proxy_protocol is true: the peers allowed to send the "
                             "header, e.g. proxy_protocol_from: [10.0.0.0/8]");
    if (from != NULL && !l->proxy_protocol)
        return sst__cfg_fail(c, from,
                             "only used when proxy_protocol is true (set it, or remove this list)");
    if (from != NULL &&
        config_parse_cidrs(c, from, 1, l->proxy_protocol_from, &l->n_proxy_protocol_from) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, mark);
    return 0;
}

static int config_parse_listener(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_listener_cfg_t *l)
{
    static const char *const keys[] = {
        "address", "proto", "https_redirect", "proxy_protocol", "proxy_protocol_from",
        "tls",     "hsts"};
    const yaml_node_t *addr = n, *v;
    size_t mark;

    l->https_status_get = 301;
    l->https_status_other = 307;
    l->proto = sst__cfg_strdup(c, SST_STR_LIT("http"));
    if (l->proto == NULL)
        return sst__cfg_nomem(c);
    if (n->type != YAML_SCALAR_NODE) {
        if (sst__cfg_check_map(c, n, keys, sizeof keys / sizeof keys[0]) != 0)
            return SST_EINVAL;
        addr = sst__cfg_get(c, n, "address");
        if (addr == NULL) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, n, "required (e.g. address: 127.0.0.1:8080)");
        }
    }
    mark = n == addr ? c->path_len : sst__cfg_push_key(c, "address");
    if (sst__cfg_addr(c, addr, true, &l->addr) != 0)
        return SST_EINVAL;
    l->pos.line = (unsigned)addr->start_mark.line + 1;
    l->pos.column = (unsigned)addr->start_mark.column + 1;
    sst__cfg_pop(c, mark);
    if (n == addr)
        return 0;
    if ((v = sst__cfg_get(c, n, "proto")) != NULL) {
        mark = sst__cfg_push_key(c, "proto");
        if (sst__cfg_string(c, v, 16, false, &l->proto) != 0)
            return SST_EINVAL;
        if (!sst_str_is_token(sst_str_c(l->proto)))
            return sst__cfg_fail(c, v, "expected a word such as http or https");
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "https_redirect")) != NULL) {
        mark = sst__cfg_push_key(c, "https_redirect");
        if (config_parse_https_redirect(c, v, l) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    int rc = config_parse_proxy_protocol(c, n, l);
    if (rc != 0)
        return rc;
    return sst__cfg_parse_listener_tls(c, n, l);
}

static int config_parse_listen(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;
    const yaml_node_t *n = sst__cfg_get(c, root, "listen");
    size_t count;

    sst__cfg_push_key(c, "listen");
    if (n == NULL)
        return sst__cfg_fail(c, root,
                             "required: where to accept connections, e.g. "
                             "listen: [127.0.0.1:8080]");
    if (sst__cfg_seq(c, n, 1, SST_MAX_LISTENERS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, n, i);
        sst_listener_cfg_t *l = &cfg->listeners[i];
        size_t mark = sst__cfg_push_index(c, i);
        if (config_parse_listener(c, item, l) != 0)
            return SST_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (l->addr.port != 0 && config_same_addr(&l->addr, &cfg->listeners[j].addr))
                return sst__cfg_fail(c, item, "%s is already listed as listen[%zu]", l->addr.text,
                                     j);
        cfg->n_listeners++;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return sst__cfg_check_listeners_tls(c, n);
}

static int config_check_token(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_str_t t)
{
    if (t.len == 0)
        return sst__cfg_fail(c, n, "the token is empty");
    if (t.len > CONFIG_MAX_TOKEN)
        return sst__cfg_fail(c, n, "the token is longer than %d bytes", CONFIG_MAX_TOKEN);
    for (size_t i = 0; i < t.len; i++) {
        unsigned char ch = (unsigned char)t.base[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return sst__cfg_fail(c, n,
                                 "the token may hold only visible ASCII characters "
                                 "(it travels in an Authorization header)");
    }
    return 0;
}

/* Reads token_file now, so a missing file fails the load rather than the first admin call. */
static int config_read_token_file(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *path,
                                  char **out)
{
    char buf[CONFIG_MAX_TOKEN + 3], err[96], q[64];
    size_t len;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        (void)strerror_r(errno, err, sizeof err);
        return sst__cfg_fail(c, n, "cannot read %s: %s", sst__quote(sst_str_c(path), q, sizeof q),
                             err);
    }
    len = fread(buf, 1, sizeof buf, f);
    if (ferror(f)) {
        (void)strerror_r(errno, err, sizeof err);
        fclose(f);
        return sst__cfg_fail(c, n, "cannot read %s: %s", sst__quote(sst_str_c(path), q, sizeof q),
                             err);
    }
    fclose(f);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (config_check_token(c, n, sst_str(buf, len)) != 0)
        return SST_EINVAL;
    *out = sst__cfg_strdup(c, sst_str(buf, len));
    return *out ? 0 : sst__cfg_nomem(c);
}

static int config_parse_admin(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"address", "token", "token_file"};
    sst_config_t *cfg = c->cfg;
    sst_admin_cfg_t *a = &cfg->admin;
    const yaml_node_t *n = sst__cfg_get(c, root, "admin"), *addr, *tok, *file;
    char why[SST__WHY_SIZE];
    size_t mark;

    if (n == NULL)
        return 0; /* no admin listener */
    sst__cfg_push_key(c, "admin");
    if (sst__cfg_check_map(c, n, keys, 3) != 0)
        return SST_EINVAL;
    a->enabled = true;
    addr = sst__cfg_get(c, n, "address");
    tok = sst__cfg_get(c, n, "token");
    file = sst__cfg_get(c, n, "token_file");
    if (addr != NULL) {
        mark = sst__cfg_push_key(c, "address");
        if (sst__cfg_addr(c, addr, true, &a->addr) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    } else if (sst__parse_addr(SST_STR_LIT("127.0.0.1:9901"), false, false, &a->addr, why) != 0) {
        return sst__cfg_fail(c, n, "%s", why);
    }
    if (tok != NULL && file != NULL) {
        sst__cfg_push_key(c, "token_file");
        return sst__cfg_fail(c, file, "give either token or token_file, not both");
    }
    if (tok != NULL) {
        mark = sst__cfg_push_key(c, "token");
        if (sst__cfg_string(c, tok, CONFIG_MAX_TOKEN, true, &a->token) != 0 ||
            config_check_token(c, tok, sst_str_c(a->token)) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if (file != NULL) {
        char *path;
        mark = sst__cfg_push_key(c, "token_file");
        if (sst__cfg_string(c, file, 4096, false, &path) != 0 ||
            config_read_token_file(c, file, path, &a->token) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if (a->token == NULL && !sst_addr_is_loopback(&a->addr)) {
        /* The admin API drains and forces regions: off loopback it must not be anonymous */
        sst__cfg_push_key(c, "address");
        return sst__cfg_fail(c, addr ? addr : n,
                             "admin address %s is not loopback: set token or token_file",
                             a->addr.text);
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sst_addr_t *l = &cfg->listeners[i].addr;
        if (a->addr.port != 0 && config_same_addr(&a->addr, l)) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, addr ? addr : n, "%s is also listen[%zu]", a->addr.text, i);
        }
        /* a wildcard (0.0.0.0, or :: which listeners bind IPv6-only) on the same port holds
         * every address of its family: the other socket could not bind next to it */
        if (a->addr.port != 0 && a->addr.port == l->port && a->addr.salen != 0 && l->salen != 0 &&
            a->addr.sa.ss_family == l->sa.ss_family &&
            (config_is_wildcard(l) || config_is_wildcard(&a->addr))) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, addr ? addr : n, "%s overlaps listen[%zu] %s (same port)",
                                 a->addr.text, i, l->text);
        }
    }
    sst__cfg_pop(c, 0);
    return 0;
}

typedef enum config_num_kind_e {
    CONFIG_NUM_SIZE = 0,
    CONFIG_NUM_COUNT,
    CONFIG_NUM_DURATION,
} config_num_kind_t;

typedef struct config_num_key_s {
    const char *name;
    size_t offset;
    config_num_kind_t kind;
    uint64_t lo, hi, def;
} config_num_key_t;

#define LIMIT(name, kind, lo, hi, def)                                                             \
    {                                                                                              \
#name, offsetof(sst_limits_cfg_t, name), CONFIG_NUM_##kind, lo, hi, def                    \
    }
#define TIMEOUT(name, field, kind, lo, hi, def)                                                    \
    {                                                                                              \
#name, offsetof(sst_timeouts_cfg_t, field), CONFIG_NUM_##kind, lo, hi, def                 \
    }
#define S(n)   ((n)*1000ull)
#define DAY_MS SST__MAX_DURATION_MS

/* Bounds are documented in docs/configuration.md; keep the two in step. */
static const config_num_key_t config_limits[] = {
    LIMIT(request_line, SIZE, 64, MIB, 8 * KIB),
    LIMIT(header_field, SIZE, 64, MIB, 8 * KIB),
    LIMIT(header_bytes, SIZE, KIB, 16 * MIB, 32 * KIB),
    LIMIT(headers, COUNT, 1, 10000, 100),
    LIMIT(body, SIZE, 0, 1024 * GIB, 100 * MIB),
    LIMIT(connections, COUNT, 1, 1000000, 10000),
    LIMIT(upstream_connections, COUNT, 1, 100000, 1024),
    LIMIT(upstream_idle, COUNT, 0, 100000, 64),
    LIMIT(response_header_bytes, SIZE, KIB, 16 * MIB, 32 * KIB),
    LIMIT(response_headers, COUNT, 1, 10000, 100),
    LIMIT(buffer, SIZE, 4 * KIB, 64 * MIB, 64 * KIB),
};

static const config_num_key_t config_timeouts[] = {
    TIMEOUT(request_head, request_head_ms, DURATION, 1, DAY_MS, S(10)),
    TIMEOUT(idle, idle_ms, DURATION, 1, DAY_MS, S(60)),
    TIMEOUT(connect, connect_ms, DURATION, 1, DAY_MS, S(2)),
    TIMEOUT(upstream_response, upstream_response_ms, DURATION, 1, DAY_MS, S(30)),
    TIMEOUT(upstream_idle, upstream_idle_ms, DURATION, 1, DAY_MS, S(4)),
    TIMEOUT(body, body_ms, DURATION, 1, DAY_MS, S(30)),
    TIMEOUT(body_total, body_total_ms, DURATION, 0, DAY_MS, 0),
    TIMEOUT(body_min_rate, body_min_rate, SIZE, 0, GIB, 0),
    TIMEOUT(send, send_ms, DURATION, 1, DAY_MS, S(30)),
    TIMEOUT(linger, linger_ms, DURATION, 0, DAY_MS, S(2)),
    TIMEOUT(shutdown, shutdown_ms, DURATION, 0, DAY_MS, S(30)),
    TIMEOUT(tls_handshake, tls_handshake_ms, DURATION, 1, DAY_MS, S(10)),
};

#undef LIMIT
#undef TIMEOUT
#undef S
#undef DAY_MS

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(COUNT_OF(config_limits) <= 16 && COUNT_OF(config_timeouts) <= 16,
               "config_parse_numbers keeps at most 16 key names");

static void config_num_defaults(const config_num_key_t *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        *(uint64_t *)(void *)((char *)base + keys[i].offset) = keys[i].def;
}

/* A mapping of numbers described by `keys` into the struct at `base`. */
static int config_parse_numbers(sst__cfg_ctx_t *c, const yaml_node_t *root, const char *section,
                                const config_num_key_t *keys, size_t n, void *base)
{
    const yaml_node_t *map = sst__cfg_get(c, root, section);
    const char *names[16];

    if (map == NULL)
        return 0;
    sst__cfg_push_key(c, section);
    for (size_t i = 0; i < n; i++)
        names[i] = keys[i].name;
    if (sst__cfg_check_map(c, map, names, n) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *v = sst__cfg_get(c, map, keys[i].name);
        uint64_t *dst = (uint64_t *)(void *)((char *)base + keys[i].offset);
        int rc = 0;
        if (v == NULL)
            continue;
        size_t mark = sst__cfg_push_key(c, keys[i].name);
        switch (keys[i].kind) {
        case CONFIG_NUM_SIZE:
            rc = sst__cfg_size(c, v, keys[i].lo, keys[i].hi, dst);
            break;
        case CONFIG_NUM_COUNT:
            rc = sst__cfg_uint(c, v, keys[i].lo, keys[i].hi, dst);
            break;
        case CONFIG_NUM_DURATION:
            rc = sst__cfg_duration(c, v, keys[i].lo, keys[i].hi, dst);
            break;
        }
        if (rc != 0)
            return rc;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

static int config_parse_limits(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_limits_cfg_t *l = &c->cfg->limits;
    const yaml_node_t *map = sst__cfg_get(c, root, "limits");
    char a[32], b[32];

    if (config_parse_numbers(c, root, "limits", config_limits, COUNT_OF(config_limits), l) != 0)
        return SST_EINVAL;
    if (l->header_field > l->header_bytes) {
        const yaml_node_t *at = sst__cfg_get(c, map, "header_field");
        sst__cfg_push_key(c, "limits");
        sst__cfg_push_key(c, at ? "header_field" : "header_bytes");
        return sst__cfg_fail(c, at ? at : sst__cfg_get(c, map, "header_bytes"),
                             "header_field (%s) must not exceed header_bytes (%s)",
                             sst__cfg_fmt_size(l->header_field, a, sizeof a),
                             sst__cfg_fmt_size(l->header_bytes, b, sizeof b));
    }
    if (l->upstream_idle > l->upstream_connections) {
        const yaml_node_t *at = sst__cfg_get(c, map, "upstream_idle");
        sst__cfg_push_key(c, "limits");
        sst__cfg_push_key(c, at ? "upstream_idle" : "upstream_connections");
        return sst__cfg_fail(c, at ? at : sst__cfg_get(c, map, "upstream_connections"),
                             "upstream_idle (%llu) must not exceed upstream_connections (%llu)",
                             (unsigned long long)l->upstream_idle,
                             (unsigned long long)l->upstream_connections);
    }
    return 0;
}

static int config_parse_timeouts(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    int rc = config_parse_numbers(c, root, "timeouts", config_timeouts, COUNT_OF(config_timeouts),
                                  &c->cfg->timeouts);
    return rc != 0 ? rc : sst__cfg_check_routes(c, root);
}

static int config_parse_log(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"access", "format", "level"};
    static const char *const formats[] = {[SST_LOG_TEXT] = "text", [SST_LOG_JSON] = "json"};
    /* index = SST_LOG_DEBUG .. SST_LOG_ERROR (0..3) as log.h numbers them */
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    sst_log_cfg_t *l = &c->cfg->log;
    const yaml_node_t *map = sst__cfg_get(c, root, "log"), *v;
    int idx;
    size_t mark;

    l->format = SST_LOG_TEXT;
    l->level = 1;
    if (map == NULL)
        return 0;
    sst__cfg_push_key(c, "log");
    if (sst__cfg_check_map(c, map, keys, 3) != 0)
        return SST_EINVAL;
    if ((v = sst__cfg_get(c, map, "access")) != NULL) {
        mark = sst__cfg_push_key(c, "access");
        if (sst__cfg_string(c, v, 4096, false, &l->access) != 0)
            return SST_EINVAL;
        l->access_pos.line = (unsigned)v->start_mark.line + 1;
        l->access_pos.column = (unsigned)v->start_mark.column + 1;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, map, "format")) != NULL) {
        mark = sst__cfg_push_key(c, "format");
        if (sst__cfg_enum(c, v, formats, COUNT_OF(formats), &idx) != 0)
            return SST_EINVAL;
        l->format = (sst_log_format_t)idx;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, map, "level")) != NULL) {
        mark = sst__cfg_push_key(c, "level");
        if (sst__cfg_enum(c, v, levels, COUNT_OF(levels), &l->level) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

static int config_parse_trusted(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;
    const yaml_node_t *n = sst__cfg_get(c, root, "trusted_proxies");

    if (n == NULL)
        return 0;
    sst__cfg_push_key(c, "trusted_proxies");
    if (config_parse_cidrs(c, n, 0, cfg->trusted_proxies, &cfg->n_trusted_proxies) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, 0);
    return 0;
}

static const char *const config_top_keys[] = {
    "workers", "local_region", "listen", "admin",    "health",          "regions",
    "routes",  "limits",       "log",    "timeouts", "trusted_proxies", "fleet",
};

typedef int (*config_section_fn)(sst__cfg_ctx_t *c, const yaml_node_t *root);

/* In dependency order: routes need regions and local_region; admin checks the listeners;
 * fleet needs admin. */
static const config_section_fn config_sections[] = {
    config_parse_workers, sst__cfg_parse_regions, config_parse_local_region, config_parse_listen,
    config_parse_admin,   sst__cfg_parse_routes,  config_parse_limits,       config_parse_timeouts,
    config_parse_log,     config_parse_trusted,   sst__cfg_parse_fleet,
};

int sst__cfg_build(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;

    if (root == NULL || sst__cfg_is_null(root)) {
        yaml_mark_t start = {.line = 0, .column = 0}; /* an empty file has no node to point at */
        return sst__cfg_fail_mark(c, root != NULL ? root->start_mark : start,
                                  "the config is empty: it needs at least listen: and regions:");
    }
    if (root->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, root,
                             "expected a mapping at the top level (listen:, regions:, ...)");
    if (sst__cfg_check_map(c, root, config_top_keys, COUNT_OF(config_top_keys)) != 0)
        return SST_EINVAL;
    cfg->local_region = SIZE_MAX;
    config_num_defaults(config_limits, COUNT_OF(config_limits), &cfg->limits);
    config_num_defaults(config_timeouts, COUNT_OF(config_timeouts), &cfg->timeouts);
    cfg->log.access = sst__cfg_strdup(c, SST_STR_LIT("stderr"));
    if (cfg->log.access == NULL)
        return sst__cfg_nomem(c);
    for (size_t i = 0; i < COUNT_OF(config_sections); i++) {
        int rc = config_sections[i](c, root);
        if (rc != 0)
            return rc;
    }
    return 0;
}
