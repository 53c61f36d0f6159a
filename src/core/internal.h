/* Types shared across src/: the server (control plane on the main loop), workers (one event loop
 * thread each), the view they route with, client connections, upstream connections and pools.
 * Prototypes here are sst__ internals, not API. */
#ifndef SST_INTERNAL_H
#define SST_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http/http1.h"
#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/metrics.h"
#include "sidestep/route.h"

typedef struct sst_server_s sst_server_t;
typedef struct sst_worker_s sst_worker_t;
typedef struct sst_conn_s sst_conn_t;
typedef struct sst_upstream_s sst_upstream_t;
typedef struct sst_pool_s sst_pool_t;
typedef struct sst_req_s sst_req_t;

/* Intrusive doubly linked list (a ring with a sentinel). */
typedef struct sst_link_s {
    struct sst_link_s *prev, *next;
} sst_link_t;

static inline void sst_list_init(sst_link_t *l)
{
    l->prev = l->next = l;
}
static inline bool sst_list_empty(const sst_link_t *l)
{
    return l->next == l;
}
static inline void sst_list_push(sst_link_t *head, sst_link_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
static inline void sst_list_remove(sst_link_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define sst_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- buffers ---------------------------------------------------------------------------- */

/* A read buffer, reference counted within one worker: the reader holds one reference while
 * bytes are unparsed, every queued write that points into it holds one more. */
typedef struct sst_chunk_s {
    struct sst_chunk_s *next; /* free list */
    uint32_t refs;
    uint32_t size;
    char data[];
} sst_chunk_t;

#define SST_CHUNK_SIZE (16 * 1024 - 64)

#define SST_WREQ_BUFS    16
#define SST_WREQ_CHUNKS  8
#define SST_WREQ_SCRATCH 256

typedef void (*sst_wreq_cb)(void *owner, int status, size_t bytes);

/* One uv_write with what it points at: references to read chunks, a small scratch area (chunk
 * size lines), and optionally a heap block (built heads). Pooled per worker. */
typedef struct sst_wreq_s {
    uv_write_t req;
    struct sst_wreq_s *next;
    sst_worker_t *w;
    void *owner;
    sst_wreq_cb cb;
    uint32_t n_bufs;
    uint32_t n_chunks;
    size_t bytes;
    char *heap;
    uint32_t scratch_used;
    uv_buf_t bufs[SST_WREQ_BUFS];
    sst_chunk_t *chunks[SST_WREQ_CHUNKS];
    char scratch[SST_WREQ_SCRATCH];
} sst_wreq_t;

/* ---- the view: config + health + prepared responses, published to workers ---------------- */

/* How a generated answer ends: the connection header, then the blank line. */
typedef enum sst_tail_e {
    SST_TAIL_PLAIN = 0,   /* "\r\n": HTTP/1.1 keep-alive */
    SST_TAIL_CLOSE,       /* "Connection: close\r\n\r\n" */
    SST_TAIL_KEEPALIVE10, /* "Connection: keep-alive\r\n\r\n": HTTP/1.0 keep-alive */
    SST_TAILS
} sst_tail_t;

extern const sst_str_t sst__tails[SST_TAILS];

/* Redirect statuses with prepared status lines. */
#define SST_REDIRECT_STATUSES 5 /* 301 302 303 307 308 */

/* The listening sockets of one listener address, one per worker (SO_REUSEPORT), opened by the
 * control thread when the address first appears in a config. A worker takes its own slot with
 * an atomic exchange; the control thread closes the slots nobody took when the address leaves
 * the config. Entries live until the server is freed, so a view that still points at one is
 * never left dangling. Keeping them here, and not per config, means a worker that skips a view
 * (two reloads before it woke) still finds the sockets of a listener added by the skipped one. */
typedef struct sst_lsock_s {
    struct sst_lsock_s *next;
    char key[272]; /* the configured address text */
    struct sockaddr_storage bound;
    bool live; /* in the config in force */
    atomic_int fds[SST_MAX_WORKERS];
} sst_lsock_t;

/* Per config: the constant parts of generated responses and the metric ids of names. A 307
 * is written as [status line + "Location: " + region url] [path-and-query parts]
 * [headers + tail + body]: three buffers of one writev in the common case. */
typedef struct sst_prep_s {
    sst_str_t redirect_head[SST_MAX_REGIONS][SST_REDIRECT_STATUSES];
    sst_str_t redirect_rest[SST_MAX_REGIONS][SST_TAILS]; /* mid + tail + body */
    sst_str_t redirect_mid[SST_MAX_REGIONS];  /* "\r\nCache-Control...Content-Length: N\r\n" */
    sst_str_t redirect_body[SST_MAX_REGIONS]; /* the short body */
    uint16_t route_mid[SST_MAX_ROUTES];       /* metric ids */
    uint16_t region_mid[SST_MAX_REGIONS];
    uint16_t backend_mid[SST_MAX_BACKENDS];
    char *storage;
    /* the listening sockets of each configured listener (owned by the server's table) */
    struct sst_lsock_s *lsock[SST_MAX_LISTENERS];
    struct sockaddr_storage bound[SST_MAX_LISTENERS];
    struct sst_lsock_s *created; /* entries this config added to the table (see view.c) */
    unsigned n_workers;
} sst_prep_t;

typedef struct sst_view_s {
    atomic_uint_fast32_t refs;
    uint64_t generation;
    sst_config_t *cfg; /* one reference */
    sst_hsnap_t *snap; /* one reference */
    sst_prep_t *prep;  /* shared by views of the same config: freed with the config's last view */
    atomic_uint_fast32_t *prep_refs;
} sst_view_t;

sst_view_t *sst__view_ref(sst_view_t *v);
void sst__view_unref(sst_view_t *v);

/* A worker's local hold on a view: requests count here without touching the shared refcount. */
typedef struct sst_wview_s {
    sst_link_t link;
    sst_view_t *view;
    uint32_t users; /* requests in flight using this view, plus 1 while it is current */
} sst_wview_t;

/* ---- passive health signals: worker -> control thread, lock-free single producer ring ---- */

#define SST_PASSIVE_RING 1024

typedef struct sst_passive_msg_s {
    uint64_t config_version;
    uint16_t backend;
    uint8_t signal; /* sst_passive_t */
} sst_passive_msg_t;

typedef struct sst_passive_ring_s {
    atomic_uint_fast32_t head; /* written by the worker */
    atomic_uint_fast32_t tail; /* written by the control thread */
    atomic_uint_fast64_t dropped;
    sst_passive_msg_t msgs[SST_PASSIVE_RING];
} sst_passive_ring_t;

/* ---- deadlines: a binary min-heap of connections on their `due` field (dheap.c) ----------- */

typedef struct sst_dheap_s {
    sst_conn_t **a;
    uint32_t n, cap;
} sst_dheap_t;

/* Sets c->due and c's place in the heap; UINT64_MAX takes it out. Returns 0 or SST_ENOMEM
 * (c is then unchanged). c->heap_idx must be UINT32_MAX for a connection not in a heap. */
int sst__dheap_set(sst_dheap_t *h, sst_conn_t *c, uint64_t due);
/* The connection with the earliest deadline, or NULL. */
sst_conn_t *sst__dheap_min(const sst_dheap_t *h);
void sst__dheap_free(sst_dheap_t *h);

/* ---- listeners, workers ----------------------------------------------------------------- */

typedef struct sst_listener_s {
    uv_tcp_t tcp;
    sst_worker_t *w;
    size_t cfg_index; /* in the config it was opened for */
    char key[280];    /* configured address text: matched across reloads */
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
    sst_server_t *server;
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
    sst_link_t conns;      /* every client connection */
    sst_link_t idle_conns; /* keep-alive connections waiting for a request, oldest last */
    size_t n_conns;
    sst_pool_t *pools[SST_MAX_BACKENDS]; /* by backend index of the current view's config */
    sst_link_t all_pools;
    sst_lb_state_t lb[SST_MAX_REGIONS];
    sst_chunk_t *free_chunks;
    size_t n_free_chunks;
    sst_wreq_t *free_wreqs;
    size_t n_free_wreqs;
    sst_head_t *free_heads;
    size_t n_free_heads;
    sst_req_t *free_reqs;
    size_t n_free_reqs;
    /* request body bytes queued for an upstream during one parse pass of one connection (a
     * pass never interleaves with another connection's) */
    uv_buf_t out_bufs[SST_WREQ_BUFS];
    uint32_t n_out_bufs;
    uint8_t passive_bad[SST_MAX_BACKENDS]; /* last passive report per backend was a failure */
    sst_passive_ring_t passive;
    sst_wmetrics_t *metrics;
    char *log_buf;
    size_t log_len, log_cap;
    char scratch[4096]; /* generated responses are built here, then written with try_write */
    uint64_t stop_deadline;
};

/* ---- client connections ----------------------------------------------------------------- */

typedef enum sst_conn_state_e {
    SST_CONN_IDLE = 0, /* waiting for the first byte of a request */
    SST_CONN_HEAD,     /* reading a request head */
    SST_CONN_UPSTREAM, /* request handed to an upstream attempt (connecting or relaying) */
    SST_CONN_LOCAL,    /* sidestep answers itself (redirect, error); body may be discarded */
    SST_CONN_LINGER,   /* final answer written: draining input before closing */
    SST_CONN_CLOSING,
} sst_conn_state_t;

/* What happens to request body bytes the parser produces. */
typedef enum sst_body_sink_e {
    SST_SINK_NONE = 0,
    SST_SINK_UPSTREAM,
    SST_SINK_DISCARD,
} sst_body_sink_t;

/* One request in progress on a client connection: pooled per worker and attached only while
 * a request is read or answered, so an idle keep-alive connection holds none of it. */
struct sst_req_s {
    struct sst_req_s *next; /* free list */
    sst_h1_t h1;            /* a fresh parser per request: messages start on a boundary */
    sst_wview_t *wv;
    sst_head_t *head;
    sst_h1_request_t info;
    sst_decision_t decision;
    size_t route;  /* SIZE_MAX before routing */
    size_t region; /* SIZE_MAX when none */
    int backend;   /* current attempt's backend, -1 when none */
    uint32_t exclude_regions;
    sst_tried_t tried;
    uint32_t attempts;
    uint64_t start_hr; /* uv_hrtime() at the first byte */
    uint64_t body_deadline_total;
    uint64_t body_started;    /* uv_now when the body began */
    uint64_t body_rate_check; /* next minimum-rate check */
    uint64_t body_in;         /* request body bytes read */
    uint64_t bytes_in, bytes_out;
    uint16_t status;
    sst_m_decision_t mdec;
    const char *note; /* why, for the access log */
    sst_body_sink_t sink;
    uint64_t discard_limit;
    bool parsed;       /* the whole request has been read */
    bool responded;    /* the whole response is queued */
    bool resp_started; /* response bytes were queued to the client */
    bool close_after;  /* close the connection after this exchange */
    bool continue_sent;
    bool chunked_out; /* the response is re-chunked to the client */
    bool final_chunk_due;
    bool accounted;        /* logged and counted */
    bool https_redirect;   /* the listener's https enforcement answered */
    bool idempotent;       /* RFC 9110 §9.2.2 method */
    size_t listener_index; /* the listener in this request's config, SIZE_MAX if gone */
    /* The https Location's host: the decision points into it, and the answer may wait for a
     * body to drain or the socket to drain, so it lives here and not in the worker (issue 11:
     * a per-worker buffer let another client's request rewrite it meanwhile). */
    char https_host[SST_HTTPS_HOST_MAX];
};

struct sst_conn_s {
    uv_tcp_t tcp;
    uint64_t due;                /* deadline in the worker's heap (uv_now ms), UINT64_MAX: none */
    uint32_t heap_idx;           /* position in the worker's deadline heap, UINT32_MAX: not in it */
    uint32_t write_progress;     /* uv_now mod 2^32 when queued bytes last moved (or began to
                                    wait): the send timeout counts from it, not from reads */
    uv_shutdown_t *shutdown_req; /* allocated when the linger starts */
    sst_worker_t *w;
    sst_link_t link;      /* worker->conns */
    sst_link_t idle_link; /* worker->idle_conns while IDLE */
    sst_conn_state_t state;
    uint8_t pending_closes;
    bool reading;
    bool read_eof;
    bool in_idle_list;
    bool first_request;
    bool backpressured; /* reading paused: the upstream's write queue is over the mark */
    bool shutdown_started;
    bool kick;   /* the parser was resumed: feed it even with no new input */
    bool in_run; /* conn_run is on the stack: nested calls only ask for a rerun */
    bool rerun;
    bool rejected;            /* accepted over the connection limit: answered 503 */
    bool write_blocked;       /* IDLE with more than limits.buffer queued: no next request (a
                                 pipelining client that does not read) until it drains */
    sst_listener_t *listener; /* holds a reference: outlives a reload that removes it */
    char peer_ip[46];         /* INET6_ADDRSTRLEN */
    bool peer_trusted;
    sst_chunk_t *in; /* unparsed input */
    uint32_t in_off, in_len;
    uint64_t deadline;      /* LINGER: when lingering ends (uv_now ms), set once the FIN is out */
    uint64_t last_progress; /* last read or write progress, for inactivity timeouts */
    uint64_t accepted_ms;
    sst_upstream_t *up; /* current attempt */
    sst_req_t *req;     /* NULL between requests */
    sst_wreq_t *rwb;    /* response bytes for the client, being gathered */
};

/* ---- upstream connections and pools ---------------------------------------------------- */

typedef enum sst_up_state_e {
    SST_UP_CONNECTING = 0,
    SST_UP_ACTIVE, /* carrying a request */
    SST_UP_IDLE,   /* in the pool */
    SST_UP_CLOSING,
} sst_up_state_t;

struct sst_upstream_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    sst_worker_t *w;
    sst_pool_t *pool;
    sst_link_t link; /* pool->idle or pool->active */
    sst_up_state_t state;
    uint8_t pending_closes;
    bool reused;
    bool reading;
    bool req_queued;     /* the whole request is queued for writing */
    bool req_written;    /* ... and written */
    bool write_failed;   /* a request write failed: the read side decides (an early answer?) */
    sst_wreq_t *pending; /* the request head, held until the end of the parse pass */
    uint64_t idle_since; /* when it went back to the pool */
    bool resp_head;      /* a final response head arrived */
    bool resp_done;
    bool keep_alive;
    bool backpressured;
    uint32_t writes_pending;
    uint64_t deadline;
    uint64_t last_progress;
    uint64_t req_bytes_sent;
    sst_conn_t *conn; /* the client connection it serves, NULL when idle */
    sst_h1_t h1;
    sst_head_t *head;
    sst_h1_response_t resp;
    sst_chunk_t *in;
};

struct sst_pool_s {
    sst_link_t link; /* worker->all_pools */
    sst_worker_t *w;
    char key[272]; /* backend address text */
    struct sockaddr_storage sa;
    uint16_t metric_id;
    bool retired;    /* not in the current config: close connections as they come back */
    sst_link_t idle; /* most recently used first */
    size_t n_idle;
    size_t n_total; /* idle + active + connecting */
};

/* ---- the server: control plane on the main loop ----------------------------------------- */

struct sst_server_s {
    uv_loop_t *loop;
    sst_config_t *cfg;
    char *config_path; /* NULL for the embedded demo */
    uint64_t config_version;
    sst_health_t *health;
    void *prober;
    sst_view_t *view; /* current */
    uint64_t generation;
    unsigned n_workers;
    sst_worker_t *workers;
    atomic_uint_fast64_t n_conns; /* all workers */
    uv_async_t passive_async;
    uv_timer_t health_timer;
    uv_timer_t stop_timer; /* polls for the workers' end during shutdown */
    bool handles_open;
    unsigned abort_closes;           /* a failed start: handles still to close before the free */
    const sst_config_t *pending_cfg; /* during sst_health_create: events name its backends */
    const sst_prep_t *pending_prep;
    int access_fd, old_access_fd;
    struct sockaddr_storage admin_bound;
    sst_lsock_t *lsocks; /* every listener address ever opened (see sst_lsock_t) */
    void *admin;
    void *demo;
    uint64_t start_ms; /* uv_now at start */
    uint64_t start_epoch_ms;
    uint64_t rng;
    bool stopping;
    int exit_code;
    char *ready_file;
    /* metric name registries (control thread only; ids are stable for the process life) */
    char *route_names[SST_M_ROUTES];
    char *region_names[SST_M_REGIONS];
    char *backend_names[SST_M_BACKENDS];
    size_t n_route_names, n_region_names, n_backend_names;
    /* health metrics, control thread only */
    uint64_t transitions[SST_M_BACKENDS][2]; /* backend: to down, to up */
    uint64_t region_transitions[SST_M_REGIONS][2];
    uint64_t probes[SST_M_BACKENDS][SST_REASON__COUNT];
    uint64_t probe_lat[SST_M_BACKENDS][SST_M_LAT_BUCKETS + 1];
    uint64_t probe_lat_sum_us[SST_M_BACKENDS];
    uint64_t events_total[SST_REASON__COUNT];
    uint64_t reloads_ok, reloads_failed;
    uint64_t passive_signals[5];
};

/* ---- prototypes ------------------------------------------------------------------------- */

/* worker.c */
/* Starts worker `id` of s->workers (zeroed) on `view`: its loop, handles and thread. Returns 0,
 * or a negative error with nothing left of the worker (no thread, loop, descriptor or view
 * reference; sst__worker_join on it is a no-op). */
int sst__worker_start(sst_server_t *s, unsigned id, sst_view_t *view);
void sst__worker_publish(sst_worker_t *w, sst_view_t *view);
void sst__worker_request_stop(sst_worker_t *w, sst_worker_stop_t how);
/* Waits for the thread, then frees what the worker kept for the control thread. */
void sst__worker_join(sst_worker_t *w);
sst_chunk_t *sst__chunk_get(sst_worker_t *w);
void sst__chunk_unref(sst_worker_t *w, sst_chunk_t *c);
sst_wreq_t *sst__wreq_get(sst_worker_t *w);
void sst__wreq_put(sst_worker_t *w, sst_wreq_t *r);
/* Appends a buffer; takes a reference on `chunk` when it is not NULL (bytes in static or
 * scratch storage pass NULL). The caller checks room first. */
void sst__wreq_add(sst_wreq_t *r, sst_chunk_t *chunk, const char *at, size_t len);
/* Writes what the socket takes now, without queueing: call only when the stream's write queue
 * is empty. Returns the bytes written (0 when the socket is full) or a negative error. */
ssize_t sst__sock_send(uv_stream_t *stream, const uv_buf_t *bufs, size_t n, size_t total);
/* Writes r to stream. Returns SST_WREQ_DONE when everything was written at once (r is
 * released, cb never runs), 0 when (the rest of) it is queued (cb runs once, later, with
 * bytes = r->bytes), or a negative error (r is released, cb never runs). */
#define SST_WREQ_DONE 1
int sst__wreq_submit(sst_wreq_t *r, uv_stream_t *stream, void *owner, sst_wreq_cb cb);
sst_head_t *sst__head_get(sst_worker_t *w);
void sst__head_put(sst_worker_t *w, sst_head_t *h);
sst_req_t *sst__req_get(sst_worker_t *w);
void sst__req_put(sst_worker_t *w, sst_req_t *r);
sst_wview_t *sst__worker_view_acquire(sst_worker_t *w);
void sst__worker_view_release(sst_worker_t *w, sst_wview_t *wv);
void sst__worker_passive(sst_worker_t *w, uint64_t config_version, size_t backend,
                         sst_passive_t sig);
void sst__worker_conn_gone(sst_worker_t *w);
void sst__worker_access_log(sst_worker_t *w, const char *line, size_t len);
void sst__listener_release(sst_listener_t *l);
/* Sets c's deadline (UINT64_MAX removes it). Returns 0 or SST_ENOMEM (heap growth). */
int sst__deadline_set(sst_worker_t *w, sst_conn_t *c, uint64_t due);
uint64_t sst__worker_now(sst_worker_t *w);

/* conn.c */
void sst__conn_accept(sst_worker_t *w, sst_listener_t *l, bool reject);
void sst__conn_close(sst_conn_t *c);
size_t sst__conn_evict_idle(sst_worker_t *w, size_t max); /* returns how many it closed */
void sst__conn_shutdown_idle(sst_worker_t *w);
void sst__conn_close_all(sst_worker_t *w);
/* Called by the worker when c's deadline passed (c is already out of the heap). */
void sst__conn_on_deadline(sst_conn_t *c);
void sst__conn_upstream_ready(sst_conn_t *c);
void sst__conn_upstream_failed(sst_conn_t *c, sst_fail_phase_t phase, sst_m_upfail_t kind,
                               const char *why);
int sst__conn_response_head(sst_conn_t *c, const sst_h1_response_t *resp, const sst_head_t *head);
void sst__conn_response_body(sst_conn_t *c, sst_chunk_t *chunk, const char *at, size_t len);
void sst__conn_response_flush(sst_conn_t *c);
void sst__conn_response_done(sst_conn_t *c);
bool sst__conn_client_writable(const sst_conn_t *c);
void sst__conn_upstream_drained(sst_conn_t *c);

/* upstream.c */
int sst__upstream_connect(sst_worker_t *w, sst_pool_t *pool, sst_conn_t *c, sst_upstream_t **out);
void sst__upstream_attach(sst_upstream_t *u, sst_conn_t *c);
/* Queues the request head, held by `chunk` (a reference is taken) or `heap` (ownership moves
 * to the write). Returns 0 or a negative error. */
int sst__upstream_send_head(sst_upstream_t *u, sst_chunk_t *chunk, char *heap, const char *head,
                            size_t len);
/* Queues body bytes living in `chunk` (may be NULL when n is 0) between an optional prefix
 * (copied into the write's scratch) and an optional static suffix. */
int sst__upstream_send_body(sst_upstream_t *u, sst_chunk_t *chunk, const uv_buf_t *bufs, uint32_t n,
                            const char *prefix, size_t prefix_len, const char *suffix,
                            size_t suffix_len);
void sst__upstream_request_sent(sst_upstream_t *u);
/* Writes the held-back request head (and the body bytes joined to it). Returns 0 or an error
 * (ENOMEM); a write error becomes a failed attempt through the read side. */
int sst__upstream_flush(sst_upstream_t *u);
void sst__upstream_detach(sst_upstream_t *u, bool reusable);
void sst__upstream_close(sst_upstream_t *u);
void sst__upstream_resume_reading(sst_upstream_t *u);
size_t sst__upstream_queued(const sst_upstream_t *u);

/* pool.c */
sst_pool_t *sst__pool_for(sst_worker_t *w, const sst_view_t *view, size_t backend);
/* The most recently used idle connection, or NULL. With `verify`, a connection idle for a
 * second or more is peeked first, so one the backend has closed meanwhile is noticed (and
 * closed) before it is handed out. */
sst_upstream_t *sst__pool_take(sst_pool_t *p, bool verify, uint64_t now_ms);
void sst__pool_put(sst_pool_t *p, sst_upstream_t *u);
void sst__pool_forget(sst_pool_t *p, sst_upstream_t *u);
void sst__pools_update(sst_worker_t *w, const sst_config_t *cfg, const sst_prep_t *prep);
void sst__pools_close_all(sst_worker_t *w);
void sst__pools_free(sst_worker_t *w);

/* view.c */
/* Builds the per-config parts: generated-response pieces, metric ids (registering new names
 * in the server), and the listening sockets of addresses not open yet (new entries of the
 * server's table, made live by sst__prep_commit). Returns 0, or a negative error with *err
 * set to a message naming the listener. */
int sst__prep_build(const sst_config_t *cfg, sst_server_t *s, sst_prep_t **out, char *err,
                    size_t err_size);
void sst__prep_free(sst_prep_t *p);
/* The config of `p` is now in force: its listener entries become live, the entries of
 * addresses no longer configured give up their untaken sockets. */
void sst__prep_commit(sst_server_t *s, sst_prep_t *p);
/* The reload that built `p` failed: the entries it created are closed and dropped. */
void sst__prep_abandon(sst_server_t *s, sst_prep_t *p);
void sst__lsocks_free(sst_server_t *s);
/* The route, region and backend names that sst__prep_build registered for metric series. */
void sst__prep_names_free(sst_server_t *s);
int sst__view_new(sst_config_t *cfg, sst_hsnap_t *snap, sst_prep_t *prep,
                  atomic_uint_fast32_t *prep_refs, uint64_t generation, sst_view_t **out);

/* server.c, for admin.c and metrics.c (control thread only) */
void sst__server_publish(sst_server_t *s);
/* Applies an operator action to the region or backend (HOST:PORT) called `name`. Returns 0,
 * SST_ENOENT (unknown name) or SST_EINVAL (action does not apply), with err filled. */
int sst__server_admin_op(sst_server_t *s, bool region, const char *name, sst_admin_op_t op,
                         const char *reason, uint64_t ttl_ms, char *err, size_t err_size);
void sst__server_listen_text(const sst_server_t *s, size_t i, char *buf, size_t size);

/* admin.c: the admin listener on the control loop */
int sst__admin_start(sst_server_t *s, char *err, size_t err_size);
void sst__admin_stop(sst_server_t *s);

/* metrics.c: Prometheus text exposition of every worker's counters plus health. Returns 0 and
 * a malloc'd buffer, or SST_ENOMEM. */
int sst__metrics_render(sst_server_t *s, char **out, size_t *len);

/* response building (respond.c). `head_only`: the answer to a HEAD request, with the headers
 * (Content-Length included) of the full answer and no body (RFC 9110 §9.3.2). */
size_t sst__redirect_iov(const sst_prep_t *prep, const sst_decision_t *d, bool https,
                         sst_tail_t tail, bool head_only, uv_buf_t *iov, size_t max);
/* The 204 answer to a CORS preflight of a redirected route (d->preflight): the CORS fields of
 * the decision, X-Sidestep-Region when `region` is not empty, then `tail`. The buffers point
 * into static storage and the decision's slices (the request's head). Returns the number of
 * buffers, or 0 when `max` is below SST_PREFLIGHT_IOV or d is no preflight. */
#define SST_PREFLIGHT_IOV 12
size_t sst__preflight_iov(const sst_decision_t *d, sst_str_t region, sst_tail_t tail, uv_buf_t *iov,
                          size_t max);
size_t sst__error_response(char *buf, size_t size, unsigned status, const char *reason,
                           uint64_t retry_after_s, bool close, bool http10_keepalive,
                           bool head_only);

#endif
