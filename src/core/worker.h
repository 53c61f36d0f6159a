/* A worker: one event-loop thread with its own listeners, client connections, upstream pools,
 * buffer free lists, counters and passive-signal ring. The control thread reaches it only
 * through sst__worker_publish / request_stop / join; everything else here runs on the worker's
 * own thread. */
#ifndef SST_CORE_WORKER_H
#define SST_CORE_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/list.h"
#include "core/buf.h"
#include "core/conn.h"
#include "core/dheap.h"
#include "core/metrics.h"
#include "core/passive.h"
#include "core/pool.h"
#include "core/view.h"
#include "sidestep/config.h"

/* A worker's local hold on a view: requests count here without touching the shared refcount. */
typedef struct sst_wview_s {
    sst_link_t link;
    sst_view_t *view;
    uint32_t users; /* requests in flight using this view, plus 1 while it is current */
} sst_wview_t;

/* One listening socket of a worker. Connections accepted on it hold a reference
 * (sst__listener_hold), so it outlives a reload that removes its address. */
typedef struct sst_listener_s {
    uv_tcp_t tcp;
    sst_worker_t *w;
    size_t cfg_index;                /* in the config it was opened for; SIZE_MAX once closed */
    const struct sst_lsock_s *lsock; /* the server's table entry: matched across reloads */
    char key[280];                   /* configured address text, for messages */
    struct sockaddr_storage bound;
    bool closing;
    bool paused;        /* a connection is waiting in libuv until capacity returns */
    uint32_t refs;      /* connections accepted here that are still open */
    bool handle_closed; /* freed once the handle is closed and no connection refers to it */
    sst_link_t link;
} sst_listener_t;

typedef enum sst_worker_stop_e {
    SST_STOP_NONE = 0,
    SST_STOP_GRACEFUL,
    SST_STOP_NOW,
} sst_worker_stop_t;

struct sst_worker_s {
    unsigned id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t async;
    uv_check_t flush_check;
    uv_timer_t tick; /* housekeeping: shutdown deadline, listener resume */
    /* Client connection deadlines: one timer over a binary min-heap of connections, instead
     * of a 152-byte uv_timer_t in each of (say) 10k idle keep-alive connections. */
    uv_timer_t deadline_timer;
    uint64_t deadline_armed; /* when deadline_timer fires, UINT64_MAX when stopped */
    sst_dheap_t deadlines;
    bool started;
    atomic_bool exited;   /* the thread's loop has ended; join will not block */
    uv_mutex_t ctl_mutex; /* guards async_closed (control path only, never per request) */
    bool async_closed;
    bool mutex_ready;
    bool loop_unclean; /* uv_loop_close found a handle still open (read after the join) */
    atomic_int stop;   /* sst_worker_stop_t requested by the control thread */
    bool stopping;
    _Atomic(sst_view_t *) pending_view;
    sst_wview_t *cur;
    sst_link_t old_views;
    sst_link_t listeners;
    atomic_uint_fast64_t *conns_total; /* every worker's client connections (the server's) */
    sst_conns_t conns;                 /* the client connections (conn.c's) */
    sst_pools_t pools;                 /* idle backend connections (pool.c's) */
    sst_bufs_t bufs;                   /* buffer free lists (buf.c's) */
    sst_passive_ring_t passive;        /* to the control thread (passive.c's) */
    sst_wmetrics_t *metrics;
    char *log_buf;
    size_t log_len, log_cap;
    uint64_t stop_deadline;
};

/* ---- control thread ------------------------------------------------------------------------ */

/* Starts worker `w` (zeroed) number `id` on `view`: its loop, handles and thread.
 * `conns_total` counts every worker's client connections; `passive_notify` wakes the control
 * thread for passive signals. Returns 0, or a negative error with nothing left of the worker
 * (no thread, loop, descriptor or view reference; sst__worker_join on it is a no-op). */
int sst__worker_start(sst_worker_t *w, unsigned id, atomic_uint_fast64_t *conns_total,
                      uv_async_t *passive_notify, sst_view_t *view);
void sst__worker_publish(sst_worker_t *w, sst_view_t *view);
void sst__worker_request_stop(sst_worker_t *w, sst_worker_stop_t how);
/* Waits for the thread, then frees what the worker kept for the control thread. */
void sst__worker_join(sst_worker_t *w);

/* ---- the worker's own thread ------------------------------------------------------------------
 */

static inline uint64_t sst__worker_now(const sst_worker_t *w)
{
    return uv_now(&w->loop);
}

/* The config in force on this worker (the current view's). Requests use the view they hold. */
static inline const sst_config_t *sst__worker_config(const sst_worker_t *w)
{
    return w->cur->view->cfg;
}

/* A hold on the current view for one request (adopting a view published meanwhile first). */
sst_wview_t *sst__worker_view_acquire(sst_worker_t *w);
void sst__worker_view_release(sst_worker_t *w, sst_wview_t *wv);

/* A client connection was opened / is gone (freed): the server-wide count follows. */
void sst__worker_conn_opened(sst_worker_t *w);
void sst__worker_conn_gone(sst_worker_t *w);

/* Queues one access line (with its '\n'); lines leave in one write(2) per loop turn. */
void sst__worker_access_log(sst_worker_t *w, const char *line, size_t len);

void sst__listener_hold(sst_listener_t *l);
void sst__listener_release(sst_listener_t *l);

/* Sets a connection's deadline node (UINT64_MAX removes it). Returns 0 or SST_ENOMEM (heap
 * growth). When it passes, the worker calls sst__conn_on_deadline(n) with n out of the heap. */
int sst__worker_deadline_set(sst_worker_t *w, sst_dnode_t *n, uint64_t due);

#endif
