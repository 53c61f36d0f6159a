/* Fleet decisions: the health quorum, the merge of local and fleet overrides, and the safety
 * rule. Pure: values in, values out; no libuv, no clock (now_ms is passed), no allocation. Keys
 * and JSON values are fleet_values.c's. */
#include "fleet/fleet_state.h"

#include <string.h>

#include "sidestep/error.h"

/* ---- quorum ------------------------------------------------------------------------------- */

int sst_fleet_quorum(const sst_fleet_quorum_in_t *in, sst_fleet_quorum_out_t *out)
{
    if (in == NULL || out == NULL || in->n_regions > SST_MAX_REGIONS ||
        (in->mode == SST_FLEET_QUORUM_COUNT && in->count == 0) ||
        (in->peers == NULL && in->n_peers > 0) || (unsigned)in->mode > SST_FLEET_QUORUM_COUNT)
        return SST_EINVAL;
    uint32_t all = in->n_regions == 32 ? UINT32_MAX : (1u << in->n_regions) - 1;
    memset(out, 0, sizeof(*out));
    if (in->mode == SST_FLEET_QUORUM_OFF || in->store_lost) {
        out->basis = in->store_lost && in->mode != SST_FLEET_QUORUM_OFF ? SST_FLEET_BASIS_STORE_LOST
                                                                        : SST_FLEET_BASIS_LOCAL;
        out->down = in->own_down & all;
        for (size_t r = 0; r < in->n_regions; r++) {
            out->voters[r] = out->needed[r] = 1;
            out->down_votes[r] = (out->down >> r) & 1;
        }
        return 0;
    }
    out->basis = SST_FLEET_BASIS_FLEET;
    for (size_t r = 0; r < in->n_regions; r++) {
        uint32_t bit = 1u << r;
        uint32_t voters = 1, down = (in->own_down & bit) ? 1 : 0, needed;
        for (size_t i = 0; i < in->n_peers; i++) {
            const sst_fleet_peer_t *p = &in->peers[i];
            /* a view counts while its instance's heartbeat lives; the own view counts once */
            if (!p->live || !p->has_view || !(p->known & bit) || sst_str_eq(p->instance, in->self))
                continue;
            voters++;
            if (p->down & bit)
                down++;
        }
        if (in->mode == SST_FLEET_QUORUM_MAJORITY) {
            needed = voters / 2 + 1;
        } else if (voters < in->count) {
            needed = voters; /* every instance left must agree */
            out->short_of_count |= bit;
        } else {
            needed = in->count;
        }
        out->voters[r] = voters;
        out->down_votes[r] = down;
        out->needed[r] = needed;
        if (down >= needed)
            out->down |= bit;
    }
    out->disagree = (out->down ^ in->own_down) & all;
    return 0;
}

/* ---- overrides ---------------------------------------------------------------------------- */

int sst_fleet_overrides_apply(sst_fleet_overrides_t *t, const sst_config_t *cfg,
                              const sst_fleet_key_info_t *key, const sst_fleet_override_t *value)
{
    sst_fleet_slot_t *slot;
    int i;
    if (t == NULL || cfg == NULL || key == NULL)
        return SST_EINVAL;
    switch (key->kind) {
    case SST_FLEET_KEY_REGION_FORCE:
    case SST_FLEET_KEY_REGION_DRAIN:
        i = sst_config_region_index(cfg, key->name.base, key->name.len);
        if (i < 0 || i >= SST_MAX_REGIONS)
            return SST_ENOENT;
        slot = key->kind == SST_FLEET_KEY_REGION_FORCE ? &t->region_force[i] : &t->region_drain[i];
        break;
    case SST_FLEET_KEY_BACKEND_FORCE:
        i = sst_config_backend_index(cfg, key->name.base, key->name.len);
        if (i < 0 || i >= SST_MAX_BACKENDS)
            return SST_ENOENT;
        slot = &t->backend_force[i];
        break;
    default:
        return SST_EINVAL;
    }
    if (value == NULL) {
        memset(slot, 0, sizeof(*slot));
        return 0;
    }
    bool drain_key = key->kind == SST_FLEET_KEY_REGION_DRAIN;
    if ((value->state == SST_FLEET_DRAIN) != drain_key)
        return SST_EINVAL;
    slot->set = true;
    slot->ovr = *value;
    return 0;
}

static bool slot_live(const sst_fleet_slot_t *s, uint64_t now_ms)
{
    return s != NULL && s->set && (s->ovr.expires_at == 0 || now_ms < s->ovr.expires_at);
}

void sst_fleet_merge(const sst_fleet_slot_t *local, const sst_fleet_slot_t *fleet, uint64_t now_ms,
                     sst_fleet_effective_t *out)
{
    bool l = slot_live(local, now_ms), f = slot_live(fleet, now_ms);
    out->fleet_shadowed = l && f;
    if (l) {
        out->source = SST_FLEET_SRC_LOCAL;
        out->ovr = &local->ovr;
    } else if (f) {
        out->source = SST_FLEET_SRC_FLEET;
        out->ovr = &fleet->ovr;
    } else {
        out->source = SST_FLEET_SRC_NONE;
        out->ovr = NULL;
    }
}

static void next_expiry(const sst_fleet_slot_t *s, uint64_t now_ms, uint64_t *next)
{
    if (slot_live(s, now_ms) && s->ovr.expires_at != 0 && s->ovr.expires_at < *next)
        *next = s->ovr.expires_at;
}

static void merge_one(const sst_fleet_slot_t *local, const sst_fleet_slot_t *fleet, uint64_t now_ms,
                      sst_fleet_effective_t *out, uint64_t *next)
{
    sst_fleet_merge(local, fleet, now_ms, out);
    next_expiry(local, now_ms, next);
    next_expiry(fleet, now_ms, next);
}

void sst_fleet_merge_all(const sst_config_t *cfg, const sst_fleet_overrides_t *local,
                         const sst_fleet_overrides_t *fleet, uint64_t now_ms,
                         sst_fleet_merged_t *out)
{
    memset(out, 0, sizeof(*out));
    out->next_expiry_ms = UINT64_MAX;
    for (size_t r = 0; r < cfg->n_regions && r < SST_MAX_REGIONS; r++) {
        merge_one(local ? &local->region_force[r] : NULL, fleet ? &fleet->region_force[r] : NULL,
                  now_ms, &out->region_force[r], &out->next_expiry_ms);
        merge_one(local ? &local->region_drain[r] : NULL, fleet ? &fleet->region_drain[r] : NULL,
                  now_ms, &out->region_drain[r], &out->next_expiry_ms);
    }
    for (size_t b = 0; b < cfg->n_backends && b < SST_MAX_BACKENDS; b++)
        merge_one(local ? &local->backend_force[b] : NULL, fleet ? &fleet->backend_force[b] : NULL,
                  now_ms, &out->backend_force[b], &out->next_expiry_ms);
}

/* ---- the safety rule ---------------------------------------------------------------------- */

/* What the overrides say about each region, with the proposal applied or not. */
typedef struct safety_view_s {
    bool region_down[SST_MAX_REGIONS];
    bool region_up[SST_MAX_REGIONS];
    bool region_drained[SST_MAX_REGIONS];
    bool backend_down[SST_MAX_BACKENDS];
} safety_view_t;

static void safety_view(const sst_config_t *cfg, const sst_fleet_overrides_t *fleet,
                        uint64_t now_ms, safety_view_t *v)
{
    memset(v, 0, sizeof(*v));
    if (fleet == NULL)
        return;
    for (size_t r = 0; r < cfg->n_regions && r < SST_MAX_REGIONS; r++) {
        const sst_fleet_slot_t *f = &fleet->region_force[r];
        if (slot_live(f, now_ms)) {
            v->region_down[r] = f->ovr.state == SST_FLEET_DOWN;
            v->region_up[r] = f->ovr.state == SST_FLEET_UP;
        }
        v->region_drained[r] = slot_live(&fleet->region_drain[r], now_ms);
    }
    for (size_t b = 0; b < cfg->n_backends && b < SST_MAX_BACKENDS; b++) {
        const sst_fleet_slot_t *f = &fleet->backend_force[b];
        v->backend_down[b] = slot_live(f, now_ms) && f->ovr.state == SST_FLEET_DOWN;
    }
}

/* UP backends a region needs (health.c's rule): a count, or a percentage rounded up. */
static uint64_t region_need(const sst_region_cfg_t *rc)
{
    if (!rc->min_healthy_pct)
        return rc->min_healthy;
    return ((uint64_t)rc->min_healthy * rc->n_backends + 99) / 100;
}

/* Could region r serve if every backend not forced down were healthy? */
static bool region_usable(const sst_config_t *cfg, const safety_view_t *v, size_t r)
{
    const sst_region_cfg_t *rc = &cfg->regions[r];
    uint64_t avail = 0;
    if (v->region_drained[r] || v->region_down[r])
        return false;
    for (size_t b = rc->first_backend; b < rc->first_backend + rc->n_backends; b++)
        if (b < SST_MAX_BACKENDS && !v->backend_down[b])
            avail++;
    /* forced up, a region ignores min_healthy but still needs a backend to send to */
    return v->region_up[r] ? avail > 0 : avail >= region_need(rc) && avail > 0;
}

static bool route_has_usable(const sst_config_t *cfg, const safety_view_t *v, size_t rt)
{
    const sst_route_cfg_t *route = &cfg->routes[rt];
    if (route->primary < cfg->n_regions && region_usable(cfg, v, route->primary))
        return true;
    for (size_t i = 0; i < route->n_failover && i < SST_MAX_REGIONS; i++)
        if (route->failover[i] < cfg->n_regions && region_usable(cfg, v, route->failover[i]))
            return true;
    return false;
}

int sst_fleet_safety_check(const sst_config_t *cfg, const sst_fleet_overrides_t *fleet,
                           const sst_fleet_proposal_t *p, uint64_t now_ms, size_t *route)
{
    safety_view_t before, after;
    if (cfg == NULL || p == NULL || route == NULL)
        return SST_EINVAL;
    *route = SIZE_MAX;
    switch (p->kind) {
    case SST_FLEET_KEY_REGION_FORCE:
        if (p->index >= cfg->n_regions || p->state == SST_FLEET_DRAIN)
            return SST_EINVAL;
        break;
    case SST_FLEET_KEY_REGION_DRAIN:
        if (p->index >= cfg->n_regions || p->state != SST_FLEET_DRAIN)
            return SST_EINVAL;
        break;
    case SST_FLEET_KEY_BACKEND_FORCE:
        if (p->index >= cfg->n_backends || p->state == SST_FLEET_DRAIN)
            return SST_EINVAL;
        break;
    default:
        return SST_EINVAL;
    }
    if ((unsigned)p->state > SST_FLEET_DRAIN)
        return SST_EINVAL;
    safety_view(cfg, fleet, now_ms, &before);
    after = before;
    switch (p->kind) {
    case SST_FLEET_KEY_REGION_FORCE:
        /* a force replaces the region's force key */
        after.region_down[p->index] = p->state == SST_FLEET_DOWN;
        after.region_up[p->index] = p->state == SST_FLEET_UP;
        break;
    case SST_FLEET_KEY_REGION_DRAIN:
        after.region_drained[p->index] = true;
        break;
    default:
        after.backend_down[p->index] = p->state == SST_FLEET_DOWN;
        break;
    }
    for (size_t rt = 0; rt < cfg->n_routes && rt < SST_MAX_ROUTES; rt++) {
        if (route_has_usable(cfg, &before, rt) && !route_has_usable(cfg, &after, rt)) {
            *route = rt;
            return SST_EBUSY;
        }
    }
    return 0;
}
