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
    char key[640];         /* backend address text, and its TLS settings for a TLS backend */
    sst_tls_client_t *tls; /* one reference: a TLS backend's client context, else NULL */
    size_t tls_backend;    /* the backend's index in the config that built `tls` */
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

/* The pool identity of cfg->backends[b]: its address, and for a TLS backend the settings its
 * connections were verified with and the trust they were checked against (the CA file's
 * contents, not its path: a reload after the file changed opens a new pool, and the old one's
 * connections close as they come back). A pooled connection is reused only under the same. */
static void pool_key(const sst_config_t *cfg, const sst_prep_t *prep, size_t b, char *key,
                     size_t size)
{
    const sst_backend_cfg_t *bc = &cfg->backends[b];
    const sst_tls_upstream_cfg_t *t = &cfg->regions[bc->region].tls;

    if (!t->enabled) {
        snprintf(key, size, "%s", bc->addr.text);
        return;
    }
    const sst_tls_client_t *cli = sst_tls_set_client(prep->tls, bc->region);
    snprintf(key, size, "%s tls name=%s verify=%d ca=%s#%s", bc->addr.text,
             t->server_name != NULL ? t->server_name : bc->addr.host, t->verify,
             t->ca != NULL ? t->ca : "-", cli != NULL ? sst_tls_client_trust(cli) : "-");
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

/* The pool of backend b of cfg (prep is cfg's). `current`: cfg is the worker's current config,
 * which decides the pool's resolved address, metric slot and TLS context; a request still on
 * an older config borrows the pool as it is. */
static sst_pool_t *pool_get(sst_pools_t *ps, const sst_config_t *cfg, const sst_prep_t *prep,
                            size_t b, bool current)
{
    char key[sizeof(((sst_pool_t *)0)->key)];
    pool_key(cfg, prep, b, key, sizeof(key));
    sst_pool_t *p = pool_find(ps, key);
    if (p != NULL && !current)
        return p;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            return NULL;
        p->set = ps;
        memcpy(p->key, key, sizeof(key));
        sst_list_init(&p->idle);
        sst_list_push(&ps->all, &p->link);
    }
    /* the address may resolve differently after a reload */
    memcpy(&p->sa, &cfg->backends[b].addr.sa, sizeof(p->sa));
    p->metric_id = prep->backend_mid[b];
    sst_tls_client_t *tls = sst_tls_set_client(prep->tls, cfg->backends[b].region);
    if (tls != p->tls) {
        sst_tls_client_unref(p->tls);
        p->tls = sst_tls_client_ref(tls);
    }
    p->tls_backend = b;
    return p;
}

sst_pool_t *sst__pool_for(sst_pools_t *ps, const sst_view_t *view, size_t backend)
{
    if (view->cfg == ps->cfg && ps->by_backend[backend] != NULL)
        return ps->by_backend[backend];
    /* a request still routed with an older config: share pools by address */
    return pool_get(ps, view->cfg, view->prep, backend, false);
}

const struct sockaddr *sst__pool_addr(const sst_pool_t *p)
{
    return (const struct sockaddr *)&p->sa;
}

const char *sst__pool_key(const sst_pool_t *p)
{
    return p->key;
}

sst_tls_client_t *sst__pool_tls(const sst_pool_t *p, size_t *backend)
{
    if (backend != NULL)
        *backend = p->tls_backend;
    return p->tls;
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

sst_upstream_t *sst__pool_take(sst_pool_t *p, bool verify, uint64_t now_ms,
                               const sst_tp_pp_out_t *pp)
{
    sst_link_t *l = p->idle.next;
    while (l != &p->idle) {
        sst_upstream_t *u = sst__upstream_of_link(l);
        l = l->next; /* u may close below */
        /* another client's header, or one a reload turned on or off: not this request's */
        if (!sst__upstream_pp_is(u, pp))
            continue;
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
    if (p->retired || p->set->draining || max_idle == 0)
        return false;
    if (p->n_idle >= max_idle) {
        if (sst__upstream_pp_is(u, NULL))
            return false;
        sst__upstream_close(sst__upstream_of_link(p->idle.prev)); /* forgets it */
    }
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
        sst_tls_client_unref(p->tls);
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
        sst_pool_t *p = pool_get(ps, cfg, prep, b, true);
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
        sst_tls_client_unref(p->tls);
        free(p);
    }
}
