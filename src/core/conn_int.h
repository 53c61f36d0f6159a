/* Inside the client-connection module (conn*.c) and its unit test: the connection and its
 * request state. Nothing outside conn*.c includes this; the worker uses core/conn.h. */
#ifndef SST_CORE_CONN_INT_H
#define SST_CORE_CONN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/list.h"
#include "core/buf.h"
#include "core/conn.h"
#include "core/dheap.h"
#include "core/metrics.h"
#include "core/transport.h"
#include "core/upstream.h"
#include "core/worker.h"
#include "http/h1_write.h"
#include "http/http1.h"
#include "sidestep/config.h"
#include "sidestep/route.h"

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
typedef struct sst_req_s {
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
    bool parsed;       /* the whole request has been read */
    bool flush_failed; /* a body write failed inside the parser: reported once it returns */
    bool responded;    /* the whole response is queued */
    bool resp_started; /* response bytes were queued to the client */
    bool close_after;  /* close the connection after this exchange */
    bool continue_sent;
    bool chunked_out;      /* the response is re-chunked to the client */
    bool accounted;        /* logged and counted */
    bool https_redirect;   /* the listener's https enforcement answered */
    bool idempotent;       /* RFC 9110 §9.2.2 method */
    bool idem_key;         /* a valid idempotency key (issue 15; conn_local.c says when) */
    bool try_reported;     /* this attempt's silence past try_timeout was already reported as
                              a passive TIMEOUT: its response timeout is not reported again */
    uint64_t try_ms;       /* the route's try_timeout, 0 when none (issue 15) */
    uint64_t attempt_ms;   /* when the current attempt began (uv_now) */
    size_t listener_index; /* the listener in this request's config, SIZE_MAX if gone */
    /* The https Location's host: the decision points into it, and the answer may wait for a
     * body to drain or the socket to drain, so it lives here and not in the worker (issue 11:
     * a per-worker buffer let another client's request rewrite it meanwhile). */
    char https_host[SST_HTTPS_HOST_MAX];
} sst_req_t;

/* An idle keep-alive connection costs just this (docs/benchmarks.md): the fields are ordered
 * so that the struct has no holes, and conn.c asserts its size. */
struct sst_conn_s {
    sst_transport_t tp; /* first: the transport's callbacks find the connection */
    sst_dnode_t dl;     /* deadline in the worker's heap (uv_now ms) */
    sst_worker_t *w;
    sst_link_t link;          /* worker's conns.all */
    sst_link_t idle_link;     /* worker's conns.idle while IDLE */
    sst_listener_t *listener; /* holds a reference: outlives a reload that removes it */
    sst_chunk_t *in;          /* unparsed input */
    uint64_t deadline;        /* LINGER: when lingering ends (uv_now ms), set once the FIN is out */
    uint64_t last_progress;   /* last read or write progress, for inactivity timeouts */
    uint64_t accepted_ms;
    sst_upstream_t *up;      /* current attempt */
    sst_req_t *req;          /* NULL between requests */
    sst_wreq_t *rwb;         /* response bytes for the client, being gathered */
    uint32_t write_progress; /* uv_now mod 2^32 when queued bytes last moved (or began to
                                wait): the send timeout counts from it, not from reads */
    uint16_t in_off, in_len; /* within `in`: a chunk is under 64 KiB (asserted in conn.c) */
    sst_conn_state_t state;
    bool read_eof : 1;
    bool in_idle_list : 1;
    bool first_request : 1;
    bool backpressured : 1; /* reading paused: the upstream's write queue is over the mark */
    bool kick : 1;          /* the parser was resumed: feed it even with no new input */
    bool in_run : 1;        /* conn_run is on the stack: nested calls only ask for a rerun */
    bool rerun : 1;
    bool write_blocked : 1; /* IDLE with more than limits.buffer queued: no next request (a
                               pipelining client that does not read) until it drains */
    bool peer_trusted : 1;  /* the client (peer_ip) is in trusted_proxies */
    /* The client's address as text: the TCP peer's, or the one a PROXY header declared. The
     * longest IPv6 text inet_ntop writes is 39 bytes (the dotted-quad forms are only used for
     * ::a.b.c.d and ::ffff:a.b.c.d, which are shorter), hence 40, not INET6_ADDRSTRLEN. */
    char peer_ip[40];
};

/* ---- shared by conn*.c, on the worker's thread ---------------------------------------------- */

static inline const sst_config_t *conn_cfg(const sst_conn_t *c)
{
    return c->req != NULL && c->req->wv != NULL ? c->req->wv->view->cfg : sst__worker_config(c->w);
}

static inline uint64_t conn_now(const sst_conn_t *c)
{
    return uv_now(&c->w->loop);
}

static inline size_t conn_write_queue(const sst_conn_t *c)
{
    return sst__tp_queued(&c->tp);
}

/* The send timeout's clock: queued bytes moved, or a write began to wait on an empty queue. */
static inline void conn_write_progress(sst_conn_t *c)
{
    c->write_progress = (uint32_t)conn_now(c);
}

static inline uint64_t conn_write_since(const sst_conn_t *c)
{
    uint64_t now = conn_now(c);
    return now - (uint32_t)((uint32_t)now - c->write_progress); /* exact for stalls < 49 days */
}

/* The Strict-Transport-Security line for answers on this connection: its listener's hsts,
 * over TLS only (RFC 6797 section 7.2); empty otherwise. */
static inline sst_str_t conn_hsts(const sst_conn_t *c)
{
    const sst_req_t *r = c->req;
    if (c->tp.kind != SST_TP_TLS || r == NULL || r->wv == NULL ||
        r->listener_index >= SST_MAX_LISTENERS)
        return SST_STR_NULL;
    return r->wv->view->prep->hsts[r->listener_index];
}

static inline void conn_resume_parser(sst_conn_t *c)
{
    sst_h1_resume(&c->req->h1);
    c->kick = true;
}

/* conn.c */
/* The only place c->state changes; asserts the transition in debug builds. */
void sst__conn_set_state(sst_conn_t *c, sst_conn_state_t to);
/* Feeds the parser what is buffered and acts on it; re-entrant calls only ask for a rerun. */
void sst__conn_run(sst_conn_t *c);
void sst__conn_arm_timer(sst_conn_t *c);
/* Writes bufs (copied if the socket does not take them now). Returns 0 or a negative error;
 * the caller closes on error. */
int sst__conn_send(sst_conn_t *c, const uv_buf_t *bufs, size_t n);
/* Counts and logs the request once, when its exchange ends (however it ends). */
void sst__conn_account(sst_conn_t *c);
/* Closes with an RST: the client must see that its answer was cut. */
void sst__conn_abort(sst_conn_t *c);
/* Ends the attempt without blaming the backend (the client's doing, or a local answer). */
void sst__conn_abort_upstream(sst_conn_t *c);
/* The exchange is over: next request (keep-alive) or the linger. */
void sst__conn_finish_request(sst_conn_t *c);

/* conn_local.c */
/* Checks a complete request head and routes it. */
void sst__conn_on_head(sst_conn_t *c);
sst_route_input_t sst__conn_route_input(const sst_conn_t *c);
/* Acts on c->req->decision: proxy, redirect or reject. */
void sst__conn_apply_decision(sst_conn_t *c);
/* Answers r->decision (a redirect or a rejection) without a backend, with the body rules. */
void sst__conn_answer_locally(sst_conn_t *c);
/* Writes the answer for r->decision now. Returns 0 or a negative error. */
int sst__conn_send_answer(sst_conn_t *c);
/* An error that ends the connection: `status` with Connection: close, then the linger. */
void sst__conn_fatal(sst_conn_t *c, unsigned status, const char *reason);
/* A 502/503/504 after routing: the connection survives when the request was read whole. */
void sst__conn_respond_error(sst_conn_t *c, unsigned status, const char *reason);
bool sst__conn_will_close(const sst_conn_t *c);
/* How the next head written to the client ends (its connection field). */
sst_tail_t sst__conn_tail(const sst_conn_t *c);

/* conn_proxy.c */
/* Picks a backend and takes a pooled upstream connection or opens one. */
void sst__conn_proxy_attempt(sst_conn_t *c);
/* An attempt failed in `phase`: route.c decides what follows. */
void sst__conn_attempt_failed(sst_conn_t *c, sst_fail_phase_t phase, sst_m_upfail_t kind,
                              const char *why);
/* The current attempt's backend sent a response head: evidence of life for retries after a
 * timeout (sst_conns_t.alive_ms). */
void sst__conn_backend_answered(sst_conn_t *c);
/* Request body bytes as parsed (the parser's callback), and the end of a parse pass's worth. */
int sst__conn_on_body(void *opaque, const char *at, size_t len);
void sst__conn_flush_body(sst_conn_t *c);
/* The whole request has been read. */
void sst__conn_on_request_parsed(sst_conn_t *c);
/* The callbacks an upstream connection reports through. */
extern const sst__upstream_cb_t sst__conn_upstream_cb;

/* conn_pp.c: the PROXY protocol (issue 16) */
/* The client address as text, a v4-mapped IPv6 address written as IPv4; "unknown" for any
 * other family or when it does not fit. */
void sst__conn_addr_text(const struct sockaddr *sa, char *buf, size_t size);
/* At accept, on a listener with proxy_protocol: the peer must be in proxy_protocol_from, else
 * the connection is counted and closed without an answer (returns false); then the transport
 * expects the header. */
bool sst__conn_pp_accept(sst_conn_t *c, const sst_listener_cfg_t *lc,
                         const struct sockaddr_storage *peer);
/* The transport's on_proxy: the header's client becomes the connection's, or the refusal is
 * counted and the connection closed. */
void sst__conn_on_proxy(sst_transport_t *t, sst_pp_status_t st, const sst_pp_result_t *res);
/* Counts a refusal (SST_M_PP_*) and closes without an answer. */
void sst__conn_pp_refuse(sst_conn_t *c, unsigned reason);
/* The header that opens a new backend connection for this client (mode: the region's
 * send_proxy_protocol) written into *out; NULL when the mode is off. Without an IP address
 * pair for the client (out of memory, not an IP socket) the header is v2 LOCAL / v1 UNKNOWN,
 * so the backend keeps sidestep's own address rather than a wrong one. */
const sst_tp_pp_out_t *sst__conn_pp_header(sst_conn_t *c, sst_send_proxy_t mode,
                                           sst_tp_pp_out_t *out);

/* conn_relay.c: the response callbacks of sst__conn_upstream_cb, and the gathered write */
int sst__conn_up_on_head(void *owner, const sst_h1_response_t *resp, const sst_head_t *head);
void sst__conn_up_on_body(void *owner, sst_chunk_t *chunk, const char *at, size_t len);
void sst__conn_up_on_flush(void *owner);
void sst__conn_up_on_done(void *owner);
void sst__conn_response_flush(sst_conn_t *c);

#endif
