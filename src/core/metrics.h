/* Counters. Each worker owns one sst_wmetrics_t and is its only writer (relaxed atomic stores,
 * plain moves on x86, no lock-prefixed instructions on the request path); the control thread
 * sums them for GET /metrics. Label values are small integer ids from a name registry kept by
 * the control thread, so a reload that reorders routes keeps every series continuous. */
#ifndef SST_CORE_METRICS_H
#define SST_CORE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

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

typedef atomic_uint_fast64_t sst_counter_t;

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
    /* issue 15: attempts of requests that may not be repeated that got no response byte within
     * try_timeout and kept waiting (each one a PASSIVE_TIMEOUT signal); the abandoned ones
     * are up_failures[..][SST_M_UP_TRY_TIMEOUT] */
    sst_counter_t up_try_waits[SST_M_BACKENDS];
} sst_wmetrics_t;

enum { SST_M_TIMEOUT_HEAD = 0, SST_M_TIMEOUT_BODY, SST_M_TIMEOUT_SEND, SST_M_TIMEOUT_IDLE };

/* Index of the latency bucket for a duration in microseconds. */
unsigned sst_m_lat_bucket(uint64_t us);

#endif
