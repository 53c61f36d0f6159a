/* Shared by fleet.c, fleet_action.c and fleet_json.c only: the runtime's state and the few
 * internals the action and JSON code call. Nothing outside src/fleet/ includes this. */
#ifndef SST_FLEET_FLEET_INTERNAL_H
#define SST_FLEET_FLEET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "fleet/etcd.h"
#include "fleet/fleet.h"
#include "fleet/fleet_state.h"
#include "fleet/fleet_store.h"

typedef enum sst__fleet_sync_e {
    SST__FLEET_SYNC_READING = 0, /* a range read of the whole prefix is in flight */
    SST__FLEET_SYNC_WATCHING,    /* the watch runs from the read's revision + 1 */
    SST__FLEET_SYNC_BACKOFF,     /* waiting to read again after a failure */
} sst__fleet_sync_t;

typedef enum sst__fleet_lease_e {
    SST__FLEET_LEASE_NONE = 0,
    SST__FLEET_LEASE_GRANTING,
    SST__FLEET_LEASE_HELD,
} sst__fleet_lease_t;

typedef struct sst__fleet_act_s sst__fleet_act_t;

struct sst_fleet_s {
    uv_loop_t *loop;
    sst_etcd_t *etcd;
    sst_config_t *cfg;
    sst_config_t *start_cfg; /* the fleet identity in force: a reload cannot change it */
    sst_fleet_hooks_t hooks;
    char name[SST_FLEET_NAME_MAX + 1];
    char instance[SST_FLEET_NAME_MAX + 1];
    char prefix[SST_FLEET_KEY_MAX + 1]; /* /sidestep/<fleet>/ */
    size_t prefix_len;
    char ovr_prefix[SST_FLEET_KEY_MAX + 1]; /* .../overrides/: the safety compare's range */
    size_t ovr_prefix_len;
    char inst_key[SST_FLEET_KEY_MAX + 1], view_key[SST_FLEET_KEY_MAX + 1];
    size_t inst_key_len, view_key_len;
    sst_fleet_instance_t self; /* the heartbeat; seen_at and applied_revision set when sent */
    sst_fleet_view_t own_view;
    bool has_view;
    uint32_t own_down;

    sst_fleet_clock_fn wall;
    void *clock_arg;
    uint64_t rng;
    uint64_t retry_min_ms, retry_max_ms, lease_ttl_ms;

    /* reading and watching */
    sst__fleet_sync_t sync;
    sst_etcd_watch_t *watch;
    bool resync; /* the watch was cancelled because etcd looked lost */
    int resync_status;
    char resync_why[SST_ETCD_MESSAGE_MAX];
    unsigned backoff_n;
    bool reported_unreachable;
    sst_fleet_store_t store;
    int64_t revision, applied_revision, table_revision;
    bool connected, ever_read, store_lost;
    uint64_t last_contact;      /* uv_now */
    uint64_t last_contact_wall; /* epoch ms */
    uint64_t connects, disconnects, compactions, bad_values, lease_grants;
    char last_error[256];

    /* what the server was handed */
    sst_fleet_overrides_t table, scratch;
    bool have_table;
    uint64_t next_expiry, expiry_checked;
    sst_fleet_quorum_out_t quorum;
    bool quorum_valid;
    sst_fleet_peer_t peers[SST_FLEET_MAX_MEMBERS];

    /* this instance's lease and keys */
    sst__fleet_lease_t lease;
    int64_t lease_id, lease_ttl_s;
    bool publish_busy, publish_again;
    char hb_buf[1024];
    char view_buf[SST_FLEET_VALUE_MAX];

    sst_fleet_startup_t startup;

    uv_timer_t t_retry, t_beat, t_expiry, t_lost, t_startup, t_kick;
    int open_handles;
    bool etcd_closed, stopping, stop_proceeded;
    void (*stop_cb)(void *arg);
    void *stop_arg;
    bool kick_overrides, kick_quorum;
    sst__fleet_act_t *done_head, *done_tail; /* answered actions, delivered from t_kick */
};

/* Wall-clock epoch ms (the injected clock, or CLOCK_REALTIME). */
uint64_t sst__fleet_wall(const sst_fleet_t *f);
/* Runs t_kick on the next loop turn (deferred hooks and action answers). */
void sst__fleet_kick(sst_fleet_t *f);

/* fleet_action.c: queues `act`'s answer for delivery (frees it after the callback). */
void sst__fleet_act_deliver_all(sst_fleet_t *f);

#endif
