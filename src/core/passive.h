/* Passive health signals, worker -> control thread: what a worker learns from real traffic
 * (a refused connect, a reset, a timeout, a response cut short, a 5xx, a good answer after a
 * failure) crosses in a lock-free
 * single-producer ring, one per worker, and wakes the control thread. This module decides
 * which outcomes are signals; health.c (through server.c) decides what they mean. */
#ifndef SST_CORE_PASSIVE_H
#define SST_CORE_PASSIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/metrics.h"
#include "sidestep/config.h"
#include "sidestep/health.h"

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
    /* producer side only: the last report about each backend was a failure */
    uint8_t bad[SST_MAX_BACKENDS];
    uv_async_t *notify; /* the control thread's wakeup (uv_async_send is thread-safe) */
} sst_passive_ring_t;

/* Zeroes r; `notify` is sent after every signal pushed. */
void sst__passive_init(sst_passive_ring_t *r, uv_async_t *notify);

/* The signal an attempt failure of `kind` is: REFUSED, CONNECT_TIMEOUT, RESET (also a bad
 * response), TIMEOUT (a try or response timeout, a stalled request or response body), ABORTED
 * (cut mid-response), or OK for what says nothing about the backend's health (SST_M_UP_FAILS:
 * the client's doing, no backend). */
sst_passive_t sst__passive_of_failure(sst_m_upfail_t kind);
/* Whether a response with `status` is reported, and as what. At its head (`complete` false):
 * a counted 5xx (passive_5xx on), nothing else. At its end (`complete`): the OK that follows a
 * failure report (`was_bad`), unless it was a counted 5xx. The OK waits for the end because it
 * resets the run of failures: a backend that sends every head and cuts every body would
 * otherwise alternate OK and ABORTED and never reach passive_fall (issue 15). The common path
 * sends nothing. Returns true and sets *sig when a signal is due. */
bool sst__passive_of_response(unsigned status, bool passive_5xx, bool was_bad, bool complete,
                              sst_passive_t *sig);

/* Producer (the worker's thread). An attempt on `backend` (an index of the config with
 * `config_version`) failed with `kind`; a signal is pushed when the kind is one. */
void sst__passive_failure(sst_passive_ring_t *r, const sst_config_t *cfg, size_t backend,
                          sst_m_upfail_t kind);
/* `backend` answered with a response head of `status` (`complete` false), or that response
 * ended (`complete` true); pushes what sst__passive_of_response says. */
void sst__passive_response(sst_passive_ring_t *r, const sst_config_t *cfg, size_t backend,
                           unsigned status, bool complete);
/* A new config is in force: backend indices changed, earlier failure reports are forgotten. */
void sst__passive_forget(sst_passive_ring_t *r);

/* Consumer (the control thread): takes the oldest message. Returns false when empty. */
bool sst__passive_pop(sst_passive_ring_t *r, sst_passive_msg_t *out);

#endif
