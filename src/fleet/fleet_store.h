/* The fleet's keys as this instance last saw them in etcd, decoded: overrides by key, and each
 * member's heartbeat and health view. Pure (no libuv, no clock, no etcd); fed by the runtime
 * (fleet.c) from range reads and watch events, read by it to build the override table and the
 * quorum inputs. */
#ifndef SST_FLEET_STORE_H
#define SST_FLEET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/fleet_state.h"
#include "sidestep/config.h"
#include "sidestep/str.h"

/* Bounds on what one fleet may hold; keys beyond them are refused (SST_E2BIG), never stored. A
 * config has at most 2 * SST_MAX_REGIONS + SST_MAX_BACKENDS override slots; the rest is room for
 * instances that run another config version. */
#define SST_FLEET_MAX_OVERRIDE_KEYS 1024
#define SST_FLEET_MAX_MEMBERS       256

/* Which parts of the store a call changed. */
#define SST_FLEET_CHG_OVERRIDES 1u
#define SST_FLEET_CHG_MEMBERS   2u

typedef struct sst_fleet_ovr_key_s {
    sst_fleet_key_kind_t kind; /* REGION_FORCE, REGION_DRAIN, BACKEND_FORCE */
    char name[SST_FLEET_HOSTPORT_MAX + 1];
    sst_fleet_override_t ovr;
    int64_t mod_revision;
    int64_t lease; /* 0: none */
} sst_fleet_ovr_key_t;

/* One instance, known by its heartbeat key, its view key, or both. */
typedef struct sst_fleet_member_s {
    char name[SST_FLEET_NAME_MAX + 1];
    bool has_heartbeat; /* instances/<name> exists: the instance is live */
    bool has_view;      /* views/<name> exists and decoded */
    sst_fleet_instance_t heartbeat;
    sst_fleet_view_t view;
    int64_t heartbeat_revision, view_revision;
} sst_fleet_member_t;

typedef struct sst_fleet_store_s {
    char fleet[SST_FLEET_NAME_MAX + 1];
    sst_fleet_ovr_key_t *ovr; /* in no particular order */
    size_t n_ovr, cap_ovr;
    sst_fleet_member_t *members; /* sorted by name */
    size_t n_members, cap_members;
} sst_fleet_store_t;

/* An empty store for keys under /sidestep/<fleet>/. Returns 0 or SST_EINVAL (bad name). */
int sst_fleet_store_init(sst_fleet_store_t *s, const char *fleet);
/* Frees what the store holds; it is then empty and may be used again. */
void sst_fleet_store_clear(sst_fleet_store_t *s);
/* Exchanges the contents of two stores (a fresh read replacing the old state). */
void sst_fleet_store_swap(sst_fleet_store_t *a, sst_fleet_store_t *b);

/* A PUT of `key` (a full etcd key) with `value`. Returns 0, or:
 *   SST_EINVAL: the key is outside the layout or its value does not decode. A value that does
 *     not decode replaces the key's previous one all the same (etcd no longer holds that one):
 *     the key is dropped. `err` says why ("key ...: field: problem").
 *   SST_E2BIG: more keys than the bounds above; the key is not stored.
 *   SST_ENOMEM.
 * *changed gets SST_FLEET_CHG_* bits or'ed in. */
int sst_fleet_store_put(sst_fleet_store_t *s, sst_str_t key, sst_str_t value, int64_t mod_revision,
                        int64_t lease, unsigned *changed, char *err, size_t err_size);
/* A DELETE of `key` (lease expiry, clear, undrain, an instance gone). Unknown keys are ignored.
 * Returns 0 or SST_EINVAL (a key outside the layout). */
int sst_fleet_store_delete(sst_fleet_store_t *s, sst_str_t key, unsigned *changed);

/* The fleet override table for `cfg`: every stored override of a region or backend cfg has
 * that is still in force at now_ms (expires_at enforced here as in sst_fleet_merge; keys of
 * regions or backends cfg lacks are skipped). *next_expiry_ms (may be NULL) gets the earliest
 * expires_at still ahead, or UINT64_MAX. */
void sst_fleet_store_overrides(const sst_fleet_store_t *s, const sst_config_t *cfg, uint64_t now_ms,
                               sst_fleet_overrides_t *out, uint64_t *next_expiry_ms);
/* True when two tables for the same config say the same thing. */
bool sst_fleet_overrides_equal(const sst_config_t *cfg, const sst_fleet_overrides_t *a,
                               const sst_fleet_overrides_t *b);

/* Quorum inputs: one peer per member (names point into the store), masks mapped onto cfg.
 * Returns the number written (at most max). */
size_t sst_fleet_store_peers(const sst_fleet_store_t *s, const sst_config_t *cfg,
                             sst_fleet_peer_t *peers, size_t max);

/* The member called `name`, or NULL. */
const sst_fleet_member_t *sst_fleet_store_member(const sst_fleet_store_t *s, sst_str_t name);

#endif
