/* Config sections that refer to each other: health blocks (merged built-in defaults <- top-level
 * `health` <- regions[].health <- a backend's own `health`), regions with their backends, and
 * routes over region indices. Errors name the block that set the offending key. */
#include "config/config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sidestep/error.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef enum health_key_e {
    HK_ENABLED = 0,
    HK_METHOD,
    HK_PATH,
    HK_HOST,
    HK_EXPECT_STATUS,
    HK_EXPECT_BODY,
    HK_INTERVAL,
    HK_FAST_INTERVAL,
    HK_TIMEOUT,
    HK_JITTER,
    HK_RISE,
    HK_FALL,
    HK_PASSIVE_FALL,
    HK_PASSIVE_FALL_REFUSED,
    HK_PASSIVE_5XX,
    HK_INITIAL,
    HK_SLOW,
    HK__COUNT
} health_key_t;

static const char *const health_keys[HK__COUNT] = {
    [HK_ENABLED] = "enabled",
    [HK_METHOD] = "method",
    [HK_PATH] = "path",
    [HK_HOST] = "host",
    [HK_EXPECT_STATUS] = "expect_status",
    [HK_EXPECT_BODY] = "expect_body",
    [HK_INTERVAL] = "interval",
    [HK_FAST_INTERVAL] = "fast_interval",
    [HK_TIMEOUT] = "timeout",
    [HK_JITTER] = "jitter",
    [HK_RISE] = "rise",
    [HK_FALL] = "fall",
    [HK_PASSIVE_FALL] = "passive_fall",
    [HK_PASSIVE_FALL_REFUSED] = "passive_fall_refused",
    [HK_PASSIVE_5XX] = "passive_5xx",
    [HK_INITIAL] = "initial",
    [HK_SLOW] = "slow",
};

static const char *const health_initial_words[] = {
    [SST_INITIAL_AUTO] = "auto",
    [SST_INITIAL_UP] = "up",
    [SST_INITIAL_DOWN] = "down",
};

/* One `health` block as written: the keys it sets, where, and under which key path. */
typedef struct health_layer_s {
    sst_health_cfg_t v;
    const yaml_node_t *node[HK__COUNT]; /* non-NULL: this block sets the key */
    bool jitter_is_pct;
    uint32_t jitter_pct;
    int level; /* 0 top-level, 1 region, 2 backend: the deeper block is blamed first */
    char path[256];
} health_layer_t;

/* Settings after merging; from[k] is the block that set key k last, NULL for the built-in. */
typedef struct health_merge_s {
    sst_health_cfg_t v;
    const health_layer_t *from[HK__COUNT];
    bool jitter_is_pct;
    uint32_t jitter_pct;
} health_merge_t;

static void health_defaults(health_merge_t *m)
{
    sst_health_cfg_t *h = &m->v;

    memset(m, 0, sizeof *m);
    h->enabled = true;
    memcpy(h->method, "GET", 4);
    memcpy(h->path, "/healthz", 9);
    h->expect[0].lo = 200;
    h->expect[0].hi = 399;
    h->n_expect = 1;
    h->interval_ms = 2000;
    h->fast_interval_ms = 500;
    h->timeout_ms = 1000;
    h->rise = 2;
    h->fall = 2;
    h->passive_fall = 3;
    h->passive_fall_refused = 1;
    h->passive_5xx = false;
    h->initial = SST_INITIAL_AUTO;
}

static int health_u32(sst__cfg_ctx_t *c, const yaml_node_t *v, uint32_t lo, uint32_t hi,
                      uint32_t *out)
{
    uint64_t u;
    if (sst__cfg_uint(c, v, lo, hi, &u) != 0)
        return SST_EINVAL;
    *out = (uint32_t)u;
    return 0;
}

static int health_expect_status(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_health_cfg_t *h)
{
    char q[64], why[SST__WHY_SIZE];
    sst_str_t s;
    size_t count;

    h->n_expect = 0;
    if (v->type != YAML_SEQUENCE_NODE) {
        if (sst__cfg_scalar(c, v, "status ranges (200-399)", &s) != 0)
            return SST_EINVAL;
        if (sst__parse_status_ranges(s, h->expect, &h->n_expect, why) != 0)
            return sst__cfg_fail(c, v, "invalid expect_status %s: %s", sst__quote(s, q, sizeof q),
                                 why);
        return 0;
    }
    if (sst__cfg_seq(c, v, 1, SST_MAX_STATUS_RANGE, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, v, i);
        size_t mark = sst__cfg_push_index(c, i);
        if (sst__cfg_scalar(c, item, "status ranges (200-399)", &s) != 0)
            return SST_EINVAL;
        if (sst__parse_status_ranges(s, h->expect, &h->n_expect, why) != 0)
            return sst__cfg_fail(c, item, "invalid expect_status %s: %s",
                                 sst__quote(s, q, sizeof q), why);
        sst__cfg_pop(c, mark);
    }
    return 0;
}

static int health_parse_key(sst__cfg_ctx_t *c, health_layer_t *l, health_key_t k,
                            const yaml_node_t *v)
{
    sst_health_cfg_t *h = &l->v;
    char q[64], why[SST__WHY_SIZE];
    sst_str_t s;
    int idx;

    switch (k) {
    case HK_ENABLED:
        return sst__cfg_bool(c, v, &h->enabled);
    case HK_METHOD:
        if (sst__cfg_scalar(c, v, "an HTTP method", &s) != 0)
            return SST_EINVAL;
        if (!sst_str_is_token(s) || s.len >= sizeof h->method)
            return sst__cfg_fail(c, v, "invalid method %s (expected e.g. GET or HEAD)",
                                 sst__quote(s, q, sizeof q));
        memcpy(h->method, s.base, s.len);
        h->method[s.len] = '\0';
        return 0;
    case HK_PATH:
        if (sst__cfg_scalar(c, v, "a path (/healthz)", &s) != 0)
            return SST_EINVAL;
        if (s.len >= sizeof h->path)
            return sst__cfg_fail(c, v, "longer than %zu bytes", sizeof h->path - 1);
        if (sst__check_path(s, why) != 0)
            return sst__cfg_fail(c, v, "invalid path %s: %s", sst__quote(s, q, sizeof q), why);
        memcpy(h->path, s.base, s.len);
        h->path[s.len] = '\0';
        return 0;
    case HK_HOST:
        s = SST_STR_LIT("");
        if (!sst__cfg_is_null(v) && sst__cfg_scalar(c, v, "a Host header value", &s) != 0)
            return SST_EINVAL;
        if (s.len >= sizeof h->host)
            return sst__cfg_fail(c, v, "longer than %zu bytes", sizeof h->host - 1);
        for (size_t i = 0; i < s.len; i++)
            if ((unsigned char)s.base[i] <= 0x20 || (unsigned char)s.base[i] >= 0x7f)
                return sst__cfg_fail(c, v, "invalid Host value %s: no spaces or control bytes",
                                     sst__quote(s, q, sizeof q));
        memcpy(h->host, s.base, s.len);
        h->host[s.len] = '\0';
        return 0;
    case HK_EXPECT_STATUS:
        return health_expect_status(c, v, h);
    case HK_EXPECT_BODY:
        if (sst__cfg_string(c, v, 1024, true, &h->expect_body) != 0)
            return SST_EINVAL;
        if (h->expect_body[0] == '\0')
            h->expect_body = NULL; /* "" matches every body: same as no check */
        return 0;
    case HK_INTERVAL:
        return sst__cfg_duration(c, v, 10, SST__MAX_DURATION_MS, &h->interval_ms);
    case HK_FAST_INTERVAL:
        return sst__cfg_duration(c, v, 10, SST__MAX_DURATION_MS, &h->fast_interval_ms);
    case HK_TIMEOUT:
        return sst__cfg_duration(c, v, 1, SST__MAX_DURATION_MS, &h->timeout_ms);
    case HK_JITTER:
        if (sst__cfg_scalar(c, v, "a duration or a percentage", &s) != 0)
            return SST_EINVAL;
        l->jitter_is_pct = s.len > 0 && s.base[s.len - 1] == '%';
        if (l->jitter_is_pct)
            return sst__cfg_percent(c, v, 0, 50, false, &l->jitter_pct);
        return sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &h->jitter_ms);
    case HK_RISE:
        return health_u32(c, v, 1, 100, &h->rise);
    case HK_FALL:
        return health_u32(c, v, 1, 100, &h->fall);
    case HK_PASSIVE_FALL:
        return health_u32(c, v, 0, 100, &h->passive_fall);
    case HK_PASSIVE_FALL_REFUSED:
        return health_u32(c, v, 0, 100, &h->passive_fall_refused);
    case HK_PASSIVE_5XX:
        return sst__cfg_bool(c, v, &h->passive_5xx);
    case HK_INITIAL:
        if (sst__cfg_enum(c, v, health_initial_words, COUNT_OF(health_initial_words), &idx) != 0)
            return SST_EINVAL;
        h->initial = (sst_initial_state_t)idx;
        return 0;
    case HK_SLOW:
        /* 0 turns it off, so that a backend can opt out of its region's setting */
        return sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &h->slow_ms);
    case HK__COUNT:
        break;
    }
    return SST_EINVAL;
}

/* Parses the health block `n` at the current path into *l. */
static int health_parse_layer(sst__cfg_ctx_t *c, const yaml_node_t *n, int level, health_layer_t *l)
{
    memset(l, 0, sizeof *l);
    l->level = level;
    memcpy(l->path, c->path, c->path_len + 1);
    if (sst__cfg_check_map(c, n, health_keys, HK__COUNT) != 0)
        return SST_EINVAL;
    for (int k = 0; k < HK__COUNT; k++) {
        const yaml_node_t *v = sst__cfg_get(c, n, health_keys[k]);
        if (v == NULL)
            continue;
        size_t mark = sst__cfg_push_key(c, health_keys[k]);
        if (health_parse_key(c, l, (health_key_t)k, v) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
        l->node[k] = v;
    }
    return 0;
}

static void health_apply(health_merge_t *m, const health_layer_t *l)
{
    sst_health_cfg_t *d = &m->v;
    const sst_health_cfg_t *s = &l->v;

    for (int k = 0; k < HK__COUNT; k++) {
        if (l->node[k] == NULL)
            continue;
        m->from[k] = l;
        switch ((health_key_t)k) {
        case HK_ENABLED:
            d->enabled = s->enabled;
            break;
        case HK_METHOD:
            memcpy(d->method, s->method, sizeof d->method);
            break;
        case HK_PATH:
            memcpy(d->path, s->path, sizeof d->path);
            break;
        case HK_HOST:
            memcpy(d->host, s->host, sizeof d->host);
            break;
        case HK_EXPECT_STATUS:
            memcpy(d->expect, s->expect, sizeof d->expect);
            d->n_expect = s->n_expect;
            break;
        case HK_EXPECT_BODY:
            d->expect_body = s->expect_body;
            break;
        case HK_INTERVAL:
            d->interval_ms = s->interval_ms;
            break;
        case HK_FAST_INTERVAL:
            d->fast_interval_ms = s->fast_interval_ms;
            break;
        case HK_TIMEOUT:
            d->timeout_ms = s->timeout_ms;
            break;
        case HK_JITTER:
            d->jitter_ms = s->jitter_ms;
            m->jitter_is_pct = l->jitter_is_pct;
            m->jitter_pct = l->jitter_pct;
            break;
        case HK_RISE:
            d->rise = s->rise;
            break;
        case HK_FALL:
            d->fall = s->fall;
            break;
        case HK_PASSIVE_FALL:
            d->passive_fall = s->passive_fall;
            break;
        case HK_PASSIVE_FALL_REFUSED:
            d->passive_fall_refused = s->passive_fall_refused;
            break;
        case HK_PASSIVE_5XX:
            d->passive_5xx = s->passive_5xx;
            break;
        case HK_INITIAL:
            d->initial = s->initial;
            break;
        case HK_SLOW:
            d->slow_ms = s->slow_ms;
            break;
        case HK__COUNT:
            break;
        }
    }
}

/* Reports a conflict between keys a and b at whichever was set by the deeper block: that is
 * the line the user changed last. Built-in defaults never conflict with each other. */
__attribute__((format(printf, 5, 6))) static int health_blame(sst__cfg_ctx_t *c,
                                                              const health_merge_t *m,
                                                              health_key_t a, health_key_t b,
                                                              const char *fmt, ...)
{
    const health_layer_t *la = m->from[a], *lb = m->from[b], *l;
    health_key_t k;
    char msg[sizeof c->diag->msg];
    va_list ap;

    if (lb == NULL || (la != NULL && la->level >= lb->level)) {
        l = la;
        k = a;
    } else {
        l = lb;
        k = b;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l == NULL)
        return sst__cfg_fail(c, NULL, "%s", msg);
    size_t saved = c->path_len;
    char path[sizeof c->path];
    memcpy(path, c->path, sizeof path);
    sst__cfg_pop(c, 0);
    memcpy(c->path, l->path, sizeof c->path);
    c->path_len = strlen(c->path);
    sst__cfg_push_key(c, health_keys[k]);
    int rc = sst__cfg_fail(c, l->node[k], "%s", msg);
    memcpy(c->path, path, sizeof path);
    c->path_len = saved;
    return rc;
}

/* The effective settings: jitter resolved against the merged interval, fast_interval clamped. */
static int health_finalize(sst__cfg_ctx_t *c, const health_merge_t *m, sst_health_cfg_t *out)
{
    sst_health_cfg_t h = m->v;
    char a[32], b[32];

    if (m->from[HK_JITTER] == NULL)
        h.jitter_ms = h.interval_ms / 10;
    else if (m->jitter_is_pct)
        h.jitter_ms = h.interval_ms * m->jitter_pct / 100;
    else if (h.jitter_ms > h.interval_ms / 2)
        return health_blame(
            c, m, HK_JITTER, HK_INTERVAL, "jitter %s is more than half of interval %s",
            sst__fmt_ms(h.jitter_ms, a, sizeof a), sst__fmt_ms(h.interval_ms, b, sizeof b));
    if (h.timeout_ms > h.interval_ms)
        return health_blame(c, m, HK_TIMEOUT, HK_INTERVAL,
                            "timeout %s exceeds interval %s: a probe must end before the next",
                            sst__fmt_ms(h.timeout_ms, a, sizeof a),
                            sst__fmt_ms(h.interval_ms, b, sizeof b));
    /* a probe that takes `timeout` already fails (L7TOUT), so slow must sit below it to ever
     * fire (issue 15) */
    if (h.slow_ms > 0 && h.slow_ms >= h.timeout_ms)
        return health_blame(c, m, HK_SLOW, HK_TIMEOUT,
                            "slow %s must be below timeout %s: a probe that slow already fails",
                            sst__fmt_ms(h.slow_ms, a, sizeof a),
                            sst__fmt_ms(h.timeout_ms, b, sizeof b));
    if (h.expect_body != NULL && strcmp(h.method, "HEAD") == 0)
        return health_blame(c, m, HK_EXPECT_BODY, HK_METHOD,
                            "expect_body cannot match: a HEAD response has no body");
    if (h.fast_interval_ms > h.interval_ms)
        h.fast_interval_ms = h.interval_ms;
    *out = h;
    return 0;
}

/* --- regions and backends ---------------------------------------------------------------- */

/* Region and route names: [A-Za-z0-9_.-]+, so they read well in logs, metrics and URLs. */
static bool regions_is_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static bool regions_same_sockaddr(const sst_addr_t *a, const sst_addr_t *b)
{
    return a->salen != 0 && a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static int backend_parse(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t region,
                         const health_merge_t *region_health)
{
    static const char *const keys[] = {"address", "weight", "health"};
    sst_config_t *cfg = c->cfg;
    sst_backend_cfg_t *b = &cfg->backends[cfg->n_backends];
    const yaml_node_t *addr = n, *v;
    health_merge_t m = *region_health;
    health_layer_t layer;
    size_t mark;

    b->region = region;
    b->weight = 1;
    if (n->type != YAML_SCALAR_NODE) {
        if (sst__cfg_check_map(c, n, keys, COUNT_OF(keys)) != 0)
            return SST_EINVAL;
        addr = sst__cfg_get(c, n, "address");
        if (addr == NULL) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, n, "required (e.g. address: 127.0.0.1:9001)");
        }
    }
    mark = addr == n ? c->path_len : sst__cfg_push_key(c, "address");
    if (sst__cfg_addr(c, addr, false, &b->addr) != 0)
        return SST_EINVAL;
    for (size_t j = 0; j < cfg->n_backends; j++) {
        const sst_backend_cfg_t *o = &cfg->backends[j];
        if (strcmp(o->addr.text, b->addr.text) == 0 || regions_same_sockaddr(&o->addr, &b->addr))
            return sst__cfg_fail(c, addr, "backend %s is already listed in region \"%s\"",
                                 b->addr.text, cfg->regions[o->region].name);
    }
    sst__cfg_pop(c, mark);
    if ((v = sst__cfg_get(c, n, "weight")) != NULL) {
        mark = sst__cfg_push_key(c, "weight");
        if (health_u32(c, v, 1, 256, &b->weight) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "health")) != NULL) {
        mark = sst__cfg_push_key(c, "health");
        if (health_parse_layer(c, v, 2, &layer) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
        health_apply(&m, &layer);
    }
    if (health_finalize(c, &m, &b->health) != 0)
        return SST_EINVAL;
    cfg->n_backends++;
    return 0;
}

static int region_name(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    sst_config_t *cfg = c->cfg;
    sst_region_cfg_t *r = &cfg->regions[idx];
    const yaml_node_t *v = sst__cfg_get(c, n, "name");
    char q[64];

    sst__cfg_push_key(c, "name");
    if (v == NULL)
        return sst__cfg_fail(c, n, "required: every region needs a name");
    if (sst__cfg_string(c, v, 64, false, &r->name) != 0)
        return SST_EINVAL;
    if (!regions_is_name(r->name))
        return sst__cfg_fail(c, v, "invalid region name %s: use letters, digits, '_', '.', '-'",
                             sst__quote(sst_str_c(r->name), q, sizeof q));
    for (size_t j = 0; j < idx; j++)
        if (strcmp(cfg->regions[j].name, r->name) == 0)
            return sst__cfg_fail(c, v, "duplicate region name \"%s\" (also regions[%zu])", r->name,
                                 j);
    return 0;
}

static int region_backends(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx,
                           const health_merge_t *health)
{
    sst_config_t *cfg = c->cfg;
    sst_region_cfg_t *r = &cfg->regions[idx];
    const yaml_node_t *v = sst__cfg_get(c, n, "backends");
    size_t count;

    sst__cfg_push_key(c, "backends");
    if (v == NULL)
        return sst__cfg_fail(c, n,
                             "required: at least one backend address, e.g. "
                             "backends: [127.0.0.1:9001]");
    if (sst__cfg_seq(c, v, 1, SST_MAX_BACKENDS, &count) != 0)
        return SST_EINVAL;
    if (count > SST_MAX_BACKENDS - cfg->n_backends)
        return sst__cfg_fail(c, v, "more than %d backends across all regions", SST_MAX_BACKENDS);
    r->first_backend = cfg->n_backends;
    for (size_t i = 0; i < count; i++) {
        size_t mark = sst__cfg_push_index(c, i);
        if (backend_parse(c, sst__cfg_seq_item(c, v, i), idx, health) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    r->n_backends = count;
    return 0;
}

static int region_parse(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx,
                        const health_layer_t *top)
{
    static const char *const keys[] = {"name",
                                       "url",
                                       "backends",
                                       "health",
                                       "min_healthy",
                                       "max_ejection",
                                       "slow_start",
                                       "failback_delay",
                                       "send_proxy_protocol",
                                       "tls"};
    static const char *const send_proxy[] = {"off", "v1", "v2"}; /* = sst_send_proxy_t */
    sst_region_cfg_t *r = &c->cfg->regions[idx];
    const size_t base = c->path_len;
    const yaml_node_t *v;
    health_layer_t layer;
    health_merge_t merged;
    char q[64], why[SST__WHY_SIZE];
    sst_str_t s;

    if (n->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, n, "expected a mapping with name: and backends:");
    if (sst__cfg_check_map(c, n, keys, COUNT_OF(keys)) != 0)
        return SST_EINVAL;
    if (region_name(c, n, idx) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);

    if ((v = sst__cfg_get(c, n, "url")) != NULL) {
        sst__cfg_push_key(c, "url");
        if (sst__cfg_scalar(c, v, "a URL", &s) != 0 ||
            sst__cfg_string(c, v, 2048, false, &r->url) != 0)
            return SST_EINVAL;
        if (sst__normalize_url(r->url, why) != 0)
            return sst__cfg_fail(c, v, "invalid url %s: %s", sst__quote(s, q, sizeof q), why);
        sst__cfg_pop(c, base);
    }

    health_defaults(&merged);
    health_apply(&merged, top);
    if ((v = sst__cfg_get(c, n, "health")) != NULL) {
        sst__cfg_push_key(c, "health");
        if (health_parse_layer(c, v, 1, &layer) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
        health_apply(&merged, &layer);
    }
    if (health_finalize(c, &merged, &r->health) != 0)
        return SST_EINVAL;

    if (region_backends(c, n, idx, &merged) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);

    r->min_healthy = 1;
    if ((v = sst__cfg_get(c, n, "min_healthy")) != NULL) {
        sst__cfg_push_key(c, "min_healthy");
        if (sst__cfg_scalar(c, v, "a count or a percentage", &s) != 0)
            return SST_EINVAL;
        r->min_healthy_pct = s.len > 0 && s.base[s.len - 1] == '%';
        if (r->min_healthy_pct ? sst__cfg_percent(c, v, 1, 100, false, &r->min_healthy)
                               : health_u32(c, v, 1, (uint32_t)r->n_backends, &r->min_healthy))
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    r->max_ejection_pct = 100;
    if ((v = sst__cfg_get(c, n, "max_ejection")) != NULL) {
        sst__cfg_push_key(c, "max_ejection");
        if (sst__cfg_percent(c, v, 0, 100, true, &r->max_ejection_pct) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "slow_start")) != NULL) {
        sst__cfg_push_key(c, "slow_start");
        if (sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &r->slow_start_ms) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    r->failback_delay_ms = 10000;
    if ((v = sst__cfg_get(c, n, "failback_delay")) != NULL) {
        sst__cfg_push_key(c, "failback_delay");
        if (sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &r->failback_delay_ms) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "send_proxy_protocol")) != NULL) {
        int mode;
        sst__cfg_push_key(c, "send_proxy_protocol");
        if (sst__cfg_enum(c, v, send_proxy, COUNT_OF(send_proxy), &mode) != 0)
            return SST_EINVAL;
        r->send_proxy_protocol = (sst_send_proxy_t)mode;
        sst__cfg_pop(c, base);
    }
    return sst__cfg_parse_region_tls(c, n, idx);
}

int sst__cfg_parse_regions(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *h = sst__cfg_get(c, root, "health");
    const yaml_node_t *regions = sst__cfg_get(c, root, "regions");
    health_layer_t top;
    size_t count;

    memset(&top, 0, sizeof top);
    if (h != NULL) {
        sst__cfg_push_key(c, "health");
        if (health_parse_layer(c, h, 0, &top) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, 0);
    }
    sst__cfg_push_key(c, "regions");
    if (regions == NULL)
        return sst__cfg_fail(c, root, "required: at least one region with name: and backends:");
    if (sst__cfg_seq(c, regions, 1, SST_MAX_REGIONS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        size_t mark = sst__cfg_push_index(c, i);
        if (region_parse(c, sst__cfg_seq_item(c, regions, i), i, &top) != 0)
            return SST_EINVAL;
        c->cfg->n_regions++;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

/* --- routes ------------------------------------------------------------------------------ */

static void route_defaults(sst_route_cfg_t *r)
{
    r->redirect_status = 307;
    r->all_down = SST_ALL_DOWN_REJECT;
    r->fallback_region = SIZE_MAX;
    r->retry_after_s = 5;
    r->max_hops = 1;
    r->at_hop_limit = SST_HOP_LIMIT_SERVE;
    r->redirect_discard_bytes = 64 * 1024;
    r->retries = 2;
}

/* A region a route may redirect to needs a url, unless this instance runs in it (then the
 * route proxies to it instead). */
static int route_check_target(sst__cfg_ctx_t *c, const yaml_node_t *at, size_t region,
                              const char *role)
{
    const sst_config_t *cfg = c->cfg;
    const sst_region_cfg_t *r = &cfg->regions[region];

    if (r->url != NULL || region == cfg->local_region)
        return 0;
    return sst__cfg_fail(c, at,
                         "region \"%s\" has no url, so it cannot be a %s redirect target "
                         "(set regions[%zu].url, or make it local_region)",
                         r->name, role, region);
}

static int route_name(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    sst_config_t *cfg = c->cfg;
    sst_route_cfg_t *r = &cfg->routes[idx];
    const yaml_node_t *v = sst__cfg_get(c, n, "name");
    char buf[32], q[64];

    if (v == NULL) {
        int len = snprintf(buf, sizeof buf, "route%zu", idx);
        r->name = sst__cfg_strdup(c, sst_str(buf, (size_t)len));
        if (r->name == NULL)
            return sst__cfg_nomem(c);
        for (size_t j = 0; j < idx; j++)
            if (strcmp(cfg->routes[j].name, r->name) == 0)
                return sst__cfg_fail(c, n,
                                     "the default name \"%s\" of this route is taken by "
                                     "routes[%zu]: give this route a name",
                                     r->name, j);
        return 0;
    }
    sst__cfg_push_key(c, "name");
    if (sst__cfg_string(c, v, 64, false, &r->name) != 0)
        return SST_EINVAL;
    if (!regions_is_name(r->name))
        return sst__cfg_fail(c, v, "invalid route name %s: use letters, digits, '_', '.', '-'",
                             sst__quote(sst_str_c(r->name), q, sizeof q));
    for (size_t j = 0; j < idx; j++)
        if (strcmp(cfg->routes[j].name, r->name) == 0)
            return sst__cfg_fail(c, v, "duplicate route name \"%s\" (also routes[%zu])", r->name,
                                 j);
    return 0;
}

static int route_match(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    static const char *const keys[] = {"host", "path_prefix"};
    sst_config_t *cfg = c->cfg;
    sst_route_cfg_t *r = &cfg->routes[idx];
    const yaml_node_t *m = sst__cfg_get(c, n, "match"), *v;
    const size_t base = c->path_len;
    char q[64], why[SST__WHY_SIZE];
    sst_str_t s;

    r->host = sst__cfg_strdup(c, SST_STR_LIT("*"));
    r->path_prefix = sst__cfg_strdup(c, SST_STR_LIT("/"));
    if (r->host == NULL || r->path_prefix == NULL)
        return sst__cfg_nomem(c);
    sst__cfg_push_key(c, "match");
    const size_t mbase = c->path_len;
    if (m != NULL) {
        if (sst__cfg_check_map(c, m, keys, COUNT_OF(keys)) != 0)
            return SST_EINVAL;
        if ((v = sst__cfg_get(c, m, "host")) != NULL) {
            sst__cfg_push_key(c, "host");
            if (sst__cfg_scalar(c, v, "a host pattern", &s) != 0 ||
                sst__cfg_string(c, v, 255, false, &r->host) != 0)
                return SST_EINVAL;
            if (sst__normalize_host_pattern(r->host, why) != 0)
                return sst__cfg_fail(c, v, "invalid host %s: %s", sst__quote(s, q, sizeof q), why);
            sst__cfg_pop(c, mbase);
        }
        if ((v = sst__cfg_get(c, m, "path_prefix")) != NULL) {
            sst__cfg_push_key(c, "path_prefix");
            if (sst__cfg_string(c, v, 1024, false, &r->path_prefix) != 0)
                return SST_EINVAL;
            s = sst_str_c(r->path_prefix);
            if (sst__check_path(s, why) != 0)
                return sst__cfg_fail(c, v, "invalid path_prefix %s: %s", sst__quote(s, q, sizeof q),
                                     why);
            if (strchr(r->path_prefix, '?') != NULL)
                return sst__cfg_fail(c, v, "invalid path_prefix %s: a query (?) never matches",
                                     sst__quote(s, q, sizeof q));
            sst__cfg_pop(c, mbase);
        }
    }
    for (size_t j = 0; j < idx; j++) {
        const sst_route_cfg_t *o = &cfg->routes[j];
        if (strcmp(o->host, r->host) == 0 && strcmp(o->path_prefix, r->path_prefix) == 0)
            return sst__cfg_fail(c, m ? m : n,
                                 "routes[%zu] already matches host \"%s\" and path_prefix \"%s\": "
                                 "this route would never be chosen",
                                 j, r->host, r->path_prefix);
    }
    sst__cfg_pop(c, base);
    return 0;
}

static int route_regions(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    sst_route_cfg_t *r = &c->cfg->routes[idx];
    const yaml_node_t *v;
    const size_t base = c->path_len;
    size_t count;

    v = sst__cfg_get(c, n, "primary");
    sst__cfg_push_key(c, "primary");
    if (v == NULL)
        return sst__cfg_fail(c, n, "required: the region that serves this route when healthy");
    if (sst__cfg_region_ref(c, v, &r->primary) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);
    if ((v = sst__cfg_get(c, n, "failover")) == NULL)
        return 0;
    sst__cfg_push_key(c, "failover");
    if (sst__cfg_seq(c, v, 0, SST_MAX_REGIONS - 1, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, v, i);
        size_t region, mark = sst__cfg_push_index(c, i);
        if (sst__cfg_region_ref(c, item, &region) != 0)
            return SST_EINVAL;
        if (region == r->primary)
            return sst__cfg_fail(c, item, "\"%s\" is the primary: list only other regions",
                                 c->cfg->regions[region].name);
        for (size_t j = 0; j < r->n_failover; j++)
            if (r->failover[j] == region)
                return sst__cfg_fail(c, item, "\"%s\" is listed twice (also failover[%zu])",
                                     c->cfg->regions[region].name, j);
        if (route_check_target(c, item, region, "failover") != 0)
            return SST_EINVAL;
        r->failover[r->n_failover++] = region;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, base);
    return 0;
}

static int route_all_down(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_route_cfg_t *r)
{
    static const char *const words[] = {
        [SST_ALL_DOWN_REJECT] = "reject", [SST_ALL_DOWN_FAIL_OPEN] = "fail_open"};
    static const char *const keys[] = {"fallback"};
    const yaml_node_t *f;
    sst_str_t s;
    int idx;

    if (v->type == YAML_SCALAR_NODE) {
        if (sst__cfg_scalar(c, v, "reject, fail_open or {fallback: REGION}", &s) != 0)
            return SST_EINVAL;
        if (sst_str_eq(s, SST_STR_LIT("fallback")))
            return sst__cfg_fail(c, v, "fallback needs a region: all_down: {fallback: REGION}");
        if (sst__cfg_enum(c, v, words, COUNT_OF(words), &idx) != 0)
            return SST_EINVAL;
        r->all_down = (sst_all_down_t)idx;
        return 0;
    }
    if (sst__cfg_check_map(c, v, keys, COUNT_OF(keys)) != 0)
        return SST_EINVAL;
    f = sst__cfg_get(c, v, "fallback");
    sst__cfg_push_key(c, "fallback");
    if (f == NULL)
        return sst__cfg_fail(c, v, "required: all_down: {fallback: REGION}");
    if (sst__cfg_region_ref(c, f, &r->fallback_region) != 0 ||
        route_check_target(c, f, r->fallback_region, "fallback") != 0)
        return SST_EINVAL;
    r->all_down = SST_ALL_DOWN_FALLBACK;
    return 0;
}

/* Query parameter names: RFC 3986 unreserved characters, so the name needs no escaping. */
static bool route_is_param_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '~'))
            return false;
    }
    return true;
}

static int route_cors(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_route_cfg_t *r)
{
    char q[64], why[SST__WHY_SIZE];
    size_t count;
    sst_str_t s;

    if (sst__cfg_seq(c, v, 0, SST_MAX_CORS_ORIGINS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, v, i);
        size_t mark = sst__cfg_push_index(c, i);
        char *o;
        if (sst__cfg_scalar(c, item, "an origin", &s) != 0 ||
            sst__cfg_string(c, item, 512, false, &o) != 0)
            return SST_EINVAL;
        if (sst__normalize_origin(o, why) != 0)
            return sst__cfg_fail(c, item, "invalid origin %s: %s", sst__quote(s, q, sizeof q), why);
        r->cors_origins[r->n_cors_origins++] = o;
        sst__cfg_pop(c, mark);
    }
    return 0;
}

/* Fields sidestep drops, rewrites or gives a meaning of its own on the way to a backend: a key
 * in one of them would not reach the backend as the client sent it, so the backend could not
 * deduplicate by it while sidestep repeated the request. */
static bool route_is_reserved_field(sst_str_t name)
{
    static const char *const reserved[] = {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "expect",
        "via",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    };
    for (size_t i = 0; i < COUNT_OF(reserved); i++)
        if (sst_str_ieq_c(name, reserved[i]))
            return true;
    return false;
}

/* Issue 15: try_timeout (checked against timeouts.upstream_response once that is read, in
 * sst__cfg_check_routes) and idempotency_header. */
static int route_gray_options(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_route_cfg_t *r)
{
    const size_t base = c->path_len;
    const yaml_node_t *v;
    char q[64];

    if ((v = sst__cfg_get(c, n, "try_timeout")) != NULL) {
        sst__cfg_push_key(c, "try_timeout");
        if (sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &r->try_timeout_ms) != 0)
            return SST_EINVAL;
        if (r->try_timeout_ms == 0)
            return sst__cfg_fail(c, v,
                                 "must be above 0 (leave the key out for no per-try timeout)");
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "idempotency_header")) != NULL) {
        sst__cfg_push_key(c, "idempotency_header");
        if (sst__cfg_string(c, v, 64, false, &r->idempotency_header) != 0)
            return SST_EINVAL;
        sst_str_t name = sst_str_c(r->idempotency_header);
        if (!sst_str_is_token(name))
            return sst__cfg_fail(c, v,
                                 "invalid idempotency_header %s: expected a header field name "
                                 "(a token, e.g. Idempotency-Key)",
                                 sst__quote(name, q, sizeof q));
        if (route_is_reserved_field(name))
            return sst__cfg_fail(c, v,
                                 "%s cannot carry an idempotency key: sidestep does not forward "
                                 "it as sent",
                                 sst__quote(name, q, sizeof q));
        sst__cfg_pop(c, base);
    }
    return 0;
}

static int route_options(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_route_cfg_t *r)
{
    static const char *const hop_words[] = {
        [SST_HOP_LIMIT_SERVE] = "serve", [SST_HOP_LIMIT_REJECT] = "reject"};
    const size_t base = c->path_len;
    const yaml_node_t *v;
    uint64_t u;
    int idx;
    char q[64];

    if ((v = sst__cfg_get(c, n, "redirect_status")) != NULL) {
        sst__cfg_push_key(c, "redirect_status");
        /* 301/302 let clients turn POST into GET; only the method-keeping codes fit failover */
        if (sst__cfg_uint(c, v, 307, 308, &u) != 0)
            return SST_EINVAL;
        r->redirect_status = (uint16_t)u;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "all_down")) != NULL) {
        sst__cfg_push_key(c, "all_down");
        if (route_all_down(c, v, r) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "retry_after")) != NULL) {
        sst__cfg_push_key(c, "retry_after");
        if (sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &u) != 0)
            return SST_EINVAL;
        r->retry_after_s = (u + 999) / 1000; /* Retry-After counts whole seconds */
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "hop_param")) != NULL) {
        sst__cfg_push_key(c, "hop_param");
        if (sst__cfg_string(c, v, 64, false, &r->hop_param) != 0)
            return SST_EINVAL;
        if (!route_is_param_name(r->hop_param))
            return sst__cfg_fail(c, v,
                                 "invalid hop_param %s: use letters, digits, '-', '.', '_', '~'",
                                 sst__quote(sst_str_c(r->hop_param), q, sizeof q));
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "max_hops")) != NULL) {
        sst__cfg_push_key(c, "max_hops");
        if (health_u32(c, v, 1, SST_MAX_HOPS, &r->max_hops) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "at_hop_limit")) != NULL) {
        sst__cfg_push_key(c, "at_hop_limit");
        if (sst__cfg_enum(c, v, hop_words, COUNT_OF(hop_words), &idx) != 0)
            return SST_EINVAL;
        r->at_hop_limit = (sst_hop_limit_t)idx;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "cors_origins")) != NULL) {
        sst__cfg_push_key(c, "cors_origins");
        if (route_cors(c, v, r) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "cors_credentials")) != NULL) {
        sst__cfg_push_key(c, "cors_credentials");
        if (sst__cfg_bool(c, v, &r->cors_credentials) != 0)
            return SST_EINVAL;
        /* Fetch's CORS check refuses credentials with a wildcard: an operator asking for both
         * means something neither can deliver, so say so instead of picking one */
        for (size_t i = 0; r->cors_credentials && i < r->n_cors_origins; i++)
            if (strcmp(r->cors_origins[i], "*") == 0)
                return sst__cfg_fail(c, v,
                                     "cannot be true with \"*\" in cors_origins: list the origins "
                                     "that may send credentials");
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "redirect_discard")) != NULL) {
        sst__cfg_push_key(c, "redirect_discard");
        if (sst__cfg_size(c, v, 0, 1024ull * 1024 * 1024, &r->redirect_discard_bytes) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "retries")) != NULL) {
        sst__cfg_push_key(c, "retries");
        if (health_u32(c, v, 0, 16, &r->retries) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    return route_gray_options(c, n, r);
}

static int route_parse(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    static const char *const keys[] = {
        "name",
        "match",
        "primary",
        "failover",
        "redirect_status",
        "all_down",
        "retry_after",
        "hop_param",
        "max_hops",
        "at_hop_limit",
        "cors_origins",
        "cors_credentials",
        "redirect_discard",
        "retries",
        "try_timeout",
        "idempotency_header",
    };
    sst_route_cfg_t *r = &c->cfg->routes[idx];
    const size_t base = c->path_len;

    route_defaults(r);
    if (n->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, n, "expected a mapping with at least primary:");
    if (sst__cfg_check_map(c, n, keys, COUNT_OF(keys)) != 0 || route_name(c, n, idx) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);
    if (route_match(c, n, idx) != 0 || route_regions(c, n, idx) != 0 || route_options(c, n, r) != 0)
        return SST_EINVAL;
    return 0;
}

/* No `routes`: one catch-all route, first region primary, the others failover in file order. */
static int route_default(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;
    sst_route_cfg_t *r = &cfg->routes[0];
    const yaml_node_t *regions = sst__cfg_get(c, root, "regions");

    route_defaults(r);
    r->name = sst__cfg_strdup(c, SST_STR_LIT("default"));
    r->host = sst__cfg_strdup(c, SST_STR_LIT("*"));
    r->path_prefix = sst__cfg_strdup(c, SST_STR_LIT("/"));
    if (r->name == NULL || r->host == NULL || r->path_prefix == NULL)
        return sst__cfg_nomem(c);
    r->primary = 0;
    for (size_t i = 1; i < cfg->n_regions; i++) {
        const sst_region_cfg_t *reg = &cfg->regions[i];
        if (reg->url == NULL && i != cfg->local_region) {
            sst__cfg_push_key(c, "regions");
            sst__cfg_push_index(c, i);
            return sst__cfg_fail(c, sst__cfg_seq_item(c, regions, i),
                                 "region \"%s\" has no url, but without routes: the default route "
                                 "fails over to it (set url, make it local_region, or add routes:)",
                                 reg->name);
        }
        r->failover[r->n_failover++] = i;
    }
    cfg->n_routes = 1;
    return 0;
}

int sst__cfg_parse_routes(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *n = sst__cfg_get(c, root, "routes");
    size_t count;

    if (n == NULL)
        return route_default(c, root);
    sst__cfg_push_key(c, "routes");
    if (sst__cfg_seq(c, n, 1, SST_MAX_ROUTES, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        size_t mark = sst__cfg_push_index(c, i);
        if (route_parse(c, sst__cfg_seq_item(c, n, i), i) != 0)
            return SST_EINVAL;
        c->cfg->n_routes++;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

int sst__cfg_check_routes(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const sst_config_t *cfg = c->cfg;
    const yaml_node_t *routes = sst__cfg_get(c, root, "routes");
    uint64_t limit = cfg->timeouts.upstream_response_ms;
    char a[32], b[32];

    if (routes == NULL || routes->type != YAML_SEQUENCE_NODE)
        return 0; /* the default route has no try_timeout */
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const sst_route_cfg_t *r = &cfg->routes[i];
        if (r->try_timeout_ms == 0 || r->try_timeout_ms < limit)
            continue;
        /* The response timeout would end every attempt first (both count from the written
         * request), so the per-try timer could never fire: a mistake, not a setting. */
        const yaml_node_t *v = sst__cfg_get(c, sst__cfg_seq_item(c, routes, i), "try_timeout");
        sst__cfg_push_key(c, "routes");
        sst__cfg_push_index(c, i);
        sst__cfg_push_key(c, "try_timeout");
        return sst__cfg_fail(c, v,
                             "try_timeout %s must be below timeouts.upstream_response %s: the "
                             "response timeout would end the attempt first",
                             sst__fmt_ms(r->try_timeout_ms, a, sizeof a),
                             sst__fmt_ms(limit, b, sizeof b));
    }
    return 0;
}
