/* Inside the client-connection module (conn*.c) and its unit test: the connection and its
 * request state. Nothing outside conn*.c includes this; the worker uses core/conn.h. */
#ifndef SST_CORE_CONN_INT_H
#define SST_CORE_CONN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/dheap.h"
#include "core/list.h"
#include "core/metrics.h"
#include "core/transport.h"
#include "core/upstream.h"
#include "core/worker.h"
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
    bool responded;    /* the whole response is queued */
    bool resp_started; /* response bytes were queued to the client */
    bool close_after;  /* close the connection after this exchange */
    bool continue_sent;
    bool chunked_out;      /* the response is re-chunked to the client */
    bool accounted;        /* logged and counted */
    bool https_redirect;   /* the listener's https enforcement answered */
    bool idempotent;       /* RFC 9110 §9.2.2 method */
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
    uint32_t in_off, in_len;
    uint64_t deadline;      /* LINGER: when lingering ends (uv_now ms), set once the FIN is out */
    uint64_t last_progress; /* last read or write progress, for inactivity timeouts */
    uint64_t accepted_ms;
    sst_upstream_t *up;      /* current attempt */
    sst_req_t *req;          /* NULL between requests */
    sst_wreq_t *rwb;         /* response bytes for the client, being gathered */
    uint32_t write_progress; /* uv_now mod 2^32 when queued bytes last moved (or began to
                                wait): the send timeout counts from it, not from reads */
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
    bool peer_trusted : 1;
    char peer_ip[46]; /* INET6_ADDRSTRLEN */
};

#endif
