/* Fleet mode's runtime on the control loop (issue 13): this instance's lease and heartbeat, the
 * fleet's overrides and health views read and watched from etcd, local expiry, the health
 * quorum, fleet actions through the safety rule, and the state /status, /fleet and metrics
 * show. Talks to the server only through the hooks and calls below; never touches health,
 * workers or the admin listener itself (docs/fleet.md, "The server's side"). */
#ifndef SST_FLEET_FLEET_H
#define SST_FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "fleet/fleet_state.h"
#include "fleet/fleet_store.h"
#include "sidestep/config.h"
#include "sidestep/str.h"

struct json_object;

typedef struct sst_fleet_s sst_fleet_t;

/* Startup: the server holds client connections until READY or TIMED_OUT (startup_wait). */
typedef enum sst_fleet_startup_e {
    SST_FLEET_STARTUP_WAITING = 0, /* the fleet's overrides are not read yet */
    SST_FLEET_STARTUP_READY,       /* read within startup_wait; the overrides hook ran first */
    SST_FLEET_STARTUP_TIMED_OUT,   /* startup_wait passed first: serve, with a warning event; the
                                      overrides hook runs when the read succeeds later */
} sst_fleet_startup_t;

/* Events for the event log (hooks.event); the text says what and why. */
typedef enum sst_fleet_event_e {
    SST_FLEET_EV_CONNECTED = 0, /* etcd read (again) and watched: the overrides are current */
    SST_FLEET_EV_DISCONNECTED,  /* etcd lost (or not reached at start): the last overrides stay
                                   in force; retrying with backoff */
    SST_FLEET_EV_COMPACTED,     /* the watch was behind a compaction: read again */
    SST_FLEET_EV_STORE_LOST,    /* no etcd for lease_ttl: quorum decisions use the own view */
    SST_FLEET_EV_LEASE,         /* this instance's lease expired; granted again */
    SST_FLEET_EV_DISAGREE,      /* the own view of a region differs from the fleet's: routing by
                                   the fleet */
    SST_FLEET_EV_AGREE,         /* ... agrees again */
    SST_FLEET_EV_EXPIRED,       /* a fleet override reached its expires_at (enforced locally) */
    SST_FLEET_EV_STARTUP,       /* startup_wait passed before the first read: serving without
                                   the fleet's overrides */
    SST_FLEET_EV_BAD_VALUE,     /* a key or value in etcd was refused and ignored */
} sst_fleet_event_t;

/* Callbacks to the server. Each runs from the loop (an etcd answer or a timer), never from
 * inside an sst_fleet_* call, and never re-entered. They may call any sst_fleet_* function,
 * sst_fleet_stop included. Pointers passed are valid during the call only. */
typedef struct sst_fleet_hooks_s {
    void *arg;
    /* The fleet's overrides changed: the table of those in force now (expired ones removed),
     * indexed on the config last given (start or sst_fleet_set_config), and the etcd revision
     * it reflects. Runs after the first read (even when empty), after each watch event batch
     * that changes it, when one expires locally, and after sst_fleet_set_config. The server
     * keeps it as the "fleet" layer and merges it under its local overrides with
     * sst_fleet_merge_all (docs/fleet.md, "The server's side"). */
    void (*overrides)(void *arg, const sst_fleet_overrides_t *fleet, int64_t revision);
    /* The quorum decision changed (basis, DOWN mask or disagreement mask). `q->down` is the
     * per-region DOWN mask for routing before operator forces; with health_quorum off it is
     * the own view. */
    void (*quorum)(void *arg, const sst_fleet_quorum_out_t *q);
    /* One line for the event log. */
    void (*event)(void *arg, sst_fleet_event_t ev, const char *text);
    /* Startup decided: READY or TIMED_OUT, exactly once. */
    void (*startup)(void *arg, sst_fleet_startup_t state);
} sst_fleet_hooks_t;

typedef uint64_t (*sst_fleet_clock_fn)(void *arg);

typedef struct sst_fleet_opts_s {
    sst_config_t *cfg;       /* cfg->fleet.enabled; referenced (sst_config_ref) until stopped */
    const char *admin;       /* advertised admin address; NULL: cfg->fleet.advertise_admin.text
                                (pass the bound address when admin.address had port 0) */
    const char *version;     /* NULL: SST_VERSION */
    const char *config_hash; /* lower-case hex, 1..64 digits */
    /* Wall-clock epoch ms (expires_at is shared between machines); NULL: CLOCK_REALTIME. Timers
     * use uv_now. */
    sst_fleet_clock_fn wall_ms;
    void *clock_arg;
    uint64_t seed;               /* backoff jitter; 0: from uv_hrtime */
    uint64_t retry_min_ms;       /* reconnect backoff: 0: 100 ms ... */
    uint64_t retry_max_ms;       /* ... doubling up to this; 0: 2 s */
    uint64_t request_timeout_ms; /* one etcd call; 0: max(dial_timeout + 1 s, lease_ttl / 3) */
} sst_fleet_opts_t;

/* Starts the runtime on `loop`: grants the lease and publishes the heartbeat, reads and
 * watches the fleet's keys, and starts the startup_wait timer. Returns 0 and sets *out, or
 * SST_EINVAL (no fleet section, a bad admin address, version or hash) or SST_ENOMEM; nothing is
 * left running on failure. Never blocks; etcd being down is not an error (it is retried). */
int sst_fleet_start(uv_loop_t *loop, const sst_fleet_opts_t *opts, const sst_fleet_hooks_t *hooks,
                    sst_fleet_t **out);

/* Stops: revokes the lease (so peers drop this instance at once; bounded by 1 s), cancels the
 * watch, answers pending actions with SST_ECANCELED, closes every handle, frees the runtime,
 * then calls cb (may be NULL) from the loop. No hook runs after this returns. Safe from inside
 * a hook or an action callback; a second call is ignored. */
void sst_fleet_stop(sst_fleet_t *f, void (*cb)(void *arg), void *arg);

/* A reload: the new config (referenced; the old one released) and its hash. health_quorum and
 * the regions may change: the override table is rebuilt for the new config at once
 * (sst_fleet_overrides) and the hooks run again from the loop. fleet.name, instance, the etcd
 * settings and advertise_admin keep the values the runtime started with: when the new config
 * changes them (or drops the fleet section), the config is adopted all the same for the rest
 * and SST_ENOTSUP says that a restart is needed to apply them. Returns 0, SST_ENOTSUP, or
 * SST_EINVAL (a bad hash: nothing changed). */
int sst_fleet_set_config(sst_fleet_t *f, sst_config_t *cfg, const char *config_hash);

/* This instance's health view of its regions (UP or DOWN from probes and passive checks, before
 * operator forces and before the quorum): copied, published under the lease at once and with
 * every heartbeat, and counted as one vote. `at` is set here. Returns 0 or SST_EINVAL. */
int sst_fleet_set_view(sst_fleet_t *f, const sst_fleet_view_t *view);

/* The current override table for the current config, and its revision (may be NULL). Valid
 * until the next loop callback of the runtime. */
const sst_fleet_overrides_t *sst_fleet_overrides(const sst_fleet_t *f, int64_t *revision);

/* ---- actions: the admin API's fleet scope ------------------------------------------------- */

typedef enum sst_fleet_op_e {
    SST_FLEET_OP_FORCE_DOWN = 0, /* regions and backends; checked by the safety rule */
    SST_FLEET_OP_FORCE_UP,       /* regions and backends */
    SST_FLEET_OP_CLEAR,          /* deletes the force key */
    SST_FLEET_OP_DRAIN,          /* regions; checked by the safety rule */
    SST_FLEET_OP_UNDRAIN,        /* deletes the drain key */
} sst_fleet_op_t;

typedef struct sst_fleet_action_s {
    sst_fleet_op_t op;
    bool backend;         /* target is a backend (host:port), else a region */
    sst_str_t target;     /* its name as the config writes it */
    sst_str_t reason;     /* 1..100 bytes, printable; not needed for CLEAR and UNDRAIN */
    sst_str_t client;     /* the admin client's address, 0..63 bytes */
    uint64_t ttl_ms;      /* 0: no expiry; else SST_FLEET_MIN_TTL_MS..30 days */
    bool override_safety; /* skip the safety rule */
} sst_fleet_action_t;

#define SST_FLEET_MAX_ACTION_TTL_MS (720ull * 3600 * 1000)

typedef struct sst_fleet_result_s {
    /* 0 (200); SST_EINVAL (400); SST_ENOENT (404: a region or backend this config lacks);
     * SST_EBUSY (409: the safety rule; `route` names the route); SST_EAGAIN (503: etcd could
     * not be reached or answered with an error; nothing was applied unless `message` says the
     * outcome is unknown); SST_ECANCELED (503: stopping). */
    int status;
    int http_status;
    int64_t revision;  /* 200: the etcd revision of the write (or of the read, for a clear of
                          nothing) */
    const char *route; /* 409 */
    char message[512]; /* printable; for the answer's body */
} sst_fleet_result_t;

typedef void (*sst_fleet_action_cb)(void *arg, const sst_fleet_result_t *res);

/* Writes a fleet action to etcd. FORCE_DOWN and DRAIN (without override_safety) read the
 * overrides (linearizable), run sst_fleet_safety_check, and write in one txn that compares
 * MOD < R + 1 over the overrides prefix (R: the read's revision); when another write came in
 * between, the check runs again on the txn's fresh read (up to 5 times). A TTL puts the key on
 * its own lease of ceil(ttl / 1 s) seconds (the key's expires_at is exact, and enforced locally
 * by every instance); TTLs below 5 s are refused (400) rather than rounded up, because etcd
 * would extend them. When a step fails after the lease was granted, the lease is revoked, so
 * nothing is half-applied; a txn whose outcome is unknown (connection lost after sending) is
 * settled by reading the key back. Returns 0: `cb` runs exactly once, later, from the loop
 * (validation errors included); or SST_EINVAL (NULL arguments), SST_ENOMEM or SST_ECANCELED
 * (stopping) with no callback. */
int sst_fleet_action(sst_fleet_t *f, const sst_fleet_action_t *a, sst_fleet_action_cb cb,
                     void *arg);

/* ---- state: /status, /fleet, metrics ------------------------------------------------------ */

typedef struct sst_fleet_status_s {
    bool connected;  /* the last read succeeded and the watch runs */
    bool store_lost; /* no etcd for lease_ttl: quorum on the own view */
    sst_fleet_startup_t startup;
    int64_t revision;         /* the last etcd revision seen (read, events, progress) */
    int64_t applied_revision; /* the revision of the overrides last handed to the server */
    uint64_t connects, disconnects, compactions, bad_values, lease_grants;
    int64_t lease_id;         /* 0: none held */
    uint64_t last_contact_ms; /* wall-clock ms of etcd's last answer; 0: never */
    char last_error[256];     /* why etcd was last lost; "" when never */
    uint32_t own_down;        /* the own view, bit per region */
    sst_fleet_quorum_out_t quorum;
    size_t n_members;
} sst_fleet_status_t;

void sst_fleet_status(const sst_fleet_t *f, sst_fleet_status_t *out);

/* Every instance known from its heartbeat or view key (this one included, once its own keys
 * came back through the watch), sorted by name. Valid until the next loop callback. */
size_t sst_fleet_members(const sst_fleet_t *f, const sst_fleet_member_t **out);

/* The body of GET /fleet: this instance, the connection, the quorum per region, every instance
 * with its heartbeat fields and view, and the fleet overrides in force. NULL on ENOMEM; the
 * caller owns it (json_object_put). */
struct json_object *sst_fleet_to_json(const sst_fleet_t *f);

/* Names for JSON and logs. */
const char *sst_fleet_startup_name(sst_fleet_startup_t s);
const char *sst_fleet_event_name(sst_fleet_event_t e);

#endif
