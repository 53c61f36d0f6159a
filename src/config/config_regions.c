/* Health blocks (merged built-in defaults <- top-level `health` <- regions[].health <- a
 * backend's own `health`) and regions with their backends; routes over the region indices are
 * config_routes.c's. Errors name the block that set the offending key. */
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

int sst__cfg_u32(sst__cfg_ctx_t *c, const yaml_node_t *v, uint32_t lo, uint32_t hi, uint32_t *out)
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
        return sst__cfg_u32(c, v, 1, 100, &h->rise);
    case HK_FALL:
        return sst__cfg_u32(c, v, 1, 100, &h->fall);
    case HK_PASSIVE_FALL:
        return sst__cfg_u32(c, v, 0, 100, &h->passive_fall);
    case HK_PASSIVE_FALL_REFUSED:
        return sst__cfg_u32(c, v, 0, 100, &h->passive_fall_refused);
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
bool sst__cfg_is_name(const char *s)
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
        if (sst__cfg_u32(c, v, 1, 256, &b->weight) != 0)
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
    if (!sst__cfg_is_name(r->name))
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
                               : sst__cfg_u32(c, v, 1, (uint32_t)r->n_backends, &r->min_healthy))
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
