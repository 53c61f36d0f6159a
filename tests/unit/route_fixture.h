/* Hand-built configs and health snapshots for the routing and balancing tests: no YAML, no
 * health state machine, just the structs filled field by field. */
#ifndef SST_TESTS_ROUTE_FIXTURE_H
#define SST_TESTS_ROUTE_FIXTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/route.h"

static inline char *fx_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* An empty config with no local region. Free with fx_config_free. */
static inline sst_config_t *fx_config_new(void)
{
    sst_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg != NULL)
        cfg->local_region = SIZE_MAX;
    return cfg;
}

static inline void fx_config_free(sst_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_regions; i++) {
        free(cfg->regions[i].name);
        free(cfg->regions[i].url);
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        sst_route_cfg_t *rt = &cfg->routes[i];
        free(rt->name);
        free(rt->host);
        free(rt->path_prefix);
        free(rt->hop_param);
        for (size_t j = 0; j < rt->n_cors_origins; j++)
            free(rt->cors_origins[j]);
    }
    free(cfg);
}

/* Adds a region with `n_backends` backends of the given weights (127.0.0.1:9000+index); url
 * may be NULL. Regions must be added in order, each with its backends, as the loader lays
 * them out. Returns the region index. */
static inline size_t fx_region(sst_config_t *cfg, const char *name, const char *url,
                               size_t n_backends, const uint32_t *weights)
{
    size_t r = cfg->n_regions++;
    sst_region_cfg_t *reg = &cfg->regions[r];
    reg->name = fx_strdup(name);
    reg->url = fx_strdup(url);
    reg->first_backend = cfg->n_backends;
    reg->n_backends = n_backends;
    reg->min_healthy = 1;
    for (size_t i = 0; i < n_backends; i++) {
        sst_backend_cfg_t *be = &cfg->backends[cfg->n_backends];
        be->region = r;
        be->weight = weights ? weights[i] : 1;
        be->addr.port = (uint16_t)(9000 + cfg->n_backends);
        memcpy(be->addr.host, "127.0.0.1", sizeof("127.0.0.1"));
        cfg->n_backends++;
    }
    return r;
}

/* Adds a route with the loader's defaults (307, reject 503 with Retry-After 5, max_hops 1,
 * retries 2, no hop marker). `failover` lists n_failover region indices. */
static inline sst_route_cfg_t *fx_route(sst_config_t *cfg, const char *host, const char *prefix,
                                        size_t primary, size_t n_failover, ...)
{
    sst_route_cfg_t *rt = &cfg->routes[cfg->n_routes++];
    va_list ap;

    rt->name = fx_strdup("route");
    rt->host = fx_strdup(host);
    rt->path_prefix = fx_strdup(prefix);
    rt->primary = primary;
    va_start(ap, n_failover);
    for (size_t i = 0; i < n_failover; i++)
        rt->failover[i] = va_arg(ap, size_t);
    va_end(ap);
    rt->n_failover = n_failover;
    rt->redirect_status = 307;
    rt->all_down = SST_ALL_DOWN_REJECT;
    rt->retry_after_s = 5;
    rt->max_hops = 1;
    rt->at_hop_limit = SST_HOP_LIMIT_SERVE;
    rt->redirect_discard_bytes = 64 * 1024;
    rt->retries = 2;
    return rt;
}

static inline void fx_route_cors(sst_route_cfg_t *rt, const char *origin)
{
    rt->cors_origins[rt->n_cors_origins++] = fx_strdup(origin);
}

static inline void fx_route_hop(sst_route_cfg_t *rt, const char *param, uint32_t max_hops)
{
    free(rt->hop_param);
    rt->hop_param = fx_strdup(param);
    rt->max_hops = max_hops;
}

/* A snapshot of cfg with every region and backend UP. Free with free(). */
static inline sst_hsnap_t *fx_snap_new(const sst_config_t *cfg)
{
    sst_hsnap_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->n_regions = cfg->n_regions;
    s->n_backends = cfg->n_backends;
    for (size_t r = 0; r < cfg->n_regions; r++) {
        s->regions[r].state = SST_UP;
        s->regions[r].n_up = (uint32_t)cfg->regions[r].n_backends;
    }
    for (size_t b = 0; b < cfg->n_backends; b++) {
        s->backends[b].state = SST_UP;
        s->backends[b].op = SST_UP;
    }
    return s;
}

static inline void fx_region_down(sst_hsnap_t *s, size_t r)
{
    s->regions[r].state = SST_DOWN;
    s->regions[r].n_up = 0;
}

static inline void fx_backend_state(sst_hsnap_t *s, size_t b, sst_state_t st, sst_force_t force)
{
    s->backends[b].state = (uint8_t)st;
    s->backends[b].op = (uint8_t)st;
    s->backends[b].force = (uint8_t)force;
}

/* The Location parts joined into buf (NUL-terminated); returns buf. */
static inline char *fx_location(const sst_decision_t *d, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_location; i++) {
        if (n + d->location[i].len >= size)
            break;
        memcpy(buf + n, d->location[i].base, d->location[i].len);
        n += d->location[i].len;
    }
    buf[n] = '\0';
    return buf;
}

static inline sst_str_t fx_s(const char *s)
{
    return sst_str_c(s);
}

#endif
