/* The pure parts of fleet mode (issue 13): the etcd key layout, the JSON values stored there, the
 * health quorum rule, the merge of local and fleet overrides, and the safety rule. Values in,
 * values out: no libuv, no etcd, no clock (callers pass now_ms as wall-clock epoch ms, because
 * expires_at is shared between machines). */
#ifndef SST_FLEET_STATE_H
#define SST_FLEET_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"
#include "sidestep/str.h"

/* Bounds; every string field is checked against them when encoded or decoded. */
#define SST_FLEET_NAME_MAX     63  /* fleet and instance names */
#define SST_FLEET_REGION_MAX   64  /* region names: as the config allows */
#define SST_FLEET_HOSTPORT_MAX 271 /* "host:port" / "[v6]:port", as sst_addr_t.text */
#define SST_FLEET_REASON_MAX   100 /* operator reason, as the admin API allows */
#define SST_FLEET_CLIENT_MAX   63  /* client address text */
#define SST_FLEET_VERSION_MAX  31
#define SST_FLEET_HASH_MAX     64 /* hex digits */
#define SST_FLEET_CODE_MAX     15 /* health reason code, "L7STS" */
#define SST_FLEET_TEXT_MAX     159
#define SST_FLEET_KEY_MAX      512 /* bytes of a whole key */
#define SST_FLEET_VALUE_MAX    (64 * 1024)

/* ---- key layout ---------------------------------------------------------------------------

   Every key lives under /sidestep/<fleet>/ :
     overrides/region/<region>/force       an sst_fleet_override_t, state down or up
     overrides/region/<region>/drain       an sst_fleet_override_t, state drain
     overrides/backend/<host:port>/force   an sst_fleet_override_t, state down or up
     instances/<instance>                  an sst_fleet_instance_t (heartbeat, on its lease)
     views/<instance>                      an sst_fleet_view_t (health view, on its lease)
   Names: fleet and instance names are 1..63 bytes of [A-Za-z0-9_.-] starting with a letter or
   digit (a host name fits); region names are 1..64 bytes of [A-Za-z0-9_.-] (the config's rule);
   backends are the config's address text: host:port with a host name or IPv4 address, or
   [IPv6]:port, port 1..65535 without leading zeros. */

typedef enum sst_fleet_key_kind_e {
    SST_FLEET_KEY_REGION_FORCE = 0,
    SST_FLEET_KEY_REGION_DRAIN,
    SST_FLEET_KEY_BACKEND_FORCE,
    SST_FLEET_KEY_INSTANCE,
    SST_FLEET_KEY_VIEW,
} sst_fleet_key_kind_t;

typedef enum sst_fleet_prefix_e {
    SST_FLEET_PREFIX_ROOT = 0,  /* /sidestep/<fleet>/ */
    SST_FLEET_PREFIX_OVERRIDES, /* .../overrides/: the safety rule's compare range */
    SST_FLEET_PREFIX_INSTANCES, /* .../instances/ */
    SST_FLEET_PREFIX_VIEWS,     /* .../views/ */
} sst_fleet_prefix_t;

bool sst_fleet_valid_name(sst_str_t s);    /* fleet and instance names */
bool sst_fleet_valid_region(sst_str_t s);  /* region names */
bool sst_fleet_valid_backend(sst_str_t s); /* host:port */

/* Writes the key of `kind` for `name` (region, backend or instance, validated by its rule) into
 * buf (NUL-terminated) and sets *len. Returns 0, SST_EINVAL (bad fleet name or name) or
 * SST_E2BIG (buf too small). */
int sst_fleet_key(const char *fleet, sst_fleet_key_kind_t kind, sst_str_t name, char *buf,
                  size_t size, size_t *len);
/* Same for a prefix (ends with '/'). */
int sst_fleet_prefix(const char *fleet, sst_fleet_prefix_t which, char *buf, size_t size,
                     size_t *len);

typedef struct sst_fleet_key_info_s {
    sst_fleet_key_kind_t kind;
    sst_str_t name; /* points into the key */
} sst_fleet_key_info_t;

/* Parses a key read from etcd. Returns 0 and fills *out, or SST_EINVAL when the key is not one
 * of the layout's (outside /sidestep/<fleet>/, unknown path, invalid name). */
int sst_fleet_key_parse(const char *fleet, sst_str_t key, sst_fleet_key_info_t *out);

/* ---- values ------------------------------------------------------------------------------- */

typedef enum sst_fleet_state_e {
    SST_FLEET_DOWN = 0, /* "down": force keys */
    SST_FLEET_UP,       /* "up": force keys */
    SST_FLEET_DRAIN,    /* "drain": drain keys */
} sst_fleet_state_t;

/* {"state":"down"|"up"|"drain","reason":..,"by":{"instance":..,"client":..},
 *  "created_at":ms,"expires_at":ms,"ttl_ms":N}; expires_at and ttl_ms both 0 (or left out) for
 * no expiry, else expires_at = created_at + ttl_ms. */
typedef struct sst_fleet_override_s {
    sst_fleet_state_t state;
    char reason[SST_FLEET_REASON_MAX + 1];    /* non-empty, no control characters */
    char by_instance[SST_FLEET_NAME_MAX + 1]; /* a valid instance name */
    char by_client[SST_FLEET_CLIENT_MAX + 1]; /* may be empty */
    uint64_t created_at, expires_at, ttl_ms;  /* epoch ms */
} sst_fleet_override_t;

/* {"instance":..,"admin":"host:port","version":..,"config_version":N,"config_hash":"hex",
 *  "started_at":ms,"seen_at":ms,"applied_revision":N} */
typedef struct sst_fleet_instance_s {
    char instance[SST_FLEET_NAME_MAX + 1];
    char admin[SST_FLEET_HOSTPORT_MAX + 1];
    char version[SST_FLEET_VERSION_MAX + 1];
    uint64_t config_version;
    char config_hash[SST_FLEET_HASH_MAX + 1]; /* lower-case hex, non-empty */
    uint64_t started_at, seen_at;
    uint64_t applied_revision; /* the overrides revision this instance has applied */
} sst_fleet_instance_t;

typedef struct sst_fleet_region_view_s {
    char name[SST_FLEET_REGION_MAX + 1];
    bool down;                           /* "state": "down" | "up" */
    char reason[SST_FLEET_CODE_MAX + 1]; /* "L7STS"; may be empty */
    char text[SST_FLEET_TEXT_MAX + 1];   /* may be empty */
} sst_fleet_region_view_t;

/* {"at":ms,"regions":{"<name>":{"state":"up"|"down","reason":"CODE","text":".."}}} */
typedef struct sst_fleet_view_s {
    uint64_t at;
    size_t n_regions; /* at most SST_MAX_REGIONS */
    sst_fleet_region_view_t regions[SST_MAX_REGIONS];
} sst_fleet_view_t;

/* Encoders write compact JSON into buf (NUL-terminated) and set *len. They validate like the
 * decoders: SST_EINVAL (err says which field) or SST_E2BIG (buf too small). */
int sst_fleet_override_encode(const sst_fleet_override_t *v, char *buf, size_t size, size_t *len,
                              char *err, size_t err_size);
int sst_fleet_instance_encode(const sst_fleet_instance_t *v, char *buf, size_t size, size_t *len,
                              char *err, size_t err_size);
int sst_fleet_view_encode(const sst_fleet_view_t *v, char *buf, size_t size, size_t *len, char *err,
                          size_t err_size);

/* Strict decoders: one JSON object of at most SST_FLEET_VALUE_MAX bytes; required fields
 * present with the right types, strings within bounds, names valid; unknown fields ignored
 * (newer instances may add some). An override's state must fit its key: `kind` is
 * SST_FLEET_KEY_REGION_FORCE / _BACKEND_FORCE (down, up) or _REGION_DRAIN (drain). A heartbeat
 * must name `instance` (its key's name; empty: not checked). Return 0 and fill *out, or
 * SST_EINVAL with err set to "field: problem"; *out is then unspecified. */
int sst_fleet_override_decode(sst_fleet_key_kind_t kind, const char *json, size_t len,
                              sst_fleet_override_t *out, char *err, size_t err_size);
int sst_fleet_instance_decode(sst_str_t instance, const char *json, size_t len,
                              sst_fleet_instance_t *out, char *err, size_t err_size);
int sst_fleet_view_decode(const char *json, size_t len, sst_fleet_view_t *out, char *err,
                          size_t err_size);

/* Maps a view to this config's region indices: bit r of *down is set when the view reports
 * region r DOWN, bit r of *known when it reports region r at all (regions the config lacks are
 * skipped: another instance may run another config version). */
void sst_fleet_view_masks(const sst_config_t *cfg, const sst_fleet_view_t *v, uint32_t *down,
                          uint32_t *known);

/* ---- the health quorum rule --------------------------------------------------------------- */

typedef enum sst_fleet_quorum_mode_e {
    SST_FLEET_QUORUM_OFF = 0, /* every instance routes by its own view (the default) */
    SST_FLEET_QUORUM_MAJORITY,
    SST_FLEET_QUORUM_COUNT, /* `count` instances must see the region DOWN */
} sst_fleet_quorum_mode_t;

typedef struct sst_fleet_peer_s {
    sst_str_t instance;
    bool live;     /* its instances/<name> heartbeat key exists */
    bool has_view; /* its views/<name> key exists and decoded */
    uint32_t down; /* sst_fleet_view_masks */
    uint32_t known;
} sst_fleet_peer_t;

typedef struct sst_fleet_quorum_in_s {
    sst_fleet_quorum_mode_t mode;
    uint32_t count; /* SST_FLEET_QUORUM_COUNT: >= 1 */
    size_t n_regions;
    sst_str_t self;    /* this instance: a peer entry with this name is skipped */
    uint32_t own_down; /* this instance's own view, bit per region */
    const sst_fleet_peer_t *peers;
    size_t n_peers;
    bool store_lost; /* etcd unreachable for longer than lease_ttl */
} sst_fleet_quorum_in_t;

typedef enum sst_fleet_quorum_basis_e {
    SST_FLEET_BASIS_LOCAL = 0,  /* quorum off: own view */
    SST_FLEET_BASIS_STORE_LOST, /* etcd lost beyond lease_ttl: own view */
    SST_FLEET_BASIS_FLEET,      /* the quorum of live instances */
} sst_fleet_quorum_basis_t;

typedef struct sst_fleet_quorum_out_s {
    sst_fleet_quorum_basis_t basis;
    uint32_t down;                        /* regions DOWN for routing, before operator forces */
    uint32_t disagree;                    /* regions where the own view differs from `down` */
    uint32_t short_of_count;              /* COUNT: regions with fewer than `count` voters */
    uint32_t voters[SST_MAX_REGIONS];     /* instances with a say, this one included */
    uint32_t down_votes[SST_MAX_REGIONS]; /* of which see the region DOWN */
    uint32_t needed[SST_MAX_REGIONS];     /* DOWN votes that make it DOWN */
} sst_fleet_quorum_out_t;

/* Decides, per region, whether it is DOWN for routing.
 *  - OFF: own view. store_lost: own view (the issue: never fail over because etcd is away, and
 *    after lease_ttl without it, act alone). Neither reports a disagreement.
 *  - Voters of region r: this instance, plus every peer that is live, has a view, and knows r.
 *  - MAJORITY: DOWN when more than half of the voters see it DOWN (a tie is UP: one of two
 *    instances alone seeing DOWN does not fail the region over). Alone, own view.
 *  - COUNT: DOWN when `count` voters see it DOWN; with fewer than `count` voters, when all of
 *    them do (unanimity of those left, so a shrunken fleet can still fail over; flagged in
 *    short_of_count).
 * Operator forces are not inputs: they always win and are applied after this, on top of
 * `down` (force-down: DOWN, force-up: UP, whatever the quorum says). Returns 0 or SST_EINVAL
 * (n_regions above SST_MAX_REGIONS, COUNT with count 0, peers NULL with n_peers > 0). */
int sst_fleet_quorum(const sst_fleet_quorum_in_t *in, sst_fleet_quorum_out_t *out);

/* ---- overrides: local and fleet ----------------------------------------------------------- */

/* One override slot, indexed like the config. */
typedef struct sst_fleet_slot_s {
    bool set;
    sst_fleet_override_t ovr;
} sst_fleet_slot_t;

/* The overrides of one scope (the fleet's, read from etcd, or this instance's local ones). */
typedef struct sst_fleet_overrides_s {
    sst_fleet_slot_t region_force[SST_MAX_REGIONS];
    sst_fleet_slot_t region_drain[SST_MAX_REGIONS];
    sst_fleet_slot_t backend_force[SST_MAX_BACKENDS];
} sst_fleet_overrides_t;

/* Applies one fleet key to the table: `value` set (a PUT, decoded with its key's kind) or NULL
 * (a DELETE: lease expiry, clear, undrain). Names are looked up in `cfg`. Returns 0, SST_ENOENT
 * (a region or backend this config lacks: another config version; ignore it) or SST_EINVAL
 * (an instances/ or views/ key, or a value whose state does not fit the key). */
int sst_fleet_overrides_apply(sst_fleet_overrides_t *t, const sst_config_t *cfg,
                              const sst_fleet_key_info_t *key, const sst_fleet_override_t *value);

typedef enum sst_fleet_source_e {
    SST_FLEET_SRC_NONE = 0,
    SST_FLEET_SRC_LOCAL, /* scope "local": this instance only */
    SST_FLEET_SRC_FLEET,
} sst_fleet_source_t;

typedef struct sst_fleet_effective_s {
    sst_fleet_source_t source;
    const sst_fleet_override_t *ovr; /* the one in force (points into the inputs), or NULL */
    bool fleet_shadowed;             /* a fleet override is in force but a local one wins */
} sst_fleet_effective_t;

/* The override in force for one slot at now_ms: expired ones (expires_at != 0 and
 * now_ms >= expires_at) are ignored, enforced here whatever etcd's lease does; then local wins
 * over fleet. Either input may be NULL or unset. */
void sst_fleet_merge(const sst_fleet_slot_t *local, const sst_fleet_slot_t *fleet, uint64_t now_ms,
                     sst_fleet_effective_t *out);

typedef struct sst_fleet_merged_s {
    sst_fleet_effective_t region_force[SST_MAX_REGIONS];
    sst_fleet_effective_t region_drain[SST_MAX_REGIONS];
    sst_fleet_effective_t backend_force[SST_MAX_BACKENDS];
    uint64_t next_expiry_ms; /* earliest expires_at still ahead among the inputs, or UINT64_MAX:
                                merge again then */
} sst_fleet_merged_t;

/* sst_fleet_merge for every region and backend of cfg. `local` or `fleet` may be NULL. Pointers
 * in *out point into the inputs. */
void sst_fleet_merge_all(const sst_config_t *cfg, const sst_fleet_overrides_t *local,
                         const sst_fleet_overrides_t *fleet, uint64_t now_ms,
                         sst_fleet_merged_t *out);

/* ---- the safety rule ---------------------------------------------------------------------- */

/* A proposed fleet write: force a region or backend down, or drain a region. */
typedef struct sst_fleet_proposal_s {
    sst_fleet_key_kind_t kind; /* REGION_FORCE, REGION_DRAIN or BACKEND_FORCE */
    size_t index;              /* region or backend index in cfg */
    sst_fleet_state_t state;   /* DOWN for a force; DRAIN for a drain; UP is always safe */
} sst_fleet_proposal_t;

/* Would `p`, on top of the fleet overrides in force at now_ms, leave a route with no usable
 * region fleet-wide? A region is usable unless it is drained, forced down, or has fewer
 * backends not forced down than min_healthy needs (one, when it is forced up): health is not
 * judged, since every instance sees its own. A route counts when it has a usable region among
 * its primary and failover regions before the write and none after (a route already empty is
 * not blamed on this write; all_down policies do not count as usable). Local overrides are not
 * fleet-wide and are not inputs. Returns 0 (safe), SST_EBUSY with *route set to the first route
 * left empty (answer 409 naming it), or SST_EINVAL (bad kind, state or index). The caller makes
 * the check and the write one etcd txn comparing the overrides prefix's mod revision with the
 * revision it read `fleet` at. */
int sst_fleet_safety_check(const sst_config_t *cfg, const sst_fleet_overrides_t *fleet,
                           const sst_fleet_proposal_t *p, uint64_t now_ms, size_t *route);

#endif
