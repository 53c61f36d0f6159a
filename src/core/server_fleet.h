/* Fleet mode on the server's side (server_fleet.c, docs/fleet.md "The server's side"): the fleet
 * runtime's lifetime, the local and fleet override layers merged into health, routing by the
 * health quorum, the startup hold, this instance's own view. For server.c and the admin API,
 * on the control thread only. Outside fleet mode (s->fleet NULL) every call is a no-op. */
#ifndef SST_CORE_SERVER_FLEET_H
#define SST_CORE_SERVER_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/metrics.h"
#include "fleet/fleet.h"
#include "fleet/fleet_state.h"
#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/server.h"

/* What health was last told about one override slot; a slot is applied again only when this
 * changes, so re-merging never restarts health's failback holds or repeats its events. */
typedef struct sst_sfleet_applied_s {
    uint8_t source; /* sst_fleet_source_t */
    uint8_t state;  /* sst_fleet_state_t */
    uint64_t created_at, expires_at;
} sst_sfleet_applied_t;

typedef enum sst_sfleet_scope_e {
    SST_SFLEET_FLEET = 0,
    SST_SFLEET_LOCAL,
    SST_SFLEET_SCOPES,
} sst_sfleet_scope_t;

/* Admin action outcomes, by HTTP status: 200, 400, 404, 409, 503. */
typedef enum sst_sfleet_result_e {
    SST_SFLEET_OK = 0,
    SST_SFLEET_INVALID,
    SST_SFLEET_NOT_FOUND,
    SST_SFLEET_CONFLICT,
    SST_SFLEET_UNAVAILABLE,
    SST_SFLEET_RESULTS,
} sst_sfleet_result_t;

typedef struct sst_sfleet_s {
    sst_server_t *s;
    sst_fleet_t *f;
    uv_timer_t merge_timer;      /* the next expires_at of a local or fleet override */
    sst_fleet_overrides_t local; /* "scope": "local" actions, indexed on s->cfg */
    sst_fleet_overrides_t fleet; /* the runtime's table, indexed on s->cfg */
    int64_t fleet_revision;
    bool have_fleet; /* the overrides hook ran at least once */
    sst_sfleet_applied_t region_force[SST_MAX_REGIONS];
    sst_sfleet_applied_t region_drain[SST_MAX_REGIONS];
    sst_sfleet_applied_t backend_force[SST_MAX_BACKENDS];
    /* the quorum decision, indexed on q_cfg (the config in force when it was made) */
    sst_fleet_quorum_out_t q;
    bool q_valid;
    sst_config_t *q_cfg;
    sst_fleet_view_t view; /* the own view last handed to the runtime */
    bool view_sent;
    sst_config_t *start_cfg; /* the fleet identity in force until a restart */
    char restart_why[300];   /* a reload changed the fleet identity: "" when not */
    char hash[17];           /* of the config file in force (FNV-1a 64, hex) */
    uint64_t actions[SST_SFLEET_SCOPES][SST_SFLEET_RESULTS];
    uint64_t disagreements[SST_M_REGIONS]; /* by region metric id: times it started */
    unsigned closing;                      /* handles still to close once stopped */
} sst_sfleet_t;

/* Starts fleet mode (s->cfg->fleet.enabled) once the admin listener is bound: the runtime and
 * its hooks. Returns 0 (s->fleet set) or a negative error with err filled. */
int sst__sfleet_start(sst_server_t *s, char *err, size_t err_size);
/* Stops the runtime (its lease revoked) and detaches it: s->fleet is NULL after this, and what
 * is left frees itself on the loop. Idempotent. */
void sst__sfleet_stop(sst_server_t *s);
/* After a reload committed `s->cfg` (old_cfg still valid): the runtime gets the new config and
 * its hash, the local layer and what health was told follow the new indices by name, and the
 * layers are merged again. A changed fleet identity is logged and kept for /status. */
void sst__sfleet_reloaded(sst_server_t *s, const sst_config_t *old_cfg);

/* Routing by the quorum, for a snapshot of `cfg` about to be published. */
void sst__sfleet_route(const sst_server_t *s, const sst_config_t *cfg, sst_hsnap_t *snap);
/* After a publish: hands the runtime this instance's own view when it changed. */
void sst__sfleet_published(sst_server_t *s);

/* An action with "scope": "local" (this instance only) on region or backend `name`: kept in
 * the local layer and merged (local wins over the fleet's). `client` is the admin peer.
 * Returns 0, SST_ENOENT (unknown name) or SST_EINVAL (the action does not apply), err filled. */
int sst__sfleet_local_op(sst_server_t *s, bool region, const char *name, sst_admin_op_t op,
                         const char *reason, uint64_t ttl_ms, const char *client, char *err,
                         size_t err_size);
/* Counts an admin action's outcome (its HTTP status). */
void sst__sfleet_count(sst_server_t *s, sst_sfleet_scope_t scope, unsigned http_status);
/* The override in force for every slot now (local over fleet, expired ones out). */
void sst__sfleet_merged(const sst_server_t *s, sst_fleet_merged_t *out);

/* ---- pure parts (unit-tested) -------------------------------------------------------------- */

/* Routing by the quorum: for each region whose bit is in `decided`, without an operator force
 * (a force always wins), the snapshot's state becomes DOWN when its bit is in `down`, else UP.
 * A region held UP whose backends are all DOWN here gets every backend not forced down marked
 * UP, so it is served at configured weights (as fail_open does); in-flight failover still
 * covers a refused connect. */
void sst__fleet_route_apply(const sst_config_t *cfg, sst_hsnap_t *snap, uint32_t down,
                            uint32_t decided);
/* This instance's own view: per region, DOWN when fewer backends than min_healthy pass their
 * checks (operational state: operator forces and drains left out, since those apply on top of
 * the quorum everywhere), with the reason of the first failing backend. */
void sst__fleet_own_view(const sst_config_t *cfg, const sst_health_t *h, sst_fleet_view_t *out);
/* Maps a region mask of config `from` onto config `to` by region name; *known gets the bits of
 * `to` that `from` has. */
uint32_t sst__fleet_remap_mask(const sst_config_t *from, uint32_t mask, const sst_config_t *to,
                               uint32_t *known);

#endif
