/* Idle keep-alive backend connections, per worker and backend address: most recently used
 * first, bounded by limits.upstream_idle. A pooled connection belongs to the pool; a request
 * only borrows it. The pool also counts every open connection to its backend (idle, active,
 * connecting) against limits.upstream_connections. */
#ifndef SST_CORE_POOL_H
#define SST_CORE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "base/list.h"
#include "core/metrics.h"
#include "core/transport.h"
#include "core/view.h"
#include "sidestep/config.h"
#include "sidestep/tls.h"

typedef struct sst_pool_s sst_pool_t;
typedef struct sst_upstream_s sst_upstream_t;

/* The pools of one worker, embedded in it. */
typedef struct sst_pools_s {
    sst_pool_t *by_backend[SST_MAX_BACKENDS]; /* of the config in force */
    const sst_config_t *cfg;                  /* that config (compared, never read) */
    sst_link_t all;
    sst_wmetrics_t *metrics;
    bool draining; /* the worker stops: nothing goes back to a pool */
} sst_pools_t;

void sst__pools_init(sst_pools_t *ps, sst_wmetrics_t *metrics);
/* The pool of `backend` in view's config: the current config's, or one shared by address for a
 * request still on an older config. NULL on ENOMEM. */
sst_pool_t *sst__pool_for(sst_pools_t *ps, const sst_view_t *view, size_t backend);
/* A new config is in force: pools of addresses it keeps stay warm, the others retire (their
 * idle connections close, busy ones close when they come back). A backend's TLS settings are
 * part of its pool's identity: a region that turns TLS on or off, or changes its server name,
 * CA or verification, gets new pools. */
void sst__pools_update(sst_pools_t *ps, const sst_config_t *cfg, const sst_prep_t *prep);
/* Closes every idle connection; nothing goes back to a pool afterwards. */
void sst__pools_close_all(sst_pools_t *ps);
/* Frees the pools (every connection is closed). */
void sst__pools_free(sst_pools_t *ps);

/* The backend's address and metric series. */
const struct sockaddr *sst__pool_addr(const sst_pool_t *p);
/* The pool's identity, for logs: "ADDR", or "ADDR tls name=N verify=V ca=PATH". */
const char *sst__pool_key(const sst_pool_t *p);
/* A TLS backend's client context (borrowed from the pool, which references it) and the
 * backend's index in the config that built it; NULL for a plain backend. */
sst_tls_client_t *sst__pool_tls(const sst_pool_t *p, size_t *backend);
uint16_t sst__pool_metric_id(const sst_pool_t *p);
/* True when `max` connections to this backend are open (limits.upstream_connections). */
bool sst__pool_full(const sst_pool_t *p, size_t max);
/* An upstream connection to this backend opened / closed (upstream.c). */
void sst__pool_opened(sst_pool_t *p);
void sst__pool_closed(sst_pool_t *p);

/* The most recently used idle connection that opened with the PROXY header `pp` (NULL: with
 * none), now the caller's, or NULL. A header describes one client connection, so with
 * send_proxy_protocol a connection only goes back to requests of that client connection.
 * With `verify`, a connection idle for a second or more is checked first
 * (sst__upstream_alive), so one the backend has closed meanwhile is closed here instead of
 * handed out. */
sst_upstream_t *sst__pool_take(sst_pool_t *p, bool verify, uint64_t now_ms,
                               const sst_tp_pp_out_t *pp);
/* Offers a connection that finished an exchange cleanly. Returns true when the pool keeps it
 * (fewer than `max_idle` idle, pool still configured, worker not stopping); false leaves it
 * with the caller, who closes it. At `max_idle`, a connection with a PROXY header takes the
 * place of the least recently used one (closed here), which likely belongs to a client that
 * has gone: a header-less one is refused instead, as every idle one is as good. */
bool sst__pool_put(sst_pool_t *p, sst_upstream_t *u, size_t max_idle);
/* An idle connection leaves the pool (it is closing). */
void sst__pool_forget(sst_pool_t *p, sst_upstream_t *u);

#endif
