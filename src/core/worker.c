/* A worker: one event-loop thread with its own listening sockets (SO_REUSEPORT), connections,
 * upstream pools, buffer free lists and counters. The control thread talks to it only through
 * an atomic view mailbox, a stop flag and uv_async; the worker talks back through a lock-free
 * ring of passive health signals. The request path takes no lock. */
#include "core/worker.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conn.h"
#include "core/passive.h"
#include "core/pool.h"
#include "core/view.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

#define LOG_BUF_SIZE   (64 * 1024)
#define TICK_MS        100
/* Connections accepted past limits.connections to answer 503 quickly; beyond this reserve,
 * accepting pauses until connections close. */
#define REJECT_RESERVE 256

static void worker_free_lists(sst_worker_t *w)
{
    sst__conns_free(&w->conns);
    sst__bufs_free(&w->bufs);
}

/* ---- access log ------------------------------------------------------------------------ */

static void worker_flush_log(sst_worker_t *w)
{
    if (w->log_len > 0) {
        sst_log_access_write(w->log_buf, w->log_len);
        w->log_len = 0;
    }
}

void sst__worker_access_log(sst_worker_t *w, const char *line, size_t len)
{
    if (w->log_buf == NULL) {
        sst_log_access_write(line, len);
        return;
    }
    if (w->log_len + len > LOG_BUF_SIZE)
        worker_flush_log(w);
    if (len > LOG_BUF_SIZE) {
        sst_log_access_write(line, len);
        return;
    }
    memcpy(w->log_buf + w->log_len, line, len);
    w->log_len += len;
}

/* Once per loop iteration, after I/O: one write(2) for all lines of the iteration, so the log
 * costs a syscall per iteration under load and is still prompt when idle. */
static void worker_on_check(uv_check_t *h)
{
    worker_flush_log(h->data);
}

/* ---- client connection deadlines ------------------------------------------------------ */

static void worker_on_deadline(uv_timer_t *t);

static void worker_arm_deadlines(sst_worker_t *w)
{
    const sst_dnode_t *first = sst__dheap_min(&w->deadlines);
    uint64_t due = first != NULL ? first->due : UINT64_MAX;
    if (due == w->deadline_armed)
        return;
    /* Only move the timer earlier; firing early is harmless (nothing due: re-armed). */
    if (due == UINT64_MAX || due > w->deadline_armed) {
        if (first == NULL) {
            uv_timer_stop(&w->deadline_timer);
            w->deadline_armed = UINT64_MAX;
        }
        return;
    }
    uint64_t now = uv_now(&w->loop);
    uv_timer_start(&w->deadline_timer, worker_on_deadline, due > now ? due - now : 0, 0);
    w->deadline_armed = due;
}

int sst__worker_deadline_set(sst_worker_t *w, sst_dnode_t *n, uint64_t due)
{
    int rc = sst__dheap_set(&w->deadlines, n, due);
    if (rc == 0)
        worker_arm_deadlines(w);
    return rc;
}

static void worker_on_deadline(uv_timer_t *t)
{
    sst_worker_t *w = t->data;
    uint64_t now = uv_now(&w->loop);
    w->deadline_armed = UINT64_MAX;
    sst_dnode_t *n;
    while ((n = sst__dheap_min(&w->deadlines)) != NULL && n->due <= now) {
        sst__dheap_set(&w->deadlines, n, UINT64_MAX);
        sst__conn_on_deadline(n); /* may set a new deadline or close the connection */
    }
    worker_arm_deadlines(w);
}

/* ---- views ----------------------------------------------------------------------------- */

static void worker_adopt_view(sst_worker_t *w, sst_view_t *v);

sst_wview_t *sst__worker_view_acquire(sst_worker_t *w)
{
    /* A view published since the last loop turn is adopted before this request starts, so an
     * operator action or a reload applies to the very next request (one relaxed load). */
    if (atomic_load_explicit(&w->pending_view, memory_order_relaxed) != NULL) {
        sst_view_t *v = atomic_exchange(&w->pending_view, NULL);
        if (v != NULL)
            worker_adopt_view(w, v);
    }
    w->cur->users++;
    return w->cur;
}

void sst__worker_view_release(sst_worker_t *w, sst_wview_t *wv)
{
    assert(wv->users > 0);
    if (--wv->users > 0)
        return;
    assert(wv != w->cur);
    sst_list_remove(&wv->link);
    sst__view_unref(wv->view);
    free(wv);
}

/* ---- listeners ------------------------------------------------------------------------- */

static void worker_on_listener_closed(uv_handle_t *h)
{
    sst_listener_t *l = h->data;
    l->handle_closed = true;
    if (l->refs == 0)
        free(l);
}

void sst__listener_hold(sst_listener_t *l)
{
    l->refs++;
}

void sst__listener_release(sst_listener_t *l)
{
    assert(l->refs > 0);
    if (--l->refs == 0 && l->handle_closed)
        free(l);
}

static void worker_close_listener(sst_listener_t *l)
{
    if (l->closing)
        return;
    l->closing = true;
    l->cfg_index = SIZE_MAX; /* its remaining connections use the listener defaults */
    sst_list_remove(&l->link);
    uv_close((uv_handle_t *)&l->tcp, worker_on_listener_closed);
}

static bool worker_accept_allowed(sst_worker_t *w, bool *reject)
{
    const sst_config_t *cfg = sst__worker_config(w);
    uint64_t n = atomic_load_explicit(w->conns_total, memory_order_relaxed);
    *reject = false;
    if (n < cfg->limits.connections)
        return true;
    /* near the limit, idle keep-alive connections make room first (not one whose last answer
     * is still queued: it is not idle yet) */
    if (sst__conn_evict_idle(w, 1) > 0)
        return true;
    if (n < cfg->limits.connections + REJECT_RESERVE) {
        *reject = true;
        return true;
    }
    return false;
}

/* No connection can be set up for the client waiting on `l` (out of memory, a handle that
 * cannot be initialised): take it off the queue and close it, better than leaving it there.
 * When even that fails, the listener pauses (libuv polls it again only after an accept) and
 * the worker's tick retries. */
static void worker_drop_pending(sst_worker_t *w, sst_listener_t *l)
{
    uv_tcp_t *tmp = malloc(sizeof(*tmp));
    if (tmp == NULL || uv_tcp_init(&w->loop, tmp) != 0) {
        free(tmp);
        l->paused = true;
        return;
    }
    (void)uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)tmp);
    uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
}

static void worker_accept(sst_worker_t *w, sst_listener_t *l, bool reject)
{
    if (sst__conn_accept(w, l, reject) != 0)
        worker_drop_pending(w, l);
}

static void worker_on_connection(uv_stream_t *server, int status)
{
    sst_listener_t *l = server->data;
    sst_worker_t *w = l->w;
    bool reject;

    if (status < 0) {
        /* EMFILE/ENFILE: libuv already accepted and closed one connection with its reserve
         * descriptor; keep serving and say so (rate limited). */
        sst_warn("accept on %s: %s", l->key, uv_strerror(status));
        return;
    }
    if (w->stopping || l->closing)
        return;
    if (!worker_accept_allowed(w, &reject)) {
        /* leaving the connection in libuv stops polling this listener until uv_accept */
        l->paused = true;
        return;
    }
    worker_accept(w, l, reject);
}

static void worker_resume_listeners(sst_worker_t *w)
{
    for (sst_link_t *k = w->listeners.next; k != &w->listeners; k = k->next) {
        sst_listener_t *l = sst_container_of(k, sst_listener_t, link);
        bool reject;
        if (!l->paused || !worker_accept_allowed(w, &reject))
            continue;
        l->paused = false;
        worker_accept(w, l, reject); /* uv_accept resumes polling */
    }
}

static sst_listener_t *worker_find_listener(sst_worker_t *w, const char *key)
{
    for (sst_link_t *k = w->listeners.next; k != &w->listeners; k = k->next) {
        sst_listener_t *l = sst_container_of(k, sst_listener_t, link);
        if (strcmp(l->key, key) == 0)
            return l;
    }
    return NULL;
}

/* Adopts the listening sockets of a new config: keeps the ones whose address is unchanged,
 * takes this worker's new sockets from the prep, closes the ones no longer configured. */
static int worker_sync_listeners(sst_worker_t *w, const sst_config_t *cfg, sst_prep_t *prep)
{
    int rc = 0;
    for (sst_link_t *k = w->listeners.next; k != &w->listeners; k = k->next)
        sst_container_of(k, sst_listener_t, link)->cfg_index = SIZE_MAX;
    /* (a closed listener keeps cfg_index SIZE_MAX: its connections then use defaults) */
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const char *key = cfg->listeners[i].addr.text;
        sst_listener_t *l = worker_find_listener(w, key);
        if (l != NULL) {
            l->cfg_index = i;
            continue;
        }
        /* ours now; -1 when the address has left the config meanwhile (a stale view) */
        int fd = prep->lsock[i] != NULL ? atomic_exchange(&prep->lsock[i]->fds[w->id], -1) : -1;
        if (fd < 0)
            continue;
        l = calloc(1, sizeof(*l));
        if (l == NULL) {
            close(fd);
            rc = SST_ENOMEM;
            continue;
        }
        l->w = w;
        l->cfg_index = i;
        snprintf(l->key, sizeof(l->key), "%s", key);
        int e = uv_tcp_init(&w->loop, &l->tcp);
        if (e != 0) {
            sst_error("worker %u: listen %s: %s", w->id, key, uv_strerror(e));
            close(fd);
            free(l);
            rc = e;
            continue;
        }
        l->tcp.data = l;
        sst_list_push(&w->listeners, &l->link);
        e = uv_tcp_open(&l->tcp, fd);
        if (e != 0)
            close(fd); /* not adopted by the handle */
        else
            e = uv_listen((uv_stream_t *)&l->tcp, 4096, worker_on_connection);
        if (e != 0) {
            sst_error("worker %u: listen %s: %s", w->id, key, uv_strerror(e));
            worker_close_listener(l);
            rc = e;
        }
    }
    sst_link_t *k = w->listeners.next;
    while (k != &w->listeners) {
        sst_listener_t *l = sst_container_of(k, sst_listener_t, link);
        k = k->next;
        if (l->cfg_index == SIZE_MAX)
            worker_close_listener(l);
    }
    return rc;
}

/* ---- control messages ------------------------------------------------------------------ */

static void worker_adopt_view(sst_worker_t *w, sst_view_t *v)
{
    sst_wview_t *wv = calloc(1, sizeof(*wv));
    if (wv == NULL) {
        /* keep routing with the old view; the next publish retries */
        sst_error("worker %u: out of memory adopting a new view", w->id);
        sst__view_unref(v);
        return;
    }
    sst_list_init(&wv->link);
    wv->view = v;
    wv->users = 1;
    sst_wview_t *old = w->cur;
    w->cur = wv;
    bool new_config = old == NULL || old->view->cfg != v->cfg;
    if (new_config) {
        sst__pools_update(&w->pools, v->cfg, v->prep);
        sst__conns_config_changed(&w->conns);
        sst__passive_forget(&w->passive);
        if (!w->stopping)
            worker_sync_listeners(w, v->cfg, v->prep);
    }
    if (old != NULL) {
        sst_list_push(&w->old_views, &old->link);
        sst__worker_view_release(w, old);
    }
}

static void worker_finish(sst_worker_t *w);

/* Buffers and request states go back to malloc from now on, not to the free lists. */
static void worker_set_stopping(sst_worker_t *w)
{
    w->stopping = true;
    sst__bufs_drain(&w->bufs);
}

static void worker_begin_stop(sst_worker_t *w, sst_worker_stop_t how)
{
    if (!w->stopping) {
        worker_set_stopping(w);
        while (!sst_list_empty(&w->listeners))
            worker_close_listener(sst_container_of(w->listeners.next, sst_listener_t, link));
        sst__conn_shutdown_idle(w);
        sst__pools_close_all(&w->pools);
        w->stop_deadline = uv_now(&w->loop) + sst__worker_config(w)->timeouts.shutdown_ms;
    }
    if (how == SST_STOP_NOW)
        sst__conn_close_all(w);
    if (w->conns.n_open == 0)
        worker_finish(w);
}

static void worker_on_async(uv_async_t *a)
{
    sst_worker_t *w = a->data;
    sst_view_t *v = atomic_exchange(&w->pending_view, NULL);
    if (v != NULL)
        worker_adopt_view(w, v);
    int stop = atomic_load(&w->stop);
    if (stop != SST_STOP_NONE)
        worker_begin_stop(w, (sst_worker_stop_t)stop);
}

static void worker_on_tick(uv_timer_t *t)
{
    sst_worker_t *w = t->data;
    if (w->stopping) {
        if (w->conns.n_open == 0) {
            worker_finish(w);
            return;
        }
        if (uv_now(&w->loop) >= w->stop_deadline) {
            sst_warn("worker %u: shutdown deadline reached, closing %zu connections", w->id,
                     w->conns.n_open);
            sst__conn_close_all(w);
        }
        return;
    }
    worker_resume_listeners(w);
}

void sst__worker_conn_opened(sst_worker_t *w)
{
    atomic_fetch_add_explicit(w->conns_total, 1, memory_order_relaxed);
}

void sst__worker_conn_gone(sst_worker_t *w)
{
    atomic_fetch_sub_explicit(w->conns_total, 1, memory_order_relaxed);
    if (w->stopping && w->conns.n_open == 0)
        worker_finish(w);
}

static void worker_on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void worker_finish(sst_worker_t *w)
{
    if (uv_is_closing((uv_handle_t *)&w->async))
        return;
    sst__pools_close_all(&w->pools);
    worker_flush_log(w);
    /* the control thread must not signal a closing async handle */
    uv_mutex_lock(&w->ctl_mutex);
    w->async_closed = true;
    uv_mutex_unlock(&w->ctl_mutex);
    uv_close((uv_handle_t *)&w->async, worker_on_handle_closed);
    uv_close((uv_handle_t *)&w->flush_check, worker_on_handle_closed);
    uv_close((uv_handle_t *)&w->tick, worker_on_handle_closed);
    uv_close((uv_handle_t *)&w->deadline_timer, worker_on_handle_closed);
}

/* ---- thread ---------------------------------------------------------------------------- */

/* What outlives the handles: called once every handle of the loop is closed (the thread's
 * uv_run ended, or a failed start ran the loop to close what it opened). A loop that still
 * has a handle open is a leak: w->loop_unclean makes sst_server_free report it, so the
 * process exit status shows it. */
static void worker_release(sst_worker_t *w)
{
    worker_flush_log(w);
    sst__pools_free(&w->pools);
    if (w->cur != NULL) {
        sst_wview_t *cur = w->cur;
        w->cur = NULL;
        sst_list_push(&w->old_views, &cur->link);
        sst__worker_view_release(w, cur);
    }
    while (!sst_list_empty(&w->old_views)) {
        /* views still held by requests that never finished (cannot happen after all
         * connections closed, but never leak) */
        sst_wview_t *wv = sst_container_of(w->old_views.next, sst_wview_t, link);
        sst_list_remove(&wv->link);
        sst__view_unref(wv->view);
        free(wv);
    }
    sst_view_t *pending = atomic_exchange(&w->pending_view, NULL);
    if (pending != NULL)
        sst__view_unref(pending);
    worker_free_lists(w);
    sst__dheap_free(&w->deadlines);
    int rc = uv_loop_close(&w->loop);
    if (rc != 0) {
        sst_error("worker %u: loop closed with handles still open", w->id);
        w->loop_unclean = true;
    }
    free(w->log_buf);
    w->log_buf = NULL;
}

static void worker_main(void *arg)
{
    sst_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    worker_release(w); /* every handle is closed */
    atomic_store(&w->exited, true);
}

/* Undoes a start that failed before the thread was created: closes the handles made on the
 * loop and runs it once here to call their close callbacks (no thread runs it yet), then
 * releases the rest, so the failed worker holds no descriptor, memory or view. */
static void worker_unwind(sst_worker_t *w, bool loop_ready, bool async_ready)
{
    if (loop_ready) {
        worker_set_stopping(w);
        while (!sst_list_empty(&w->listeners))
            worker_close_listener(sst_container_of(w->listeners.next, sst_listener_t, link));
        sst__pools_close_all(&w->pools);
        if (async_ready)
            uv_close((uv_handle_t *)&w->async, worker_on_handle_closed);
        uv_close((uv_handle_t *)&w->flush_check, worker_on_handle_closed);
        uv_close((uv_handle_t *)&w->tick, worker_on_handle_closed);
        uv_close((uv_handle_t *)&w->deadline_timer, worker_on_handle_closed);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        worker_release(w);
    } else {
        free(w->log_buf);
        w->log_buf = NULL;
    }
    if (w->mutex_ready) {
        uv_mutex_destroy(&w->ctl_mutex);
        w->mutex_ready = false;
    }
    free(w->metrics);
    w->metrics = NULL;
}

int sst__worker_start(sst_worker_t *w, unsigned id, atomic_uint_fast64_t *conns_total,
                      uv_async_t *passive_notify, sst_view_t *view)
{
    bool loop_ready = false, async_ready = false;
    int rc;

    w->id = id;
    w->conns_total = conns_total;
    sst_list_init(&w->old_views);
    sst_list_init(&w->listeners);
    sst__conns_init(&w->conns);
    sst__passive_init(&w->passive, passive_notify);
    atomic_init(&w->pending_view, NULL);
    atomic_init(&w->stop, SST_STOP_NONE);
    atomic_init(&w->exited, false);
    w->deadline_armed = UINT64_MAX;
    w->metrics = calloc(1, sizeof(*w->metrics));
    w->log_buf = malloc(LOG_BUF_SIZE);
    if (w->metrics == NULL || w->log_buf == NULL) {
        rc = SST_ENOMEM;
        goto fail;
    }
    sst__pools_init(&w->pools, w->metrics);
    if ((rc = uv_loop_init(&w->loop)) != 0)
        goto fail;
    loop_ready = true;
    w->loop.data = &w->bufs; /* transports take their read chunks there */
    /* these inits cannot fail in libuv (they allocate nothing); worker_unwind closes them */
    uv_check_init(&w->loop, &w->flush_check);
    w->flush_check.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_init(&w->loop, &w->deadline_timer);
    w->deadline_timer.data = w;
    if ((rc = uv_mutex_init(&w->ctl_mutex)) != 0)
        goto fail;
    w->mutex_ready = true;
    if ((rc = uv_async_init(&w->loop, &w->async, worker_on_async)) != 0)
        goto fail; /* the loop's eventfd: EMFILE */
    async_ready = true;
    w->async.data = w;
    uv_check_start(&w->flush_check, worker_on_check);
    uv_timer_start(&w->tick, worker_on_tick, TICK_MS, TICK_MS);
    worker_adopt_view(w, sst__view_ref(view));
    if (w->cur == NULL) {
        rc = SST_ENOMEM;
        goto fail;
    }
    if ((rc = uv_thread_create(&w->thread, worker_main, w)) != 0)
        goto fail;
    w->started = true;
    return 0;

fail:
    worker_unwind(w, loop_ready, async_ready);
    return rc;
}

static void worker_signal(sst_worker_t *w)
{
    uv_mutex_lock(&w->ctl_mutex);
    if (!w->async_closed)
        uv_async_send(&w->async);
    uv_mutex_unlock(&w->ctl_mutex);
}

void sst__worker_publish(sst_worker_t *w, sst_view_t *view)
{
    if (!w->started)
        return;
    sst_view_t *old = atomic_exchange(&w->pending_view, sst__view_ref(view));
    if (old != NULL)
        sst__view_unref(old); /* superseded before the worker took it */
    worker_signal(w);
}

void sst__worker_request_stop(sst_worker_t *w, sst_worker_stop_t how)
{
    if (!w->started)
        return;
    int cur = atomic_load(&w->stop);
    if ((int)how > cur)
        atomic_store(&w->stop, how);
    worker_signal(w);
}

void sst__worker_join(sst_worker_t *w)
{
    if (w->started) {
        uv_thread_join(&w->thread);
        w->started = false;
    }
    if (w->mutex_ready) {
        uv_mutex_destroy(&w->ctl_mutex);
        w->mutex_ready = false;
    }
    free(w->metrics);
    w->metrics = NULL;
}
