/* Idle keep-alive connections to each backend, per worker: most recently used first, bounded
 * by limits.upstream_idle, closed after timeouts.upstream_idle. A pooled connection belongs to
 * the pool; a request only borrows it. Pools are keyed by backend address, so a reload that
 * keeps a backend keeps its warm connections. The pool never reads or writes a connection's
 * fields: it keeps them on a list and asks upstream.c the rest. */
#include "core/pool.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/upstream.h"

struct sst_pool_s {
    sst_link_t link; /* pools->all */
    sst_pools_t *set;
    char key[272]; /* backend address text */
    struct sockaddr_storage sa;
    uint16_t metric_id;
    bool retired;    /* not in the current config: close connections as they come back */
    sst_link_t idle; /* most recently used first */
    size_t n_idle;
    size_t n_total; /* idle + active + connecting */
};

void sst__pools_init(sst_pools_t *ps, sst_wmetrics_t *metrics)
{
    memset(ps->by_backend, 0, sizeof(ps->by_backend));
    ps->cfg = NULL;
    sst_list_init(&ps->all);
    ps->metrics = metrics;
    ps->draining = false;
}

static sst_pool_t *pool_find(sst_pools_t *ps, const char *key)
{
    for (sst_link_t *l = ps->all.next; l != &ps->all; l = l->next) {
        sst_pool_t *p = sst_container_of(l, sst_pool_t, link);
        if (strcmp(p->key, key) == 0)
            return p;
    }
    return NULL;
}

/* `current`: b comes from the worker's current config, which decides the pool's resolved
 * address and metric slot; a request still on an older config borrows the pool as it is. */
static sst_pool_t *pool_get(sst_pools_t *ps, const sst_backend_cfg_t *b, uint16_t metric_id,
                            bool current)
{
    sst_pool_t *p = pool_find(ps, b->addr.text);
    if (p != NULL && !current)
        return p;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            return NULL;
        p->set = ps;
        snprintf(p->key, sizeof(p->key), "%s", b->addr.text);
        sst_list_init(&p->idle);
        sst_list_push(&ps->all, &p->link);
    }
    /* the address may resolve differently after a reload */
    memcpy(&p->sa, &b->addr.sa, sizeof(p->sa));
    p->metric_id = metric_id;
    return p;
}

sst_pool_t *sst__pool_for(sst_pools_t *ps, const sst_view_t *view, size_t backend)
{
    if (view->cfg == ps->cfg && ps->by_backend[backend] != NULL)
        return ps->by_backend[backend];
    /* a request still routed with an older config: share pools by address */
    return pool_get(ps, &view->cfg->backends[backend], view->prep->backend_mid[backend], false);
}

const struct sockaddr *sst__pool_addr(const sst_pool_t *p)
{
    return (const struct sockaddr *)&p->sa;
}

uint16_t sst__pool_metric_id(const sst_pool_t *p)
{
    return p->metric_id;
}

bool sst__pool_full(const sst_pool_t *p, size_t max)
{
    return p->n_total >= max;
}

void sst__pool_opened(sst_pool_t *p)
{
    p->n_total++;
    sst_counter_add(&p->set->metrics->up_active[p->metric_id], 1);
    sst_counter_add(&p->set->metrics->up_connects[p->metric_id], 1);
}

void sst__pool_closed(sst_pool_t *p)
{
    assert(p->n_total > 0);
    p->n_total--;
    sst_counter_add(&p->set->metrics->up_active[p->metric_id], (uint64_t)-1);
}

/* A connection idle for a second or more is peeked before reuse by a non-idempotent request:
 * the backend may have closed it since and its FIN be waiting unread, and sending such a
 * request on it would end in a reset after the request was written, which only a 502 can
 * answer. The peek costs a syscall, paid only where the race lives: backends close idle
 * connections after their keep-alive timeout, so a connection reused within a second is not
 * peeked, and idempotent requests never are (they are retried or redirected safely if they
 * meet a dead connection). */
#define PEEK_AFTER_IDLE_MS 1000

sst_upstream_t *sst__pool_take(sst_pool_t *p, bool verify, uint64_t now_ms)
{
    while (!sst_list_empty(&p->idle)) {
        sst_upstream_t *u = sst__upstream_of_link(p->idle.next);
        if (!verify || now_ms < sst__upstream_idle_since(u) + PEEK_AFTER_IDLE_MS ||
            sst__upstream_alive(u)) {
            sst__pool_forget(p, u);
            sst_counter_add(&p->set->metrics->up_reuses[p->metric_id], 1);
            return u;
        }
        sst__upstream_close(u); /* forgets it */
    }
    return NULL;
}

bool sst__pool_put(sst_pool_t *p, sst_upstream_t *u, size_t max_idle)
{
    if (p->retired || p->set->draining || p->n_idle >= max_idle)
        return false;
    sst_list_push(&p->idle, sst__upstream_link(u));
    p->n_idle++;
    sst_counter_add(&p->set->metrics->up_idle[p->metric_id], 1);
    return true;
}

void sst__pool_forget(sst_pool_t *p, sst_upstream_t *u)
{
    sst_list_remove(sst__upstream_link(u));
    p->n_idle--;
    sst_counter_add(&p->set->metrics->up_idle[p->metric_id], (uint64_t)-1);
}

static void pool_close_idle(sst_pool_t *p)
{
    while (!sst_list_empty(&p->idle))
        sst__upstream_close(sst__upstream_of_link(p->idle.next)); /* forgets it */
}

static void pool_maybe_free(sst_pool_t *p)
{
    if (p->retired && p->n_total == 0) {
        sst_list_remove(&p->link);
        free(p);
    }
}

void sst__pools_update(sst_pools_t *ps, const sst_config_t *cfg, const sst_prep_t *prep)
{
    for (sst_link_t *l = ps->all.next; l != &ps->all; l = l->next)
        sst_container_of(l, sst_pool_t, link)->retired = true;
    memset(ps->by_backend, 0, sizeof(ps->by_backend));
    ps->cfg = cfg;
    for (size_t b = 0; b < cfg->n_backends; b++) {
        sst_pool_t *p = pool_get(ps, &cfg->backends[b], prep->backend_mid[b], true);
        if (p != NULL)
            p->retired = false;
        ps->by_backend[b] = p; /* NULL on ENOMEM: sst__pool_for retries the allocation */
    }
    sst_link_t *l = ps->all.next;
    while (l != &ps->all) {
        sst_pool_t *p = sst_container_of(l, sst_pool_t, link);
        l = l->next;
        if (p->retired) {
            pool_close_idle(p);
            pool_maybe_free(p);
        }
    }
}

void sst__pools_close_all(sst_pools_t *ps)
{
    ps->draining = true;
    for (sst_link_t *l = ps->all.next; l != &ps->all; l = l->next)
        pool_close_idle(sst_container_of(l, sst_pool_t, link));
}

void sst__pools_free(sst_pools_t *ps)
{
    while (!sst_list_empty(&ps->all)) {
        sst_pool_t *p = sst_container_of(ps->all.next, sst_pool_t, link);
        sst_list_remove(&p->link);
        free(p);
    }
}
