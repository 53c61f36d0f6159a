/* Health bookkeeping: operational state from active probes and passive signals (rise/fall),
 * administrative state from operators (drain, force, with TTL), and the region state derived from
 * both. Pure: no libuv, no clock, no rand(); the caller passes now_ms and the RNG state, and
 * probe.c owns the sockets and timers that feed it. Published to the request path as an
 * immutable, reference-counted sst_hsnap_t. */
#ifndef SST_HEALTH_H
#define SST_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"

typedef enum sst_state_e {
    SST_DOWN = 0,
    SST_UP = 1,
} sst_state_t;

typedef enum sst_force_e {
    SST_FORCE_NONE = 0,
    SST_FORCE_UP,
    SST_FORCE_DOWN,
} sst_force_t;

/* Why a state changed or a check failed, in the spirit of HAProxy's L4CON / L7STS codes. */
#define SST_REASON_MAP(XX)                                                                         \
    XX(NONE, "none")                                                                               \
    XX(INIT, "initial state")                                                                      \
    XX(L4OK, "connect ok")                                                                         \
    XX(L4CON, "connect refused")                                                                   \
    XX(L4ERR, "connect error")                                                                     \
    XX(L4TOUT, "connect timeout")                                                                  \
    XX(L6TLS, "TLS handshake failed")                                                              \
    XX(L6TOUT, "TLS handshake timeout")                                                            \
    XX(L7TOUT, "probe timeout")                                                                    \
    XX(L7RSP, "invalid response")                                                                  \
    XX(L7STS, "unexpected status")                                                                 \
    XX(L7BODY, "body mismatch")                                                                    \
    XX(L7SLOW, "probe too slow")                                                                   \
    XX(L7OK, "probe ok")                                                                           \
    XX(PASSIVE_REFUSED, "connect refused by passive check")                                        \
    XX(PASSIVE_CTOUT, "connect timeout by passive check")                                          \
    XX(PASSIVE_RESET, "reset before response by passive check")                                    \
    XX(PASSIVE_5XX, "5xx response by passive check")                                               \
    XX(PASSIVE_TIMEOUT, "timeout by passive check")                                                \
    XX(PASSIVE_ABORTED, "response cut short by passive check")                                     \
    XX(OPERATOR, "operator")                                                                       \
    XX(TTL, "operator action expired")                                                             \
    XX(MIN_HEALTHY, "healthy backends vs min_healthy")                                             \
    XX(FAILBACK, "failback delay elapsed")                                                         \
    XX(RELOAD, "config reload")

typedef enum sst_reason_e {
#define SST_REASON_ENUM(name, text) SST_REASON_##name,
    SST_REASON_MAP(SST_REASON_ENUM)
#undef SST_REASON_ENUM
        SST_REASON__COUNT
} sst_reason_t;

/* Short code ("L7STS") and default text ("unexpected status") of a reason. */
const char *sst_reason_code(sst_reason_t r);
const char *sst_reason_text(sst_reason_t r);

/* Result of one active probe, filled by probe.c. */
typedef struct sst_probe_result_s {
    bool ok;
    sst_reason_t reason; /* L7OK on success; L4CON, L4TOUT, L6TLS, L6TOUT, L7TOUT, L7RSP, L7STS,
                            L7BODY, L7SLOW, ... */
    uint16_t status;     /* HTTP status when one was read, else 0 */
    uint64_t duration_ms;
    char detail[64]; /* optional detail for the event text ("connection reset",
                        "HPE_INVALID_CONSTANT"); empty when none */
} sst_probe_result_t;

/* Signals from proxied traffic. */
typedef enum sst_passive_e {
    SST_PASSIVE_OK = 0,  /* a response head arrived (and was not a counted 5xx) */
    SST_PASSIVE_REFUSED, /* connect refused */
    SST_PASSIVE_CONNECT_TIMEOUT,
    SST_PASSIVE_RESET,   /* reset or closed before a response head */
    SST_PASSIVE_5XX,     /* a 5xx response head; counted only with health.passive_5xx */
    SST_PASSIVE_TIMEOUT, /* no answer in time: a per-try timeout after the request was written,
                            a response timeout, a backend that stopped reading the request or
                            stalled mid-response (issue 15) */
    SST_PASSIVE_ABORTED, /* the backend reset or closed the connection mid-response (issue 15) */
    SST_PASSIVE__COUNT
} sst_passive_t;

/* Label of a signal for metrics ("ok", "refused", "connect_timeout", "reset", "5xx", "timeout",
 * "aborted"); "unknown" outside the enum. */
const char *sst_passive_name(sst_passive_t sig);

typedef enum sst_admin_op_e {
    SST_ADMIN_DRAIN = 0, /* regions only */
    SST_ADMIN_UNDRAIN,   /* regions only */
    SST_ADMIN_FORCE_UP,
    SST_ADMIN_FORCE_DOWN,
    SST_ADMIN_CLEAR, /* removes a force (not a drain) */
} sst_admin_op_t;

typedef enum sst_event_kind_e {
    SST_EVENT_BACKEND = 0,
    SST_EVENT_REGION,
} sst_event_kind_t;

/* One change of effective state (or of drain / force). Passed to the event callback, which
 * logs and counts it; the pointer is valid only during the callback. */
typedef struct sst_health_event_s {
    uint64_t at_ms;
    sst_event_kind_t kind;
    size_t index;         /* backend or region index in the config */
    const char *name;     /* region name or backend address text */
    sst_state_t from, to; /* effective states; equal for drain/force-only changes */
    sst_reason_t reason;
    char text[160];      /* e.g. "status 503", "probe timeout after 500ms",
                            "operator force-down: drill (ttl 10m)" */
    uint32_t successes;  /* consecutive successes behind the change */
    uint32_t failures;   /* consecutive failures behind the change */
    uint32_t n_up;       /* regions: backends UP after the change */
    uint32_t n_backends; /* regions: backends in the region */
} sst_health_event_t;

typedef void (*sst_health_event_cb)(const sst_health_event_t *ev, void *opaque);

/* --- immutable snapshot for the request path --------------------------------------------- */

typedef struct sst_hsnap_backend_s {
    uint8_t state;                /* sst_state_t, effective: force applied over operational */
    uint8_t op;                   /* sst_state_t from checks */
    uint8_t force;                /* sst_force_t */
    uint8_t reason;               /* sst_reason_t of the last change */
    uint64_t since_ms;            /* effective state since */
    uint64_t slow_start_begin_ms; /* both 0 when at full weight */
    uint64_t slow_start_end_ms;
} sst_hsnap_backend_t;

typedef struct sst_hsnap_region_s {
    uint8_t state; /* sst_state_t, effective: force, else min_healthy over backends */
    uint8_t force; /* sst_force_t */
    uint8_t reason;
    bool drained;
    uint64_t since_ms;
    uint64_t hold_until_ms; /* failback hysteresis: not routable before this; 0 = none */
    uint32_t n_up;          /* backends whose effective state is UP */
} sst_hsnap_region_t;

typedef struct sst_hsnap_s {
    atomic_uint_fast32_t refcount;
    uint64_t generation;     /* increases with every published snapshot */
    uint64_t config_version; /* the sst_config_t.version the indices refer to */
    size_t n_regions;
    size_t n_backends;
    sst_hsnap_region_t regions[SST_MAX_REGIONS];
    sst_hsnap_backend_t backends[SST_MAX_BACKENDS];
} sst_hsnap_t;

sst_hsnap_t *sst_hsnap_ref(sst_hsnap_t *s);
/* Thread-safe; frees with the last reference. NULL is ignored. */
void sst_hsnap_unref(sst_hsnap_t *s);

/* A region receives traffic while UP, not drained and past its failback hold. */
static inline bool sst_hsnap_region_usable(const sst_hsnap_t *s, size_t r, uint64_t now_ms)
{
    const sst_hsnap_region_t *reg = &s->regions[r];
    return reg->state == SST_UP && !reg->drained && now_ms >= reg->hold_until_ms;
}

/* Backends that must be UP for region `rc` to be UP: min_healthy, or that percentage of its
 * backends rounded up. */
uint32_t sst_health_region_need(const sst_region_cfg_t *rc);

/* Effective weight of backend b at now_ms, 0 when DOWN: cfg weight * 16, ramped linearly from
 * 10% during slow start. */
uint32_t sst_hsnap_backend_weight(const sst_hsnap_t *s, const sst_config_t *cfg, size_t b,
                                  uint64_t now_ms);

/* --- the state machine -------------------------------------------------------------------- */

typedef struct sst_health_s sst_health_t;

/* Creates the state for `cfg` (not owned, must outlive the object). When `prev` is given (a
 * reload), operational state, counters and operator actions carry over for backends whose
 * region name and address are unchanged and for regions whose name is unchanged; everything
 * else starts from its initial state. Initial states emit no event; a carried region whose
 * state the new config changes emits one RELOAD event. `prev` (and its config) is only read.
 * Returns 0 and sets *out, SST_EINVAL (NULL or inconsistent cfg) or SST_ENOMEM. */
int sst_health_create(const sst_config_t *cfg, const sst_health_t *prev, uint64_t now_ms,
                      sst_health_event_cb cb, void *opaque, sst_health_t **out);
void sst_health_destroy(sst_health_t *h);

/* Turns a successful probe that took longer than hc->slow_ms (when set) into a failure with
 * reason L7SLOW and the detail "probe took 2013ms > slow 500ms" (issue 15). Anything else is
 * left as it is. Returns true when it changed *res. For the prober to call before it reports
 * a result, so that metrics count L7SLOW; sst_health_probe_result applies it too, so the state
 * is right either way. */
bool sst_health_classify_slow(sst_probe_result_t *res, const sst_health_cfg_t *hc);

/* Feeds one probe result for backend b, judged by sst_health_classify_slow with the backend's
 * settings first. Emits events for changes. A backend still in its initial DOWN state goes UP
 * on its first success; otherwise `rise` / `fall` apply. Ignored for a backend with
 * health.enabled false. Returns true when the published state changed (publish a new
 * snapshot). */
bool sst_health_probe_result(sst_health_t *h, size_t b, const sst_probe_result_t *res,
                             uint64_t now_ms);

/* Feeds one passive signal. A DOWN from passive checks needs `rise` active successes to come
 * back. Honors max_ejection_pct (refusals counted in the backend info). SST_PASSIVE_5XX
 * without health.passive_5xx counts as OK; REFUSED, CONNECT_TIMEOUT, RESET, TIMEOUT and
 * ABORTED count toward passive_fall, REFUSED alone toward passive_fall_refused. Ignored when
 * health.enabled is false, as nothing could bring the backend back, and for a value outside
 * the enum. Returns true when the published state changed. */
bool sst_health_passive(sst_health_t *h, size_t b, sst_passive_t sig, uint64_t now_ms);

/* Operator actions. `reason` is copied; ttl_ms 0 means no expiry. Returns 0 (and *changed:
 * the published state changed or an event was emitted), or SST_EINVAL for an op that does not
 * apply (drain on a backend) or an index out of range. On a region, FORCE_UP also ends a
 * failback hold, CLEAR of a force-down that brings the region back starts one, and UNDRAIN
 * never does. */
int sst_health_admin_region(sst_health_t *h, size_t r, sst_admin_op_t op, const char *reason,
                            uint64_t ttl_ms, uint64_t now_ms, bool *changed);
int sst_health_admin_backend(sst_health_t *h, size_t b, sst_admin_op_t op, const char *reason,
                             uint64_t ttl_ms, uint64_t now_ms, bool *changed);

/* Expires operator TTLs and ends failback holds due at now_ms (emitting events). Returns true
 * when the published state changed. *next_ms is set to the next time tick must run, or
 * UINT64_MAX when nothing is pending. */
bool sst_health_tick(sst_health_t *h, uint64_t now_ms, uint64_t *next_ms);

/* The window over which the first probes of backends whose state is a guess are spread. */
#define SST_HEALTH_FIRST_WINDOW_MS 1000

/* Delay before the next probe of backend b: fast_interval while the backend is changing state
 * (a run of results against its current state), else interval; then jitter drawn uniformly in
 * [-jitter, +jitter], never below 1 ms. `first` asks for the first probe of a new schedule (a
 * start, or a reload that adds the backend): drawn uniformly over [0, min(interval,
 * SST_HEALTH_FIRST_WINDOW_MS)) while the backend's state is a guess (no probe result yet: its
 * `initial` state), so that failover is not blind for a whole interval (issue 11); over
 * [0, interval) once it has a result, so that probes are not bunched. *rng is an xorshift64
 * state the caller owns (never 0). */
uint64_t sst_health_probe_delay(const sst_health_t *h, size_t b, bool first, uint64_t *rng);

/* Builds a new snapshot (refcount 1, caller owns) of the current state. Returns 0 or
 * SST_ENOMEM. */
int sst_health_snapshot(const sst_health_t *h, uint64_t generation, sst_hsnap_t **out);

/* Read access for the admin API (status JSON). */
typedef struct sst_health_backend_info_s {
    sst_state_t state, op;
    sst_force_t force;
    uint64_t since_ms;
    sst_reason_t reason;
    char reason_text[160];        /* last change's text */
    uint32_t successes, failures; /* current consecutive probe counters */
    uint32_t passive_failures;
    bool passive_down;                  /* DOWN because of passive checks */
    uint64_t passive_ejections;         /* passive ejections carried out */
    uint64_t passive_ejections_refused; /* ejections refused by max_ejection_pct */
    uint64_t probes_ok, probes_failed;
    uint64_t last_probe_ms; /* when the last probe finished, 0 if none */
    uint64_t last_probe_duration_ms;
    uint16_t last_status;
    sst_reason_t last_probe_reason;
    uint64_t force_expires_ms; /* 0 when no TTL */
    char force_reason[128];
} sst_health_backend_info_t;

typedef struct sst_health_region_info_s {
    sst_state_t state;
    sst_force_t force;
    bool drained;
    uint64_t since_ms;
    uint64_t hold_until_ms;
    uint32_t n_up;
    sst_reason_t reason;
    char reason_text[160];
    uint64_t force_expires_ms, drain_expires_ms;
    char force_reason[128], drain_reason[128];
} sst_health_region_info_t;

void sst_health_backend_info(const sst_health_t *h, size_t b, sst_health_backend_info_t *out);
void sst_health_region_info(const sst_health_t *h, size_t r, sst_health_region_info_t *out);

/* xorshift64 step, shared by probe scheduling and tests. */
uint64_t sst_rand_next(uint64_t *state);

#endif
