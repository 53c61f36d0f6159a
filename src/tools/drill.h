/* The failover drill's steady traffic (drill_traffic.c), shared with its orchestration
 * (drill.c): a libuv client loop on its own thread that sends requests at a fixed rate and
 * records how each one ended. Not API. */
#ifndef SST_DRILL_H
#define SST_DRILL_H

#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"

typedef enum sst_drill_err_e {
    SST_DRILL_OK = 0,
    SST_DRILL_CONNECT,  /* refused, or the connect failed */
    SST_DRILL_TIMEOUT,  /* no complete response within the request timeout */
    SST_DRILL_RESET,    /* closed or reset before a complete response */
    SST_DRILL_PROTOCOL, /* the response could not be parsed */
    SST_DRILL_ERR__COUNT
} sst_drill_err_t;

/* How one request ended. Times are microseconds since the traffic's t0. */
typedef struct sst_drill_rec_s {
    uint64_t start_us, end_us;
    uint16_t status; /* 0 when error != OK */
    uint8_t error;   /* sst_drill_err_t */
    char region[48]; /* X-Sidestep-Region of the response, "" when absent */
} sst_drill_rec_t;

typedef struct sst_traffic_opts_s {
    const sst_addr_t *addr; /* where to connect; copied */
    const char *host;       /* Host header value */
    const char *method;
    const char *target; /* origin-form */
    uint64_t body_size; /* bytes of request body (Content-Length), 0 for none */
    double rate;        /* requests per second, > 0 */
    uint64_t timeout_ms;
    uint64_t t0_ns; /* uv_hrtime() origin of the records' times */
} sst_traffic_opts_t;

typedef struct sst_traffic_s sst_traffic_t;

/* Starts the traffic thread (each request on a new connection, redirects never followed).
 * Returns 0, or a negative error with err filled; nothing runs on failure. */
int sst__traffic_start(const sst_traffic_opts_t *o, sst_traffic_t **out, char *err,
                       size_t err_size);
/* Copies into out (room for max) the most recent records, in completion order from the
 * newest back, whose request started at or after since_us; returns how many. Looks only at
 * the tail, so polling it stays cheap however long the drill runs. Thread-safe. */
size_t sst__traffic_recent(sst_traffic_t *t, uint64_t since_us, sst_drill_rec_t *out, size_t max);
/* Copies the records so far (in completion order) into a malloc'd array (NULL when none).
 * *sent counts requests started, *skipped the sends dropped because too many were in flight.
 * Returns 0 or SST_ENOMEM. Thread-safe. */
int sst__traffic_records(sst_traffic_t *t, sst_drill_rec_t **recs, size_t *n, uint64_t *sent,
                         uint64_t *skipped);
/* Stops sending, lets requests in flight finish (each within its timeout), joins the thread.
 * The records stay readable. Idempotent. */
void sst__traffic_stop(sst_traffic_t *t);
void sst__traffic_free(sst_traffic_t *t);

/* "connect", "timeout", ... */
const char *sst__drill_err_word(sst_drill_err_t e);

#endif
