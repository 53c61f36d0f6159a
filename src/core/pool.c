/* Idle keep-alive connections to each backend, per worker: most recently used first, bounded
 * by limits.upstream_idle, closed after timeouts.upstream_idle. A pooled connection belongs to
 * the pool; a request only borrows it. Pools are keyed by backend address, so a reload that
 * keeps a backend keeps its warm connections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "core/internal.h"

static sst_pool_t *pool_find(sst_worker_t *w, const char *key)
{
    for (sst_link_t *l = w->all_pools.next; l != &w->all_pools; l = l->next) {
        sst_pool_t *p = sst_container_of(l, sst_pool_t, link);
        if (strcmp(p->key, key) == 0)
            return p;
    }
    return NULL;
}

/* `current`: b comes from the worker's current config, which decides the pool's resolved
 * address and metric slot; a request still on an older config borrows the pool as it is. */
static sst_pool_t *pool_get(sst_worker_t *w, const sst_backend_cfg_t *b, uint16_t metric_id,
                            bool current)
{
    sst_pool_t *p = pool_find(w, b->addr.text);
    if (p != NULL && !current)
        return p;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            return NULL;
        p->w = w;
        snprintf(p->key, sizeof(p->key), "%s", b->addr.text);
        sst_list_init(&p->idle);
        sst_list_push(&w->all_pools, &p->link);
    }
    /* the address may resolve differently after a reload */
    memcpy(&p->sa, &b->addr.sa, sizeof(p->sa));
    p->metric_id = metric_id;
    return p;
}

sst_pool_t *sst__pool_for(sst_worker_t *w, const sst_view_t *view, size_t backend)
{
    if (w->cur != NULL && view == w->cur->view && w->pools[backend] != NULL)
        return w->pools[backend];
    /* a request still routed with an older config: share pools by address */
    return pool_get(w, &view->cfg->backends[backend], view->prep->backend_mid[backend], false);
}

/* A peek before reuse: the backend may have closed the connection since the last loop
 * iteration and its FIN be waiting unread. Sending a non-idempotent request on such a
 * connection would end in a reset after the request was written, which only a 502 can answer.
 * One recv(2) with MSG_PEEK closes that window for the price of a syscall. It is paid only
 * where the race lives: backends close idle connections after their keep-alive timeout, so a
 * connection reused within a second is not peeked, and idempotent requests never are (they
 * are retried or redirected safely if they meet a dead connection). */
#define PEEK_AFTER_IDLE_MS 1000
static bool pool_conn_alive(sst_upstream_t *u)
{
    uv_os_fd_t fd;
    char b;
    if (uv_fileno((const uv_handle_t *)&u->tcp, &fd) != 0)
        return false;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK;
    return false; /* 0: the backend closed; > 0: bytes on an idle connection */
}

sst_upstream_t *sst__pool_take(sst_pool_t *p, bool verify, uint64_t now_ms)
{
    while (!sst_list_empty(&p->idle)) {
        sst_upstream_t *u = sst_container_of(p->idle.next, sst_upstream_t, link);
        if (!verify || now_ms < u->idle_since + PEEK_AFTER_IDLE_MS || pool_conn_alive(u)) {
            sst__pool_forget(p, u);
            return u;
        }
        sst__upstream_close(u); /* forgets it */
    }
    return NULL;
}

void sst__pool_put(sst_pool_t *p, sst_upstream_t *u)
{
    sst_list_push(&p->idle, &u->link);
    p->n_idle++;
    sst_counter_add(&p->w->metrics->up_idle[p->metric_id], 1);
}

void sst__pool_forget(sst_pool_t *p, sst_upstream_t *u)
{
    sst_list_remove(&u->link);
    p->n_idle--;
    sst_counter_add(&p->w->metrics->up_idle[p->metric_id], (uint64_t)-1);
}

static void pool_close_idle(sst_pool_t *p)
{
    while (!sst_list_empty(&p->idle)) {
        sst_upstream_t *u = sst_container_of(p->idle.next, sst_upstream_t, link);
        sst__upstream_close(u); /* forgets it */
    }
}

static void pool_maybe_free(sst_pool_t *p)
{
    if (p->retired && p->n_total == 0) {
        sst_list_remove(&p->link);
        free(p);
    }
}

void sst__pools_update(sst_worker_t *w, const sst_config_t *cfg, const sst_prep_t *prep)
{
    for (sst_link_t *l = w->all_pools.next; l != &w->all_pools; l = l->next)
        sst_container_of(l, sst_pool_t, link)->retired = true;
    memset(w->pools, 0, sizeof(w->pools));
    for (size_t b = 0; b < cfg->n_backends; b++) {
        sst_pool_t *p = pool_get(w, &cfg->backends[b], prep->backend_mid[b], true);
        if (p != NULL)
            p->retired = false;
        w->pools[b] = p; /* NULL on ENOMEM: sst__pool_for retries the allocation */
    }
    sst_link_t *l = w->all_pools.next;
    while (l != &w->all_pools) {
        sst_pool_t *p = sst_container_of(l, sst_pool_t, link);
        l = l->next;
        if (p->retired) {
            pool_close_idle(p);
            pool_maybe_free(p);
        }
    }
}

void sst__pools_close_all(sst_worker_t *w)
{
    for (sst_link_t *l = w->all_pools.next; l != &w->all_pools; l = l->next)
        pool_close_idle(sst_container_of(l, sst_pool_t, link));
}

void sst__pools_free(sst_worker_t *w)
{
    while (!sst_list_empty(&w->all_pools)) {
        sst_pool_t *p = sst_container_of(w->all_pools.next, sst_pool_t, link);
        sst_list_remove(&p->link);
        free(p);
    }
}
