/* A worker: one event-loop thread with its own listening sockets (SO_REUSEPORT), connections,
 * upstream pools, buffer free lists and counters. The control thread talks to it only through
 * an atomic view mailbox, a stop flag and uv_async; the worker talks back through a lock-free
 * ring of passive health signals. The request path takes no lock. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "core/internal.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

/* Free lists are bounded: a burst may allocate more, the excess is returned to malloc. */
#define MAX_FREE_CHUNKS 64
#define MAX_FREE_WREQS  256
#define MAX_FREE_HEADS  256
#define MAX_FREE_REQS   256
#define LOG_BUF_SIZE    (64 * 1024)
#define TICK_MS         100
/* Connections accepted past limits.connections to answer 503 quickly; beyond this reserve,
 * accepting pauses until connections close. */
#define REJECT_RESERVE  256

uint64_t sst__worker_now(sst_worker_t *w)
{
    return uv_now(&w->loop);
}

/* ---- buffers --------------------------------------------------------------------------- */

sst_chunk_t *sst__chunk_get(sst_worker_t *w)
{
    sst_chunk_t *c = w->free_chunks;
    if (c != NULL) {
        w->free_chunks = c->next;
        w->n_free_chunks--;
    } else {
        c = malloc(sizeof(*c) + SST_CHUNK_SIZE);
        if (c == NULL)
            return NULL;
        c->size = SST_CHUNK_SIZE;
    }
    c->next = NULL;
    c->refs = 1;
    return c;
}

void sst__chunk_unref(sst_worker_t *w, sst_chunk_t *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0)
        return;
    if (w->n_free_chunks < MAX_FREE_CHUNKS && !w->stopping) {
        c->next = w->free_chunks;
        w->free_chunks = c;
        w->n_free_chunks++;
    } else {
        free(c);
    }
}

sst_wreq_t *sst__wreq_get(sst_worker_t *w)
{
    sst_wreq_t *r = w->free_wreqs;
    if (r != NULL) {
        w->free_wreqs = r->next;
        w->n_free_wreqs--;
    } else {
        r = malloc(sizeof(*r));
        if (r == NULL)
            return NULL;
    }
    r->next = NULL;
    r->w = w;
    r->owner = NULL;
    r->cb = NULL;
    r->n_bufs = r->n_chunks = 0;
    r->bytes = 0;
    r->heap = NULL;
    r->scratch_used = 0;
    return r;
}

void sst__wreq_put(sst_worker_t *w, sst_wreq_t *r)
{
    for (uint32_t i = 0; i < r->n_chunks; i++)
        sst__chunk_unref(w, r->chunks[i]);
    r->n_chunks = 0;
    free(r->heap);
    r->heap = NULL;
    if (w->n_free_wreqs < MAX_FREE_WREQS) {
        r->next = w->free_wreqs;
        w->free_wreqs = r;
        w->n_free_wreqs++;
    } else {
        free(r);
    }
}

void sst__wreq_add(sst_wreq_t *r, sst_chunk_t *chunk, const char *at, size_t len)
{
    assert(r->n_bufs < SST_WREQ_BUFS);
    r->bufs[r->n_bufs++] = uv_buf_init((char *)at, (unsigned)len);
    r->bytes += len;
    if (chunk != NULL && (r->n_chunks == 0 || r->chunks[r->n_chunks - 1] != chunk)) {
        assert(r->n_chunks < SST_WREQ_CHUNKS);
        chunk->refs++;
        r->chunks[r->n_chunks++] = chunk;
    }
}

/* Below this many bytes, several buffers are copied into one and sent with send(2). */
#define SEND_COPY_MAX 2048

ssize_t sst__sock_send(uv_stream_t *stream, const uv_buf_t *bufs, size_t n, size_t total)
{
    /* The same as uv_try_write when nothing is queued, but through the socket layer: send(2)
     * and sendmsg(2) skip the VFS read/write path writev(2) takes, and a small answer in
     * several prepared parts is cheaper copied into one buffer than sent as an iovec
     * (measured on this machine's loopback: 3.3 us for send of 280 bytes against 3.7 us for
     * writev of the same bytes in 3 parts). uv_buf_t is ABI compatible with struct iovec. */
    uv_os_fd_t fd;
    ssize_t rc;
    if (uv_fileno((const uv_handle_t *)stream, &fd) != 0)
        return UV_EBADF;
    if (n == 1) {
        rc = send(fd, bufs[0].base, bufs[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else if (total <= SEND_COPY_MAX) {
        char one[SEND_COPY_MAX];
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(one + off, bufs[i].base, bufs[i].len);
            off += bufs[i].len;
        }
        rc = send(fd, one, off, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        struct msghdr mh = {.msg_iov = (struct iovec *)(uintptr_t)bufs, .msg_iovlen = n};
        rc = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (rc >= 0)
        return rc;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return -errno;
}

static void worker_on_write(uv_write_t *req, int status)
{
    sst_wreq_t *r = sst_container_of(req, sst_wreq_t, req);
    /* runs with UV_ECANCELED when the stream closes, before its close callback: the owner is
     * still alive */
    if (r->cb != NULL)
        r->cb(r->owner, status, r->bytes);
    sst__wreq_put(r->w, r);
}

int sst__wreq_submit(sst_wreq_t *r, uv_stream_t *stream, void *owner, sst_wreq_cb cb)
{
    r->owner = owner;
    r->cb = cb;
    if (uv_stream_get_write_queue_size(stream) == 0) {
        /* Nothing queued: write now. When the kernel takes it all, there is no write request
         * for libuv to complete, hence no deferred callback and no epoll_ctl to drop the
         * POLLOUT interest afterwards (libuv 1.44 issues one per completed uv_write). */
        ssize_t n = sst__sock_send(stream, r->bufs, r->n_bufs, r->bytes);
        if (n < 0) {
            sst__wreq_put(r->w, r);
            return (int)n;
        }
        if ((size_t)n == r->bytes) {
            sst__wreq_put(r->w, r);
            return SST_WREQ_DONE;
        }
        /* partly written: queue the rest */
        size_t skip = (size_t)n;
        uint32_t first = 0;
        while (skip >= r->bufs[first].len) {
            skip -= r->bufs[first].len;
            first++;
        }
        r->bufs[first].base += skip;
        r->bufs[first].len -= skip;
        if (first > 0) {
            memmove(r->bufs, r->bufs + first, (r->n_bufs - first) * sizeof(r->bufs[0]));
            r->n_bufs -= first;
        }
    }
    int rc = uv_write(&r->req, stream, r->bufs, r->n_bufs, worker_on_write);
    if (rc != 0)
        sst__wreq_put(r->w, r);
    return rc;
}

sst_head_t *sst__head_get(sst_worker_t *w)
{
    sst_head_t *h = w->free_heads;
    if (h != NULL) {
        w->free_heads = h->next;
        w->n_free_heads--;
        h->next = NULL;
        return h;
    }
    return sst_head_new();
}

void sst__head_put(sst_worker_t *w, sst_head_t *h)
{
    if (w->n_free_heads < MAX_FREE_HEADS && !w->stopping) {
        sst_head_clear(h, 16 * 1024);
        h->next = w->free_heads;
        w->free_heads = h;
        w->n_free_heads++;
    } else {
        sst_head_free(h);
    }
}

sst_req_t *sst__req_get(sst_worker_t *w)
{
    sst_req_t *r = w->free_reqs;
    if (r != NULL) {
        w->free_reqs = r->next;
        w->n_free_reqs--;
        return r;
    }
    return malloc(sizeof(*r));
}

void sst__req_put(sst_worker_t *w, sst_req_t *r)
{
    if (w->n_free_reqs < MAX_FREE_REQS && !w->stopping) {
        r->next = w->free_reqs;
        w->free_reqs = r;
        w->n_free_reqs++;
    } else {
        free(r);
    }
}

static void worker_free_lists(sst_worker_t *w)
{
    while (w->free_reqs != NULL) {
        sst_req_t *r = w->free_reqs;
        w->free_reqs = r->next;
        free(r);
    }
    while (w->free_chunks != NULL) {
        sst_chunk_t *c = w->free_chunks;
        w->free_chunks = c->next;
        free(c);
    }
    while (w->free_wreqs != NULL) {
        sst_wreq_t *r = w->free_wreqs;
        w->free_wreqs = r->next;
        free(r);
    }
    while (w->free_heads != NULL) {
        sst_head_t *h = w->free_heads;
        w->free_heads = h->next;
        sst_head_free(h);
    }
    w->n_free_chunks = w->n_free_wreqs = w->n_free_heads = w->n_free_reqs = 0;
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
    const sst_conn_t *first = sst__dheap_min(&w->deadlines);
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

int sst__deadline_set(sst_worker_t *w, sst_conn_t *c, uint64_t due)
{
    int rc = sst__dheap_set(&w->deadlines, c, due);
    if (rc == 0)
        worker_arm_deadlines(w);
    return rc;
}

static void worker_on_deadline(uv_timer_t *t)
{
    sst_worker_t *w = t->data;
    uint64_t now = uv_now(&w->loop);
    w->deadline_armed = UINT64_MAX;
    sst_conn_t *c;
    while ((c = sst__dheap_min(&w->deadlines)) != NULL && c->due <= now) {
        sst__dheap_set(&w->deadlines, c, UINT64_MAX);
        sst__conn_on_deadline(c); /* may set a new deadline or close c */
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
    const sst_config_t *cfg = w->cur->view->cfg;
    uint64_t n = atomic_load_explicit(&w->server->n_conns, memory_order_relaxed);
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
    sst__conn_accept(w, l, reject);
}

static void worker_resume_listeners(sst_worker_t *w)
{
    for (sst_link_t *k = w->listeners.next; k != &w->listeners; k = k->next) {
        sst_listener_t *l = sst_container_of(k, sst_listener_t, link);
        bool reject;
        if (!l->paused || !worker_accept_allowed(w, &reject))
            continue;
        l->paused = false;
        sst__conn_accept(w, l, reject); /* uv_accept resumes polling */
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
        sst__pools_update(w, v->cfg, v->prep);
        memset(w->lb, 0, sizeof(w->lb));
        memset(w->passive_bad, 0, sizeof(w->passive_bad));
        if (!w->stopping)
            worker_sync_listeners(w, v->cfg, v->prep);
    }
    if (old != NULL) {
        sst_list_push(&w->old_views, &old->link);
        sst__worker_view_release(w, old);
    }
}

static void worker_finish(sst_worker_t *w);

static void worker_begin_stop(sst_worker_t *w, sst_worker_stop_t how)
{
    if (!w->stopping) {
        w->stopping = true;
        while (!sst_list_empty(&w->listeners))
            worker_close_listener(sst_container_of(w->listeners.next, sst_listener_t, link));
        sst__conn_shutdown_idle(w);
        sst__pools_close_all(w);
        w->stop_deadline = uv_now(&w->loop) + w->cur->view->cfg->timeouts.shutdown_ms;
    }
    if (how == SST_STOP_NOW)
        sst__conn_close_all(w);
    if (w->n_conns == 0)
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
        if (w->n_conns == 0) {
            worker_finish(w);
            return;
        }
        if (uv_now(&w->loop) >= w->stop_deadline) {
            sst_warn("worker %u: shutdown deadline reached, closing %zu connections", w->id,
                     w->n_conns);
            sst__conn_close_all(w);
        }
        return;
    }
    worker_resume_listeners(w);
}

void sst__worker_conn_gone(sst_worker_t *w)
{
    atomic_fetch_sub_explicit(&w->server->n_conns, 1, memory_order_relaxed);
    if (w->stopping && w->n_conns == 0)
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
    sst__pools_close_all(w);
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

/* ---- passive signals -------------------------------------------------------------------- */

void sst__worker_passive(sst_worker_t *w, uint64_t config_version, size_t backend,
                         sst_passive_t sig)
{
    sst_passive_ring_t *r = &w->passive;
    uint_fast32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint_fast32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= SST_PASSIVE_RING) {
        atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
        return;
    }
    r->msgs[head % SST_PASSIVE_RING] = (sst_passive_msg_t){
        .config_version = config_version,
        .backend = (uint16_t)backend,
        .signal = (uint8_t)sig,
    };
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    uv_async_send(&w->server->passive_async);
}

/* ---- thread ---------------------------------------------------------------------------- */

/* What outlives the handles: called once every handle of the loop is closed (the thread's
 * uv_run ended, or a failed start ran the loop to close what it opened). A loop that still
 * has a handle open is a leak: w->loop_unclean makes sst_server_free report it, so the
 * process exit status shows it. */
static void worker_release(sst_worker_t *w)
{
    worker_flush_log(w);
    sst__pools_free(w);
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
        w->stopping = true; /* buffers go back to malloc, not to the free lists */
        while (!sst_list_empty(&w->listeners))
            worker_close_listener(sst_container_of(w->listeners.next, sst_listener_t, link));
        sst__pools_close_all(w);
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

int sst__worker_start(sst_server_t *s, unsigned id, sst_view_t *view)
{
    sst_worker_t *w = &s->workers[id];
    bool loop_ready = false, async_ready = false;
    int rc;

    w->server = s;
    w->id = id;
    sst_list_init(&w->old_views);
    sst_list_init(&w->listeners);
    sst_list_init(&w->conns);
    sst_list_init(&w->idle_conns);
    sst_list_init(&w->all_pools);
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
    if ((rc = uv_loop_init(&w->loop)) != 0)
        goto fail;
    loop_ready = true;
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
