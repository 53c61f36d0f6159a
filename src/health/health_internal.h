/* Shared by src/health/health*.c only: the bookkeeping's state behind the opaque sst_health_t
 * and the helpers both halves use. Nothing outside the health bookkeeping includes this. */
#ifndef SST_HEALTH_INTERNAL_H
#define SST_HEALTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"
#include "sidestep/health.h"

typedef struct health_backend_s {
    sst_state_t op;      /* operational: from probes and passive signals */
    sst_state_t eff;     /* effective: force over op; what was last announced */
    bool boot_down;      /* started DOWN and never changed: the first success brings it UP */
    bool awaiting_probe; /* no probe result yet: probe at fast_interval */
    uint32_t successes;  /* consecutive active successes */
    uint32_t failures;   /* consecutive active failures */
    uint32_t passive_failures;
    uint32_t passive_refused;
    bool passive_down;
    uint64_t passive_ejections;
    uint64_t passive_ejections_refused;
    uint64_t since_ms;
    sst_reason_t reason;
    char reason_text[160];
    uint64_t probes_ok, probes_failed;
    uint64_t last_probe_ms, last_probe_duration_ms;
    uint16_t last_status;
    sst_reason_t last_probe_reason;
    sst_force_t force;
    uint64_t force_expires_ms;
    char force_reason[128];
    uint64_t slow_start_begin_ms, slow_start_end_ms;
} health_backend_t;

typedef struct health_region_s {
    sst_state_t eff;
    bool ever_up; /* has been effectively UP: the next DOWN -> UP gets a failback hold */
    uint32_t n_up;
    uint64_t since_ms;
    uint64_t hold_until_ms;
    sst_reason_t reason;
    char reason_text[160];
    sst_force_t force;
    uint64_t force_expires_ms;
    char force_reason[128];
    bool drained;
    uint64_t drain_expires_ms;
    char drain_reason[128];
} health_region_t;

struct sst_health_s {
    const sst_config_t *cfg;
    sst_health_event_cb cb;
    void *opaque;
    bool dirty; /* something a snapshot shows changed during the current call */
    health_region_t regions[SST_MAX_REGIONS];
    health_backend_t backends[SST_MAX_BACKENDS];
};

/* Copies src (NULL: empty) into a fixed field, cutting it when it does not fit. */
void sst__health_text_copy(char *dst, size_t size, const char *src);
/* True when `b` is a backend index of h's config (h may be NULL). */
bool sst__health_backend_valid(const sst_health_t *h, size_t b);

#endif
