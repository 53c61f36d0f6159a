/* The fleet runtime (fleet.h): lifecycle, the read-then-watch loop over the fleet's keys with
 * reconnects and compaction, local expiry, the quorum, this instance's lease and heartbeat,
 * and the hooks to the server. Decisions are fleet_state.c's; keys are kept in fleet_store.c;
 * actions live in fleet_action.c. Never blocks and never calls a hook from inside an API call. */
#include "fleet/fleet.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "fleet/fleet_internal.h"
#include "sidestep/error.h"

#define FLEET_RETRY_MIN_MS    100
#define FLEET_RETRY_MAX_MS    2000
#define FLEET_EXPIRY_CHECK_MS 10000 /* re-read the wall clock at least this often */
#define FLEET_STOP_REVOKE_MS  1000
#define FLEET_TIMERS          6

#ifndef SST_VERSION
#define SST_VERSION "0.0.0"
#endif

static void fleet_sync_read(sst_fleet_t *f);
static void fleet_lease_grant(sst_fleet_t *f);
static void fleet_publish(sst_fleet_t *f);
static bool fleet_refresh(sst_fleet_t *f, unsigned changed, bool force);
static void fleet_on_retry(uv_timer_t *t);
static void fleet_on_beat(uv_timer_t *t);
static void fleet_on_expiry(uv_timer_t *t);
static void fleet_on_lost(uv_timer_t *t);
static void fleet_on_startup(uv_timer_t *t);
static void fleet_on_kick(uv_timer_t *t);

/* ---- small helpers ------------------------------------------------------------------------ */

uint64_t sst__fleet_wall(const sst_fleet_t *f)
{
    if (f->wall != NULL)
        return f->wall(f->clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t fleet_rand(sst_fleet_t *f)
{
    uint64_t x = f->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    f->rng = x;
    return x;
}

__attribute__((format(printf, 3, 4))) static void fleet_event(sst_fleet_t *f, sst_fleet_event_t ev,
                                                              const char *fmt, ...)
{
    char text[512];
    va_list ap;
    if (f->hooks.event == NULL || f->stopping)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    f->hooks.event(f->hooks.arg, ev, text);
}

static const char *fleet_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms % 1000 == 0)
        snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    return buf;
}

/* Errors that say etcd cannot be reached (as opposed to etcd refusing a request). */
static bool fleet_transport_error(int status)
{
    return status == SST_ECONNREFUSED || status == SST_ECONNRESET || status == SST_ETIMEDOUT ||
           status == SST_EPROTO || status == SST_EAGAIN || status == SST_EIO;
}

static void fleet_contact(sst_fleet_t *f)
{
    f->last_contact = uv_now(f->loop);
    f->last_contact_wall = sst__fleet_wall(f);
}

void sst__fleet_kick(sst_fleet_t *f)
{
    /* once the handles are closing, answers are delivered just before the runtime is freed */
    if (!f->stop_proceeded && !uv_is_active((uv_handle_t *)&f->t_kick))
        uv_timer_start(&f->t_kick, fleet_on_kick, 0, 0);
}

/* ---- hooks: overrides and quorum ---------------------------------------------------------- */

static void fleet_arm_expiry(sst_fleet_t *f)
{
    if (f->stopping || f->next_expiry == UINT64_MAX) {
        uv_timer_stop(&f->t_expiry);
        return;
    }
    uint64_t now = sst__fleet_wall(f);
    uint64_t delay = f->next_expiry > now ? f->next_expiry - now + 1 : 1;
    if (delay > FLEET_EXPIRY_CHECK_MS)
        delay = FLEET_EXPIRY_CHECK_MS; /* the wall clock may be stepped meanwhile */
    uv_timer_start(&f->t_expiry, fleet_on_expiry, delay, 0);
}

/* Rebuilds the override table; hands it over when it changed (or when forced). False when a
 * hook stopped the runtime. */
static bool fleet_refresh_overrides(sst_fleet_t *f, bool force)
{
    if (!f->ever_read)
        return true; /* nothing known yet: the server keeps an empty fleet layer */
    sst_fleet_store_overrides(&f->store, f->cfg, sst__fleet_wall(f), &f->scratch, &f->next_expiry);
    fleet_arm_expiry(f);
    if (!force && f->have_table && sst_fleet_overrides_equal(f->cfg, &f->scratch, &f->table))
        return true;
    memcpy(&f->table, &f->scratch, sizeof(f->table));
    f->have_table = true;
    f->table_revision = f->revision;
    if (f->hooks.overrides != NULL)
        f->hooks.overrides(f->hooks.arg, &f->table, f->revision);
    return !f->stopping;
}

static sst_fleet_quorum_mode_t fleet_quorum_mode(const sst_config_t *cfg)
{
    switch (cfg->fleet.health_quorum) {
    case SST_QUORUM_CFG_OFF:
        return SST_FLEET_QUORUM_OFF;
    case SST_QUORUM_CFG_MAJORITY:
        return SST_FLEET_QUORUM_MAJORITY;
    case SST_QUORUM_CFG_COUNT:
        return SST_FLEET_QUORUM_COUNT;
    }
    return SST_FLEET_QUORUM_OFF;
}

static void fleet_disagree_events(sst_fleet_t *f, const sst_fleet_quorum_out_t *old,
                                  const sst_fleet_quorum_out_t *q)
{
    /* away from the fleet basis there is no disagreement to report: STORE_LOST says why */
    if (q->basis != SST_FLEET_BASIS_FLEET)
        return;
    uint32_t flipped =
        (old && old->basis == SST_FLEET_BASIS_FLEET ? old->disagree : 0) ^ q->disagree;
    for (size_t r = 0; r < f->cfg->n_regions && r < SST_MAX_REGIONS && !f->stopping; r++) {
        uint32_t bit = 1u << r;
        if (!(flipped & bit))
            continue;
        bool fleet_down = q->down & bit;
        if (q->disagree & bit)
            fleet_event(f, SST_FLEET_EV_DISAGREE,
                        "region %s: this instance sees it %s, the fleet %s (%u of %u instances "
                        "see it DOWN, %u needed): routing by the fleet",
                        f->cfg->regions[r].name, fleet_down ? "UP" : "DOWN",
                        fleet_down ? "DOWN" : "UP", q->down_votes[r], q->voters[r], q->needed[r]);
        else
            fleet_event(f, SST_FLEET_EV_AGREE,
                        "region %s: this instance agrees with the fleet (%s)",
                        f->cfg->regions[r].name, fleet_down ? "DOWN" : "UP");
    }
}

static bool fleet_refresh_quorum(sst_fleet_t *f, bool force)
{
    sst_fleet_quorum_out_t q;
    size_t n = sst_fleet_store_peers(&f->store, f->cfg, f->peers, SST_FLEET_MAX_MEMBERS);
    sst_fleet_quorum_in_t in = {
        .mode = fleet_quorum_mode(f->cfg),
        .count = f->cfg->fleet.health_quorum_count ? f->cfg->fleet.health_quorum_count : 1,
        .n_regions = f->cfg->n_regions,
        .self = sst_str_c(f->instance),
        .own_down = f->own_down,
        .peers = f->peers,
        .n_peers = n,
        .store_lost = f->store_lost,
    };
    if (sst_fleet_quorum(&in, &q) != 0)
        return true; /* a config the loader would not produce */
    bool changed = !f->quorum_valid || q.basis != f->quorum.basis || q.down != f->quorum.down ||
                   q.disagree != f->quorum.disagree;
    fleet_disagree_events(f, f->quorum_valid ? &f->quorum : NULL, &q);
    f->quorum = q;
    f->quorum_valid = true;
    if ((changed || force) && f->hooks.quorum != NULL && !f->stopping)
        f->hooks.quorum(f->hooks.arg, &f->quorum);
    return !f->stopping;
}

static bool fleet_refresh(sst_fleet_t *f, unsigned changed, bool force)
{
    if ((changed & SST_FLEET_CHG_OVERRIDES) && !fleet_refresh_overrides(f, force))
        return false;
    if (f->ever_read)
        f->applied_revision = f->revision;
    if ((changed & SST_FLEET_CHG_MEMBERS) && !fleet_refresh_quorum(f, force))
        return false;
    return true;
}

static void fleet_on_expiry(uv_timer_t *t)
{
    sst_fleet_t *f = t->data;
    uint64_t now = sst__fleet_wall(f);
    for (size_t i = 0; i < f->store.n_ovr && !f->stopping; i++) {
        const sst_fleet_ovr_key_t *k = &f->store.ovr[i];
        uint64_t at = k->ovr.expires_at;
        if (at != 0 && at <= now && at > f->expiry_checked)
            fleet_event(f, SST_FLEET_EV_EXPIRED,
                        "fleet override %s %s %s (%s) expired at %" PRIu64 " (by %s)",
                        k->kind == SST_FLEET_KEY_BACKEND_FORCE ? "backend" : "region", k->name,
                        k->kind == SST_FLEET_KEY_REGION_DRAIN ? "drain" : "force", k->ovr.reason,
                        at, k->ovr.by_instance);
    }
    f->expiry_checked = now;
    if (!f->stopping)
        fleet_refresh(f, SST_FLEET_CHG_OVERRIDES, false);
}

/* ---- connection state --------------------------------------------------------------------- */

static uint64_t fleet_backoff(sst_fleet_t *f)
{
    unsigned n = f->backoff_n < 16 ? f->backoff_n : 16;
    uint64_t d = f->retry_min_ms << n;
    if (d > f->retry_max_ms || d < f->retry_min_ms)
        d = f->retry_max_ms;
    f->backoff_n++;
    /* "equal jitter": half fixed, half random, so instances that lost etcd together do not
     * come back in step */
    return d / 2 + fleet_rand(f) % (d / 2 + 1);
}

static void fleet_arm_lost(sst_fleet_t *f)
{
    uint64_t now = uv_now(f->loop), at = f->last_contact + f->lease_ttl_ms;
    if (!f->store_lost)
        uv_timer_start(&f->t_lost, fleet_on_lost, at > now ? at - now : 0, 0);
}

static void fleet_sync_fail(sst_fleet_t *f, int status, const char *why)
{
    char rev[32];
    f->sync = SST__FLEET_SYNC_BACKOFF;
    snprintf(f->last_error, sizeof(f->last_error), "%s%s%s", sst_strerror(status),
             why && why[0] ? ": " : "", why ? why : "");
    snprintf(rev, sizeof(rev), "%" PRId64, f->revision);
    if (f->connected) {
        f->connected = false;
        f->disconnects++;
        f->reported_unreachable = true;
        fleet_arm_lost(f);
        fleet_event(f, SST_FLEET_EV_DISCONNECTED,
                    "lost etcd (%s); keeping the fleet overrides of revision %s; retrying",
                    f->last_error, rev);
    } else if (!f->reported_unreachable) {
        f->reported_unreachable = true;
        fleet_event(f, SST_FLEET_EV_DISCONNECTED, "etcd unreachable (%s); retrying", f->last_error);
    }
    if (!f->stopping)
        uv_timer_start(&f->t_retry, fleet_on_retry, fleet_backoff(f), 0);
}

/* A call of ours failed as if etcd were gone while the watch looks fine (a black hole keeps a
 * watch's TCP connection open): read again rather than trust a silent watch. */
static void fleet_suspect(sst_fleet_t *f, int status, const char *why)
{
    if (!fleet_transport_error(status) || f->sync != SST__FLEET_SYNC_WATCHING || f->watch == NULL ||
        f->resync)
        return;
    f->resync = true;
    f->resync_status = status;
    snprintf(f->resync_why, sizeof(f->resync_why), "%s", why ? why : "");
    sst_etcd_watch_cancel(f->watch);
}

static void fleet_bad_value(sst_fleet_t *f, size_t count, const char *first)
{
    f->bad_values += count;
    if (count == 1)
        fleet_event(f, SST_FLEET_EV_BAD_VALUE, "ignored a fleet key: %s", first);
    else if (count > 1)
        fleet_event(f, SST_FLEET_EV_BAD_VALUE, "ignored %zu fleet keys, the first: %s", count,
                    first);
}

static void fleet_on_watch(void *arg, const sst_etcd_watch_msg_t *m);

static void fleet_watch_start(sst_fleet_t *f)
{
    sst_etcd_watch_opts_t o = {.key = sst_str(f->prefix, f->prefix_len),
                               .prefix = true,
                               .start_revision = f->revision + 1,
                               .progress_notify = true};
    f->resync = false;
    int rc = sst_etcd_watch(f->etcd, &o, fleet_on_watch, f, &f->watch);
    if (rc != 0) {
        f->watch = NULL;
        fleet_sync_fail(f, rc, "cannot start the watch");
        return;
    }
    f->sync = SST__FLEET_SYNC_WATCHING;
}

static void fleet_on_read(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst_fleet_t *f = arg;
    sst_fleet_store_t fresh;
    char err[256] = "", first[256] = "";
    size_t bad = 0;
    unsigned changed = 0;

    if (f->stopping)
        return;
    if (status != 0) {
        fleet_sync_fail(f, status, resp->message);
        return;
    }
    fleet_contact(f);
    sst_fleet_store_init(&fresh, f->name);
    for (size_t i = 0; i < resp->n_kvs; i++) {
        const sst_etcd_kv_t *kv = &resp->kvs[i];
        int rc = sst_fleet_store_put(&fresh, kv->key, kv->value, kv->mod_revision, kv->lease,
                                     &changed, err, sizeof(err));
        if (rc == SST_ENOMEM) {
            sst_fleet_store_clear(&fresh);
            fleet_sync_fail(f, rc, "reading the fleet's keys");
            return;
        }
        if (rc != 0 && bad++ == 0)
            snprintf(first, sizeof(first), "%s", err);
    }
    /* the read is the truth: keys deleted while this instance was away are gone */
    sst_fleet_store_swap(&f->store, &fresh);
    sst_fleet_store_clear(&fresh);
    f->revision = resp->revision;
    bool first_read = !f->ever_read;
    f->ever_read = true;
    f->backoff_n = 0;
    f->reported_unreachable = false;
    fleet_bad_value(f, bad, first);
    if (f->stopping)
        return;
    fleet_watch_start(f);
    if (f->sync != SST__FLEET_SYNC_WATCHING)
        return;
    if (!f->connected) {
        f->connected = true;
        f->connects++;
        uv_timer_stop(&f->t_lost);
        f->store_lost = false;
        fleet_event(f, SST_FLEET_EV_CONNECTED, "connected to etcd at revision %" PRId64,
                    f->revision);
        if (f->stopping)
            return;
    }
    if (!fleet_refresh(f, SST_FLEET_CHG_OVERRIDES | SST_FLEET_CHG_MEMBERS, first_read))
        return;
    if (f->startup == SST_FLEET_STARTUP_WAITING) {
        f->startup = SST_FLEET_STARTUP_READY;
        uv_timer_stop(&f->t_startup);
        if (f->hooks.startup != NULL)
            f->hooks.startup(f->hooks.arg, SST_FLEET_STARTUP_READY);
    }
    if (!f->stopping)
        fleet_publish(f); /* applied_revision moved */
}

static void fleet_sync_read(sst_fleet_t *f)
{
    sst_etcd_range_t q = {.key = sst_str(f->prefix, f->prefix_len), .prefix = true};
    f->sync = SST__FLEET_SYNC_READING;
    int rc = sst_etcd_range(f->etcd, &q, fleet_on_read, f);
    if (rc != 0)
        fleet_sync_fail(f, rc, "cannot send the read");
}

static void fleet_on_retry(uv_timer_t *t)
{
    sst_fleet_t *f = t->data;
    if (!f->stopping && f->sync == SST__FLEET_SYNC_BACKOFF)
        fleet_sync_read(f);
}

static void fleet_watch_events(sst_fleet_t *f, const sst_etcd_watch_msg_t *m)
{
    char err[256] = "", first[256] = "";
    unsigned changed = 0;
    size_t bad = 0;
    for (size_t i = 0; i < m->n_events; i++) {
        const sst_etcd_event_t *ev = &m->events[i];
        int rc;
        if (ev->type == SST_ETCD_EVENT_DELETE) {
            rc = sst_fleet_store_delete(&f->store, ev->kv.key, &changed);
            if (rc != 0)
                snprintf(err, sizeof(err), "key %.*s: not a key of the fleet layout",
                         (int)(ev->kv.key.len > 200 ? 200 : ev->kv.key.len), ev->kv.key.base);
        } else {
            rc = sst_fleet_store_put(&f->store, ev->kv.key, ev->kv.value, ev->kv.mod_revision,
                                     ev->kv.lease, &changed, err, sizeof(err));
        }
        if (rc != 0 && bad++ == 0)
            snprintf(first, sizeof(first), "%s", err);
    }
    if (m->last_revision > f->revision)
        f->revision = m->last_revision;
    fleet_bad_value(f, bad, first);
    if (!f->stopping && fleet_refresh(f, changed, false) && (changed & SST_FLEET_CHG_OVERRIDES))
        fleet_publish(f); /* applied_revision moved */
}

static void fleet_on_watch(void *arg, const sst_etcd_watch_msg_t *m)
{
    sst_fleet_t *f = arg;
    char rev[64];

    if (m->kind == SST_ETCD_WATCH_END) {
        f->watch = NULL; /* freed by the client after this message */
        if (f->stopping)
            return;
        if (m->err == SST_ERANGE) {
            f->compactions++;
            snprintf(rev, sizeof(rev), "%" PRId64, m->compact_revision);
            fleet_event(f, SST_FLEET_EV_COMPACTED,
                        "the watch from revision %" PRId64 " was compacted (at %s): reading again",
                        f->revision + 1, rev);
            if (!f->stopping)
                fleet_sync_read(f);
        } else if (m->err == SST_ECANCELED && f->resync) {
            f->resync = false;
            fleet_sync_fail(f, f->resync_status, f->resync_why);
        } else {
            fleet_sync_fail(f, m->err, m->message);
        }
        return;
    }
    if (f->stopping)
        return;
    fleet_contact(f);
    switch (m->kind) {
    case SST_ETCD_WATCH_EVENTS:
        fleet_watch_events(f, m);
        break;
    case SST_ETCD_WATCH_CREATED:
    case SST_ETCD_WATCH_PROGRESS:
        /* nothing pending up to here: the table is current at this revision */
        if (m->last_revision > f->revision) {
            f->revision = m->last_revision;
            f->applied_revision = f->revision;
        }
        break;
    case SST_ETCD_WATCH_END:
        break;
    }
}

static void fleet_on_lost(uv_timer_t *t)
{
    sst_fleet_t *f = t->data;
    char ttl[32];
    if (f->stopping || f->connected || f->store_lost)
        return;
    f->store_lost = true;
    fleet_event(f, SST_FLEET_EV_STORE_LOST,
                "no etcd for %s (lease_ttl): quorum decisions use this instance's own view until "
                "it is back; the fleet overrides stay in force",
                fleet_ms(f->lease_ttl_ms, ttl, sizeof(ttl)));
    if (!f->stopping)
        fleet_refresh_quorum(f, false);
}

static void fleet_on_startup(uv_timer_t *t)
{
    sst_fleet_t *f = t->data;
    char wait[32];
    if (f->stopping || f->startup != SST_FLEET_STARTUP_WAITING)
        return;
    f->startup = SST_FLEET_STARTUP_TIMED_OUT;
    fleet_event(f, SST_FLEET_EV_STARTUP,
                "serving without the fleet's overrides: not read within startup_wait (%s)%s%s",
                fleet_ms(f->start_cfg->fleet.startup_wait_ms, wait, sizeof(wait)),
                f->last_error[0] ? ": " : "", f->last_error);
    if (!f->stopping && f->hooks.startup != NULL)
        f->hooks.startup(f->hooks.arg, SST_FLEET_STARTUP_TIMED_OUT);
}

/* ---- lease and heartbeat ------------------------------------------------------------------ */

static void fleet_arm_beat(sst_fleet_t *f, uint64_t delay)
{
    if (!f->stopping)
        uv_timer_start(&f->t_beat, fleet_on_beat, delay, 0);
}

static uint64_t fleet_beat_interval(const sst_fleet_t *f)
{
    int64_t ttl = f->lease_ttl_s > 0 ? f->lease_ttl_s : (int64_t)(f->lease_ttl_ms / 1000);
    return (uint64_t)ttl * 1000 / 3;
}

static void fleet_lease_lost(sst_fleet_t *f)
{
    f->lease = SST__FLEET_LEASE_NONE;
    f->lease_id = 0;
    fleet_lease_grant(f);
}

static void fleet_on_publish(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst_fleet_t *f = arg;
    f->publish_busy = false;
    if (f->stopping)
        return;
    if (status == SST_ENOENT) { /* "requested lease not found": it expired meanwhile */
        fleet_lease_lost(f);
        return;
    }
    if (status != 0) {
        fleet_suspect(f, status, resp->message);
        return;
    }
    fleet_contact(f);
    if (f->publish_again) {
        f->publish_again = false;
        fleet_publish(f);
    }
}

/* Writes this instance's heartbeat and view under its lease, in one txn (one revision). */
static void fleet_publish(sst_fleet_t *f)
{
    char err[160];
    size_t hb_len = 0, view_len = 0;
    sst_etcd_op_t ops[2];
    size_t n = 0;

    if (f->stopping || f->lease != SST__FLEET_LEASE_HELD)
        return;
    if (f->publish_busy) {
        f->publish_again = true;
        return;
    }
    uint64_t now = sst__fleet_wall(f);
    f->self.seen_at = now;
    f->self.applied_revision = f->applied_revision > 0 ? (uint64_t)f->applied_revision : 0;
    if (sst_fleet_instance_encode(&f->self, f->hb_buf, sizeof(f->hb_buf), &hb_len, err,
                                  sizeof(err)) != 0)
        return; /* validated at start: cannot happen */
    ops[n++] = (sst_etcd_op_t){.type = SST_ETCD_OP_PUT,
                               .put = {.key = sst_str(f->inst_key, f->inst_key_len),
                                       .value = sst_str(f->hb_buf, hb_len),
                                       .lease = f->lease_id}};
    if (f->has_view) {
        f->own_view.at = now;
        if (sst_fleet_view_encode(&f->own_view, f->view_buf, sizeof(f->view_buf), &view_len, err,
                                  sizeof(err)) == 0)
            ops[n++] = (sst_etcd_op_t){.type = SST_ETCD_OP_PUT,
                                       .put = {.key = sst_str(f->view_key, f->view_key_len),
                                               .value = sst_str(f->view_buf, view_len),
                                               .lease = f->lease_id}};
    }
    sst_etcd_txn_t txn = {.success = ops, .n_success = n};
    if (sst_etcd_txn(f->etcd, &txn, fleet_on_publish, f) == 0)
        f->publish_busy = true;
}

static void fleet_on_grant(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst_fleet_t *f = arg;
    if (f->stopping)
        return;
    if (status != 0 || resp->lease_id == 0) {
        f->lease = SST__FLEET_LEASE_NONE;
        uint64_t retry = fleet_beat_interval(f);
        fleet_arm_beat(f, retry < 1000 ? retry : 1000);
        return;
    }
    fleet_contact(f);
    f->lease = SST__FLEET_LEASE_HELD;
    f->lease_id = resp->lease_id;
    f->lease_ttl_s = resp->ttl > 0 ? resp->ttl : (int64_t)(f->lease_ttl_ms / 1000);
    if (f->lease_grants++ > 0)
        fleet_event(f, SST_FLEET_EV_LEASE,
                    "this instance's lease was gone (expired while etcd was unreachable, or "
                    "revoked); granted lease %" PRId64 " and published the heartbeat again",
                    f->lease_id);
    if (f->stopping)
        return;
    fleet_publish(f);
    fleet_arm_beat(f, fleet_beat_interval(f));
}

static void fleet_lease_grant(sst_fleet_t *f)
{
    if (f->stopping || f->lease != SST__FLEET_LEASE_NONE)
        return;
    f->lease = SST__FLEET_LEASE_GRANTING;
    int rc = sst_etcd_lease_grant(f->etcd, (int64_t)(f->lease_ttl_ms / 1000), 0, fleet_on_grant, f);
    if (rc != 0) {
        f->lease = SST__FLEET_LEASE_NONE;
        fleet_arm_beat(f, 1000);
    }
}

static void fleet_on_keepalive(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst_fleet_t *f = arg;
    if (f->stopping)
        return;
    if (status == SST_ENOENT || (status == 0 && resp->ttl <= 0)) {
        fleet_lease_lost(f);
        return;
    }
    fleet_arm_beat(f, fleet_beat_interval(f));
    if (status != 0) {
        fleet_suspect(f, status, resp->message);
        return;
    }
    fleet_contact(f);
    fleet_publish(f);
}

static void fleet_on_beat(uv_timer_t *t)
{
    sst_fleet_t *f = t->data;
    if (f->stopping)
        return;
    if (f->lease == SST__FLEET_LEASE_NONE) {
        fleet_lease_grant(f);
    } else if (f->lease == SST__FLEET_LEASE_HELD) {
        if (sst_etcd_lease_keepalive(f->etcd, f->lease_id, fleet_on_keepalive, f) != 0)
            fleet_arm_beat(f, fleet_beat_interval(f));
    }
}

/* ---- deferred work ------------------------------------------------------------------------ */

static void fleet_on_kick(uv_timer_t *t)
{
    sst_fleet_t *f = t->data;
    if (!f->stopping && (f->kick_overrides || f->kick_quorum)) {
        unsigned changed = (f->kick_overrides ? SST_FLEET_CHG_OVERRIDES : 0) |
                           (f->kick_quorum ? SST_FLEET_CHG_MEMBERS : 0);
        bool force = f->kick_overrides; /* a new config: indices changed */
        f->kick_overrides = f->kick_quorum = false;
        if (!fleet_refresh(f, changed, force))
            return;
    }
    sst__fleet_act_deliver_all(f);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static bool fleet_hash_ok(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > SST_FLEET_HASH_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

static uv_timer_t *fleet_timer(sst_fleet_t *f, int i)
{
    uv_timer_t *all[FLEET_TIMERS] = {&f->t_retry, &f->t_beat,    &f->t_expiry,
                                     &f->t_lost,  &f->t_startup, &f->t_kick};
    return all[i];
}

static int fleet_setup(sst_fleet_t *f, const sst_fleet_opts_t *o)
{
    const sst_fleet_cfg_t *fc = &o->cfg->fleet;
    char err[160], buf[1024];
    size_t len;
    snprintf(f->name, sizeof(f->name), "%s", fc->name ? fc->name : "");
    snprintf(f->instance, sizeof(f->instance), "%s", fc->instance ? fc->instance : "");
    if (sst_fleet_prefix(f->name, SST_FLEET_PREFIX_ROOT, f->prefix, sizeof(f->prefix),
                         &f->prefix_len) != 0 ||
        sst_fleet_prefix(f->name, SST_FLEET_PREFIX_OVERRIDES, f->ovr_prefix, sizeof(f->ovr_prefix),
                         &f->ovr_prefix_len) != 0 ||
        sst_fleet_key(f->name, SST_FLEET_KEY_INSTANCE, sst_str_c(f->instance), f->inst_key,
                      sizeof(f->inst_key), &f->inst_key_len) != 0 ||
        sst_fleet_key(f->name, SST_FLEET_KEY_VIEW, sst_str_c(f->instance), f->view_key,
                      sizeof(f->view_key), &f->view_key_len) != 0)
        return SST_EINVAL;
    const char *admin = o->admin ? o->admin : fc->advertise_admin.text;
    const char *version = o->version ? o->version : SST_VERSION;
    if (strlen(admin) > SST_FLEET_HOSTPORT_MAX || strlen(version) > SST_FLEET_VERSION_MAX ||
        !fleet_hash_ok(o->config_hash))
        return SST_EINVAL;
    snprintf(f->self.instance, sizeof(f->self.instance), "%s", f->instance);
    snprintf(f->self.admin, sizeof(f->self.admin), "%s", admin);
    snprintf(f->self.version, sizeof(f->self.version), "%s", version);
    snprintf(f->self.config_hash, sizeof(f->self.config_hash), "%s", o->config_hash);
    f->self.config_version = o->cfg->version;
    f->self.started_at = sst__fleet_wall(f);
    f->self.seen_at = f->self.started_at;
    /* the heartbeat must encode, or the instance would never show in the fleet */
    if (sst_fleet_instance_encode(&f->self, buf, sizeof(buf), &len, err, sizeof(err)) != 0)
        return SST_EINVAL;
    return sst_fleet_store_init(&f->store, f->name);
}

int sst_fleet_start(uv_loop_t *loop, const sst_fleet_opts_t *o, const sst_fleet_hooks_t *hooks,
                    sst_fleet_t **out)
{
    if (loop == NULL || o == NULL || out == NULL || o->cfg == NULL || !o->cfg->fleet.enabled ||
        o->cfg->fleet.n_endpoints == 0 || o->cfg->fleet.lease_ttl_ms < SST_FLEET_MIN_TTL_MS)
        return SST_EINVAL;
    const sst_fleet_cfg_t *fc = &o->cfg->fleet;
    sst_fleet_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return SST_ENOMEM;
    f->loop = loop;
    f->wall = o->wall_ms;
    f->clock_arg = o->clock_arg;
    if (hooks != NULL)
        f->hooks = *hooks;
    int rc = fleet_setup(f, o);
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->lease_ttl_ms = fc->lease_ttl_ms;
    f->retry_min_ms = o->retry_min_ms ? o->retry_min_ms : FLEET_RETRY_MIN_MS;
    f->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : FLEET_RETRY_MAX_MS;
    if (f->retry_max_ms < f->retry_min_ms)
        f->retry_max_ms = f->retry_min_ms;
    f->rng = o->seed ? o->seed : (uv_hrtime() ^ (uint64_t)(uintptr_t)f) | 1;
    f->next_expiry = UINT64_MAX;
    f->expiry_checked = f->self.started_at; /* keys that expired before this start: no event */
    uint64_t request = o->request_timeout_ms;
    if (request == 0) {
        /* a keepalive must be answered before the next one is due */
        request = fc->dial_timeout_ms + 1000;
        if (request < fc->lease_ttl_ms / 3)
            request = fc->lease_ttl_ms / 3;
    }
    sst_etcd_opts_t eo = {.endpoints = fc->endpoints,
                          .n_endpoints = fc->n_endpoints,
                          .dial_timeout_ms = fc->dial_timeout_ms,
                          .request_timeout_ms = request};
    rc = sst_etcd_new(loop, &eo, &f->etcd);
    if (rc != 0) {
        sst_fleet_store_clear(&f->store);
        free(f);
        return rc;
    }
    f->cfg = sst_config_ref(o->cfg);
    f->start_cfg = sst_config_ref(o->cfg);
    for (int i = 0; i < FLEET_TIMERS; i++) {
        uv_timer_t *t = fleet_timer(f, i);
        uv_timer_init(loop, t); /* cannot fail for a timer */
        t->data = f;
        f->open_handles++;
    }
    f->last_contact = uv_now(loop);
    fleet_arm_lost(f);
    uv_timer_start(&f->t_startup, fleet_on_startup, fc->startup_wait_ms, 0);
    fleet_sync_read(f);
    fleet_lease_grant(f);
    *out = f;
    return 0;
}

static void fleet_maybe_free(sst_fleet_t *f)
{
    if (!f->etcd_closed || f->open_handles > 0)
        return;
    sst__fleet_act_deliver_all(f); /* answers queued while closing */
    void (*cb)(void *) = f->stop_cb;
    void *arg = f->stop_arg;
    sst_fleet_store_clear(&f->store);
    sst_config_unref(f->cfg);
    sst_config_unref(f->start_cfg);
    free(f);
    if (cb != NULL)
        cb(arg);
}

static void fleet_on_handle_closed(uv_handle_t *h)
{
    sst_fleet_t *f = h->data;
    f->open_handles--;
    fleet_maybe_free(f);
}

static void fleet_on_etcd_closed(void *arg)
{
    sst_fleet_t *f = arg;
    f->etcd_closed = true;
    fleet_maybe_free(f);
}

static void fleet_stop_proceed(sst_fleet_t *f)
{
    if (f->stop_proceeded)
        return;
    f->stop_proceeded = true;
    sst_etcd_close(f->etcd, fleet_on_etcd_closed, f);
    for (int i = 0; i < FLEET_TIMERS; i++)
        uv_close((uv_handle_t *)fleet_timer(f, i), fleet_on_handle_closed);
}

static void fleet_on_revoked(void *arg, int status, const sst_etcd_resp_t *resp)
{
    fleet_stop_proceed(arg);
}

static void fleet_on_stop_guard(uv_timer_t *t)
{
    fleet_stop_proceed(t->data);
}

void sst_fleet_stop(sst_fleet_t *f, void (*cb)(void *arg), void *arg)
{
    if (f == NULL || f->stopping)
        return;
    f->stopping = true;
    f->stop_cb = cb;
    f->stop_arg = arg;
    for (int i = 0; i < FLEET_TIMERS; i++)
        if (fleet_timer(f, i) != &f->t_kick)
            uv_timer_stop(fleet_timer(f, i));
    if (f->watch != NULL)
        sst_etcd_watch_cancel(f->watch);
    /* peers drop this instance at once rather than after lease_ttl */
    if (f->lease == SST__FLEET_LEASE_HELD &&
        sst_etcd_lease_revoke(f->etcd, f->lease_id, fleet_on_revoked, f) == 0) {
        uv_timer_start(&f->t_startup, fleet_on_stop_guard, FLEET_STOP_REVOKE_MS, 0);
        return;
    }
    /* from the loop, so that cb never runs inside this call */
    uv_timer_start(&f->t_startup, fleet_on_stop_guard, 0, 0);
}

/* ---- reload, view, getters ---------------------------------------------------------------- */

static bool fleet_same_identity(const sst_fleet_cfg_t *a, const sst_fleet_cfg_t *b)
{
    if (!a->enabled || !b->enabled || strcmp(a->name, b->name) != 0 ||
        strcmp(a->instance, b->instance) != 0 || a->n_endpoints != b->n_endpoints ||
        a->dial_timeout_ms != b->dial_timeout_ms || a->lease_ttl_ms != b->lease_ttl_ms ||
        strcmp(a->advertise_admin.text, b->advertise_admin.text) != 0)
        return false;
    for (size_t i = 0; i < a->n_endpoints; i++)
        if (strcmp(a->endpoints[i].text, b->endpoints[i].text) != 0)
            return false;
    return true;
}

int sst_fleet_set_config(sst_fleet_t *f, sst_config_t *cfg, const char *config_hash)
{
    if (f == NULL || cfg == NULL || !fleet_hash_ok(config_hash))
        return SST_EINVAL;
    if (f->stopping)
        return SST_ECANCELED;
    /* against the identity the runtime started with, which it keeps whatever reloads say */
    bool same = fleet_same_identity(&f->start_cfg->fleet, &cfg->fleet);
    sst_config_ref(cfg);
    sst_config_unref(f->cfg);
    f->cfg = cfg;
    f->self.config_version = cfg->version;
    snprintf(f->self.config_hash, sizeof(f->self.config_hash), "%s", config_hash);
    if (f->has_view) {
        uint32_t known;
        sst_fleet_view_masks(cfg, &f->own_view, &f->own_down, &known);
    }
    if (f->ever_read) {
        /* indices follow the new config: a getter right after this call sees them */
        sst_fleet_store_overrides(&f->store, cfg, sst__fleet_wall(f), &f->table, &f->next_expiry);
        f->have_table = true;
    }
    f->kick_overrides = f->kick_quorum = true;
    sst__fleet_kick(f);
    fleet_publish(f);
    return same ? 0 : SST_ENOTSUP;
}

int sst_fleet_set_view(sst_fleet_t *f, const sst_fleet_view_t *view)
{
    char err[160];
    size_t len;
    uint32_t known;
    if (f == NULL || view == NULL)
        return SST_EINVAL;
    if (f->stopping)
        return SST_ECANCELED;
    if (sst_fleet_view_encode(view, f->view_buf, sizeof(f->view_buf), &len, err, sizeof(err)) != 0)
        return SST_EINVAL;
    f->own_view = *view;
    f->has_view = true;
    sst_fleet_view_masks(f->cfg, view, &f->own_down, &known);
    f->kick_quorum = true;
    sst__fleet_kick(f);
    fleet_publish(f);
    return 0;
}

const sst_fleet_overrides_t *sst_fleet_overrides(const sst_fleet_t *f, int64_t *revision)
{
    if (revision != NULL)
        *revision = f->have_table ? f->table_revision : 0;
    return &f->table;
}

void sst_fleet_status(const sst_fleet_t *f, sst_fleet_status_t *out)
{
    memset(out, 0, sizeof(*out));
    out->connected = f->connected;
    out->store_lost = f->store_lost;
    out->startup = f->startup;
    out->revision = f->revision;
    out->applied_revision = f->applied_revision;
    out->connects = f->connects;
    out->disconnects = f->disconnects;
    out->compactions = f->compactions;
    out->bad_values = f->bad_values;
    out->lease_grants = f->lease_grants;
    out->lease_id = f->lease == SST__FLEET_LEASE_HELD ? f->lease_id : 0;
    out->last_contact_ms = f->ever_read || f->lease_grants ? f->last_contact_wall : 0;
    snprintf(out->last_error, sizeof(out->last_error), "%s", f->last_error);
    out->own_down = f->own_down;
    out->quorum = f->quorum;
    out->n_members = f->store.n_members;
}

size_t sst_fleet_members(const sst_fleet_t *f, const sst_fleet_member_t **out)
{
    *out = f->store.members;
    return f->store.n_members;
}

const char *sst_fleet_startup_name(sst_fleet_startup_t s)
{
    switch (s) {
    case SST_FLEET_STARTUP_WAITING:
        return "waiting";
    case SST_FLEET_STARTUP_READY:
        return "ready";
    case SST_FLEET_STARTUP_TIMED_OUT:
        return "timed_out";
    }
    return "unknown";
}

const char *sst_fleet_event_name(sst_fleet_event_t e)
{
    switch (e) {
    case SST_FLEET_EV_CONNECTED:
        return "fleet_connected";
    case SST_FLEET_EV_DISCONNECTED:
        return "fleet_disconnected";
    case SST_FLEET_EV_COMPACTED:
        return "fleet_compacted";
    case SST_FLEET_EV_STORE_LOST:
        return "fleet_store_lost";
    case SST_FLEET_EV_LEASE:
        return "fleet_lease";
    case SST_FLEET_EV_DISAGREE:
        return "fleet_disagree";
    case SST_FLEET_EV_AGREE:
        return "fleet_agree";
    case SST_FLEET_EV_EXPIRED:
        return "fleet_expired";
    case SST_FLEET_EV_STARTUP:
        return "fleet_startup";
    case SST_FLEET_EV_BAD_VALUE:
        return "fleet_bad_value";
    }
    return "fleet";
}
