/* Builds an sst_config_t by hand for unit tests, with the defaults config.h documents, without
 * the YAML loader. Addresses must be numeric IPv4/IPv6; strings the fixture allocates (names)
 * are freed by cfx_free; expect_body pointers are borrowed and never freed. */
#ifndef SST_TESTS_CFG_FIXTURE_H
#define SST_TESTS_CFG_FIXTURE_H

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/config.h"

static inline char *cfx_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    assert(p != NULL);
    memcpy(p, s, n);
    return p;
}

/* The health defaults of config.h. */
static inline void cfx_health_defaults(sst_health_cfg_t *hc)
{
    memset(hc, 0, sizeof(*hc));
    hc->enabled = true;
    snprintf(hc->method, sizeof(hc->method), "GET");
    snprintf(hc->path, sizeof(hc->path), "/healthz");
    hc->expect[0].lo = 200;
    hc->expect[0].hi = 399;
    hc->n_expect = 1;
    hc->interval_ms = 2000;
    hc->fast_interval_ms = 500;
    hc->timeout_ms = 1000;
    hc->jitter_ms = 200;
    hc->rise = 2;
    hc->fall = 2;
    hc->passive_fall = 3;
    hc->passive_fall_refused = 1;
    hc->passive_5xx = false;
    hc->initial = SST_INITIAL_AUTO;
}

/* A config with no regions, backends or routes and every other default set. */
static inline sst_config_t *cfx_new(void)
{
    sst_config_t *cfg = calloc(1, sizeof(*cfg));
    assert(cfg != NULL);
    atomic_init(&cfg->refcount, 1);
    cfg->source = cfx_strdup("<cfg_fixture>");
    cfg->local_region = SIZE_MAX;
    cfg->limits.request_line = 8 * 1024;
    cfg->limits.header_field = 8 * 1024;
    cfg->limits.header_bytes = 32 * 1024;
    cfg->limits.headers = 100;
    cfg->limits.body = 100 * 1024 * 1024;
    cfg->limits.connections = 10000;
    cfg->limits.upstream_connections = 1024;
    cfg->limits.upstream_idle = 64;
    cfg->limits.response_header_bytes = 32 * 1024;
    cfg->limits.response_headers = 100;
    cfg->limits.buffer = 64 * 1024;
    cfg->timeouts.request_head_ms = 10000;
    cfg->timeouts.idle_ms = 60000;
    cfg->timeouts.connect_ms = 2000;
    cfg->timeouts.upstream_response_ms = 30000;
    cfg->timeouts.body_ms = 30000;
    cfg->timeouts.send_ms = 30000;
    cfg->timeouts.linger_ms = 2000;
    cfg->timeouts.shutdown_ms = 30000;
    return cfg;
}

/* Adds a region with default settings; returns its index. Add a region's backends right after
 * it (backends of one region are contiguous). */
static inline size_t cfx_region(sst_config_t *cfg, const char *name)
{
    assert(cfg->n_regions < SST_MAX_REGIONS);
    size_t r = cfg->n_regions++;
    sst_region_cfg_t *rc = &cfg->regions[r];
    memset(rc, 0, sizeof(*rc));
    rc->name = cfx_strdup(name);
    rc->first_backend = cfg->n_backends;
    cfx_health_defaults(&rc->health);
    rc->min_healthy = 1;
    rc->max_ejection_pct = 100;
    rc->failback_delay_ms = 10000;
    return r;
}

/* Adds backend ip:port (numeric) to region r, which must be the last region given backends;
 * the backend copies the region's current health settings. Returns its index. */
static inline size_t cfx_backend(sst_config_t *cfg, size_t r, const char *ip, uint16_t port)
{
    assert(r < cfg->n_regions && cfg->n_backends < SST_MAX_BACKENDS);
    sst_region_cfg_t *rc = &cfg->regions[r];
    if (rc->n_backends == 0)
        rc->first_backend = cfg->n_backends;
    assert(rc->first_backend + rc->n_backends == cfg->n_backends);
    size_t b = cfg->n_backends++;
    sst_backend_cfg_t *bc = &cfg->backends[b];
    memset(bc, 0, sizeof(*bc));
    bc->region = r;
    bc->weight = 1;
    bc->health = rc->health;
    rc->n_backends++;

    sst_addr_t *a = &bc->addr;
    snprintf(a->host, sizeof(a->host), "%s", ip);
    a->port = port;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->sa;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a->salen = sizeof(*v4);
        snprintf(a->text, sizeof(a->text), "%s:%u", ip, (unsigned)port);
    } else {
        int ok = inet_pton(AF_INET6, ip, &v6->sin6_addr);
        assert(ok == 1);
        (void)ok;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a->salen = sizeof(*v6);
        snprintf(a->text, sizeof(a->text), "[%s]:%u", ip, (unsigned)port);
    }
    return b;
}

/* Copies region r's health settings into each of its backends (after changing them). */
static inline void cfx_apply_region_health(sst_config_t *cfg, size_t r)
{
    const sst_region_cfg_t *rc = &cfg->regions[r];
    for (size_t b = rc->first_backend; b < rc->first_backend + rc->n_backends; b++)
        cfg->backends[b].health = rc->health;
}

/* Adds a catch-all route with `primary` and the given failover order; returns its index. */
static inline size_t cfx_route(sst_config_t *cfg, size_t primary, const size_t *failover,
                               size_t n_failover)
{
    assert(cfg->n_routes < SST_MAX_ROUTES && n_failover <= SST_MAX_REGIONS);
    size_t i = cfg->n_routes++;
    sst_route_cfg_t *rt = &cfg->routes[i];
    char name[32];
    memset(rt, 0, sizeof(*rt));
    snprintf(name, sizeof(name), "route%zu", i);
    rt->name = cfx_strdup(name);
    rt->host = cfx_strdup("*");
    rt->path_prefix = cfx_strdup("/");
    rt->primary = primary;
    for (size_t k = 0; k < n_failover; k++)
        rt->failover[k] = failover[k];
    rt->n_failover = n_failover;
    rt->redirect_status = 307;
    rt->all_down = SST_ALL_DOWN_REJECT;
    rt->retry_after_s = 5;
    rt->max_hops = 1;
    rt->at_hop_limit = SST_HOP_LIMIT_SERVE;
    rt->redirect_discard_bytes = 64 * 1024;
    rt->retries = 2;
    return i;
}

static inline void cfx_free(sst_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t r = 0; r < cfg->n_regions; r++) {
        free(cfg->regions[r].name);
        free(cfg->regions[r].url);
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        free(cfg->routes[i].name);
        free(cfg->routes[i].host);
        free(cfg->routes[i].path_prefix);
        free(cfg->routes[i].hop_param);
    }
    free(cfg->source);
    free(cfg);
}

#endif
