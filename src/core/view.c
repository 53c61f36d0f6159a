/* Views: what workers route with (config + health snapshot + prepared parts), reference
 * counted so a reload or a health change swaps them in while in-flight requests keep theirs.
 * Also the per-config preparation: response pieces, metric ids, listening sockets. */
/* SO_REUSEPORT is a Linux extension hidden by strict _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE 1

#include "core/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "core/server_int.h"
#include "http/h1_write.h"
#include "http/http1.h"
#include "sidestep/error.h"

sst_view_t *sst__view_ref(sst_view_t *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void sst__view_unref(sst_view_t *v)
{
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (atomic_fetch_sub_explicit(v->prep_refs, 1, memory_order_acq_rel) == 1) {
        sst__prep_free(v->prep);
        free(v->prep_refs);
    }
    sst_hsnap_unref(v->snap);
    sst_config_unref(v->cfg);
    free(v);
}

int sst__view_new(sst_config_t *cfg, sst_hsnap_t *snap, sst_prep_t *prep,
                  atomic_uint_fast32_t *prep_refs, uint64_t generation, sst_view_t **out)
{
    sst_view_t *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return SST_ENOMEM;
    atomic_init(&v->refs, 1);
    v->generation = generation;
    v->cfg = sst_config_ref(cfg);
    v->snap = sst_hsnap_ref(snap);
    v->prep = prep;
    v->prep_refs = prep_refs;
    atomic_fetch_add(prep_refs, 1);
    *out = v;
    return 0;
}

/* ---- metric name registry --------------------------------------------------------------- */

static uint16_t prep_register(char **names, size_t *n, size_t cap, size_t first, const char *name)
{
    for (size_t i = first; i < *n; i++)
        if (strcmp(names[i], name) == 0)
            return (uint16_t)i;
    if (*n >= cap - 1)
        return (uint16_t)(cap - 1); /* the "other" series */
    char *copy = strdup(name);
    if (copy == NULL)
        return (uint16_t)(cap - 1);
    names[*n] = copy;
    return (uint16_t)(*n)++;
}

/* ---- listening sockets ------------------------------------------------------------------- */

static int prep_listen_socket(const struct sockaddr_storage *sa, socklen_t salen, int *out)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* SO_REUSEPORT: one socket per worker on the same address, the kernel spreads
     * connections across them (libuv 1.44 has no flag for it, so the socket is ours). */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (sa->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)sa, salen) != 0 || listen(fd, 4096) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

static sst_lsock_t *lsock_find(sst_server_t *s, const char *key)
{
    for (sst_lsock_t *e = s->lsocks; e != NULL; e = e->next)
        if (e->live && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void lsock_close_untaken(sst_lsock_t *e)
{
    for (unsigned w = 0; w < SST_MAX_WORKERS; w++) {
        int fd = atomic_exchange(&e->fds[w], -1);
        if (fd >= 0)
            close(fd);
    }
}

/* Opens one socket per worker for a new address; the entry joins p->created. */
static int lsock_open(sst_prep_t *p, const sst_config_t *cfg, size_t idx, sst_lsock_t **out,
                      char *err, size_t err_size)
{
    const sst_addr_t *a = &cfg->listeners[idx].addr;
    sst_lsock_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return SST_ENOMEM;
    for (unsigned w = 0; w < SST_MAX_WORKERS; w++)
        atomic_init(&e->fds[w], -1);
    snprintf(e->key, sizeof(e->key), "%s", a->text);
    e->next = p->created;
    p->created = e;
    struct sockaddr_storage sa = a->sa;
    socklen_t salen = a->salen;
    for (unsigned w = 0; w < p->n_workers; w++) {
        int fd;
        int rc = prep_listen_socket(&sa, salen, &fd);
        if (rc != 0) {
            snprintf(err, err_size, "%s:%u:%u: listen[%zu]: %s: %s", cfg->source,
                     cfg->listeners[idx].pos.line, cfg->listeners[idx].pos.column, idx, a->text,
                     sst_strerror(rc));
            return rc;
        }
        atomic_store(&e->fds[w], fd);
        if (w == 0) {
            /* port 0: the other workers bind the port the kernel picked for the first */
            socklen_t len = sizeof(sa);
            getsockname(fd, (struct sockaddr *)&sa, &len);
            salen = len;
            e->bound = sa;
        }
    }
    *out = e;
    return 0;
}

static int prep_open_listeners(sst_prep_t *p, const sst_config_t *cfg, sst_server_t *s, char *err,
                               size_t err_size)
{
    for (size_t l = 0; l < cfg->n_listeners; l++) {
        const sst_addr_t *a = &cfg->listeners[l].addr;
        sst_lsock_t *e = lsock_find(s, a->text);
        if (e == NULL) {
            int rc = lsock_open(p, cfg, l, &e, err, err_size);
            if (rc != 0)
                return rc;
        }
        p->lsock[l] = e;
        p->bound[l] = e->bound;
    }
    return 0;
}

void sst__prep_commit(sst_server_t *s, sst_prep_t *p)
{
    /* addresses no longer configured: their untaken sockets close now; the workers close the
     * ones they took when they adopt the new config */
    for (sst_lsock_t *e = s->lsocks; e != NULL; e = e->next) {
        bool kept = false;
        for (size_t l = 0; l < SST_MAX_LISTENERS && !kept; l++)
            kept = p->lsock[l] == e;
        if (e->live && !kept) {
            e->live = false;
            lsock_close_untaken(e);
        }
    }
    while (p->created != NULL) {
        sst_lsock_t *e = p->created;
        p->created = e->next;
        e->live = true;
        e->next = s->lsocks;
        s->lsocks = e;
    }
}

static void lsock_free_list(sst_lsock_t *e)
{
    while (e != NULL) {
        sst_lsock_t *next = e->next;
        lsock_close_untaken(e);
        free(e);
        e = next;
    }
}

void sst__prep_abandon(sst_server_t *s, sst_prep_t *p)
{
    (void)s;
    lsock_free_list(p->created);
    p->created = NULL;
}

void sst__lsocks_free(sst_server_t *s)
{
    lsock_free_list(s->lsocks);
    s->lsocks = NULL;
}

void sst__prep_names_free(sst_server_t *s)
{
    for (size_t i = 0; i < SST_M_ROUTES; i++)
        free(s->route_names[i]);
    for (size_t i = 0; i < SST_M_REGIONS; i++)
        free(s->region_names[i]);
    for (size_t i = 0; i < SST_M_BACKENDS; i++)
        free(s->backend_names[i]);
}

/* ---- generated response pieces ------------------------------------------------------------ */

static const uint16_t redirect_statuses[SST_REDIRECT_STATUSES] = {301, 302, 303, 307, 308};

int sst__prep_build(const sst_config_t *cfg, sst_server_t *s, sst_prep_t **out, char *err,
                    size_t err_size)
{
    sst_prep_t *p = calloc(1, sizeof(*p));
    size_t cap = 0, used = 0;
    int rc;

    if (p == NULL)
        return SST_ENOMEM;
    p->n_workers = s->n_workers;
    cap = SST_REDIRECT_STATUSES * 64; /* the https status lines */
    for (size_t r = 0; r < cfg->n_regions; r++) {
        size_t url = cfg->regions[r].url != NULL ? strlen(cfg->regions[r].url) : 0;
        cap += 4 * strlen(cfg->regions[r].name) + SST_REDIRECT_STATUSES * (url + 64) + 1024;
    }
    p->storage = malloc(cap + 1);
    if (p->storage == NULL) {
        free(p);
        return SST_ENOMEM;
    }
    for (size_t k = 0; k < SST_REDIRECT_STATUSES; k++) {
        int hl = snprintf(p->storage + used, cap - used,
                          "HTTP/1.1 %u %s\r\nLocation: ", redirect_statuses[k],
                          sst_h1_status_text(redirect_statuses[k]));
        p->https_head[k] = sst_str(p->storage + used, (size_t)hl);
        used += (size_t)hl;
    }
    for (size_t r = 0; r < cfg->n_regions; r++) {
        const char *name = cfg->regions[r].name;
        const char *url = cfg->regions[r].url != NULL ? cfg->regions[r].url : "";
        char body[160];
        int bl = snprintf(body, sizeof(body), "Redirecting to region %s.\n", name);
        if (bl < 0 || (size_t)bl >= sizeof(body))
            bl = snprintf(body, sizeof(body), "Redirecting to another region.\n");
        for (size_t k = 0; k < SST_REDIRECT_STATUSES; k++) {
            int hl = snprintf(p->storage + used, cap - used, "HTTP/1.1 %u %s\r\nLocation: %s",
                              redirect_statuses[k], sst_h1_status_text(redirect_statuses[k]), url);
            p->redirect_head[r][k] = sst_str(p->storage + used, (size_t)hl);
            used += (size_t)hl;
        }
        int ml = snprintf(p->storage + used, cap - used,
                          "\r\nCache-Control: no-store\r\nX-Sidestep-Region: %s\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n",
                          name, bl);
        p->redirect_mid[r] = sst_str(p->storage + used, (size_t)ml);
        used += (size_t)ml;
        memcpy(p->storage + used, body, (size_t)bl);
        p->redirect_body[r] = sst_str(p->storage + used, (size_t)bl);
        used += (size_t)bl;
        for (size_t t = 0; t < SST_TAILS; t++) {
            char *start = p->storage + used;
            memcpy(start, p->redirect_mid[r].base, (size_t)ml);
            memcpy(start + ml, sst_h1_tails[t].base, sst_h1_tails[t].len);
            memcpy(start + ml + sst_h1_tails[t].len, body, (size_t)bl);
            size_t len = (size_t)ml + sst_h1_tails[t].len + (size_t)bl;
            p->redirect_rest[r][t] = sst_str(start, len);
            used += len;
        }
    }
    for (size_t r = 0; r < cfg->n_routes; r++)
        p->route_mid[r] =
            prep_register(s->route_names, &s->n_route_names, SST_M_ROUTES, 0, cfg->routes[r].name);
    for (size_t r = 0; r < cfg->n_regions; r++)
        p->region_mid[r] = prep_register(s->region_names, &s->n_region_names, SST_M_REGIONS, 1,
                                         cfg->regions[r].name);
    for (size_t b = 0; b < cfg->n_backends; b++)
        p->backend_mid[b] = prep_register(s->backend_names, &s->n_backend_names, SST_M_BACKENDS, 0,
                                          cfg->backends[b].addr.text);
    rc = prep_open_listeners(p, cfg, s, err, err_size);
    if (rc != 0) {
        sst__prep_abandon(s, p);
        sst__prep_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void sst__prep_free(sst_prep_t *p)
{
    if (p == NULL)
        return;
    /* the listening sockets belong to the server's table, not to the config */
    free(p->storage);
    free(p);
}
