/* The failover drill's steady traffic (drill_traffic.c), shared with its orchestration
 * (drill.c, and drill_fleet.c for a fleet drill): a libuv client loop on its own thread that
 * sends requests at a fixed rate and records how each one ended; and the drill's steps and
 * measures the fleet drill reuses. Not API. */
#ifndef SST_DRILL_H
#define SST_DRILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"

struct json_object;

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

/* ---- the drill's steps and measures (drill.c), shared with the fleet drill (drill_fleet.c) - */

typedef struct sst_drill_opts_s {
    const char *url;
    const char *admin;
    const char *token;
    const char *region;
    const char *expect;
    const char *method;
    const char *json_path;
    double rate;
    uint64_t body_size;
    uint64_t timeout_ms;
    uint64_t hold_ms;
    uint64_t failover_timeout_ms;
    uint64_t failback_timeout_ms;
    uint64_t ttl_ms; /* 0: computed */
    bool fleet;      /* force the region down fleet-wide, measure on every live instance */
} sst_drill_opts_t;

/* Everything the drill learns and measures. Times are µs since t0 unless named _ms. */
typedef struct sst_drill_s {
    sst_drill_opts_t o;
    sst_addr_t admin_addr;
    sst_addr_t proxy_addr;
    char proxy_host[300]; /* Host header */
    char target[2048];    /* origin-form */
    char route[128];
    char region[128];
    char expect[128];
    uint64_t failback_delay_ms;
    uint64_t t0_ns;
    uint64_t start_epoch_ms;
    uint64_t t_force_us, t_clear_us, t_end_us;
    uint64_t t_forced_us; /* the force-down's answer came (fleet: etcd acknowledged it) */
    bool forced;          /* a force-down of ours may be in place */
    bool cleared;         /* ... and was cleared */
    uint64_t stable;      /* consecutive matching answers that count as "switched" */
    bool in_fleet;        /* the instance at --admin runs in fleet mode */
    sst_traffic_t *traffic;
    char problems[8][256];
    size_t n_problems;
    bool interrupted;
} sst_drill_t;

/* How an answer counts for the drill. */
typedef enum sst_drill_kind_e {
    SST_DRILL_KIND_PROXIED = 0, /* 2xx without X-Sidestep-Region: served through the proxy */
    SST_DRILL_KIND_EXPECTED,    /* a redirect to the expected region */
    SST_DRILL_KIND_OTHER,       /* any other status */
    SST_DRILL_KIND_ERROR,       /* no response */
} sst_drill_kind_t;

/* What one traffic stream saw, by phase (before, during, after the force). */
typedef struct sst_drill_report_s {
    size_t n;
    uint64_t sent, skipped, answered;
    uint64_t errors[SST_DRILL_ERR__COUNT];
    uint64_t unexpected;
    uint64_t kinds[3][4]; /* phase (before, during, after) x kind */
    bool have_failover, have_failback;
    uint64_t failover_us, failback_us;
    uint64_t run_over_us, run_back_us; /* when the unbroken runs began */
    /* status (and redirect region) histogram */
    struct {
        uint16_t status;
        char region[48];
        uint64_t count;
    } hist[64];
    size_t n_hist;
} sst_drill_report_t;

void sst__drill_problem(sst_drill_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sst__drill_say(const sst_drill_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
uint64_t sst__drill_now_us(const sst_drill_t *d);
/* The signal that interrupted the drill, 0 when none. */
int sst__drill_signalled(void);
void sst__drill_sleep_ms(uint64_t ms);
/* Sleeps ms unless a signal comes (false, problem recorded). */
bool sst__drill_pause(sst_drill_t *d, uint64_t ms);
/* One admin call to `addr`: the parsed JSON answer of a 2xx, or NULL with err filled. */
struct json_object *sst__drill_admin_at(sst_drill_t *d, const sst_addr_t *addr, const char *method,
                                        const char *target, const char *body, char *err,
                                        size_t err_size);
/* The region called `name` in a /status document, or NULL. */
struct json_object *sst__drill_find_region(struct json_object *status, const char *name);
/* POSTs /regions/<d->region>/<op> with reason "drill" (and the ttl when not 0; scope fleet in
 * a fleet drill). Returns 0, or an error with err filled. */
int sst__drill_region_op(sst_drill_t *d, const char *op, uint64_t ttl_ms, char *err, size_t size);
/* Clears the drill's force (a few tries); records a problem when it cannot. */
void sst__drill_restore(sst_drill_t *d);
sst_drill_kind_t sst__drill_kind(const sst_drill_t *d, const sst_drill_rec_t *r);
/* True when the last d->stable answers of `t` to requests started at or after `since` are all
 * of `kind`; `last` describes the newest. */
bool sst__drill_settled(sst_drill_t *d, sst_traffic_t *t, uint64_t since, sst_drill_kind_t kind,
                        char *last, size_t last_size);
/* The report of traffic `t`: statuses, errors, phases, and when the failover and failback
 * settled (relative to d->t_force_us and d->t_clear_us). */
void sst__drill_analyse(sst_drill_t *d, sst_traffic_t *t, sst_drill_report_t *rep);
/* Writes the JSON report to d->o.json_path ("-": stdout). Returns 0 or 1. */
int sst__drill_write_json(const sst_drill_t *d, struct json_object *j);

/* drill_fleet.c: the fleet drill, after the route and regions were found on the instance at
 * --admin. Returns the exit status. */
int sst__drill_fleet(sst_drill_t *d);

#endif
