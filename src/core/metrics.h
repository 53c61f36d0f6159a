/* Counters. Each worker owns one sst_wmetrics_t and is its only writer (relaxed atomic stores,
 * plain moves on x86, no lock-prefixed instructions on the request path); the control thread
 * sums them for GET /metrics. Label values are small integer ids from a name registry kept by
 * the control thread, so a reload that reorders routes keeps every series continuous. */
#ifndef SST_CORE_METRICS_H
#define SST_CORE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "http/proxy_proto.h"
#include "sidestep/tls.h"

#define SST_M_ROUTES      65  /* route ids; the last one collects overflow ("other") */
#define SST_M_REGIONS     34  /* region ids; id 0 is "none" (no region chosen), the last "other" */
#define SST_M_BACKENDS    258 /* backend ids; the last one is "other" */
#define SST_M_LAT_BUCKETS 15

typedef enum sst_m_decision_e {
    SST_M_PROXY = 0,
    SST_M_REDIRECT,
    SST_M_REJECT, /* routing said no: 503 all down, 404 no route, hop limit */
    SST_M_ERROR,  /* answered by sidestep before or instead of routing: 400, 408, 413, ... */
    SST_M_DECISIONS
} sst_m_decision_t;

typedef enum sst_m_upfail_e {
    SST_M_UP_REFUSED = 0,
    SST_M_UP_CONNECT_TIMEOUT,
    SST_M_UP_CONNECT_ERROR,
    SST_M_UP_RESET,   /* reset or closed before a response head */
    SST_M_UP_TIMEOUT, /* no response head in time */
    SST_M_UP_BAD_RESPONSE,
    SST_M_UP_ABORTED,     /* failed after the response started */
    SST_M_UP_TRY_TIMEOUT, /* no response byte within routes[].try_timeout: abandoned (issue 15) */
    SST_M_UP_FAILS
} sst_m_upfail_t;

/* Why a connection on a PROXY listener was closed before its header was whole (issue 16):
 * the parser's reasons (sst_pp_error_t, 1..SST_PP_ERR_COUNT-1, labelled by sst_pp_error_name),
 * then the connection's own. */
enum {
    SST_M_PP_NOT_ALLOWED = SST_PP_ERR_COUNT, /* peer outside proxy_protocol_from */
    SST_M_PP_TIMEOUT,                        /* no whole header within timeouts.request_head */
    SST_M_PP_EOF,                            /* the peer closed (or reset) before it was whole */
    SST_M_PP_REASONS
};

typedef atomic_uint_fast64_t sst_counter_t;

/* TLS (issue 14), counted by the TLS transport (core/transport_tls.c). Failures are those that
 * end a connection before its handshake completes, plus renegotiation attempts after it. */
typedef struct sst_m_tls_s {
    sst_counter_t handshakes[2][2]; /* client side: [TLS 1.3][resumed] */
    sst_counter_t failures[SST_TLS_FAIL__COUNT];
    sst_counter_t up_handshakes[SST_M_BACKENDS][2]; /* backends: [metric id][resumed] */
    sst_counter_t up_failures[SST_M_BACKENDS][SST_TLS_FAIL__COUNT];
} sst_m_tls_t;

/* Single-writer increment: a relaxed load and store, no read-modify-write instruction. */
static inline void sst_counter_add(sst_counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline uint64_t sst_counter_get(const sst_counter_t *c)
{
    return atomic_load_explicit((sst_counter_t *)c, memory_order_relaxed);
}

/* Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf). */
extern const uint64_t sst_m_lat_bounds_us[SST_M_LAT_BUCKETS];

typedef struct sst_wmetrics_s {
    /* requests by route, decision, region and status class (index status/100, 0 = none) */
    sst_counter_t requests[SST_M_ROUTES][SST_M_DECISIONS][SST_M_REGIONS][6];
    sst_counter_t responses_by_code[600];
    sst_counter_t latency[SST_M_ROUTES][SST_M_DECISIONS][SST_M_LAT_BUCKETS + 1];
    sst_counter_t latency_sum_us[SST_M_ROUTES][SST_M_DECISIONS];
    sst_counter_t bytes_in[SST_M_ROUTES];
    sst_counter_t bytes_out[SST_M_ROUTES];
    sst_counter_t redirects[SST_M_REGIONS];
    sst_counter_t inflight_failovers[SST_M_REGIONS]; /* in-flight 307 by the region left */
    sst_counter_t retries;
    sst_counter_t conn_accepted;
    sst_counter_t conn_active; /* gauge kept as accepted - closed by this worker */
    sst_counter_t conn_closed;
    sst_counter_t conn_rejected; /* over limits.connections: 503 and close */
    sst_counter_t conn_evicted;  /* idle keep-alive closed to make room */
    sst_counter_t client_aborts; /* client went away before the response completed */
    sst_counter_t timeouts[4];   /* head, body, send, idle */
    sst_counter_t up_requests[SST_M_BACKENDS];
    sst_counter_t up_connects[SST_M_BACKENDS];
    sst_counter_t up_reuses[SST_M_BACKENDS];
    sst_counter_t up_failures[SST_M_BACKENDS][SST_M_UP_FAILS];
    sst_counter_t up_active[SST_M_BACKENDS]; /* gauge: open upstream connections */
    sst_counter_t up_idle[SST_M_BACKENDS];   /* gauge: of which idle in the pool */
    /* PROXY protocol headers on listeners (issue 16): accepted by version (index 0: v1) and
     * command (sst_pp_command_t), refused by reason (index SST_PP_OK unused) */
    sst_counter_t pp_accepted[2][3];
    sst_counter_t pp_rejected[SST_M_PP_REASONS];
    sst_m_tls_t tls;
    /* issue 15: attempts of requests that may not be repeated that got no response byte within
     * try_timeout and kept waiting (each one a PASSIVE_TIMEOUT signal); the abandoned ones
     * are up_failures[..][SST_M_UP_TRY_TIMEOUT] */
    sst_counter_t up_try_waits[SST_M_BACKENDS];
} sst_wmetrics_t;

enum { SST_M_TIMEOUT_HEAD = 0, SST_M_TIMEOUT_BODY, SST_M_TIMEOUT_SEND, SST_M_TIMEOUT_IDLE };

/* Index of the latency bucket for a duration in microseconds. */
unsigned sst_m_lat_bucket(uint64_t us);

/* The label of a PROXY refusal reason (SST_PP_ERR_* or SST_M_PP_*). */
const char *sst_m_pp_reason_name(unsigned reason);

#endif
