/* The body of GET /fleet (sst_fleet_to_json): this instance's connection to etcd, the quorum
 * per region, every instance with its heartbeat and view, and the fleet overrides. Builds JSON
 * from the runtime's state; decides nothing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "fleet/fleet.h"
#include "fleet/fleet_internal.h"

static const char *const json_states[] = {
    [SST_FLEET_DOWN] = "down", [SST_FLEET_UP] = "up", [SST_FLEET_DRAIN] = "drain"};
static const char *const json_bases[] = {[SST_FLEET_BASIS_LOCAL] = "local",
                                         [SST_FLEET_BASIS_STORE_LOST] = "store_lost",
                                         [SST_FLEET_BASIS_FLEET] = "fleet"};

/* json-c's adders fail only on ENOMEM; `ok` collects that. */
static void add(json_object *o, const char *k, json_object *v, bool *ok)
{
    if (v == NULL || json_object_object_add(o, k, v) != 0) {
        json_object_put(v);
        *ok = false;
    }
}

static json_object *json_i64(int64_t v)
{
    return json_object_new_int64(v);
}

static json_object *json_u64(uint64_t v)
{
    return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static json_object *json_quorum(const sst_fleet_t *f, bool *ok)
{
    json_object *q = json_object_new_object(), *regions = json_object_new_object();
    char mode[16];
    if (q == NULL || regions == NULL) {
        json_object_put(q);
        json_object_put(regions);
        *ok = false;
        return NULL;
    }
    add(q, "mode",
        json_object_new_string(sst_config_quorum_text(&f->cfg->fleet, mode, sizeof(mode))), ok);
    add(q, "basis", json_object_new_string(f->quorum_valid ? json_bases[f->quorum.basis] : "local"),
        ok);
    for (size_t r = 0; r < f->cfg->n_regions && r < SST_MAX_REGIONS; r++) {
        uint32_t bit = 1u << r;
        json_object *o = json_object_new_object();
        if (o == NULL) {
            *ok = false;
            break;
        }
        add(o, "own", json_object_new_string(f->own_down & bit ? "down" : "up"), ok);
        if (f->quorum_valid) {
            add(o, "fleet", json_object_new_string(f->quorum.down & bit ? "down" : "up"), ok);
            add(o, "voters", json_object_new_int64(f->quorum.voters[r]), ok);
            add(o, "down_votes", json_object_new_int64(f->quorum.down_votes[r]), ok);
            add(o, "needed", json_object_new_int64(f->quorum.needed[r]), ok);
            add(o, "disagree", json_object_new_boolean(!!(f->quorum.disagree & bit)), ok);
        }
        add(regions, f->cfg->regions[r].name, o, ok);
    }
    add(q, "regions", regions, ok);
    return q;
}

static json_object *json_member(const sst_fleet_t *f, const sst_fleet_member_t *m, bool *ok)
{
    json_object *o = json_object_new_object();
    if (o == NULL) {
        *ok = false;
        return NULL;
    }
    add(o, "instance", json_object_new_string(m->name), ok);
    add(o, "self", json_object_new_boolean(strcmp(m->name, f->instance) == 0), ok);
    add(o, "live", json_object_new_boolean(m->has_heartbeat), ok);
    if (m->has_heartbeat) {
        const sst_fleet_instance_t *h = &m->heartbeat;
        add(o, "admin", json_object_new_string(h->admin), ok);
        add(o, "version", json_object_new_string(h->version), ok);
        add(o, "config_version", json_u64(h->config_version), ok);
        add(o, "config_hash", json_object_new_string(h->config_hash), ok);
        add(o, "started_at", json_u64(h->started_at), ok);
        add(o, "last_seen", json_u64(h->seen_at), ok);
        add(o, "applied_revision", json_u64(h->applied_revision), ok);
    }
    if (m->has_view) {
        json_object *v = json_object_new_object();
        if (v == NULL) {
            *ok = false;
            return o;
        }
        for (size_t i = 0; i < m->view.n_regions; i++) {
            const sst_fleet_region_view_t *r = &m->view.regions[i];
            json_object *ro = json_object_new_object();
            if (ro == NULL) {
                *ok = false;
                break;
            }
            add(ro, "state", json_object_new_string(r->down ? "down" : "up"), ok);
            if (r->reason[0])
                add(ro, "reason", json_object_new_string(r->reason), ok);
            if (r->text[0])
                add(ro, "text", json_object_new_string(r->text), ok);
            add(v, r->name, ro, ok);
        }
        add(o, "view", v, ok);
        add(o, "view_at", json_u64(m->view.at), ok);
    }
    return o;
}

static json_object *json_overrides(const sst_fleet_t *f, bool *ok)
{
    json_object *arr = json_object_new_array();
    uint64_t now = sst__fleet_wall(f);
    if (arr == NULL) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < f->store.n_ovr; i++) {
        const sst_fleet_ovr_key_t *k = &f->store.ovr[i];
        json_object *o = json_object_new_object(), *by = json_object_new_object();
        if (o == NULL || by == NULL || json_object_array_add(arr, o) != 0) {
            json_object_put(o);
            json_object_put(by);
            *ok = false;
            break;
        }
        bool backend = k->kind == SST_FLEET_KEY_BACKEND_FORCE;
        add(o, backend ? "backend" : "region", json_object_new_string(k->name), ok);
        add(o, "kind",
            json_object_new_string(k->kind == SST_FLEET_KEY_REGION_DRAIN ? "drain" : "force"), ok);
        add(o, "state", json_object_new_string(json_states[k->ovr.state]), ok);
        add(o, "reason", json_object_new_string(k->ovr.reason), ok);
        add(by, "instance", json_object_new_string(k->ovr.by_instance), ok);
        add(by, "client", json_object_new_string(k->ovr.by_client), ok);
        add(o, "by", by, ok);
        add(o, "created_at", json_u64(k->ovr.created_at), ok);
        if (k->ovr.expires_at)
            add(o, "expires_at", json_u64(k->ovr.expires_at), ok);
        add(o, "expired", json_object_new_boolean(k->ovr.expires_at && now >= k->ovr.expires_at),
            ok);
        add(o, "revision", json_i64(k->mod_revision), ok);
    }
    return arr;
}

json_object *sst_fleet_to_json(const sst_fleet_t *f)
{
    json_object *o = json_object_new_object(), *members = json_object_new_array();
    bool ok = o != NULL && members != NULL;
    if (!ok) {
        json_object_put(o);
        json_object_put(members);
        return NULL;
    }
    add(o, "fleet", json_object_new_string(f->name), &ok);
    add(o, "instance", json_object_new_string(f->instance), &ok);
    add(o, "connected", json_object_new_boolean(f->connected), &ok);
    add(o, "startup", json_object_new_string(sst_fleet_startup_name(f->startup)), &ok);
    add(o, "revision", json_i64(f->revision), &ok);
    add(o, "applied_revision", json_i64(f->applied_revision), &ok);
    add(o, "connects", json_u64(f->connects), &ok);
    add(o, "disconnects", json_u64(f->disconnects), &ok);
    add(o, "compactions", json_u64(f->compactions), &ok);
    add(o, "store_lost", json_object_new_boolean(f->store_lost), &ok);
    if (f->last_error[0])
        add(o, "last_error", json_object_new_string(f->last_error), &ok);
    add(o, "quorum", json_quorum(f, &ok), &ok);
    for (size_t i = 0; i < f->store.n_members && ok; i++) {
        json_object *m = json_member(f, &f->store.members[i], &ok);
        if (m == NULL || json_object_array_add(members, m) != 0) {
            json_object_put(m);
            ok = false;
        }
    }
    add(o, "instances", members, &ok);
    add(o, "overrides", json_overrides(f, &ok), &ok);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}
