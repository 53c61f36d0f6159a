/* The admin API's fleet mode: fleet actions (through the fleet runtime, answered once etcd
 * acknowledged), GET /fleet, the "fleet" member of /status and the override details of regions
 * and backends. Builds answers from the server's fleet state; changes nothing but through
 * sst_fleet_action. Control thread only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin/admin.h"
#include "core/server_fleet.h"
#include "core/server_int.h"
#include "fleet/fleet.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

/* json-c returns NULL when malloc fails; every add goes through here and remembers it. */
static void fj_add(json_object *o, const char *key, json_object *v, bool *oom)
{
    if (v == NULL || o == NULL || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        *oom = true;
    }
}

static void fj_null(json_object *o, const char *key, bool *oom)
{
    if (o == NULL || json_object_object_add(o, key, NULL) != 0)
        *oom = true;
}

static void fj_str(json_object *o, const char *key, const char *v, bool *oom)
{
    if (v == NULL)
        fj_null(o, key, oom);
    else
        fj_add(o, key, json_object_new_string(v), oom);
}

static void fj_i64(json_object *o, const char *key, int64_t v, bool *oom)
{
    fj_add(o, key, json_object_new_int64(v), oom);
}

static void fj_u64(json_object *o, const char *key, uint64_t v, bool *oom)
{
    fj_add(o, key, json_object_new_uint64(v), oom);
}

static void fj_bool(json_object *o, const char *key, bool v, bool *oom)
{
    fj_add(o, key, json_object_new_boolean(v), oom);
}

/* Wall-clock epoch ms as ISO-8601 UTC, or null for 0. */
static void fj_wall(json_object *o, const char *key, uint64_t ms, bool *oom)
{
    char ts[32];
    if (ms == 0) {
        fj_null(o, key, oom);
        return;
    }
    sst_log_time(ms, ts);
    fj_str(o, key, ts, oom);
}

bool sst__admin_fleet_mode(const sst_server_t *s)
{
    return s->fleet != NULL;
}

static const char *fj_state(sst_fleet_state_t st)
{
    return st == SST_FLEET_DOWN ? "down" : st == SST_FLEET_UP ? "up" : "drain";
}

static const char *fj_source(sst_fleet_source_t src)
{
    return src == SST_FLEET_SRC_LOCAL ? "local" : src == SST_FLEET_SRC_FLEET ? "fleet" : "none";
}

/* One override: state, reason, source, who, when, expiry. */
static json_object *fj_override(const sst_fleet_override_t *v, sst_fleet_source_t src,
                                bool with_state, uint64_t now, bool *oom)
{
    json_object *o = json_object_new_object(), *by = json_object_new_object();
    if (o == NULL || by == NULL) {
        json_object_put(o);
        json_object_put(by);
        *oom = true;
        return NULL;
    }
    if (with_state)
        fj_str(o, "state", fj_state(v->state), oom);
    fj_str(o, "reason", v->reason, oom);
    fj_str(o, "source", fj_source(src), oom);
    fj_str(by, "instance", v->by_instance, oom);
    fj_str(by, "client", v->by_client, oom);
    fj_add(o, "by", by, oom);
    fj_wall(o, "created_at", v->created_at, oom);
    fj_wall(o, "expires", v->expires_at, oom);
    if (v->expires_at != 0)
        fj_u64(o, "expires_in_ms", v->expires_at > now ? v->expires_at - now : 0, oom);
    else
        fj_null(o, "expires_in_ms", oom);
    return o;
}

/* "force" or "drain" from the merge: null, or the override in force. */
static void fj_effective(json_object *o, const char *key, const sst_fleet_effective_t *e,
                         bool with_state, uint64_t now, bool *oom)
{
    if (e->ovr == NULL) {
        fj_null(o, key, oom);
        return;
    }
    json_object *v = fj_override(e->ovr, e->source, with_state, now, oom);
    if (v != NULL)
        fj_bool(v, "fleet_shadowed", e->fleet_shadowed, oom);
    fj_add(o, key, v, oom);
}

void sst__admin_fleet_region(const sst_server_t *s, size_t r, json_object *o, bool *oom)
{
    const sst_sfleet_t *sf = s->fleet;
    sst_fleet_merged_t m;
    sst_fleet_status_t st;
    uint64_t now = sst_log_epoch_ms();
    if (sf == NULL || r >= s->cfg->n_regions || r >= SST_MAX_REGIONS)
        return;
    sst__sfleet_merged(s, &m);
    fj_effective(o, "force", &m.region_force[r], true, now, oom);
    fj_effective(o, "drain", &m.region_drain[r], false, now, oom);
    sst_fleet_status(sf->f, &st);
    uint32_t bit = 1u << r;
    bool fleet_basis = st.quorum.basis == SST_FLEET_BASIS_FLEET;
    json_object *fo = json_object_new_object();
    fj_str(fo, "own", st.own_down & bit ? "down" : "up", oom);
    if (fleet_basis)
        fj_str(fo, "fleet", st.quorum.down & bit ? "down" : "up", oom);
    else
        fj_null(fo, "fleet", oom);
    fj_str(fo, "routing", s->view->snap->regions[r].state == SST_UP ? "up" : "down", oom);
    fj_bool(fo, "disagree", fleet_basis && (st.quorum.disagree & bit), oom);
    fj_add(o, "fleet", fo, oom);
}

void sst__admin_fleet_backend(const sst_server_t *s, size_t b, json_object *o, bool *oom)
{
    sst_fleet_merged_t m;
    if (s->fleet == NULL || b >= s->cfg->n_backends)
        return;
    sst__sfleet_merged(s, &m);
    fj_effective(o, "force", &m.backend_force[b], true, sst_log_epoch_ms(), oom);
}

/* ---- /status ---------------------------------------------------------------------------- */

/* Every override of both layers, whether in force or not, for /status. */
static void fj_layer(const sst_server_t *s, const sst_fleet_overrides_t *t, sst_fleet_source_t src,
                     const sst_fleet_merged_t *m, json_object *arr, uint64_t now, bool *oom)
{
    const sst_config_t *cfg = s->cfg;
    for (int kind = 0; kind < 3; kind++) {
        size_t n = kind == 2 ? cfg->n_backends : cfg->n_regions;
        for (size_t i = 0; i < n; i++) {
            const sst_fleet_slot_t *slot = kind == 0   ? &t->region_force[i]
                                           : kind == 1 ? &t->region_drain[i]
                                                       : &t->backend_force[i];
            const sst_fleet_effective_t *e = kind == 0   ? &m->region_force[i]
                                             : kind == 1 ? &m->region_drain[i]
                                                         : &m->backend_force[i];
            if (!slot->set)
                continue;
            json_object *o = fj_override(&slot->ovr, src, true, now, oom);
            if (o == NULL)
                return;
            fj_str(o, kind == 2 ? "backend" : "region",
                   kind == 2 ? cfg->backends[i].addr.text : cfg->regions[i].name, oom);
            fj_str(o, "kind", kind == 1 ? "drain" : "force", oom);
            fj_bool(o, "in_force", e->ovr == &slot->ovr, oom);
            fj_bool(o, "shadowed", src == SST_FLEET_SRC_FLEET && e->fleet_shadowed, oom);
            if (json_object_array_add(arr, o) != 0) {
                json_object_put(o);
                *oom = true;
            }
        }
    }
}

static const char *fj_basis(sst_fleet_quorum_basis_t b)
{
    return b == SST_FLEET_BASIS_FLEET        ? "fleet"
           : b == SST_FLEET_BASIS_STORE_LOST ? "store_lost"
                                             : "local";
}

json_object *sst__admin_fleet_status(sst_server_t *s)
{
    const sst_sfleet_t *sf = s->fleet;
    const sst_config_t *cfg = s->cfg;
    sst_fleet_status_t st;
    sst_fleet_merged_t m;
    uint64_t now = sst_log_epoch_ms();
    bool oom = false;
    char mode[16];
    if (sf == NULL)
        return NULL;
    sst_fleet_status(sf->f, &st);
    sst__sfleet_merged(s, &m);
    json_object *o = json_object_new_object(), *q = json_object_new_object(),
                *qr = json_object_new_object(), *dis = json_object_new_array(),
                *ovr = json_object_new_array();
    if (o == NULL || q == NULL || qr == NULL || dis == NULL || ovr == NULL) {
        json_object_put(o);
        json_object_put(q);
        json_object_put(qr);
        json_object_put(dis);
        json_object_put(ovr);
        return NULL;
    }
    fj_str(o, "name", sf->start_cfg->fleet.name, &oom);
    fj_str(o, "instance", sf->start_cfg->fleet.instance, &oom);
    fj_bool(o, "connected", st.connected, &oom);
    fj_i64(o, "revision", st.revision, &oom);
    fj_i64(o, "applied_revision", st.applied_revision, &oom);
    fj_i64(o, "overrides_revision", sf->fleet_revision, &oom);
    fj_str(o, "startup", sst_fleet_startup_name(st.startup), &oom);
    fj_bool(o, "accepting", !s->accept_held, &oom);
    fj_bool(o, "store_lost", st.store_lost, &oom);
    fj_str(o, "last_error", st.last_error[0] ? st.last_error : NULL, &oom);
    fj_wall(o, "last_contact", st.last_contact_ms, &oom);
    fj_i64(o, "lease_id", st.lease_id, &oom);
    fj_u64(o, "connects", st.connects, &oom);
    fj_u64(o, "disconnects", st.disconnects, &oom);
    fj_u64(o, "compactions", st.compactions, &oom);
    fj_u64(o, "bad_values", st.bad_values, &oom);
    fj_u64(o, "members", st.n_members, &oom);
    fj_str(o, "restart_needed", sf->restart_why[0] ? sf->restart_why : NULL, &oom);
    fj_str(q, "mode", sst_config_quorum_text(&cfg->fleet, mode, sizeof(mode)), &oom);
    fj_str(q, "basis", fj_basis(st.quorum.basis), &oom);
    for (size_t r = 0; r < cfg->n_regions && r < SST_MAX_REGIONS; r++) {
        uint32_t bit = 1u << r;
        bool fleet = st.quorum.basis == SST_FLEET_BASIS_FLEET;
        json_object *ro = json_object_new_object();
        fj_str(ro, "own", st.own_down & bit ? "down" : "up", &oom);
        fj_str(ro, "decision", st.quorum.down & bit ? "down" : "up", &oom);
        fj_u64(ro, "voters", st.quorum.voters[r], &oom);
        fj_u64(ro, "down_votes", st.quorum.down_votes[r], &oom);
        fj_u64(ro, "needed", st.quorum.needed[r], &oom);
        fj_bool(ro, "disagree", fleet && (st.quorum.disagree & bit), &oom);
        fj_add(qr, cfg->regions[r].name, ro, &oom);
        if (fleet && (st.quorum.disagree & bit) &&
            json_object_array_add(dis, json_object_new_string(cfg->regions[r].name)) != 0)
            oom = true;
    }
    fj_add(q, "regions", qr, &oom);
    fj_add(o, "quorum", q, &oom);
    fj_add(o, "disagree", dis, &oom);
    fj_layer(s, &sf->local, SST_FLEET_SRC_LOCAL, &m, ovr, now, &oom);
    if (sf->have_fleet)
        fj_layer(s, &sf->fleet, SST_FLEET_SRC_FLEET, &m, ovr, now, &oom);
    fj_add(o, "overrides", ovr, &oom);
    if (oom) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

int sst__admin_fleet_json(sst_server_t *s, json_object **out)
{
    bool oom = false;
    if (s->fleet == NULL)
        return SST_ENOENT;
    json_object *o = sst_fleet_to_json(s->fleet->f);
    if (o == NULL)
        return SST_ENOMEM;
    fj_u64(o, "time_ms", sst_log_epoch_ms(), &oom);
    if (oom) {
        json_object_put(o);
        return SST_ENOMEM;
    }
    *out = o;
    return 0;
}

/* ---- actions ---------------------------------------------------------------------------- */

typedef struct fleet_call_s {
    sst_server_t *s;
    sst_admin_fleet_cb cb;
    void *arg;
    bool backend;
    sst_admin_op_t op;
    char name[SST_ADMIN_NAME_MAX];
    char client[80];
} fleet_call_t;

static void fleet_on_done(void *arg, const sst_fleet_result_t *res)
{
    fleet_call_t *fc = arg;
    unsigned status = res->http_status > 0 ? (unsigned)res->http_status : 503;
    bool oom = false;
    json_object *o = json_object_new_object();

    fj_str(o, "scope", "fleet", &oom);
    fj_str(o, "action", sst__admin_op_word(fc->op), &oom);
    fj_str(o, fc->backend ? "backend" : "region", fc->name, &oom);
    if (status == 200) {
        fj_i64(o, "revision", res->revision, &oom);
        fj_str(o, "message", res->message, &oom);
    } else {
        fj_str(o, "error", res->message, &oom);
        fj_u64(o, "status", status, &oom);
        if (res->route != NULL)
            fj_str(o, "route", res->route, &oom);
    }
    if (oom) {
        json_object_put(o);
        o = NULL;
    }
    sst__sfleet_count(fc->s, SST_SFLEET_FLEET, status);
    if (status == 200)
        sst_info("admin: fleet %s %s %s from %s: written at etcd revision %" PRId64,
                 sst__admin_op_word(fc->op), fc->backend ? "backend" : "region", fc->name,
                 fc->client, res->revision);
    else
        sst_warn("admin: fleet %s %s %s from %s: %u: %s", sst__admin_op_word(fc->op),
                 fc->backend ? "backend" : "region", fc->name, fc->client, status, res->message);
    fc->cb(fc->arg, status, o);
    free(fc);
}

static sst_fleet_op_t fleet_op(sst_admin_op_t op)
{
    switch (op) {
    case SST_ADMIN_DRAIN:
        return SST_FLEET_OP_DRAIN;
    case SST_ADMIN_UNDRAIN:
        return SST_FLEET_OP_UNDRAIN;
    case SST_ADMIN_FORCE_UP:
        return SST_FLEET_OP_FORCE_UP;
    case SST_ADMIN_FORCE_DOWN:
        return SST_FLEET_OP_FORCE_DOWN;
    case SST_ADMIN_CLEAR:
        break;
    }
    return SST_FLEET_OP_CLEAR;
}

int sst__admin_fleet_action(sst_server_t *s, const sst_admin_target_t *t,
                            const sst_admin_action_t *a, const char *client, sst_admin_fleet_cb cb,
                            void *arg)
{
    if (s->fleet == NULL)
        return SST_ECANCELED;
    fleet_call_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return SST_ENOMEM;
    fc->s = s;
    fc->cb = cb;
    fc->arg = arg;
    fc->backend = t->res == SST_ARES_BACKEND;
    fc->op = t->op;
    snprintf(fc->name, sizeof(fc->name), "%s", t->name);
    snprintf(fc->client, sizeof(fc->client), "%s", client);
    sst_fleet_action_t fa = {
        .op = fleet_op(t->op),
        .backend = fc->backend,
        .target = sst_str_c(fc->name),
        .reason = sst_str_c(a->reason),
        .client = sst_str_c(fc->client),
        .ttl_ms = a->ttl_ms,
        .override_safety = a->override_safety,
    };
    int rc = sst_fleet_action(s->fleet->f, &fa, fleet_on_done, fc);
    if (rc != 0)
        free(fc);
    return rc;
}
